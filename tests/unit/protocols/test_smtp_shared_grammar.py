"""Edge cases decided once in ``protocols/smtp`` and shared by every side.

The receive side (``ServerConnection``), the send side (``ClientConnection``
and its reply assembly), the firewall's ESMTP inspection and the log readers
used to read these lines each their own way.  Each case here is asserted on
the grammar (text and bytes forms alike) and on the sides that meet it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.protocols.smtp_testkit import run_client, run_server

from sitemail.diagnose.conversation import greeting_name, keyword_of
from sitemail.diagnose.probe import ehlo_keywords
from sitemail.firewall.esmtp_policy import EsmtpPolicy
from sitemail.firewall.inspection import Action, DropConnection, EsmtpInspector, ToServer
from sitemail.protocols.smtp import (
    MAX_COMMAND_LINE,
    BadReply,
    ClientConnection,
    LineTooLong,
    Mail,
    Noop,
    Reply,
    ReplyAssembler,
    SmtpSyntaxError,
    Unknown,
    command_verb,
    ehlo_keyword_span,
    is_last_reply_line,
    leading_verb,
    parse_command_line,
    parse_ehlo_reply,
    parse_mail_argument,
    parse_rcpt_argument,
    parse_reply_line,
    path_mailbox,
    path_span,
    reply_code,
    split_ehlo_line,
)
from sitemail.protocols.smtp.text import decode_text


def server_events(*lines: bytes) -> list[object]:
    events = run_server([b"EHLO client.test\r\n", *lines], eof=False)
    return events[1:]


def forwarded(*segments: bytes, policy: EsmtpPolicy | None = None) -> tuple[bytes, list[Action]]:
    engine = EsmtpInspector(policy)
    engine.feed_server(b"220 mx ESMTP\r\n")
    actions: list[Action] = []
    for segment in segments:
        actions += engine.feed_client(segment)
    return b"".join(a.data for a in actions if isinstance(a, ToServer)), actions


# --- the verb: up to the first SP, ASCII case-insensitive --------------------------------


@pytest.mark.parametrize(
    ("line", "verb"),
    [
        (b"MAIL FROM:<a@b>\r\n", "MAIL"),
        (b"mail FROM:<a@b>\r\n", "MAIL"),
        (b"DATA\r\n", "DATA"),
        (b"DATA\n", "DATA"),
        (b"QUIT", "QUIT"),
        (b"MAIL\tFROM:<a@b>\r\n", "MAIL\tFROM:<A@B>"),  # TAB is no separator (RFC 5321 4.1.1)
        (b" MAIL FROM:<a@b>\r\n", ""),  # nor is a leading blank
        (b"NOOP\rX\r\n", "NOOP\rX"),  # a bare CR inside a line ends nothing
        ("MAıL FROM:<a@b>\r\n".encode(), "MAıL"),  # only ASCII letters change case
        (b"", ""),
    ],
)
def test_the_verb_is_the_same_in_text_and_bytes(line: bytes, verb: str) -> None:
    assert command_verb(line) == verb
    assert parse_command_line(decode_text(line)).verb == verb


@given(st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_command_verb_agrees_with_parse_command_line(line: bytes) -> None:
    assert command_verb(line) == parse_command_line(decode_text(line)).verb


@pytest.mark.parametrize(
    ("fragment", "verb"),
    [
        (b"NO", None),  # the verb may still grow
        (b"NOOP", None),
        (b"NOOP ", "NOOP"),
        (b"noop\r", "NOOP"),  # CR starts the line end
        (b"QUIT\n", "QUIT"),
        (b"MAIL\tFROM:<a@b>", None),
        (b" MAIL", ""),
    ],
)
def test_leading_verb_of_a_partial_line(fragment: bytes, verb: str | None) -> None:
    assert leading_verb(fragment) == verb


def test_verb_with_tab_is_unknown_to_exchange_and_masked_by_the_asa() -> None:
    line = b"MAIL\tFROM:<a@contoso.com>\r\n"
    (event,) = server_events(line)
    assert isinstance(event, Unknown)
    sent, _ = forwarded(line)
    assert sent == b"X" * (len(line) - 2) + b"\r\n"
    # Split over two segments the ASA reaches the same verdict.
    sent, _ = forwarded(line[:9], line[9:])
    assert sent == b"X" * (len(line) - 2) + b"\r\n"


def test_lower_case_verb_is_a_verb_on_every_side() -> None:
    line = b"mail from:<a@contoso.com>\r\n"
    (event,) = server_events(line)
    assert isinstance(event, Mail) and event.address == "a@contoso.com"
    sent, _ = forwarded(line)
    assert sent == line


def test_non_ascii_look_alike_is_no_verb() -> None:
    line = "MAıL FROM:<a@contoso.com>\r\n".encode()
    (event,) = server_events(line)
    assert isinstance(event, Unknown)
    sent, _ = forwarded(line)
    assert b"MA" not in sent


# --- over-long command lines: 512 octets, CRLF included --------------------------------


def test_command_line_bound_is_512_octets_with_its_crlf_on_both_sides() -> None:
    assert MAX_COMMAND_LINE == 512
    assert EsmtpPolicy().cmd_line_max is not None
    assert EsmtpPolicy().cmd_line_max.threshold == MAX_COMMAND_LINE
    longest = b"NOOP " + b"a" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    assert len(longest) == MAX_COMMAND_LINE
    (event,) = server_events(longest)
    assert isinstance(event, Noop)
    sent, _ = forwarded(longest)
    assert sent == longest

    over = b"NOOP " + b"a" * (MAX_COMMAND_LINE - 6) + b"\r\n"
    (event,) = server_events(over)
    assert isinstance(event, LineTooLong) and event.length == MAX_COMMAND_LINE + 1
    sent, actions = forwarded(over)
    assert sent == b"" and isinstance(actions[-1], DropConnection)


# --- reply lines: 250-, 250 and a bare 250 ---------------------------------------------


@pytest.mark.parametrize(
    ("line", "code", "last"),
    [
        ("250-SIZE", 250, False),
        ("250-", 250, False),
        ("250 OK", 250, True),
        ("250 ", 250, True),
        ("250", 250, True),
        ("250\r\n", 250, True),
        ("250-PIPELINING\r\n", 250, False),
        ("2500 x", None, True),
        ("250x", None, True),
        ("600 no", None, True),
        ("199 no", None, True),
        ("25", None, True),
        ("", None, True),
        ("²50 x", None, True),  # digits of other scripts are not digits here
    ],
)
def test_reply_line_code_and_end(line: str, code: int | None, last: bool) -> None:
    raw = line.encode()
    assert reply_code(line) == reply_code(raw) == code
    assert is_last_reply_line(line) == is_last_reply_line(raw) == last
    if code is None:
        with pytest.raises(SmtpSyntaxError):
            parse_reply_line(line)
    else:
        parsed = parse_reply_line(line)
        assert (parsed.code, parsed.last) == (code, last)


@given(st.text(alphabet="0123456789- \r\nxX", max_size=8))
@settings(max_examples=300, deadline=None)
def test_parse_reply_line_agrees_with_reply_code(line: str) -> None:
    code = reply_code(line)
    try:
        parsed = parse_reply_line(line)
    except SmtpSyntaxError:
        # A line end inside the line is no line end; parse only strips a final one.
        assert code is None or "\n" in line[:-1] or line.endswith("\r")
        return
    assert parsed.code == code
    assert parsed.last == is_last_reply_line(line)


def test_bare_code_ends_a_reply_for_the_sender_and_the_asa() -> None:
    asm = ReplyAssembler()
    assert asm.feed("250-first") is None
    reply = asm.feed("250")
    assert reply is not None and reply.lines == ("first", "")

    engine = EsmtpInspector()
    engine.feed_server(b"220 mx ESMTP\r\n")
    engine.feed_client(b"DATA\r\n")
    engine.feed_server(b"354\r\n")  # a bare code answers DATA
    assert engine.state.value == "DATA_HDR"


def test_malformed_reply_line_ends_the_session_for_the_sender() -> None:
    client = ClientConnection()
    events = run_client(client, [b"2200 mx ESMTP\r\n"])
    assert isinstance(events[0], BadReply)


# --- EHLO keywords: the keyword ends at SP ---------------------------------------------


@pytest.mark.parametrize(
    ("line", "keyword"),
    [
        ("250-SIZE 10485760", "SIZE"),
        ("250 XXXXXXXA", "XXXXXXXA"),
        ("250-AUTH\tLOGIN", "AUTH\tLOGIN"),
        ("250-  SIZE", ""),
        ("250-", ""),
        ("250", ""),
    ],
)
def test_ehlo_keyword_is_the_same_for_the_sender_the_asa_and_the_readers(
    line: str, keyword: str
) -> None:
    assert split_ehlo_line(line[4:])[0] == keyword
    raw = line.encode() + b"\r\n"
    span = ehlo_keyword_span(raw)
    assert (raw[span[0] : span[1]].decode() if span else "") == keyword
    assert keyword_of(line) == keyword.upper()
    assert ehlo_keywords(["250-mx", line]) == ([keyword] if keyword else [])
    reply = parse_ehlo_reply(Reply(250, None, ("mx Hello", line[4:])))
    assert list(reply.keywords) == ([keyword.upper()] if keyword else [])


def test_asa_masks_a_tab_joined_keyword_whole() -> None:
    engine = EsmtpInspector()
    engine.feed_server(b"220 mx ESMTP\r\n")
    engine.feed_client(b"EHLO client.test\r\n")
    actions = engine.feed_server(b"250-mx Hello\r\n250-AUTH\tLOGIN\r\n250 SIZE 1000\r\n")
    shown = b"".join(getattr(a, "data", b"") for a in actions)
    assert shown == b"250-mx Hello\r\n250-XXXXXXXXXA\r\n250 SIZE 1000\r\n"


def test_greeting_name_is_the_first_word() -> None:
    assert greeting_name("220 EX02.contoso.com Microsoft ESMTP MAIL Service") == (
        "EX02.contoso.com"
    )
    assert greeting_name("250-EX02.contoso.com Hello [10.1.0.11]") == "EX02.contoso.com"


# --- paths of MAIL and RCPT ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "mailbox"),
    [
        (b"MAIL FROM:<a@contoso.com> SIZE=10\r\n", b"a@contoso.com"),
        (b"mail from: <a@contoso.com>\r\n", b"a@contoso.com"),
        (b"MAIL FROM:a@contoso.com BODY=8BITMIME\r\n", b"a@contoso.com"),
        (b"MAIL FROM:<>\r\n", b""),
        (b'RCPT TO:<"a>b"@contoso.com>\r\n', b'"a>b"@contoso.com'),
        (b"RCPT  TO:<postmaster>\r\n", b"postmaster"),
        (b"MAIL FROM:<a@contoso.com", b"a@contoso.com"),  # unclosed: to the end
        (b"MAIL XFROM:<a@contoso.com>\r\n", None),  # the keyword starts the argument
        (b"RCPT FROM:<a@contoso.com>\r\n", None),
        (b"MAIL\tFROM:<a@contoso.com>\r\n", None),
        (b"DATA\r\n", None),
    ],
)
def test_path_span(line: bytes, mailbox: bytes | None) -> None:
    span = path_span(line)
    assert (line[span[0] : span[1]] if span else None) == mailbox
    assert path_mailbox(decode_text(line)) == (mailbox or b"").decode()


@pytest.mark.parametrize(
    "line",
    [
        "MAIL FROM:<alice@contoso.com> SIZE=2048",
        "MAIL FROM: <alice@contoso.com>",
        "MAIL FROM:<>",
        'RCPT TO:<"a b>c"@contoso.com> NOTIFY=NEVER',
        "rcpt to:bob@fabrikam.com",
        "RCPT TO:<Postmaster>",
    ],
)
def test_path_span_finds_what_the_server_parses(line: str) -> None:
    cmd = parse_command_line(line)
    parse = parse_mail_argument if cmd.verb == "MAIL" else parse_rcpt_argument
    assert path_mailbox(line) == parse(cmd.argument).address


def test_asa_rewrites_exactly_the_mailbox() -> None:
    policy = EsmtpPolicy(special_character="log")
    line = b"MAIL FROM:<a|b@contoso.com> SIZE=1|2\r\n"
    sent, _ = forwarded(line, policy=policy)
    assert sent == b"MAIL FROM:<a b@contoso.com> SIZE=1|2\r\n"
