"""``sitemail serve NAME``: run one server, firewall or Internet host of an organization.

The directory says what NAME is.  An Exchange server runs the services of
its roles and an admin HTTPS API on its own address; a firewall runs its
relays; the lab's Internet host runs its outside mail system.  SIGTERM stops
every service cleanly; a kill -9 loses nothing that was acknowledged,
because every service keeps its state on disk.

This is the composition root of a process, beside :mod:`sitemail.cli`: it is
the one module that knows every role, so it sits above them all and nothing
of sitemail's imports it but the command line.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sitemail.org.cached_directory import CachedDirectory
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import ExchangeVersion, Firewall, InternetHost, Server, ServerRole
from sitemail.org.pki import PeerVerifier, server_cert_files, server_ssl_context
from sitemail.org.ports import ADMIN_PORT, STORE_PORT
from sitemail.server import event_loop
from sitemail.server.console import serve_console
from sitemail.server.context import ProcessContext, lab_settings
from sitemail.server.services import (
    DISPLAY_NAMES,
    IdleService,
    Service,
    ServiceError,
    ServiceHost,
)
from sitemail.server.watcher import DirectoryWatcher

if TYPE_CHECKING:
    from sitemail.mailbox.delivery_batch import LocalStore
    from sitemail.server.admin_api import RouteAdder

log = logging.getLogger("sitemail.serve")


class ServeError(Exception):
    pass


# Exchange 2007 SP3 and 2010 SP3 servers run the same implementations; what differs
# between them is data (org/version_facts.py) that each service reads for its server.
_CURRENT = (ExchangeVersion.E2010, ExchangeVersion.E2007)


def _services_for(server: Server) -> list[str]:
    if server.version is ExchangeVersion.E2003:
        # The System Attendant first: IIS starts from the metabase it writes.
        return ["MSExchangeSA", "MSExchangeIS", "SMTPSVC", "W3SVC"]
    names = ["MSExchangeADTopology"]
    if ServerRole.MAILBOX in server.roles:
        names += ["MSExchangeIS", "MSExchangeMailSubmission"]
    if ServerRole.HUB_TRANSPORT in server.roles:
        names.append("MSExchangeTransport")
    if ServerRole.CLIENT_ACCESS in server.roles:
        names += ["W3SVC", "MSExchangePOP3", "MSExchangeIMAP4"]
    return names


def _service(
    name: str,
    ctx: ProcessContext,
    server: Server,
    watcher: DirectoryWatcher,
    host: ServiceHost | None = None,
) -> Service:
    """The implementation of one Windows service of this server (``host``: its siblings)."""
    if name == "MSExchangeTransport" and server.is_hub:
        from sitemail.transport.service import TransportService

        # Mail for this server's own databases goes to its MSExchangeIS directly.
        return TransportService(ctx, watcher, _store_of_this_process(ctx, host))
    if name == "W3SVC" and server.version in _CURRENT:
        from sitemail.access.http_protocols import register_http_protocols
        from sitemail.access.web.service import W3svcService

        web_site = W3svcService(ctx, watcher)
        # EWS, ActiveSync and Autodiscover plug into its front door.
        register_http_protocols(web_site)
        return web_site
    if name == "W3SVC" and server.version is ExchangeVersion.E2003:
        from sitemail.access.exchange2003_web import Exchange2003WebService

        # /Microsoft-Server-ActiveSync (for 2010 CAS proxies only) and /exchange.
        return Exchange2003WebService(ctx)
    if name == "MSExchangeSA" and server.version is ExchangeVersion.E2003:
        from sitemail.exchange2003.system_attendant import SystemAttendantService

        # Its DS2MB pass copies the directory's virtual directory settings over IIS's.
        return SystemAttendantService(ctx)
    if name == "MSExchangeIS":
        from sitemail.mailbox.service import InformationStoreService

        # The Calendar Attendant came with Exchange 2007: a 2003 store files no meetings.
        return InformationStoreService.from_context(
            ctx, ctx.port(STORE_PORT), calendar_attendant=server.version in _CURRENT
        )
    if name == "SMTPSVC" and server.version is ExchangeVersion.E2003:
        from sitemail.exchange2003.smtp_service import LegacySmtpService

        # It stores through the MSExchangeIS of the same process.
        return LegacySmtpService.from_context(ctx, server, host)
    if name == "MSExchangeMailSubmission" and server.version in _CURRENT:
        from sitemail.mailbox.submission_service import MailSubmissionService

        # It reads and files Outbox messages through the MSExchangeIS of this process
        # (added before it): one writer per database file, and its change notifications.
        return MailSubmissionService.from_context(ctx, server, host)
    if name == "MSExchangePOP3" and server.version in _CURRENT:
        from sitemail.access.pop3_front import Pop3Service

        return Pop3Service(ctx, server)
    if name == "MSExchangeIMAP4" and server.version in _CURRENT:
        from sitemail.access.imap_front import Imap4Service

        return Imap4Service(ctx, server)
    return IdleService(name, DISPLAY_NAMES[name])


def _store_of_this_process(
    ctx: ProcessContext, host: ServiceHost | None
) -> Callable[[str], LocalStore | None]:
    """server name -> the running store of this process when it is that server's."""

    def local(server: str) -> LocalStore | None:
        if host is None or server.lower() != ctx.name.lower():
            return None
        try:
            service = host.get("MSExchangeIS")
        except ServiceError:
            return None
        # None while MSExchangeIS is stopped: the hub then meets the closed port, as before.
        return getattr(service, "backend", None)

    return local


def _base_dir(directory_url: str, lab_dir: str | None) -> Path:
    if lab_dir:
        return Path(lab_dir).resolve()
    path = directory_url.removeprefix("sqlite://")
    return Path(path).resolve().parent


async def serve_exchange_server(ctx: ProcessContext, server: Server) -> None:
    # The admin API is an Exchange server's only (aiohttp's server): a firewall or an
    # Internet host process does not load it.  Imported before gc.freeze below.
    from aiohttp import web

    from sitemail.diagnose.log_routes import add_protocol_log_routes
    from sitemail.server.admin_api import build_app
    from sitemail.transport.admin_routes import add_transport_routes

    host = ServiceHost()
    watcher = DirectoryWatcher(ctx.directory)
    for name in _services_for(server):
        host.add(_service(name, ctx, server, watcher, host))
    await host.start_all()
    # What start-up built (directory snapshots, models, modules) lives as long as the
    # process: out of the collector's reach, a full collection under load no longer walks
    # it (it was 2-3% of a hub's time with mail flowing).
    gc.collect()
    gc.freeze()
    watcher.start()
    files = server_cert_files(ctx.pki_dir, server.name)
    ca_file = ctx.pki_dir / "ca.pem"
    tls = server_ssl_context(files, ca_file=ca_file, client_certs="required")
    verifier = PeerVerifier.from_file(ca_file, clock=ctx.clock)
    info = {
        "name": server.name,
        "version": server.version.value,
        "roles": [r.value for r in server.roles],
        "site": server.site,
    }
    routes: list[RouteAdder] = [add_transport_routes, add_protocol_log_routes]
    app = build_app(host, verifier, info, routes, watcher=watcher)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    admin_port = ctx.port(ADMIN_PORT)
    site = web.TCPSite(runner, ctx.address, admin_port, ssl_context=tls, backlog=64)
    await site.start()
    log.info("%s ready: admin API https://%s:%d", server.name, ctx.address, admin_port)
    try:
        await event_loop.stop_signal().wait()
    finally:
        await watcher.stop()
        await runner.cleanup()
        await host.stop_all()


async def serve_console_only(ctx: ProcessContext, what: str) -> None:
    """A process whose only management interface is its console socket (for now)."""

    async def health(_: dict[str, object]) -> dict[str, object]:
        return {"status": "ok", "name": ctx.name, "kind": what}

    console = await serve_console(ctx.home / "console.sock", {"health": health})
    try:
        await event_loop.stop_signal().wait()
    finally:
        console.close()


def run(name: str, directory_url: str, lab_dir: str | None = None) -> int:
    # A server writes to sockets whose peers may be gone: that must be EPIPE for the
    # one session, never the death of the process (`sitemail` restores SIGPIPE's
    # default so that its output can be piped into `head`; a server is not that).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    if directory_url.startswith(("ldap://", "ldaps://")) and not lab_dir:
        print(
            "sitemail serve: with an LDAP directory, give --lab-dir (the folder where this "
            "server keeps its queues, mailboxes and logs)",
            file=sys.stderr,
        )
        return 2
    try:
        # Hot paths read the directory on every request: a read cache that sees
        # changes within a quarter of a second (org/cached_directory.py).
        directory: Directory = CachedDirectory(open_directory(directory_url))
    except Exception as exc:
        print(f"sitemail serve: cannot open directory {directory_url!r}: {exc}", file=sys.stderr)
        return 2
    base = _base_dir(directory_url, lab_dir)
    settings = lab_settings(directory)
    server = directory.get(Server, name)
    firewall = directory.get(Firewall, name)
    internet = directory.get(InternetHost, name)
    if server is None and firewall is None and internet is None:
        print(
            f"sitemail serve: {name!r} is not a server, firewall or Internet host of the "
            "organization in this directory (see `sitemail lab status`)",
            file=sys.stderr,
        )
        return 2
    if server is not None:
        site, address, home = server.site, server.address, base / "servers" / name
    elif firewall is not None:
        site, address = firewall.site, firewall.address
        home = base / "firewalls" / name
    else:
        assert internet is not None
        site, address = internet.site, internet.address
        home = base / "servers" / name
    if not address:
        print(f"sitemail serve: {name} has no address in the directory", file=sys.stderr)
        return 2
    home.mkdir(parents=True, exist_ok=True)
    ctx = ProcessContext(
        name=name,
        site=site,
        address=address,
        directory=directory,
        directory_url=directory_url,
        base_dir=base,
        home=home,
        pki_dir=base / "pki",
        port_offset=settings.port_offset,
    )
    (home / "pid").write_text(f"{os.getpid()}\n")
    try:
        if server is not None:
            if server.is_hub and server.version in _CURRENT:
                from sitemail.transport.receive_worker import prefork_zygote

                # Before the event loop and its threads: the receive workers forked
                # from this process share its pages (transport/receive_worker.py).
                prefork_zygote(name, home)
            if ServerRole.CLIENT_ACCESS in server.roles and server.version in _CURRENT:
                from sitemail.access.web import worker as web_worker

                # The same for the W3SVC's workers (access/web/worker.py).
                web_worker.prefork(name, home)
            event_loop.run(serve_exchange_server(ctx, server))
        elif firewall is not None:
            from sitemail.firewall.process import serve_firewall

            event_loop.run(serve_firewall(ctx, firewall))
        elif internet is not None and internet.engine == "postfix":
            from sitemail.internet.postfix_host import serve_postfix_host

            event_loop.run(serve_postfix_host(ctx, internet))
        else:
            from sitemail.internet.host import serve_internet_host

            assert internet is not None
            event_loop.run(serve_internet_host(ctx, internet))
    except OSError as exc:
        print(f"sitemail serve {name}: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            (home / "pid").unlink()
        directory.close()
    return 0
