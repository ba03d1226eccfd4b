"""``MSExchangePOP3``: the POP3 service of a 2010 (or 2007) Client Access server.

One session per client over the sans-I/O core (:mod:`sitemail.protocols.pop3`):
CAPA, STLS, USER/PASS in the AUTHORIZATION state; once the directory
accepts the password, the Client Access decision says whether this server
serves the user's Inbox itself (a mailbox of its own site, through the
store API: :mod:`.pop3_maildrop`) or proxies the session to a Client Access
server of the mailbox's site on 995 over SSL (:mod:`.pop_imap_proxy`).

LoginType ``SecureLogin`` (the default) refuses USER/PASS before TLS with
``-ERR Command is not valid in this state.`` and leaves USER out of CAPA.
"""

from __future__ import annotations

import logging

from sitemail.access.connection_limits import Slot
from sitemail.access.outcomes import ClientProtocol, Error, Proxy, ServeLocally
from sitemail.access.pop3_maildrop import DropMessage, Maildrop
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
from sitemail.org.model import Server
from sitemail.protocols import pop3
from sitemail.protocols.pop3 import (
    NEED_DATA,
    PAUSED,
    Capa,
    Command,
    ConnectionClosed,
    Dele,
    List,
    Noop,
    Pass,
    Pop3Server,
    Pop3State,
    Quit,
    Retr,
    Rset,
    Stat,
    Stls,
    Top,
    Uidl,
    User,
)
from sitemail.server.context import ProcessContext
from sitemail.server.line_connection import LineConnection, SessionClosing
from sitemail.server.line_session import ClosedBy, CoreSignals, run_session
from sitemail.server.services import DISPLAY_NAMES

log = logging.getLogger("sitemail.access.pop3")

SERVICE_NAME = "MSExchangePOP3"
# Exchange 2010's texts (unverified, as in sitemail.protocols.pop3).
LOGON_FAILURE = "Logon failure: unknown user name or bad password."  # unverified
LOGGED_ON = "User successfully logged on."  # unverified
SERVER_UNAVAILABLE = "Server Unavailable. 21"  # unverified
NO_SUCH_MESSAGE = "The specified message is out of range."  # unverified
TOO_MANY_ERRORS = "Too many errors. Connection is closed."  # sitemail's wording
TIMED_OUT = "Connection timed out. Connection is closed."  # sitemail's wording
#: Protocol errors after which the session is closed.
MAX_ERRORS = 20


class Pop3Service(PopImapService):
    def __init__(self, ctx: ProcessContext, server: Server) -> None:
        super().__init__(
            SERVICE_NAME, DISPLAY_NAMES[SERVICE_NAME], ClientProtocol.POP3, ctx, server, serve_pop3
        )


async def serve_pop3(
    front: FrontEnd, client: LineConnection, implicit_tls: bool, slot: Slot
) -> None:
    await run_session(client, Pop3Session(front, client, implicit_tls, slot))


class Pop3Session:
    """One POP3 client (run by :func:`sitemail.server.line_session.run_session`)."""

    signals = CoreSignals(NEED_DATA, PAUSED, ConnectionClosed)

    def __init__(
        self, front: FrontEnd, client: LineConnection, implicit_tls: bool, slot: Slot
    ) -> None:
        self.front = front
        self.client = client
        self.slot = slot
        self.core = Pop3Server(secure=implicit_tls)
        self.maildrop: Maildrop | None = None
        self.errors = 0
        self.logon_failures = 0
        self.deadline = 0.0  # set when the session begins: the loop's clock
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
        authenticated = self.core.state is Pop3State.TRANSACTION
        return self.front.auth_timeout if authenticated else time_left(self.deadline)

    async def timed_out(self) -> None:
        await self.write(self.core.send_unsolicited_err(TIMED_OUT))
        raise SessionClosing

    async def end(self, closed_by: ClosedBy) -> None:
        pass

    async def handle(self, event: object) -> None:
        assert isinstance(event, Command)
        await self.answer(event)

    async def answer(self, event: Command) -> None:
        core = self.core
        if event.suggested_error is not None:
            self.errors += 1
            await self.write(core.send_err(event.suggested_error))
            if self.errors >= MAX_ERRORS:
                await self.write(core.send_unsolicited_err(TOO_MANY_ERRORS))
                raise SessionClosing
            return
        if isinstance(event, Capa):
            await self.write(core.send_lines("", self.capabilities()))
        elif isinstance(event, Stls):
            await self.start_tls()
        elif isinstance(event, User):
            if not self.front.plaintext_login_allowed(core.secure):
                await self.write(core.send_err(pop3.BAD_STATE))
            else:
                await self.write(core.send_ok())
        elif isinstance(event, Pass):
            await self.sign_in(event)
        elif isinstance(event, Quit):
            await self.quit()
        else:
            await self.transaction(event)

    def capabilities(self) -> list[str]:
        caps = ["TOP", "UIDL"]
        if self.front.plaintext_login_allowed(self.core.secure):
            caps.append("USER")
        if not self.core.secure and self.front.tls is not None:
            caps.append("STLS")
        return caps

    async def start_tls(self) -> None:
        tls = self.front.tls
        if tls is None:
            await self.write(self.core.send_err("No certificate is available for TLS."))
            return
        # Plaintext the client sent after STLS is dropped (RFC 2595 4, as RFC 3207 4.2).
        await self.client.start_tls(tls, self.core.send_ok(pop3.BEGIN_TLS))
        self.core.tls_established()

    # -------------------------------------------------------------- sign-in

    async def sign_in(self, event: Pass) -> None:
        core = self.core
        name = core.user or ""
        mailbox = await self.front.logon(name, event.password, self.slot.address)
        if mailbox is None:
            log.info("POP3 logon failure for %r from %s", name, self.peer)
            self.logon_failures += 1
            closing = await pause_after_logon_failure(self.logon_failures)
            await self.write(core.send_err(LOGON_FAILURE))
            if closing:
                raise SessionClosing
            return
        if not self.slot.sign_in(mailbox.alias):
            log.warning("POP3 %s from %s refused: MaxConnectionsPerUser", mailbox.alias, self.peer)
            await self.write(core.send_err(USER_CONNECTIONS_EXCEEDED))
            return
        outcome = await self.front.decide(mailbox)
        proxy = proxy_of(outcome)
        if isinstance(outcome, ServeLocally):
            try:
                self.maildrop = await Maildrop.open(self.front.store, mailbox.alias)
            except StoreError as exc:
                log.warning(
                    "POP3 %s: the store of %s failed: %s",
                    mailbox.alias,
                    outcome.mailbox_server,
                    exc,
                )
                await self.write(core.send_err(SERVER_UNAVAILABLE))
                return
            log.info("POP3 %s from %s served locally (%s)", mailbox.alias, self.peer, outcome.why)
            await self.write(core.send_ok(LOGGED_ON))
        elif proxy is not None:
            await self.proxy(proxy, name, event.password, mailbox.alias)
        else:
            reason = outcome.message if isinstance(outcome, Error) else repr(outcome)
            log.warning("POP3 %s from %s refused: %s", mailbox.alias, self.peer, reason)
            await self.write(core.send_err(SERVER_UNAVAILABLE))

    async def proxy(self, outcome: Proxy, name: str, password: str, alias: str) -> None:
        core = self.core
        try:
            backend = await self.front.open_backend(outcome)
        except BackendError as exc:
            log.warning("POP3 %s: cannot proxy to %s: %s", alias, outcome.target_server, exc)
            await self.write(core.send_err(SERVER_UNAVAILABLE))
            return
        try:
            await _backend_sign_in(backend, name, password)
        except BackendError as exc:
            await backend.close()
            log.warning(
                "POP3 %s: %s refused the proxied logon: %s", alias, outcome.target_server, exc
            )
            await self.write(core.send_err(SERVER_UNAVAILABLE))
            return
        log.info(
            "POP3 %s from %s proxied to %s (%s)",
            alias,
            self.peer,
            outcome.target_server,
            outcome.why,
        )
        await self.write(core.send_ok(LOGGED_ON))
        await relay(
            self.client,
            backend,
            idle_timeout=self.front.auth_timeout,
            first_to_backend=core.take_buffered(),
        )
        raise SessionClosing

    # -------------------------------------------------------------- transaction

    async def transaction(self, event: Command) -> None:
        core, drop = self.core, self.maildrop
        assert drop is not None
        if isinstance(event, Stat):
            count, size = drop.stat()
            await self.write(core.send_ok(f"{count} {size}"))
        elif isinstance(event, List | Uidl):
            listing = isinstance(event, List)

            def show(m: DropMessage) -> str:
                return f"{m.number} {m.size}" if listing else f"{m.number} {m.unique_id}"

            if event.msg is None:
                count, size = drop.stat()
                first = f"{count} {size}" if isinstance(event, List) else ""
                await self.write(core.send_lines(first, [show(m) for m in drop.live()]))
            else:
                found = drop.get(event.msg)
                await self.write(
                    core.send_ok(show(found)) if found else core.send_err(NO_SUCH_MESSAGE)
                )
        elif isinstance(event, Retr | Top):
            await self.send_message(event)
        elif isinstance(event, Dele):
            found = drop.get(event.msg)
            if found is None:
                await self.write(core.send_err(NO_SUCH_MESSAGE))
            else:
                found.deleted = True
                await self.write(core.send_ok())
        elif isinstance(event, Rset):
            drop.reset()
            count, size = drop.stat()
            await self.write(core.send_ok(f"{count} {size}"))
        elif isinstance(event, Noop):
            await self.write(core.send_ok())
        else:
            await self.write(core.send_err(pop3.BAD_STATE))

    async def send_message(self, event: Retr | Top) -> None:
        core, drop = self.core, self.maildrop
        assert drop is not None
        found = drop.get(event.msg)
        if found is None:
            await self.write(core.send_err(NO_SUCH_MESSAGE))
            return
        await self.write(core.start_message(f"{found.size}" if isinstance(event, Retr) else ""))

        async def sink(chunk: bytes) -> None:
            await self.write(core.message_data(chunk))

        try:
            if isinstance(event, Retr):
                await drop.retrieve(found, sink)
            else:
                await drop.top(found, event.lines, sink)
        except StoreError as exc:
            # The +OK is out: the client can only be told by the connection closing.
            log.warning("POP3: message %d could not be read: %s", found.message_id, exc)
            raise SessionClosing from None
        await self.write(core.end_message())

    async def quit(self) -> None:
        core = self.core
        if core.state is Pop3State.TRANSACTION and self.maildrop is not None:
            try:
                await self.maildrop.commit()
            except StoreError as exc:
                log.warning("POP3: deleting messages failed: %s", exc)
                await self.write(core.send_err("Some deleted messages were not removed."))
                raise SessionClosing from None
        await self.write(core.send_ok(pop3.SIGNING_OFF))
        raise SessionClosing


async def _backend_sign_in(backend: Backend, name: str, password: str) -> None:
    greeting = await backend.line()
    if not greeting.startswith(b"+OK"):
        raise BackendError(f"greeting {greeting[:80]!r}")
    for line in (f"USER {name}\r\n", f"PASS {password}\r\n"):
        await backend.send(line.encode("utf-8", errors="surrogateescape"))
        answer = await backend.line()
        if not answer.startswith(b"+OK"):
            raise BackendError(f"answer {answer[:80]!r}")
