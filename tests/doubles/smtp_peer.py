"""A small receiving hub for the sender's tests: the far end of an SMTP session, with faults.

:class:`Peer` listens on a loopback address and runs each connection on the
product's line session runner (:func:`sitemail.server.line_session.run_session`
over :func:`sitemail.server.line_connection.listen`), as every SMTP server of
sitemail does; :class:`PeerSession` holds its policy.  It speaks through the
sans-I/O server core, answers EHLO with the keywords of a 2010 receive
connector (``greeting.ehlo_keywords``), does X-ANONYMOUSTLS with the
organization PKI and checks X-EXPS EXCHANGEAUTH the way a receiving hub does
(``PeerVerifier`` + ``exchange_auth.check_blob``).

Its faults are parameters: EHLO keywords of the test's choice (a masking
firewall's), a HELO-only server, refused recipients or X-EXPS, no banner, a
cut after a verb, a stall after 354, and garbage after its own 220 to a TLS
command (what a correct server never writes; the sender must not take it for
a TLS server hello).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sitemail.mailflow import exchange_auth
from sitemail.mailflow.outbound import Target
from sitemail.org.model import ReceiveConnector
from sitemail.org.pki import OrganizationPki, PeerIdentity, server_ssl_context
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
    Rset,
    ServerConnection,
    StartTls,
    XAnonymousTls,
    XExps,
    replies,
)
from sitemail.server.line_connection import LineConnection, SessionClosing, listen
from sitemail.server.line_session import ClosedBy, CoreSignals, run_session
from sitemail.transport.greeting import ehlo_keywords, hello_text

BANNER = "220 EX02.contoso.com Microsoft ESMTP MAIL Service ready at Tue, 1 Mar 2011 10:00:00 +0000"


def default_connector(**changes: Any) -> ReceiveConnector:
    """The peer's receive connector (its EHLO keywords), with ``changes``."""
    return ReceiveConnector(server="EX02", name="Default EX02", **changes)


@dataclass
class Seen:
    """What a peer's sessions saw, in order: the tests' evidence."""

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
        if isinstance(event, Rset):
            return replies.RESETTING
        return replies.UNRECOGNIZED_COMMAND


def masked_by_asa(conn: ServerConnection) -> list[str]:
    """Spec 4.5's masked EHLO reply: what the sender sees behind an ASA."""
    return ["SIZE", "PIPELINING", "XXXXXXXA"]
