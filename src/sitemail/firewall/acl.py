"""Access lists of the emulated ASA: the entries, their text, and which one a connection meets.

An extended access list is an ordered list of entries (ACEs and remarks);
``access-group NAME in interface IF`` binds one to the traffic that enters
an interface.  The first ACE that matches a new connection decides; after
the last one stands the implicit deny.  An interface without an access group
lets everything through: the lab's firewalls carry site-to-site traffic that
a real box would pass as permitted VPN traffic, so the emulator does not
apply the ASA's security-level rule (a deliberate difference, kept here).

Everything is pure: :func:`evaluate` answers from the model alone, and both
the relay (per new connection) and ``packet-tracer`` use it.  The text forms
follow the ASA's own display: ports by name (``eq smtp``), a /32 mask as
``host A.B.C.D``.
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

__all__ = [
    "TCP_PORT_NAMES",
    "AccessGroup",
    "AccessList",
    "Ace",
    "AclVerdict",
    "AddressSpec",
    "Packet",
    "Remark",
    "ace_hash",
    "evaluate",
    "port_number",
    "port_text",
]

Action = Literal["permit", "deny"]
Protocol = Literal["tcp", "ip"]
AddressKind = Literal["any", "any4", "host", "network"]

#: The names the ASA shows for TCP ports (its "TCP literal values"), by number.  Where two
#: names share a number the ASA prints the first listed here (``www`` for 80, ``rsh`` for 514).
TCP_PORT_NAMES: dict[int, str] = {
    5190: "aol",
    179: "bgp",
    19: "chargen",
    3020: "cifs",
    1494: "citrix-ica",
    2748: "ctiqbe",
    13: "daytime",
    9: "discard",
    53: "domain",
    7: "echo",
    512: "exec",
    79: "finger",
    21: "ftp",
    20: "ftp-data",
    70: "gopher",
    1720: "h323",
    101: "hostname",
    443: "https",
    113: "ident",
    143: "imap4",
    194: "irc",
    88: "kerberos",
    543: "klogin",
    544: "kshell",
    389: "ldap",
    636: "ldaps",
    513: "login",
    1352: "lotusnotes",
    515: "lpd",
    139: "netbios-ssn",
    2049: "nfs",
    119: "nntp",
    5631: "pcanywhere-data",
    109: "pop2",
    110: "pop3",
    1723: "pptp",
    514: "rsh",
    554: "rtsp",
    5060: "sip",
    25: "smtp",
    1521: "sqlnet",
    22: "ssh",
    111: "sunrpc",
    49: "tacacs",
    517: "talk",
    23: "telnet",
    540: "uucp",
    43: "whois",
    80: "www",
}
_PORT_BY_NAME: dict[str, int] = {name: number for number, name in TCP_PORT_NAMES.items()}
_PORT_BY_NAME["http"] = 80  # typed as http, shown as www
_PORT_BY_NAME["cmd"] = 514


def port_number(word: str) -> int | None:
    """``25`` or ``smtp`` -> 25; None for anything that is not a TCP port."""
    if word.isdigit():
        number = int(word)
        return number if 0 <= number <= 65535 else None
    return _PORT_BY_NAME.get(word.lower())


def port_text(port: int) -> str:
    """How the ASA shows a port: by name when it has one."""
    return TCP_PORT_NAMES.get(port, str(port))


@dataclass(frozen=True)
class AddressSpec:
    """The source or destination of an ACE: ``any``, ``any4``, ``host A`` or ``A MASK``."""

    kind: AddressKind
    address: str = ""
    mask: str = ""

    @classmethod
    def network(cls, address: str, mask: str) -> AddressSpec:
        """``A MASK``; a /32 is shown as ``host A``, as the ASA stores it."""
        if mask == "255.255.255.255":
            return cls("host", address)
        return cls("network", address, mask)

    @property
    def net(self) -> IPv4Network:
        if self.kind in ("any", "any4"):
            return IPv4Network("0.0.0.0/0")
        if self.kind == "host":
            return IPv4Network(f"{self.address}/32")
        return IPv4Network(f"{self.address}/{self.mask}", strict=False)

    def text(self) -> str:
        if self.kind in ("any", "any4"):
            return self.kind
        if self.kind == "host":
            return f"host {self.address}"
        return f"{self.address} {self.mask}"

    def matches(self, address: IPv4Address) -> bool:
        return address in self.net


@dataclass(frozen=True)
class Ace:
    """One ``extended permit|deny tcp|ip SRC [eq P] DST [eq P] [log]`` entry."""

    action: Action
    protocol: Protocol
    source: AddressSpec
    destination: AddressSpec
    source_port: int | None = None
    destination_port: int | None = None
    log: bool = False

    def text(self) -> str:
        """The entry as ``show running-config`` prints it after ``access-list NAME``."""
        words = ["extended", self.action, self.protocol, self.source.text()]
        if self.source_port is not None:
            words += ["eq", port_text(self.source_port)]
        words.append(self.destination.text())
        if self.destination_port is not None:
            words += ["eq", port_text(self.destination_port)]
        if self.log:
            words.append("log")
        return " ".join(words)

    def matches(self, packet: Packet) -> bool:
        if self.protocol == "tcp" and packet.protocol != "tcp":
            return False
        if not self.source.matches(packet.source):
            return False
        if not self.destination.matches(packet.destination):
            return False
        if self.source_port is not None and packet.source_port != self.source_port:
            return False
        return self.destination_port is None or packet.destination_port == self.destination_port


@dataclass(frozen=True)
class Remark:
    """``access-list NAME remark TEXT``: a comment line, numbered like the entries."""

    remark: str

    def text(self) -> str:
        return f"remark {self.remark}"


Entry = Ace | Remark


@dataclass
class AccessList:
    """``access-list NAME ...`` lines of one name, in order."""

    name: str
    entries: list[Entry] = field(default_factory=list)

    def line_text(self, entry: Entry) -> str:
        return f"access-list {self.name} {entry.text()}"

    def numbered(self) -> list[tuple[int, Entry]]:
        """(line number, entry): remarks take line numbers too, as ``show access-list`` counts."""
        return list(enumerate(self.entries, start=1))

    @property
    def aces(self) -> list[Ace]:
        return [e for e in self.entries if isinstance(e, Ace)]


@dataclass(frozen=True)
class AccessGroup:
    """``access-group ACL in interface IF``: the list that judges traffic entering IF."""

    acl: str
    interface: str  # the nameif
    direction: Literal["in"] = "in"

    def text(self) -> str:
        return f"access-group {self.acl} {self.direction} interface {self.interface}"


@dataclass(frozen=True)
class Packet:
    """The first packet of a new connection, as an ACL sees it."""

    source: IPv4Address
    destination: IPv4Address
    destination_port: int
    source_port: int | None = None  # None: an ephemeral port nobody names
    protocol: Protocol = "tcp"

    @classmethod
    def tcp(cls, source: str, source_port: int | None, destination: str, port: int) -> Packet:
        return cls(
            ipaddress.IPv4Address(source), ipaddress.IPv4Address(destination), port, source_port
        )


@dataclass(frozen=True)
class AclVerdict:
    """What the access group of an interface says about a packet.

    ``group`` None: no access group on the interface, the packet passes.
    ``ace`` None with a group: nothing matched, the implicit deny.
    """

    permitted: bool
    group: AccessGroup | None = None
    access_list: AccessList | None = None
    ace: Ace | None = None
    line: int | None = None

    @property
    def implicit(self) -> bool:
        return self.ace is None


def ace_hash(acl: str, ace: Ace) -> str:
    """The hex the ASA prints after an entry: stable, from the entry's text."""
    return f"0x{zlib.crc32(f'access-list {acl} {ace.text()}'.encode()):08x}"


def evaluate(
    access_lists: list[AccessList],
    access_groups: list[AccessGroup],
    interface: str,
    packet: Packet,
) -> AclVerdict:
    """The verdict on ``packet`` entering ``interface`` (a nameif)."""
    group = next((g for g in access_groups if g.interface == interface), None)
    if group is None:
        return AclVerdict(True)
    acl = next((a for a in access_lists if a.name == group.acl), None)
    if acl is not None:
        for line, entry in acl.numbered():
            if isinstance(entry, Ace) and entry.matches(packet):
                return AclVerdict(entry.action == "permit", group, acl, entry, line)
    return AclVerdict(False, group, acl)
