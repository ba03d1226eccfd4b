"""The sans-I/O IMAP4rev1 core, byte by byte: literals, states, commands, syntax, properties."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.protocols import imap
from sitemail.protocols.imap import NEED_DATA, PAUSED, ImapServer, ImapState
from sitemail.protocols.imap_events import (
    Append,
    AppendData,
    AppendEnd,
    Authenticate,
    AuthenticateResponse,
    BadCommand,
    Close,
    Command,
    ConnectionClosed,
    Copy,
    Event,
    Expunge,
    Fetch,
    Idle,
    IdleDone,
    ListMailboxes,
    LiteralRequest,
    Login,
    Logout,
    Search,
    Select,
    StartTls,
    Status,
    Store,
    UnknownCommand,
)
from sitemail.protocols.imap_syntax import (
    FetchAttribute,
    SearchKey,
    Section,
    SequenceSet,
    decode_mailbox,
    encode_mailbox,
    format_internal_date,
    format_sequence,
    parse_date_time,
    quote,
)


@dataclass
class Session:
    """Drives a core, answering as a permissive server would; keeps events and wire output."""

    server: ImapServer = field(default_factory=lambda: ImapServer(secure=True))
    events: list[Event] = field(default_factory=list)
    wire: bytearray = field(default_factory=bytearray)
    appended: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Session:
        server = self.server
        server.receive_data(data)
        while True:
            event = server.next_event()
            if not isinstance(event, Event):  # NEED_DATA or PAUSED
                return self
            self.events.append(event)
            self.wire += self.answer(event)
            if isinstance(event, ConnectionClosed):
                return self

    def answer(self, event: Event) -> bytes:
        server = self.server
        if isinstance(event, LiteralRequest | Append):
            if event.suggested is not None:
                return server.reject_literal(event.suggested.status, event.suggested.text)
            return server.accept_literal()
        if isinstance(event, AppendData):
            self.appended += event.data
            return b""
        if isinstance(event, AppendEnd | IdleDone):
            if event.suggested is not None:
                return server.send_tagged(event.suggested.status, event.suggested.text)
            return server.send_tagged("OK", "done")
        if isinstance(event, AuthenticateResponse):
            return server.send_tagged("OK", "authenticated")
        if isinstance(event, ConnectionClosed):
            return b""
        assert isinstance(event, Command)
        if event.suggested is not None:
            return server.send_tagged(event.suggested.status, event.suggested.text)
        if isinstance(event, Idle) or (isinstance(event, Authenticate) and event.initial is None):
            return server.send_continuation()
        if isinstance(event, Logout):
            return server.send_bye(imap.BYE_LOGOUT) + server.send_tagged("OK", "LOGOUT completed.")
        return server.send_tagged("OK", imap.completed(event.name))

    def commands(self) -> list[Command]:
        return [e for e in self.events if isinstance(e, Command)]


def logged_in(*, selected: bool = False) -> Session:
    s = Session().feed(b"a LOGIN adam secret\r\n")
    if selected:
        s.feed(b"b SELECT INBOX\r\n")
    s.events.clear()
    s.wire.clear()
    return s


# ------------------------------------------------------------------ login and literals


def test_greeting_and_login_with_a_quoted_password() -> None:
    s = Session()
    assert s.server.greeting() == b"* OK The Microsoft Exchange IMAP4 service is ready.\r\n"
    s.feed(b'a1 login "adam" "pa ss\\"w\\\\d"\r\n')
    [login] = s.commands()
    assert isinstance(login, Login)
    assert (login.tag, login.user, login.password) == ("a1", "adam", 'pa ss"w\\d')
    assert "pa ss" not in login.log_text
    assert s.server.state is ImapState.AUTHENTICATED
    assert bytes(s.wire) == b"a1 OK LOGIN completed.\r\n"


def test_a_synchronizing_literal_waits_for_the_continuation() -> None:
    s = Session()
    s.feed(b"a LOGIN {4}\r\n")
    assert bytes(s.wire) == b"+ Ready for additional command text.\r\n"
    request = s.events[0]
    assert isinstance(request, LiteralRequest) and request.size == 4 and request.synchronizing
    s.feed(b"adam {3+}\r\np w\r\n")  # the second one is LITERAL+: no continuation
    assert bytes(s.wire).count(b"+ Ready") == 1
    login = s.commands()[0]
    assert isinstance(login, Login) and (login.user, login.password) == ("adam", "p w")


def test_a_literal_too_large_is_refused_before_its_octets_and_skipped() -> None:
    s = Session(ImapServer(secure=True, max_literal=10))
    s.feed(b"a LOGIN adam {20}\r\n")
    assert bytes(s.wire) == b"a BAD Literal too large.\r\n"
    s.feed(b"b LOGIN adam {20+}\r\n" + b"x" * 20 + b"\r\nc NOOP\r\n")
    assert bytes(s.wire).endswith(b"b BAD Literal too large.\r\nc OK NOOP completed.\r\n")
    assert s.server.state is ImapState.NOT_AUTHENTICATED


def test_an_overlong_line_is_refused_and_the_session_goes_on() -> None:
    s = Session(ImapServer(secure=True, max_line=100))
    s.feed(b"a LOGIN " + b"x" * 500 + b"\r\nb NOOP\r\n")
    first, second = s.commands()
    assert isinstance(first, BadCommand) and first.tag == "a"
    assert bytes(s.wire) == b"a BAD Command line too long.\r\nb OK NOOP completed.\r\n"
    assert second.name == "NOOP"


def test_unknown_and_untagged_garbage() -> None:
    s = logged_in()
    s.feed(b"a XYZZY\r\n+bad tag\r\n\r\nb FETCH\r\n")
    assert bytes(s.wire) == (
        b"a BAD Command Error. 10\r\n* BAD Command Error. 10\r\n* BAD Command Error. 10\r\n"
        b"b BAD Command received in Invalid state.\r\n"
    )
    assert isinstance(s.commands()[0], UnknownCommand)


# ------------------------------------------------------------------ states


def test_commands_out_of_their_state_are_refused_with_exchanges_text() -> None:
    s = Session()
    s.feed(b"a SELECT INBOX\r\nb FETCH 1 FLAGS\r\n")
    assert bytes(s.wire) == (
        b"a BAD Command received in Invalid state.\r\nb BAD Command received in Invalid state.\r\n"
    )
    s = logged_in()
    s.feed(b"c LOGIN adam x\r\nd EXPUNGE\r\ne STARTTLS\r\n")
    assert bytes(s.wire).count(b"BAD Command received in Invalid state.") == 3


def test_select_examine_close_and_logout_move_the_state() -> None:
    s = logged_in()
    s.feed(b"a EXAMINE Inbox\r\n")
    assert s.server.state is ImapState.SELECTED and s.server.readonly
    select = s.commands()[0]
    assert isinstance(select, Select) and select.readonly and select.mailbox == "Inbox"
    s.feed(b"b UNSELECT\r\n")
    assert s.server.state.value == "Authenticated"
    assert isinstance(s.commands()[-1], Close)
    s.feed(b"c LOGOUT\r\nd NOOP\r\n")
    assert bytes(s.wire).endswith(
        b"* BYE Microsoft Exchange Server 2010 IMAP4 server signing off.\r\n"
        b"c OK LOGOUT completed.\r\n"
    )
    assert isinstance(s.events[-1], ConnectionClosed)
    assert s.server.next_event() is NEED_DATA


def test_a_failed_select_leaves_the_selected_state() -> None:
    s = logged_in(selected=True)
    s.server.receive_data(b"a SELECT Nowhere\r\n")
    assert isinstance(s.server.next_event(), Select)
    s.server.send_tagged("NO", "The requested item could not be found.")
    assert s.server.state is ImapState.AUTHENTICATED


def test_starttls_drops_plaintext_sent_before_the_handshake() -> None:
    server = ImapServer()
    server.receive_data(b"a STARTTLS\r\nb LOGIN injected x\r\n")
    assert isinstance(server.next_event(), StartTls)
    assert server.send_tagged("OK", imap.BEGIN_TLS) == b"a OK Begin TLS negotiation now.\r\n"
    server.receive_data(b"c LOGIN injected too\r\n")
    assert server.next_event() is PAUSED
    server.tls_established()
    assert server.secure
    server.receive_data(b"d CAPABILITY\r\n")
    event = server.next_event()
    assert isinstance(event, Command) and event.tag == "d"


# ------------------------------------------------------------------ commands


def test_fetch_items_sections_partials_and_macros() -> None:
    s = logged_in(selected=True)
    s.feed(
        b"a FETCH 1:3,5 (FLAGS BODY.PEEK[HEADER.FIELDS (Subject From)]<0.100> BODY[1.MIME] "
        b"rfc822.size BODY[] BODYSTRUCTURE)\r\n"
        b"b FETCH 2 ALL\r\nc UID FETCH 7:* (FLAGS)\r\n"
    )
    a, b, c = s.commands()
    assert isinstance(a, Fetch) and isinstance(b, Fetch) and isinstance(c, Fetch)
    assert a.sequence == SequenceSet(((1, 3), (5, 5)))
    assert [x.name for x in a.attributes] == [
        "FLAGS", "BODY", "BODY", "RFC822.SIZE", "BODY", "BODYSTRUCTURE"
    ]  # fmt: skip
    peek = a.attributes[1]
    assert peek.peek and peek.partial == (0, 100) and not peek.sets_seen
    assert peek.section == Section((), "HEADER.FIELDS", ("SUBJECT", "FROM"))
    assert peek.response_name == "BODY[HEADER.FIELDS (SUBJECT FROM)]<0>"
    assert a.attributes[2].section == Section((1,), "MIME")
    assert a.attributes[4].sets_seen and a.attributes[4].response_name == "BODY[]"
    assert [x.name for x in b.attributes] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert c.uid and [x.name for x in c.attributes] == ["UID", "FLAGS"]
    assert c.sequence.members([3, 7, 9]) == [7, 9]


@pytest.mark.parametrize(
    "line",
    [b"a FETCH 1 (FLAGS", b"a FETCH x FLAGS", b"a FETCH 1 BODY[0]", b"a FETCH 1 BODY[MIME]",
     b"a FETCH 1 ALL FAST", b"a FETCH 1 (ALL)", b"a FETCH 1 BODY[]<5.0>", b"a FETCH 0 FLAGS"],
)  # fmt: skip
def test_malformed_fetches_are_bad_arguments(line: bytes) -> None:
    s = logged_in(selected=True).feed(line + b"\r\n")
    assert bytes(s.wire) in (
        b"a BAD Command Argument Error. 11\r\n",
        b"a BAD Command Error. 10\r\n",
    )


def test_store_copy_expunge_and_status() -> None:
    s = logged_in(selected=True)
    s.feed(
        b"a STORE 1:2 +FLAGS.SILENT (\\Seen \\Deleted)\r\nb UID STORE 9 -FLAGS \\Flagged\r\n"
        b"c UID COPY 1:* Archive\r\nd UID EXPUNGE 4,6\r\ne STATUS INBOX (UIDNEXT MESSAGES)\r\n"
        b'f LIST "" "*"\r\n'
    )
    a, b, c, d, e, f = s.commands()
    assert isinstance(a, Store) and (a.mode, a.silent, a.flags) == (
        "+",
        True,
        ("\\Seen", "\\Deleted"),
    )
    assert (
        isinstance(b, Store)
        and b.uid
        and (b.mode, b.silent, b.flags) == ("-", False, ("\\Flagged",))
    )
    assert isinstance(c, Copy) and c.uid and c.mailbox == "Archive"
    assert isinstance(d, Expunge) and d.uids == SequenceSet(((4, 4), (6, 6)))
    assert isinstance(e, Status) and e.items == ("UIDNEXT", "MESSAGES")
    assert isinstance(f, ListMailboxes) and (f.reference, f.pattern) == ("", "*")


def test_search_criteria_become_a_tree() -> None:
    s = logged_in(selected=True)
    s.feed(
        b'a SEARCH CHARSET UTF-8 OR FROM "bob" NOT SEEN UID 1:*\r\n'
        b"b UID SEARCH 1:5 SINCE 1-Feb-2026 LARGER 100 (DELETED UNANSWERED)\r\n"
        b"c SEARCH SINCE 31-Feb-2026\r\n"
    )
    a, b, c = s.commands()
    assert isinstance(a, Search) and a.charset == "UTF-8" and not a.uid
    assert a.criteria == (
        SearchKey(
            "OR",
            children=(SearchKey("FROM", "bob"), SearchKey("NOT", children=(SearchKey("SEEN"),))),
        ),
        SearchKey("UID", SequenceSet(((1, None),))),
    )
    assert isinstance(b, Search) and b.uid
    assert b.criteria == (
        SearchKey("SEQ", SequenceSet(((1, 5),))),
        SearchKey("SINCE", date(2026, 2, 1)),
        SearchKey("LARGER", 100),
        SearchKey("AND", children=(SearchKey("DELETED"), SearchKey("UNANSWERED"))),
    )
    assert isinstance(c, BadCommand)


def test_append_streams_its_message_and_keeps_flags_and_date() -> None:
    s = logged_in()
    message = b"Subject: hi\r\n\r\nbody\r\n"
    s.feed(b'a APPEND "Sent Items" (\\Seen) " 5-Mar-2026 10:00:00 +0100" {%d}\r\n' % len(message))
    append = s.events[0]
    assert isinstance(append, Append)
    assert (append.mailbox, append.flags, append.size) == ("Sent Items", ("\\Seen",), len(message))
    assert append.internal_date == datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
    assert bytes(s.wire) == b"+ Ready for additional command text.\r\n"
    for i in range(0, len(message), 5):
        s.feed(message[i : i + 5])
    s.feed(b"\r\nb NOOP\r\n")
    assert bytes(s.appended) == message
    assert bytes(s.wire).endswith(b"a OK done\r\nb OK NOOP completed.\r\n")


def test_append_too_large_is_refused_before_any_octet() -> None:
    s = Session(ImapServer(secure=True, max_append=10))
    s.feed(b"a LOGIN adam x\r\nb APPEND INBOX {11}\r\nc NOOP\r\n")
    assert bytes(s.wire).endswith(b"b NO Literal too large.\r\nc OK NOOP completed.\r\n")
    assert not s.appended


def test_append_before_login_is_refused_and_its_message_skipped() -> None:
    s = Session()
    s.feed(b"a APPEND INBOX {5+}\r\nhello\r\nb NOOP\r\n")
    assert bytes(s.wire) == b"a BAD Command received in Invalid state.\r\nb OK NOOP completed.\r\n"


def test_idle_ends_with_done() -> None:
    s = logged_in(selected=True)
    s.feed(b"a IDLE\r\n")
    assert bytes(s.wire) == b"+ \r\n"
    s.feed(b"DONE\r\nb NOOP\r\n")
    assert isinstance(s.events[1], IdleDone)
    assert bytes(s.wire).endswith(b"a OK done\r\nb OK NOOP completed.\r\n")


def test_authenticate_reads_a_response_line_after_the_continuation() -> None:
    s = Session()
    s.feed(b"a AUTHENTICATE PLAIN\r\nAGFkYW0Ac2VjcmV0\r\n")
    auth, response = s.events[:2]
    assert isinstance(auth, Authenticate) and auth.mechanism == "PLAIN" and auth.initial is None
    assert isinstance(response, AuthenticateResponse) and response.data == b"AGFkYW0Ac2VjcmV0"
    assert s.server.state is ImapState.AUTHENTICATED
    s = Session().feed(b"a AUTHENTICATE PLAIN AGFkYW0Ac2VjcmV0\r\n")
    assert isinstance(s.events[0], Authenticate) and s.events[0].initial == b"AGFkYW0Ac2VjcmV0"


# ------------------------------------------------------------------ syntax


def test_mailbox_names_in_modified_utf7() -> None:
    assert encode_mailbox("Entwürfe") == "Entw&APw-rfe"
    assert encode_mailbox("R&D/日本") == "R&-D/&ZeVnLA-"
    assert decode_mailbox("Entw&APw-rfe") == "Entwürfe"
    assert decode_mailbox("R&-D") == "R&D"
    assert decode_mailbox("broken&***-") == "broken&***-"


@given(st.text(max_size=30))
def test_modified_utf7_round_trips(name: str) -> None:
    encoded = encode_mailbox(name)
    assert encoded.isascii()
    assert decode_mailbox(encoded) == name


def test_sequence_sets() -> None:
    seq = SequenceSet.parse("1:3,5,9:*")
    assert seq is not None and str(seq) == "1:3,5,9:*"
    assert seq.members([1, 2, 4, 5, 6, 12]) == [1, 2, 5, 12]
    assert SequenceSet.parse("*:4") is not None and SequenceSet.parse("*:4").contains(6, 8)  # type: ignore[union-attr]
    assert all(SequenceSet.parse(t) is None for t in ["", "0", "1:", "a", "1:2:3", "1,,2"])
    assert format_sequence([7, 1, 2, 3, 9, 10]) == "1:3,7,9:10"


def test_strings_dates_and_lists() -> None:
    assert quote('a "b" \\c') == b'"a \\"b\\" \\\\c"'
    assert quote("héllo") == b"{6}\r\nh\xc3\xa9llo"
    assert quote("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    when = datetime(2026, 7, 4, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
    assert format_internal_date(when) == '" 4-Jul-2026 02:44:25 -0700"'
    assert parse_date_time(" 4-Jul-2026 02:44:25 -0700") == when
    assert parse_date_time("31-Feb-2026 02:44:25 -0700") is None


def test_fetch_attribute_names() -> None:
    assert FetchAttribute("FLAGS").response_name == "FLAGS"
    assert not FetchAttribute("RFC822.HEADER").sets_seen
    assert FetchAttribute("RFC822").sets_seen


# ------------------------------------------------------------------ properties


def transcript(chunks: list[bytes]) -> tuple[list[str], bytes]:
    s = Session(ImapServer(secure=True, max_line=200, max_literal=50, max_append=80))
    for chunk in chunks:
        s.feed(chunk)
    s.feed(b"")
    return [repr(e) for e in s.events if not isinstance(e, AppendData)], bytes(
        s.wire
    ) + b"|" + bytes(s.appended)


commands = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"a LOGIN adam x\r\n",
                b"b SELECT INBOX\r\n",
                b"c FETCH 1:* (FLAGS BODY.PEEK[])\r\n",
                b"d APPEND INBOX {5}\r\nhello\r\n",
                b"e APPEND INBOX {6+}\r\nhello!\r\n",
                b"f LOGIN {3}\r\nabc {1}\r\nx\r\n",
                b"g IDLE\r\nDONE\r\n",
                b"h SEARCH OR 1 2\r\n",
                b"i AUTHENTICATE PLAIN\r\n=\r\n",
                b"j STARTTLS\r\n",
                b"k LOGOUT\r\n",
                b"{3}\r\n",
                b"l STORE 1 +FLAGS (\\Seen)\r\n",
                b"\r\n",
                b"m APPEND INBOX {999}\r\n",
            ]
        ),
        st.binary(max_size=80),
    ),
    max_size=10,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=commands, cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=6))
def test_no_input_crashes_the_core_and_splitting_changes_nothing(
    data: bytes, cuts: list[int]
) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole = transcript([data])
    assert transcript([p for p in pieces if p]) == whole
    assert transcript([bytes([b]) for b in data]) == whole
