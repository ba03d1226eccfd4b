"""The path probe on real sockets: a tiny SMTP server alone, behind the firewall's relay with
ESMTP inspection, and behind the same relay with inspection off; Postfix's smtp-sink too."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from sitemail.diagnose.probe import ProbeResult, Verdict
from sitemail.diagnose.probe_run import ProbeSettings, probe
from sitemail.firewall.esmtp_policy import EsmtpPolicy
from sitemail.firewall.inspection import Inspector, make_inspector
from sitemail.firewall.relay import Connection, Relay, Route

SERVER = "127.93.2.10"
FIREWALL = "127.93.1.200"
CLIENT = "127.93.1.5"
PORT = 2525

EHLO_LINES = [
    "250-mail.example.test Hello",
    "250-SIZE 10485760",
    "250-PIPELINING",
    "250-STARTTLS",
    "250-CHUNKING",
    "250 8BITMIME",
]
#: Only keywords the ASA knows: nothing is masked, so the probe forces STARTTLS.
PLAIN_EHLO_LINES = ["250-mail.example.test Hello", "250-SIZE 10485760", "250 8BITMIME"]


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ehlo: list[str] = EHLO_LINES
) -> None:
    """A plain SMTP server that echoes unknown commands, as sendmail does."""
    writer.write(b"220 mail.example.test ESMTP Sendmail 8.9.3 ready at Tue, 20 Oct 2020\r\n")
    try:
        while line := await reader.readline():
            text = line.decode("latin-1").rstrip("\r\n")
            verb = text.split(" ", 1)[0].upper()
            if len(line) > 1000:
                out = "500 5.5.2 Line too long"
            elif verb == "EHLO":
                out = "\r\n".join(ehlo)
            elif verb == "NOOP":
                out = "250 2.0.0 OK"
            elif verb == "HELP":
                out = "214 2.0.0 See RFC 5321"
            elif verb == "STARTTLS":
                out = "454 4.7.0 TLS not available"
            elif verb == "QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                break
            else:
                out = f'500 5.5.1 Command unrecognized: "{text}"'
            writer.write(out.encode() + b"\r\n")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def _path(
    inspect: bool | None, ehlo: list[str] = EHLO_LINES
) -> AsyncIterator[tuple[str, int]]:
    """The server alone (None), or behind a relay with inspection on (True) or off (False)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(reader, writer, ehlo)

    server = await asyncio.start_server(handle, SERVER, PORT)
    relay = None
    try:
        if inspect is None:
            yield SERVER, PORT
            return

        def inspector_for(_conn: Connection) -> Inspector:
            return make_inspector(EsmtpPolicy() if inspect else None)

        relay = Relay([Route(FIREWALL, SERVER, ((PORT, 25),))], inspector_for)
        await relay.start()
        yield FIREWALL, PORT
    finally:
        if relay is not None:
            await relay.stop()
        server.close()
        await server.wait_closed()


def _run(inspect: bool | None, ehlo: list[str] = EHLO_LINES) -> ProbeResult:
    async def go() -> ProbeResult:
        async with _path(inspect, ehlo) as (host, port):
            return await probe(host, port, ProbeSettings(source=CLIENT, total_timeout=20))

    return asyncio.run(go())


def test_probe_through_an_inspecting_firewall_says_inspected() -> None:
    result = _run(True)
    assert result.verdict is Verdict.INSPECTED
    assert result.confidence >= 0.95
    tests = {s.test for s in result.signals if s.points_to == "inspection"}
    assert {"banner-charset", "ehlo-masked", "split-segment", "unknown-verb", "long-line"} <= tests
    assert result.masked_keywords == ["XXXXXXXA", "XXXXXXXA"]
    assert result.transcript.long_line is not None and result.transcript.long_line.reply is None
    assert result.transcript.quit_sent


def test_forced_starttls_comes_back_masked_when_nothing_else_is() -> None:
    result = _run(True, PLAIN_EHLO_LINES)
    assert result.verdict is Verdict.INSPECTED
    assert result.masked_keywords == []
    forced = [s for s in result.signals if s.test == "forced-starttls"]
    assert forced and forced[0].points_to == "inspection"
    assert result.transcript.starttls is not None
    assert result.transcript.starttls.reply == ['500 5.5.1 Command unrecognized: "XXXXXXXX"']


@pytest.mark.parametrize("inspect", [None, False], ids=["direct", "relay-without-inspection"])
def test_probe_of_a_clean_path_says_clean(inspect: bool | None) -> None:
    result = _run(inspect)
    assert result.verdict is Verdict.CLEAN
    assert not [s for s in result.signals if s.points_to == "inspection"]
    assert result.transcript.split_noop is not None
    assert result.transcript.split_noop.code == 250
    assert result.transcript.long_line is not None
    assert result.transcript.long_line.code == 250  # the server takes 600-byte lines
    assert result.transcript.quit_sent
    assert result.transcript.starttls is None  # advertised: not forced


def test_probe_of_a_closed_port_says_unreachable() -> None:
    result = asyncio.run(probe("127.93.9.9", 2599, ProbeSettings(total_timeout=5)))
    assert result.verdict is Verdict.UNREACHABLE


def test_probe_of_a_server_that_closes_before_its_greeting_says_no_banner() -> None:
    async def go() -> ProbeResult:
        async def slam(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.close()

        server = await asyncio.start_server(slam, SERVER, PORT + 1)
        try:
            return await probe(SERVER, PORT + 1, ProbeSettings(total_timeout=5))
        finally:
            server.close()

    assert asyncio.run(go()).verdict is Verdict.NO_BANNER


def test_probe_is_bounded_in_time_against_a_silent_server() -> None:
    async def go() -> tuple[ProbeResult, float]:
        async def mute(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read()

        server = await asyncio.start_server(mute, SERVER, PORT + 2)
        try:
            started = time.monotonic()
            result = await probe(SERVER, PORT + 2, ProbeSettings(total_timeout=3, reply_timeout=1))
            return result, time.monotonic() - started
        finally:
            server.close()

    result, took = asyncio.run(go())
    assert took < 4
    assert result.verdict is Verdict.NO_BANNER


def test_probe_of_postfix_smtp_sink_says_clean() -> None:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    proc = subprocess.Popen([sink, "-u", "nobody", "-c", f"{SERVER}:{PORT + 3}", "10"])
    try:
        deadline = time.monotonic() + 5
        while True:
            result = asyncio.run(probe(SERVER, PORT + 3, ProbeSettings(total_timeout=20)))
            if result.verdict is not Verdict.UNREACHABLE or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert result.verdict is Verdict.CLEAN, result.to_json()
    finally:
        proc.terminate()
        proc.wait(5)
