"""The mailbox databases one server serves, found through the directory.

The directory says which MailboxDatabase objects live on this server; each
is a file ``<mailbox folder>/<database name>.db``, opened on first use (a
database added to the directory later needs no restart).  A request for a
mailbox whose database is on another server is refused with
:class:`WrongServer`, naming that server.

Database calls block (SQLite), so they run on the backend's own small thread
pool, apart from whatever else the server process runs on the default one.
Change notifications from the databases are handed to the event loop, where
long-polling requests (IMAP IDLE, OWA notifications) wait for them.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TypeVar

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailbox.database import StoreChange, StoreDatabase
from sitemail.mailbox.errors import StoreError, StoreUnavailable, WrongServer
from sitemail.mailbox.limits import DEFAULT_MAX_MESSAGE_SIZE
from sitemail.mailbox.locate import MailboxLocation, MailboxLocator
from sitemail.mailbox.records import DeliveryResult
from sitemail.org.cached_directory import DerivedCache
from sitemail.org.directory import Directory
from sitemail.org.model import MailboxDatabase

T = TypeVar("T")

#: A request body up to this size is spooled in memory, a larger one in a file.  A hub's
#: batch holds at most 100 parts (delivery_batch.MAX_PARTS): 6.4 MiB per request at most.
SPOOL_IN_MEMORY = 64 * 1024

#: Worker threads per server for database calls (SQLite has one writer anyway).
DEFAULT_WORKERS = 8


class StoreBackend:
    """This server's mailbox databases, resolved and opened on demand."""

    def __init__(
        self,
        server: str,
        directory: Directory,
        mailbox_dir: Path,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.server = server
        self.directory = directory
        self.mailbox_dir = Path(mailbox_dir)
        self._spool_ready = False
        self.max_message_size = max_message_size
        self.locator = MailboxLocator(directory)
        self._places: DerivedCache[str, tuple[StoreDatabase, MailboxLocation]] = DerivedCache(
            directory
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._databases: dict[str, StoreDatabase] = {}
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"store-{server}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._stopping = False

    # ---------------------------------------------------------------- threads

    async def run(self, fn: Callable[[], T]) -> T:
        """Run a blocking store call on the backend's threads."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        return await loop.run_in_executor(self._executor, fn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for database in self._databases.values():
                database.close()
            self._databases.clear()

    # -------------------------------------------------------------- databases

    def database_names(self) -> list[str]:
        """The MailboxDatabase objects the directory puts on this server."""
        return [
            d.name
            for d in self.directory.list(MailboxDatabase)
            if d.server.lower() == self.server.lower()
        ]

    def open_all(self) -> list[StoreDatabase]:
        """Open every database of this server now (at service start), creating missing files."""
        return [self.database(name) for name in self.database_names()]

    def database(self, name: str) -> StoreDatabase:
        with self._lock:
            found = self._databases.get(name.lower())
            if found is None:
                found = StoreDatabase(
                    database_file(self.mailbox_dir, name),
                    name=name,
                    clock=self._clock,
                    max_message_size=self.max_message_size,
                )
                found.subscribe(self._changed)
                self._databases[name.lower()] = found
            return found

    def open_databases(self) -> list[StoreDatabase]:
        with self._lock:
            return list(self._databases.values())

    async def place(self, mailbox: str) -> tuple[StoreDatabase, MailboxLocation]:
        """:meth:`resolve` on the backend's threads, or at once when the directory cache
        already answered it under its current counter (no thread hop per request)."""
        counter, known = self._places.get(mailbox)
        if known is not None:
            return known
        found = await self.run(lambda: self.resolve(mailbox))
        self._places.put(mailbox, counter, found)
        return found

    def resolve(self, mailbox: str) -> tuple[StoreDatabase, MailboxLocation]:
        """The database holding ``mailbox`` here; WrongServer if it is held elsewhere."""
        where = self.locator.locate(mailbox)
        if where.server is None:
            raise WrongServer(
                f"mailbox {where.alias} has database {where.database}, which is not in the "
                "directory: fix the mailbox's database (homeMDB)",
                mailbox=where.alias,
                database=where.database,
                server=None,
            )
        if where.server.lower() != self.server.lower():
            raise WrongServer(
                f"mailbox {where.alias} is in database {where.database} on server "
                f"{where.server}, not on {self.server}: ask {where.server}",
                mailbox=where.alias,
                database=where.database,
                server=where.server,
            )
        return self.database(where.database), where

    def deliver_spooled(
        self, spooled: Sequence[tuple[IO[bytes] | StoreError, Sequence[tuple[str, str]]]]
    ) -> list[DeliveryResult | StoreError]:
        """A hub's delivery batch (POST /deliveries, or a hub of this same process):
        each body with its (mailbox, delivery id) pairs, or the error that refused it.

        Each recipient is resolved here, then one ``deliver_many`` per database (one
        transaction each); one answer per recipient, in order.
        """
        answers: list[DeliveryResult | StoreError | None] = []
        groups: dict[str, tuple[StoreDatabase, list[tuple[int, str, str, IO[bytes]]]]] = {}
        for body, recipients in spooled:
            for mailbox, delivery_id in recipients:
                index = len(answers)
                answers.append(None)
                if isinstance(body, StoreError):
                    answers[index] = body
                    continue
                try:
                    db, where = self.resolve(mailbox)
                except StoreError as exc:
                    answers[index] = exc
                    continue
                group = groups.setdefault(where.database.lower(), (db, []))
                group[1].append((index, where.alias, delivery_id, body))
        for db, items in groups.values():
            for *_, body in items:
                body.seek(0)  # a body read for another database starts over
            results = db.deliver_many([(alias, did, body) for _, alias, did, body in items])
            for (index, *_), result in zip(items, results, strict=True):
                answers[index] = result
        return [a for a in answers if a is not None]

    def spool_file(self) -> IO[bytes]:
        """An anonymous temporary file for a request body (gone when closed or on a crash).

        Bodies up to :data:`SPOOL_IN_MEMORY` stay in memory: a new file per delivered
        message cost the hub's process more than anything else of the delivery (ext4
        allocating an inode for each, under a lock, and freeing it again).  Nothing here
        is durable either way: the store's commit is, and a larger body still goes to
        a file.  Cheap enough to call on the event loop until it rolls over.
        """
        if not self._spool_ready:
            (self.mailbox_dir / "spool").mkdir(parents=True, exist_ok=True)
            self._spool_ready = True
        return tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, dir=str(self.mailbox_dir / "spool"))

    # ------------------------------------------------------------ notifications

    def _changed(self, change: StoreChange) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, change.mailbox)

    def _wake(self, mailbox: str) -> None:
        for event in self._watchers.get(mailbox, ()):
            event.set()

    def watch(self, mailbox: str) -> asyncio.Event:
        """An event set at the next change of the mailbox (pass it to :meth:`unwatch`)."""
        self._loop = asyncio.get_running_loop()
        event = asyncio.Event()
        if self._stopping:
            event.set()
        self._watchers.setdefault(mailbox, set()).add(event)
        return event

    def wake_all(self) -> None:
        """End every long poll now and from now on (the service is stopping)."""
        self._stopping = True
        for events in self._watchers.values():
            for event in events:
                event.set()

    def unwatch(self, mailbox: str, event: asyncio.Event) -> None:
        events = self._watchers.get(mailbox)
        if events is not None:
            events.discard(event)
            if not events:
                del self._watchers[mailbox]


def database_file(mailbox_dir: Path, name: str) -> Path:
    """``<mailbox folder>/<DB>.db``, refusing names that are not plain file names."""
    if (
        not name.strip()
        or name in (".", "..")
        or any(c in name for c in "/\\\0")
        or len(name.encode()) > 200
    ):
        raise StoreUnavailable(
            f"mailbox database name {name[:80]!r} cannot be a file name: rename the database "
            "(no slashes, at most 200 bytes)"
        )
    return Path(mailbox_dir) / f"{name}.db"
