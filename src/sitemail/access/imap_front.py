"""``MSExchangeIMAP4``: the IMAP4 service of a 2010 (or 2007) Client Access server.

One session per client over the sans-I/O core (:mod:`sitemail.protocols.imap`).
Before sign-in: CAPABILITY, STARTTLS, NOOP, LOGIN, AUTHENTICATE PLAIN and
LOGOUT.  LoginType ``SecureLogin`` (the default) advertises LOGINDISABLED
and refuses LOGIN and AUTHENTICATE PLAIN before TLS with ``BAD Command
received in Invalid state.``.  Once the directory accepts the password, the
Client Access decision says whether this server serves the mailbox itself
(a mailbox of its own site: :class:`~.imap_mailbox.StoreImap` over the
store API) or proxies the session to a Client Access server of the
mailbox's site on 993 over SSL, signing in there with the same credentials
(:mod:`.pop_imap_proxy`); a refusal is logged with its reason.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import tempfile
from typing import IO

from sitemail.access.connection_limits import Slot
from sitemail.access.imap_mailbox import SERVER_UNAVAILABLE, StoreImap
from sitemail.access.outcomes import ClientProtocol, Error, Proxy, ServeLocally
from sitemail.access.pop_imap_proxy import Backend, BackendError, relay
from sitemail.access.pop_imap_service import (
    USER_CONNECTIONS_EXCEEDED,
    FrontEnd,
    PopImapService,
    pause_after_logon_failure,
    proxy_of,
    sign_in_deadline,
    time_left,
)
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.limits import DEFAULT_MAX_MESSAGE_SIZE
from sitemail.org.model import Server
from sitemail.protocols import imap
from sitemail.protocols.imap import NEED_DATA, PAUSED, ImapServer, ImapState
from sitemail.protocols.imap_events import (
    Append,
    AppendData,
    AppendEnd,
    Authenticate,
    AuthenticateResponse,
    Capability,
    Command,
    ConnectionClosed,
    Event,
    Idle,
    IdleDone,
    LiteralRequest,
    Login,
    Logout,
    Noop,
    StartTls,
)
from sitemail.server.context import ProcessContext
from sitemail.server.line_connection import LineConnection, SessionClosing
from sitemail.server.line_session import ClosedBy, CoreSignals, run_session
from sitemail.server.services import DISPLAY_NAMES

log = logging.getLogger("sitemail.access.imap4")

SERVICE_NAME = "MSExchangeIMAP4"
#: Protocol errors after which the session is closed.
MAX_ERRORS = 20
#: How long one IDLE wait lasts before the session looks at the time again.
IDLE_POLL = 25.0
#: APPENDed messages up to this size stay in memory while they arrive.
SPOOL_IN_MEMORY = 1024 * 1024
#: The tag of the proxy's own LOGIN on the target server.
PROXY_TAG = "sm1"
TOO_MANY_ERRORS = "Too many errors. Connection is closed."  # sitemail's wording
TIMED_OUT = "Connection timed out. Connection is closed."  # sitemail's wording
TOO_MANY_LOGON_FAILURES = "Too many failed logons. Connection is closed."  # sitemail's wording


class Imap4Service(PopImapService):
    def __init__(self, ctx: ProcessContext, server: Server) -> None:
        super().__init__(
            SERVICE_NAME,
            DISPLAY_NAMES[SERVICE_NAME],
            ClientProtocol.IMAP4,
            ctx,
            server,
            serve_imap4,
        )


async def serve_imap4(
    front: FrontEnd, client: LineConnection, implicit_tls: bool, slot: Slot
) -> None:
    await run_session(client, ImapSession(front, client, implicit_tls, slot))


class ImapSession:
    """One IMAP4 client (run by :func:`sitemail.server.line_session.run_session`)."""

    signals = CoreSignals(NEED_DATA, PAUSED, ConnectionClosed)

    def __init__(
        self, front: FrontEnd, client: LineConnection, implicit_tls: bool, slot: Slot
    ) -> None:
        self.front = front
        self.client = client
        self.slot = slot
        self.core = ImapServer(secure=implicit_tls, max_append=DEFAULT_MAX_MESSAGE_SIZE)
        self.mailbox: StoreImap | None = None
        self.errors = 0
        self.logon_failures = 0
        self.deadline = 0.0  # set when the session begins: the loop's clock
        self.append: tuple[Append, IO[bytes]] | None = None
        peer = client.peer
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    async def write(self, data: bytes) -> None:
        self.client.write(data)
        await self.client.drain()

    # --- the runner's hooks (sitemail.server.line_session.LineSession)

    async def begin(self) -> None:
        self.deadline = sign_in_deadline(self.front)
        self.client.write(self.core.greeting())

    def read_timeout(self) -> float:
        signed_in = self.core.state in (ImapState.AUTHENTICATED, ImapState.SELECTED)
        return self.front.auth_timeout if signed_in else time_left(self.deadline)

    async def timed_out(self) -> None:
        await self.write(self.core.send_bye(TIMED_OUT))
        raise SessionClosing

    async def end(self, closed_by: ClosedBy) -> None:
        if self.append is not None:
            self.append[1].close()

    async def handle(self, event: object) -> None:
        assert isinstance(event, Event)
        await self.answer(event)

    # ------------------------------------------------------------ events

    async def answer(self, event: Event) -> None:
        core = self.core
        if isinstance(event, LiteralRequest):
            if event.suggested is not None:
                await self.write(core.reject_literal(event.suggested.status, event.suggested.text))
            else:
                await self.write(core.accept_literal())
        elif isinstance(event, Append):
            await self.begin_append(event)
        elif isinstance(event, AppendData):
            if self.append is not None:
                self.append[1].write(event.data)
        elif isinstance(event, AppendEnd):
            await self.end_append(event)
        elif isinstance(event, AuthenticateResponse):
            await self.authenticate_response(event)
        elif isinstance(event, IdleDone):
            if event.suggested is not None:
                await self.write(core.send_tagged(event.suggested.status, event.suggested.text))
            else:
                await self.write(core.send_tagged("OK", imap.completed("IDLE")))
        elif isinstance(event, Command):
            await self.command(event)

    async def command(self, event: Command) -> None:
        core = self.core
        if event.suggested is not None:
            self.errors += 1
            await self.write(core.send_tagged(event.suggested.status, event.suggested.text))
            if self.errors >= MAX_ERRORS:
                await self.write(core.send_bye(TOO_MANY_ERRORS))
                raise SessionClosing
            return
        if isinstance(event, Capability):
            await self.write(core.send_untagged("CAPABILITY " + " ".join(self.capabilities())))
            await self.write(core.send_tagged("OK", imap.completed("CAPABILITY")))
        elif isinstance(event, Logout):
            await self.write(core.send_bye(imap.BYE_LOGOUT))
            await self.write(core.send_tagged("OK", imap.completed("LOGOUT")))
            raise SessionClosing
        elif isinstance(event, StartTls):
            await self.start_tls()
        elif isinstance(event, Login):
            if not self.front.plaintext_login_allowed(core.secure):
                await self.write(core.send_tagged("BAD", imap.BAD_STATE))
                return
            await self.sign_in(event.user, event.password, imap.LOGIN_FAILED, "LOGIN")
        elif isinstance(event, Authenticate):
            await self.authenticate(event)
        elif isinstance(event, Idle):
            await self.idle()
        elif self.mailbox is not None:
            await self.mailbox.handle(event)
        elif isinstance(event, Noop):
            await self.write(core.send_tagged("OK", imap.completed("NOOP")))
        else:
            await self.write(core.send_tagged("BAD", imap.BAD_STATE))

    def capabilities(self) -> list[str]:
        caps = ["IMAP4", "IMAP4rev1"]
        if self.core.state is ImapState.NOT_AUTHENTICATED:
            if self.front.plaintext_login_allowed(self.core.secure):
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
            if not self.core.secure and self.front.tls is not None:
                caps.append("STARTTLS")
        return [*caps, "UIDPLUS", "CHILDREN", "IDLE", "NAMESPACE", "LITERAL+"]

    async def start_tls(self) -> None:
        tls = self.front.tls
        if tls is None:
            await self.write(self.core.send_tagged("NO", "No certificate is available for TLS."))
            return
        # Plaintext the client sent after STARTTLS is dropped (RFC 3501 11.1, RFC 3207 4.2).
        await self.client.start_tls(tls, self.core.send_tagged("OK", imap.BEGIN_TLS))
        self.core.tls_established()

    # ------------------------------------------------------------ sign-in

    async def authenticate(self, event: Authenticate) -> None:
        core = self.core
        if event.mechanism != "PLAIN":
            await self.write(core.send_tagged("NO", imap.AUTHENTICATE_FAILED))
            return
        if not self.front.plaintext_login_allowed(core.secure):
            await self.write(core.send_tagged("BAD", imap.BAD_STATE))
            return
        if event.initial is None:
            await self.write(core.send_continuation())
            return
        await self.plain(event.initial)

    async def authenticate_response(self, event: AuthenticateResponse) -> None:
        if event.cancelled:
            await self.write(self.core.send_tagged("BAD", imap.AUTHENTICATE_FAILED))
            return
        await self.plain(event.data)

    async def plain(self, data: bytes) -> None:
        """SASL PLAIN (RFC 4616): ``authzid NUL authcid NUL password``, base64."""
        try:
            decoded = base64.b64decode(data.strip(), validate=True)
            authzid, user, password = decoded.decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            await self.write(self.core.send_tagged("NO", imap.AUTHENTICATE_FAILED))
            return
        if authzid and authzid.casefold() != user.casefold():
            # Acting as another user needs rights sitemail does not model.
            await self.write(self.core.send_tagged("NO", imap.AUTHENTICATE_FAILED))
            return
        await self.sign_in(user, password, imap.AUTHENTICATE_FAILED, "AUTHENTICATE")

    async def sign_in(self, user: str, password: str, failure: str, verb: str) -> None:
        core = self.core
        mailbox = await self.front.logon(user, password, self.slot.address)
        if mailbox is None:
            log.info("IMAP4 logon failure for %r from %s", user, self.peer)
            self.logon_failures += 1
            closing = await pause_after_logon_failure(self.logon_failures)
            await self.write(core.send_tagged("NO", failure))
            if closing:
                await self.write(core.send_bye(TOO_MANY_LOGON_FAILURES))
                raise SessionClosing
            return
        if not self.slot.sign_in(mailbox.alias):
            log.warning("IMAP4 %s from %s refused: MaxConnectionsPerUser", mailbox.alias, self.peer)
            await self.write(core.send_tagged("NO", USER_CONNECTIONS_EXCEEDED))
            return
        outcome = await self.front.decide(mailbox)
        proxy = proxy_of(outcome)
        if isinstance(outcome, ServeLocally):
            log.info("IMAP4 %s from %s served locally (%s)", mailbox.alias, self.peer, outcome.why)
            self.mailbox = StoreImap(
                self.front.store, mailbox.alias, core, self.write, self.front.watches
            )
            await self.write(core.send_tagged("OK", imap.completed(verb)))
        elif proxy is not None:
            await self.proxy(proxy, user, password, mailbox.alias, verb)
        else:
            reason = outcome.message if isinstance(outcome, Error) else repr(outcome)
            log.warning("IMAP4 %s from %s refused: %s", mailbox.alias, self.peer, reason)
            await self.write(core.send_tagged("NO", SERVER_UNAVAILABLE))

    async def proxy(self, outcome: Proxy, user: str, password: str, alias: str, verb: str) -> None:
        core = self.core
        try:
            backend = await self.front.open_backend(outcome)
        except BackendError as exc:
            log.warning("IMAP4 %s: cannot proxy to %s: %s", alias, outcome.target_server, exc)
            await self.write(core.send_tagged("NO", SERVER_UNAVAILABLE))
            return
        try:
            await _backend_sign_in(backend, user, password)
        except BackendError as exc:
            await backend.close()
            log.warning(
                "IMAP4 %s: %s refused the proxied logon: %s", alias, outcome.target_server, exc
            )
            await self.write(core.send_tagged("NO", SERVER_UNAVAILABLE))
            return
        log.info(
            "IMAP4 %s from %s proxied to %s (%s)",
            alias,
            self.peer,
            outcome.target_server,
            outcome.why,
        )
        await self.write(core.send_tagged("OK", imap.completed(verb)))
        await relay(
            self.client,
            backend,
            idle_timeout=self.front.auth_timeout,
            first_to_backend=core.take_buffered(),
        )
        raise SessionClosing

    # ------------------------------------------------------------ APPEND

    async def begin_append(self, event: Append) -> None:
        core = self.core
        if event.suggested is not None:
            await self.write(core.reject_literal(event.suggested.status, event.suggested.text))
            return
        if self.mailbox is None:
            await self.write(core.reject_literal("BAD", imap.BAD_STATE))
            return
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.append = (event, spool)
        await self.write(core.accept_literal())

    async def end_append(self, event: AppendEnd) -> None:
        pending, self.append = self.append, None
        assert pending is not None and self.mailbox is not None
        append, spool = pending
        try:
            if event.suggested is not None:
                await self.write(
                    self.core.send_tagged(event.suggested.status, event.suggested.text)
                )
                return
            spool.seek(0)
            await self.mailbox.append(append, spool)
        finally:
            spool.close()

    # ------------------------------------------------------------ IDLE

    async def idle(self) -> None:
        core, mailbox = self.core, self.mailbox
        assert mailbox is not None  # IDLE is refused before sign-in by the core
        await self.write(core.send_continuation(imap.IDLE_ACCEPTED))
        while True:
            event = core.next_event()
            if isinstance(event, IdleDone):
                await self.answer(event)
                return
            if isinstance(event, ConnectionClosed):
                raise SessionClosing
            if event is not NEED_DATA:
                raise AssertionError(f"unexpected event while idling: {event!r}")
            core.receive_data(await self._idle_read(mailbox))

    async def _idle_read(self, mailbox: StoreImap) -> bytes:
        """The client's next bytes; meanwhile, the folder's changes go out as they happen."""
        read = asyncio.ensure_future(self.client.read())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.front.auth_timeout
        try:
            while not read.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    await self.write(self.core.send_bye(TIMED_OUT))
                    raise SessionClosing
                watch = asyncio.ensure_future(mailbox.wait_and_sync(min(IDLE_POLL, remaining)))
                done, _ = await asyncio.wait({read, watch}, return_when="FIRST_COMPLETED")
                if watch in done:
                    if watch.exception() is not None:
                        log.warning("IMAP4 IDLE: the store failed: %s", watch.exception())
                        await asyncio.wait({read}, timeout=5.0)
                else:
                    watch.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StoreError):
                        await watch
        except BaseException:
            read.cancel()
            raise
        return read.result()


def _login_argument(text: str) -> bytes:
    """A LOGIN argument for the target server: quoted, or a LITERAL+ literal (no round trip)."""
    data = text.encode("utf-8", errors="surrogateescape")
    if all(0x20 <= c <= 0x7E for c in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{" + str(len(data)).encode() + b"+}\r\n" + data


async def _backend_sign_in(backend: Backend, user: str, password: str) -> None:
    greeting = await backend.line()
    if not greeting.startswith(b"* OK"):
        raise BackendError(f"greeting {greeting[:80]!r}")
    await backend.send(
        PROXY_TAG.encode()
        + b" LOGIN "
        + _login_argument(user)
        + b" "
        + _login_argument(password)
        + b"\r\n"
    )
    for _ in range(100):  # untagged lines before the answer are skipped, within reason
        line = await backend.line()
        if line.startswith(PROXY_TAG.encode() + b" "):
            if line.split(b" ", 2)[1:2] == [b"OK"]:
                return
            raise BackendError(f"answer {line[:80]!r}")
    raise BackendError("no answer to LOGIN")
