"""The hub sender on loopback sockets, against a small receiving hub written here.

The peer speaks through the sans-I/O server core, answers EHLO with the
keywords of a 2010 receive connector (``greeting.ehlo_keywords``), does
X-ANONYMOUSTLS with the organization PKI and checks X-EXPS EXCHANGEAUTH the
way a receiving hub does (``PeerVerifier`` + ``exchange_auth.check_blob``).
Addresses are 127.88.x.y.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sitemail.clock import SYSTEM_CLOCK
from sitemail.diagnose.logs import read_protocol_log
from sitemail.firewall.inspection import EsmtpInspector
from sitemail.firewall.relay import Relay, Route
from sitemail.org.defaults import default_receive_connectors
from sitemail.org.model import (
    AcceptedDomain,
    AuthMechanism,
    LoggingLevel,
    Organization,
    ReceiveConnector,
    Server,
    ServerRole,
)
from sitemail.org.pki import CertFiles, OrganizationPki, PeerIdentity, server_ssl_context
from sitemail.org.sqlite_directory import SqliteDirectory
from sitemail.protocols.smtp import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    Bdat,
    BodyChunk,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfMessage,
    Helo,
    Mail,
    NeedsReply,
    Quit,
    Rcpt,
    Reply,
    ServerConnection,
    StartTls,
    XAnonymousTls,
    XExps,
    replies,
)
from sitemail.server.line_connection import LineConnection, SessionClosing, listen
from sitemail.server.line_session import ClosedBy, CoreSignals, run_session
from sitemail.transport import exchange_auth
from sitemail.transport.greeting import ehlo_keywords, hello_text
from sitemail.transport.protocol_log import ProtocolLog, ProtocolLoggingLevel
from sitemail.transport.receive_config import (
    ReceiveConfig,
    ReceiveEnvironment,
    ThreadedAcceptor,
    tls_contexts,
)
from sitemail.transport.receive_listeners import ReceiveListeners
from sitemail.transport.send_decision import SendAuth, SendPolicy
from sitemail.transport.smtp_sender import (
    BodyReadError,
    Credentials,
    OutboundMessage,
    RecipientStatus,
    SenderSettings,
    SendResult,
    Target,
    certificate_thumbprint,
    file_body,
    send_message,
    send_session_logs,
    tls_negotiated_text,
)
from sitemail.transport.submission import Envelope, EnvelopeRecipient, SpoolWriter

ORG = "Contoso"
BANNER = "220 EX02.contoso.com Microsoft ESMTP MAIL Service ready at Tue, 1 Mar 2011 10:00:00 +0000"
SENDER_IP = "127.88.1.1"  # the sending hub's own address
HUB_A = "127.88.2.11"
HUB_B = "127.88.2.12"
NOBODY = "127.88.2.99"  # nothing listens here
FIREWALL = "127.88.3.1"
MESSAGE = (
    b"From: alice@contoso.com\r\nTo: bob@fabrikam.com\r\nSubject: hello\r\n"
    b"Message-ID: <1@EX01.contoso.com>\r\n\r\n"
    b"line one\r\n.a line starting with a dot\r\n..two dots\r\nlast line\r\n"
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 20)

    return asyncio.run(bounded())


def default_connector(**changes: Any) -> ReceiveConnector:
    return ReceiveConnector(server="EX02", name="Default EX02", **changes)


# --- the receiving hub ----------------------------------------------------------------


@dataclass
class Seen:
    commands: list[str] = field(default_factory=list)
    client_ips: list[str] = field(default_factory=list)
    tls_peers: list[PeerIdentity | None] = field(default_factory=list)
    authenticated: list[str] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)


Keywords = Callable[[ServerConnection], list[str]]

#: How long a peer's session waits for the sender's next line (a test ends far sooner).
PEER_READ_TIMEOUT = 30.0
#: How long leaving ``async with Peer(...)`` lets open sessions end before cancelling them.
PEER_SESSION_GRACE = 2.0


class Peer:
    """A receiving hub on ``address``; every behaviour the tests need is a parameter.

    Its connections run on the product's line session runner
    (:func:`~sitemail.server.line_session.run_session` over
    :func:`~sitemail.server.line_connection.listen`), one :class:`PeerSession`
    each; this class holds the policy and what the sessions saw.
    """

    def __init__(
        self,
        address: str,
        pki: OrganizationPki | None,
        *,
        name: str = "EX02",
        connector: ReceiveConnector | None = None,
        keywords: Keywords | None = None,
        require_auth: bool = False,
        rcpt: Callable[[str], Reply] | None = None,
        tls: str = "ok",  # "ok" | "garbage": what follows our 220 to a TLS command
        x_exps_reply: Reply | None = None,
        drop_after: str | None = None,  # a verb after which the connection is cut
        silent: bool = False,  # no banner at all
        ask_client_certificate: bool = True,  # in X-ANONYMOUSTLS, as receiving hubs do
        ehlo_reply: Reply | None = None,  # instead of the 250 (a HELO-only server)
        stall_after_354: bool = False,  # stop reading once the body may come
    ) -> None:
        self.address = address
        self.pki = pki
        self.name = name
        self.fqdn = f"{name}.contoso.com"
        self.connector = connector or default_connector()
        self.keywords = keywords
        self.require_auth = require_auth
        self.rcpt = rcpt or (lambda _address: replies.RECIPIENT_OK)
        self.tls = tls
        self.x_exps_reply = x_exps_reply
        self.drop_after = drop_after
        self.silent = silent
        self.ask_client_certificate = ask_client_certificate
        self.ehlo_reply = ehlo_reply
        self.stall_after_354 = stall_after_354
        self.closing = asyncio.Event()
        """Set when the test leaves the peer: a stalled session ends then."""
        self.seen = Seen()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._internal_id = 0

    @property
    def target(self) -> Target:
        return Target(self.fqdn, self.address, self.port)

    async def __aenter__(self) -> Peer:
        self._server = await listen(self.address, 0, self._accept)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self.closing.set()
        self._server.close()
        if self._sessions:
            _done, pending = await asyncio.wait(self._sessions, timeout=PEER_SESSION_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _accept(self, conn: LineConnection) -> None:
        task = asyncio.ensure_future(self._serve(conn))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _serve(self, conn: LineConnection) -> None:
        try:
            await run_session(conn, PeerSession(self, conn))
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def next_internal_id(self) -> int:
        self._internal_id += 1
        return self._internal_id

    def tls_context(self, *, anonymous: bool) -> ssl.SSLContext:
        assert self.pki is not None
        files = self.pki.server_files(self.name)
        if anonymous and self.ask_client_certificate:
            return server_ssl_context(files, ca_file=self.pki.ca_file, client_certs="optional")
        return server_ssl_context(files)


class PeerSession:
    """One connection of a :class:`Peer`: its policy over the SMTP server core."""

    signals = CoreSignals(NEED_DATA, PAUSED, ConnectionClosed)

    def __init__(self, peer: Peer, client: LineConnection) -> None:
        self.peer = peer
        self.client = client
        self.conn = ServerConnection()
        remote = client.peer
        self.client_ip = remote[0] if remote else ""
        self.identity: PeerIdentity | None = None
        self.body = bytearray()

    @property
    def core(self) -> ServerConnection:
        return self.conn

    async def begin(self) -> None:
        self.peer.seen.client_ips.append(self.client_ip)
        if not self.peer.silent:
            self.client.write(BANNER.encode() + b"\r\n")

    def read_timeout(self) -> float:
        return PEER_READ_TIMEOUT

    async def timed_out(self) -> None:
        self.client.write(self.conn.send_unsolicited(replies.CONNECTION_TIMED_OUT))
        raise SessionClosing

    async def end(self, closed_by: ClosedBy) -> None:
        self.body.clear()

    async def handle(self, event: object) -> None:
        seen = self.peer.seen
        if isinstance(event, BodyChunk):
            self.body += event.data
            return
        if isinstance(event, Bdat):
            seen.commands.append(event.line)
            return
        assert isinstance(event, NeedsReply)
        if isinstance(event, Command) and not isinstance(event, AuthResponse):
            seen.commands.append(event.log_text)
            drop_after = self.peer.drop_after
            if drop_after and event.line.upper().startswith(drop_after):
                raise SessionClosing  # cut, without a reply
        reply = self._answer(event)
        if isinstance(event, (StartTls, XAnonymousTls)) and reply.code == 220:
            await self._start_tls(reply, anonymous=isinstance(event, XAnonymousTls))
            return
        self.client.write(self.conn.send_reply(reply))
        if isinstance(event, Data) and self.peer.stall_after_354:
            # Read nothing more: the body backs up into the sender's socket.
            await self.client.drain()
            await self.peer.closing.wait()
            raise SessionClosing
        if isinstance(event, EndOfMessage):
            self.body = bytearray()
        if isinstance(event, Quit):
            raise SessionClosing

    async def _start_tls(self, go_ahead: Reply, *, anonymous: bool) -> None:
        data = self.conn.send_reply(go_ahead)
        if self.peer.tls == "garbage":
            # On purpose what a correct server never does: plaintext after its own
            # 220, where the sender expects a TLS server hello.
            self.client.write(data)
            await self.client.drain()
            self.client.write(b"this is not a TLS server hello\r\n")
            await self.client.drain()
            raise SessionClosing
        # The product's upgrade: pending plaintext is dropped, then the handshake.
        await self.client.start_tls(self.peer.tls_context(anonymous=anonymous), data)
        self.conn.tls_established()
        tls = self.client.ssl_object
        assert tls is not None and self.peer.pki is not None
        self.identity = self.peer.pki.verifier().identify_ssl(tls)
        self.peer.seen.tls_peers.append(self.identity)

    def _answer(self, event: NeedsReply) -> Reply:
        peer, conn = self.peer, self.conn
        if event.suggested_reply is not None and not isinstance(event, (EndOfMessage, EndOfChunk)):
            return event.suggested_reply
        if isinstance(event, Ehlo):
            if peer.ehlo_reply is not None:
                return peer.ehlo_reply
            keywords = (
                peer.keywords(conn)
                if peer.keywords
                else ehlo_keywords(
                    peer.connector,
                    secure=conn.secure,
                    anonymous_tls=conn.tls == "X-ANONYMOUSTLS",
                )
            )
            return Reply.of(250, hello_text(peer.fqdn, self.client_ip), *keywords)
        if isinstance(event, Helo):
            return Reply.of(250, hello_text(peer.fqdn, self.client_ip))
        if isinstance(event, (StartTls, XAnonymousTls)):
            return replies.TLS_READY
        if isinstance(event, XExps):
            if peer.x_exps_reply is not None:
                return peer.x_exps_reply
            outcome = exchange_auth.check_blob(event.blob, self.identity, peer.fqdn)
            if outcome.server is None:
                return replies.AUTH_UNSUCCESSFUL
            peer.seen.authenticated.append(outcome.server)
            return Reply.of(235, exchange_auth.make_mutual_blob(peer.name))
        if isinstance(event, Auth):
            return replies.AUTH_USERNAME_PROMPT
        if isinstance(event, AuthResponse):
            logins = peer.seen.logins
            text = base64.b64decode(event.line).decode()
            if not logins or logins[-1][1]:
                logins.append((text, ""))
                return replies.AUTH_PASSWORD_PROMPT
            logins[-1] = (logins[-1][0], text)
            return replies.AUTH_SUCCESSFUL
        if isinstance(event, Mail):
            if peer.require_auth and not conn.authenticated:
                return replies.CLIENT_NOT_AUTHENTICATED
            return replies.SENDER_OK
        if isinstance(event, Rcpt):
            return peer.rcpt(event.address)
        if isinstance(event, Data):
            return replies.START_MAIL_INPUT
        if isinstance(event, EndOfChunk):
            return Reply.of(250, f"{event.size} bytes received", enhanced="2.6.0")
        if isinstance(event, EndOfMessage):
            peer.seen.messages.append(bytes(self.body))
            return replies.queued_mail("<1@EX01.contoso.com>", peer.next_internal_id())
        if isinstance(event, Quit):
            return replies.CLOSING
        return replies.UNRECOGNIZED_COMMAND


def masked_by_asa(conn: ServerConnection) -> list[str]:
    """Spec 4.5's masked EHLO reply: what the sender sees behind an ASA."""
    return ["SIZE", "PIPELINING", "XXXXXXXA"]


# --- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OrganizationPki:
    org = OrganizationPki.open_or_create(tmp_path_factory.mktemp("pki"), ORG)
    for name in ("EX01", "EX02", "EX03"):
        org.ensure_server(name, f"{name}.contoso.com")
    return org


def hub_settings(pki: OrganizationPki, **changes: Any) -> SenderSettings:
    base: dict[str, Any] = {
        "fqdn": "EX01.contoso.com",
        "server_name": "EX01",
        "cert_files": pki.server_files("EX01"),
        "verifier": pki.verifier(),
        "reply_timeout": 5.0,
        "connect_timeout": 5.0,
        "quit_timeout": 1.0,
    }
    base.update(changes)
    return SenderSettings(**base)


def message(*recipients: str, size: int | None = len(MESSAGE)) -> OutboundMessage:
    rcpts = recipients or ("bob@fabrikam.com",)
    return OutboundMessage(
        "alice@contoso.com", tuple(EnvelopeRecipient(r) for r in rcpts), size=size
    )


def body_of(data: bytes, chunk: int = 7) -> Callable[[], Iterable[bytes]]:
    """The message in small pieces, so that chunk boundaries fall anywhere."""
    return lambda: (data[i : i + chunk] for i in range(0, len(data), chunk))


async def send(
    targets: list[Target],
    settings: SenderSettings,
    msg: OutboundMessage | None = None,
    body: Callable[[], Iterable[bytes]] | None = None,
    log_dir: Path | None = None,
) -> SendResult:
    logs = None
    if log_dir is not None:
        protocol_log = ProtocolLog.send(log_dir)
        logs = send_session_logs(protocol_log, level=ProtocolLoggingLevel.VERBOSE)
    try:
        return await send_message(
            targets,
            msg or message(),
            body or body_of(MESSAGE),
            settings,
            local_address=SENDER_IP,
            session_logs=logs,
        )
    finally:
        if log_dir is not None:
            protocol_log.close()


def sessions(log_dir: Path) -> dict[str, list[tuple[str, str, str]]]:
    """(event, data, context) rows of each session in the SmtpSend log, in order."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for row in read_protocol_log(log_dir):
        out.setdefault(row.session_id, []).append((row.event, row.data, row.context))
    return out


LAST_ERROR_5_7_3 = (
    '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange'
    ' Server authentication." Attempted failover to alternate host, but that did not succeed.'
    " Either there are no alternate hosts, or delivery failed to all alternate hosts."
)


# --- hub to hub -------------------------------------------------------------------------


def test_hub_to_hub_with_anonymous_tls_and_exchange_auth(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki) as peer:
            return await send([peer.target], hub_settings(pki), log_dir=tmp_path), peer

    result, peer = run(scenario())
    assert result.last_error is None
    assert [(r.address, r.status) for r in result.recipients] == [
        ("bob@fabrikam.com", RecipientStatus.DELIVERED)
    ]
    assert str(result.final_reply) == (
        "250 2.6.0 <1@EX01.contoso.com> [InternalId=1] Queued mail for delivery"
    )
    assert result.recipients[0].reply == result.final_reply
    # The receiver recognised the sending server by its certificate and its blob.
    assert [type(p).__name__ for p in peer.seen.tls_peers] == ["ServerIdentity"]
    assert peer.seen.authenticated == ["EX01"]
    assert peer.seen.client_ips == [SENDER_IP]
    assert peer.seen.commands == [
        "EHLO EX01.contoso.com",
        "X-ANONYMOUSTLS",
        "EHLO EX01.contoso.com",
        "X-EXPS EXCHANGEAUTH SHA256 ",
        f"MAIL FROM:<alice@contoso.com> SIZE={len(MESSAGE)}",
        "RCPT TO:<bob@fabrikam.com>",
        f"BDAT {len(MESSAGE)} LAST",
        "QUIT",
    ]
    assert peer.seen.messages == [MESSAGE]

    rows = next(iter(sessions(tmp_path).values()))
    events = [(e, d, c) for e, d, c in rows if e != "<"]
    receiver_cert = x509.load_pem_x509_certificate(pki.server_files("EX02").cert.read_bytes())
    thumbprint = certificate_thumbprint(receiver_cert.public_bytes(Encoding.DER))
    assert events[:4] == [
        ("*", "", "attempting to connect"),
        ("+", "", ""),
        (">", "EHLO EX01.contoso.com", ""),
        (">", "X-ANONYMOUSTLS", ""),
    ]
    tls_row = events[4]
    assert tls_row[0] == "*" and tls_row[2].startswith("TLS protocol SP_PROT_TLS1_")
    assert "negotiation succeeded using bulk encryption algorithm CALG_AES_" in tls_row[2]
    assert events[5:] == [
        ("*", "", "Received certificate"),
        ("*", thumbprint, "Certificate thumbprint"),
        (">", "EHLO EX01.contoso.com", ""),
        (">", "X-EXPS EXCHANGEAUTH SHA256 ", ""),  # the blob is never logged
        (">", f"MAIL FROM:<alice@contoso.com> SIZE={len(MESSAGE)}", ""),
        (">", "RCPT TO:<bob@fabrikam.com>", ""),
        (">", f"BDAT {len(MESSAGE)} LAST", ""),
        (">", "QUIT", ""),
        ("-", "", "Local"),
    ]
    received = [d for e, d, _ in rows if e == "<"]
    assert received[0] == BANNER
    assert "250-X-ANONYMOUSTLS" in received
    assert "250-X-EXPS EXCHANGEAUTH GSSAPI NTLM" in received
    assert "235 <authentication information>" in received  # the mutual blob neither
    assert received[-1] == "250 2.6.0 <1@EX01.contoso.com> [InternalId=1] Queued mail for delivery"


def test_data_is_used_without_chunking_and_dots_are_stuffed(pki: OrganizationPki) -> None:
    async def scenario() -> Peer:
        peer = Peer(HUB_A, pki, connector=default_connector(chunking_enabled=False))
        async with peer:
            result = await send([peer.target], hub_settings(pki))
        assert result.delivered
        return peer

    peer = run(scenario())
    assert "DATA" in peer.seen.commands
    assert not any(c.startswith("BDAT") for c in peer.seen.commands)
    # The receiver's core unstuffs: the octets arrive as they were on disk.
    assert peer.seen.messages == [MESSAGE]


@pytest.mark.parametrize(
    ("size", "chunks"),
    [
        (2500, ["BDAT 1000", "BDAT 1000", "BDAT 500 LAST"]),
        (2000, ["BDAT 1000", "BDAT 1000 LAST"]),  # no empty last chunk is needed
        (0, ["BDAT 0 LAST"]),
    ],
)
def test_bdat_chunks(pki: OrganizationPki, size: int, chunks: list[str]) -> None:
    data = bytes(i % 251 for i in range(size))  # binary, with bare CR/LF and dots

    async def scenario() -> Peer:
        async with Peer(HUB_A, pki) as peer:
            result = await send(
                [peer.target],
                hub_settings(pki, bdat_chunk_size=1000),
                message(size=size),
                body_of(data, chunk=333),
            )
        assert result.delivered
        return peer

    peer = run(scenario())
    assert [c for c in peer.seen.commands if c.startswith("BDAT")] == chunks
    assert peer.seen.messages == [data]


def test_body_from_a_spool_file(pki: OrganizationPki, tmp_path: Path) -> None:
    spool = tmp_path / "message.eml"
    spool.write_bytes(MESSAGE * 50)

    async def scenario() -> Peer:
        async with Peer(HUB_A, pki) as peer:
            result = await send_message(
                [peer.target],
                message(size=len(MESSAGE) * 50),
                file_body(spool, chunk_size=100),
                hub_settings(pki, bdat_chunk_size=4096),
            )
        assert result.delivered
        return peer

    assert run(scenario()).seen.messages == [MESSAGE * 50]


# --- the story: a firewall masks the EHLO reply ---------------------------------------------


def test_masked_ehlo_fails_every_hub_with_the_exact_last_error(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[SendResult, Peer, Peer]:
        async with (
            Peer(HUB_A, pki, keywords=masked_by_asa) as a,
            Peer(HUB_B, pki, name="EX03", keywords=masked_by_asa) as b,
        ):
            result = await send([a.target, b.target], hub_settings(pki), log_dir=tmp_path)
        return result, a, b

    result, a, b = run(scenario())
    assert result.last_error == LAST_ERROR_5_7_3
    assert result.all_targets_failed and result.target is None
    assert [(t.target.address, str(t.reply), t.failed_over) for t in result.attempts] == [
        (HUB_A, "451 5.7.3 Cannot achieve Exchange Server authentication", True),
        (HUB_B, "451 5.7.3 Cannot achieve Exchange Server authentication", True),
    ]
    assert [(r.address, r.status) for r in result.recipients] == [
        ("bob@fabrikam.com", RecipientStatus.DEFERRED)
    ]
    # Neither hub saw anything but EHLO and QUIT: no mail went out unauthenticated.
    assert a.seen.commands == b.seen.commands == ["EHLO EX01.contoso.com", "QUIT"]

    found = sessions(tmp_path)
    assert list(found) == [t.session_id for t in result.attempts]
    for attempt, peer in zip(result.attempts, (a, b), strict=True):
        assert found[attempt.session_id] == [
            ("*", "", "attempting to connect"),
            ("+", "", ""),
            ("<", BANNER, ""),
            (">", "EHLO EX01.contoso.com", ""),
            ("<", f"250-{peer.fqdn} Hello [{SENDER_IP}]", ""),
            ("<", "250-SIZE", ""),
            ("<", "250-PIPELINING", ""),
            ("<", "250 XXXXXXXA", ""),
            ("*", "", "451 5.7.3 Cannot achieve Exchange Server authentication"),
            (">", "QUIT", ""),
            ("-", "", "Local"),
        ]
    rows = list(read_protocol_log(tmp_path))
    assert {r.connector_id for r in rows} == {"Intra-Organization SMTP Send Connector"}
    first = [r for r in rows if r.session_id == result.attempts[0].session_id]
    assert [r.sequence_number for r in first] == list(range(len(first)))
    assert first[0].local_endpoint == ""  # not connected yet
    assert first[1].local_endpoint.startswith(f"{SENDER_IP}:")
    assert {r.remote_endpoint for r in first} == {result.attempts[0].target.endpoint}


def test_through_an_asa_inspecting_esmtp(pki: OrganizationPki) -> None:
    """The real inspection engine between two 2010 hubs: the seed's fault, end to end."""

    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki) as peer:
            relay = Relay(
                [Route(FIREWALL, HUB_A, ((peer.port, 25),))],
                inspector_for=lambda _connection: EsmtpInspector(),
            )
            await relay.start()
            try:
                target = Target(peer.fqdn, FIREWALL, peer.port)
                return await send([target], hub_settings(pki)), peer
            finally:
                await relay.stop()

    result, peer = run(scenario())
    assert result.last_error == LAST_ERROR_5_7_3
    assert peer.seen.client_ips == [SENDER_IP]  # the relay keeps the source address
    assert "X-ANONYMOUSTLS" not in peer.seen.commands


def test_without_exchange_auth_on_the_receiver_starttls_does_not_help(
    pki: OrganizationPki,
) -> None:
    connector = default_connector(
        auth_mechanism=[AuthMechanism.TLS, AuthMechanism.INTEGRATED, AuthMechanism.BASIC_AUTH]
    )

    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, connector=connector) as peer:
            return await send([peer.target], hub_settings(pki)), peer

    result, peer = run(scenario())
    assert result.last_error == LAST_ERROR_5_7_3
    assert peer.seen.commands == ["EHLO EX01.contoso.com", "QUIT"]


# --- other failures of one target -----------------------------------------------------------


def test_refused_connection_fails_over_to_the_next_hub(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_B, pki, name="EX03") as peer:
            dead = Target("EX02.contoso.com", NOBODY, peer.port)
            return await send([dead, peer.target], hub_settings(pki), log_dir=tmp_path), peer

    result, peer = run(scenario())
    assert result.last_error is None
    assert result.target == peer.target
    assert [(t.target.address, t.failed_over) for t in result.attempts] == [
        (NOBODY, True),
        (HUB_B, False),
    ]
    assert str(result.attempts[0].reply) == "421 4.2.1 Unable to connect"
    assert result.delivered and peer.seen.authenticated == ["EX01"]
    refused = sessions(tmp_path)[result.attempts[0].session_id]
    assert refused[0] == ("*", "", "attempting to connect")
    assert refused[-1] == ("*", "", "421 4.2.1 Unable to connect")
    assert not any(e in "+-" for e, _, _ in refused)


def test_nobody_listening_anywhere_gives_the_connect_last_error(pki: OrganizationPki) -> None:
    result = run(send([Target("EX02.contoso.com", NOBODY, 2525)], hub_settings(pki)))
    assert result.last_error == (
        '451 4.4.0 Primary target IP address responded with: "421 4.2.1 Unable to connect."'
        " Attempted failover to alternate host, but that did not succeed. Either there are no"
        " alternate hosts, or delivery failed to all alternate hosts."
    )


def test_refused_exchange_auth_is_454(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        refusal = Reply.of(535, "Authentication unsuccessful", enhanced="5.7.3")
        async with Peer(HUB_A, pki, x_exps_reply=refusal) as peer:
            return await send([peer.target], hub_settings(pki))

    result = run(scenario())
    assert result.last_error == (
        '451 4.4.0 Primary target IP address responded with: "454 4.7.0 Temporary'
        ' authentication failure." Attempted failover to alternate host, but that did not'
        " succeed. Either there are no alternate hosts, or delivery failed to all alternate"
        " hosts."
    )


def test_a_receiver_outside_the_organization_fails_mutual_auth(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    stranger = OrganizationPki.open_or_create(tmp_path / "other", "Fabrikam")
    stranger.ensure_server("EX02", "EX02.contoso.com")

    async def scenario() -> SendResult:
        # Its certificate comes from another CA, and it accepts anything.
        accept_all = Reply.of(235, exchange_auth.make_mutual_blob("EX02"))
        async with Peer(
            HUB_A, stranger, x_exps_reply=accept_all, ask_client_certificate=False
        ) as peer:
            return await send([peer.target], hub_settings(pki))

    result = run(scenario())
    assert str(result.attempts[0].reply) == "454 4.7.0 Temporary authentication failure"


def test_missing_internal_certificate(pki: OrganizationPki, tmp_path: Path) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki) as peer:
            missing = CertFiles(tmp_path / "missing.pem", tmp_path / "missing.key")
            settings = hub_settings(pki, cert_files=missing)
            return await send([peer.target], settings), peer

    result, peer = run(scenario())
    assert str(result.attempts[0].reply) == (
        "451 5.7.3 Cannot load Internal Transport Certificate. Exchange Server authentication"
        " failed."
    )
    assert "X-ANONYMOUSTLS" not in peer.seen.commands


def test_failed_tls_handshake(pki: OrganizationPki, tmp_path: Path) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, tls="garbage") as peer:
            return await send([peer.target], hub_settings(pki), log_dir=tmp_path)

    result = run(scenario())
    assert str(result.attempts[0].reply) == "421 4.4.1 Connection timed out"
    rows = next(iter(sessions(tmp_path).values()))
    info = [c for e, _, c in rows if e == "*"]
    assert any(c.startswith("TLS negotiation failed with error ") for c in info)
    assert rows[-1] == ("-", "", "Local")
    assert (">", "QUIT", "") not in rows  # nothing can be said over a broken TLS layer


def test_silent_peer_times_out(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, silent=True) as peer:
            return await send([peer.target], hub_settings(pki, reply_timeout=0.3))

    result = run(scenario())
    assert str(result.attempts[0].reply) == "421 4.4.1 Connection timed out"


def test_connection_dropped_mid_session(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, drop_after="MAIL") as peer:
            return await send([peer.target], hub_settings(pki))

    result = run(scenario())
    assert str(result.attempts[0].reply) == "421 4.4.2 Connection dropped"
    assert result.last_error is not None and '"421 4.4.2 Connection dropped."' in result.last_error


# --- per-recipient results --------------------------------------------------------------


def test_permanent_and_transient_recipient_replies(pki: OrganizationPki) -> None:
    def rcpt(address: str) -> Reply:
        if address.startswith("nobody"):
            return replies.USER_UNKNOWN
        if address.startswith("later"):
            return replies.TOO_MANY_RECIPIENTS
        return replies.RECIPIENT_OK

    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, rcpt=rcpt) as peer:
            msg = message("bob@fabrikam.com", "nobody@fabrikam.com", "later@fabrikam.com")
            return await send([peer.target], hub_settings(pki), msg), peer

    result, peer = run(scenario())
    assert result.last_error is None
    assert [(r.address, r.status, str(r.reply)) for r in result.recipients] == [
        (
            "bob@fabrikam.com",
            RecipientStatus.DELIVERED,
            "250 2.6.0 <1@EX01.contoso.com> [InternalId=1] Queued mail for delivery",
        ),
        ("nobody@fabrikam.com", RecipientStatus.FAILED, "550 5.1.1 User unknown"),
        ("later@fabrikam.com", RecipientStatus.DEFERRED, "452 4.5.3 Too many recipients"),
    ]
    assert result.failed[0].ndr_diagnostic == "Remote Server returned '550 5.1.1 User unknown'"
    assert len(peer.seen.messages) == 1


def test_no_recipient_accepted_sends_no_message(pki: OrganizationPki) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, rcpt=lambda _a: replies.USER_UNKNOWN) as peer:
            return await send([peer.target], hub_settings(pki)), peer

    result, peer = run(scenario())
    assert [r.status for r in result.recipients] == [RecipientStatus.FAILED]
    assert peer.seen.messages == []
    assert not any(c.startswith(("BDAT", "DATA")) for c in peer.seen.commands)


def test_anonymous_tls_without_x_exps_goes_on_and_meets_530(pki: OrganizationPki) -> None:
    """Spec 3.2: anonymous TLS up, no X-EXPS: unauthenticated, and the receiver says 530."""

    def keywords(conn: ServerConnection) -> list[str]:
        return ["PIPELINING", "CHUNKING"] if conn.secure else ["X-ANONYMOUSTLS", "CHUNKING"]

    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, keywords=keywords, require_auth=True) as peer:
            return await send([peer.target], hub_settings(pki)), peer

    result, peer = run(scenario())
    assert result.last_error is None  # a 5xx to MAIL is final: an NDR, not a retry
    assert [(r.status, r.ndr_diagnostic) for r in result.recipients] == [
        (RecipientStatus.FAILED, "Remote Server returned '530 5.7.1 Client was not authenticated'")
    ]
    assert "X-ANONYMOUSTLS" in peer.seen.commands
    assert not any(c.startswith("X-EXPS") for c in peer.seen.commands)


# --- smart host connectors ---------------------------------------------------------------


def smart_settings(pki: OrganizationPki, policy: SendPolicy, **changes: Any) -> SenderSettings:
    return hub_settings(pki, policy=policy, cert_files=None, verifier=None, **changes)


def internet_connector() -> ReceiveConnector:
    return default_connector(
        auth_mechanism=[
            AuthMechanism.TLS,
            AuthMechanism.BASIC_AUTH,
            AuthMechanism.BASIC_AUTH_REQUIRE_TLS,
        ]
    )


def test_smart_host_uses_opportunistic_starttls(pki: OrganizationPki) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, connector=internet_connector()) as peer:
            return await send([peer.target], smart_settings(pki, SendPolicy())), peer

    result, peer = run(scenario())
    assert result.delivered
    assert peer.seen.commands[:3] == ["EHLO EX01.contoso.com", "STARTTLS", "EHLO EX01.contoso.com"]
    assert peer.seen.tls_peers == [None]  # no client certificate towards a smart host


def test_smart_host_behind_a_masking_firewall_sends_in_plain_text(pki: OrganizationPki) -> None:
    async def scenario() -> Peer:
        async with Peer(HUB_A, pki, keywords=masked_by_asa) as peer:
            assert (await send([peer.target], smart_settings(pki, SendPolicy()))).delivered
        return peer

    assert run(scenario()).seen.messages == [MESSAGE]


def test_require_tls_without_starttls(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, keywords=masked_by_asa) as peer:
            policy = SendPolicy(SendAuth.NONE, require_tls=True)
            return await send([peer.target], smart_settings(pki, policy))

    result = run(scenario())
    assert result.last_error is not None
    assert '"451 5.7.3 STARTTLS is required to send mail."' in result.last_error


def test_basic_auth_after_starttls(pki: OrganizationPki) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, connector=internet_connector()) as peer:
            settings = smart_settings(
                pki,
                SendPolicy(SendAuth.BASIC_AUTH_REQUIRE_TLS),
                credentials=Credentials("relay@contoso.com", "s3cret"),
            )
            return await send([peer.target], settings), peer

    result, peer = run(scenario())
    assert result.delivered
    assert peer.seen.logins == [("relay@contoso.com", "s3cret")]
    assert peer.seen.commands[:4] == [
        "EHLO EX01.contoso.com",
        "STARTTLS",
        "EHLO EX01.contoso.com",
        "AUTH LOGIN",
    ]


def test_basic_auth_require_tls_without_starttls(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, keywords=lambda _c: ["AUTH LOGIN"]) as peer:
            settings = smart_settings(
                pki,
                SendPolicy(SendAuth.BASIC_AUTH_REQUIRE_TLS),
                credentials=Credentials("relay@contoso.com", "s3cret"),
            )
            return await send([peer.target], settings)

    result = run(scenario())
    assert str(result.attempts[0].reply) == "451 5.7.3 Require STARTTLS to do basic authentication"


def test_a_helo_only_peer_cannot_do_exchange_auth(pki: OrganizationPki) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, ehlo_reply=replies.UNRECOGNIZED_COMMAND) as peer:
            return await send([peer.target], hub_settings(pki)), peer

    result, peer = run(scenario())
    assert peer.seen.commands == ["EHLO EX01.contoso.com", "HELO EX01.contoso.com", "QUIT"]
    assert result.last_error == LAST_ERROR_5_7_3


def test_calls_that_cannot_work_are_refused(pki: OrganizationPki) -> None:
    with pytest.raises(ValueError, match="target"):
        run(send([], hub_settings(pki)))
    with pytest.raises(ValueError, match="credentials"):
        run(send([Target("x", NOBODY)], smart_settings(pki, SendPolicy(SendAuth.BASIC_AUTH))))


# --- against the real receiving side ------------------------------------------------------


class MemoryAcceptor:
    """The queue's hand-off, in memory: what a receive session accepted."""

    def __init__(self) -> None:
        self.accepted: list[tuple[Envelope, bytes]] = []

    def open_spool(self) -> MemorySpool:
        return MemorySpool()

    def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        assert isinstance(spool, MemorySpool)
        self.accepted.append((envelope, bytes(spool.data)))
        return 4000 + len(self.accepted)


class MemorySpool:
    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def size(self) -> int:
        return len(self.data)

    def write(self, data: bytes) -> None:
        self.data += data

    def abort(self) -> None:
        self.data.clear()


def test_against_the_hub_receive_server(pki: OrganizationPki, tmp_path: Path) -> None:
    hub = Server(
        name="EX02",
        fqdn="EX02.contoso.com",
        site="Site-B",
        roles=[ServerRole.HUB_TRANSPORT],
        addresses=[HUB_A],
    )
    organization = Organization(
        name=ORG, accepted_domains=[AcceptedDomain(domain_name="contoso.com", default=True)]
    )
    acceptor = MemoryAcceptor()
    starttls, anonymous = tls_contexts(pki.folder, "EX02")
    receive_log = ProtocolLog.receive(tmp_path / "SmtpReceive")
    offset = 27000  # Default EX02 binds 0.0.0.0:25, here HUB_A:27025
    env = ReceiveEnvironment(
        directory=SqliteDirectory(tmp_path / "directory.db"),
        clock=SYSTEM_CLOCK,
        acceptor=ThreadedAcceptor(acceptor),
        pki_dir=pki.folder,
        port_offset=offset,
        protocol_log=receive_log,
        verifier=pki.verifier(),
        starttls_context=starttls,
        anonymous_tls_context=anonymous,
    )
    connectors = [
        c.model_copy(update={"protocol_logging_level": LoggingLevel.VERBOSE})
        for c in default_receive_connectors(hub)
    ]
    config = ReceiveConfig(hub, organization, connectors)

    async def scenario() -> SendResult:
        listeners = ReceiveListeners(env, config)
        await listeners.apply(config)
        try:
            target = Target(hub.fqdn, HUB_A, 25 + offset)
            return await send([target], hub_settings(pki), message("bob@contoso.com"))
        finally:
            await listeners.close()

    result = run(scenario())
    receive_log.close()
    assert result.last_error is None, result.last_error
    assert [r.status for r in result.recipients] == [RecipientStatus.DELIVERED]
    assert str(result.final_reply) == (
        "250 2.6.0 <1@EX01.contoso.com> [InternalId=4001] Queued mail for delivery"
    )
    [(envelope, data)] = acceptor.accepted
    assert envelope.auth_as == "EX01"  # Exchange Server authentication succeeded
    assert [r.address for r in envelope.recipients] == ["bob@contoso.com"]
    assert data.endswith(MESSAGE.split(b"\r\n\r\n", 1)[1])
    received = [row.data for row in read_protocol_log(tmp_path / "SmtpReceive") if row.event == "<"]
    assert received[:4] == [
        "EHLO EX01.contoso.com",
        "X-ANONYMOUSTLS",
        "EHLO EX01.contoso.com",
        "X-EXPS EXCHANGEAUTH SHA256 ",
    ]


# --- smaller pieces ------------------------------------------------------------------------


def test_a_peer_that_stops_reading_times_the_data_out(pki: OrganizationPki) -> None:
    big = b"x" * 998 + b"\r\n"

    async def scenario() -> SendResult:
        async with Peer(
            HUB_A, pki, connector=default_connector(chunking_enabled=False), stall_after_354=True
        ) as peer:
            settings = hub_settings(pki, data_timeout=0.3)
            # 64 MB: more than loopback socket buffers hold, produced lazily.
            body = lambda: (big for _ in range(64 * 1024))  # noqa: E731
            return await send([peer.target], settings, message(size=None), body)

    result = run(scenario())
    assert str(result.attempts[0].reply) == "421 4.4.1 Connection timed out"


def test_an_unreadable_body_is_a_local_error(pki: OrganizationPki, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Peer(HUB_A, pki) as peer:
            await send_message(
                [peer.target],
                message(),
                file_body(tmp_path / "gone.eml"),
                hub_settings(pki),
                session_logs=send_session_logs(ProtocolLog.send(tmp_path / "log")),
            )

    with pytest.raises(BodyReadError, match=r"gone\.eml"):
        run(scenario())
    rows = next(iter(sessions(tmp_path / "log").values()))
    assert rows[-1] == ("-", "", "Local")


def test_envelope_parameters_on_the_wire(pki: OrganizationPki) -> None:
    queued = Envelope(
        mail_from="alice@contoso.com",
        recipients=(
            EnvelopeRecipient("bob@fabrikam.com", notify="SUCCESS,FAILURE", orcpt="rfc822;bob@x"),
            EnvelopeRecipient("carol@fabrikam.com"),
        ),
        internet_message_id="<1@EX01.contoso.com>",
        received_at=SYSTEM_CLOCK.now(),
        body_type="8BITMIME",
        ret="HDRS",
        envid="QQ314159",
    )

    async def scenario() -> Peer:
        async with Peer(HUB_A, pki) as peer:
            msg = OutboundMessage.from_envelope(queued, len(MESSAGE), queued.recipients[:1])
            assert (await send([peer.target], hub_settings(pki), msg)).delivered
        return peer

    commands = run(scenario()).seen.commands
    assert (
        f"MAIL FROM:<alice@contoso.com> SIZE={len(MESSAGE)} BODY=8BITMIME RET=HDRS ENVID=QQ314159"
        in commands
    )
    assert "RCPT TO:<bob@fabrikam.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@x" in commands
    assert not any("carol" in c for c in commands)  # only this next hop's recipients


@pytest.mark.parametrize(
    ("version", "cipher", "expected"),
    [
        (
            "TLSv1.3",
            ("TLS_AES_256_GCM_SHA384", "TLSv1.3", 256),
            "TLS protocol SP_PROT_TLS1_3_CLIENT negotiation succeeded using bulk encryption"
            " algorithm CALG_AES_256 with strength 256 bits, MAC hash algorithm CALG_SHA_384 with"
            " strength 384 bits and key exchange algorithm CALG_ECDHE with strength 256 bits",
        ),
        (
            "TLSv1.2",
            ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", 128),
            "TLS protocol SP_PROT_TLS1_2_CLIENT negotiation succeeded using bulk encryption"
            " algorithm CALG_AES_128 with strength 128 bits, MAC hash algorithm CALG_SHA_256 with"
            " strength 256 bits and key exchange algorithm CALG_ECDHE with strength 256 bits",
        ),
        (
            # The shape of the row in the spec's real 2010 log (section 4.4).
            "TLSv1",
            ("ECDHE-RSA-AES256-SHA", "TLSv1.0", 256),
            "TLS protocol SP_PROT_TLS1_0_CLIENT negotiation succeeded using bulk encryption"
            " algorithm CALG_AES_256 with strength 256 bits, MAC hash algorithm CALG_SHA1 with"
            " strength 160 bits and key exchange algorithm CALG_ECDHE with strength 256 bits",
        ),
    ],
)
def test_tls_log_text(version: str, cipher: tuple[str, str, int], expected: str) -> None:
    assert tls_negotiated_text(version, cipher) == expected
