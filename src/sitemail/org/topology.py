"""Topology files: a YAML description of an organization, turned into directory objects.

A topology names sites, site links, servers (with their roles and version),
firewalls, the lab's Internet host, send connectors and users.  Everything
Exchange setup would create (default receive connectors, virtual
directories, POP3/IMAP4 settings) comes from :mod:`sitemail.org.defaults`
unless the file overrides it.

Errors name the file, the line and the field, and say what was expected.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sitemail.org import defaults
from sitemail.org.model import (
    AcceptedDomain,
    ExchangeVersion,
    Firewall,
    InternetHost,
    InternetUser,
    Mailbox,
    MailboxDatabase,
    Model,
    Organization,
    PopImapSettings,
    ReceiveConnector,
    SendConnector,
    Server,
    ServerRole,
    Site,
    SiteLink,
    TransportSettings,
    VirtualDirectory,
    VirtualDirectoryKind,
)
from sitemail.org.passwords import hash_password


class TopologyError(Exception):
    """A topology file that cannot be loaded; the message points at the line."""


_VERSIONS = {
    "2003": ExchangeVersion.E2003,
    "6.5": ExchangeVersion.E2003,
    "2007": ExchangeVersion.E2007,
    "8.3": ExchangeVersion.E2007,
    "2010": ExchangeVersion.E2010,
    "14.3": ExchangeVersion.E2010,
}

_VDIR_KEYS = {
    "owa": VirtualDirectoryKind.OWA,
    "ecp": VirtualDirectoryKind.ECP,
    "eas": VirtualDirectoryKind.EAS,
    "activesync": VirtualDirectoryKind.EAS,
    "ews": VirtualDirectoryKind.EWS,
    "oab": VirtualDirectoryKind.OAB,
    "autodiscover": VirtualDirectoryKind.AUTODISCOVER,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrgSpec(_Strict):
    name: str
    accepted_domains: list[str] = Field(min_length=1)


class SiteSpec(_Strict):
    name: str
    hub_site_enabled: bool = False


class SiteLinkSpec(_Strict):
    name: str
    sites: list[str] = Field(min_length=2)
    cost: int = 100
    exchange_cost: int | None = None


class VdirSpec(_Strict):
    internal_url: str | None = None
    external_url: str | None = None
    forms_authentication: bool | None = None
    basic_authentication: bool | None = None
    windows_authentication: bool | None = None
    cross_site_redirect_type: str | None = None
    legacy_redirect_type: str | None = None
    exchange2003_url: str | None = None


class ServerSpec(_Strict):
    name: str
    site: str
    # The server's own address instead of the lab's loopback one (127.N.0.x): for a
    # server on another machine, which the others must reach there.
    address: str | None = None
    version: str = "2010"
    roles: list[ServerRole] = Field(default_factory=list)
    fqdn: str | None = None
    databases: list[str] = Field(default_factory=list)
    transport: dict[str, Any] = Field(default_factory=dict)
    # Partial receive connectors: a name that matches a default one changes it, others are new.
    receive_connectors: list[dict[str, Any]] = Field(default_factory=list)
    virtual_directories: dict[str, VdirSpec] = Field(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: object) -> str:
        text = str(v).strip()
        if text.split()[0] not in _VERSIONS:
            raise ValueError(
                f"unknown Exchange version {text!r}; expected 2003, 2007 or 2010 "
                "(optionally with a service pack, e.g. '2010 SP3')"
            )
        return text

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise ValueError(f"{v!r} is not an IP address") from None
        return v

    @field_validator("virtual_directories")
    @classmethod
    def _vdir_keys(cls, v: dict[str, VdirSpec]) -> dict[str, VdirSpec]:
        for key in v:
            if key.lower() not in _VDIR_KEYS:
                raise ValueError(
                    f"unknown virtual directory {key!r}; expected one of "
                    + ", ".join(sorted(set(_VDIR_KEYS) - {"activesync"}))
                )
        return v


class FirewallSpec(_Strict):
    name: str
    site: str
    hostname: str | None = None


class InternetUserSpec(_Strict):
    address: str
    password: str


class InternetSpec(_Strict):
    name: str = "INTERNET"
    engine: Literal["sitemail", "postfix"] = "sitemail"
    fqdn: str
    domains: list[str] = Field(min_length=1)
    users: list[InternetUserSpec] = Field(default_factory=list)


class SendConnectorSpec(_Strict):
    name: str
    source_transport_servers: list[str] = Field(min_length=1)
    address_spaces: list[str] = Field(default_factory=lambda: ["SMTP:*;1"])
    smart_hosts: list[str] = Field(default_factory=list)
    dns_routing_enabled: bool | None = None


class UserSpec(_Strict):
    alias: str
    display_name: str | None = None
    database: str
    password: str
    addresses: list[str] = Field(default_factory=list)
    primary_smtp_address: str | None = None


class DirectorySpec(_Strict):
    """Where the lab keeps its directory (``sitemail lab up --directory`` overrides it)."""

    # embedded: directory.db in the lab folder; ldap: a slapd the lab starts, or the
    # LDAP server at ``url`` when one is given.
    backend: Literal["embedded", "ldap"] = "embedded"
    url: str | None = None
    # The managed slapd's suffix; default: the first accepted domain (DC=contoso,DC=com).
    base_dn: str | None = None

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("ldap://", "ldaps://")):
            raise ValueError(f"expected ldap://HOST:PORT/BASE-DN, got {v!r}")
        return v


class LabSpec(_Strict):
    """Settings of the lab's servers that no Exchange console sets."""

    # Seconds between two passes of Exchange 2003's System Attendant over the IIS
    # metabase (LabSettings.system_attendant_interval; default 15 minutes).
    system_attendant_interval: int | None = Field(default=None, gt=0)


class TopologyFile(_Strict):
    organization: OrgSpec
    directory: DirectorySpec = Field(default_factory=DirectorySpec)
    lab: LabSpec = Field(default_factory=LabSpec)
    sites: list[SiteSpec] = Field(min_length=1)
    site_links: list[SiteLinkSpec] = Field(default_factory=list)
    servers: list[ServerSpec] = Field(min_length=1)
    firewalls: list[FirewallSpec] = Field(default_factory=list)
    internet: InternetSpec | None = None
    send_connectors: list[SendConnectorSpec] = Field(default_factory=list)
    users: list[UserSpec] = Field(default_factory=list)


class Topology:
    """A loaded topology: the parsed file, its source, and the directory objects it gives."""

    def __init__(self, spec: TopologyFile, source: str) -> None:
        self.spec = spec
        self.source = source

    # --------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | Path) -> Topology:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise TopologyError(f"{p}: cannot read the topology file ({exc.strerror})") from None
        return cls.parse(text, str(p))

    @classmethod
    def parse(cls, text: str, name: str = "<topology>") -> Topology:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{name}:{mark.line + 1}" if mark is not None else name
            problem = getattr(exc, "problem", None) or str(exc)
            raise TopologyError(f"{where}: not valid YAML: {problem}") from None
        if node is None:
            raise TopologyError(f"{name}: the file is empty; expected an 'organization:' mapping")
        lines: dict[tuple[str | int, ...], int] = {}
        _record_lines(node, (), lines)
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise TopologyError(f"{name}:1: expected a mapping with 'organization:' at the top")
        try:
            spec = TopologyFile.model_validate(data)
        except ValidationError as exc:
            raise TopologyError(_explain(exc, name, lines)) from None
        topo = cls(spec, name)
        topo._check_references(lines)
        return topo

    # ------------------------------------------------------------ validation

    def _fail(self, path: tuple[str | int, ...], message: str, lines: dict[Any, int]) -> None:
        line = _nearest_line(path, lines)
        field = _dotted(path)
        raise TopologyError(f"{self.source}:{line}: {field}: {message}")

    def _check_references(self, lines: dict[Any, int]) -> None:
        s = self.spec
        site_names = {x.name.lower() for x in s.sites}
        for i, link in enumerate(s.site_links):
            for j, site in enumerate(link.sites):
                if site.lower() not in site_names:
                    self._fail(("site_links", i, "sites", j), f"unknown site {site!r}", lines)
        seen: set[str] = set()
        databases: set[str] = set()
        for i, server in enumerate(s.servers):
            if server.site.lower() not in site_names:
                self._fail(
                    ("servers", i, "site"),
                    f"unknown site {server.site!r}; expected one of "
                    + ", ".join(x.name for x in s.sites),
                    lines,
                )
            if server.name.lower() in seen:
                self._fail(("servers", i, "name"), f"server {server.name!r} twice", lines)
            seen.add(server.name.lower())
            for db in server.databases:
                databases.add(db.lower())
            for key in server.transport:
                if key not in TransportSettings.model_fields:
                    self._fail(
                        ("servers", i, "transport", key),
                        "unknown transport setting; expected one of Set-TransportServer's "
                        "(snake_case), e.g. message_expiration_timeout",
                        lines,
                    )
        placed = [i for i, server in enumerate(s.servers) if server.address]
        if placed and s.firewalls:
            self._fail(
                ("servers", placed[0], "address"),
                "a server with an address of its own needs a topology without firewalls (the "
                "lab's firewalls relay between loopback addresses on one machine)",
                lines,
            )
        for i, fw in enumerate(s.firewalls):
            if fw.site.lower() not in site_names:
                self._fail(("firewalls", i, "site"), f"unknown site {fw.site!r}", lines)
        for i, user in enumerate(s.users):
            if user.database.lower() not in databases:
                self._fail(
                    ("users", i, "database"),
                    f"unknown mailbox database {user.database!r}; expected one of "
                    + ", ".join(sorted(db for srv in s.servers for db in srv.databases)),
                    lines,
                )
        for i, sc in enumerate(s.send_connectors):
            for j, name in enumerate(sc.source_transport_servers):
                if name.lower() not in seen:
                    self._fail(
                        ("send_connectors", i, "source_transport_servers", j),
                        f"unknown server {name!r}",
                        lines,
                    )
        # Build once so that model-level errors (bad binding, bad URL) point at the file too.
        try:
            self.objects(hash_passwords=False)
        except (ValueError, ValidationError) as exc:
            raise TopologyError(f"{self.source}: {exc}") from None

    # --------------------------------------------------------------- objects

    def domain(self) -> str:
        return self.spec.organization.accepted_domains[0].lower()

    def base_dn(self) -> str:
        """The directory's base DN: the topology's, else the domain's (DC=contoso,DC=com)."""
        given = self.spec.directory.base_dn
        return given or ",".join(f"DC={label}" for label in self.domain().split("."))

    def fqdn(self, server: ServerSpec) -> str:
        return (server.fqdn or f"{server.name}.{self.domain()}").lower()

    def objects(self, hash_passwords: bool = True) -> list[Model]:
        """Every directory object the topology describes, defaults included."""
        s = self.spec
        out: list[Model] = []
        out.append(
            Organization(
                name=s.organization.name,
                accepted_domains=[
                    AcceptedDomain(domain_name=d, default=(i == 0))
                    for i, d in enumerate(s.organization.accepted_domains)
                ],
            )
        )
        out.extend(Site(name=x.name, hub_site_enabled=x.hub_site_enabled) for x in s.sites)
        if s.internet is not None:
            out.append(Site(name="Internet", internet=True))
        out.extend(
            SiteLink(name=x.name, sites=x.sites, cost=x.cost, exchange_cost=x.exchange_cost)
            for x in s.site_links
        )
        for spec in s.servers:
            out.extend(self._server_objects(spec))
        out.extend(Firewall(name=f.name, site=f.site, hostname=f.hostname) for f in s.firewalls)
        if s.internet is not None:
            net = s.internet
            out.append(
                InternetHost(
                    name=net.name, fqdn=net.fqdn.lower(), domains=net.domains, engine=net.engine
                )
            )
            out.extend(
                InternetUser(
                    address=u.address.lower(),
                    host=net.name,
                    password_hash=hash_password(u.password) if hash_passwords else None,
                )
                for u in net.users
            )
        for sc in s.send_connectors:
            dns = sc.dns_routing_enabled
            out.append(
                SendConnector(
                    name=sc.name,
                    source_transport_servers=sc.source_transport_servers,
                    address_spaces=sc.address_spaces,
                    smart_hosts=sc.smart_hosts,
                    dns_routing_enabled=(not sc.smart_hosts) if dns is None else dns,
                )
            )
        for u in s.users:
            primary = (u.primary_smtp_address or f"{u.alias}@{self.domain()}").lower()
            out.append(
                Mailbox(
                    alias=u.alias,
                    display_name=u.display_name or u.alias.capitalize(),
                    primary_smtp_address=primary,
                    email_addresses=[a.lower() for a in u.addresses if a.lower() != primary],
                    database=self._database_name(u.database),
                    password_hash=hash_password(u.password) if hash_passwords else None,
                )
            )
        return out

    def _database_name(self, name: str) -> str:
        for srv in self.spec.servers:
            for db in srv.databases:
                if db.lower() == name.lower():
                    return db
        return name

    def _server_objects(self, spec: ServerSpec) -> list[Model]:
        version = _VERSIONS[spec.version.split()[0]]
        server = Server(
            name=spec.name,
            fqdn=self.fqdn(spec),
            site=spec.site,
            version=version,
            roles=spec.roles,
            transport=TransportSettings.model_validate(spec.transport),
        )
        out: list[Model] = [server]
        out.extend(MailboxDatabase(name=db, server=spec.name) for db in spec.databases)
        connectors = {c.name.lower(): c for c in defaults.default_receive_connectors(server)}
        for partial in spec.receive_connectors:
            name = str(partial.get("name", ""))
            base = connectors.get(name.lower())
            if base is not None:
                connectors[name.lower()] = ReceiveConnector.model_validate(
                    {**base.model_dump(), **partial}
                )
            else:
                connectors[name.lower()] = ReceiveConnector.model_validate(
                    {"server": spec.name, **partial}
                )
        out.extend(connectors.values())
        # By name: a 2003 server has two of kind OWA (Exchange and Public); a key
        # changes the first of its kind (2003's eas: Microsoft-Server-ActiveSync).
        vdirs = {v.name: v for v in defaults.default_virtual_directories(server)}
        for key, override in spec.virtual_directories.items():
            kind = _VDIR_KEYS[key.lower()]
            base_vdir = next((v for v in vdirs.values() if v.type == kind), None)
            if base_vdir is None:
                raise ValueError(
                    f"server {spec.name}: virtual directory {key!r} needs the ClientAccess role "
                    "on an Exchange 2010 or 2007 server"
                )
            changes = override.model_dump(exclude_unset=True)
            vdirs[base_vdir.name] = VirtualDirectory.model_validate(
                {**base_vdir.model_dump(), **changes}
            )
        out.extend(vdirs.values())
        out.extend(_pop_imap(server))
        return out


def _pop_imap(server: Server) -> list[PopImapSettings]:
    return defaults.default_pop_imap_settings(server)


# ------------------------------------------------------------------- helpers


def _record_lines(node: yaml.Node, path: tuple[str | int, ...], out: dict[Any, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            out[(*path, key)] = key_node.start_mark.line + 1
            _record_lines(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, (*path, i), out)


def _nearest_line(path: tuple[str | int, ...], lines: dict[Any, int]) -> int:
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return 1


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def _explain(exc: ValidationError, name: str, lines: dict[Any, int]) -> str:
    messages = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = _nearest_line(loc, lines)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see examples/seed.yaml)"
        elif err["type"] == "missing":
            msg = "missing field (it is required here)"
        elif err["type"] == "enum" and "expected" in err.get("ctx", {}):
            msg = f"got {err.get('input')!r}; expected {err['ctx']['expected']}"
        messages.append(f"{name}:{line}: {_dotted(loc)}: {msg}")
    return "\n".join(messages)
