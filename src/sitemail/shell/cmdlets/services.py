"""What the Exchange cmdlets work with: the directory, the lab, and the servers' admin API.

A shell runs "on" one server, as the Exchange Management Shell runs on (or
is connected to) one: Test-NetConnection connects from its address,
Get-Service and Restart-Service act on it unless told otherwise.  By default
it is the first Exchange 2010 server the lab started (EX-NY1 in the seed);
``sitemail shell --server NAME`` chooses another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sitemail.org.directory import Directory
from sitemail.org.model import (
    ExchangeVersion,
    InternetHost,
    LabSettings,
    NetworkPath,
    Organization,
    Server,
)
from sitemail.org.ports import ADMIN_PORT
from sitemail.shell import CmdletError
from sitemail.shell.operators import has_wildcard, wildcard_match

from .admin_client import AdminClient, AdminError

T = TypeVar("T")


def not_found(identity: str) -> str:
    """Exchange's wording when an identity names nothing."""
    return f"The operation couldn't be performed because object '{identity}' couldn't be found."


def ambiguous(identity: str) -> str:
    return f"The operation couldn't be performed because '{identity}' matches multiple entries."


def matches(pattern: str, *names: str) -> bool:
    """Identity match: any of ``names``, any case, with ``*`` wildcards."""
    if has_wildcard(pattern):
        return any(wildcard_match(pattern, n) for n in names)
    key = pattern.casefold()
    return any(n.casefold() == key for n in names)


def pick_one(identity: str, found: Iterable[T]) -> T:
    """The single object an identity names, or Exchange's not-found/ambiguous error."""
    hits = list(found)
    if not hits:
        raise CmdletError(not_found(identity))
    if len(hits) > 1:
        raise CmdletError(ambiguous(identity))
    return hits[0]


@dataclass
class ExchangeServices:
    directory: Directory
    lab_dir: Path
    admin: AdminClient
    local_server_name: str | None = None
    _order: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ organization

    def organization(self) -> Organization:
        orgs = self.directory.list(Organization)
        if not orgs:
            raise CmdletError(f"The directory of the lab in {self.lab_dir} holds no organization.")
        return orgs[0]

    @property
    def domain(self) -> str:
        """The forest's domain, in canonical names (``contoso.com/Configuration/Sites/NY``)."""
        return self.organization().default_domain

    def site_path(self, site: str) -> str:
        return f"{self.domain}/Configuration/Sites/{site}"

    def port(self, exchange_port: int) -> int:
        """The port a lab process really listens on for an Exchange port (the lab may shift)."""
        settings = self.directory.get(LabSettings, "lab")
        return exchange_port + (settings.port_offset if settings else 0)

    # ----------------------------------------------------------------- servers

    def servers(self) -> list[Server]:
        """Every server, in the order the lab started them (then by name)."""
        order = {name.casefold(): i for i, name in enumerate(self._lab_order())}
        return sorted(
            self.directory.list(Server),
            key=lambda s: (order.get(s.name.casefold(), len(order)), s.name.casefold()),
        )

    def hubs(self) -> list[Server]:
        """The Exchange 2010 Hub Transport servers (those with queues and tracking logs)."""
        return [s for s in self.servers() if s.is_hub]

    def server(self, identity: str) -> Server:
        """A server by name or FQDN (``EX-FL1``, ``ex-fl1.contoso.com``)."""
        return pick_one(identity, (s for s in self.servers() if matches(identity, s.name, s.fqdn)))

    def local_server(self) -> Server:
        if self.local_server_name:
            return self.server(self.local_server_name)
        for server in self.servers():
            if server.version is ExchangeVersion.E2010:
                return server
        raise CmdletError("The organization has no Exchange 2010 server to run the shell on.")

    def address(self, server: Server) -> str:
        if not server.address:
            raise CmdletError(f"Server {server.name} has no address in the directory.")
        return server.address

    def reach(self, source: Server, host: str) -> tuple[str, str]:
        """(name, address) at which ``source`` reaches ``host``: a server or the Internet host,
        by name, FQDN or address, through the firewalls when it is in another site."""
        for server in self.servers():
            if matches(host, server.name, server.fqdn, *server.addresses):
                path = self.directory.get(NetworkPath, f"{source.site}->{server.name}")
                if path is not None and server.site != source.site:
                    return server.name, path.address
                return server.name, self.address(server)
        for outside in self.directory.list(InternetHost):
            if outside.address and matches(host, outside.name, outside.fqdn, outside.address):
                path = self.directory.get(NetworkPath, f"{source.site}->{outside.name}")
                return outside.name, path.address if path is not None else outside.address
        raise CmdletError(
            f"Name resolution of {host} failed -- no server or Internet host of the organization "
            "has that name, FQDN or address."
        )

    # --------------------------------------------------------------- admin API

    def admin_get(self, server: Server, path: str) -> object:
        return self._admin(server, path, None)

    def admin_post(self, server: Server, path: str, body: dict[str, object]) -> object:
        return self._admin(server, path, body)

    def _admin(self, server: Server, path: str, body: dict[str, object] | None) -> object:
        address, port = self.address(server), self.port(ADMIN_PORT)
        if body is None:
            return self.admin.get(server.name, address, port, path)
        return self.admin.post(server.name, address, port, path, body)

    def _lab_order(self) -> list[str]:
        if not self._order:
            try:
                state = json.loads((self.lab_dir / "lab.json").read_text(encoding="utf-8"))
                self._order = [str(p["name"]) for p in state.get("processes", [])]
            except (OSError, ValueError, KeyError, TypeError):
                self._order = []
        return self._order


__all__ = [
    "AdminError",
    "ExchangeServices",
    "ambiguous",
    "matches",
    "not_found",
    "pick_one",
]
