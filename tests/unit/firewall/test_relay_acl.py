"""The relay asking the access group of the entry interface, on loopback sockets.

An in-process :class:`Relay` whose admission and inspection come from an
:class:`AsaDevice`: a denied connection is reset before the server hears of
it, with the 106023 syslog line; a permitted one is relayed (and inspected);
the entry's hit count follows the connections; a change applies to the next
connection.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from sitemail.firewall.acl import Ace, AddressSpec, ace_hash
from sitemail.firewall.process import AsaDevice
from sitemail.firewall.relay import Relay, Route

# Addresses of this module only (other tests and labs use other 127.x blocks).
CLIENT = "127.93.0.5"
OTHER = "127.93.0.6"
RELAY = "127.93.1.1"
SERVER = "127.93.2.1"
SMTP, HTTPS = 33525, 33443  # bound ports standing for 25 and 443
BANNER = b"220 ex-fl1.contoso.com Microsoft ESMTP MAIL Service ready\r\n"


async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    SEEN.append(writer.get_extra_info("peername")[0])
    writer.write(BANNER)
    await writer.drain()
    await reader.read()
    writer.close()


SEEN: list[str] = []


def feed(box: AsaDevice, *lines: str) -> None:
    sid, _ = box.open_session()
    for line in lines:
        result, _ = box.feed(sid, line)
        assert not result.output.startswith(("ERROR", " ")), (line, result.output)


async def first_bytes(source: str, port: int) -> bytes:
    """What the client reads first: the banner, or b"" when the connection is closed/reset."""
    reader, writer = await asyncio.open_connection(RELAY, port, local_addr=(source, 0))
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def test_a_denied_connection_is_reset_logged_and_counted(tmp_path: Path) -> None:
    box = AsaDevice(tmp_path, "ASA-T")
    box.boot()
    feed(
        box,
        "conf t",
        f"access-list OUT extended deny tcp host {CLIENT} host {SERVER} eq smtp",
        "access-list OUT extended permit ip any any",
        "access-group OUT in interface outside",
        "end",
        "conf t",
        "policy-map global_policy",
        "class inspection_default",
        "no inspect esmtp",
        "end",
    )
    syslog: list[str] = []
    SEEN.clear()

    async def scenario() -> None:
        servers = [await asyncio.start_server(greet, SERVER, p) for p in (SMTP, HTTPS)]
        route = Route(RELAY, SERVER, ((SMTP, 25), (HTTPS, 443)), client_interface="outside")
        relay = Relay([route], box.inspector_for, syslog=syslog.append, admit=box.admit)
        await relay.start()
        try:
            assert await first_bytes(CLIENT, SMTP) == b""
            assert await first_bytes(CLIENT, SMTP) == b""
            assert await first_bytes(CLIENT, HTTPS) == BANNER
            assert await first_bytes(OTHER, SMTP) == BANNER
            # The fix, typed as the troubleshooter gives it: the next connection passes.
            feed(
                box,
                "conf t",
                f"no access-list OUT extended deny tcp host {CLIENT} host {SERVER} eq smtp",
                "end",
            )
            assert await first_bytes(CLIENT, SMTP) == BANNER
        finally:
            await relay.stop()
            for s in servers:
                s.close()

    asyncio.run(scenario())
    # The server never heard of the denied connections.
    assert SEEN == [CLIENT, OTHER, CLIENT]
    deny = Ace("deny", "tcp", AddressSpec("host", CLIENT), AddressSpec("host", SERVER), None, 25)
    expected = re.compile(
        rf"%ASA-4-106023: Deny tcp src outside:{re.escape(CLIENT)}/\d+ "
        rf'dst inside:{re.escape(SERVER)}/25 by access-group "OUT" \[{ace_hash("OUT", deny)}, 0x0\]'
    )
    denied = [line for line in syslog if "106023" in line]
    assert len(denied) == 2 and all(expected.fullmatch(line) for line in denied), syslog
    # The connections let through were built and torn down (302013/302014); none for the
    # refused ones, which the box never built.
    built = [line for line in syslog if line.startswith("%ASA-6-302013: Built inbound TCP")]
    torn = [line for line in syslog if line.startswith("%ASA-6-302014: Teardown TCP connection")]
    assert len(built) == len(torn) == 3, syslog
    _, cli = box.open_session()
    report = cli.feed("show access-list OUT").output
    assert "line 1 extended permit ip any any (hitcnt=3)" in report


@pytest.mark.parametrize("interface", ["inside", "outside"])
def test_without_an_access_group_everything_passes(tmp_path: Path, interface: str) -> None:
    box = AsaDevice(tmp_path, "ASA-T")
    box.boot()
    feed(box, "conf t", "access-list OUT extended deny ip any any")  # defined, bound nowhere
    route = Route(RELAY, SERVER, ((SMTP, 25),), client_interface=interface)

    async def scenario() -> None:
        server = await asyncio.start_server(greet, SERVER, SMTP)
        relay = Relay([route], None, admit=box.admit)
        await relay.start()
        try:
            assert await first_bytes(CLIENT, SMTP) == BANNER
        finally:
            await relay.stop()
            server.close()

    asyncio.run(scenario())
