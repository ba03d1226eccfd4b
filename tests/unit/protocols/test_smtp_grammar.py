"""Grammar helpers shared by the server, client, firewall and log readers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.protocols.smtp import (
    AddressSyntaxError,
    Bdat,
    Ehlo,
    Lhlo,
    Mail,
    ParameterSyntaxError,
    Reply,
    ReplyAssembler,
    SmtpSyntaxError,
    command_log_text,
    format_command,
    format_parameters,
    format_path,
    is_domain,
    parse_command,
    parse_command_line,
    parse_ehlo_reply,
    parse_mail_argument,
    parse_parameters,
    parse_rcpt_argument,
    parse_reply_line,
    replies,
    reply_from_lines,
    reply_log_lines,
    split_enhanced,
    xtext_decode,
    xtext_encode,
)

# --- replies -------------------------------------------------------------


def test_single_line_reply_wire_form() -> None:
    assert replies.SENDER_OK.to_bytes() == b"250 2.1.0 Sender OK\r\n"
    assert str(replies.UNRECOGNIZED_COMMAND) == "500 5.3.3 Unrecognized command"


def test_multi_line_reply_uses_dash_then_space() -> None:
    ehlo = Reply(250, None, ("EX02.contoso.com Hello [10.1.0.11]", "SIZE", "XSHADOW"))
    assert ehlo.to_bytes() == (
        b"250-EX02.contoso.com Hello [10.1.0.11]\r\n250-SIZE\r\n250 XSHADOW\r\n"
    )


def test_help_reply_is_exchange_text() -> None:
    assert replies.HELP.to_bytes() == (
        b"214-This server supports the following commands:\r\n"
        b"214 HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP AUTH BDAT\r\n"
    )


def test_enhanced_code_repeats_on_every_line() -> None:
    reply = Reply(550, "5.1.1", ("one", "two"))
    assert reply.wire_lines() == ["550-5.1.1 one", "550 5.1.1 two"]


def test_empty_text_gives_bare_code() -> None:
    assert Reply.of(250).to_bytes() == b"250\r\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"code": 199, "enhanced": None, "lines": ("x",)},
        {"code": 250, "enhanced": None, "lines": ()},
        {"code": 250, "enhanced": None, "lines": ("a\r\nRCPT TO:<x@y>",)},
        {"code": 250, "enhanced": "5.0.0", "lines": ("class must match",)},
        {"code": 250, "enhanced": "2.0", "lines": ("x",)},
    ],
)
def test_reply_refuses_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Reply(**kwargs)  # type: ignore[arg-type]


def test_queued_mail_reply_2010_form() -> None:
    assert str(replies.queued_mail("abc@EX01.contoso.com", 310935766)) == (
        "250 2.6.0 <abc@EX01.contoso.com> [InternalId=310935766] Queued mail for delivery"
    )


def test_requires_domain_matches_spec_for_ehlo() -> None:
    assert replies.requires_domain("ehlo") == replies.EHLO_REQUIRES_DOMAIN


@pytest.mark.parametrize(
    ("line", "code", "last", "text"),
    [
        ("250-SIZE\r\n", 250, False, "SIZE"),
        ("250 XXXXXXXA", 250, True, "XXXXXXXA"),
        ("220", 220, True, ""),
        ("250-", 250, False, ""),
        ("220 ****************", 220, True, "****************"),
    ],
)
def test_parse_reply_line(line: str, code: int, last: bool, text: str) -> None:
    rl = parse_reply_line(line)
    assert (rl.code, rl.last, rl.text) == (code, last, text)


@pytest.mark.parametrize("line", ["", "25", "abc def", "250x", "600 no", "099 no", "2500"])
def test_parse_reply_line_rejects(line: str) -> None:
    with pytest.raises(SmtpSyntaxError):
        parse_reply_line(line)


def test_split_enhanced_requires_matching_class() -> None:
    assert split_enhanced(550, "5.1.1 User unknown") == ("5.1.1", "User unknown")
    assert split_enhanced(250, "5.1.1 not enhanced") == (None, "5.1.1 not enhanced")
    assert split_enhanced(500, "#5.5.1 command not recognized") == (
        None,
        "#5.5.1 command not recognized",
    )


def test_reply_from_lines_strips_repeated_enhanced_code() -> None:
    lines = [parse_reply_line("550-5.1.1 first"), parse_reply_line("550 5.1.1 second")]
    assert reply_from_lines(lines) == Reply(550, "5.1.1", ("first", "second"))


def test_reply_from_lines_rejects_code_change() -> None:
    lines = [parse_reply_line("250-a"), parse_reply_line("251 b")]
    with pytest.raises(SmtpSyntaxError):
        reply_from_lines(lines)


def test_assembler_collects_until_last_line() -> None:
    asm = ReplyAssembler()
    assert asm.feed("250-a\r\n") is None
    assert asm.feed("250-b\r\n") is None
    assert asm.feed("250 c\r\n") == Reply(250, None, ("a", "b", "c"))
    assert asm.pending == 0


def test_assembler_bounds_lines() -> None:
    asm = ReplyAssembler(max_lines=2)
    asm.feed("250-a")
    asm.feed("250-b")
    with pytest.raises(SmtpSyntaxError):
        asm.feed("250 c")
    assert asm.pending == 0


_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30).filter(
    lambda t: not split_enhanced(250, t)[0] and not split_enhanced(550, t)[0]
)


@given(
    code=st.integers(200, 599),
    lines=st.lists(_text, min_size=1, max_size=5),
    with_enhanced=st.booleans(),
)
@settings(max_examples=100, deadline=None)
def test_reply_round_trips_through_the_wire(
    code: int, lines: list[str], with_enhanced: bool
) -> None:
    enhanced = f"{code // 100}.7.1" if with_enhanced and code // 100 != 3 else None
    if enhanced is None:
        lines = [t for t in lines if split_enhanced(code, t)[0] is None] or [""]
    reply = Reply(code, enhanced, tuple(lines))
    asm = ReplyAssembler()
    parsed = None
    for wire in reply.to_bytes().split(b"\r\n")[:-1]:
        parsed = asm.feed(wire.decode())
    assert parsed == reply


# --- command lines -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "verb", "argument"),
    [
        ("MAIL FROM:<a@b> SIZE=1\r\n", "MAIL", "FROM:<a@b> SIZE=1"),
        ("ehlo client.test\n", "EHLO", "client.test"),
        ("DATA \r\n", "DATA", ""),
        ("X-EXPS EXCHANGEAUTH SHA256 AAA=", "X-EXPS", "EXCHANGEAUTH SHA256 AAA="),
        ("", "", ""),
        ("QUIT", "QUIT", ""),
    ],
)
def test_parse_command_line(line: str, verb: str, argument: str) -> None:
    cmd = parse_command_line(line)
    assert (cmd.verb, cmd.argument) == (verb, argument)


def test_format_command_refuses_injection() -> None:
    assert format_command("RCPT", "TO:<a@b>") == b"RCPT TO:<a@b>\r\n"
    with pytest.raises(ValueError):
        format_command("RCPT", "TO:<a@b>\r\nRCPT TO:<evil@x>")
    with pytest.raises(ValueError):
        format_command("MAIL FROM", "x")


def test_parse_command_gives_typed_events_without_session_state() -> None:
    assert parse_command("MAIL FROM:<a@b.test> SIZE=10\r\n") == Mail(
        line="MAIL FROM:<a@b.test> SIZE=10", address="a@b.test", params={"SIZE": "10"}
    )
    assert parse_command("BDAT 10 last") == Bdat(line="BDAT 10 last", size=10, last=True)
    assert parse_command("EHLO x.test") == Ehlo(line="EHLO x.test", domain="x.test")
    assert parse_command("EHLO x.test", lmtp=True).suggested_reply == replies.UNRECOGNIZED_COMMAND
    assert parse_command("LHLO x.test", lmtp=True) == Lhlo(line="LHLO x.test", domain="x.test")
    assert parse_command("XXXXXXXX").suggested_reply == replies.UNRECOGNIZED_COMMAND
    too_big = parse_command("MAIL FROM:<a@b.test> SIZE=11", max_message_size=10)
    assert too_big.suggested_reply == replies.MESSAGE_TOO_BIG
    custom = parse_command("MAIL FROM:<a@b.test> XSHADOW=1", mail_parameters=frozenset({"XSHADOW"}))
    assert custom.suggested_reply is None


# --- addresses and parameters -------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "address", "params"),
    [
        ("FROM:<alice@contoso.com> SIZE=2048", "alice@contoso.com", {"SIZE": "2048"}),
        ("FROM:<>", "", {}),
        ("from: <a@b.test>", "a@b.test", {}),
        ("FROM:a@b.test BODY=8bitmime", "a@b.test", {"BODY": "8BITMIME"}),
        ("FROM:<@r1.test,@r2.test:u@h.test>", "u@h.test", {}),
        ('FROM:<"a b>c"@h.test>', '"a b>c"@h.test', {}),
        ("FROM:<a@[10.0.0.1]>", "a@[10.0.0.1]", {}),
        (
            "FROM:<a@b.test> BODY=BINARYMIME RET=hdrs ENVID=x+2By AUTH=<>",
            "a@b.test",
            {"BODY": "BINARYMIME", "RET": "HDRS", "ENVID": "x+2By", "AUTH": "<>"},
        ),
        ("FROM:<a@b.test> XFOO", "a@b.test", {"XFOO": None}),
    ],
)
def test_parse_mail_argument(argument: str, address: str, params: dict[str, str]) -> None:
    parsed = parse_mail_argument(argument)
    assert parsed.address == address
    assert parsed.params == params


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        ("FROM:<a@b", AddressSyntaxError),
        ("FROM:<a>", AddressSyntaxError),
        ("FROM:<a@>", AddressSyntaxError),
        ("FROM:<a@b..c>", AddressSyntaxError),
        ("FROM:<a@b>x", AddressSyntaxError),
        ("FROM:<ä@b.test>", AddressSyntaxError),
        ("FROM:<postmaster>", AddressSyntaxError),
        ("FROM:<a@b> SIZE=abc", ParameterSyntaxError),
        ("FROM:<a@b> SIZE", ParameterSyntaxError),
        ("FROM:<a@b> BODY=9BIT", ParameterSyntaxError),
        ("FROM:<a@b> SIZE=1 size=2", ParameterSyntaxError),
        ("FROM:<a@b> ENVID=a=b", ParameterSyntaxError),
        ("FROM:<a@b> =x", ParameterSyntaxError),
        ("TO:<a@b>", SmtpSyntaxError),
    ],
)
def test_parse_mail_argument_rejects(argument: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_mail_argument(argument)


def test_parse_rcpt_argument() -> None:
    parsed = parse_rcpt_argument("TO:<bob@contoso.com> NOTIFY=success,failure ORCPT=rfc822;bob@x")
    assert parsed.address == "bob@contoso.com"
    assert parsed.params == {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;bob@x"}
    assert parse_rcpt_argument("TO:<Postmaster>").address == "Postmaster"


@pytest.mark.parametrize(
    "argument",
    ["TO:<>", "FROM:<a@b>", "TO:<a@b> NOTIFY=NEVER,SUCCESS", "TO:<a@b> ORCPT=x", "TO:"],
)
def test_parse_rcpt_argument_rejects(argument: str) -> None:
    with pytest.raises(SmtpSyntaxError):
        parse_rcpt_argument(argument)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("mail.contoso.com", True),
        ("EX_01", True),
        ("[10.0.0.1]", True),
        ("[IPv6:::1]", True),
        ("", False),
        ("a..b", False),
        ("a b", False),
        ("[]", False),
        ("x" * 64 + ".com", False),
    ],
)
def test_is_domain(text: str, ok: bool) -> None:
    assert is_domain(text) is ok


def test_format_path_refuses_what_would_not_parse_back() -> None:
    assert format_path("a@b.test") == "<a@b.test>"
    assert format_path("", allow_null=True) == "<>"
    for bad in ("a@b.test>", "a b@c", "a@b\r\nRCPT TO:<x@y>", ""):
        with pytest.raises(ValueError):
            format_path(bad)


def test_format_parameters() -> None:
    assert format_parameters({"SIZE": "10", "BODY": "8BITMIME"}) == " SIZE=10 BODY=8BITMIME"
    assert format_parameters({"XFOO": None}) == " XFOO"
    assert format_parameters(None) == ""
    with pytest.raises(ValueError):
        format_parameters({"SIZE": "1 RCPT"})


def test_parse_parameters_tolerates_repeated_spaces() -> None:
    assert parse_parameters("  SIZE=1   BODY=7BIT ") == {"SIZE": "1", "BODY": "7BIT"}


@given(st.text(max_size=40))
@settings(max_examples=100, deadline=None)
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert all(33 <= ord(c) <= 126 and c != "=" for c in encoded)
    assert xtext_decode(encoded) == text


def test_xtext_rejects_bad_escape() -> None:
    with pytest.raises(ParameterSyntaxError):
        xtext_decode("a+2")
    with pytest.raises(ParameterSyntaxError):
        xtext_decode("a+zz")


_local = st.text(alphabet="abcXYZ019.!#$%&'*+-/=?^_`{|}~", min_size=1, max_size=12)
_label = st.text(alphabet="abcxyz0129-_", min_size=1, max_size=10)
_domain = st.lists(_label, min_size=1, max_size=3).map(".".join)
_address = st.builds(lambda lp, d: f"{lp}@{d}", _local, _domain)
_param_value = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=10
)


@given(
    address=_address,
    extra=st.dictionaries(
        st.from_regex(r"X[A-Z0-9]{1,6}", fullmatch=True),
        st.none() | _param_value,
        max_size=3,
    ),
    size=st.none() | st.integers(0, 10**12),
)
@settings(max_examples=100, deadline=None)
def test_mail_argument_round_trips(
    address: str, extra: dict[str, str | None], size: int | None
) -> None:
    params: dict[str, str | None] = {} if size is None else {"SIZE": str(size)}
    params.update(extra)
    argument = "FROM:" + format_path(address) + format_parameters(params)
    parsed = parse_mail_argument(argument)
    assert parsed.address == address
    assert parsed.params == params


# --- EHLO replies ----------------------------------------------------------------


def test_parse_ehlo_reply_keeps_order_and_params() -> None:
    reply = Reply(
        250,
        None,
        (
            "EX02.contoso.com Hello [10.1.0.11]",
            "SIZE",
            "AUTH NTLM LOGIN",
            "X-EXPS EXCHANGEAUTH GSSAPI NTLM",
            "X-EXCHANGEAUTH SHA256",
            "xshadow",
        ),
    )
    ehlo = parse_ehlo_reply(reply)
    assert ehlo.greeting == "EX02.contoso.com Hello [10.1.0.11]"
    assert list(ehlo.keywords) == ["SIZE", "AUTH", "X-EXPS", "X-EXCHANGEAUTH", "XSHADOW"]
    assert ehlo.params("auth") == ("NTLM", "LOGIN")
    assert ehlo.has("X-EXPS", "exchangeauth")
    assert not ehlo.has("X-EXPS", "KERBEROS")
    assert "XSHADOW" in ehlo
    assert "STARTTLS" not in ehlo


def test_parse_ehlo_reply_sees_masked_keyword() -> None:
    ehlo = parse_ehlo_reply(Reply(250, None, ("mx Hello", "8BITMIME", "XXXXXXXA")))
    assert list(ehlo.keywords) == ["8BITMIME", "XXXXXXXA"]


# --- protocol log text -----------------------------------------------------------


def test_log_text_redacts_authentication_data() -> None:
    assert command_log_text("X-EXPS EXCHANGEAUTH SHA256 YIIFbgYJKoZI\r\n") == (
        "X-EXPS EXCHANGEAUTH SHA256 "
    )
    assert command_log_text("AUTH LOGIN dXNlcg==") == "AUTH LOGIN "
    assert command_log_text("AUTH NTLM") == "AUTH NTLM"
    assert command_log_text("dXNlcg==", in_auth_exchange=True) == "<authentication information>"
    assert command_log_text("MAIL FROM:<a@b>") == "MAIL FROM:<a@b>"
    assert reply_log_lines(Reply(235, None, ("YIIB...",))) == ["235 <authentication information>"]
    assert reply_log_lines(Reply(334, None, ("VXNlcm5hbWU6",))) == [
        "334 <authentication information>"
    ]
    assert reply_log_lines(Reply(250, None, ("a", "b"))) == ["250-a", "250 b"]
