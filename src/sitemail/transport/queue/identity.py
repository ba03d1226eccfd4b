"""Queue and message identities (exchange-2010.md §5.1).

Queues: ``<SERVER>\\Submission``, ``<SERVER>\\Unreachable``, ``<SERVER>\\Poison``
and ``<SERVER>\\<n>`` for delivery queues.  Messages: ``<SERVER>\\<queue>\\<n>``.
The shell may leave out the server (``Submission``, ``12\\345``): the local
server is meant.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidIdentityError
from .model import POISON, SUBMISSION, UNREACHABLE

SPECIAL_QUEUES = (SUBMISSION, UNREACHABLE, POISON)


def queue_identity(server: str, queue: str | int) -> str:
    return f"{server}\\{queue}"


def message_identity(server: str, queue: str | int, item_id: int) -> str:
    return f"{server}\\{queue}\\{item_id}"


@dataclass(frozen=True, slots=True)
class QueueName:
    """The queue part of an identity: a special queue's name or a delivery queue's number."""

    special: str | None = None
    number: int | None = None

    def __str__(self) -> str:
        return self.special if self.special is not None else str(self.number)


def parse_queue_name(part: str, original: str) -> QueueName:
    for name in SPECIAL_QUEUES:
        if part.casefold() == name.casefold():
            return QueueName(special=name)
    if part.isdigit():
        return QueueName(number=int(part))
    raise InvalidIdentityError(
        f"'{original}' is not a queue identity: expected <Server>\\Submission, "
        "<Server>\\Unreachable, <Server>\\Poison or <Server>\\<number>"
    )


def parse_queue_identity(text: str, server: str) -> QueueName:
    parts = text.strip().split("\\")
    if len(parts) == 2:
        _check_server(parts[0], server, text)
        return parse_queue_name(parts[1], text)
    if len(parts) == 1:
        return parse_queue_name(parts[0], text)
    raise InvalidIdentityError(f"'{text}' is not a queue identity: expected <Server>\\<Queue>")


def parse_message_identity(text: str, server: str) -> tuple[QueueName, int]:
    parts = text.strip().split("\\")
    if len(parts) == 3:
        _check_server(parts[0], server, text)
        parts = parts[1:]
    if len(parts) != 2 or not parts[1].isdigit():
        raise InvalidIdentityError(
            f"'{text}' is not a message identity: expected <Server>\\<Queue>\\<MessageId>"
        )
    return parse_queue_name(parts[0], text), int(parts[1])


def _check_server(given: str, server: str, original: str) -> None:
    # Identities name a server by its short name; accept the FQDN's first label too.
    if (
        given.casefold() != server.casefold()
        and given.split(".")[0].casefold() != server.casefold()
    ):
        raise InvalidIdentityError(
            f"'{original}' names server '{given}', but this is {server}: "
            f"ask {given}'s own queue service"
        )
