"""The relay carrying out the inspection engine's actions, on loopback sockets.

A small SMTP-ish server stands behind an in-process :class:`Relay` whose
engines come from an :class:`AsaDevice` (the firewall process's
configuration side): masking on the SMTP port and not on HTTPS, drop with FIN,
reset with RST, syslog lines, engines kept per connection across a
configuration change, timeouts and backpressure.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sitemail.clock import ManualClock
from sitemail.firewall.esmtp_policy import EsmtpPolicy, LimitRule, Outcome
from sitemail.firewall.inspection import Inspector, make_inspector
from sitemail.firewall.process import AsaDevice, SyslogFile, complete, load_routes
from sitemail.firewall.relay import Connection, Relay, RelayLimits, Route

# Addresses of this module only (other tests and labs use other 127.x blocks).
CLIENT = "127.92.0.5"
RELAY = "127.92.1.1"
SERVER = "127.92.2.1"
REAL = "127.92.9.9"  # the server's own address behind the next hop
SMTP, HTTPS = 32525, 32443  # bound ports standing for 25 and 443 (a lab port offset)
PORTS = ((SMTP, 25), (HTTPS, 443))

BANNER = b"220 mx20.example.org Microsoft ESMTP MAIL Service ready at Tue, 20 Oct 2020\r\n"
EHLO_REPLY = b"250-mx20.example.org Hello\r\n250-SIZE 1000\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
SEED_LINES = [
    "config t",
    "policy-map global_policy",
    "class inspection_default",
    "no inspect esmtp",
    "exit",
    "exit",
    "exit",
    "wr me",
]


class FakeSmtp:
    """Greets, answers EHLO with STARTTLS last, echoes anything else in a 500."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.peers: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[0])
        writer.write(BANNER)
        try:
            while line := await reader.readline():
                self.received.append(line)
                verb = line.split()[0].upper() if line.split() else b""
                if verb == b"EHLO":
                    writer.write(EHLO_REPLY)
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    writer.write(b'500 5.5.1 Command unrecognized: "' + line.strip() + b'"\r\n')
                await writer.drain()
            else:
                writer.write(b"221 closing after your FIN\r\n")
        except ConnectionError:
            pass
        finally:
            writer.close()


@asynccontextmanager
async def running(
    inspector_for: Callable[[Connection], Inspector | None],
    *,
    syslog: Callable[[str], None] | None = None,
    limits: RelayLimits | None = None,
    server: FakeSmtp | None = None,
    server_address: str | None = None,
) -> AsyncIterator[tuple[Relay, FakeSmtp]]:
    fake = server or FakeSmtp()
    servers = [await asyncio.start_server(fake.handle, SERVER, port) for port, _ in PORTS]
    route = Route(
        RELAY,
        SERVER,
        PORTS,
        client_interface="inside",
        server_interface="outside",
        server_address=server_address,
    )
    relay = Relay(
        [route],
        inspector_for,
        syslog=syslog,
        limits=limits,
    )
    await relay.start()
    try:
        yield relay, fake
    finally:
        await relay.stop()
        for s in servers:
            s.close()


async def connect(port: int = SMTP) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(RELAY, port, local_addr=(CLIENT, 0))


async def ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[bytes]:
    writer.write(b"EHLO client.example\r\n")
    await writer.drain()
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), 5)
        lines.append(line)
        if line[3:4] != b"-":
            return lines


def device(tmp_path: Path) -> AsaDevice:
    box = AsaDevice(tmp_path, "ASA-T")
    box.boot()
    return box


def policy_engine(policy: EsmtpPolicy) -> Callable[[Connection], Inspector | None]:
    return lambda conn: make_inspector(policy) if conn.exchange_port == 25 else None


def test_smtp_is_masked_and_https_passes_untouched(tmp_path: Path) -> None:
    box = device(tmp_path)

    async def scenario() -> None:
        async with running(box.inspector_for) as (_, fake):
            reader, writer = await connect(SMTP)
            banner = await reader.readline()
            assert banner.startswith(b"220 ") and len(banner) == len(BANNER)
            assert set(banner[4:].rstrip(b"\r\n")) <= set(b"*20 ")
            assert banner.count(b"*") > 20
            lines = await ehlo(reader, writer)
            assert lines[-1] == b"250 XXXXXXXA\r\n"
            assert lines[:3] == EHLO_REPLY.splitlines(keepends=True)[:3]
            writer.write(b"STARTTLS\r\n")
            await writer.drain()
            assert await reader.readline() == b'500 5.5.1 Command unrecognized: "XXXXXXXX"\r\n'
            writer.close()

            reader, writer = await connect(HTTPS)
            assert await reader.readline() == BANNER
            assert await ehlo(reader, writer) == EHLO_REPLY.splitlines(keepends=True)
            writer.close()
            # The relay connected onwards from the client's own address.
            assert set(fake.peers) == {CLIENT}
            assert box.counters["esmtp"].packet >= 3

    asyncio.run(scenario())


def test_a_drop_closes_both_sides_with_fin_and_writes_syslog(tmp_path: Path) -> None:
    lines: list[str] = []

    async def scenario() -> None:
        async with running(policy_engine(EsmtpPolicy()), syslog=lines.append) as (_, fake):
            reader, writer = await connect()
            await reader.readline()
            writer.write(b"NOOP " + b"a" * 600 + b"\r\n")
            await writer.drain()
            # A FIN and nothing else: read() ends cleanly with no SMTP reply.
            assert await asyncio.wait_for(reader.read(), 5) == b""
            await asyncio.sleep(0.1)
            assert not any(line.startswith(b"NOOP") for line in fake.received)

    asyncio.run(scenario())
    assert len(lines) == 4, lines
    assert lines[0].startswith("%ASA-6-302013: Built outbound TCP connection ")
    assert lines[1].startswith("%ASA-4-108004: ESMTP Classification: Dropped connection for ")
    assert lines[1].endswith("; matched Class 1: cmd line length gt 512")
    assert lines[2].startswith("%ASA-4-507003: tcp flow from ")
    assert re.fullmatch(
        r"%ASA-6-302014: Teardown TCP connection 1 for outside:\S+/25 to inside:\S+ "
        r"duration 0:00:0\d bytes \d+ Flow closed by inspection",
        lines[3],
    ), lines[3]


def test_a_reset_action_resets_the_client(tmp_path: Path) -> None:
    rule = LimitRule(512, Outcome("reset", True, 1, "cmd line length gt 512"))
    policy = replace(EsmtpPolicy(), cmd_line_max=rule)
    lines: list[str] = []

    async def scenario() -> None:
        async with running(policy_engine(policy), syslog=lines.append):
            reader, writer = await connect()
            await reader.readline()
            writer.write(b"NOOP " + b"a" * 600 + b"\r\n")
            await writer.drain()
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 5)

    asyncio.run(scenario())
    assert any("Reset connection for" in line for line in lines)


def test_syslog_file_lines_carry_an_asa_time_stamp(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 3, 5, 9, 7, 1, tzinfo=UTC))
    path = tmp_path / "syslog.log"
    sink = SyslogFile(path, clock, max_bytes=200)
    sink("%ASA-4-108004: first")
    text = path.read_text()
    assert re.fullmatch(r"Mar 0[45] 2026 \d\d:\d\d:01: %ASA-4-108004: first\n", text)
    sink("%ASA-4-507003: " + "x" * 190)  # past max_bytes: the old file moves aside
    assert (tmp_path / "syslog.log.1").read_text() == text
    assert path.read_text().count("\n") == 1


def test_relay_writes_syslog_lines_to_the_firewall_log(tmp_path: Path) -> None:
    box = device(tmp_path)
    path = tmp_path / "syslog.log"

    async def scenario() -> None:
        # The next hop is a tunnel address; the log names the server's own address.
        async with running(box.inspector_for, syslog=SyslogFile(path), server_address=REAL):
            reader, writer = await connect()
            await reader.readline()
            writer.write(b"RCPT TO:<a@b>\r\n" * 101)
            await writer.drain()
            # The 101st recipient ends the connection before the server hears it.
            replies = await asyncio.wait_for(reader.read(), 5)
            assert replies.count(b"\r\n") <= 100

    asyncio.run(scenario())
    text = path.read_text()
    assert "%ASA-4-108004: ESMTP Classification: Dropped connection for ESMTP Request from " in (
        text
    )
    # The flow names the interfaces of the route: the client came in on the inside.
    assert f"from inside:{CLIENT}/" in text and f"to outside:{REAL}/25;" in text
    assert "matched Class 2: cmd RCPT count gt 100" in text


def test_open_connections_keep_their_engine_after_a_config_change(tmp_path: Path) -> None:
    box = device(tmp_path)

    async def scenario() -> None:
        async with running(box.inspector_for):
            old_reader, old_writer = await connect()
            assert b"*" in await old_reader.readline()
            sid, _ = box.open_session()
            for line in SEED_LINES:
                box.feed(sid, line)
            new_reader, new_writer = await connect()
            assert await new_reader.readline() == BANNER
            assert (await ehlo(new_reader, new_writer))[-1] == b"250 STARTTLS\r\n"
            # The connection opened before the change is still inspected.
            assert (await ehlo(old_reader, old_writer))[-1] == b"250 XXXXXXXA\r\n"
            old_writer.close()
            new_writer.close()

    asyncio.run(scenario())
    assert "inspect esmtp" not in (tmp_path / "startup-config").read_text()


def test_idle_connections_are_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        limits = RelayLimits(idle_timeout=0.3, half_closed_timeout=0.3)
        async with running(lambda conn: None, limits=limits):
            reader, _ = await connect(HTTPS)
            assert await reader.readline() == BANNER
            started = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            assert asyncio.get_running_loop().time() - started >= 0.25

    asyncio.run(scenario())


def test_a_half_close_reaches_the_server_and_its_answer_comes_back() -> None:
    async def scenario() -> None:
        async with running(lambda conn: None):
            reader, writer = await connect(HTTPS)
            await reader.readline()
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 5) == b"221 closing after your FIN\r\n"

    asyncio.run(scenario())


def test_a_client_that_does_not_read_stops_the_relay_reading() -> None:
    total = 48 << 20
    sent = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(total // len(chunk)):
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        finally:
            writer.close()

    class Flood(FakeSmtp):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await flood(reader, writer)

    async def scenario() -> None:
        async with running(lambda conn: None, server=Flood()):
            reader, _ = await connect(HTTPS)
            await asyncio.sleep(0.5)
            # Socket buffers hold a few MB; the relay itself holds no more than its limit.
            assert sent < total // 2
            got = 0
            while data := await asyncio.wait_for(reader.read(1 << 20), 10):
                got += len(data)
            assert got == total

    asyncio.run(scenario())


def test_listeners_json_becomes_routes_with_interfaces_and_shifted_ports(tmp_path: Path) -> None:
    listeners = [
        {"listen": "127.1.2.11", "forward": "127.2.101.11", "from_site": "NY"}
        | {"to_host": "EX-FL1", "direction": "outbound"},
        {"listen": "127.1.102.11", "forward": "127.1.0.11", "from_site": "FL"}
        | {"to_host": "EX-NY1", "direction": "inbound"},
    ]
    (tmp_path / "listeners.json").write_text(json.dumps(listeners))
    addresses = {"EX-FL1": "127.2.0.11", "EX-NY1": "127.1.0.11"}
    out, into = load_routes(tmp_path, 10000, addresses.get)
    assert (out.client_interface, out.server_interface) == ("inside", "outside")
    assert (into.client_interface, into.server_interface) == ("outside", "inside")
    assert out.server_address == "127.2.0.11" and out.forward == "127.2.101.11"
    assert (10025, 25) in out.ports and (10443, 443) in out.ports
    assert load_routes(tmp_path / "nothing-here", 0) == []


def test_tab_completion_offers_the_words_of_the_current_mode(tmp_path: Path) -> None:
    box = device(tmp_path)
    sid, cli = box.open_session()
    assert "configure" in complete(cli.mode, "")
    assert complete(cli.mode, "conf") == ["configure"]
    assert "terminal" in complete(cli.mode, "conf ")
    assert "running-config" in complete(cli.mode, "sh ")
    for line in SEED_LINES[:3]:
        box.feed(sid, line)
    assert complete(cli.mode, "no ins") == ["inspect"]
    assert "esmtp" in complete(cli.mode, "no inspect ")
    assert complete(cli.mode, "bogus ") == []
