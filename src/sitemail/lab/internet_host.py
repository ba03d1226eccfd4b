"""The lab's Internet host: an outside mail system with its own domains and users.

It stands for "the Internet" of the seed's stories (``mail.fabrikam.com``,
carol@fabrikam.com), so that mail flows into the organization and out of it.
It behaves like a small Postfix: ``220 mail.fabrikam.com ESMTP``, STARTTLS
with a certificate from a CA of its own (``<lab>/pki/internet/``), AUTH
LOGIN/PLAIN only inside TLS, and the classic relay rule:

- mail for its own domains is taken from anyone, for users that exist;
- mail for any other domain only from a user who authenticated.

Port 25 is the MX; port 587 is submission (STARTTLS, then AUTH, then mail).

Accepted mail goes into a durable :class:`QueueStore` in the host's folder
(``servers/<NAME>/queue``) before the 250.  A categorizer sends local
recipients to the host's mailbox database (``servers/<NAME>/mailbox/<NAME>.db``,
one mailbox per address) and everything else to the recipient domain's
"MX", retried on the queue's ladder.  Without DNS in a lab, the MX of an
organization's accepted domain is the set of 2010 hubs with a receive
connector that lets this host in anonymously (``AnonymousUsers`` and a
RemoteIPRanges entry covering its address: in the seed, EX-NY1's
"Internet EX-NY1"), reached through the firewalls like any host of the
Internet.  Other domains do not exist: their recipients bounce.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.errors import MessageTooLarge, StoreError, StoreUnavailable
from sitemail.org.model import (
    InternetHost,
    InternetUser,
    Organization,
    PermissionGroup,
    ReceiveConnector,
    Server,
)
from sitemail.org.passwords import verify_password
from sitemail.org.pki import server_cert_files, server_ssl_context
from sitemail.protocols.smtp import Reply
from sitemail.server.console import serve_console
from sitemail.server.context import ProcessContext
from sitemail.transport.pipeline import outcomes_of
from sitemail.transport.queue import (
    DeliveryBatch,
    DeliveryType,
    FailRecipient,
    NextHop,
    QueueRef,
    QueueStore,
    RecipientOutcome,
    RouteDecision,
)
from sitemail.transport.send_decision import SendPolicy
from sitemail.transport.smtp_sender import (
    OutboundMessage,
    SenderSettings,
    Target,
    file_body,
    send_message,
)
from sitemail.transport.submission import Envelope, SpoolWriter

from .simple_mta import Limits, MtaListener, Replies, SessionFacts

log = logging.getLogger("sitemail.lab.internet")

SMTP_PORT = 25
SUBMISSION_PORT = 587
#: How often the queue loops look for work when nothing woke them.
IDLE_POLL = 1.0
BATCH = 20
#: The next hop (NextHopDomain) of the queue for this host's own mailboxes.
LOCAL_NEXT_HOP = "local"


def _r(code: int, enhanced: str | None, text: str) -> Reply:
    return Reply(code, enhanced, (text,))


# Postfix's replies (general knowledge of a default Postfix 3.x smtpd with
# smtpd_helo_required=yes, disable_vrfy_command=yes, smtpd_tls_auth_only=yes).
POSTFIX_REPLIES = Replies(
    hello_first=_r(503, "5.5.1", "Error: send HELO/EHLO first"),
    nested_mail=_r(503, "5.5.1", "Error: nested MAIL command"),
    need_mail=_r(503, "5.5.1", "Error: need MAIL command"),
    need_rcpt=_r(503, "5.5.1", "Error: need RCPT command"),
    bad_sender=_r(501, "5.1.7", "Bad sender address syntax"),
    bad_recipient=_r(501, "5.1.3", "Bad recipient address syntax"),
    bad_parameter=_r(555, "5.5.4", "Unsupported option"),
    syntax_error=_r(501, "5.5.4", "Syntax error in parameters or arguments"),
    unknown_command=_r(502, "5.5.2", "Error: command not recognized"),
    line_too_long=_r(500, "5.5.2", "Error: line too long"),
    data_start=_r(354, None, "End data with <CR><LF>.<CR><LF>"),
    reset=_r(250, "2.0.0", "Ok"),
    noop=_r(250, "2.0.0", "Ok"),
    vrfy=_r(502, "5.5.1", "VRFY command is disabled"),
    help=_r(502, "5.5.2", "Error: command not recognized"),
    closing=_r(221, "2.0.0", "Bye"),
    tls_ready=_r(220, "2.0.0", "Ready to start TLS"),
    tls_active=_r(554, "5.5.1", "Error: TLS already active"),
    auth_unavailable=_r(503, "5.5.1", "Error: authentication not enabled"),
    auth_in_transaction=_r(503, "5.5.1", "Error: MAIL transaction in progress"),
    auth_already=_r(503, "5.5.1", "Error: already authenticated"),
    auth_bad_mechanism=_r(
        535, "5.7.8", "Error: authentication failed: Invalid authentication mechanism"
    ),
    auth_ok=_r(235, "2.7.0", "Authentication successful"),
    auth_failed=_r(535, "5.7.8", "Error: authentication failed: authentication failure"),
    auth_cancelled=_r(501, "5.7.0", "Authentication aborted"),
    size_exceeded=_r(552, "5.3.4", "Message size exceeds fixed limit"),
    too_many_recipients=_r(452, "4.5.3", "Error: too many recipients"),
    too_many_hops=_r(554, "5.4.0", "Error: too many hops"),
    queue_error=_r(451, "4.3.0", "Error: queue file write error"),
    timeout=_r(421, "4.4.2", "Error: timeout exceeded"),
    too_many_errors=_r(421, "4.7.0", "Error: too many errors"),
    busy=_r(421, "4.3.2", "Service currently unavailable"),
)
# Postfix's message_size_limit default.
POSTFIX_LIMITS = Limits(max_message_size=10_240_000)
MUST_STARTTLS = _r(530, "5.7.0", "Must issue a STARTTLS command first")


def user_unknown(address: str) -> Reply:
    return _r(550, "5.1.1", f"<{address}>: Recipient address rejected: User unknown")


def relay_denied(address: str) -> Reply:
    return _r(554, "5.7.1", f"<{address}>: Relay access denied")


def client_rejected(ip: str) -> Reply:
    """Submission without authentication (``permit_sasl_authenticated, reject``)."""
    return _r(554, "5.7.1", f"<unknown[{ip}]>: Client host rejected: Access denied")


def domain_not_found(address: str) -> str:
    """The bounce for a domain that does not exist in the lab's world (no MX, no A)."""
    domain = address.rpartition("@")[2]
    return (
        f"550 5.4.4 <{address}>: Host or domain name not found. Name service error for "
        f"name={domain} type=A: Host not found"
    )


def queue_id(internal_id: int) -> str:
    """A Postfix-looking queue id (upper-case hex) for the store's InternalId."""
    return f"{internal_id:010X}"


# ---------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class InternetProfile:
    """The Internet host as an SMTP server: Postfix's voice and its relay rule."""

    hostname: str
    domains: frozenset[str]
    users: Mapping[str, str | None] = field(default_factory=dict)
    """Address (lower case) -> password hash."""
    limits: Limits = POSTFIX_LIMITS
    replies: Replies = POSTFIX_REPLIES
    chunking: bool = False

    def banner(self, now: datetime) -> str:
        return f"220 {self.hostname} ESMTP"

    def hello(self, facts: SessionFacts, *, ehlo: bool, tls_available: bool) -> Reply:
        if not ehlo:
            return Reply.of(250, self.hostname)
        lines = [self.hostname, "PIPELINING", f"SIZE {self.limits.max_message_size}"]
        if tls_available and not facts.secure:
            lines.append("STARTTLS")
        lines += list(self._auth_keywords(facts))
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME"]
        return Reply.of(250, *lines)

    def _auth_keywords(self, facts: SessionFacts) -> tuple[str, ...]:
        mechanisms = self.auth_mechanisms(facts)
        return (f"AUTH {' '.join(mechanisms)}",) if mechanisms else ()

    def hello_syntax(self, verb: str) -> Reply:
        return Reply(501, None, (f"Syntax: {verb} hostname",))

    def auth_mechanisms(self, facts: SessionFacts) -> tuple[str, ...]:
        # smtpd_tls_auth_only: passwords never cross the wire in clear.
        return ("LOGIN", "PLAIN") if facts.secure else ()

    def check_mail(self, facts: SessionFacts, sender: str) -> Reply | None:
        if facts.port == SUBMISSION_PORT and not facts.secure:
            return MUST_STARTTLS
        return None

    def check_rcpt(self, facts: SessionFacts, recipient: str) -> Reply | None:
        if facts.rcpt_count >= self.limits.max_recipients:
            return self.replies.too_many_recipients
        if facts.port == SUBMISSION_PORT and facts.user is None:
            return client_rejected(facts.remote_ip)
        domain = recipient.rpartition("@")[2].lower()
        if domain in self.domains:
            if recipient.lower() in self.users:
                return None
            return user_unknown(recipient)
        if facts.user is None:
            return relay_denied(recipient)
        return None

    def sender_ok(self, sender: str) -> Reply:
        return _r(250, "2.1.0", "Ok")

    def recipient_ok(self, recipient: str) -> Reply:
        return _r(250, "2.1.5", "Ok")

    def queued(self, message_id: str, queue_id: str) -> Reply:
        return _r(250, "2.0.0", f"Ok: queued as {queue_id}")

    def received(self, facts: SessionFacts, helo: str, now: datetime) -> bytes:
        protocol = "ESMTP" + ("S" if facts.secure else "") + ("A" if facts.user else "")
        text = (
            f"Received: from {helo or 'unknown'} (unknown [{facts.remote_ip}])\r\n"
            f"\tby {self.hostname} with {protocol};\r\n"
            f"\t{format_datetime(now)}\r\n"
        )
        return text.encode("ascii", errors="replace")

    def login(self, user: str, password: str) -> str | None:
        name = user.strip().lower()
        # "carol" or "carol@fabrikam.com", as a mail client may be set up either way.
        candidates = [name] if "@" in name else [f"{name}@{d}" for d in sorted(self.domains)]
        for address in candidates:
            if address in self.users:
                return address if verify_password(password, self.users[address]) else None
        return None


# ---------------------------------------------------------------------------- routing


def route_recipient(
    address: str,
    *,
    domains: frozenset[str],
    users: Mapping[str, object],
    organization: Organization | None,
) -> RouteDecision:
    """Where one accepted recipient goes: this host's mailboxes, an MX, or back."""
    domain = address.rpartition("@")[2].lower()
    if domain in domains:
        if address.lower() in users:
            return NextHop(DeliveryType.MAPI_DELIVERY, LOCAL_NEXT_HOP)
        # The user went away between RCPT and delivery.
        return FailRecipient(str(user_unknown(address)))
    if organization is not None and organization.is_accepted(domain):
        return NextHop(DeliveryType.DNS_CONNECTOR_DELIVERY, domain)
    return FailRecipient(domain_not_found(address))


def mx_servers(
    domain: str,
    *,
    organization: Organization | None,
    servers: list[Server],
    connectors: list[ReceiveConnector],
    source: str,
) -> list[tuple[Server, int]]:
    """The "MX" of ``domain`` for a sender at ``source``: (hub, port) in name order.

    The hubs that take anonymous mail from ``source`` for an accepted domain
    of the organization, on the port of that receive connector.
    """
    if organization is None or not organization.is_accepted(domain):
        return []
    out: list[tuple[Server, int]] = []
    for server in sorted(servers, key=lambda s: s.name.lower()):
        if not server.is_hub:
            continue
        for c in connectors:
            if (
                c.server.lower() == server.name.lower()
                and c.enabled
                and PermissionGroup.ANONYMOUS_USERS in c.permission_groups
                and any(source in r for r in c.ranges)
            ):
                ports = [p for _, p in c.ports]
                out.append((server, SMTP_PORT if SMTP_PORT in ports else ports[0]))
                break
    return out


# ---------------------------------------------------------------------------- the host


class QueueSink:
    """Accepted mail goes into the durable queue (accept() fsyncs before returning)."""

    def __init__(self, store: QueueStore) -> None:
        self.store = store

    def open_spool(self) -> SpoolWriter:
        return self.store.open_spool()

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> str:
        return queue_id(await asyncio.to_thread(self.store.accept, spool, envelope))


def tls_context(ctx: ProcessContext, name: str) -> ssl.SSLContext | None:
    """The host's own certificate (not the organization's), or None without one."""
    files = server_cert_files(ctx.pki_dir / "internet", name)
    if not files.cert.exists():
        log.warning("no certificate at %s: STARTTLS and AUTH are off", files.cert)
        return None
    return server_ssl_context(files)


class InternetMailHost:
    """SMTP in, a queue, mailboxes and SMTP out: the whole mail system of the Internet host."""

    def __init__(self, ctx: ProcessContext, host: InternetHost) -> None:
        self.ctx = ctx
        self.host = host
        self.store: QueueStore | None = None
        self.mailboxes: StoreDatabase | None = None
        self.listener: MtaListener | None = None
        self.endpoints: list[str] = []
        self._profile: InternetProfile | None = None
        self._counter = -1
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: dict[int, asyncio.Task[None]] = {}

    # --- directory snapshot

    def profile(self) -> InternetProfile:
        """The SMTP profile from the directory as it is now (rebuilt when it changed)."""
        directory = self.ctx.directory
        counter = directory.change_counter()
        if self._profile is None or counter != self._counter:
            host = directory.get(InternetHost, self.host.name) or self.host
            users = {
                u.address.lower(): u.password_hash
                for u in directory.list(InternetUser)
                if u.host.lower() == host.name.lower()
            }
            self._profile = InternetProfile(
                hostname=host.fqdn,
                domains=frozenset(d.lower() for d in host.domains),
                users=users,
            )
            self._counter = counter
        return self._profile

    def _organization(self) -> Organization | None:
        orgs = self.ctx.directory.list(Organization)
        return orgs[0] if orgs else None

    # --- control

    async def start(self) -> None:
        ctx, host = self.ctx, self.host
        if not host.address:
            raise OSError(f"Internet host {host.name} has no address in the directory")
        self._loop = asyncio.get_running_loop()
        store = await asyncio.to_thread(
            QueueStore.open, ctx.home, server=host.name, fqdn=host.fqdn, clock=ctx.clock
        )
        try:
            self.mailboxes = await asyncio.to_thread(
                StoreDatabase, ctx.home / "mailbox" / f"{host.name}.db", name=host.name
            )
        except BaseException:
            store.close()
            raise
        self.store = store
        store.add_listener(lambda _event: self._wake_threadsafe())
        self.listener = MtaListener(
            self.profile,
            QueueSink(store),
            tls=tls_context(ctx, host.name),
            port_offset=ctx.port_offset,
            clock=ctx.clock,
        )
        try:
            for port in (SMTP_PORT, SUBMISSION_PORT):
                bound = await self.listener.listen(host.address, port)
                self.endpoints.append(f"{host.address}:{bound}")
        except BaseException:
            await self.stop()
            raise
        self._tasks = [
            asyncio.ensure_future(self._forever(self._categorize, "categorizer")),
            asyncio.ensure_future(self._forever(self._schedule, "scheduler")),
        ]
        log.info("%s ready: SMTP on %s", host.fqdn, ", ".join(self.endpoints))

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.close()
            self.listener = None
        tasks = [*self._tasks, *self._workers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._workers.clear()
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.mailboxes is not None:
            self.mailboxes.close()
            self.mailboxes = None

    def _wake_threadsafe(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _forever(self, step: Callable[[], Awaitable[bool]], name: str) -> None:
        while True:
            try:
                busy = await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; going on", name)
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL)
                self._wake.clear()

    # --- categorizer and scheduler

    async def _categorize(self) -> bool:
        store = self.store
        assert store is not None
        messages = await asyncio.to_thread(store.take_for_categorization, BATCH)
        if not messages:
            return False
        profile, organization = self.profile(), self._organization()
        for msg in messages:
            decisions = {
                r.id: route_recipient(
                    r.address,
                    domains=profile.domains,
                    users=profile.users,
                    organization=organization,
                )
                for r in msg.recipients
            }
            await asyncio.to_thread(store.route, msg.item_id, decisions)
        return True

    async def _schedule(self) -> bool:
        store = self.store
        assert store is not None
        await asyncio.to_thread(store.sweep)
        started = False
        for queue in await asyncio.to_thread(store.due_queues):
            if queue.queue_id in self._workers:
                continue
            task = asyncio.ensure_future(self._work(queue))
            self._workers[queue.queue_id] = task
            task.add_done_callback(functools.partial(self._worker_done, queue.queue_id))
            started = True
        return started

    def _worker_done(self, queue_id: int, _task: asyncio.Task[None]) -> None:
        self._workers.pop(queue_id, None)
        self._wake.set()

    async def _work(self, queue: QueueRef) -> None:
        store = self.store
        assert store is not None
        while True:
            batch = await asyncio.to_thread(store.take_batch, queue.queue_id, BATCH)
            if batch is None:
                return
            try:
                retrying = await self._deliver(batch)
            finally:
                await asyncio.to_thread(store.finish, batch.lease)
            if retrying:
                return

    async def _deliver(self, batch: DeliveryBatch) -> bool:
        """Deliver one batch; True when the queue went to Retry."""
        kind = batch.queue.delivery_type
        if kind is DeliveryType.MAPI_DELIVERY:
            return await self._deliver_locally(batch)
        if kind is DeliveryType.DNS_CONNECTOR_DELIVERY:
            return await self._deliver_to_mx(batch)
        assert self.store is not None
        await asyncio.to_thread(
            self.store.report_connection_failure,
            batch.lease,
            f"451 4.4.0 Delivery type {kind.value} is not available on this host",
        )
        return True

    async def _deliver_locally(self, batch: DeliveryBatch) -> bool:
        store, mailboxes = self.store, self.mailboxes
        assert store is not None and mailboxes is not None
        await asyncio.to_thread(store.mark_connected, batch.lease)
        for msg in batch.messages:
            outcomes: list[RecipientOutcome] = []
            for rcpt in msg.recipients:
                address = rcpt.address.lower()
                # Message-ID + recipient: a message the queue delivers again after
                # a crash (between the store's commit and the report) is stored once.
                delivery_id = f"{msg.envelope.internet_message_id}:{address}"
                try:
                    await asyncio.to_thread(mailboxes.deliver, address, delivery_id, msg.body_path)
                except StoreUnavailable as exc:
                    await asyncio.to_thread(
                        store.report_connection_failure, batch.lease, f"451 4.3.0 {exc}"
                    )
                    return True
                except MessageTooLarge:
                    reply = str(POSTFIX_REPLIES.size_exceeded)
                    outcomes.append(RecipientOutcome.failed(rcpt.id, reply, remote=False))
                    continue
                except StoreError as exc:
                    outcomes.append(RecipientOutcome.deferred(rcpt.id, f"451 4.3.0 {exc}"))
                    continue
                outcomes.append(
                    RecipientOutcome.delivered(rcpt.id, "250 2.0.0 Ok: delivered to mailbox")
                )
            await asyncio.to_thread(store.report, batch.lease, msg.item_id, outcomes)
        return False

    def _targets(self, domain: str) -> list[Target]:
        directory, ctx = self.ctx.directory, self.ctx
        found = mx_servers(
            domain,
            organization=self._organization(),
            servers=directory.list(Server),
            connectors=directory.list(ReceiveConnector),
            source=ctx.address,
        )
        return [
            Target(server.fqdn, ctx.address_of(server.name), port + ctx.port_offset)
            for server, port in found
        ]

    async def _deliver_to_mx(self, batch: DeliveryBatch) -> bool:
        store = self.store
        assert store is not None
        domain = batch.queue.next_hop_domain
        targets = await asyncio.to_thread(self._targets, domain)
        if not targets:
            error = (
                f"451 4.4.3 Host or domain name not found. Name service error for "
                f"name={domain} type=MX: Host not found, try again"
            )
            await asyncio.to_thread(store.report_connection_failure, batch.lease, error)
            return True
        profile = self.profile()
        settings = SenderSettings(
            fqdn=profile.hostname,
            server_name=self.host.name,
            policy=SendPolicy(),  # no authentication; STARTTLS when offered
            connect_timeout=10.0,
            reply_timeout=120.0,
        )
        connected = False
        for msg in batch.messages:
            result = await send_message(
                targets,
                OutboundMessage.from_envelope(msg.envelope, msg.size),
                file_body(msg.body_path),
                settings,
                local_address=self.ctx.address,
            )
            if result.all_targets_failed:
                await asyncio.to_thread(
                    store.report_connection_failure,
                    batch.lease,
                    result.last_error or "451 4.4.0 Delivery failed",
                )
                return True
            if not connected:
                await asyncio.to_thread(store.mark_connected, batch.lease)
                connected = True
            await asyncio.to_thread(
                store.report, batch.lease, msg.item_id, outcomes_of(msg, result)
            )
        return False

    # --- console

    def queues(self) -> list[dict[str, Any]]:
        if self.store is None:
            return []
        return [
            {name: _jsonable(value) for name, value in q.properties()}
            for q in self.store.get_queues()
        ]


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


async def serve_internet_host(ctx: ProcessContext, host: InternetHost) -> None:
    """Run the Internet host until SIGTERM/SIGINT; its console answers ``health`` and ``queue``.

    The console opens only once SMTP listens, so the lab supervisor's
    readiness check (``health``) means mail can flow.
    """
    system = InternetMailHost(ctx, host)
    await system.start()

    async def health(_: dict[str, Any]) -> dict[str, Any]:
        return {"status": "ok", "name": ctx.name, "kind": "internet", "smtp": system.endpoints}

    async def queue(_: dict[str, Any]) -> dict[str, Any]:
        return {"queues": await asyncio.to_thread(system.queues)}

    console = await serve_console(ctx.home / "console.sock", {"health": health, "queue": queue})
    try:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        console.close()
        await system.stop()
