"""The hub's pipeline: categorizer, delivery workers and the queue sweeper.

- The categorizer takes messages from the Submission queue, routes every
  recipient (:mod:`.routing`) and hands the decisions to the store.
- The scheduler looks for delivery queues whose time has come and runs one
  worker per queue: ``MapiDelivery`` through the store API of the mailbox
  server, ``SmtpRelayToRemoteAdSite`` through the intra-organization send
  connector to the hubs of the next site, ``SmartHostConnectorDelivery``
  through the send connector's smart hosts.  A connection failure puts the
  queue on the retry ladder with Exchange's LastError.
- The sweeper runs expiry, delay notifications and idle-queue removal.

Store calls block (they fsync); they run in threads.  Nothing here sleeps
through a retry timer: the scheduler asks the store when something is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sitemail.clock import Clock
from sitemail.mailbox.delivery_batch import LocalStore
from sitemail.mailbox.store_client import StoreClient
from sitemail.mailflow.next_hop_pool import NextHopPool
from sitemail.mailflow.outbound import (
    BodySource,
    OutboundMessage,
    RecipientStatus,
    SenderSettings,
    SendResult,
    Target,
    message_body,
    send_session_logs,
)
from sitemail.mailflow.protocol_log import NullProtocolLog, ProtocolLog
from sitemail.mailflow.send_decision import SendPolicy
from sitemail.mailflow.smtp_sender import NextHopConnection
from sitemail.org.directory import Directory
from sitemail.org.model import InternetHost, LoggingLevel, Organization, SendConnector, Server
from sitemail.org.pki import PeerVerifier, server_cert_files
from sitemail.org.ports import STORE_PORT
from sitemail.org.version_facts import facts_for
from sitemail.protocols.smtp.replies import internal_id_of
from sitemail.protocols.smtp.shadow import MAX_DISCARD_IDS
from sitemail.server.context import ProcessContext
from sitemail.transport.headers import without_organization_headers
from sitemail.transport.queue import (
    DeliveryBatch,
    DeliveryType,
    QueuedMessage,
    QueueEventKind,
    QueueRef,
    QueueStore,
    RecipientOutcome,
    ShadowHandoff,
    raise_first_refusal,
)
from sitemail.transport.routing import RoutingTable, route
from sitemail.transport.shadow_redundancy import ShadowHeartbeat, Verdict
from sitemail.transport.store_delivery import StoreReplies, deliver_to_mailboxes

log = logging.getLogger("sitemail.transport.pipeline")

#: How a hub words the outcomes of delivering to a mailbox database (the store driver's).
_STORE_REPLIES = StoreReplies(
    delivered="250 2.0.0 Delivered to the mailbox",
    unavailable="451 4.4.0 The mailbox database is unavailable: {exc}",
    too_large="552 5.3.4 STOREDRV.Deliver; message too large",
    deferred="432 4.2.0 STOREDRV.Deliver; {exc}",
    not_found="550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
)

_NOT_FOR_CATEGORIZER = (
    QueueEventKind.ROUTED,
    QueueEventKind.DELIVERED,
    QueueEventKind.DEFERRED,
    QueueEventKind.QUEUE_RETRY,
    QueueEventKind.REMOVED,
)
_NOT_WHILE_SUBMISSION_SUSPENDED = (*_NOT_FOR_CATEGORIZER, QueueEventKind.RECEIVED)

#: How often the loops look for work when nothing woke them.
IDLE_POLL = 1.0
SWEEP_INTERVAL = 1.0
BATCH = 20


#: Delivers one batch; True when the queue went to Retry (its worker stops this round).
Deliver = Callable[[DeliveryBatch], Awaitable[bool]]


class WorkLoops:
    """Loops that run a step while it finds work, then sleep until woken (or IDLE_POLL).

    The queue store's listener wakes them from its threads for every committed
    event; wake-ups coalesce (one in flight), the loops read everything when
    they run.  The hub's pipeline and the lab's Internet host run on these.
    """

    def __init__(self) -> None:
        self._wakes: dict[str, asyncio.Event] = {}
        # step -> event kinds that never give it work (see wake_threadsafe)
        self._deaf: dict[str, Collection[object]] = {}
        self._hearing: dict[object, tuple[str, ...]] = {}  # kind -> steps it wakes
        self._pending: set[str] = set()  # steps a wake-up is on its way to
        self._pending_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # queue id -> its delivery workers (each a connection to the next hop, for SMTP)
        self._workers: dict[int, set[asyncio.Task[None]]] = {}
        self._backlog: set[int] = set()  # queues whose last batch was full

    def start(
        self,
        steps: dict[str, Callable[[], Awaitable[bool]]],
        deaf: Mapping[str, Collection[object]] | None = None,
    ) -> None:
        """One task per named step (the name is for the log when a step fails).

        ``deaf``: per step, the event kinds :meth:`wake_threadsafe` need not wake it for
        (it would look and find nothing); it still looks every IDLE_POLL.
        """
        self._loop = asyncio.get_running_loop()
        self._wakes = {name: asyncio.Event() for name in steps}
        self._deaf = dict(deaf or {})
        self._hearing.clear()
        self._tasks = [asyncio.ensure_future(self._forever(s, name)) for name, s in steps.items()]

    def hear(self, name: str, deaf: Collection[object]) -> None:
        """From now on, the event kinds step ``name`` is not woken for (see :meth:`start`)."""
        with self._pending_lock:
            if self._deaf.get(name) != deaf:
                self._deaf[name] = deaf
                self._hearing = {}  # wake_threadsafe works the steps out again

    async def stop(self) -> None:
        tasks = [*self._tasks, *(t for ts in self._workers.values() for t in ts)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._workers.clear()

    def start_workers(
        self,
        store: QueueStore,
        queues: list[QueueRef],
        deliver: Deliver,
        limit: Callable[[QueueRef], int] = lambda _queue: 1,
    ) -> bool:
        """Delivery workers for the due queues; True if one started.

        A queue with none gets one.  A queue whose worker took a full batch (more
        is waiting) gets one more, up to ``limit(queue)`` (Set-TransportServer's
        MaxPerDomainOutboundConnections for a next hop, MaxConcurrentMailboxDeliveries
        for a database): workers open as the queue grows, and end when it is empty.
        """
        started = False
        for queue in queues:
            running = self._workers.setdefault(queue.queue_id, set())
            if running and (
                queue.queue_id not in self._backlog or len(running) >= max(1, limit(queue))
            ):
                continue
            self._backlog.discard(queue.queue_id)
            task = asyncio.ensure_future(self._work(store, queue, deliver))
            running.add(task)
            task.add_done_callback(functools.partial(self._worker_done, queue.queue_id))
            started = True
        return started

    def workers(self, queue_id: int) -> int:
        """Delivery workers running for the queue now."""
        return len(self._workers.get(queue_id, ()))

    def _worker_done(self, queue_id: int, task: asyncio.Task[None]) -> None:
        running = self._workers.get(queue_id)
        if running is not None:
            running.discard(task)
            if not running:
                del self._workers[queue_id]
        self.wake()  # the queue may have more, or be due again

    async def _work(self, store: QueueStore, queue: QueueRef, deliver: Deliver) -> None:
        while True:
            batch = await asyncio.to_thread(store.take_batch, queue.queue_id, BATCH)
            if batch is None:
                return
            if len(batch.messages) >= BATCH:
                # More may be waiting: the scheduler may add a worker beside this one.
                self._backlog.add(queue.queue_id)
                self.wake()
            try:
                failed = await deliver(batch)
            finally:
                await asyncio.to_thread(store.finish, batch.lease)
            if failed:
                return

    def wake(self) -> None:
        for event in self._wakes.values():
            event.set()

    def wake_threadsafe(self, kind: object = None) -> None:
        """Wake the steps an event of ``kind`` may give work (None: every step).

        Every committed queue event calls this (hundreds a second under load): one
        wake-up in flight per step is enough, a step reads everything when it runs.
        A step woken for nothing costs a thread hop into the queue database, so a
        delivery does not wake the categorizer, nor an accepted message the scheduler.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._pending_lock:
            names = self._hearing.get(kind)
            if names is None:
                names = tuple(
                    n for n in self._wakes if kind is None or kind not in self._deaf.get(n, ())
                )
                self._hearing[kind] = names
            new = [n for n in names if n not in self._pending]
            if not new:
                return
            schedule = not self._pending
            self._pending.update(new)
        if schedule:
            loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        with self._pending_lock:
            names, self._pending = self._pending, set()
        for name in names:
            self._wakes[name].set()

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
                wake = self._wakes[name]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_POLL):
                        await wake.wait()
                wake.clear()


@dataclass
class PipelineDeps:
    ctx: ProcessContext
    store: QueueStore
    send_log: ProtocolLog | NullProtocolLog
    #: A server's store when it runs in this process: mailbox delivery skips HTTPS.
    local_store: Callable[[str], LocalStore | None] | None = None


class Pipeline:
    def __init__(self, deps: PipelineDeps) -> None:
        self.ctx = deps.ctx
        self.store = deps.store
        self.send_log = deps.send_log
        self.local_store = deps.local_store
        self.directory: Directory = deps.ctx.directory
        self.clock: Clock = deps.ctx.clock
        self.loops = WorkLoops()
        self._last_sweep = -SWEEP_INTERVAL
        self._table: RoutingTable | None = None
        self._mailboxes: StoreClient | None = None
        self.shadow = ShadowHeartbeat(self.store, self._organization, self._heartbeat_connection)
        self._sessions = NextHopPool()  # hub-to-hub sessions between batches

    # --------------------------------------------------------------- control

    async def start(self) -> None:
        self.store.add_listener(lambda event: self.loops.wake_threadsafe(event.kind))
        pki = self.ctx.pki_dir
        self._mailboxes = StoreClient(
            self.directory,
            lambda server: (self.ctx.address_of(server), self.ctx.port(STORE_PORT)),
            ca_file=pki / "ca.pem",
            cert_files=server_cert_files(pki, self.ctx.name),
            local=self.local_store,
        )
        self.loops.start(
            {
                "categorizer": self._categorize,
                "scheduler": self._schedule,
                "shadow redundancy": self.shadow.step,
            },
            deaf={
                # Nothing of these puts a message into Submission (an NDR comes as DSN).
                "categorizer": _NOT_FOR_CATEGORIZER,
                # Nothing of these makes a delivery queue due.
                "scheduler": (QueueEventKind.RECEIVED, QueueEventKind.DELIVERED),
                # Its checks go by the clock.
                "shadow redundancy": tuple(QueueEventKind),
            },
        )

    async def stop(self) -> None:
        await self.loops.stop()
        await self._sessions.close()
        if self._mailboxes is not None:
            await self._mailboxes.close()

    def wake(self) -> None:
        self.loops.wake()

    async def routing_changed(self) -> None:
        """The directory changed: route again from a fresh snapshot, retry Unreachable."""
        self._table = None
        await asyncio.to_thread(self.store.resubmit_unreachable)
        self.wake()

    # ----------------------------------------------------------- categorizer

    def _routing(self) -> RoutingTable:
        if self._table is None:
            self._table = RoutingTable.read(self.directory)
        return self._table

    async def _categorize(self) -> bool:
        messages, held = await asyncio.to_thread(self._take_for_categorization)
        # While Suspend-Queue holds Submission, an accepted message gives the categorizer
        # nothing: it is not woken for each (a thread hop and a read per queue commit
        # under load), only for a change of a queue (Resume-Queue) and every IDLE_POLL.
        self.loops.hear(
            "categorizer",
            _NOT_WHILE_SUBMISSION_SUSPENDED if held else _NOT_FOR_CATEGORIZER,
        )
        if not messages:
            return False
        table = self._routing()
        local = table.server(self.ctx.name)
        if local is None:
            raise LookupError(f"server {self.ctx.name} is not in the directory")
        routes = {
            msg.item_id: {r.id: route(table, local, r.address) for r in msg.recipients}
            for msg in messages
        }
        raise_first_refusal(await asyncio.to_thread(self.store.route_many, routes))
        return True

    def _take_for_categorization(self) -> tuple[list[QueuedMessage], bool]:
        """(messages taken, whether Submission is suspended); in a thread."""
        messages = self.store.take_for_categorization(BATCH)
        return messages, not messages and self.store.submission_suspended()

    # ------------------------------------------------------------- scheduler

    async def _schedule(self) -> bool:
        # Expiry, delay notices, stuck and idle queues are matters of seconds: one
        # sweep a second, not one per wake-up (each accepted message wakes us).
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_INTERVAL:
            self._last_sweep = now
            await asyncio.to_thread(self.store.sweep)
        queues = await asyncio.to_thread(self.store.due_queues)
        return self.loops.start_workers(self.store, queues, self._deliver, self._concurrency)

    def _concurrency(self, queue: QueueRef) -> int:
        """How many workers (connections, for SMTP) one queue may have at once."""
        transport = self._local().transport
        if queue.delivery_type is DeliveryType.MAPI_DELIVERY:
            return transport.max_concurrent_mailbox_deliveries
        return min(
            transport.max_per_domain_outbound_connections, transport.max_outbound_connections
        )

    async def _deliver(self, batch: DeliveryBatch) -> bool:
        """Deliver one batch; True when the queue went to Retry (stop this round)."""
        kind = batch.queue.delivery_type
        if kind is DeliveryType.MAPI_DELIVERY:
            return await self._deliver_to_mailboxes(batch)
        if kind in (
            DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE,
            DeliveryType.SMART_HOST_CONNECTOR_DELIVERY,
            DeliveryType.SMTP_RELAY_TO_TI_RG,
        ):
            return await self._deliver_by_smtp(batch)
        await asyncio.to_thread(
            self.store.report_connection_failure,
            batch.lease,
            f"451 4.4.0 Delivery type {kind.value} is not available on this server",
        )
        return True

    # ------------------------------------------------------ mailbox delivery

    async def _deliver_to_mailboxes(self, batch: DeliveryBatch) -> bool:
        assert self._mailboxes is not None
        deliver = self._mailboxes.deliver_many
        return await deliver_to_mailboxes(self.store, batch, deliver, _STORE_REPLIES)

    # --------------------------------------------------------- SMTP delivery

    def _targets(self, queue: QueueRef) -> tuple[list[Target], SendPolicy, str]:
        """Where the queue's next hop is, what the connector requires, and its log id."""
        smtp_port = self.ctx.port(25)
        if queue.delivery_type is DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE:
            hubs = self._routing().hubs(queue.next_hop_domain)
            targets = [Target(h.fqdn, self.ctx.address_of(h.name), smtp_port) for h in hubs]
            return targets, SendPolicy.intra_org(), "Intra-Organization SMTP Send Connector"
        if queue.delivery_type is DeliveryType.SMTP_RELAY_TO_TI_RG:
            legacy = [
                s
                for s in self._routing().servers
                if s.version.value == "6.5" and s.site.lower() == self._local().site.lower()
            ]
            targets = [Target(s.fqdn, self.ctx.address_of(s.name), smtp_port) for s in legacy]
            # 2003 routing groups need X-EXPS GSSAPI, which needs a Windows domain: the
            # relay uses no Exchange authentication (as an ExternalAuthoritative link would).
            return targets, SendPolicy(), "Intra-Organization SMTP Send Connector"
        connector = self._connector_for(queue)
        hosts = connector.smart_hosts if connector else queue.next_hop_domain.split(",")
        port = self.ctx.port(connector.port if connector else 25)
        targets = [Target(h, self._resolve_host(h), port) for h in hosts]
        policy = SendPolicy(require_tls=bool(connector and connector.require_tls))
        return targets, policy, connector.name if connector else "Internet"

    def _local(self) -> Server:
        server = self._routing().server(self.ctx.name)
        if server is None:
            raise LookupError(f"server {self.ctx.name} is not in the directory")
        return server

    def _connector_for(self, queue: QueueRef) -> SendConnector | None:
        name = queue.key.split(":", 2)[1] if queue.key.startswith("connector:") else ""
        for c in self._routing().send_connectors:
            if c.name.lower() == name:
                return c
        return None

    def _resolve_host(self, host: str) -> str:
        """A smart host name -> the address this server reaches it at."""
        low = host.strip().strip("[]").lower()
        for internet in self.directory.list(InternetHost):
            if internet.fqdn == low or internet.name.lower() == low:
                return self.ctx.address_of(internet.name)
        for server in self._routing().servers:
            if server.fqdn == low or server.name.lower() == low:
                return self.ctx.address_of(server.name)
        return low  # an address, or a name the system resolver knows

    def _sender_settings(self, policy: SendPolicy, *, xshadow: bool) -> SenderSettings:
        local = self._local()
        pki = self.ctx.pki_dir
        return SenderSettings(
            fqdn=local.fqdn,
            server_name=local.name,
            policy=policy,
            cert_files=server_cert_files(pki, local.name),
            verifier=PeerVerifier.from_file(pki / "ca.pem", clock=self.clock),
            connect_timeout=10.0,
            reply_timeout=120.0,
            # A 2007 hub keeps no shadow copies (shadow redundancy came with 2010).
            xshadow=xshadow and facts_for(local.version).shadow_redundancy,
        )

    async def _deliver_by_smtp(self, batch: DeliveryBatch) -> bool:
        targets, policy, connector_id = self._targets(batch.queue)
        if not targets:
            error = (
                f"451 4.4.0 No Hub Transport server is available in {batch.queue.next_hop_domain}"
            )
            await asyncio.to_thread(self.store.report_connection_failure, batch.lease, error)
            return True
        local = self._local()
        intra = batch.queue.delivery_type is not DeliveryType.SMART_HOST_CONNECTOR_DELIVERY
        # Shadow copies between 2010 hubs only: the hop to another site's hubs.
        xshadow = (
            batch.queue.delivery_type is DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE
            and self._organization().shadow_redundancy_enabled
        )
        level = (
            local.transport.intra_org_connector_protocol_logging_level
            if intra
            else self._connector_level(batch.queue)
        )
        # Between hubs of the organization a session that ended its batch in good order
        # waits a moment for the next one (next_hop_pool); other next hops get a
        # session per batch, as before.
        key = (
            (tuple(targets), policy, xshadow, connector_id, level.value)
            if batch.queue.delivery_type is DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE
            else None
        )
        connection = self._sessions.take(key) if key is not None else None
        if connection is None:
            connection = NextHopConnection(
                targets,
                self._sender_settings(policy, xshadow=xshadow),
                local_address=self.ctx.address,
                session_logs=send_session_logs(self.send_log, connector_id, level.value),
            )
        finished = False
        connected = False
        shadowed: str | None = None
        # The batch's messages go over one session to the next hop, RSET between them,
        # as Exchange sends a queue's mail (one TLS and Exchange authentication, not one
        # per message).
        # To another site's 2010 hubs the batch is reported in one queue transaction
        # at its end: a crash before it sends those messages again, and the mailbox
        # store keeps each delivery id once, so the wider window costs no duplicate in a
        # mailbox.  Elsewhere (a smart host, the Internet, 2003) each message is reported
        # as soon as the next hop took it, as narrow a window as there can be.
        batched = batch.queue.delivery_type is DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE
        reports: list[tuple[int, Sequence[RecipientOutcome]]] = []
        shadows: dict[int, ShadowHandoff] = {}

        async def flush() -> None:
            if reports:
                taken, held = list(reports), dict(shadows)
                reports.clear()
                shadows.clear()
                await asyncio.to_thread(self.store.report_many, batch.lease, taken, shadows=held)

        try:
            for msg in batch.messages:
                body = message_body(msg.source)
                if not intra:
                    body = _leaving_the_organization(body)
                result = await connection.send(
                    OutboundMessage.from_envelope(msg.envelope, msg.size), body
                )
                if result.all_targets_failed:
                    await flush()
                    await asyncio.to_thread(
                        self.store.report_connection_failure,
                        batch.lease,
                        result.last_error or "451 4.4.0 Delivery failed",
                    )
                    return True
                if not connected:
                    await asyncio.to_thread(self.store.mark_connected, batch.lease)
                    connected = True
                handoff = shadow_handoff(result)
                if handoff is not None:
                    shadowed = handoff.server
                    shadows[msg.item_id] = handoff
                reports.append((msg.item_id, outcomes_of(msg, result)))
                if not batched:
                    await flush()
            await flush()
            if shadowed is not None:
                # While connected, take the hop's discard notifications too.
                answer = await connection.heartbeat(MAX_DISCARD_IDS, open_new=False)
                if answer is not None:
                    await self.shadow.apply(
                        shadowed,
                        Verdict(discard=tuple(answer.discards), shadow_id=answer.shadow_id),
                    )
            finished = True
        finally:
            if finished and key is not None:
                self._sessions.give_back(key, connection)
            else:
                await connection.close()
        return False

    def _organization(self) -> Organization:
        orgs = self.directory.list(Organization)
        if not orgs:
            raise LookupError("the directory holds no organization")
        return orgs[0]

    def _heartbeat_connection(self, fqdn: str) -> NextHopConnection | None:
        """A connection to the hub ``fqdn`` for a shadow heartbeat (None: no such hub)."""
        hub = next(
            (s for s in self._routing().servers if s.fqdn.lower() == fqdn.lower() and s.is_hub),
            None,
        )
        if hub is None:
            return None
        target = Target(hub.fqdn, self.ctx.address_of(hub.name), self.ctx.port(25))
        level = self._local().transport.intra_org_connector_protocol_logging_level
        logs = send_session_logs(
            self.send_log, "Intra-Organization SMTP Send Connector", level.value
        )
        settings = self._sender_settings(SendPolicy.intra_org(), xshadow=True)
        return NextHopConnection(
            [target], settings, local_address=self.ctx.address, session_logs=logs
        )

    def _connector_level(self, queue: QueueRef) -> LoggingLevel:
        connector = self._connector_for(queue)
        return connector.protocol_logging_level if connector else LoggingLevel.NONE


def _leaving_the_organization(body: BodySource) -> BodySource:
    """``body`` without the organization's header fields (to a send connector's smart
    host or the Internet; SIZE= keeps the larger figure, which RFC 1870 allows)."""

    def chunks() -> Iterable[bytes]:
        source = body()
        if not isinstance(source, Iterable):
            raise TypeError("a spool file's body is read synchronously")
        return without_organization_headers(source)

    return chunks


def outcomes_of(msg: QueuedMessage, result: SendResult) -> list[RecipientOutcome]:
    """Per-recipient outcomes for the queue from what the next hop answered."""
    by_address = {r.address.lower(): r for r in result.recipients}
    out = []
    for rcpt in msg.recipients:
        r = by_address.get(rcpt.address.lower())
        if r is None:
            out.append(RecipientOutcome.deferred(rcpt.id, "451 4.4.0 No reply for recipient"))
        elif r.status is RecipientStatus.DELIVERED:
            out.append(RecipientOutcome.delivered(rcpt.id, str(r.reply)))
        elif r.status is RecipientStatus.FAILED:
            out.append(RecipientOutcome.failed(rcpt.id, str(r.reply)))
        else:
            out.append(RecipientOutcome.deferred(rcpt.id, str(r.reply)))
    return out


def shadow_handoff(result: SendResult) -> ShadowHandoff | None:
    """Where the primary copy is now, when the next hop took the message under XSHADOW."""
    if result.shadow_id is None or result.target is None or result.final_reply is None:
        return None
    if not result.final_reply.is_positive:
        return None
    remote_id = internal_id_of(result.final_reply)
    if remote_id is None:
        return None  # not a 2010 hub's answer: nothing to be told about later
    return ShadowHandoff(result.target.host, result.shadow_id, remote_id)
