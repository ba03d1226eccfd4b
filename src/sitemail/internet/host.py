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
import logging
import ssl
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sitemail.internet.policy import (
    POSTFIX_REPLIES,
    SMTP_PORT,
    SUBMISSION_PORT,
    InternetProfile,
    mx_servers,
    queue_id,
    route_recipient,
)
from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.delivery_batch import BatchMessage, DeliveryAnswer
from sitemail.mailflow.envelope import Envelope, SpoolWriter
from sitemail.mailflow.outbound import OutboundMessage, SenderSettings, Target, message_body
from sitemail.mailflow.send_decision import SendPolicy
from sitemail.mailflow.smtp_sender import send_message
from sitemail.mta.session import MtaListener
from sitemail.org.model import InternetHost, InternetUser, Organization, ReceiveConnector, Server
from sitemail.org.pki import server_cert_files, server_ssl_context
from sitemail.server import event_loop
from sitemail.server.console import serve_console
from sitemail.server.context import ProcessContext
from sitemail.transport.pipeline import WorkLoops, outcomes_of
from sitemail.transport.queue import (
    DeliveryBatch,
    DeliveryType,
    QueueStore,
    raise_first_refusal,
)
from sitemail.transport.store_delivery import StoreReplies, deliver_to_mailboxes

log = logging.getLogger(__name__)

#: How the host's local delivery words its outcomes (Postfix's local(8) way).
_STORE_REPLIES = StoreReplies(
    delivered="250 2.0.0 Ok: delivered to mailbox",
    unavailable="451 4.3.0 {exc}",
    too_large=str(POSTFIX_REPLIES.size_exceeded),
    deferred="451 4.3.0 {exc}",
)

BATCH = 20


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
        self.loops = WorkLoops()

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
        store.add_listener(lambda _event: self.loops.wake_threadsafe())
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
        self.loops.start({"categorizer": self._categorize, "scheduler": self._schedule})
        log.info("%s ready: SMTP on %s", host.fqdn, ", ".join(self.endpoints))

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.close()
            self.listener = None
        await self.loops.stop()
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.mailboxes is not None:
            self.mailboxes.close()
            self.mailboxes = None

    # --- categorizer and scheduler

    async def _categorize(self) -> bool:
        store = self.store
        assert store is not None
        messages = await asyncio.to_thread(store.take_for_categorization, BATCH)
        if not messages:
            return False
        profile, organization = self.profile(), self._organization()
        routes = {
            msg.item_id: {
                r.id: route_recipient(
                    r.address,
                    domains=profile.domains,
                    users=profile.users,
                    organization=organization,
                )
                for r in msg.recipients
            }
            for msg in messages
        }
        raise_first_refusal(await asyncio.to_thread(store.route_many, routes))
        return True

    async def _schedule(self) -> bool:
        store = self.store
        assert store is not None
        await asyncio.to_thread(store.sweep)
        queues = await asyncio.to_thread(store.due_queues)
        return self.loops.start_workers(store, queues, self._deliver)

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

        async def deliver(messages: Sequence[BatchMessage]) -> list[DeliveryAnswer]:
            deliveries = [
                (address.lower(), delivery_id, message.body)
                for message in messages
                for address, delivery_id in message.recipients
            ]
            return await asyncio.to_thread(mailboxes.deliver_many, deliveries)

        return await deliver_to_mailboxes(store, batch, deliver, _STORE_REPLIES)

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
                message_body(msg.source),
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
        await event_loop.stop_signal().wait()
    finally:
        console.close()
        await system.stop()
