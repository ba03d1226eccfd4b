"""The firewall's relay on real sockets: bytes pass both ways, the source address is kept."""

from __future__ import annotations

import asyncio

import pytest

from sitemail.firewall.inspection import (
    Action,
    DropConnection,
    InspectState,
    ToClient,
    ToServer,
)
from sitemail.firewall.relay import Relay, Route

CLIENT = "127.77.1.5"
FW_A = "127.77.1.200"  # what the client connects to (first firewall)
FW_B = "127.77.2.200"  # second firewall's tunnel address
SERVER = "127.77.2.10"
PORT = 2525


async def _echo_server(seen: list[str]) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername")[0])
        writer.write(b"220 hello\r\n")
        while data := await reader.read(1024):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, SERVER, PORT)


def test_two_relays_in_a_row_keep_the_client_address_and_the_bytes() -> None:
    async def scenario() -> None:
        seen: list[str] = []
        server = await _echo_server(seen)
        a = Relay([Route(FW_A, FW_B, ((PORT, 25),))])
        b = Relay([Route(FW_B, SERVER, ((PORT, 25),))])
        await a.start()
        await b.start()
        try:
            reader, writer = await asyncio.open_connection(FW_A, PORT, local_addr=(CLIENT, 0))
            assert await reader.readline() == b"220 hello\r\n"
            writer.write(b"ehlo x\r\n")
            await writer.drain()
            assert await reader.readline() == b"EHLO X\r\n"
            payload = bytes(range(256)) * 1000
            writer.write(payload)
            await writer.drain()
            got = await reader.readexactly(len(payload))
            assert got == payload.upper()
            writer.close()
            assert seen == [CLIENT]
            assert a.connections == 1 and b.connections == 1
        finally:
            await a.stop()
            await b.stop()
            server.close()

    asyncio.run(scenario())


class _Masker:
    """A stand-in inspector: masks "hello" in what the server says, drops on "DROP"."""

    state = InspectState.CMD

    def feed_client(self, data: bytes) -> list[Action]:
        if data.startswith(b"DROP"):
            return [DropConnection("test")]
        return [ToServer(data)]

    def feed_server(self, data: bytes) -> list[Action]:
        return [ToClient(data.replace(b"hello", b"*****"))]


def test_an_inspector_sees_every_segment_and_can_drop_the_connection() -> None:
    async def scenario() -> None:
        seen: list[str] = []
        server = await _echo_server(seen)
        relay = Relay([Route(FW_A, SERVER, ((PORT, 25),))], inspector_for=lambda conn: _Masker())
        await relay.start()
        try:
            reader, writer = await asyncio.open_connection(FW_A, PORT, local_addr=(CLIENT, 0))
            assert await reader.readline() == b"220 *****\r\n"
            writer.write(b"DROP me\r\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""
        finally:
            await relay.stop()
            server.close()

    asyncio.run(scenario())


def test_a_destination_that_refuses_resets_the_client_connection() -> None:
    # As without the firewall: the server's refusal reaches the client as a reset.
    async def scenario() -> None:
        relay = Relay([Route(FW_A, SERVER, ((PORT, 25),))])
        await relay.start()
        try:
            reader, _ = await asyncio.open_connection(FW_A, PORT, local_addr=(CLIENT, 0))
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 15)
        finally:
            await relay.stop()

    asyncio.run(scenario())
