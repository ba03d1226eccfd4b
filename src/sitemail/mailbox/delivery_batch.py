"""A queue batch delivered in one store API call: the wire format both ends use.

A hub's mailbox delivery queue holds the messages for one database, so a
batch goes to one server.  Sending it as one request, stored in one
transaction, spares a TLS record exchange, an HTTP request, a temporary file
and a commit (an fsync) per recipient; what the hub learns per recipient is
the same as from ``POST /mailboxes/{mb}/deliver``.

``POST /deliveries``, body ``multipart/mixed``: one part per message, the
message's octets as the part's body and its recipients in the part's
``X-Deliver-To`` header as JSON ``[[mailbox, delivery id], ...]``.  The answer
is ``{"results": [...]}`` with one entry per recipient, parts in order:
``{"result": DeliveryResult}`` or the error that refused that recipient alone
(``{"error", "message", ...}`` as the other routes answer, plus ``"status"``).
An error of the whole request (bad framing, the database unavailable) is
answered as any route's error, and nothing of the batch is stored.

A hub delivering to a database of its own server, whose store runs in the same
process, hands the batch to that store directly (:func:`deliver_here`): the same
parts, checks and answers without the HTTPS request, the multipart framing both ways
and the JSON of the answers, which cost that process about a quarter of its time per
message.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

from sitemail.mailbox.errors import InvalidRequest, StoreError, StoreUnavailable, error_from_json
from sitemail.mailbox.limits import MAX_DELIVERY_ID, MAX_MAILBOX_NAME
from sitemail.mailbox.records import DeliveryResult

#: The part header naming a message's recipients.
DELIVER_TO = "X-Deliver-To"
#: Messages in one request (a hub's batch is 20; room for larger batches).
MAX_PARTS = 100
#: Recipients in one request, over all its messages.
MAX_RECIPIENTS = 1000
#: The longest ``X-Deliver-To`` value a client sends: a message with more recipients
#: goes in several parts (HTTP header lines are bounded at about 8 KiB by servers).
MAX_HEADER = 4096

T = TypeVar("T")

log = logging.getLogger("sitemail.mailbox.delivery")

DeliveryAnswer = DeliveryResult | StoreError
"""What became of one recipient: stored (or already stored), or why not."""


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """One message of a batch: its body (a file, or the octets) and its (mailbox, delivery
    id) pairs."""

    body: Path | bytes
    recipients: tuple[tuple[str, str], ...]


def part_headers(message: BatchMessage) -> list[str]:
    """The ``X-Deliver-To`` values of a message's parts: one, unless it has many recipients."""
    values: list[str] = []
    chunk: list[list[str]] = []
    for pair in message.recipients:
        if chunk and len(_header([*chunk, list(pair)])) > MAX_HEADER:
            values.append(_header(chunk))
            chunk = []
        chunk.append(list(pair))
    if chunk:
        values.append(_header(chunk))
    return values


def _header(pairs: list[list[str]]) -> str:
    return json.dumps(pairs, separators=(",", ":"))


def parse_recipients(value: str | None) -> list[tuple[str, str]]:
    """The recipients a part names; InvalidRequest for anything but a list of name/id pairs."""
    if not value:
        raise InvalidRequest(f"every part of a delivery batch needs an {DELIVER_TO} header")
    try:
        pairs = json.loads(value)
    except ValueError:
        raise InvalidRequest(f"{DELIVER_TO} is not JSON") from None
    if not isinstance(pairs, list) or not pairs:
        raise InvalidRequest(f"{DELIVER_TO} must be a non-empty list of [mailbox, id] pairs")
    out: list[tuple[str, str]] = []
    for pair in pairs:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, str) and x for x in pair)
            or len(pair[0]) > MAX_MAILBOX_NAME
            or len(pair[1]) > MAX_DELIVERY_ID
        ):
            raise InvalidRequest(
                f"{DELIVER_TO} entries must be [mailbox, delivery id] (mailbox at most "
                f"{MAX_MAILBOX_NAME} characters, id at most {MAX_DELIVERY_ID})"
            )
        out.append((pair[0], pair[1]))
    return out


def answers_json(answers: Sequence[DeliveryAnswer]) -> dict[str, Any]:
    """The response body for ``answers`` (one per recipient, in request order)."""
    results: list[dict[str, Any]] = []
    for answer in answers:
        if isinstance(answer, StoreError):
            results.append({**answer.to_json(), "status": answer.status})
        else:
            results.append({"result": answer.model_dump(mode="json")})
    return {"results": results}


def answers_from_json(body: Any, expected: int) -> list[DeliveryAnswer]:
    """The answers of a response body; StoreUnavailable if it does not fit the request."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != expected:
        raise StoreUnavailable(
            f"the store answered a delivery batch of {expected} recipients with "
            f"{len(results) if isinstance(results, list) else 'no'} results"
        )
    answers: list[DeliveryAnswer] = []
    for entry in results:
        if not isinstance(entry, dict):
            raise StoreUnavailable("the store answered a delivery batch with a malformed result")
        if "result" in entry:
            try:
                answers.append(DeliveryResult.model_validate(entry["result"]))
            except ValueError as exc:
                raise StoreUnavailable(f"the store answered a malformed result: {exc}") from None
        else:
            status = entry.get("status")
            answers.append(error_from_json(status if isinstance(status, int) else 500, entry))
    return answers


class LocalStore(Protocol):
    """The store of this process (:class:`~sitemail.mailbox.store_backend.StoreBackend`)."""

    max_message_size: int

    async def run(self, fn: Callable[[], T]) -> T: ...

    def deliver_spooled(
        self, spooled: Sequence[tuple[IO[bytes] | StoreError, Sequence[tuple[str, str]]]]
    ) -> list[DeliveryAnswer]: ...


async def deliver_here(store: LocalStore, batch: Sequence[BatchMessage]) -> list[DeliveryAnswer]:
    """``POST /deliveries`` of ``batch`` to the store of this very process, without HTTP.

    The parts and their checks are those of the request (recipients through the
    same header values, the same limits), so the answers are the ones the route gives.
    """

    def deliver() -> list[DeliveryAnswer]:
        with ExitStack() as files:
            spooled: list[tuple[IO[bytes] | StoreError, Sequence[tuple[str, str]]]] = []
            count = 0
            for message in batch:
                body: IO[bytes] = (
                    io.BytesIO(message.body)
                    if isinstance(message.body, bytes)
                    else files.enter_context(message.body.open("rb"))
                )
                for value in part_headers(message):
                    recipients = parse_recipients(value)
                    count += len(recipients)
                    spooled.append((body, recipients))
            if len(spooled) > MAX_PARTS or count > MAX_RECIPIENTS:
                raise InvalidRequest(
                    f"a delivery batch holds at most {MAX_PARTS} messages and "
                    f"{MAX_RECIPIENTS} recipients"
                )
            return store.deliver_spooled(spooled)

    try:
        return await store.run(deliver)
    except StoreError:
        raise
    except Exception as exc:
        # What the route's server would have answered: HTTP 500, the batch not stored.
        log.exception("delivering a batch to the store of this process failed")
        raise error_from_json(500, {"message": f"the store failed: {exc}"}) from None
