"""Golden transcripts: what a client and a server see through the ASA (specs/asa-esmtp.md)."""

from __future__ import annotations

import re

import pytest

from sitemail.firewall.asa_syslog import Flow
from sitemail.firewall.inspection import (
    Action,
    EsmtpInspector,
    InspectState,
    ToClient,
    ToServer,
)


def to_server(actions: list[Action]) -> bytes:
    assert all(not isinstance(a, ToClient) for a in actions), actions
    return b"".join(a.data for a in actions if isinstance(a, ToServer))


def to_client(actions: list[Action]) -> bytes:
    assert all(not isinstance(a, ToServer) for a in actions), actions
    return b"".join(a.data for a in actions if isinstance(a, ToClient))


def greeted(banner: bytes = b"220 mx.example.org ESMTP\r\n") -> EsmtpInspector:
    engine = EsmtpInspector()
    engine.feed_server(banner)
    return engine


@pytest.mark.parametrize(
    ("real", "masked"),
    [
        # §1.6 worked examples.
        (
            b"220 mail.example.com ESMTP Postfix\r\n",
            b"220 ******************************\r\n",
        ),
        (
            b"220 mail.example.com ESMTP Sendmail 8.9.3/8.9.3; Thu, 20 Jun 2002 10:00:00 -0700\r\n",
            b"220 **************************************************20 ****2002**0*00*00 *0*00\r\n",
        ),
        (
            b"220-mail.example.com ESMTP Exim 4.92 Tue, 02 Jun 2020 09:00:00 +0200\r\n",
            b"220-*******************************2******02*****2020 0**00*00 *0200\r\n",
        ),
        # §7.4 first line.
        (
            b"220 mx20.example.org Microsoft ESMTP MAIL Service ready at "
            b"Tue, 20 Oct 2020 10:02:03 +0000\r\n",
            b"220 **20********************************************************20 "
            b"****2020 *0*02*0***0000\r\n",
        ),
    ],
)
def test_banner_masking_matches_the_spec_examples(real: bytes, masked: bytes) -> None:
    assert to_client(EsmtpInspector().feed_server(real)) == masked


def test_observed_banner_keeps_the_2_of_mail2() -> None:
    # [AGILEIT]: "220 ****2****..." for "220 mail2.nwtraders.msft Microsoft ESMTP Mail Service".
    out = to_client(
        EsmtpInspector().feed_server(b"220 mail2.nwtraders.msft Microsoft ESMTP Mail Service\r\n")
    )
    assert out.startswith(b"220 ****2*")
    assert set(out[9:-2]) == {ord("*")}
    assert len(out) == len(b"220 mail2.nwtraders.msft Microsoft ESMTP Mail Service\r\n")


def test_spec_7_4_session_as_the_client_and_server_see_it() -> None:
    engine = EsmtpInspector()
    assert engine.state is InspectState.BANNER
    banner = engine.feed_server(
        b"220 mx20.example.org Microsoft ESMTP MAIL Service ready at "
        b"Tue, 20 Oct 2020 10:02:03 +0000\r\n"
    )
    assert to_client(banner).startswith(b"220 **20****")
    assert engine.state is InspectState.CMD
    assert to_server(engine.feed_client(b"EHLO client.example\r\n")) == b"EHLO client.example\r\n"
    reply = engine.feed_server(
        b"250-mx.example.org Hello [192.0.2.1]\r\n"
        b"250-SIZE 52428800\r\n"
        b"250-8BITMIME\r\n"
        b"250-PIPELINING\r\n"
        b"250-CHUNKING\r\n"
        b"250 STARTTLS\r\n"
    )
    assert to_client(reply) == (
        b"250-mx.example.org Hello [192.0.2.1]\r\n"
        b"250-SIZE 52428800\r\n"
        b"250-8BITMIME\r\n"
        b"250-PIPELINING\r\n"
        b"250-XXXXXXXA\r\n"
        b"250 XXXXXXXA\r\n"
    )
    assert to_server(engine.feed_client(b"STARTTLS\r\n")) == b"XXXXXXXX\r\n"
    unknown = b'500 5.5.1 Command unrecognized: "XXXXXXXX"\r\n'
    assert to_client(engine.feed_server(unknown)) == unknown  # the server's words, untouched
    mail = b"MAIL FROM:<a@example>\r\n"
    assert to_server(engine.feed_client(mail)) == mail
    assert engine.state is InspectState.CMD


def test_cisco_118550_reply_ends_in_xxxxxxxa() -> None:
    engine = greeted()
    engine.feed_client(b"EHLO mta.example\r\n")
    out = to_client(
        engine.feed_server(
            b"250-esa.example Hello\r\n250-8BITMIME\r\n250-SIZE 14680064\r\n250 STARTTLS\r\n"
        )
    )
    assert out.endswith(b"250-8BITMIME\r\n250-SIZE 14680064\r\n250 XXXXXXXA\r\n")


def test_nmap_argosoft_fingerprint_matches_what_the_engine_writes() -> None:
    # nmap-service-probes line 13279: both banner lines all '*', HELP masked to XXXA.
    fingerprint = re.compile(
        rb"^220-\*{89}\r\n220 \*{32}\r\n250-Welcome [\w._-]+, nice to meet you\.\.\.\r\n"
        rb"250-AUTH=(?:\w+ ?)+\r\n250-AUTH(?: \w+)+\r\n250-SIZE \d+\r\n250-DSN\r\n"
        rb"250-ETRN\r\n250 XXXA\r\n"
    )
    engine = EsmtpInspector()
    seen = to_client(engine.feed_server(b"220-" + b"ArGoSoft Mail Server Pro" * 3 + b"x" * 17))
    seen += to_client(engine.feed_server(b"\r\n220 ArGoSoft Mail Server Version 1.8\r\n"))
    assert engine.state is InspectState.CMD
    engine.feed_client(b"EHLO scanner\r\n")
    seen += to_client(
        engine.feed_server(
            b"250-Welcome scanner, nice to meet you...\r\n250-AUTH=LOGIN PLAIN\r\n"
            b"250-AUTH LOGIN PLAIN\r\n250-SIZE 0\r\n250-DSN\r\n250-ETRN\r\n250 HELP\r\n"
        )
    )
    assert fingerprint.match(seen), seen


def test_exchange_2010_ehlo_loses_every_exchange_auth_keyword() -> None:
    # specs/exchange-2010.md §2.3(a) through the default map: the cause of 451 5.7.3.
    engine = greeted()
    engine.feed_client(b"EHLO EX-NY1.contoso.com\r\n")
    out = to_client(
        engine.feed_server(
            b"250-EX-FL1.contoso.com Hello [10.1.0.11]\r\n250-SIZE\r\n250-PIPELINING\r\n"
            b"250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-X-ANONYMOUSTLS\r\n"
            b"250-AUTH NTLM\r\n250-X-EXPS GSSAPI NTLM\r\n250-8BITMIME\r\n250-BINARYMIME\r\n"
            b"250-CHUNKING\r\n250-XEXCH50\r\n250-XRDST\r\n250 XSHADOW\r\n"
        )
    )
    assert out == (
        b"250-EX-FL1.contoso.com Hello [10.1.0.11]\r\n250-SIZE\r\n250-PIPELINING\r\n"
        b"250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-XXXXXXXA\r\n250-XXXXXXXXXXXXXA\r\n"
        b"250-AUTH NTLM\r\n250-XXXXXA GSSAPI NTLM\r\n250-8BITMIME\r\n250-BINARYMIME\r\n"
        b"250-XXXXXXXA\r\n250-XXXXXXA\r\n250-XXXXA\r\n250 XXXXXXA\r\n"
    )
    # And the verbs Exchange would send anyway are masked on the way in.
    assert to_server(engine.feed_client(b"X-ANONYMOUSTLS\r\n")) == b"XXXXXXXXXXXXXX\r\n"
    assert to_server(engine.feed_client(b"X-EXPS GSSAPI\r\n")) == b"XXXXXX XXXXXX\r\n"


def test_split_segment_probe_of_spec_8_4() -> None:
    engine = greeted()
    assert to_server(engine.feed_client(b"NO")) == b"XX"
    assert to_server(engine.feed_client(b"OP\r\n")) == b"XX\r\n"
    # Control: the same verb in one segment passes.
    assert to_server(engine.feed_client(b"NOOP\r\n")) == b"NOOP\r\n"


def test_telnet_typing_one_key_per_segment_sends_xs() -> None:
    # [C-113423]: H, E, L, O each become X; the server receives XXXX.
    engine = greeted()
    sent = b"".join(to_server(engine.feed_client(bytes([c]))) for c in b"HELO x\r\n")
    assert sent == b"XXXX X\r\n"


def test_accepted_partial_line_is_held_until_its_end() -> None:
    engine = greeted()
    assert to_server(engine.feed_client(b"MAIL FROM:<al")) == b""
    assert to_server(engine.feed_client(b"ice@example>\r\n")) == b"MAIL FROM:<alice@example>\r\n"


def test_unsupported_verbs_are_x_masked_with_spaces_kept() -> None:
    engine = greeted()
    assert to_server(engine.feed_client(b"BDAT 1024 LAST\r\n")) == b"XXXX XXXX XXXX\r\n"
    assert to_server(engine.feed_client(b"EXPN staff\r\n")) == b"XXXX XXXXX\r\n"
    assert to_server(engine.feed_client(b"ehlo localhost\r\n")) == b"ehlo localhost\r\n"


def test_auth_exchange_lines_pass_untouched() -> None:
    engine = greeted()
    assert to_server(engine.feed_client(b"AUTH LOGIN\r\n")) == b"AUTH LOGIN\r\n"
    engine.feed_server(b"334 VXNlcm5hbWU6\r\n")
    assert engine.state is InspectState.AUTH
    assert to_server(engine.feed_client(b"dXNlcg==\r\n")) == b"dXNlcg==\r\n"
    engine.feed_server(b"334 UGFzc3dvcmQ6\r\n")
    assert to_server(engine.feed_client(b"cGFzcw==\r\n")) == b"cGFzcw==\r\n"
    engine.feed_server(b"235 2.7.0 Authentication successful\r\n")
    assert engine.state is InspectState.CMD
    # Outside the exchange the same bytes are an unknown command again.
    assert to_server(engine.feed_client(b"dXNlcg==\r\n")) == b"XXXXXXXX\r\n"


def test_pipelined_commands_and_data_keep_replies_in_step() -> None:
    engine = greeted()
    engine.feed_client(b"EHLO a\r\n")
    engine.feed_server(b"250-mx Hello\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
    sent = engine.feed_client(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    assert to_server(sent) == b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
    engine.feed_server(b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n")
    assert engine.state is InspectState.CMD
    engine.feed_server(b"354 Start mail input\r\n")
    assert engine.state is InspectState.DATA_HDR
    message = b"Subject: hi\r\nX-Thing: STARTTLS\r\n\r\nQUIT\r\nEXPN\r\n..dot\r\n.\r\n"
    assert to_server(engine.feed_client(message)) == message
    assert engine.state is InspectState.CMD
    engine.feed_server(b"250 2.6.0 Queued\r\n")
    # After the message, commands are inspected again and EHLO replies masked again.
    engine.feed_client(b"RSET\r\nEHLO a\r\n")
    out = to_client(engine.feed_server(b"250 2.0.0 Reset\r\n250-mx Hello\r\n250 STARTTLS\r\n"))
    assert out == b"250 2.0.0 Reset\r\n250-mx Hello\r\n250 XXXXXXXA\r\n"


def test_data_terminator_split_over_segments_is_seen() -> None:
    engine = greeted()
    engine.feed_client(b"DATA\r\n")
    engine.feed_server(b"354 go\r\n")
    engine.feed_client(b"Subject: x\r\n\r\nbody\r\n")
    assert to_server(engine.feed_client(b".")) == b"."
    assert to_server(engine.feed_client(b"\r\n")) == b"\r\n"
    assert engine.state is InspectState.CMD


def _in_data(engine: EsmtpInspector) -> None:
    engine.feed_client(b"DATA\r\n")
    engine.feed_server(b"354 go\r\n")


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r"])
@pytest.mark.parametrize("split", [False, True])
def test_smuggled_end_of_data_is_relayed_as_body(fake_end: bytes, split: bool) -> None:
    # The server ends DATA only at CRLF.CRLF (protocols/smtp/dotstuff.py); the engine
    # must agree, or it waits for a reply that never comes and masks the rest as commands.
    engine = greeted()
    _in_data(engine)
    head = b"Subject: x\r\n\r\nline1" + fake_end
    rest = b"MAIL FROM:<evil@x.test>\r\nline3\r\n"
    segments = [head, rest] if split else [head + rest]
    for segment in segments:
        assert to_server(engine.feed_client(segment)) == segment
        assert engine.state is InspectState.DATA_BODY
    assert to_server(engine.feed_client(b".\r\n")) == b".\r\n"
    assert engine.state is InspectState.CMD


def test_bare_lf_dot_of_the_issue_does_not_end_data() -> None:
    engine = greeted()
    _in_data(engine)
    message = b"Subject: x\r\n\r\nline1\n.\nline3\r\n.\r\n"
    assert to_server(engine.feed_client(message)) == message
    assert engine.state is InspectState.CMD
    assert to_client(engine.feed_server(b"250 2.6.0 Queued\r\n")) == b"250 2.6.0 Queued\r\n"


@pytest.mark.parametrize("message", [b".\r\n", b"Subject: no body\r\n.\r\n"])
def test_end_of_data_in_the_header_section_is_seen(message: bytes) -> None:
    engine = greeted()
    _in_data(engine)
    assert to_server(engine.feed_client(message + b"QUIT\r\n")) == message + b"QUIT\r\n"
    assert engine.state is InspectState.CMD


def test_drop_connection_writes_the_observed_syslog_lines() -> None:
    flow = Flow("outside", "75.75.75.75", 35314, "DMZ", "10.0.25.101", 25)
    engine = EsmtpInspector(flow=flow)
    engine.feed_server(b"220 esa\r\n")
    engine.feed_client(b"DATA\r\n")
    engine.feed_server(b"354 go\r\n")
    actions = engine.feed_client(b"X-Long: " + b"a" * 991 + b"\r\n")
    messages = [a.message for a in actions if hasattr(a, "message")]
    assert messages == [
        "%ASA-4-108004: ESMTP Classification: Dropped connection for ESMTP Request from "
        "outside:75.75.75.75/35314 to DMZ:10.0.25.101/25; matched Class 4: header line length "
        "gt 998",
        "%ASA-4-507003: tcp flow from outside:75.75.75.75/35314 to DMZ:10.0.25.101/25 "
        "terminated by inspection engine, reason - inspector disconnected, dropped packet.",
    ]
    assert type(actions[-1]).__name__ == "DropConnection"
    assert engine.state is InspectState.CLOSED
    assert engine.feed_client(b"QUIT\r\n") == []
    assert engine.feed_server(b"221 bye\r\n") == []
