"""The ASA running configuration as data (the parts a mail lab needs).

Modelled structurally: hostname, interfaces, access lists and access
groups (:mod:`sitemail.firewall.acl`), class-maps, ``policy-map type inspect
esmtp`` maps, ordinary policy-maps with their ``inspect`` lines,
service-policies and the call-home answer.  Every other line of a
saved configuration (timeouts, ``pager lines 24``, DNS inspect maps, ...) is
kept verbatim so that a configuration read back renders the same.

Rendering lives in :mod:`sitemail.firewall.asa_render`, reading in
:mod:`sitemail.firewall.asa_parse`; :mod:`sitemail.firewall.asa_config` is the
public face of all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sitemail.firewall.acl import AccessGroup, AccessList

DEFAULT_ESMTP_MAP = "_default_esmtp_map"

CallHome = Literal["unanswered", "disabled", "enabled", "ask-later"]


@dataclass
class Interface:
    """``interface NAME`` and the lines under it."""

    name: str
    nameif: str | None = None
    security_level: int | None = None
    ip_address: str | None = None  # the words after "ip address": "A M" or "dhcp setroute"
    shutdown: bool = False
    management_only: bool = False
    description: str | None = None
    extra: list[str] = field(default_factory=list)  # other sub-lines, without the indent

    @property
    def address(self) -> tuple[str, str] | None:
        """``(ip, netmask)`` for a static address, else None."""
        words = (self.ip_address or "").split()
        if len(words) >= 2 and words[0][:1].isdigit():
            return words[0], words[1]
        return None


@dataclass
class ClassMap:
    """``class-map NAME`` with its ``match`` lines (``default-inspection-traffic`` etc.)."""

    name: str
    matches: list[str] = field(default_factory=list)
    description: str | None = None


@dataclass
class Inspect:
    """One ``inspect PROTOCOL [MAP]`` line under a policy-map class."""

    protocol: str  # "esmtp", "dns", "h323 h225", "icmp error", "ftp strict"
    map_name: str | None = None

    @property
    def kind(self) -> str:
        """The inspection engine: ``h323 h225`` -> ``h323``."""
        return self.protocol.split()[0]

    def same_engine(self, other: Inspect) -> bool:
        # "h323 h225" and "h323 ras" are two inspections; "ftp strict" replaces "ftp".
        if self.kind in ("h323", "icmp"):
            return self.protocol == other.protocol
        return self.kind == other.kind


# Protocols whose running-config line carries a second trailing blank (observed in
# every public 9.x config: "  inspect skinny  ", "  inspect sip  ").
DOUBLE_BLANK_PROTOCOLS = frozenset({"sip", "skinny"})


def inspect_from_words(words: list[str]) -> Inspect:
    """``["esmtp", "MAP"]`` -> Inspect; ``inspect smtp`` becomes ``esmtp`` as on the ASA."""
    protocol = words[0].lower()
    if protocol == "smtp":
        protocol = "esmtp"
    rest = words[1:]
    if protocol == "h323" and rest:
        protocol = f"h323 {rest.pop(0).lower()}"
    elif protocol == "icmp" and rest and rest[0].lower() == "error":
        protocol = "icmp error"
        rest.pop(0)
    elif protocol == "ftp" and rest and rest[0].lower() == "strict":
        protocol = "ftp strict"
        rest.pop(0)
    return Inspect(protocol, rest[0] if rest else None)


@dataclass
class PolicyClass:
    """``class NAME`` inside an ordinary policy-map."""

    name: str
    inspects: list[Inspect] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # other lines, without the indent

    def find(self, protocol: str) -> Inspect | None:
        probe = inspect_from_words(protocol.split())
        for inspect in self.inspects:
            if inspect.same_engine(probe):
                return inspect
        return None


@dataclass
class PolicyMap:
    """``policy-map NAME`` (the Modular Policy Framework kind, e.g. ``global_policy``)."""

    name: str
    classes: list[PolicyClass] = field(default_factory=list)
    description: str | None = None

    def find(self, class_name: str) -> PolicyClass | None:
        for klass in self.classes:
            if klass.name == class_name:
                return klass
        return None


@dataclass
class EsmtpMatch:
    """``match [not] CRITERION`` in an ESMTP inspect map, and its actions."""

    criterion: str  # canonical: "cmd line length gt 512", "MIME filename length gt 255"
    negate: bool = False
    actions: list[str] = field(default_factory=list)  # "drop-connection log", "mask", "log"

    @property
    def line(self) -> str:
        return f"match {'not ' if self.negate else ''}{self.criterion}"


@dataclass
class EsmtpInspectMap:
    """``policy-map type inspect esmtp NAME``: parameters and match rules."""

    name: str
    description: str | None = None
    # A new map starts with every parameter off and no match rule (spec §3.3, [unv]).
    mask_banner: bool = False
    mail_relay: tuple[str, str] | None = None  # (domain, "drop-connection" | "log")
    special_character: str | None = None  # its action: "drop-connection" | "log"
    allow_tls: bool = False
    allow_tls_log: bool = False
    matches: list[EsmtpMatch] = field(default_factory=list)

    def find(self, criterion: str, negate: bool = False) -> EsmtpMatch | None:
        for match in self.matches:
            if match.criterion.lower() == criterion.lower() and match.negate == negate:
                return match
        return None


def default_esmtp_map() -> EsmtpInspectMap:
    """The ASA's hidden ``_default_esmtp_map`` (spec §1.2), rules in the guide's order."""
    return EsmtpInspectMap(
        name=DEFAULT_ESMTP_MAP,
        description="Default ESMTP policy-map",
        mask_banner=True,
        matches=[
            EsmtpMatch("cmd line length gt 512", actions=["drop-connection log"]),
            EsmtpMatch("cmd RCPT count gt 100", actions=["drop-connection log"]),
            EsmtpMatch("body line length gt 998", actions=["log"]),
            EsmtpMatch("header line length gt 998", actions=["drop-connection log"]),
            EsmtpMatch("sender-address length gt 320", actions=["drop-connection log"]),
            EsmtpMatch("MIME filename length gt 255", actions=["drop-connection log"]),
            EsmtpMatch("ehlo-reply-parameter others", actions=["mask"]),
        ],
    )


@dataclass
class RawInspectMap:
    """Any other ``policy-map type inspect KIND NAME``, kept verbatim (e.g. preset_dns_map)."""

    kind: str
    name: str
    body: list[str] = field(default_factory=list)  # sub-lines with their indent


@dataclass(frozen=True)
class LocalUser:
    """``username NAME password HASH pbkdf2 [privilege N]`` (the ASA's default privilege is 2)."""

    name: str
    password_hash: str
    privilege: int = 2


@dataclass(frozen=True)
class SshHost:
    """``ssh A.B.C.D MASK IF``: who may open an SSH session to the box, on which interface."""

    address: str
    mask: str
    interface: str


@dataclass
class ServicePolicy:
    """``service-policy NAME global`` or ``service-policy NAME interface IFC``."""

    policy_map: str
    interface: str | None = None  # None: global


@dataclass
class AsaConfig:
    """A whole running (or startup) configuration."""

    hostname: str = "ciscoasa"
    version: str = "9.12(4)"
    serial_number: str = "9AX0SITEM01"
    hardware: str = "ASAv, 2048 MB RAM, CPU Xeon E5 series 2600 MHz"
    head_lines: list[str] = field(default_factory=list)  # between hostname and interfaces
    interfaces: list[Interface] = field(default_factory=list)
    body_lines: list[str] = field(default_factory=list)  # between interfaces and class-maps
    access_lists: list[AccessList] = field(default_factory=list)
    access_groups: list[AccessGroup] = field(default_factory=list)
    class_maps: list[ClassMap] = field(default_factory=list)
    inspect_maps: list[EsmtpInspectMap | RawInspectMap] = field(default_factory=list)
    policy_maps: list[PolicyMap] = field(default_factory=list)
    service_policies: list[ServicePolicy] = field(default_factory=list)
    tail_lines: list[str] = field(default_factory=list)  # after the service-policies
    call_home: CallHome = "disabled"
    # Management access: local users, the enable password (hashed), SSH.
    users: list[LocalUser] = field(default_factory=list)
    enable_password: str | None = None
    ssh_hosts: list[SshHost] = field(default_factory=list)
    ssh_timeout: int = 5  # minutes
    #: Moved on by the CLI at every change, so what is computed from the configuration
    #: for each new connection (the inspection policy) is computed once per version.
    generation: int = field(default=0, compare=False, repr=False)

    def user(self, name: str) -> LocalUser | None:
        return next((u for u in self.users if u.name == name), None)

    def interface(self, name: str) -> Interface | None:
        for interface in self.interfaces:
            if interface.name.lower() == name.lower():
                return interface
        return None

    def access_list(self, name: str) -> AccessList | None:
        return next((a for a in self.access_lists if a.name == name), None)

    def access_group(self, interface: str) -> AccessGroup | None:
        """The inbound access group of an interface (by nameif)."""
        return next((g for g in self.access_groups if g.interface == interface), None)

    def nameifs(self) -> list[str]:
        return [i.nameif for i in self.interfaces if i.nameif]

    def class_map(self, name: str) -> ClassMap | None:
        for class_map in self.class_maps:
            if class_map.name == name:
                return class_map
        return None

    def policy_map(self, name: str) -> PolicyMap | None:
        for policy_map in self.policy_maps:
            if policy_map.name == name:
                return policy_map
        return None

    def esmtp_map(self, name: str) -> EsmtpInspectMap | None:
        """A configured ESMTP map, or the built-in default map by its name."""
        for inspect_map in self.inspect_maps:
            if isinstance(inspect_map, EsmtpInspectMap) and inspect_map.name == name:
                return inspect_map
        return default_esmtp_map() if name == DEFAULT_ESMTP_MAP else None

    def inspect_map_names(self) -> set[str]:
        return {m.name for m in self.inspect_maps} | {DEFAULT_ESMTP_MAP}

    def service_policy(self, interface: str | None) -> ServicePolicy | None:
        for policy in self.service_policies:
            if policy.interface == interface:
                return policy
        return None


# --- the factory configuration ------------------------------------------------------------

#: `inspect` lines of class inspection_default on a factory ASA, in the order of spec §1.1.
FACTORY_INSPECTS: tuple[tuple[str, str | None], ...] = (
    ("dns", "preset_dns_map"),
    ("ftp", None),
    ("h323 h225", None),
    ("h323 ras", None),
    ("rsh", None),
    ("rtsp", None),
    ("esmtp", None),
    ("sqlnet", None),
    ("skinny", None),
    ("sunrpc", None),
    ("xdmcp", None),
    ("sip", None),
    ("netbios", None),
    ("tftp", None),
    ("ip-options", None),
)

# Lines every factory 9.x configuration carries between the interfaces and the
# class-maps (taken from public running configs; kept verbatim, not modelled).
FACTORY_BODY = (
    "ftp mode passive",
    "pager lines 24",
    "logging asdm informational",
    "no failover",
    "icmp unreachable rate-limit 1 burst-size 1",
    "no asdm history enable",
    "arp timeout 14400",
    "no arp permit-nonconnected",
    "timeout xlate 3:00:00",
    "timeout pat-xlate 0:00:30",
    "timeout conn 1:00:00 half-closed 0:10:00 udp 0:02:00 sctp 0:02:00 icmp 0:00:02",
    "timeout sunrpc 0:10:00 h323 0:05:00 h225 1:00:00 mgcp 0:05:00 mgcp-pat 0:05:00",
    "timeout sip 0:30:00 sip_media 0:02:00 sip-invite 0:03:00 sip-disconnect 0:02:00",
    "timeout sip-provisional-media 0:02:00 uauth 0:05:00 absolute",
    "timeout tcp-proxy-reassembly 0:01:00",
    "timeout floating-conn 0:00:00",
    "user-identity default-domain LOCAL",
    "aaa authentication login-history",
    "no snmp-server location",
    "no snmp-server contact",
    "crypto ipsec security-association pmtu-aging infinite",
    "crypto ca trustpool policy",
    "telnet timeout 5",
    "ssh stricthostkeycheck",
    "console timeout 0",
    "threat-detection basic-threat",
    "threat-detection statistics access-list",
    "no threat-detection statistics tcp-intercept",
)

PRESET_DNS_MAP_BODY = (
    " parameters",
    "  message-length maximum client auto",
    "  message-length maximum 512",
)


def factory_interfaces() -> list[Interface]:
    """An ASA 5506-X's factory interfaces: outside by DHCP, inside 192.168.1.1/24."""
    return [
        Interface("GigabitEthernet1/1", "outside", 0, "dhcp setroute"),
        Interface("GigabitEthernet1/2", "inside", 100, "192.168.1.1 255.255.255.0"),
    ]


def factory_config(
    hostname: str = "ciscoasa",
    interfaces: list[Interface] | None = None,
    *,
    call_home: CallHome = "disabled",
) -> AsaConfig:
    """The factory configuration: ``inspect esmtp`` on under ``global_policy``.

    ``call_home`` is "disabled" (the question was answered N) so that the first
    ``configure terminal`` goes straight to the prompt, as on the seed's
    production firewalls; "unanswered" makes it ask, as a fresh box does.
    """
    ifaces = interfaces if interfaces is not None else factory_interfaces()
    body = list(FACTORY_BODY)
    body[2:2] = [f"mtu {i.nameif} 1500" for i in ifaces if i.nameif]
    return AsaConfig(
        hostname=hostname,
        head_lines=["names"],
        interfaces=ifaces,
        body_lines=body,
        class_maps=[ClassMap("inspection_default", ["default-inspection-traffic"])],
        inspect_maps=[RawInspectMap("dns", "preset_dns_map", list(PRESET_DNS_MAP_BODY))],
        policy_maps=[
            PolicyMap(
                "global_policy",
                [PolicyClass("inspection_default", [Inspect(p, m) for p, m in FACTORY_INSPECTS])],
            )
        ],
        service_policies=[ServicePolicy("global_policy")],
        tail_lines=["prompt hostname context "],
        call_home=call_home,
    )
