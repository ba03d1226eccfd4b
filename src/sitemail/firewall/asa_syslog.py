"""Syslog lines the firewall writes, in the ASA's words: ESMTP inspection (§1.12), access lists.

The engine has no clock, so a line here is the message only
(``%ASA-4-108004: ...``); whoever writes the log adds the time stamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sitemail.firewall.esmtp_policy import Outcome, SyslogSettings

Direction = Literal["Request", "Response"]


@dataclass(frozen=True)
class Flow:
    """The two ends of one inspected TCP connection, as syslog names them."""

    client_interface: str = "outside"
    client_ip: str = "0.0.0.0"
    client_port: int = 0
    server_interface: str = "inside"
    server_ip: str = "0.0.0.0"
    server_port: int = 25

    @property
    def client(self) -> str:
        return f"{self.client_interface}:{self.client_ip}/{self.client_port}"

    @property
    def server(self) -> str:
        return f"{self.server_interface}:{self.server_ip}/{self.server_port}"


def _words(settings: SyslogSettings, action: str) -> str:
    if action == "drop-connection":
        return settings.dropped_connection_words
    if action == "reset":
        return settings.reset_connection_words
    if action == "mask":
        return settings.masked_words
    return settings.logged_words


def _ends(flow: Flow, direction: Direction) -> tuple[str, str]:
    if direction == "Request":
        return flow.client, flow.server
    return flow.server, flow.client


def classification(
    settings: SyslogSettings, flow: Flow, direction: Direction, outcome: Outcome
) -> str:
    """108004 for a match rule, e.g. ``...; matched Class 4: header line length gt 998``."""
    src, dst = _ends(flow, direction)
    return (
        f"{settings.classification}: ESMTP Classification: {_words(settings, outcome.action)} "
        f"ESMTP {direction} from {src} to {dst}; "
        f"matched Class {outcome.class_id}: {outcome.criterion}"
    )


def parameter(settings: SyslogSettings, flow: Flow, action: str, name: str, message: str) -> str:
    """108004 for a ``parameters`` rule ([unv] wording: ``mail-relay: No Mail Relay allowed``)."""
    return (
        f"{settings.classification}: ESMTP Parameter: {_words(settings, action)} "
        f"ESMTP Request from {flow.client} to {flow.server}; {name}: {message}"
    )


def flow_terminated(settings: SyslogSettings, flow: Flow) -> str:
    """507003, written when the engine closes the connection."""
    return (
        f"{settings.flow_terminated}: tcp flow from {flow.client} to {flow.server} "
        "terminated by inspection engine, reason - inspector disconnected, dropped packet."
    )


def tls_started(settings: SyslogSettings, flow: Flow) -> str:
    """[unv] 108007, written for ``allow-tls action log``."""
    return (
        f"{settings.tls_started}: TLS started on ESMTP session between client {flow.client} "
        f"and server {flow.server}"
    )


def address_char_replaced(settings: SyslogSettings, flow: Flow, data: str) -> str:
    """[unv] 108002: a special character in a mail address was replaced."""
    return (
        f"{settings.address_char_replaced}: SMTP replaced string: out {flow.client_ip} "
        f"in {flow.server_ip} data: {data}"
    )


def address_pattern_dropped(settings: SyslogSettings, flow: Flow, data: str) -> str:
    """[unv] 108003: connection ended over a special character in a mail address."""
    return (
        f"{settings.address_pattern_dropped}: Terminating ESMTP/SMTP connection; malicious "
        f"pattern detected in the mail address from {flow.client} to {flow.server}. Data:{data}"
    )


#: An access group refused a new connection (level 4, as the ASA logs it by default).
ACL_DENIED = "%ASA-4-106023"


def acl_denied(flow: Flow, acl: str, entry_hash: str = "0x0") -> str:
    """106023: ``Deny tcp src IF:A/P dst IF:B/P by access-group "ACL" [0xHASH, 0x0]``.

    The first hash is the denying entry's; the implicit deny at the end of the
    list has none (``0x0``).
    """
    return (
        f"{ACL_DENIED}: Deny tcp src {flow.client} dst {flow.server} "
        f'by access-group "{acl}" [{entry_hash}, 0x0]'
    )


#: Connections built and torn down (level 6, informational).
CONN_BUILT = "%ASA-6-302013"
CONN_TEARDOWN = "%ASA-6-302014"

#: Teardown reasons the relay can tell apart.  "TCP FINs", "TCP Reset-I/-O" and
#: "Conn-timeout" are the ASA's; [unv] the wording for an inspection's drop and for
#: ``clear conn``.
TEARDOWN_FINS = "TCP FINs"
TEARDOWN_RESET_INSIDE = "TCP Reset-I"
TEARDOWN_RESET_OUTSIDE = "TCP Reset-O"
TEARDOWN_IDLE = "Conn-timeout"
TEARDOWN_INSPECTION = "Flow closed by inspection"
TEARDOWN_CLEARED = "Flow closed by clear conn"


def _outside_first(flow: Flow) -> tuple[str, str]:
    """(the end on the lower-security side, the other), as ``IF:A/P``."""
    if flow.client_interface == "outside":
        return flow.client, flow.server
    return flow.server, flow.client


def conn_built(flow: Flow, conn_id: int) -> str:
    """302013: ``Built inbound TCP connection N for outside:A/P (A/P) to inside:B/P (B/P)``.

    There is no NAT here, so the mapped address in brackets is the real one.
    """
    direction = "inbound" if flow.client_interface == "outside" else "outbound"
    first, second = _outside_first(flow)
    return (
        f"{CONN_BUILT}: Built {direction} TCP connection {conn_id} for "
        f"{first} ({first.split(':', 1)[1]}) to {second} ({second.split(':', 1)[1]})"
    )


def conn_teardown(flow: Flow, conn_id: int, duration: str, size: int, reason: str) -> str:
    """302014: ``Teardown TCP connection N for outside:A/P to inside:B/P duration H:MM:SS
    bytes N REASON``."""
    first, second = _outside_first(flow)
    return (
        f"{CONN_TEARDOWN}: Teardown TCP connection {conn_id} for {first} to {second} "
        f"duration {duration} bytes {size} {reason}"
    )
