"""The part of the directory a Client Access decision reads (spec 8.2), as one immutable value.

The decision is a pure function, so it does not query a live directory:
the caller takes a snapshot (:meth:`AccessDirectory.read` or
:meth:`AccessDirectory.from_objects`) and passes it in.  Names compare
case-insensitively, as identities do in Active Directory; every list this
view returns is sorted by name so that choices are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, cast

from sitemail.access.outcomes import ClientProtocol, Error, ErrorReason
from sitemail.org.directory import Directory
from sitemail.org.model import (
    ExchangeVersion,
    Mailbox,
    MailboxDatabase,
    PopImapSettings,
    Server,
    ServerRole,
    VirtualDirectory,
    VirtualDirectoryKind,
)

#: Lookups one snapshot keeps (:attr:`AccessDirectory.memo`).
MEMO_SIZE = 4096


def _key(name: str) -> str:
    return name.casefold()


@dataclass(frozen=True, slots=True)
class AccessDirectory:
    """Servers, mailbox databases, virtual directories and POP3/IMAP4 settings."""

    servers: tuple[Server, ...]
    databases: tuple[MailboxDatabase, ...]
    virtual_directories: tuple[VirtualDirectory, ...]
    pop_imap_settings: tuple[PopImapSettings, ...] = ()
    #: What lookups found in this snapshot (it never changes; a new directory state
    #: is a new snapshot), bounded by :data:`MEMO_SIZE`.
    memo: dict[object, object] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def remember(self, key: object, value: object) -> None:
        """Keep ``value`` under ``key`` in :attr:`memo` while it has room (keys may come from
        requests, e.g. a Host header: the memo must not grow with them)."""
        if len(self.memo) < MEMO_SIZE:
            self.memo[key] = value

    @classmethod
    def from_objects(cls, objects: Iterable[object]) -> AccessDirectory:
        """Pick the relevant objects out of any mix (e.g. ``Topology.objects()``)."""
        items = list(objects)
        return cls(
            servers=tuple(o for o in items if isinstance(o, Server)),
            databases=tuple(o for o in items if isinstance(o, MailboxDatabase)),
            virtual_directories=tuple(o for o in items if isinstance(o, VirtualDirectory)),
            pop_imap_settings=tuple(o for o in items if isinstance(o, PopImapSettings)),
        )

    @classmethod
    def read(cls, directory: Directory) -> AccessDirectory:
        """A snapshot of a live directory (the only I/O in this package's decision path)."""
        return cls(
            servers=tuple(directory.list(Server)),
            databases=tuple(directory.list(MailboxDatabase)),
            virtual_directories=tuple(directory.list(VirtualDirectory)),
            pop_imap_settings=tuple(directory.list(PopImapSettings)),
        )

    # ------------------------------------------------------------- lookups

    def server(self, name: str) -> Server | None:
        by_name = cast("dict[str, Server] | None", self.memo.get("servers"))
        if by_name is None:
            by_name = {}
            for s in self.servers:
                by_name.setdefault(_key(s.name), s)  # the first of a name, as before
            self.memo["servers"] = by_name
        return by_name.get(_key(name))

    def database(self, name: str) -> MailboxDatabase | None:
        k = _key(name)
        key = ("database", k)
        if key in self.memo:
            return cast("MailboxDatabase | None", self.memo[key])
        found = next((d for d in self.databases if _key(d.name) == k), None)
        self.remember(key, found)
        return found

    def vdirs(self, server: str, kind: VirtualDirectoryKind) -> list[VirtualDirectory]:
        k = _key(server)
        key = ("vdirs", k, kind)
        kept = cast("tuple[VirtualDirectory, ...] | None", self.memo.get(key))
        if kept is None:
            found = [v for v in self.virtual_directories if _key(v.server) == k and v.type == kind]
            kept = tuple(sorted(found, key=lambda v: _key(v.name)))
            self.remember(key, kept)
        return list(kept)

    def vdir(self, server: str, kind: VirtualDirectoryKind) -> VirtualDirectory | None:
        """The server's virtual directory of that kind (the first by name if several)."""
        found = self.vdirs(server, kind)
        return found[0] if found else None

    def pop_imap(self, server: str, protocol: Literal["POP3", "IMAP4"]) -> PopImapSettings | None:
        k = _key(server)
        return next(
            (p for p in self.pop_imap_settings if _key(p.server) == k and p.protocol == protocol),
            None,
        )

    def client_access_servers(
        self, version: ExchangeVersion, site: str | None = None
    ) -> list[Server]:
        """Client Access servers of that version (in that site), sorted by name."""
        key = ("client_access_servers", version, None if site is None else _key(site))
        kept = cast("tuple[Server, ...] | None", self.memo.get(key))
        if kept is None:
            found = [
                s
                for s in self.servers
                if s.has_role(ServerRole.CLIENT_ACCESS)
                and s.version == version
                and (site is None or _key(s.site) == _key(site))
            ]
            kept = tuple(sorted(found, key=lambda s: _key(s.name)))
            self.remember(key, kept)
        return list(kept)


@dataclass(frozen=True, slots=True)
class MailboxLocation:
    """homeMDB -> database -> server -> site and version (spec 8.2)."""

    mailbox: Mailbox
    database: MailboxDatabase
    server: Server

    @property
    def site(self) -> str:
        return self.server.site

    @property
    def version(self) -> ExchangeVersion:
        return self.server.version


@dataclass(frozen=True, slots=True)
class LocationFault:
    """Why a mailbox cannot be located: which step of the lookup failed."""

    step: Literal["homeMDB", "database", "server"]
    name: str  # the database or server name that was not found ('' for homeMDB)


def locate(directory: AccessDirectory, mailbox: Mailbox) -> MailboxLocation | LocationFault:
    """Follow the mailbox's homeMDB to its server, or say which link is missing."""
    if not mailbox.database.strip():
        return LocationFault("homeMDB", "")
    database = directory.database(mailbox.database)
    if database is None:
        return LocationFault("database", mailbox.database)
    server = directory.server(database.server)
    if server is None:
        return LocationFault("server", database.server)
    return MailboxLocation(mailbox, database, server)


def location_error(protocol: ClientProtocol, mailbox: Mailbox, fault: LocationFault) -> Error:
    """The Error a failed :func:`locate` gives, in the words an administrator needs."""
    who = mailbox.alias
    if fault.step == "homeMDB":
        return Error(
            protocol=protocol,
            reason=ErrorReason.NO_HOME_MDB,
            message=(
                f"No mailbox database is set for {who} (homeMDB is empty), so the Client Access "
                f"server cannot find the mailbox; give it one with Set-Mailbox {who} -Database "
                "<database>, or move the mailbox."
            ),
        )
    if fault.step == "database":
        return Error(
            protocol=protocol,
            reason=ErrorReason.DATABASE_NOT_FOUND,
            message=(
                f"The mailbox database {fault.name} of {who} (homeMDB) is not in the directory, "
                "so the Client Access server cannot find the mailbox; check Get-MailboxDatabase, "
                "or move the mailbox to a database that exists."
            ),
        )
    return Error(
        protocol=protocol,
        reason=ErrorReason.MAILBOX_SERVER_NOT_FOUND,
        message=(
            f"The mailbox database of {who} is on server {fault.name}, which is not in the "
            "directory, so the Client Access server cannot find the mailbox's site; check "
            "Get-ExchangeServer, or move the mailbox."
        ),
        server=fault.name,
    )
