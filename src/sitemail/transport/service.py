"""MSExchangeTransport: the hub transport service of one server.

It owns the durable queue, the receive connectors' listeners, the protocol
and tracking logs, and (as the pipeline lands) the categorizer and the
delivery workers.  Restart-Service MSExchangeTransport stops and starts it:
sessions drop, accepted mail stays in the queue on disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from sitemail.mailbox.delivery_batch import LocalStore
from sitemail.mailflow.log_files import LogLimits
from sitemail.mailflow.protocol_log import SESSION_IDS, NullProtocolLog, ProtocolLog
from sitemail.mailflow.tracking_log import MessageTrackingLog
from sitemail.org.model import Organization, ReceiveConnector, Server, TransportSettings
from sitemail.org.pki import PeerVerifier
from sitemail.org.version_facts import facts_for
from sitemail.server.context import ProcessContext
from sitemail.server.watcher import DirectoryWatcher
from sitemail.transport.pipeline import Pipeline, PipelineDeps
from sitemail.transport.queue import QueueEvent, QueueStore, write_tracking_batch
from sitemail.transport.receive_config import (
    ReceiveEnvironment,
    StoreShadowDesk,
    ThreadedAcceptor,
    load_config,
    receive_log_limits,
    tls_contexts,
)
from sitemail.transport.receive_listeners import ReceiveListeners
from sitemail.transport.receive_workers import ReceiveWorkers, receive_worker_count

log = logging.getLogger("sitemail.transport")


def send_log_limits(t: TransportSettings) -> LogLimits:
    return LogLimits(
        max_file_size=t.send_protocol_log_max_file_size,
        max_directory_size=t.send_protocol_log_max_directory_size,
        max_age=t.send_protocol_log_max_age,
    )


#: Directory objects whose change can change a route (spec 6.1: Unreachable is resubmitted).
ROUTING_KINDS = {
    "Site",
    "SiteLink",
    "Server",
    "MailboxDatabase",
    "Mailbox",
    "SendConnector",
    "Organization",
    "NetworkPath",
}


def tracking_log_limits(t: TransportSettings) -> LogLimits:
    return LogLimits(
        max_file_size=t.message_tracking_log_max_file_size,
        max_directory_size=t.message_tracking_log_max_directory_size,
        max_age=t.message_tracking_log_max_age,
    )


class TransportService:
    name = "MSExchangeTransport"
    display_name = "Microsoft Exchange Transport"

    def __init__(
        self,
        ctx: ProcessContext,
        watcher: DirectoryWatcher,
        local_store: Callable[[str], LocalStore | None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.watcher = watcher
        self.local_store = local_store  # server -> its store when in this process
        self.store: QueueStore | None = None
        self.listeners: ReceiveListeners | None = None
        self.pipeline: Pipeline | None = None
        self.workers: ReceiveWorkers | None = None
        watcher.subscribe({ReceiveConnector.kind, Server.kind, Organization.kind}, self._on_change)
        watcher.subscribe(ROUTING_KINDS, self._on_routing_change)

    def _environment(
        self, settings: TransportSettings, store: QueueStore, log_version: str
    ) -> ReceiveEnvironment:
        ctx = self.ctx
        receive_path = settings.receive_protocol_log_path
        protocol_log: ProtocolLog | NullProtocolLog = (
            ProtocolLog.receive(
                ctx.home / receive_path,
                clock=ctx.clock,
                limits=receive_log_limits(settings),
                version=log_version,
            )
            if receive_path
            else NullProtocolLog(ctx.clock)
        )
        starttls, anonymous = tls_contexts(ctx.pki_dir, ctx.name)
        return ReceiveEnvironment(
            directory=ctx.directory,
            clock=ctx.clock,
            acceptor=ThreadedAcceptor(store),
            pki_dir=ctx.pki_dir,
            port_offset=ctx.port_offset,
            protocol_log=protocol_log,
            verifier=PeerVerifier.from_file(ctx.pki_dir / "ca.pem", clock=ctx.clock),
            starttls_context=starttls,
            anonymous_tls_context=anonymous,
            shadow=StoreShadowDesk(store),
        )

    async def start(self) -> None:
        ctx = self.ctx
        config = load_config(ctx.directory, ctx.name)
        settings = config.server.transport
        store = await asyncio.to_thread(
            QueueStore.open,
            ctx.home,
            server=config.server.name,
            fqdn=config.server.fqdn,
            clock=ctx.clock,
            settings=settings,
        )
        # 2007's logs say 8.0.0.0 where 2010's say 14.0.0.0 (org/version_facts.py).
        log_version = facts_for(config.server.version).log_version
        tracking = self._tracking_log(settings, log_version)
        if tracking is not None:
            fqdn, address = config.server.fqdn, ctx.address

            def track(events: list[QueueEvent]) -> None:
                write_tracking_batch(tracking, events, server_hostname=fqdn, server_ip=address)

            store.add_batch_listener(track)
        self.store = store
        send_path = settings.send_protocol_log_path
        send_log: ProtocolLog | NullProtocolLog = (
            ProtocolLog.send(
                ctx.home / send_path,
                clock=ctx.clock,
                limits=send_log_limits(settings),
                version=log_version,
            )
            if send_path
            else NullProtocolLog(ctx.clock)
        )
        self.pipeline = Pipeline(PipelineDeps(ctx, store, send_log, self.local_store))
        await self.pipeline.start()
        listeners = ReceiveListeners(self._environment(settings, store, log_version), config)
        count = receive_worker_count()
        if count:
            # Session ids of the workers and of this process's own sessions never meet.
            SESSION_IDS.share(0, count + 1)
            self.workers = ReceiveWorkers(ctx, store, count)
            await self.workers.start()
            listeners.dispatch = self.workers.dispatch
            self.workers.fallback = listeners.serve_here
        self.listeners = listeners
        await listeners.apply(config)

    @property
    def tracking_folder(self) -> Path | None:
        server = self.ctx.directory.get(Server, self.ctx.name)
        path = server.transport.message_tracking_log_path if server else None
        return self.ctx.home / path if path else None

    @property
    def protocol_log_folders(self) -> dict[str, Path]:
        """Where this hub writes its SMTP protocol logs: ``receive`` and ``send`` (either
        missing when its path is empty in the directory)."""
        server = self.ctx.directory.get(Server, self.ctx.name)
        if server is None:
            return {}
        paths = {
            "receive": server.transport.receive_protocol_log_path,
            "send": server.transport.send_protocol_log_path,
        }
        return {kind: self.ctx.home / path for kind, path in paths.items() if path}

    def _tracking_log(
        self, settings: TransportSettings, log_version: str
    ) -> MessageTrackingLog | None:
        path = settings.message_tracking_log_path
        if not path or not settings.message_tracking_log_enabled:
            return None
        return MessageTrackingLog(
            self.ctx.home / path,
            clock=self.ctx.clock,
            limits=tracking_log_limits(settings),
            subject_logging_enabled=settings.message_tracking_log_subject_logging_enabled,
            version=log_version,
        )

    async def stop(self) -> None:
        if self.listeners is not None:
            await self.listeners.close()
            acceptor = self.listeners.env.acceptor
            if isinstance(acceptor, ThreadedAcceptor):
                acceptor.close()
            self.listeners = None
        if self.workers is not None:
            await self.workers.stop()
            self.workers = None
        if self.pipeline is not None:
            await self.pipeline.stop()
            self.pipeline = None
        if self.store is not None:
            self.store.close()
            self.store = None

    async def _on_routing_change(self, kinds: set[str]) -> None:
        if self.pipeline is not None:
            await self.pipeline.routing_changed()
        if self.store is not None and Server.kind in kinds:
            server = self.ctx.directory.require(Server, self.ctx.name)
            self.store.settings = server.transport

    async def _on_change(self, kinds: set[str]) -> None:
        if self.listeners is None:
            return
        config = load_config(self.ctx.directory, self.ctx.name)
        await self.listeners.apply(config)
        receive_log = self.listeners.env.protocol_log
        if isinstance(receive_log, ProtocolLog):
            # Set-TransportServer's ReceiveProtocolLogMax* apply without a restart.
            receive_log.set_limits(receive_log_limits(config.server.transport))
        if self.workers is not None:
            self.workers.config_changed()
        log.info("receive connectors reloaded after a change of %s", ", ".join(sorted(kinds)))
