"""The organization model: every object the directory holds.

The field names follow the Exchange cmdlets' property names in snake_case
(``RemoteIPRanges`` -> ``remote_ip_ranges``) so that the shell can show them
under their Exchange names without a translation table per cmdlet.  Defaults
come from ``specs/exchange-2010.md``; the section is named next to each one.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

KB = 1024
MB = 1024 * 1024
GB = 1024 * MB


class Model(BaseModel):
    """Base of every directory object: strict fields, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # The directory stores objects by (kind, identity); each class names its kind.
    kind: ClassVar[str] = ""

    @property
    def identity(self) -> str:
        raise NotImplementedError


# --------------------------------------------------------------------------- enums


class ExchangeVersion(StrEnum):
    """The versions an organization in the seed holds (Get-ExchangeServer's AdminDisplayVersion)."""

    E2003 = "6.5"
    E2007 = "8.3"
    E2010 = "14.3"

    @property
    def major(self) -> int:
        return {"6.5": 6, "8.3": 8, "14.3": 14}[self.value]

    @property
    def display(self) -> str:
        # 2003 SP2 as the 2010 shell shows it and 2007 SP3's build: general knowledge,
        # unverified against a real Get-ExchangeServer; 2010 SP3 is build 14.3.123.4.
        return {
            "6.5": "Version 6.5 (Build 7638.2: Service Pack 2)",
            "8.3": "Version 8.3 (Build 83.6)",
            "14.3": "Version 14.3 (Build 123.4)",
        }[self.value]

    @property
    def product(self) -> str:
        return {"6.5": "2003", "8.3": "2007", "14.3": "2010"}[self.value]


class ServerRole(StrEnum):
    MAILBOX = "Mailbox"
    CLIENT_ACCESS = "ClientAccess"
    HUB_TRANSPORT = "HubTransport"


class AuthMechanism(StrEnum):
    """Receive connector AuthMechanism flags, in Exchange's display order (spec 1.3)."""

    NONE = "None"
    TLS = "Tls"
    INTEGRATED = "Integrated"
    BASIC_AUTH = "BasicAuth"
    BASIC_AUTH_REQUIRE_TLS = "BasicAuthRequireTLS"
    EXCHANGE_SERVER = "ExchangeServer"
    EXTERNAL_AUTHORITATIVE = "ExternalAuthoritative"


class PermissionGroup(StrEnum):
    """Receive connector PermissionGroups values, in Exchange's display order (spec 1.4)."""

    NONE = "None"
    ANONYMOUS_USERS = "AnonymousUsers"
    EXCHANGE_USERS = "ExchangeUsers"
    EXCHANGE_SERVERS = "ExchangeServers"
    EXCHANGE_LEGACY_SERVERS = "ExchangeLegacyServers"
    PARTNERS = "Partners"
    CUSTOM = "Custom"


class SizeEnabled(StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    ENABLED_WITHOUT_VALUE = "EnabledWithoutValue"


class LoggingLevel(StrEnum):
    NONE = "None"
    VERBOSE = "Verbose"


class VirtualDirectoryKind(StrEnum):
    OWA = "OWA"
    ECP = "ECP"
    EAS = "EAS"
    EWS = "EWS"
    OAB = "OAB"
    AUTODISCOVER = "Autodiscover"
    # Exchange 2003's Outlook Mobile Access (/OMA): only 2003 servers have one.
    OMA = "OMA"


class RedirectType(StrEnum):
    SILENT = "Silent"
    MANUAL = "Manual"


class LoginType(StrEnum):
    PLAIN_TEXT_LOGIN = "PlainTextLogin"
    PLAIN_TEXT_AUTHENTICATION = "PlainTextAuthentication"
    SECURE_LOGIN = "SecureLogin"


class AcceptedDomainType(StrEnum):
    AUTHORITATIVE = "Authoritative"
    INTERNAL_RELAY = "InternalRelay"
    EXTERNAL_RELAY = "ExternalRelay"


def _ordered(values: list[str], order: list[str]) -> list[str]:
    """Deduplicate and sort flag values into Exchange's display order."""
    seen = set(values)
    return [v for v in order if v in seen]


# ------------------------------------------------------------------ addresses


def parse_binding(text: str) -> tuple[str, int]:
    """``"0.0.0.0:25"`` -> ``("0.0.0.0", 25)``, with a clear error for anything else."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"binding {text!r} is not IP:port (expected for example 0.0.0.0:25)")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"binding {text!r} has no valid IPv4 address before the ':'") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"binding {text!r} has no valid port (1-65535) after the ':'")
    return host, int(port)


class IPRange(BaseModel):
    """One RemoteIPRanges entry: a single address, ``a-b``, or CIDR (spec 1.2)."""

    model_config = ConfigDict(frozen=True)
    first: int
    last: int
    text: str

    @classmethod
    def parse(cls, text: str) -> IPRange:
        raw = text.strip()
        try:
            if "-" in raw:
                a, b = (part.strip() for part in raw.split("-", 1))
                first, last = int(ipaddress.IPv4Address(a)), int(ipaddress.IPv4Address(b))
            elif "/" in raw:
                net = ipaddress.IPv4Network(raw, strict=False)
                first, last = int(net.network_address), int(net.broadcast_address)
            else:
                first = last = int(ipaddress.IPv4Address(raw))
        except ValueError:
            raise ValueError(
                f"remote IP range {text!r} is not an address, a range a-b or a CIDR block"
            ) from None
        if first > last:
            raise ValueError(f"remote IP range {text!r} ends before it starts")
        return cls(first=first, last=last, text=raw)

    def __contains__(self, address: str) -> bool:
        value = int(ipaddress.IPv4Address(address))
        return self.first <= value <= self.last

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def nested_in(self, other: IPRange) -> bool:
        return other.first <= self.first and self.last <= other.last

    def overlaps(self, other: IPRange) -> bool:
        return self.first <= other.last and other.first <= self.last


# ------------------------------------------------------------------ organization


class AcceptedDomain(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain_name: str
    domain_type: AcceptedDomainType = AcceptedDomainType.AUTHORITATIVE
    default: bool = False

    @field_validator("domain_name")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.strip().lower()


class Organization(Model):
    kind: ClassVar[str] = "Organization"
    name: str
    accepted_domains: list[AcceptedDomain] = Field(min_length=1)
    # Organization transport config defaults (spec 1.1: 10 MB in 2010).
    max_send_size: int = 10 * MB
    max_receive_size: int = 10 * MB
    xexch50_enabled: bool = True
    # Set-TransportConfig's shadow redundancy (2010: "Configure Shadow Redundancy",
    # dd351046(v=exchg.140)).  Enabled and a retry count of 3 are documented; the
    # heartbeat time-out is 5 minutes in RTM and 15 in SP1 and later (the SP2/SP3
    # help page), 15 here for SP3; the 2-day auto discard is unverified.
    shadow_redundancy_enabled: bool = True
    shadow_heartbeat_timeout_interval: timedelta = Field(
        default=timedelta(minutes=15), gt=timedelta(0)
    )
    shadow_heartbeat_retry_count: int = Field(default=3, ge=1, le=15)
    shadow_message_auto_discard_interval: timedelta = Field(
        default=timedelta(days=2), gt=timedelta(0)
    )

    @property
    def identity(self) -> str:
        return self.name

    @property
    def default_domain(self) -> str:
        for d in self.accepted_domains:
            if d.default:
                return d.domain_name
        return self.accepted_domains[0].domain_name

    def is_accepted(self, domain: str) -> bool:
        d = domain.lower()
        return any(d == a.domain_name for a in self.accepted_domains)


class Site(Model):
    kind: ClassVar[str] = "Site"
    name: str
    hub_site_enabled: bool = False
    # The Internet pseudo-site holds the outside mail host of a lab; no Exchange server lives there.
    internet: bool = False

    @property
    def identity(self) -> str:
        return self.name


class SiteLink(Model):
    kind: ClassVar[str] = "SiteLink"
    name: str
    sites: list[str] = Field(min_length=2)
    cost: int = Field(default=100, ge=1, le=99999)
    exchange_cost: int | None = Field(default=None, ge=1, le=99999)
    max_message_size: int | None = None

    @property
    def identity(self) -> str:
        return self.name

    @property
    def effective_cost(self) -> int:
        """Exchange routes on ExchangeCost when it is set, else on the AD cost (spec 6.2)."""
        return self.exchange_cost if self.exchange_cost is not None else self.cost


class TransportSettings(BaseModel):
    """Set-TransportServer's properties with their 2010 Hub defaults (spec 5.3, 4.2, 6.3)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    transient_failure_retry_count: int = Field(default=6, ge=0, le=15)
    transient_failure_retry_interval: timedelta = timedelta(minutes=5)
    outbound_connection_failure_retry_interval: timedelta = timedelta(minutes=10)
    message_retry_interval: timedelta = timedelta(minutes=15)
    message_expiration_timeout: timedelta = timedelta(days=2)
    delay_notification_timeout: timedelta = timedelta(hours=4)
    queue_max_idle_time: timedelta = timedelta(minutes=3)
    poison_threshold: int = Field(default=2, ge=1, le=10)
    poison_message_detection_enabled: bool = True
    max_outbound_connections: int = 1000
    max_per_domain_outbound_connections: int = 20
    max_concurrent_mailbox_deliveries: int = 20
    max_concurrent_mailbox_submissions: int = 20
    max_connection_rate_per_minute: int = 1200
    # EdgeTransport.exe.config keys (spec 5.3): settable here so tests can shorten them.
    queue_glitch_retry_count: int = Field(default=4, ge=0, le=15)
    queue_glitch_retry_interval: timedelta = timedelta(minutes=1)
    mailbox_delivery_queue_retry_interval: timedelta = timedelta(minutes=5)
    max_idle_time_before_resubmit: timedelta = timedelta(hours=12)
    # Protocol logs (spec 4.1/4.2); paths are relative to the server's folder.
    intra_org_connector_protocol_logging_level: LoggingLevel = LoggingLevel.NONE
    receive_protocol_log_path: str | None = "TransportRoles/Logs/ProtocolLogs/SmtpReceive"
    send_protocol_log_path: str | None = "TransportRoles/Logs/ProtocolLogs/SmtpSend"
    receive_protocol_log_max_file_size: int = 10 * MB
    send_protocol_log_max_file_size: int = 10 * MB
    receive_protocol_log_max_directory_size: int = 250 * MB
    send_protocol_log_max_directory_size: int = 250 * MB
    receive_protocol_log_max_age: timedelta = timedelta(days=30)
    send_protocol_log_max_age: timedelta = timedelta(days=30)
    # Message tracking (spec 6.3).
    message_tracking_log_enabled: bool = True
    message_tracking_log_path: str | None = "TransportRoles/Logs/MessageTracking"
    message_tracking_log_max_file_size: int = 10 * MB
    message_tracking_log_max_directory_size: int = 1000 * MB
    message_tracking_log_max_age: timedelta = timedelta(days=30)
    message_tracking_log_subject_logging_enabled: bool = True
    use_downgraded_exchange_server_auth: bool = False


class Server(Model):
    kind: ClassVar[str] = "Server"
    name: str
    fqdn: str
    site: str
    version: ExchangeVersion = ExchangeVersion.E2010
    roles: list[ServerRole] = Field(default_factory=list)
    # The addresses the server owns (the lab gives each one its own loopback address).
    addresses: list[str] = Field(default_factory=list)
    transport: TransportSettings = Field(default_factory=TransportSettings)

    @property
    def identity(self) -> str:
        return self.name

    @field_validator("fqdn")
    @classmethod
    def _fqdn_lower(cls, v: str) -> str:
        return v.strip().lower()

    @field_validator("roles")
    @classmethod
    def _roles_ordered(cls, v: list[ServerRole]) -> list[ServerRole]:
        order = [ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT]
        return [r for r in order if r in set(v)]

    @field_validator("addresses")
    @classmethod
    def _addresses_ipv4(cls, v: list[str]) -> list[str]:
        for a in v:
            ipaddress.IPv4Address(a)
        return v

    def has_role(self, role: ServerRole) -> bool:
        return role in self.roles

    @property
    def is_hub(self) -> bool:
        # 2007 and 2010 hubs run the same transport (2003 has its SMTP service instead).
        return ServerRole.HUB_TRANSPORT in self.roles and self.version in (
            ExchangeVersion.E2010,
            ExchangeVersion.E2007,
        )

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None

    @property
    def server_role_text(self) -> str:
        """Get-ExchangeServer's ServerRole: 2003 servers show None."""
        if self.version == ExchangeVersion.E2003:
            return "None"
        return ", ".join(r.value for r in self.roles) or "None"


_AUTH_ORDER = [m.value for m in AuthMechanism]
_GROUP_ORDER = [g.value for g in PermissionGroup]


class ReceiveConnector(Model):
    """A receive connector with the parameters of spec 1.2 and their 2010 defaults."""

    kind: ClassVar[str] = "ReceiveConnector"
    server: str
    name: str
    bindings: list[str] = Field(default_factory=lambda: ["0.0.0.0:25"], min_length=1)
    remote_ip_ranges: list[str] = Field(
        default_factory=lambda: ["0.0.0.0-255.255.255.255"], min_length=1
    )
    auth_mechanism: list[AuthMechanism] = Field(
        default_factory=lambda: [
            AuthMechanism.TLS,
            AuthMechanism.INTEGRATED,
            AuthMechanism.BASIC_AUTH,
            AuthMechanism.BASIC_AUTH_REQUIRE_TLS,
            AuthMechanism.EXCHANGE_SERVER,
        ]
    )
    permission_groups: list[PermissionGroup] = Field(
        default_factory=lambda: [
            PermissionGroup.EXCHANGE_USERS,
            PermissionGroup.EXCHANGE_SERVERS,
            PermissionGroup.EXCHANGE_LEGACY_SERVERS,
        ]
    )
    fqdn: str | None = None  # None: the server's FQDN
    banner: str | None = None
    comment: str | None = None
    enabled: bool = True
    # Spec 1.1 says 10 MB for 2010 ("confidence: general knowledge"); kept a setting.
    max_message_size: int = 10 * MB
    size_enabled: SizeEnabled = SizeEnabled.ENABLED
    pipelining_enabled: bool = True
    delivery_status_notification_enabled: bool = True
    enhanced_status_codes_enabled: bool = True
    eight_bit_mime_enabled: bool = True
    chunking_enabled: bool = True
    binary_mime_enabled: bool = True
    enable_auth_gssapi: bool = False
    long_addresses_enabled: bool = False
    orar_enabled: bool = False
    suppress_x_anonymous_tls: bool = False
    connection_timeout: timedelta = timedelta(minutes=10)
    connection_inactivity_timeout: timedelta = timedelta(minutes=5)
    max_header_size: int = 256 * KB
    max_hop_count: int = Field(default=30, ge=1, le=500)
    max_local_hop_count: int = Field(default=8, ge=0, le=50)
    max_inbound_connection: int | None = 5000
    max_inbound_connection_per_source: int | None = 20
    max_inbound_connection_percentage_per_source: int = Field(default=2, ge=1, le=100)
    max_logon_failures: int = Field(default=3, ge=0, le=10)
    max_protocol_errors: int | None = 5
    max_recipients_per_message: int = Field(default=200, ge=1, le=512000)
    message_rate_limit: int | None = None  # unlimited on a Hub
    tarpit_interval: timedelta = timedelta(seconds=5)
    max_acknowledgement_delay: timedelta = timedelta(seconds=30)
    require_ehlo_domain: bool = False
    require_tls: bool = False
    protocol_logging_level: LoggingLevel = LoggingLevel.NONE
    domain_secure_enabled: bool = False

    @property
    def identity(self) -> str:
        return f"{self.server}\\{self.name}"

    @field_validator("bindings")
    @classmethod
    def _check_bindings(cls, v: list[str]) -> list[str]:
        return [f"{h}:{p}" for h, p in (parse_binding(b) for b in v)]

    @field_validator("remote_ip_ranges")
    @classmethod
    def _check_ranges(cls, v: list[str]) -> list[str]:
        return [IPRange.parse(r).text for r in v]

    @field_validator("auth_mechanism")
    @classmethod
    def _auth_order(cls, v: list[AuthMechanism]) -> list[AuthMechanism]:
        ordered = [AuthMechanism(x) for x in _ordered([m.value for m in v], _AUTH_ORDER)]
        if AuthMechanism.NONE in ordered and len(ordered) > 1:
            raise ValueError("AuthMechanism None must be used alone")
        if not ordered:
            return [AuthMechanism.NONE]
        return ordered

    @field_validator("permission_groups")
    @classmethod
    def _group_order(cls, v: list[PermissionGroup]) -> list[PermissionGroup]:
        ordered = [PermissionGroup(x) for x in _ordered([g.value for g in v], _GROUP_ORDER)]
        if PermissionGroup.NONE in ordered and len(ordered) > 1:
            ordered.remove(PermissionGroup.NONE)
        return ordered or [PermissionGroup.NONE]

    @property
    def ranges(self) -> list[IPRange]:
        return [IPRange.parse(r) for r in self.remote_ip_ranges]

    @property
    def ports(self) -> list[tuple[str, int]]:
        return [parse_binding(b) for b in self.bindings]


class SendConnector(Model):
    kind: ClassVar[str] = "SendConnector"
    name: str
    address_spaces: list[str] = Field(default_factory=lambda: ["SMTP:*;1"])
    source_transport_servers: list[str] = Field(default_factory=list)
    smart_hosts: list[str] = Field(default_factory=list)
    dns_routing_enabled: bool = True
    port: int = 25
    fqdn: str | None = None
    require_tls: bool = False
    max_message_size: int = 10 * MB
    protocol_logging_level: LoggingLevel = LoggingLevel.NONE
    enabled: bool = True

    @property
    def identity(self) -> str:
        return self.name

    @model_validator(mode="after")
    def _smart_hosts_or_dns(self) -> SendConnector:
        if not self.dns_routing_enabled and not self.smart_hosts:
            raise ValueError("a send connector without DNS routing needs SmartHosts")
        return self


class MailboxDatabase(Model):
    kind: ClassVar[str] = "MailboxDatabase"
    name: str
    server: str

    @property
    def identity(self) -> str:
        return self.name


class Mailbox(Model):
    kind: ClassVar[str] = "Mailbox"
    alias: str
    display_name: str
    primary_smtp_address: str
    email_addresses: list[str] = Field(default_factory=list)
    database: str  # homeMDB
    password_hash: str | None = None  # never the password itself
    signature: str = ""

    @property
    def identity(self) -> str:
        return self.alias

    @field_validator("primary_smtp_address", "email_addresses", mode="before")
    @classmethod
    def _addr_lower(cls, v: object) -> object:
        if isinstance(v, str):
            return v.strip().lower()
        if isinstance(v, list):
            return [str(x).strip().lower() for x in v]
        return v

    @property
    def all_addresses(self) -> list[str]:
        return [self.primary_smtp_address, *self.email_addresses]


class VirtualDirectory(Model):
    kind: ClassVar[str] = "VirtualDirectory"
    server: str
    type: VirtualDirectoryKind
    name: str
    internal_url: str | None = None
    external_url: str | None = None
    forms_authentication: bool = False
    # Exchange 2003 only: ESM's "Anonymous access" (2007/2010 leave it to IIS).
    anonymous_authentication: bool = False
    basic_authentication: bool = False
    windows_authentication: bool = True
    digest_authentication: bool = False
    cross_site_redirect_type: RedirectType = RedirectType.MANUAL
    legacy_redirect_type: RedirectType = RedirectType.MANUAL
    exchange2003_url: str | None = None

    @property
    def identity(self) -> str:
        return f"{self.server}\\{self.name}"

    @field_validator("internal_url", "external_url", "exchange2003_url")
    @classmethod
    def _https_url(cls, v: str | None) -> str | None:
        if v is None or v == "" or v == "$null":
            return None
        if not (v.startswith(("https://", "http://"))):
            raise ValueError(f"URL {v!r} must start with https:// (or http://)")
        return v


def default_vdir_name(kind: VirtualDirectoryKind) -> str:
    return {
        VirtualDirectoryKind.OWA: "owa (Default Web Site)",
        VirtualDirectoryKind.ECP: "ecp (Default Web Site)",
        VirtualDirectoryKind.EAS: "Microsoft-Server-ActiveSync (Default Web Site)",
        VirtualDirectoryKind.EWS: "EWS (Default Web Site)",
        VirtualDirectoryKind.OAB: "OAB (Default Web Site)",
        VirtualDirectoryKind.AUTODISCOVER: "Autodiscover (Default Web Site)",
        VirtualDirectoryKind.OMA: "OMA (Default Web Site)",
    }[kind]


def default_vdir_path(kind: VirtualDirectoryKind) -> str:
    return {
        VirtualDirectoryKind.OWA: "/owa",
        VirtualDirectoryKind.ECP: "/ecp",
        VirtualDirectoryKind.EAS: "/Microsoft-Server-ActiveSync",
        VirtualDirectoryKind.EWS: "/EWS/Exchange.asmx",
        VirtualDirectoryKind.OAB: "/OAB",
        VirtualDirectoryKind.AUTODISCOVER: "/Autodiscover/Autodiscover.xml",
        VirtualDirectoryKind.OMA: "/OMA",
    }[kind]


class PopImapSettings(Model):
    """Get-/Set-PopSettings and Get-/Set-ImapSettings of one CAS (spec 8.6)."""

    kind: ClassVar[str] = "PopImapSettings"
    server: str
    protocol: Literal["POP3", "IMAP4"]
    unencrypted_or_tls_bindings: list[str]
    ssl_bindings: list[str]
    login_type: LoginType = LoginType.SECURE_LOGIN
    # Only used for proxying to Exchange 2003 back-ends (spec 8.6, confidence low):
    # 110/143 there by default.
    proxy_target_port: int
    enabled: bool = True
    # Connection limits and time-outs with Exchange 2010's defaults and ranges
    # ("Set Connection Limits for POP3/IMAP4", "Set Connection Time-Out Limits").
    max_connections: int = Field(default=2000, ge=1, le=25_000)
    max_connection_from_single_ip: int = Field(default=2000, ge=1, le=25_000)
    max_connections_per_user: int = Field(default=16, ge=1, le=25_000)
    pre_authenticated_connection_timeout: timedelta = Field(
        default=timedelta(seconds=60), ge=timedelta(seconds=1), le=timedelta(seconds=200)
    )
    authenticated_connection_timeout: timedelta = Field(
        default=timedelta(seconds=1800), ge=timedelta(seconds=1), le=timedelta(seconds=18_000)
    )

    @property
    def identity(self) -> str:
        return f"{self.server}\\{self.protocol}"


class FirewallInterface(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    nameif: str
    security_level: int = Field(ge=0, le=100)
    address: str | None = None


class Firewall(Model):
    kind: ClassVar[str] = "Firewall"
    name: str
    site: str
    hostname: str | None = None  # the ASA's prompt name; defaults to the firewall's name
    address: str | None = None
    interfaces: list[FirewallInterface] = Field(
        default_factory=lambda: [
            FirewallInterface(name="GigabitEthernet0/0", nameif="outside", security_level=0),
            FirewallInterface(name="GigabitEthernet0/1", nameif="inside", security_level=100),
        ]
    )

    @property
    def identity(self) -> str:
        return self.name


class InternetHost(Model):
    """The outside mail system of a lab: its own domains and users, outside every site."""

    kind: ClassVar[str] = "InternetHost"
    name: str
    fqdn: str
    domains: list[str] = Field(min_length=1)
    address: str | None = None
    site: str = "Internet"
    #: What runs it: sitemail's own emulation, or a real Postfix the lab manages.
    engine: Literal["sitemail", "postfix"] = "sitemail"

    @property
    def identity(self) -> str:
        return self.name


class InternetUser(Model):
    kind: ClassVar[str] = "InternetUser"
    address: str
    host: str
    password_hash: str | None = None

    @property
    def identity(self) -> str:
        return self.address


class NetworkPath(Model):
    """How a host inside ``from_site`` reaches ``server`` of another site.

    A real deployment has none: servers connect straight to each other's
    addresses.  The lab writes one per (site, server of another site), so that
    every cross-site connection passes through the firewalls.
    """

    kind: ClassVar[str] = "NetworkPath"
    from_site: str
    server: str
    address: str
    source: str  # an address inside from_site to connect from, as a person would

    @property
    def identity(self) -> str:
        return f"{self.from_site}->{self.server}"


class LabSettings(Model):
    """Settings a lab adds on top of the organization (one object, identity ``lab``)."""

    kind: ClassVar[str] = "LabSettings"
    # Added to every port of the lab (services, admin and store APIs): when the lab
    # cannot bind ports below 1024, or to run several labs side by side.
    port_offset: int = 0
    lab_dir: str = ""
    # How often Exchange 2003's System Attendant (DS2MB) copies the directory's virtual
    # directory settings over the IIS metabase.  15 minutes: KB 294280 ("overwritten in
    # 15 minutes or less") and a TechTarget tip ("runs every 15 minutes"); not from
    # Microsoft's 2003 documentation itself, so unverified.
    system_attendant_interval: timedelta = Field(default=timedelta(minutes=15), gt=timedelta(0))

    @property
    def identity(self) -> str:
        return "lab"


ALL_KINDS: list[type[Model]] = [
    Organization,
    Site,
    SiteLink,
    Server,
    ReceiveConnector,
    SendConnector,
    MailboxDatabase,
    Mailbox,
    VirtualDirectory,
    PopImapSettings,
    Firewall,
    InternetHost,
    InternetUser,
    NetworkPath,
    LabSettings,
]

KINDS: dict[str, type[Model]] = {k.kind: k for k in ALL_KINDS}

Identity = Annotated[str, Field(min_length=1)]
