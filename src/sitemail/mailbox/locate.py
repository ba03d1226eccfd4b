"""Where a mailbox lives: mailbox -> homeMDB (database) -> server (spec 6.1, 8.2).

Both sides of the store API use this: the client to find the server to
call, the server to refuse a mailbox that is not its own.  A mailbox is
named by its alias or by any of its SMTP addresses (a hub knows the
recipient address, OWA the alias).  The directory has no index by address,
so one is built and kept until the directory's change counter moves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sitemail.mailbox.errors import MailboxNotFound
from sitemail.org.directory import Directory
from sitemail.org.model import Mailbox, MailboxDatabase, Server


@dataclass(frozen=True)
class MailboxLocation:
    """A mailbox, its database, and the server holding that database (if the directory says)."""

    alias: str
    primary_smtp_address: str
    database: str
    server: str | None
    server_fqdn: str | None


class MailboxLocator:
    """Resolves mailboxes through the directory; safe to share between threads."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._counter = -1
        self._by_address: dict[str, str] = {}

    def locate(self, mailbox: str) -> MailboxLocation:
        """The location of ``mailbox`` (alias or address); MailboxNotFound if there is none."""
        found = self._find(mailbox.strip())
        if found is None:
            raise MailboxNotFound(
                f"no mailbox {mailbox[:320]!r} in the directory: give a mailbox alias or "
                "one of its e-mail addresses"
            )
        database = self._directory.get(MailboxDatabase, found.database)
        server = None if database is None else self._directory.get(Server, database.server)
        return MailboxLocation(
            alias=found.alias,
            primary_smtp_address=found.primary_smtp_address,
            database=found.database,
            server=None if database is None else database.server,
            server_fqdn=None if server is None else server.fqdn,
        )

    def _find(self, name: str) -> Mailbox | None:
        if not name:
            return None
        by_alias = self._directory.get(Mailbox, name)
        if by_alias is not None:
            return by_alias
        if "@" not in name:
            return None
        alias = self._address_index().get(name.lower())
        return None if alias is None else self._directory.get(Mailbox, alias)

    def _address_index(self) -> dict[str, str]:
        counter = self._directory.change_counter()
        with self._lock:
            if counter != self._counter:
                index: dict[str, str] = {}
                for mailbox in self._directory.list(Mailbox):
                    for address in mailbox.all_addresses:
                        index.setdefault(address.lower().removeprefix("smtp:"), mailbox.alias)
                self._by_address, self._counter = index, counter
            return self._by_address
