"""Where each object lives in an LDAP directory, and the Active Directory attributes it shows.

The tree is Exchange 2010's in Active Directory (``BASE`` is the domain, say
``DC=contoso,DC=com``; ``ORG`` is the Exchange organization's container)::

    CN=<alias>,CN=Users,BASE                                      Mailbox (user)
    CN=<site>,CN=Sites,CN=Configuration,BASE                      Site
    CN=<link>,CN=IP,CN=Inter-Site Transports,CN=Sites,...         SiteLink
    ORG = CN=<org>,CN=Microsoft Exchange,CN=Services,CN=Configuration,BASE
    CN=<domain>,CN=Accepted Domains,CN=Transport Settings,ORG     accepted domains
    AG  = CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups,ORG
    CN=<server>,CN=Servers,AG                                     Server
    CN=<name>,CN=SMTP Receive Connectors,CN=Protocols,CN=<server>,CN=Servers,AG
    CN=<name>,CN=HTTP,CN=Protocols,CN=<server>,CN=Servers,AG      VirtualDirectory
    CN=POP3|IMAP4,CN=Protocols,CN=<server>,CN=Servers,AG          PopImapSettings
    CN=<db>,CN=Databases,AG                                       MailboxDatabase
    CN=<name>,CN=Connections,CN=Exchange Routing Group (DWBGZMFD01QNBJR),CN=Routing Groups,AG
    CN=<kind>,CN=sitemail,CN=Services,CN=Configuration,BASE       what AD has no place for
    CN=Change Log,CN=sitemail,...                                 change counter, change sets

An object's DN follows from its kind and identity alone, so a read is one
base-scope lookup.  Every entry sitemail writes carries ``sitemailKind``,
``sitemailIdentity`` and ``sitemailObject`` (the whole object as JSON, what is
read back); the AD attributes beside them are written from the object for
people and tools (ldapsearch, an LDAP browser) and never read.

A parent that does not exist yet (the server of a receive connector written
before its server) is created as an empty placeholder of the class it would
have; a placeholder holds no ``sitemailKind``, so no read finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ldap3.utils.dn import parse_dn

from sitemail.org.lockout import AccountLockout
from sitemail.org.model import (
    AcceptedDomain,
    AuthMechanism,
    ExchangeVersion,
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
    VirtualDirectory,
    VirtualDirectoryKind,
)

M = TypeVar("M", bound=Model)
#: Reads another object while an entry is built (a mailbox's database, to name its server).
Lookup = Callable[[type[M], str], M | None]

ADMIN_GROUP = "Exchange Administrative Group (FYDIBOHF23SPDLT)"
ROUTING_GROUP = "Exchange Routing Group (DWBGZMFD01QNBJR)"
#: msExchVersion as Exchange writes it on its objects (none on Exchange 2003's).
MS_EXCH_VERSION = {ExchangeVersion.E2010: 44220983382016, ExchangeVersion.E2007: 4535486012416}
#: msExchCurrentServerRoles bits.
ROLE_BITS = {ServerRole.MAILBOX: 2, ServerRole.CLIENT_ACCESS: 4, ServerRole.HUB_TRANSPORT: 32}
#: msExchSmtpReceiveSecurityFlags bits, one per AuthMechanism flag (the schema names them).
AUTH_BITS = {
    AuthMechanism.TLS: 1,
    AuthMechanism.INTEGRATED: 2,
    AuthMechanism.BASIC_AUTH: 4,
    AuthMechanism.BASIC_AUTH_REQUIRE_TLS: 8,
    AuthMechanism.EXCHANGE_SERVER: 16,
    AuthMechanism.EXTERNAL_AUTHORITATIVE: 32,
}
VDIR_CLASS = {
    VirtualDirectoryKind.OWA: "msExchOWAVirtualDirectory",
    VirtualDirectoryKind.ECP: "msExchECPVirtualDirectory",
    VirtualDirectoryKind.EAS: "msExchMobileVirtualDirectory",
    VirtualDirectoryKind.EWS: "msExchWebServicesVirtualDirectory",
    VirtualDirectoryKind.OAB: "msExchOABVirtualDirectory",
    VirtualDirectoryKind.AUTODISCOVER: "msExchAutoDiscoverVirtualDirectory",
    # Exchange 2003's /OMA has no class of its own in sitemail's schema.
    VirtualDirectoryKind.OMA: "msExchVirtualDirectory",
}
#: Seconds between 1601-01-01 (Windows FILETIME's origin) and 1970-01-01.
_FILETIME_EPOCH = 11_644_473_600


def filetime(epoch_seconds: float) -> int:
    """AD's time format (badPasswordTime, lockoutTime): 100 ns ticks since 1601; 0 stays 0."""
    if not epoch_seconds:
        return 0
    return int((epoch_seconds + _FILETIME_EPOCH) * 10_000_000)


@dataclass
class Entry:
    """One entry to write: every attribute its class may hold, ``[]`` for those it has not."""

    dn: str
    classes: list[str]  # the structural class first
    attrs: dict[str, list[str]] = field(default_factory=dict)


def rdn(value: str) -> str:
    """``CN=<value>`` with the value escaped as RFC 4514 allows.

    Every special character is escaped wherever it stands (also ``#`` inside a
    value, which ldap3's own DN checks insist on).
    """
    last = len(value) - 1

    def escaped(i: int, c: str) -> str:
        if c in _SPECIAL or (c == " " and i in (0, last)):
            return "\\" + c
        return "\\00" if c == "\0" else c

    return "CN=" + "".join(escaped(i, c) for i, c in enumerate(value))


_SPECIAL = frozenset('\\,+"<>;=#')


def same_dn(a: str, b: str) -> bool:
    """DNs compare without case and without escaping differences (as cn does in AD)."""
    try:
        return dn_parts(a) == dn_parts(b)
    except Exception:  # a DN ldap3 cannot parse equals nothing
        return False


def is_under(dn: str, context: str) -> bool:
    """Whether ``dn`` is ``context`` or below it."""
    try:
        d, c = dn_parts(dn), dn_parts(context)
    except Exception:  # an unparsable DN is under nothing
        return False
    return len(d) >= len(c) and d[len(d) - len(c) :] == c


def dn_parts(dn: str) -> list[tuple[str, str]]:
    """A DN's (type, value) pairs without case, for comparing."""
    return [(t.lower(), v.lower()) for t, v, _ in parse_dn(dn, escape=False)]


def parent_dn(dn: str) -> str:
    parts = parse_dn(dn, escape=False)
    return "".join(f"{t}={v}{sep}" for t, v, sep in parts[1:])


class Layout:
    """The DNs of one directory: its base DN and its Exchange organization's name."""

    def __init__(self, base: str, organization: str) -> None:
        self.base = base
        self.organization = organization
        self.users = f"CN=Users,{base}"
        self.config = f"CN=Configuration,{base}"
        self.services = f"CN=Services,{self.config}"
        self.exchange = f"CN=Microsoft Exchange,{self.services}"
        self.org = f"{rdn(organization)},{self.exchange}"
        self.admin_group = f"{rdn(ADMIN_GROUP)},CN=Administrative Groups,{self.org}"
        self.servers = f"CN=Servers,{self.admin_group}"
        self.databases = f"CN=Databases,{self.admin_group}"
        self.connections = (
            f"CN=Connections,{rdn(ROUTING_GROUP)},CN=Routing Groups,{self.admin_group}"
        )
        self.sites = f"CN=Sites,{self.config}"
        self.site_links = f"CN=IP,CN=Inter-Site Transports,{self.sites}"
        self.sitemail = f"CN=sitemail,{self.services}"
        self.change_log = f"CN=Change Log,{self.sitemail}"
        self.counter = f"CN=Counter,{self.change_log}"

    # ------------------------------------------------------------------ naming

    def dn(self, kind: str, identity: str) -> str | None:
        """The DN of the object of that kind and identity; None if no such identity can exist."""
        if kind in ("ReceiveConnector", "VirtualDirectory", "PopImapSettings"):
            server, sep, name = identity.partition("\\")
            if not sep or not server or not name:
                return None
            folder = {
                "ReceiveConnector": "CN=SMTP Receive Connectors,CN=Protocols",
                "VirtualDirectory": "CN=HTTP,CN=Protocols",
                "PopImapSettings": "CN=Protocols",
            }[kind]
            return f"{rdn(name)},{folder},{self.server_dn(server)}"
        if not identity:
            return None
        return f"{rdn(identity)},{self.list_base(kind)}"

    def list_base(self, kind: str) -> str:
        """The subtree that holds every object of a kind."""
        return {
            "Organization": self.exchange,
            "Site": self.sites,
            "SiteLink": self.site_links,
            "Server": self.servers,
            "ReceiveConnector": self.servers,
            "VirtualDirectory": self.servers,
            "PopImapSettings": self.servers,
            "MailboxDatabase": self.databases,
            "SendConnector": self.connections,
            "Mailbox": self.users,
            "AccountLockout": f"CN=Account Lockouts,{self.sitemail}",
        }.get(kind) or f"{rdn(kind)},{self.sitemail}"

    def list_one_level(self, kind: str) -> bool:
        """Whether a kind's objects are all right below its list base (a cheaper search)."""
        return kind not in ("ReceiveConnector", "VirtualDirectory", "PopImapSettings")

    def server_dn(self, name: str) -> str:
        return f"{rdn(name)},{self.servers}"

    def view_container(self, kind: str, identity: str) -> str | None:
        """Where the entries shown beside an object live (an organization's accepted domains)."""
        dn = self.dn(kind, identity)
        if kind != "Organization" or dn is None:
            return None
        return f"CN=Accepted Domains,CN=Transport Settings,{dn}"

    def placeholder_classes(self, dn: str) -> list[str]:
        """The classes of a parent created before the object it will hold."""
        if same_dn(dn, self.org):
            return ["msExchOrganizationContainer", "sitemailEntry"]
        if same_dn(dn, self.admin_group):
            return ["msExchAdminGroup"]
        if same_dn(parent_dn(dn), self.servers):
            return ["msExchExchangeServer", "sitemailEntry"]
        return ["container"]

    def legacy_dn(self, *parts: str) -> str:
        return f"/o={self.organization}/ou={ADMIN_GROUP}/" + "/".join(parts)

    # ----------------------------------------------------------------- entries

    def entries(self, obj: Model, lookup: Lookup[Model]) -> list[Entry]:
        """The object's entry, then the entries shown beside it (under its view container)."""
        dn = self.dn(obj.kind, obj.identity)
        if dn is None:
            raise ValueError(f"{obj.kind} identity {obj.identity!r} cannot be stored")
        builder = _BUILDERS.get(type(obj))
        classes, attrs = builder(self, obj, lookup) if builder else (["sitemailConfigItem"], {})
        attrs.update(
            sitemailKind=[obj.kind],
            sitemailIdentity=[obj.identity],
            sitemailObject=[obj.model_dump_json()],
        )
        entries = [Entry(dn, [*classes, "sitemailEntry"], attrs)]
        if isinstance(obj, Organization):
            entries += self._accepted_domains(obj)
        return entries

    def _accepted_domains(self, org: Organization) -> list[Entry]:
        folder = self.view_container(org.kind, org.identity)

        def entry(d: AcceptedDomain) -> Entry:
            return Entry(
                f"{rdn(d.domain_name)},{folder}",
                ["msExchAcceptedDomain"],
                {
                    "msExchAcceptedDomainName": [d.domain_name],
                    "sitemailAcceptedDomainType": [d.domain_type.value],
                    "sitemailDefault": [_bool(d.default)],
                },
            )

        return [entry(d) for d in org.accepted_domains]


# ---------------------------------------------------------------------- builders
# Each returns the structural class and every AD attribute of its kind ([] when unset).

Built = tuple[list[str], dict[str, list[str]]]


def _bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _opt(value: object) -> list[str]:
    return [] if value is None or value == "" else [str(value)]


def _server(layout: Layout, s: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(s, Server)
    version = MS_EXCH_VERSION.get(s.version)
    return ["msExchExchangeServer"], {
        "networkAddress": [f"ncacn_ip_tcp:{s.fqdn}", f"netbios:{s.name}"],
        "serialNumber": [s.version.display],
        "msExchCurrentServerRoles": [str(sum(ROLE_BITS[r] for r in s.roles))],
        "msExchServerSite": [f"{rdn(s.site)},{layout.sites}"],
        "legacyExchangeDN": [layout.legacy_dn("cn=Configuration", "cn=Servers", f"cn={s.name}")],
        "msExchVersion": _opt(version),
    }


def _mailbox(layout: Layout, m: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(m, Mailbox)
    # msExchHomeServerName and msExchVersion follow the database's server as it is when the
    # mailbox is written (Exchange rewrites them when a mailbox moves).
    db = lookup(MailboxDatabase, m.database)
    server = lookup(Server, db.server) if isinstance(db, MailboxDatabase) else None
    home = version = None
    if isinstance(server, Server):
        home = layout.legacy_dn("cn=Configuration", "cn=Servers", f"cn={server.name}")
        version = MS_EXCH_VERSION.get(server.version)
    return ["user"], {
        "sAMAccountName": [m.alias],
        "mailNickname": [m.alias],
        "displayName": _opt(m.display_name),
        "mail": [m.primary_smtp_address],
        "proxyAddresses": [f"SMTP:{m.primary_smtp_address}"]
        + [f"smtp:{a}" for a in m.email_addresses if a != m.primary_smtp_address],
        "homeMDB": [f"{rdn(m.database)},{layout.databases}"],
        "msExchHomeServerName": _opt(home),
        "legacyExchangeDN": [layout.legacy_dn("cn=Recipients", f"cn={m.alias}")],
        "msExchVersion": _opt(version),
    }


def _receive_connector(layout: Layout, rc: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(rc, ReceiveConnector)
    return ["msExchSmtpReceiveConnector"], {
        "msExchSmtpReceiveBindings": list(rc.bindings),
        "msExchSmtpReceiveRemoteIPRanges": list(rc.remote_ip_ranges),
        "msExchSmtpReceiveSecurityFlags": [
            str(sum(AUTH_BITS.get(a, 0) for a in rc.auth_mechanism))
        ],
        "sitemailAuthMechanism": [a.value for a in rc.auth_mechanism],
        "sitemailPermissionGroups": [g.value for g in rc.permission_groups],
        "msExchSmtpReceiveFqdn": _opt(rc.fqdn),
        "msExchSmtpReceiveBanner": _opt(rc.banner),
        "msExchSmtpReceiveMaxMessageSize": [str(rc.max_message_size)],
        "msExchSmtpReceiveEnabled": [_bool(rc.enabled)],
        "description": _opt(rc.comment),
    }


def _send_connector(layout: Layout, sc: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(sc, SendConnector)
    return ["msExchRoutingSMTPConnector"], {
        "sitemailAddressSpaces": list(dict.fromkeys(sc.address_spaces)),
        "msExchSmtpSmartHost": list(dict.fromkeys(sc.smart_hosts)),
        "msExchSourceBridgeheadServersDN": [
            layout.server_dn(s) for s in dict.fromkeys(sc.source_transport_servers)
        ],
    }


def _database(layout: Layout, db: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(db, MailboxDatabase)
    return ["msExchPrivateMDB"], {
        "msExchOwningServer": [layout.server_dn(db.server)],
        "legacyExchangeDN": [
            layout.legacy_dn("cn=Configuration", "cn=Servers", f"cn={db.server}", f"cn={db.name}")
        ],
    }


def _vdir(layout: Layout, v: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(v, VirtualDirectory)
    methods = [
        name
        for name, on in (
            ("Forms", v.forms_authentication),
            ("Anonymous", v.anonymous_authentication),
            ("Basic", v.basic_authentication),
            ("WindowsIntegrated", v.windows_authentication),
            ("Digest", v.digest_authentication),
        )
        if on
    ]
    return [VDIR_CLASS[v.type]], {
        "msExchInternalHostName": _opt(v.internal_url),
        "msExchExternalHostName": _opt(v.external_url),
        "sitemailAuthenticationMethods": methods,
    }


def _pop_imap(layout: Layout, p: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(p, PopImapSettings)
    cls = "msExchProtocolCfgPOPServer" if p.protocol == "POP3" else "msExchProtocolCfgIMAPServer"
    return [cls], {}


def _site(layout: Layout, s: Model, lookup: Lookup[Model]) -> Built:
    return ["site"], {}


def _site_link(layout: Layout, link: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(link, SiteLink)
    return ["siteLink"], {
        "cost": [str(link.cost)],
        "siteList": [f"{rdn(s)},{layout.sites}" for s in dict.fromkeys(link.sites)],
        "msExchCost": _opt(link.exchange_cost),
    }


def _organization(layout: Layout, org: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(org, Organization)
    return ["msExchOrganizationContainer"], {
        "legacyExchangeDN": [f"/o={org.name}"],
    }


def _lockout(layout: Layout, a: Model, lookup: Lookup[Model]) -> Built:
    assert isinstance(a, AccountLockout)
    return ["sitemailAccountLockout"], {
        "badPwdCount": [str(a.bad_pwd_count)],
        "badPasswordTime": [str(filetime(a.bad_password_time))],
        "lockoutTime": [str(filetime(a.lockout_time))],
    }


_BUILDERS: dict[type[Model], Callable[[Layout, Model, Lookup[Model]], Built]] = {
    Organization: _organization,
    Site: _site,
    SiteLink: _site_link,
    Server: _server,
    ReceiveConnector: _receive_connector,
    SendConnector: _send_connector,
    MailboxDatabase: _database,
    Mailbox: _mailbox,
    VirtualDirectory: _vdir,
    PopImapSettings: _pop_imap,
    AccountLockout: _lockout,
}
