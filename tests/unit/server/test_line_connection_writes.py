"""LineConnection sends what it is given in one turn of the event loop as one write.

The replies to a pipelined group (RSET, MAIL, RCPT) leave in one segment (RFC 2920
section 3.2), and nothing waits past the loop's next turn, a drain, a read or a close.
"""

from __future__ import annotations

import asyncio

from sitemail.server.line_connection import LineConnection


class Link:
    """Records what is written and when the connection is closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_writes_of_one_turn_leave_together_at_the_next() -> None:
    link = Link()
    conn = LineConnection(link)  # type: ignore[arg-type]

    async def replies() -> list[bytes]:
        conn.write(b"250 reset\r\n")
        conn.write(b"250 sender\r\n")
        conn.write(b"250 recipient\r\n")
        held = list(link.writes)
        await asyncio.sleep(0)
        assert held == []
        return link.writes

    assert asyncio.run(replies()) == [b"250 reset\r\n250 sender\r\n250 recipient\r\n"]


def test_a_drain_a_read_and_a_close_send_what_is_held_first() -> None:
    link = Link()
    conn = LineConnection(link)  # type: ignore[arg-type]

    async def session() -> None:
        conn.write(b"354 go ahead\r\n")
        await conn.drain()
        assert link.writes == [b"354 go ahead\r\n"]
        conn.write(b"250 queued\r\n")
        reading = asyncio.ensure_future(conn.read(5))
        await asyncio.sleep(0)  # the read is waiting now: the answer went out before
        assert link.writes[-1] == b"250 queued\r\n"
        conn.feed(b"QUIT\r\n")
        assert await reading == b"QUIT\r\n"
        conn.write(b"221 bye\r\n")
        conn.close()
        assert link.writes[-1] == b"221 bye\r\n" and link.closed

    asyncio.run(session())


def test_without_a_running_loop_a_write_goes_at_once() -> None:
    link = Link()
    LineConnection(link).write(b"220 ready\r\n")  # type: ignore[arg-type]
    assert link.writes == [b"220 ready\r\n"]
