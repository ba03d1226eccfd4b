"""Test-NetConnection and Test-SmtpConnectivity: TCP and SMTP reachability, as telnet shows it.

``Test-NetConnection ex-fl1 -Port 25`` connects from the address of the
server the shell runs on, through the firewalls when the target is in
another site (the lab's network paths), and shows what a person typing
``telnet ex-fl1 25`` and ``EHLO`` would see: with ESMTP inspection on the
path, ``220 ****...`` and ``250 XXXXXXXA`` (spec 3.5).

Test-SmtpConnectivity connects to every binding of every enabled receive
connector of a Hub and reports one row per binding (spec 9.3), from the
server itself, as the cmdlet runs on the server it tests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from sitemail.org.model import ReceiveConnector, Server
from sitemail.protocols.smtp.reply import is_last_reply_line, reply_code
from sitemail.shell import (
    BY_VALUE,
    STRING,
    BoundParameters,
    CmdletError,
    EnumType,
    IntType,
    Parameter,
    Record,
    TableView,
    cmdlet,
)

from .common import Inv, nonterminating
from .services import ExchangeServices

#: Ports whose servers speak first (SMTP, submission, POP3, IMAP4): their banner is read.
BANNER_PORTS = frozenset({25, 587, 110, 143})
CONNECT_TIMEOUT = 10.0
BANNER_TIMEOUT = 10.0
MAX_REPLY_LINES = 100

NET_TYPE = "TestNetConnectionResult"
SMTP_TYPE = "Microsoft.Exchange.Monitoring.SmtpConnectivityStatus"
SMTP_VIEW = TableView.of(
    SMTP_TYPE, "Server", "ReceiveConnector", "Binding", "EndPoint", "StatusCode"
)

COMMON_TCP_PORTS = {"HTTP": 80, "SMTP": 25, "RDP": 3389, "SMB": 445, "WINRM": 5985}


@dataclass
class Conversation:
    """What one TCP connection showed: did it connect, the banner, the EHLO reply."""

    connected: bool
    error: str = ""
    banner: list[str] = field(default_factory=list)
    ehlo: list[str] = field(default_factory=list)
    closed_early: bool = False


def read_reply(sock: socket.socket) -> tuple[list[str], bool]:
    """One reply: SMTP lines until the one without a dash, or a single other line.

    Returns the lines and whether the peer closed the connection first.
    """
    lines: list[str] = []
    buffer = b""
    while len(lines) < MAX_REPLY_LINES:
        while b"\n" not in buffer:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                return lines, False
            except OSError:  # reset by the peer: as good as closed
                chunk = b""
            if not chunk:
                if buffer:
                    lines.append(buffer.decode("utf-8", "replace").rstrip("\r\n"))
                return lines, True
            buffer += chunk
        raw, _, buffer = buffer.partition(b"\n")
        line = raw.decode("utf-8", "replace").rstrip("\r")
        lines.append(line)
        if reply_code(line) is None or is_last_reply_line(line):
            break
    return lines, False


def converse(
    source: str, address: str, port: int, *, ehlo_name: str | None, read_banner: bool
) -> Conversation:
    """Connect from ``source`` to ``address:port``, read the banner, say EHLO, QUIT."""
    try:
        sock = socket.create_connection(
            (address, port), timeout=CONNECT_TIMEOUT, source_address=(source, 0)
        )
    except OSError as error:
        return Conversation(False, error.strerror or str(error))
    with sock:
        if not read_banner:
            return Conversation(True)
        sock.settimeout(BANNER_TIMEOUT)
        banner, closed = read_reply(sock)
        talk = Conversation(True, banner=banner, closed_early=closed)
        if closed or not banner or not banner[0].startswith("220") or ehlo_name is None:
            return talk
        try:
            sock.sendall(f"EHLO {ehlo_name}\r\n".encode("ascii"))
            talk.ehlo, talk.closed_early = read_reply(sock)
            sock.sendall(b"QUIT\r\n")
            read_reply(sock)
        except OSError as error:
            talk.error = error.strerror or str(error)
        return talk


# ------------------------------------------------------------ Test-NetConnection


@cmdlet(
    "Test-NetConnection",
    Parameter(
        "ComputerName", STRING, position=0, mandatory=True, help="Server name, FQDN or address."
    ),
    Parameter("Port", IntType(1, 65535), help="The TCP port to test, e.g. 25."),
    Parameter(
        "CommonTCPPort",
        EnumType("CommonTCPPort", list(COMMON_TCP_PORTS)),
        help="A well-known port by name: SMTP, HTTP, RDP, SMB, WINRM.",
    ),
    Parameter(
        "InformationLevel",
        EnumType("InformationLevel", ["Detailed", "Quiet"]),
        help="Quiet: only True or False.",
    ),
    Parameter(
        "Server",
        STRING,
        help="sitemail: test from this server instead of the one the shell runs on.",
    ),
    aliases=("tnc",),
    synopsis="Connects to a TCP port from this server's address and shows the banner, as telnet.",
    description=(
        "Connections to another site pass through the firewalls, as the servers' own do; "
        "for SMTP ports the banner and the reply to EHLO are shown."
    ),
    examples=("Test-NetConnection ex-fl1 -Port 25", "tnc EX-FL1 -CommonTCPPort SMTP"),
)
@nonterminating
def test_net_connection(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    services = inv.services
    source_name = params.typed("Server", str)
    source = services.server(source_name) if source_name else services.local_server()
    target = str(params["ComputerName"])
    port = params.typed("Port", int)
    common = params.typed("CommonTCPPort", str)
    if port is None and common is not None:
        port = COMMON_TCP_PORTS[common]
    if port is None:
        raise CmdletError(
            "sitemail's Test-NetConnection tests TCP ports only (no ICMP in the lab): "
            "add -Port, e.g. -Port 25."
        )
    _, address = services.reach(source, target)
    source_address = services.address(source)
    talk = converse(
        source_address,
        address,
        services.port(port),
        ehlo_name=source.fqdn,
        read_banner=port in BANNER_PORTS,
    )
    if not talk.connected:
        inv.write_warning(f"TCP connect to {target}:{port} failed ({talk.error})")
    if params.get("InformationLevel") == "Quiet":
        return [talk.connected]
    return [
        Record(
            NET_TYPE,
            [
                ("ComputerName", target),
                ("RemoteAddress", address),
                ("RemotePort", port),
                ("SourceAddress", source_address),
                ("TcpTestSucceeded", talk.connected),
                ("Banner", "\n".join(talk.banner) or None),
                ("EhloResponse", "\n".join(talk.ehlo) or None),
            ],
        )
    ]


# --------------------------------------------------------- Test-SmtpConnectivity


def status_code(talk: Conversation) -> str:
    """Spec 9.3's StatusCode for what the connection showed."""
    if not talk.connected:
        return "Unable to connect"
    code = reply_code(talk.banner[0]) if talk.banner else None
    if code is None or code < 200 or code >= 600 or 300 <= code < 400:
        return "External error"
    return {2: "Success", 4: "Transient error", 5: "Permanent error"}[code // 100]


def _details(talk: Conversation) -> str:
    if not talk.connected:
        return talk.error
    if talk.banner:
        return "\n".join(talk.banner)
    if talk.closed_early:
        return "The connection was closed without a banner."
    return "No banner was received within the time allowed."


def _endpoint(services: ExchangeServices, server: Server, binding: str) -> tuple[str, int]:
    host, _, port = binding.rpartition(":")
    address = services.address(server) if host == "0.0.0.0" else host
    return address, int(port)


def smtp_rows(services: ExchangeServices, server: Server) -> list[Record]:
    connectors = [
        c
        for c in services.directory.list(ReceiveConnector)
        if c.server.casefold() == server.name.casefold() and c.enabled
    ]
    rows = []
    for connector in connectors:
        for binding in connector.bindings:
            address, port = _endpoint(services, server, binding)
            talk = converse(
                services.address(server),
                address,
                services.port(port),
                ehlo_name=None,
                read_banner=True,
            )
            rows.append(
                Record(
                    SMTP_TYPE,
                    [
                        ("Server", server.name),
                        ("ReceiveConnector", connector.name),
                        ("Binding", binding),
                        ("EndPoint", f"{address}:{port}"),
                        ("StatusCode", status_code(talk)),
                        ("Details", _details(talk)),
                    ],
                )
            )
    return rows


@cmdlet(
    "Test-SmtpConnectivity",
    Parameter(
        "Identity",
        STRING,
        position=0,
        pipeline=BY_VALUE,
        help="The Hub Transport server to test (default: the server the shell runs on).",
    ),
    synopsis="Connects to every binding of every receive connector of a server.",
    description="One row per binding: Success, Unable to connect, Transient error, "
    "Permanent error or External error, with the server's banner in Details.",
    examples=("Test-SmtpConnectivity EX-FL1", "Get-TransportServer | Test-SmtpConnectivity"),
    output_type=SMTP_TYPE,
    views=(SMTP_VIEW,),
)
@nonterminating
def test_smtp_connectivity(
    item: object | None, params: BoundParameters, inv: Inv
) -> Iterable[object]:
    name = params.typed("Identity", str)
    server = inv.services.server(name) if name else inv.services.local_server()
    if not server.is_hub:
        raise CmdletError(
            f"Server {server.name} doesn't have the Exchange 2010 Hub Transport role; it has no "
            "receive connectors to test."
        )
    return smtp_rows(inv.services, server)


DEFINITIONS = (test_net_connection, test_smtp_connectivity)
