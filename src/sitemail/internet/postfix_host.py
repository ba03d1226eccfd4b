"""The lab's Internet host run by a real Postfix (``internet: {engine: postfix}``).

The same host as sitemail's emulation where it matters: its name and
address, its domains, its users' mailboxes, and the organization's "MX".
``sitemail serve INTERNET`` writes a private Postfix instance into
``servers/<NAME>/postfix/`` from the directory, starts it as its child and
stops it on SIGTERM; the console (``health``, ``queue``) is the emulation's.

- Port 25 takes mail for the host's users into a Maildir each
  (``postfix/mail/<domain>/<user>/new/``); unknown users get Postfix's own
  ``550 5.1.1 ... User unknown in virtual mailbox table``.
- Port 587 wants STARTTLS first.  Postfix here has no SASL: the hosts of the
  Internet's address block (``127.99.0.0/16``) may send anywhere without
  logging in (``mynetworks``), everyone else only to the host's users.
- Mail for an accepted domain of the organization goes to the first hub whose
  receive connector lets this host in anonymously (as the emulation's
  :func:`~sitemail.internet.policy.mx_servers`), at the address this host
  reaches it through the firewalls, leaving from the host's own address.  Any
  other domain bounces (no DNS in a lab).

The configuration is written when the process starts; restart it after a
change of the directory (``sitemail lab restart INTERNET``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

from sitemail.internet.policy import SMTP_PORT, SUBMISSION_PORT, mx_servers
from sitemail.internet.postfix import PostfixConfig, PostfixInstance, Route
from sitemail.org.model import InternetHost, InternetUser, Organization, ReceiveConnector, Server
from sitemail.org.pki import server_cert_files
from sitemail.server import event_loop
from sitemail.server.console import serve_console
from sitemail.server.context import ProcessContext

log = logging.getLogger(__name__)


def host_config(ctx: ProcessContext, host: InternetHost) -> PostfixConfig:
    """The Postfix instance that plays ``host``, from the directory as it is now."""
    directory = ctx.directory
    assert host.address is not None
    users = [u.address for u in directory.list(InternetUser) if u.host.lower() == host.name.lower()]
    orgs = directory.list(Organization)
    routes: dict[str, Route] = {}
    if orgs:
        servers, connectors = directory.list(Server), directory.list(ReceiveConnector)
        for accepted in orgs[0].accepted_domains:
            domain = accepted.domain_name.lower()
            if domain.startswith("*"):
                continue  # a transport map entry names one domain
            found = mx_servers(
                domain,
                organization=orgs[0],
                servers=servers,
                connectors=connectors,
                source=host.address,
            )
            if found:
                server, port = found[0]
                routes[domain] = Route(ctx.address_of(server.name), ctx.port(port))
    cert = server_cert_files(ctx.pki_dir / "internet", host.name)
    network = ipaddress.ip_network(f"{host.address}/16", strict=False)
    return PostfixConfig(
        hostname=host.fqdn,
        address=host.address,
        smtp_port=ctx.port(SMTP_PORT),
        submission_port=ctx.port(SUBMISSION_PORT),
        # Users without a domain of the host get no mailbox (they could not receive).
        mailboxes=[u for u in users if u.rpartition("@")[2].lower() in _lower(host.domains)],
        routes=routes,
        mynetworks=[str(network)],
        tls_cert=cert.cert if cert.cert.exists() else None,
        tls_key=cert.key if cert.cert.exists() else None,
    )


def _lower(names: list[str]) -> set[str]:
    return {n.lower() for n in names}


async def serve_postfix_host(ctx: ProcessContext, host: InternetHost) -> None:
    """Run Postfix as the Internet host until SIGTERM/SIGINT, or until Postfix dies.

    The console opens only once Postfix greets on port 25, so the lab
    supervisor's readiness check (``health``) means mail can flow.
    """
    config = await asyncio.to_thread(host_config, ctx, host)
    postfix = PostfixInstance(ctx.home / "postfix", config)
    await asyncio.to_thread(postfix.start)
    endpoints = [f"{config.address}:{config.smtp_port}"]
    if config.submission_port is not None:
        endpoints.append(f"{config.address}:{config.submission_port}")
    log.info("Postfix for %s ready on %s (%s)", host.fqdn, ", ".join(endpoints), postfix.root)

    async def health(_: dict[str, Any]) -> dict[str, Any]:
        status = "ok" if postfix.running else "down"
        return {
            "status": status,
            "name": ctx.name,
            "kind": "internet",
            "engine": "postfix",
            "smtp": endpoints,
            "folder": str(postfix.root),
        }

    async def queue(_: dict[str, Any]) -> dict[str, Any]:
        return {"queues": await asyncio.to_thread(postfix.queue)}

    console = await serve_console(ctx.home / "console.sock", {"health": health, "queue": queue})
    try:
        stop = event_loop.stop_signal()
        while not stop.is_set() and postfix.running:
            # Postfix gone on its own: end too, so that the lab shows the host stopped.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        if not postfix.running:
            raise OSError(f"Postfix exited: {postfix.log_tail()}")
    finally:
        console.close()
        await asyncio.to_thread(postfix.stop)
