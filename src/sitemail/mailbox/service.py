"""``MSExchangeIS``, the Microsoft Exchange Information Store service of a Mailbox server.

Starting it opens the mailbox databases the directory puts on this server
(``<server home>/mailbox/<DB>.db``) and serves the store API over HTTPS on
(address, port) with the server's own certificate, with the Calendar
Attendant (:mod:`.calendar_attendant`) on the databases' changes.  Stopping it (or
``Restart-Service MSExchangeIS``) closes the listener and the databases;
nothing is lost, since every change was committed when it was acknowledged.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailbox.calendar_attendant import CalendarAttendant
from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.limits import DEFAULT_MAX_MESSAGE_SIZE
from sitemail.mailbox.store_api import StoreServer, store_ssl_context
from sitemail.mailbox.store_backend import StoreBackend
from sitemail.org.directory import Directory
from sitemail.org.pki import PeerVerifier, ca_cert_file, server_cert_files
from sitemail.server.context import ProcessContext
from sitemail.server.services import DISPLAY_NAMES

SERVICE_NAME = "MSExchangeIS"


class InformationStoreService:
    """The store of one Mailbox server: its databases and the store API."""

    name = SERVICE_NAME
    display_name = DISPLAY_NAMES[SERVICE_NAME]  # "Microsoft Exchange Information Store"

    def __init__(
        self,
        server: str,
        directory: Directory,
        home: Path,
        *,
        address: str,
        port: int,
        pki_dir: Path,
        clock: Clock = SYSTEM_CLOCK,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        calendar_attendant: bool = True,
    ) -> None:
        self.server = server
        self.calendar_attendant = calendar_attendant
        self.directory = directory
        self.mailbox_dir = Path(home) / "mailbox"
        self.address = address
        self.port = port
        self.pki_dir = Path(pki_dir)
        self._clock = clock
        self._max_message_size = max_message_size
        self._backend: StoreBackend | None = None
        self._site: StoreServer | None = None
        self._attendant: CalendarAttendant | None = None

    @classmethod
    def from_context(
        cls, ctx: ProcessContext, port: int, *, calendar_attendant: bool = True
    ) -> InformationStoreService:
        """The service of the server process described by ``ctx``, on ``ctx.address:port``."""
        return cls(
            ctx.name,
            ctx.directory,
            ctx.home,
            address=ctx.address,
            port=port,
            pki_dir=ctx.pki_dir,
            clock=ctx.clock,
            calendar_attendant=calendar_attendant,
        )

    @property
    def backend(self) -> StoreBackend | None:
        """The running store (databases, directory resolution), or None when stopped."""
        return self._backend

    @property
    def attendant(self) -> CalendarAttendant | None:
        """The Calendar Attendant of the running store (meeting messages into calendars)."""
        return self._attendant

    def databases(self) -> list[StoreDatabase]:
        """The databases open now (for in-process users such as Mail Submission)."""
        return [] if self._backend is None else self._backend.open_databases()

    async def start(self) -> None:
        if self._backend is not None:
            return
        backend = StoreBackend(
            self.server,
            self.directory,
            self.mailbox_dir,
            clock=self._clock,
            max_message_size=self._max_message_size,
        )
        try:
            await backend.run(backend.open_all)
            ca_file = ca_cert_file(self.pki_dir)
            tls = store_ssl_context(server_cert_files(self.pki_dir, self.server), ca_file)
            verifier = PeerVerifier.from_file(ca_file, clock=self._clock)
            site = StoreServer(backend, verifier, self.address, self.port, tls)
            await site.start()
        except BaseException:
            await asyncio.to_thread(backend.close)
            raise
        attendant = CalendarAttendant(backend) if self.calendar_attendant else None
        if attendant is not None:
            await attendant.start()
        self.port = site.port
        self._backend, self._site, self._attendant = backend, site, attendant

    async def stop(self) -> None:
        site, backend, attendant = self._site, self._backend, self._attendant
        self._site = self._backend = self._attendant = None
        if site is not None:
            await site.stop()
        if attendant is not None:
            await attendant.stop()
        if backend is not None:
            await asyncio.to_thread(backend.close)
