"""The pieces behind the POP3/IMAP4 front ends: logon names, FETCH rendering, LIST patterns,
the selected folder's numbering, and the CAS-to-CAS relay."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.access.imap_mailbox import SelectedFolder, _pattern
from sitemail.access.imap_render import (
    body_structure,
    embedded_message,
    envelope,
    header_fields,
    store_flag_names,
)
from sitemail.access.mail_logon import find_mailbox
from sitemail.access.outcomes import ClientProtocol
from sitemail.access.pop_imap_proxy import Backend, relay
from sitemail.access.pop_imap_service import FrontEnd
from sitemail.access.throttle import SignInThrottle
from sitemail.clock import ManualClock
from sitemail.mailbox.messages import MessageScanner
from sitemail.mailbox.records import Flags, Folder, MimePart, UidEntry
from sitemail.org.directory import Directory, open_directory
from sitemail.org.lockout import AccountLockout, AccountLockouts, LockoutPolicy
from sitemail.org.model import AcceptedDomain, Mailbox, Organization
from sitemail.org.passwords import hash_password
from sitemail.protocols.imap_syntax import SequenceSet
from sitemail.server.line_connection import LineConnection, listen

# ------------------------------------------------------------------ logon names


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    d = open_directory(str(tmp_path_factory.mktemp("dir") / "d.db"))
    d.put(
        Organization(
            name="Contoso",
            accepted_domains=[
                AcceptedDomain(domain_name="contoso.com"),
                AcceptedDomain(domain_name="fabrikam.net"),
            ],
        )
    )
    d.put(
        Mailbox(
            alias="adam",
            display_name="Adam",
            primary_smtp_address="adam@contoso.com",
            email_addresses=["smtp:adam.fl@fabrikam.net"],
            database="FL-DB1",
            password_hash=hash_password("Pa55word!"),
        )
    )
    yield d
    d.close()


@pytest.mark.parametrize(
    "name",
    ["adam", "ADAM", "adam@contoso.com", "Adam.FL@fabrikam.net", "CONTOSO\\adam",
     "fabrikam\\Adam", " adam "],
)  # fmt: skip
def test_the_logon_name_forms_users_type(directory: Directory, name: str) -> None:
    found = find_mailbox(directory, name)
    assert found is not None and found.alias == "adam"


@pytest.mark.parametrize(
    "name", ["", "eve", "adam@contoso.org", "OTHER\\adam", "\\adam", "CONTOSO\\", "a\\b\\adam"]
)
def test_names_that_denote_no_mailbox(directory: Directory, name: str) -> None:
    assert find_mailbox(directory, name) is None


def test_the_password_is_checked_under_the_organization_lockout(directory: Directory) -> None:
    clock = ManualClock()
    lockouts = AccountLockouts(directory, clock=clock)
    front = FrontEnd(
        ctx=cast(Any, SimpleNamespace(directory=directory)),
        server=cast(Any, None),
        protocol=ClientProtocol.IMAP4,
        settings=cast(Any, None),
        tls=None,
        proxy_tls=cast(Any, None),
        store=cast(Any, None),
        throttle=SignInThrottle(clock=clock, accounts=lockouts),
        watches=cast(Any, None),
    )
    assert front._logon("adam", "Pa55word!", "192.0.2.7") is not None
    assert front._logon("adam", "x" * 5000, "192.0.2.7") is None
    for _ in range(LockoutPolicy().threshold - 1):
        assert front._logon("CONTOSO\\adam", "pa55word!", "192.0.2.7") is None
    # Locked out now, under any of its names: the right password fails too.
    assert lockouts.locked_for("adam") > 0
    assert front._logon("adam@contoso.com", "Pa55word!", "192.0.2.8") is None
    clock.advance(LockoutPolicy().duration)
    assert front._logon("adam", "Pa55word!", "192.0.2.8") is not None
    assert directory.get(AccountLockout, "adam") is None  # a good sign-in clears the count


# ------------------------------------------------------------------ FETCH rendering


MESSAGE = (
    b'From: "Bob, Ny" <bob@contoso.com>\r\nTo: alice@contoso.com, carol@fabrikam.com\r\n'
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\n"
    b"Message-ID: <m1@contoso.com>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\nthere\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: carol@fabrikam.com\r\nSubject: inner\r\n\r\ninner body\r\n"
    b"--b1--\r\n"
)


def scan(data: bytes) -> tuple[bytes, MimePart]:
    scanner = MessageScanner()
    scanner.feed(data)
    parsed = scanner.close()
    return data[: parsed.header_size], parsed.structure


def test_envelope_keeps_header_text_as_sent_and_splits_addresses() -> None:
    header, _ = scan(MESSAGE)
    assert envelope(header) == (
        b'("Mon, 2 Mar 2026 09:00:00 +0000" "=?utf-8?q?caf=C3=A9?=" '
        b'(("Bob, Ny" NIL "bob" "contoso.com")) (("Bob, Ny" NIL "bob" "contoso.com")) '
        b'(("Bob, Ny" NIL "bob" "contoso.com")) '
        b'((NIL NIL "alice" "contoso.com")(NIL NIL "carol" "fabrikam.com")) '
        b'NIL NIL NIL "<m1@contoso.com>")'
    )
    assert envelope(b"") == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_bodystructure_describes_parts_and_the_attached_message() -> None:
    _, structure = scan(MESSAGE)
    attached = structure.find("2")
    assert attached is not None
    inner = MESSAGE[attached.body_offset : attached.body_offset + attached.body_size]
    text = body_structure(structure, {"2": embedded_message(inner)})
    # Line counts are the store's (the CRLF before a boundary belongs to the boundary).
    assert re.match(
        rb'\(\("TEXT" "PLAIN" \("CHARSET" "utf-8"\) NIL NIL "7BIT" 12 \d+ NIL NIL NIL NIL\)'
        rb'\("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 54 \(',
        text,
    )
    assert b'(NIL "inner" ((NIL NIL "carol" "fabrikam.com"))' in text
    assert re.search(rb'\("TEXT" "PLAIN" \("CHARSET" "us-ascii"\) NIL NIL "7BIT" 10 \d+ ', text)
    assert text.endswith(b' "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)')
    plain = body_structure(structure, extensible=False)
    assert plain.endswith(b' "MIXED")') and b"BOUNDARY" not in plain


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_rendering_never_fails_on_any_message(data: bytes) -> None:
    header, structure = scan(data)
    assert envelope(header).startswith(b"(")
    assert body_structure(structure).startswith(b"(")


def test_header_fields_and_flags() -> None:
    header = b"Subject: a\r\nX-Long: one\r\n two\r\nFrom: b\r\n\r\n"
    assert header_fields(header, ["x-long", "FROM"], exclude=False) == (
        b"X-Long: one\r\n two\r\nFrom: b\r\n\r\n"
    )
    assert header_fields(header, ["x-long", "from"], exclude=True) == b"Subject: a\r\n\r\n"
    assert store_flag_names(["\\SEEN", "\\Deleted", "$Junk", "\\Recent", "\\seen"]) == [
        "seen",
        "deleted",
    ]


# ------------------------------------------------------------------ LIST and numbering


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("*", ["INBOX", "INBOX/Sub", "Sent Items", "Projects/2026/Q1"]),
        ("%", ["INBOX", "Sent Items"]),
        ("inbox", ["INBOX"]),
        ("Inbox/%", ["INBOX/Sub"]),
        ("Projects/*", ["Projects/2026/Q1"]),
        ("Sent*", ["Sent Items"]),
        ("x", []),
    ],
)
def test_list_wildcards(pattern: str, names: list[str]) -> None:
    everything = ["INBOX", "INBOX/Sub", "Sent Items", "Projects/2026/Q1"]
    match = _pattern(pattern)
    assert [n for n in everything if match(n)] == names


def selected(uids: list[int]) -> SelectedFolder:
    folder = Folder(
        id=1, parent_id=None, name="Inbox", path="Inbox", well_known=None, total=len(uids),
        unread=0, uidvalidity=7, uidnext=max(uids) + 1, modseq=1,
    )  # fmt: skip
    entries = {u: UidEntry(uid=u, message_id=100 + u, flags=Flags(), modseq=1) for u in uids}
    return SelectedFolder(folder, False, list(uids), entries, 1)


def test_sequence_numbers_and_uids_resolve_and_expunge_renumbers() -> None:
    folder = selected([3, 5, 9, 12])
    seq = SequenceSet.parse("2:*")
    uids = SequenceSet.parse("5:10,99:*")
    assert seq is not None and uids is not None
    assert folder.resolve(seq, uid=False) == [(2, 5), (3, 9), (4, 12)]
    assert folder.resolve(uids, uid=True) == [(2, 5), (3, 9), (4, 12)]
    # Each EXPUNGE number is valid when it is sent: the highest first.
    assert folder.forget({5, 12, 77}) == [4, 2]
    assert folder.uids == [3, 9]


# ------------------------------------------------------------------ the relay


def spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.ensure_future(coro)


def test_relay_copies_both_ways_and_passes_on_what_the_client_sent_early() -> None:
    async def go() -> None:
        tasks: set[asyncio.Task[None]] = set()
        got_by_backend = bytearray()

        async def backend_side(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            got_by_backend.extend(await r.readexactly(len(b"early\r\nlate\r\n")))
            w.write(b"* BYE\r\n")
            await w.drain()
            w.close()

        server = await asyncio.start_server(backend_side, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def front_side(conn: LineConnection) -> None:
            br, bw = await asyncio.open_connection("127.0.0.1", port)
            await relay(conn, Backend(br, bw), idle_timeout=5.0, first_to_backend=b"early\r\n")
            conn.close()

        front = await listen("127.0.0.1", 0, lambda conn: tasks.add(spawn(front_side(conn))))
        fport = front.sockets[0].getsockname()[1]
        cr, cw = await asyncio.open_connection("127.0.0.1", fport)
        cw.write(b"late\r\n")
        await cw.drain()
        assert await asyncio.wait_for(cr.read(), 5.0) == b"* BYE\r\n"
        assert bytes(got_by_backend) == b"early\r\nlate\r\n"
        cw.close()
        server.close()
        front.close()

    asyncio.run(go())


def test_relay_closes_an_idle_session() -> None:
    async def go() -> None:
        tasks: set[asyncio.Task[None]] = set()

        async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def front_side(conn: LineConnection) -> None:
            br, bw = await asyncio.open_connection("127.0.0.1", port)
            await relay(conn, Backend(br, bw), idle_timeout=0.3)
            conn.close()

        front = await listen("127.0.0.1", 0, lambda conn: tasks.add(spawn(front_side(conn))))
        cr, cw = await asyncio.open_connection("127.0.0.1", front.sockets[0].getsockname()[1])
        assert await asyncio.wait_for(cr.read(), 5.0) == b""  # closed by the relay
        cw.close()
        server.close()
        front.close()

    asyncio.run(go())
