"""The hubs' ``POST /protocol-log`` admin route, with aiohttp's test client.

The logs are written by the project's own protocol log writer (the
troubleshooter's samples of story 1: EX-NY1's send log with the banner and
EHLO keywords masked, EX-FL1's receive log of the same conversation as it
really went), and read back through the route.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from sitemail.clock import ManualClock
from sitemail.diagnose import samples
from sitemail.diagnose.log_routes import MAX_DATA, add_protocol_log_routes
from sitemail.mailflow.protocol_log import ProtocolLog
from sitemail.org.pki import OrganizationPki, PeerVerifier, ca_cert_file
from sitemail.server.admin_api import build_app
from sitemail.server.services import IdleService, ServiceHost


@dataclass
class Transport(IdleService):
    """The transport service as the route sees it: where its protocol logs are."""

    protocol_log_folders: dict[str, Path] = field(default_factory=dict)


def logs(root: Path) -> dict[str, Path]:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    folders = {"send": root / "SmtpSend", "receive": root / "SmtpReceive"}
    send = ProtocolLog.send(folders["send"], clock=clock)
    receive = ProtocolLog.receive(folders["receive"], clock=clock)
    samples.send_delivered(send)
    samples.send_masked(send)
    samples.receive_on(receive, "EX-FL1\\Default EX-FL1", samples.EHLO_2010)
    s = send.session("EX-NY1\\Intra-Organization", "10.1.0.11:5", "10.2.0.11:25")
    s.received("<script>alert(1)</script>" + "x" * 3000)
    send.close()
    receive.close()
    return folders


def ask(root: Path, *bodies: Any, tls: bool = False) -> list[tuple[int, Any]]:
    host = ServiceHost()
    host.add(Transport("MSExchangeTransport", "Microsoft Exchange Transport", logs(root)))
    if tls:
        pki = OrganizationPki.open_or_create(root / "pki", "Contoso")
        verifier = PeerVerifier.from_file(ca_cert_file(pki.folder))
        app = build_app(host, verifier, {"name": "EX-NY1"}, [add_protocol_log_routes])
    else:
        from aiohttp import web

        from sitemail.server.admin_api import HOST_KEY

        app = web.Application()
        app[HOST_KEY] = host
        add_protocol_log_routes(app)

    async def main() -> list[tuple[int, Any]]:
        out = []
        async with TestClient(TestServer(app)) as client:
            for body in bodies:
                response = await client.post("/protocol-log", json=body)
                data = await response.json() if response.status == 200 else await response.text()
                out.append((response.status, data))
        return out

    return asyncio.run(main())


def test_the_route_serves_the_newest_sessions_read_with_the_troubleshooters_reader(
    tmp_path: Path,
) -> None:
    [(status, sent), (_, received), (_, one), (_, none)] = ask(
        tmp_path,
        {"kind": "send"},
        {"kind": "receive", "remote_ip": samples.SENDER_IP},
        {"kind": "send", "limit": 1, "start": "2026-03-02T08:00:00+00:00"},
        {"kind": "send", "end": "2026-03-01T00:00:00+00:00"},
    )
    assert status == 200
    assert len(sent) == 3 and none == []
    masked = sent[1]
    assert masked["kind"] == "send" and masked["remote_endpoint"] == "10.2.0.11:25"
    data = [(r["event"], r["data"]) for r in masked["rows"]]
    assert ("<", samples.MASKED_BANNER) in data
    assert ("<", "250-XXXXXXXA") in data
    assert next(r["data"] for r in received[0]["rows"] if r["event"] == ">") == samples.BANNER
    assert one == [sent[-1]]  # the newest
    # Log contents come back as data, bounded; the console escapes them.
    long = sent[-1]["rows"][0]["data"]
    assert long.startswith("<script>") and len(long) == MAX_DATA


def test_the_route_checks_its_input_and_needs_the_admin_certificate(tmp_path: Path) -> None:
    answers = ask(
        tmp_path,
        {"kind": "pop3"},
        {"limit": 0},
        {"limit": 101},
        {"session_id": "x" * 65},
        {"start": "yesterday"},
        {"start": "2026-03-02T08:00:00"},
        [1],
    )
    assert [s for s, _ in answers] == [400] * 7
    assert "expected send or receive" in answers[0][1]
    assert "UTC offset" in answers[5][1]
    [(status, text)] = ask(tmp_path / "tls", {"kind": "send"}, tls=True)
    assert status == 403 and "admin certificate" in text
