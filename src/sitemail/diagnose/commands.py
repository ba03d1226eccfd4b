"""The exact lines of a fix: Exchange Management Shell cmdlets and Cisco ASA console lines.

Kept apart from the rules so that every finding writes its commands the same
way (quoting, list syntax, the seed's ASA lines) and so that they can be
tested as text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from sitemail.diagnose.findings import Fix, FixKind
from sitemail.org.model import (
    AuthMechanism,
    IPRange,
    PermissionGroup,
    ReceiveConnector,
)

#: The seed's lines that turn ESMTP inspection off and save it (SCENARIOS.md story 1 step 7).
ASA_NO_INSPECT_ESMTP: tuple[str, ...] = (
    "config t",
    "policy-map global_policy",
    "class inspection_default",
    "no inspect esmtp",
    "exit",
    "exit",
    "exit",
    "wr me",
)

#: Out-of-box values of ``Default <SERVER>`` (exchange-2010.md 1.1).
DEFAULT_AUTH = (
    AuthMechanism.TLS,
    AuthMechanism.INTEGRATED,
    AuthMechanism.BASIC_AUTH,
    AuthMechanism.BASIC_AUTH_REQUIRE_TLS,
    AuthMechanism.EXCHANGE_SERVER,
)
DEFAULT_PERMISSION_GROUPS = (
    PermissionGroup.EXCHANGE_USERS,
    PermissionGroup.EXCHANGE_SERVERS,
    PermissionGroup.EXCHANGE_LEGACY_SERVERS,
)
ALL_ADDRESSES = "0.0.0.0-255.255.255.255"


def quote(text: str) -> str:
    """A shell argument: bare when safe, else in double quotes."""
    if text and all(ch.isalnum() or ch in "-_.\\:/" for ch in text):
        return text
    return '"' + text.replace('"', '`"') + '"'


def shell(*lines: str, comment: str = "") -> Fix:
    return Fix(FixKind.SHELL, tuple(lines), None, comment)


def asa(firewall: str | None, lines: Sequence[str], comment: str = "") -> Fix:
    return Fix(FixKind.ASA, tuple(lines), firewall, comment)


def note(text: str) -> Fix:
    return Fix(FixKind.NOTE, (text,), None, "")


def no_inspect_esmtp(firewall: str | None) -> Fix:
    return asa(
        firewall,
        ASA_NO_INSPECT_ESMTP,
        "turns ESMTP inspection off and saves it; check with `show running-config "
        "policy-map` (inspect esmtp gone)",
    )


def retry_queue(identity: str | None, next_hop: str | None = None) -> str:
    if identity:
        return f"Retry-Queue -Identity {quote(identity)}"
    return f'Retry-Queue -Filter {{NextHopDomain -eq "{next_hop}"}}'


def set_connector(identity: str, **params: str) -> str:
    names = {
        "remote_ip_ranges": "RemoteIPRanges",
        "auth_mechanism": "AuthMechanism",
        "permission_groups": "PermissionGroups",
    }
    args = " ".join(f"-{names[k]} {v}" for k, v in params.items())
    return f"Set-ReceiveConnector {quote(identity)} {args}"


def flag_list(values: Iterable[str]) -> str:
    return ",".join(values)


def with_added(current: Sequence[str], added: str, order: Sequence[str]) -> list[str]:
    """``current`` with ``added``, in Exchange's display order, ``None`` dropped."""
    have = {v for v in current if v != "None"} | {added}
    return [v for v in order if v in have]


def auth_fix(connector: ReceiveConnector) -> str:
    if connector.name.lower().startswith("default "):
        wanted = [m.value for m in DEFAULT_AUTH]
    else:
        current = [m.value for m in connector.auth_mechanism]
        wanted = with_added(current, "ExchangeServer", [m.value for m in AuthMechanism])
        if "Tls" not in wanted:
            wanted = with_added(wanted, "Tls", [m.value for m in AuthMechanism])
    return set_connector(connector.identity, auth_mechanism=flag_list(wanted))


def permission_fix(connector: ReceiveConnector, group: str = "ExchangeServers") -> str:
    current = [g.value for g in connector.permission_groups]
    wanted = with_added(current, group, [g.value for g in PermissionGroup])
    return set_connector(connector.identity, permission_groups=flag_list(wanted))


def ranges_without(ranges: Sequence[str], addresses: Iterable[str]) -> list[str]:
    """``ranges`` with ``addresses`` cut out, written as ``a-b`` / single addresses."""
    cut = sorted({int(ipaddress.IPv4Address(a)) for a in addresses})
    out: list[str] = []
    for text in ranges:
        r = IPRange.parse(text)
        pieces = [(r.first, r.last)]
        for point in cut:
            nxt = []
            for lo, hi in pieces:
                if lo <= point <= hi:
                    if lo < point:
                        nxt.append((lo, point - 1))
                    if point < hi:
                        nxt.append((point + 1, hi))
                else:
                    nxt.append((lo, hi))
            pieces = nxt
        if [(r.first, r.last)] == pieces:
            out.append(r.text)
            continue
        for lo, hi in pieces:
            a, b = ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi)
            out.append(str(a) if lo == hi else f"{a}-{b}")
    return out


def certificate_fix(server: str) -> Fix:
    """See the server's certificates, then make a new one for SMTP."""
    return shell(
        f"Get-ExchangeCertificate -Server {server} | Format-List "
        "Thumbprint,Services,NotAfter,Status",
        f"New-ExchangeCertificate -Server {server} -Services SMTP",
        comment="renew an expired or missing SMTP certificate",
    )
