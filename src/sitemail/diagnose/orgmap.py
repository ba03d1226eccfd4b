"""The organization as its logs show it: servers, their names and addresses, domains.

Logs copied from an organization carry no directory, yet they name it: a
receive connector's id starts with its server (``EX02\\Default EX02``), a hub
gives its FQDN in every EHLO it sends and in its banner, an authenticated
Exchange server is a hub of the organization, the recipients an anonymous
sender may reach without relay rights are in accepted domains.  This module
gathers those facts while the logs are read (bounded: a few sets of names and
addresses) and answers the questions the rules ask: what is this peer's
server name, is this address one of the organization's networks, is this
domain the organization's.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

#: Folders Exchange itself names; never a server's name.
_EXCHANGE_FOLDERS = frozenset(
    {
        "smtpreceive",
        "smtpsend",
        "protocollog",
        "protocollogs",
        "logs",
        "transportroles",
        "messagetracking",
        "hub",
        "frontend",
        "v14",
        "v15",
        "exchange server",
        "microsoft",
        "program files",
    }
)
#: Networks that are never the Internet (RFC 1918, loopback, link-local, CGNAT, ULA).
INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)
#: Second-level labels under which registrations sit one level deeper (contoso.co.uk).
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "gv"})
#: Bounds on what is kept, whatever the size of the logs.
MAX_NAMES = 10_000


def inside_internal(first: int, last: int) -> bool:
    """Does the IPv4 range first..last lie wholly inside one internal network?"""
    for net in INTERNAL_NETWORKS:
        if (
            net.version == 4
            and int(net.network_address) <= first
            and last <= int(net.broadcast_address)
        ):
            return True
    return False


def endpoint_ip(endpoint: str) -> str:
    """``10.1.0.11:25`` / ``[2001:db8::1]:25`` -> the address."""
    text = endpoint.strip()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        return text.rsplit(":", 1)[0]
    return text


def endpoint_port(endpoint: str) -> int | None:
    head, _, port = endpoint.rpartition(":")
    return int(port) if head and port.isdigit() else None


def registrable(domain: str) -> str:
    """``ex01.corp.contoso.co.uk`` -> ``contoso.co.uk``; ``mx.fabrikam.com`` -> ``fabrikam.com``."""
    labels = [x for x in domain.lower().strip(".").split(".") if x]
    if len(labels) < 2:
        return ".".join(labels)
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def host_label(name: str) -> str:
    """The NetBIOS-like first label of a host name, lower case; '' for an address literal."""
    text = name.strip().strip("[]")
    if not text or _is_ip(text):
        return ""
    return text.split(".", 1)[0].lower()


@lru_cache(maxsize=4096)
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def folder_server(path: str) -> str:
    """The server a log file belongs to by where it lies: the folder above
    ``TransportRoles``, else the nearest folder that Exchange does not name itself."""
    parts = path.replace("\\", "/").split("/")[:-1]
    lower = [p.lower() for p in parts]
    if "transportroles" in lower:
        # The folder above the install path (EX01/Exchange Server/V14/TransportRoles).
        for part, low in zip(
            reversed(parts[: lower.index("transportroles")]),
            reversed(lower[: lower.index("transportroles")]),
            strict=True,
        ):
            if low and low not in _EXCHANGE_FOLDERS:
                return part
    for part in reversed(parts):
        low = part.lower()
        if low and low not in _EXCHANGE_FOLDERS and not low.endswith((".zip", "!")):
            return part.removesuffix("-logs").removesuffix("_logs")
    return ""


@dataclass(slots=True)
class OrgMap:
    """What the logs say about the organization; filled while reading, then queried."""

    names: dict[str, str] = field(default_factory=dict)
    """host label (lower) -> the server's name as the organization writes it."""
    fqdns: dict[str, str] = field(default_factory=dict)
    """host label -> FQDN."""
    addresses: dict[str, str] = field(default_factory=dict)
    """IP address -> host label of the server that has it."""
    hubs: set[str] = field(default_factory=set)
    """Host labels known to be Exchange hubs (log owners, authenticated servers)."""
    domains: Counter[str] = field(default_factory=Counter)
    """Domains of the organization (its servers' DNS domains, accepted domains, users')."""
    internal_ips: set[str] = field(default_factory=set)
    """Addresses of the organization's servers and authenticated clients."""
    connectors: dict[str, set[str]] = field(default_factory=dict)
    """host label -> receive connector ids seen in its logs."""
    _judged: dict[tuple[str, int], bool] = field(default_factory=dict)

    # ---------------------------------------------------------------- learning

    def server(self, name: str, *, hub: bool = True, fqdn: str = "") -> str:
        """Note a server (a log owner, a connector's server, an authenticated hub)."""
        label = host_label(fqdn or name) or name.lower()
        if not label or len(self.names) >= MAX_NAMES:
            return label
        if name and not _is_ip(name) and "." not in name:
            current = self.names.get(label)
            # A name written with capitals (a connector id, a folder) beats a lower-case one.
            if current is None or (current.islower() and not name.islower()):
                self.names[label] = name
        elif label not in self.names:
            self.names[label] = label.upper()
        if fqdn and "." in fqdn and not _is_ip(fqdn):
            self.fqdns.setdefault(label, fqdn.lower())
            self.domain(fqdn.lower().split(".", 1)[1])
        if hub:
            self.hubs.add(label)
        return label

    def address(self, ip: str, label: str) -> None:
        if ip and label and len(self.addresses) < MAX_NAMES:
            self.addresses.setdefault(ip, label)
            self.internal_ips.add(ip)

    def client(self, ip: str) -> None:
        """An address that authenticated (a user or a server): the organization's."""
        if ip and len(self.internal_ips) < MAX_NAMES:
            self.internal_ips.add(ip)

    def domain(self, domain: str, weight: int = 1) -> None:
        domain = domain.lower().strip(".")
        if "." in domain and (domain in self.domains or len(self.domains) < MAX_NAMES):
            self.domains[domain] += weight

    def connector(self, label: str, connector_id: str) -> None:
        if label and len(self.connectors.get(label, ())) < 100:
            self.connectors.setdefault(label, set()).add(connector_id)

    # ---------------------------------------------------------------- questions

    def name_of(self, host: str) -> str:
        """A peer (FQDN, bare name or address) as the server name the organization uses."""
        text = endpoint_ip(host) if host.count(":") == 1 else host
        if _is_ip(text.strip("[]")):
            label = self.addresses.get(text.strip("[]"), "")
            return self.names.get(label, label.upper()) if label else text.strip("[]")
        label = host_label(text)
        if not label:
            return text
        return self.names.get(label, label.upper())

    def is_hub(self, host: str) -> bool:
        text = host.strip("[]")
        if _is_ip(text):
            return text in self.addresses and self.addresses[text] in self.hubs
        return host_label(text) in self.hubs

    def is_internal(self, ip: str) -> bool:
        """An address of the organization: a private network, or near one of its servers
        or authenticated clients (the same /16 for IPv4)."""
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return False
        if any(addr in net for net in INTERNAL_NETWORKS):
            return True
        if addr.version == 4:
            prefix = ip.rsplit(".", 2)[0] + "."
            return any(known.startswith(prefix) for known in self.internal_ips)
        return False

    def is_org_domain(self, domain: str) -> bool:
        """Is ``domain`` one of the organization's, a subdomain of one, or the parent of one
        (the accepted domain contoso.com above the servers' corp.contoso.com)?  Public
        suffixes (com, co.uk) are never parents."""
        domain = domain.lower().strip(".")
        if not domain:
            return True
        if domain in self.domains:
            return True
        key = (domain, len(self.domains))
        cached = self._judged.get(key)
        if cached is not None:
            return cached
        answer = self._related(domain)
        if len(self._judged) < MAX_NAMES:
            self._judged[key] = answer
        return answer

    def _related(self, domain: str) -> bool:
        parent_ok = registrable(domain) == domain or domain.count(".") >= 2
        for known in self.domains:
            if domain.endswith("." + known):
                return True
            if parent_ok and known.endswith("." + domain):
                return True
        return False

    def default_connector(self, server: str, port: int | None = None) -> str:
        """The connector hub-to-hub mail lands on: the one its logs show named ``Default ...``
        (the Frontend one on port 25 of 2013+), else Exchange's out-of-box name."""
        label = host_label(server) or server.lower()
        name = self.names.get(label, server)
        seen = sorted(self.connectors.get(label, ()))
        defaults = [c for c in seen if c.split("\\", 1)[-1].lower().startswith("default")]
        if port == 2525:
            defaults = [c for c in defaults if "frontend" not in c.lower()] or defaults
        else:
            plain = [c for c in defaults if "frontend" not in c.lower()]
            front = [c for c in defaults if "frontend" in c.lower()]
            defaults = (front if port == 25 and front and plain else plain) or defaults
        if defaults:
            return defaults[0]
        return f"{name}\\Default {name}"
