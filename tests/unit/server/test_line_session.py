"""The line session runner played as bytes in, bytes out (no sockets): limits and STARTTLS.

The STARTTLS cases are the command injection of RFC 3207 section 4.2
(CVE-2011-0411): a command the client pipelines after STARTTLS, in
plaintext, must never be executed inside TLS.  It can be in two places when
the go-ahead is sent: still in the core's buffer (sent in the same segment
as STARTTLS), or in the connection's buffer (arrived while the session
answered an earlier command).  Every server of sitemail drops it in both.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.doubles.line_playbook import Playbook

from sitemail.access.connection_limits import ConnectionTable, Limits, Slot
from sitemail.access.imap_front import ImapSession
from sitemail.access.pop3_front import Pop3Session
from sitemail.clock import SYSTEM_CLOCK
from sitemail.internet.policy import InternetProfile
from sitemail.mailflow.protocol_log import NullProtocolLog
from sitemail.mta.session import MtaSession
from sitemail.org.defaults import default_receive_connectors
from sitemail.org.model import AcceptedDomain, Organization, Server, ServerRole
from sitemail.org.pki import PeerVerifier
from sitemail.protocols import pop3
from sitemail.server.line_connection import LineConnection
from sitemail.server.line_session import run_session
from sitemail.transport.receive_config import ReceiveConfig, ReceiveEnvironment
from sitemail.transport.receive_session import ReceiveSession

CLEAR = b"\r\n"
TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # never handshakes: the playbook plays TLS


def play(book: Playbook, session: Any) -> Playbook:
    asyncio.run(asyncio.wait_for(run_session(book.connection, session), 10))
    return book


# ------------------------------------------------------------------ the connection


class Recorder:
    """A link that only records flow control."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def test_a_full_buffer_pauses_reading_and_a_read_takes_at_most_the_bound() -> None:
    link = Recorder()
    conn = LineConnection(link, max_buffer=8)  # type: ignore[arg-type]
    conn.feed(b"12345")
    assert link.calls == []
    conn.feed(b"6789abcdef")
    assert link.calls == ["pause"]

    async def reads() -> list[bytes]:
        return [await conn.read(1), await conn.read(1)]

    assert asyncio.run(reads()) == [b"12345678", b"9abcdef"]
    assert link.calls == ["pause", "resume"]


def test_a_read_times_out_and_loses_nothing() -> None:
    conn = LineConnection(Recorder())  # type: ignore[arg-type]

    async def go() -> bytes:
        with pytest.raises(TimeoutError):
            await conn.read(0.01)
        conn.feed(b"late\r\n")
        return await conn.read(1)

    assert asyncio.run(go()) == b"late\r\n"


def test_a_read_leaves_no_timer_behind_however_it_ends() -> None:
    conn = LineConnection(Recorder())  # type: ignore[arg-type]

    async def go() -> list[asyncio.TimerHandle]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.001, conn.feed, b"EHLO x\r\n")
        assert await conn.read(30) == b"EHLO x\r\n"  # data came: its timer is cancelled
        reader = asyncio.ensure_future(conn.read(30))
        await asyncio.sleep(0)
        reader.cancel()  # a cancelled read: its timer goes too, and no waiter stays
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert conn._waiter is None
        with pytest.raises(TimeoutError):
            await conn.read(0.001)
        return [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]

    assert asyncio.run(go()) == []


def test_eof_reads_empty() -> None:
    conn = LineConnection(Recorder())  # type: ignore[arg-type]
    conn.feed(b"QUIT\r\n")
    conn.feed_eof()

    async def go() -> list[bytes]:
        return [await conn.read(1), await conn.read(1)]

    assert asyncio.run(go()) == [b"QUIT\r\n", b""]


# ------------------------------------------------------------------ SMTP: a plain MTA


def internet_session(book: Playbook) -> MtaSession:
    profile = InternetProfile(hostname="mail.fabrikam.com", domains=frozenset({"fabrikam.com"}))
    return MtaSession(profile, _NoSink(), book.connection, port=25, tls=TLS)


class _NoSink:
    def open_spool(self) -> Any:
        raise AssertionError("no message in these tests")

    async def accept(self, spool: Any, envelope: Any) -> str:
        raise AssertionError("no message in these tests")


POSTFIX_RESET = "250 2.0.0 Ok\r\n"  # what RSET (and NOOP) answer


def test_mta_pipelined_starttls_rset_drops_the_rset() -> None:
    book = Playbook(
        [
            (b"220 ", b"EHLO client.example\r\nSTARTTLS\r\nRSET\r\n"),
            (b"Ready to start TLS\r\n", b"EHLO client.example\r\n"),
            (b"250 8BITMIME\r\n", b"QUIT\r\n"),
            (b"221 ", b""),
        ]
    )
    session = internet_session(book)
    play(book, session)
    assert book.after_tls.startswith("250-mail.fabrikam.com\r\n")
    assert POSTFIX_RESET not in book.transcript
    assert book.after_tls.endswith("221 2.0.0 Bye\r\n")
    assert session.conn.plaintext_discarded == len(b"RSET\r\n")


def test_mta_rset_arriving_while_starttls_waits_is_dropped_by_the_connection() -> None:
    book = Playbook(
        [
            (b"220 ", b"EHLO client.example\r\nSTARTTLS\r\n"),
            # Lands in the connection's buffer while the core still holds STARTTLS.
            (b"250 8BITMIME\r\n", b"RSET\r\n"),
            (b"Ready to start TLS\r\n", b"EHLO client.example\r\nQUIT\r\n"),
            (b"221 ", b""),
        ]
    )
    session = internet_session(book)
    play(book, session)
    assert POSTFIX_RESET not in book.transcript
    assert book.after_tls.startswith("250-mail.fabrikam.com\r\n")
    assert "STARTTLS" not in book.after_tls  # offered no more inside TLS
    assert book.connection.plaintext_discarded == len(b"RSET\r\n")


def test_mta_session_timeout_is_its_own_421() -> None:
    book = Playbook([])  # the client says nothing
    session = internet_session(book)
    session.started -= session.profile.limits.session_timeout  # the whole session is used up
    play(book, session)
    assert book.transcript.endswith("421 4.4.2 Error: timeout exceeded\r\n")


# ------------------------------------------------------------------ SMTP: a hub


def hub_session(book: Playbook, tmp_path: Path) -> ReceiveSession:
    server = Server(
        name="EX05", fqdn="ex05.contoso.com", site="S", roles=[ServerRole.HUB_TRANSPORT]
    )
    org = Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    connector = default_receive_connectors(server)[0]
    env = ReceiveEnvironment(
        directory=None,  # type: ignore[arg-type]  # no AUTH here
        clock=SYSTEM_CLOCK,
        acceptor=None,  # type: ignore[arg-type]  # no message here
        pki_dir=tmp_path,
        port_offset=0,
        protocol_log=NullProtocolLog(),
        verifier=PeerVerifier.__new__(PeerVerifier),
        starttls_context=TLS,
        anonymous_tls_context=None,
    )
    return ReceiveSession(env, ReceiveConfig(server, org, [connector]), connector, book.connection)


HUB_RESET = "250 2.0.0 Resetting\r\n"


@pytest.mark.parametrize("split", [False, True], ids=["same-segment", "later-segment"])
def test_hub_never_executes_plaintext_pipelined_after_starttls(tmp_path: Path, split: bool) -> None:
    first = b"EHLO client.example\r\nSTARTTLS\r\n" + (b"" if split else b"RSET\r\n")
    book = Playbook(
        [
            (b"220 ", first),
            (b"250 ", b"RSET\r\n" if split else b""),
            (b"220 2.0.0 SMTP server ready\r\n", b"EHLO client.example\r\nQUIT\r\n"),
            (b"221 ", b""),
        ]
        if split
        else [
            (b"220 ", first),
            (b"220 2.0.0 SMTP server ready\r\n", b"EHLO client.example\r\nQUIT\r\n"),
            (b"221 ", b""),
        ]
    )
    session = hub_session(book, tmp_path)
    play(book, session)
    assert HUB_RESET not in book.transcript
    assert book.after_tls.startswith("250-ex05.contoso.com Hello [192.0.2.7]\r\n")
    dropped = book.connection.plaintext_discarded + session.conn.plaintext_discarded
    assert dropped == len(b"RSET\r\n")


# ------------------------------------------------------------------ POP3 and IMAP4


def front() -> Any:
    return SimpleNamespace(
        tls=TLS, plaintext_login_allowed=lambda secure: secure, pre_auth_timeout=60.0
    )


def slot() -> Slot:
    opened = ConnectionTable(Limits()).open("192.0.2.7")
    assert isinstance(opened, Slot)
    return opened


def test_pop3_user_arriving_while_stls_waits_is_not_executed() -> None:
    book = Playbook(
        [
            (b"+OK ", b"CAPA\r\nSTLS\r\n"),
            (b"\r\n.\r\n", b"USER alice\r\n"),
            (pop3.BEGIN_TLS.encode() + CLEAR, b"QUIT\r\n"),
            (pop3.SIGNING_OFF.encode(), b""),
        ]
    )
    play(book, Pop3Session(front(), book.connection, False, slot()))
    assert book.after_tls == f"+OK {pop3.SIGNING_OFF}\r\n"
    assert book.connection.plaintext_discarded == len(b"USER alice\r\n")


def test_imap4_login_pipelined_after_starttls_is_not_executed() -> None:
    book = Playbook(
        [
            (b"* OK", b"a CAPABILITY\r\nb STARTTLS\r\n"),
            (b"a OK", b"c LOGIN alice secret\r\n"),
            (b"b OK", b"d LOGOUT\r\n"),
            (b"d OK", b""),
        ]
    )
    play(book, ImapSession(front(), book.connection, False, slot()))
    assert "\r\nc " not in book.after_tls and not book.after_tls.startswith("c ")
    assert book.after_tls.startswith("* BYE")
    assert book.connection.plaintext_discarded == len(b"c LOGIN alice secret\r\n")
