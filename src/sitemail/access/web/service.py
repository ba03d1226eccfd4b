"""``W3SVC``, the World Wide Web Publishing Service of a 2010 (or 2007) Client Access server.

Starting it serves the server's web site over HTTPS on port 443 (plus the
lab's port offset) of its own address, for every host name its virtual
directories' InternalUrl and ExternalUrl give.  The TLS certificate is the
server's certificate from the organization PKI, sent with the CA
certificate after it (so a browser that trusts the CA by its key can build
the chain).  The server also asks for a client certificate, which only
another Client Access server presents (to proxy); browsers present none.

The certificate is re-read when the directory changes and the files have
changed (a new ExternalUrl needs a certificate that covers its name), without
a restart; virtual directory changes take effect on the next request.

With worker processes (:mod:`.workers`, ``SITEMAIL_W3SVC_PROCESSES``), this
service in the server process binds the socket and runs the workers, and
each worker runs this same service on the inherited socket.

Mailbox access goes through the store API of the Mailbox servers of this
server's own site only (spec 8.1: a 2010 CAS talks to Mailbox servers in its
own site).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import socket
import ssl
from pathlib import Path

from aiohttp import web

from sitemail.access.throttle import SignInThrottle, ThrottlePolicy
from sitemail.access.web.common import ProtocolHandler
from sitemail.access.web.connection_guard import (
    HEADER_WAIT,
    MAX_CONNECTIONS_PER_ADDRESS,
    ConnectionGuard,
    SharedAddressCounts,
)
from sitemail.access.web.front import FrontDoor
from sitemail.access.web.logs import AccessLogs
from sitemail.access.web.owa_schedule import AvailabilityLookup
from sitemail.access.web.proxy import ProxyClient
from sitemail.access.web.sessions import SessionStore
from sitemail.access.web.sso import SsoIssuer, SsoVerifier
from sitemail.access.web.workers import (
    SECRET_BYTES,
    SharedWebState,
    WebWorkers,
    listening_socket,
    shared_table_file,
    web_worker_count,
)
from sitemail.mailbox.store_client import StoreClient
from sitemail.org.lockout import AccountLockouts
from sitemail.org.model import ExchangeVersion, Server, VirtualDirectory, VirtualDirectoryKind
from sitemail.org.pki import (
    PeerVerifier,
    ca_cert_file,
    client_ssl_context,
    server_cert_files,
    write_chain_file,
)
from sitemail.org.ports import STORE_PORT
from sitemail.server.context import ProcessContext
from sitemail.server.services import DISPLAY_NAMES
from sitemail.server.watcher import DirectoryWatcher

__all__ = ["HTTPS_PORT", "W3svcService"]

log = logging.getLogger("sitemail.w3svc")

SERVICE_NAME = "W3SVC"
HTTPS_PORT = 443
SHUTDOWN_TIMEOUT = 5.0


class W3svcService:
    """The HTTPS front end (OWA, ECP, and the plug-in virtual directories) of one CAS."""

    name = SERVICE_NAME
    display_name = DISPLAY_NAMES[SERVICE_NAME]  # "World Wide Web Publishing Service"

    def __init__(
        self,
        ctx: ProcessContext,
        watcher: DirectoryWatcher | None = None,
        *,
        port: int = HTTPS_PORT,
        header_wait: float = HEADER_WAIT,
        max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
        workers: int | None = None,
        listener: socket.socket | None = None,
        shared: SharedWebState | None = None,
    ) -> None:
        """``workers``: worker processes to run (None: ``SITEMAIL_W3SVC_PROCESSES`` or the
        CPUs); ``listener`` and ``shared``: this is a worker, serving on ``listener``."""
        self.ctx = ctx
        self.workers = workers
        self.shared = shared
        self._inherited = listener
        self.pool: WebWorkers | None = None
        self._pool_socket: socket.socket | None = None
        self.header_wait = header_wait
        self.max_connections_per_address = max_connections_per_address
        self.guard: ConnectionGuard | None = None
        self._listener: asyncio.Server | None = None
        self.watcher = watcher
        self._requested_port = ctx.port(port)
        self.port = self._requested_port
        self.front: FrontDoor | None = None
        self._runner: web.AppRunner | None = None
        self._store: StoreClient | None = None
        self._proxy: ProxyClient | None = None
        self._logs: AccessLogs | None = None
        self._tls: ssl.SSLContext | None = None
        self._cert_stamp: tuple[float, float] = (0.0, 0.0)
        self._handlers: dict[VirtualDirectoryKind, ProtocolHandler] = {}
        # OWA's Scheduling Assistant asks the availability service (EWS plugs it in).
        self.availability: AvailabilityLookup | None = None
        if watcher is not None:
            watcher.subscribe({VirtualDirectory.kind, Server.kind}, self._directory_changed)

    def register(self, kind: VirtualDirectoryKind, handler: ProtocolHandler) -> None:
        """Serve another virtual directory kind (EAS, EWS, Autodiscover) on this web site.

        Kept across restarts of the service; see :meth:`FrontDoor.register`.
        """
        self._handlers[kind] = handler
        if self.front is not None:
            self.front.register(kind, handler)

    @property
    def _chain_file(self) -> Path:
        return self.ctx.home / "inetpub" / "ssl" / f"{self.ctx.name}-chain.pem"

    def _cert_files_stamp(self) -> tuple[float, float]:
        files = server_cert_files(self.ctx.pki_dir, self.ctx.name)
        return (files.cert.stat().st_mtime, files.key.stat().st_mtime)

    def _load_certificate(self, tls: ssl.SSLContext) -> None:
        """(Re)load the server certificate, followed by the CA's, into ``tls``."""
        files = write_chain_file(self.ctx.pki_dir, self.ctx.name, self._chain_file)
        tls.load_cert_chain(files.cert, files.key)
        self._cert_stamp = self._cert_files_stamp()

    def _server_context(self) -> ssl.SSLContext:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load_certificate(tls)
        # Optional client certificates: a proxying CAS presents its server
        # certificate; browsers present none and go on to sign in.
        tls.load_verify_locations(cafile=ca_cert_file(self.ctx.pki_dir))
        tls.verify_mode = ssl.CERT_OPTIONAL
        return tls

    def _resolve_store(self, server: str) -> tuple[str, int]:
        """The store API of ``server``, refused unless it is in this server's site."""
        target = self.ctx.directory.get(Server, server)
        if target is None or target.site.casefold() != self.ctx.site.casefold():
            raise LookupError(
                f"{server} is not a Mailbox server of site {self.ctx.site}; a Client Access "
                "server reads mailboxes of its own site only"
            )
        return self.ctx.address_of(server), self.ctx.port(STORE_PORT)

    async def start(self) -> None:
        if self._runner is not None or self.pool is not None:
            return
        count = self.workers if self.workers is not None else web_worker_count()
        if self._inherited is None and count > 0:
            await self._start_workers(count)
            return
        ctx = self.ctx
        ca_file = ca_cert_file(ctx.pki_dir)
        files = server_cert_files(ctx.pki_dir, ctx.name)
        tls = await asyncio.to_thread(self._server_context)
        verifier = PeerVerifier.from_file(ca_file, clock=ctx.clock)
        store = StoreClient(ctx.directory, self._resolve_store, ca_file=ca_file, cert_files=files)
        proxy = ProxyClient(
            ctx.name,
            snapshot=lambda: front.snapshot(),
            address_of=ctx.address_of,
            port=ctx.port,
            ssl_context=client_ssl_context(ca_file, files=files),
            local_address=ctx.address,
        )
        logs = AccessLogs(ctx.home)
        shared = self.shared
        sessions = throttle = None
        counts = None
        if shared is not None:
            sessions = SessionStore(
                clock=ctx.clock, secret=shared.secret, path=shared.sessions_file
            )
            default = ThrottlePolicy()
            policy = ThrottlePolicy(
                max_failures_per_client=shared.divided(default.max_failures_per_client)
            )
            throttle = SignInThrottle(
                policy, clock=ctx.clock, accounts=AccountLockouts(ctx.directory, clock=ctx.clock)
            )
            counts = SharedAddressCounts(shared_table_file(shared.connections_file))
        me = await asyncio.to_thread(ctx.directory.get, Server, ctx.name)
        front = FrontDoor(
            ctx.name,
            directory=ctx.directory,
            store=store,
            proxy=proxy,
            verifier=verifier,
            sso_issuer=SsoIssuer(ctx.name, files, clock=ctx.clock),
            sso_verifier=SsoVerifier(
                ctx.name,
                verifier,
                clock=ctx.clock,
                first_use=sessions.first_use if sessions is not None else None,
            ),
            logs=logs,
            clock=ctx.clock,
            sessions=sessions,
            throttle=throttle,
            # A 2007 Client Access server runs this same web site as its own version.
            version=me.version if me is not None else ExchangeVersion.E2010,
        )
        for kind, handler in self._handlers.items():
            front.register(kind, handler)
        front.owa.availability = self.availability
        app = front.app()
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        servers = await asyncio.to_thread(
            lambda: frozenset(a for s in ctx.directory.list(Server) for a in s.addresses)
        )
        guard = ConnectionGuard(
            header_wait=self.header_wait,
            max_per_address=self.max_connections_per_address,
            counts=counts,
            trusted=servers.__contains__,
        )
        # The guard's middleware goes first: it sees every request begin.
        app.middlewares.insert(0, guard.middleware)
        try:
            await runner.setup()
            assert runner.server is not None
            # HTTP.sys's guards in front (connection_guard.py), so not aiohttp's TCPSite.
            loop = asyncio.get_running_loop()
            if self._inherited is not None:
                listener = await loop.create_server(
                    guard.wrap(runner.server), sock=self._inherited, ssl=tls
                )
            else:
                listener = await loop.create_server(
                    guard.wrap(runner.server),
                    ctx.address,
                    self._requested_port,
                    ssl=tls,
                    backlog=128,
                )
        except BaseException:
            await runner.cleanup()
            await store.close()
            await proxy.close()
            logs.close()
            if sessions is not None:
                sessions.close()
            raise
        # The port actually bound (a test may ask for port 0, "any free port").
        self.port = int(listener.sockets[0].getsockname()[1])
        self.guard, self._listener = guard, listener
        self.front, self._runner, self._store, self._proxy = front, runner, store, proxy
        self._logs, self._tls = logs, tls
        log.info("%s: W3SVC on https://%s:%d", ctx.name, ctx.address, self.port)

    async def _start_workers(self, count: int) -> None:
        """Bind the socket, make the shared state afresh, start ``count`` workers on it."""
        ctx = self.ctx
        sock = await asyncio.to_thread(listening_socket, ctx.address, self._requested_port)
        folder = ctx.home / "inetpub" / "temp" / SERVICE_NAME
        # A new folder and a new secret: every session of the last run ends here.
        await asyncio.to_thread(shutil.rmtree, folder, True)
        folder.mkdir(parents=True, mode=0o700)
        shared = SharedWebState(folder, secrets.token_bytes(SECRET_BYTES), count)
        pool = WebWorkers(
            ctx,
            sock,
            shared,
            header_wait=self.header_wait,
            max_connections_per_address=self.max_connections_per_address,
        )
        try:
            await pool.start()
        except BaseException:
            await pool.stop()
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self.pool, self._pool_socket, self.shared = pool, sock, shared
        log.info(
            "%s: W3SVC on https://%s:%d in %d worker processes",
            ctx.name,
            ctx.address,
            self.port,
            count,
        )

    async def stop(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.stop()
            self.shared = None
        pool_socket, self._pool_socket = self._pool_socket, None
        if pool_socket is not None:
            pool_socket.close()
        runner, store, proxy, logs = self._runner, self._store, self._proxy, self._logs
        listener, self._listener = self._listener, None
        self._runner = self._store = self._proxy = None
        self._logs = None
        front, self.front = self.front, None
        if listener is not None:
            listener.close()  # no new connections; the runner closes the open ones
        if runner is not None:
            await runner.cleanup()
        if listener is not None:
            await listener.wait_closed()
        if proxy is not None:
            await proxy.close()
        if store is not None:
            await store.close()
        if logs is not None:
            logs.close()
        if front is not None:
            front.sessions.close()

    async def _directory_changed(self, kinds: set[str]) -> None:
        """A new URL may have brought a new certificate: load it if the files changed."""
        tls = self._tls
        if tls is None or self._runner is None:
            return
        try:
            stamp = await asyncio.to_thread(self._cert_files_stamp)
            if stamp != self._cert_stamp:
                await asyncio.to_thread(self._load_certificate, tls)
                log.info("%s: reloaded the server certificate", self.ctx.name)
        except (OSError, ssl.SSLError) as exc:
            log.warning("%s: cannot reload the server certificate: %s", self.ctx.name, exc)
