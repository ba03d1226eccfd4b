"""Limits, actions, TLS and the PIX modes of the inspection engine (spec §1.2, §2, §7)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sitemail.firewall.counters import InspectCounters
from sitemail.firewall.esmtp_policy import EsmtpPolicy, LimitRule, MailRelay, NameRule, Outcome
from sitemail.firewall.inspection import (
    Action,
    DropConnection,
    EsmtpInspector,
    InspectState,
    PassThrough,
    ResetConnection,
    Syslog,
    ToClient,
    ToServer,
    make_inspector,
    summarize,
)


def to_server(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, ToServer))


def to_client(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, ToClient))


def logs(actions: list[Action]) -> list[str]:
    return [a.message for a in actions if isinstance(a, Syslog)]


def greeted(policy: EsmtpPolicy | None = None, **kwargs: object) -> EsmtpInspector:
    engine = EsmtpInspector(policy, **kwargs)  # type: ignore[arg-type]
    engine.feed_server(b"220 mx ESMTP\r\n")
    return engine


def in_data(policy: EsmtpPolicy | None = None) -> EsmtpInspector:
    engine = greeted(policy)
    engine.feed_client(b"DATA\r\n")
    engine.feed_server(b"354 go ahead\r\n")
    assert engine.state is InspectState.DATA_HDR
    return engine


def dropped(actions: list[Action], klass: int) -> bool:
    return isinstance(actions[-1], DropConnection) and actions[-1].reason.startswith(
        f"matched Class {klass}:"
    )


# --- limits of _default_esmtp_map -------------------------------------------------------


def test_command_line_of_512_bytes_passes_and_513_drops() -> None:
    engine = greeted()
    line = b"NOOP " + b"a" * 505 + b"\r\n"
    assert len(line) == 512
    assert to_server(engine.feed_client(line)) == line
    too_long = b"NOOP " + b"a" * 506 + b"\r\n"
    actions = engine.feed_client(too_long)
    assert dropped(actions, 1)
    assert not to_server(actions)  # the packet is dropped, not forwarded


def test_over_long_line_without_end_drops_before_its_end() -> None:
    # The over-long-line probe of §8.6: the connection closes with no SMTP reply.
    engine = greeted()
    assert engine.feed_client(b"NOOP " + b"a" * 300) == []
    assert dropped(engine.feed_client(b"a" * 300), 1)


def test_hundred_recipients_pass_and_the_hundred_and_first_drops() -> None:
    engine = greeted()
    engine.feed_client(b"MAIL FROM:<a@x>\r\n")
    for n in range(100):
        assert to_server(engine.feed_client(b"RCPT TO:<u%d@y>\r\n" % n))
    assert dropped(engine.feed_client(b"RCPT TO:<u100@y>\r\n"), 2)


def test_recipient_count_restarts_with_each_transaction() -> None:
    engine = greeted()
    for _ in range(3):
        engine.feed_client(b"MAIL FROM:<a@x>\r\n" + b"RCPT TO:<b@y>\r\n" * 60 + b"RSET\r\n")
    assert engine.state is InspectState.CMD


def test_sender_address_of_320_passes_and_321_drops() -> None:
    engine = greeted()
    ok = b"MAIL FROM:<" + b"a" * 310 + b"@b.example>\r\n"
    assert to_server(engine.feed_client(ok)) == ok
    assert dropped(engine.feed_client(b"MAIL FROM:<" + b"a" * 311 + b"@b.example>\r\n"), 5)


def test_header_line_of_998_passes_and_999_drops() -> None:
    engine = in_data()
    ok = b"X-A: " + b"a" * 993 + b"\r\n"
    assert to_server(engine.feed_client(ok)) == ok
    assert dropped(engine.feed_client(b"X-A: " + b"a" * 994 + b"\r\n"), 4)


def test_long_body_line_is_only_logged() -> None:
    engine = in_data()
    engine.feed_client(b"Subject: x\r\n\r\n")
    line = b"b" * 2000 + b"\r\n"
    actions = engine.feed_client(line)
    assert to_server(actions) == line
    assert logs(actions) == [
        "%ASA-4-108004: ESMTP Classification: Logged for ESMTP Request from "
        "outside:0.0.0.0/0 to inside:0.0.0.0/25; matched Class 3: body line length gt 998"
    ]
    assert engine.state is InspectState.DATA_BODY


def test_mime_filename_over_255_in_a_folded_part_header_drops() -> None:
    engine = in_data()
    engine.feed_client(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n")
    fine = b'Content-Disposition: attachment;\r\n\tfilename="' + b"f" * 255 + b'"\r\n'
    assert to_server(engine.feed_client(fine)) == fine
    long_name = b'Content-Disposition: attachment;\r\n\tfilename="' + b"f" * 256 + b'"\r\n'
    assert dropped(engine.feed_client(long_name), 6)


def test_filename_outside_a_mime_header_is_not_checked() -> None:
    engine = in_data()
    engine.feed_client(b"Subject: x\r\n\r\n")
    text = b"see filename=" + b"f" * 300 + b"\r\n"
    assert to_server(engine.feed_client(text)) == text


def test_reset_action_resets_and_counts() -> None:
    counters = InspectCounters()
    rule = LimitRule(10, Outcome("reset", True, 1, "cmd line length gt 10"))
    engine = greeted(replace(EsmtpPolicy(), cmd_line_max=rule), counters=counters)
    actions = engine.feed_client(b"NOOP 123456789\r\n")
    assert isinstance(actions[-1], ResetConnection)
    assert "Reset connection for ESMTP Request" in logs(actions)[0]
    assert (counters.reset_drop, counters.drop) == (1, 0)
    assert counters.packet == 2


def test_drop_counts_in_the_counters() -> None:
    counters = InspectCounters()
    engine = greeted(counters=counters)
    engine.feed_client(b"NOOP " + b"a" * 600 + b"\r\n")
    assert counters.drop == 1


def test_cmd_verb_rule_can_mask_an_allowed_verb() -> None:
    rule = NameRule(frozenset({"vrfy"}), Outcome("mask", False, 1, "cmd verb VRFY"))
    engine = greeted(replace(EsmtpPolicy(), verb_rules=(rule,)))
    assert to_server(engine.feed_client(b"VRFY root\r\n")) == b"XXXX XXXX\r\n"
    assert to_server(engine.feed_client(b"NOOP\r\n")) == b"NOOP\r\n"


# --- EHLO masking knobs -----------------------------------------------------------------


def ehlo_reply(policy: EsmtpPolicy, reply: bytes) -> bytes:
    engine = greeted(policy)
    engine.feed_client(b"EHLO a\r\n")
    return to_client(engine.feed_server(reply))


def test_sequence_suffix_letters_each_masked_keyword() -> None:
    policy = replace(EsmtpPolicy(), ehlo_mask_suffix="sequence")
    out = ehlo_reply(policy, b"250-mx\r\n250-STARTTLS\r\n250-SIZE 5\r\n250 CHUNKING\r\n")
    assert out == b"250-mx\r\n250-XXXXXXXA\r\n250-SIZE 5\r\n250 XXXXXXXB\r\n"


def test_parameters_are_kept_unless_the_knob_says_mask() -> None:
    reply = b"250-mx\r\n250 X-EXPS GSSAPI NTLM\r\n"
    assert ehlo_reply(EsmtpPolicy(), reply).endswith(b"250 XXXXXA GSSAPI NTLM\r\n")
    masked = ehlo_reply(replace(EsmtpPolicy(), ehlo_mask_params=True), reply)
    assert masked.endswith(b"250 XXXXXA XXXXXX XXXX\r\n")


def test_without_an_others_rule_unknown_keywords_pass_but_starttls_does_not() -> None:
    out = ehlo_reply(
        replace(EsmtpPolicy(), ehlo_rules=()), b"250-mx\r\n250-XSHADOW\r\n250 STARTTLS\r\n"
    )
    assert out == b"250-mx\r\n250-XSHADOW\r\n250 XXXXXXXA\r\n"


def test_others_rule_with_log_only_logs_the_response() -> None:
    rule = NameRule(frozenset({"others"}), Outcome("log", True, 1, "ehlo-reply-parameter others"))
    engine = greeted(replace(EsmtpPolicy(), ehlo_rules=(rule,)))
    engine.feed_client(b"EHLO a\r\n")
    actions = engine.feed_server(b"250-mx\r\n250 XSHADOW\r\n")
    assert to_client(actions) == b"250-mx\r\n250 XSHADOW\r\n"
    assert logs(actions) == [
        "%ASA-4-108004: ESMTP Classification: Logged for ESMTP Response from "
        "inside:0.0.0.0/25 to outside:0.0.0.0/0; matched Class 1: ehlo-reply-parameter others"
    ]


def test_error_reply_to_ehlo_is_not_masked() -> None:
    out = ehlo_reply(EsmtpPolicy(), b"550-no STARTTLS\r\n550 STARTTLS\r\n")
    assert out == b"550-no STARTTLS\r\n550 STARTTLS\r\n"


# --- TLS --------------------------------------------------------------------------------


def test_allow_tls_passes_starttls_then_stops_inspecting() -> None:
    engine = greeted(replace(EsmtpPolicy(), allow_tls=True, allow_tls_log=True))
    engine.feed_client(b"EHLO a\r\n")
    assert ehlo_reply(replace(EsmtpPolicy(), allow_tls=True), b"250-mx\r\n250 STARTTLS\r\n") == (
        b"250-mx\r\n250 STARTTLS\r\n"
    )
    engine.feed_server(b"250-mx\r\n250 STARTTLS\r\n")
    assert to_server(engine.feed_client(b"STARTTLS\r\n")) == b"STARTTLS\r\n"
    actions = engine.feed_server(b"220 2.0.0 SMTP server ready\r\n")
    assert to_client(actions) == b"220 2.0.0 SMTP server ready\r\n"
    assert logs(actions)[0].startswith("%ASA-6-108007: TLS started on ESMTP session")
    assert engine.state is InspectState.TLS_PASS
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 3
    assert to_server(engine.feed_client(hello)) == hello
    assert to_client(engine.feed_server(b"\x16\x03\x03 STARTTLS 220 \r\n")) == (
        b"\x16\x03\x03 STARTTLS 220 \r\n"
    )


def test_refused_starttls_keeps_inspecting() -> None:
    engine = greeted(replace(EsmtpPolicy(), allow_tls=True))
    engine.feed_client(b"STARTTLS\r\n")
    engine.feed_server(b"454 4.7.0 TLS not available\r\n")
    assert engine.state is InspectState.CMD
    assert to_server(engine.feed_client(b"XEXCH50 1 2\r\n")) == b"XXXXXXX X X\r\n"


# --- address checks ---------------------------------------------------------------------


def test_special_character_log_blanks_the_pipe() -> None:
    engine = greeted(replace(EsmtpPolicy(), special_character="log"))
    actions = engine.feed_client(b"RCPT TO:<a|b@example>\r\n")
    assert to_server(actions) == b"RCPT TO:<a b@example>\r\n"
    assert logs(actions)[0].startswith("%ASA-2-108002: SMTP replaced string")


def test_special_character_drop_connection() -> None:
    engine = greeted(replace(EsmtpPolicy(), special_character="drop-connection"))
    assert isinstance(engine.feed_client(b"MAIL FROM:<a|b@x>\r\n")[-1], DropConnection)


def test_special_characters_are_not_checked_by_default() -> None:
    engine = greeted()
    line = b"RCPT TO:<a|b@example>\r\n"
    assert to_server(engine.feed_client(line)) == line


def test_mail_relay_drops_recipients_outside_the_domain() -> None:
    policy = replace(EsmtpPolicy(), mail_relay=MailRelay("example.org", "drop-connection"))
    engine = greeted(policy)
    inside = b"RCPT TO:<a@mail.example.org>\r\n"
    assert to_server(engine.feed_client(inside)) == inside
    actions = engine.feed_client(b"RCPT TO:<a@elsewhere.test>\r\n")
    assert "mail-relay: No Mail Relay allowed" in logs(actions)[0]
    assert isinstance(actions[-1], DropConnection)


# --- PIX Mailguard ----------------------------------------------------------------------


def test_pix51_turns_denied_commands_into_noop_of_the_same_length() -> None:
    engine = greeted(EsmtpPolicy.pix51())
    assert to_server(engine.feed_client(b"EHLO client\r\n")) == b"NOOP       \r\n"
    assert to_server(engine.feed_client(b"HELP\r\n")) == b"NOOP\r\n"
    assert to_server(engine.feed_client(b"HELO client\r\n")) == b"HELO client\r\n"


def test_pix51_banner_keeps_2_and_0() -> None:
    engine = EsmtpInspector(EsmtpPolicy.pix51())
    assert to_client(engine.feed_server(b"220 mx2 ready 2002\r\n")) == b"220 **2*******2002\r\n"


def test_pix44_masks_the_whole_banner_and_fakes_ok() -> None:
    engine = EsmtpInspector(EsmtpPolicy.pix44())
    assert to_client(engine.feed_server(b"220 mx2 ready 2002\r\n")) == b"220 **************\r\n"
    actions = engine.feed_client(b"EHLO client\r\n")
    assert to_server(actions) == b""
    assert to_client(actions) == b"250 OK\r\n"
    assert to_client(engine.feed_client(b"KI")) == b""
    assert to_client(engine.feed_client(b"LL\r\n")) == b"250 OK\r\n"
    assert to_server(engine.feed_client(b"HELO client\r\n")) == b"HELO client\r\n"


def test_pix_dotcrlf_bug_swallows_a_split_terminator() -> None:
    engine = in_data(replace(EsmtpPolicy.pix51(), pix_dotcrlf_bug=True))
    engine.feed_client(b"Subject: x\r\n\r\nbody\r\n")
    assert to_server(engine.feed_client(b".")) == b""
    assert to_server(engine.feed_client(b"\r\n")) == b""
    assert engine.state is InspectState.DATA_BODY  # the session hangs, as CSCds90792 did
    # A dot-stuffed line that merely starts in its own segment is released.
    assert to_server(engine.feed_client(b".")) == b""
    assert to_server(engine.feed_client(b".x\r\n")) == b"..x\r\n"


def test_pix_terminator_in_one_segment_still_ends_data() -> None:
    engine = in_data(replace(EsmtpPolicy.pix51(), pix_dotcrlf_bug=True))
    assert (
        to_server(engine.feed_client(b"S: x\r\n\r\nbody\r\n.\r\n")) == b"S: x\r\n\r\nbody\r\n.\r\n"
    )
    assert engine.state is InspectState.CMD


# --- odds and ends ----------------------------------------------------------------------


def test_no_inspection_means_pass_through() -> None:
    engine = make_inspector(None)
    assert isinstance(engine, PassThrough)
    assert engine.feed_server(b"220 mx ESMTP\r\n") == [ToClient(b"220 mx ESMTP\r\n")]
    assert engine.feed_client(b"STARTTLS\r\n") == [ToServer(b"STARTTLS\r\n")]
    assert isinstance(make_inspector(EsmtpPolicy()), EsmtpInspector)


def test_mask_banner_off_keeps_the_banner() -> None:
    engine = EsmtpInspector(replace(EsmtpPolicy(), mask_banner=False))
    assert to_client(engine.feed_server(b"220 mx ESMTP\r\n")) == b"220 mx ESMTP\r\n"


def test_banner_split_over_segments_is_masked_the_same() -> None:
    engine = EsmtpInspector()
    out = to_client(engine.feed_server(b"220 mail.ex")) + to_client(engine.feed_server(b"0 0\r\n"))
    assert out == b"220 *******0 0\r\n"


@pytest.mark.parametrize("size", [9000, 20000])
def test_huge_server_line_is_streamed_and_still_masked(size: int) -> None:
    engine = EsmtpInspector()
    text = b"220 " + b"a0 " * (size // 3) + b"\r\n"
    out = b"".join(
        to_client(engine.feed_server(text[i : i + 1000])) for i in range(0, len(text), 1000)
    )
    assert len(out) == len(text)
    assert out == b"220 " + b"*0 " * (size // 3) + b"\r\n"
    assert engine.state is InspectState.CMD


def test_without_a_length_rule_a_huge_line_streams_and_replies_stay_in_step() -> None:
    engine = greeted(replace(EsmtpPolicy(), cmd_line_max=None, command_buffer_max=1000))
    sent = to_server(engine.feed_client(b"NOOP " + b"a" * 3000))
    assert len(sent) == 3005  # not held for ever
    assert to_server(engine.feed_client(b"a\r\nEHLO b\r\n")) == b"a\r\nEHLO b\r\n"
    engine.feed_server(b"250 OK\r\n")
    assert to_client(engine.feed_server(b"250-mx\r\n250 STARTTLS\r\n")).endswith(b"XXXXXXXA\r\n")


def test_summary_folds_one_segment_for_the_relay() -> None:
    engine = greeted()
    summary = summarize(engine.feed_client(b"NOOP\r\nBDAT 1\r\n"))
    assert (summary.to_server, summary.to_client, summary.drop) == (
        b"NOOP\r\nXXXX X\r\n",
        b"",
        False,
    )
    dropped_summary = summarize(engine.feed_client(b"NOOP " + b"a" * 600 + b"\r\n"))
    assert dropped_summary.drop and not dropped_summary.reset and not dropped_summary.to_server
    assert dropped_summary.syslog[0].startswith("%ASA-4-108004:")
