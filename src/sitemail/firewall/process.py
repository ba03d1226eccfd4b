"""One firewall process: its relays between sites and its console.

The lab writes ``listeners.json`` in the firewall's folder: which addresses
it answers for and where each leads (the tunnel and NAT plumbing, which an
ASA's own configuration would hold as crypto maps and routes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

from sitemail.firewall.relay import Relay, Route
from sitemail.lab.addressing import RELAYED_PORTS
from sitemail.org.model import Firewall
from sitemail.server.console import serve_console
from sitemail.server.context import ProcessContext

log = logging.getLogger("sitemail.firewall")


def load_routes(home: Path, port_offset: int) -> list[Route]:
    path = home / "listeners.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    ports = tuple((p + port_offset, p) for p in RELAYED_PORTS)
    return [
        Route(
            listen=item["listen"],
            forward=item["forward"],
            ports=ports,
            description=f"{item['from_site']} -> {item['to_host']} ({item['direction']})",
        )
        for item in data
    ]


async def serve_firewall(ctx: ProcessContext, firewall: Firewall) -> None:
    relay = Relay(load_routes(ctx.home, ctx.port_offset))
    await relay.start()

    async def health(_: dict[str, object]) -> dict[str, object]:
        return {
            "status": "ok",
            "name": firewall.name,
            "kind": "firewall",
            "routes": len(relay.routes),
            "connections": relay.connections,
        }

    console = await serve_console(ctx.home / "console.sock", {"health": health})
    log.info("%s ready: %d relayed addresses", firewall.name, len(relay.routes))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        console.close()
        await relay.stop()
