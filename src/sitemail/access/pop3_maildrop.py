"""A POP3 maildrop: the Inbox of a mailbox as one session sees it, through the store API.

POP3 numbers the messages once, when the session signs in (RFC 1939): the
Inbox is listed then, in UID order (delivery order), and later deliveries
wait for the next session.  ``UIDL`` is the store's message id, which is
never reused in a database and does not change when the message moves, so
a client that keeps mail on the server downloads each message once.
Messages marked with DELE are removed when the session ends with QUIT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sitemail.mailbox.errors import MessageNotFound
from sitemail.mailbox.records import WellKnownFolder
from sitemail.mailbox.store_client import StoreClient

#: Messages listed per store request, and at most in one maildrop.
PAGE = 1000
MAX_MESSAGES = 50_000

Sink = Callable[[bytes], Awaitable[None]]


@dataclass
class DropMessage:
    number: int
    message_id: int
    size: int
    deleted: bool = False

    @property
    def unique_id(self) -> str:
        return str(self.message_id)


class Maildrop:
    def __init__(self, store: StoreClient, mailbox: str, messages: list[DropMessage]) -> None:
        self.store = store
        self.mailbox = mailbox
        self.messages = messages

    @classmethod
    async def open(cls, store: StoreClient, mailbox: str) -> Maildrop:
        found = []
        offset = 0
        while offset < MAX_MESSAGES:
            page = await store.list_messages(
                mailbox, WellKnownFolder.INBOX.value, offset=offset, limit=PAGE, oldest_first=True
            )
            found.extend(page.items)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                break
        found.sort(key=lambda m: m.uid)
        messages = [DropMessage(i + 1, m.id, m.size) for i, m in enumerate(found)]
        return cls(store, mailbox, messages)

    def get(self, number: int) -> DropMessage | None:
        """Message ``number``, or None when there is none or it is marked deleted."""
        if 1 <= number <= len(self.messages):
            message = self.messages[number - 1]
            return None if message.deleted else message
        return None

    def live(self) -> list[DropMessage]:
        return [m for m in self.messages if not m.deleted]

    def stat(self) -> tuple[int, int]:
        live = self.live()
        return len(live), sum(m.size for m in live)

    def reset(self) -> None:
        for message in self.messages:
            message.deleted = False

    async def retrieve(self, message: DropMessage, sink: Sink) -> None:
        async with self.store.open_raw(self.mailbox, message.message_id) as stream:
            async for chunk in stream:
                await sink(chunk)

    async def top(self, message: DropMessage, lines: int, sink: Sink) -> None:
        """The header, the empty line, and the first ``lines`` lines of the body."""
        in_body = False
        sent_lines = 0
        pending = b""
        async with self.store.open_raw(self.mailbox, message.message_id) as stream:
            async for chunk in stream:
                pending += chunk
                out = bytearray()
                while True:
                    end = pending.find(b"\n")
                    if end < 0:
                        break
                    line, pending = pending[: end + 1], pending[end + 1 :]
                    if in_body:
                        if sent_lines >= lines:
                            await sink(bytes(out))
                            return
                        sent_lines += 1
                    elif line in (b"\r\n", b"\n"):
                        in_body = True
                    out += line
                await sink(bytes(out))
            if pending and (not in_body or sent_lines < lines):
                await sink(pending)

    async def commit(self) -> int:
        """Remove the messages marked deleted (QUIT in TRANSACTION); returns how many."""
        removed = 0
        for message in self.messages:
            if message.deleted:
                # Already gone (another session, or the user) is as good as removed.
                with contextlib.suppress(MessageNotFound):
                    await self.store.delete(self.mailbox, message.message_id, hard=True)
                removed += 1
        return removed
