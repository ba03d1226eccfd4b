"""NDRs and delay DSNs: RFC 3464 structure with Exchange 2010's text (spec 5.5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tests.unit.queue.queue_testkit import Report, parse

from sitemail.mailflow.dsn import (
    EXPIRED_REPLY,
    RECIPIENT_NOT_FOUND_REPLY,
    DsnAction,
    OriginalMessage,
    ReportOrigin,
    build_delay_dsn,
    build_ndr,
    delayed,
    local_failure,
    notify_allows,
    remaining_time_text,
    remote_failure,
    reply_status,
    unreachable_expired_reply,
)

RECEIVED = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
ORIGINAL = OriginalMessage(
    sender="alice@contoso.com",
    internet_message_id="<orig-1@contoso.com>",
    subject="Quarterly report",
    headers=b"From: alice@contoso.com\r\nSubject: Quarterly report\r\n"
    b"Message-ID: <orig-1@contoso.com>\r\n\r\n",
    received_at=RECEIVED,
    envid="ENV-7",
)


def origin(at: datetime = RECEIVED) -> ReportOrigin:
    return ReportOrigin("EX01.contoso.com", "postmaster@contoso.com", at, "<r1@EX01.contoso.com>")


def test_expiry_ndr_has_exchange_text_and_rfc3464_fields() -> None:
    raw = build_ndr(
        ORIGINAL,
        [local_failure("bob@contoso.com", EXPIRED_REPLY)],
        origin(RECEIVED + timedelta(days=2)),
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse(raw)
    assert msg["In-Reply-To"] == "<orig-1@contoso.com>"
    report = Report.of(msg)
    assert report.subject == "Undeliverable: Quarterly report"
    assert report.to == "alice@contoso.com"
    text, headers = report.text, report.headers
    lines = text.splitlines()
    assert lines[0] == "Delivery has failed to these recipients or groups:"
    assert lines[1] == "bob@contoso.com"
    assert "Diagnostic information for administrators:" in lines
    assert "Generating server: EX01.contoso.com" in lines
    assert "#550 4.4.7 QUEUE.Expired; message expired ##" in lines
    assert "Original message headers:" in lines
    assert "Message-ID: <orig-1@contoso.com>" in text
    per_message, [per_recipient] = report.per_message, report.recipients
    assert per_message["Reporting-MTA"] == "dns;EX01.contoso.com"
    assert per_message["Original-Envelope-Id"] == "ENV-7"
    assert per_message["Arrival-Date"] == "Thu, 01 Jan 2026 08:00:00 +0000"
    assert per_recipient["Final-Recipient"] == "rfc822;bob@contoso.com"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "4.4.7"
    assert per_recipient["Diagnostic-Code"] == "smtp;550 4.4.7 QUEUE.Expired; message expired"
    assert "Subject: Quarterly report" in headers


def test_remote_rejection_quotes_the_remote_reply() -> None:
    rcpt = remote_failure(
        "bob@fabrikam.com", "550 5.7.1 Unable to relay", remote_mta="mx.fabrikam.com"
    )
    report = Report.of(parse(build_ndr(ORIGINAL, [rcpt], origin())))
    assert "Remote Server returned '550 5.7.1 Unable to relay'" in report.text.splitlines()
    assert report.recipients[0]["Status"] == "5.7.1"
    assert report.recipients[0]["Remote-MTA"] == "dns;mx.fabrikam.com"


def test_unknown_local_recipient() -> None:
    rcpt = local_failure(
        "nobody@contoso.com", RECIPIENT_NOT_FOUND_REPLY, orcpt="rfc822;Nobody@contoso.com"
    )
    report = Report.of(parse(build_ndr(ORIGINAL, [rcpt], origin())))
    assert "#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##" in report.text.splitlines()
    assert report.recipients[0]["Original-Recipient"] == "rfc822;Nobody@contoso.com"
    assert report.recipients[0]["Status"] == "5.1.1"


def test_one_report_lists_every_recipient() -> None:
    rcpts = [local_failure(f"u{i}@contoso.com", EXPIRED_REPLY) for i in range(3)]
    report = Report.of(parse(build_ndr(ORIGINAL, rcpts, origin())))
    assert [b["Final-Recipient"] for b in report.recipients] == [
        f"rfc822;u{i}@contoso.com" for i in range(3)
    ]
    assert report.text.count("#550 4.4.7 QUEUE.Expired; message expired ##") == 3


def test_delay_dsn_wording_and_remaining_time() -> None:
    now = RECEIVED + timedelta(hours=4, minutes=6)
    raw = build_delay_dsn(
        ORIGINAL,
        [delayed("bob@example.com")],
        origin(now),
        retry_until=RECEIVED + timedelta(days=2),
    )
    report = Report.of(parse(raw))
    assert report.subject == "Delivery delayed:Quarterly report"
    lines = report.text.splitlines()
    assert lines[:5] == [
        "Delivery is delayed to these recipients or groups:",
        "bob@example.com (bob@example.com)",
        "Subject: Quarterly report",
        "This message hasn't been delivered yet. Delivery will continue to be attempted.",
        "The server will keep trying to deliver this message for the next 1 days, 19 hours "
        "and 54 minutes. You'll be notified if the message can't be delivered by that time.",
    ]
    [block] = report.recipients
    assert block["Action"] == "delayed"
    assert block["Status"] == "4.4.7"
    assert block["Diagnostic-Code"] == "smtp;400 4.4.7 Message delayed"
    assert block["Will-Retry-Until"] == "Sat, 03 Jan 2026 08:00:00 +0000"


def test_unreachable_expiry_reply_carries_the_reason() -> None:
    assert unreachable_expired_reply("no connector") == (
        "550 4.4.7 QUEUE.Expired; message expired in unreachable destination queue. "
        "Reason: no connector"
    )


def test_non_ascii_subject_and_headers_survive_encoding() -> None:
    original = OriginalMessage(
        "alice@contoso.com",
        "<x@y>",
        "Relatório é pronto",
        "Subject: Relatório\r\n\r\n".encode(),
        RECEIVED,
    )
    raw = build_ndr(original, [local_failure("bob@contoso.com", EXPIRED_REPLY)], origin())
    assert raw.isascii()  # 7-bit: relays through any hop
    report = Report.of(parse(raw))
    assert report.subject == "Undeliverable: Relatório é pronto"
    assert "Subject: Relatório" in report.text
    assert "Relatório" in report.headers


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.1.1 User unknown", "5.1.1"),
        ("550 4.4.7 QUEUE.Expired; message expired", "4.4.7"),
        ("451 Try later", "4.0.0"),
        ("554 no enhanced code", "5.0.0"),
        ("garbage", "5.0.0"),
    ],
)
def test_reply_status(reply: str, status: str) -> None:
    assert reply_status(reply) == status


@pytest.mark.parametrize(
    ("notify", "failed", "delay"),
    [
        (None, True, True),
        ("NEVER", False, False),
        ("FAILURE", True, False),
        ("DELAY", False, True),
        ("SUCCESS,FAILURE,DELAY", True, True),
        ("success", False, False),
    ],
)
def test_notify_allows(notify: str | None, failed: bool, delay: bool) -> None:
    assert notify_allows(notify, DsnAction.FAILED) is failed
    assert notify_allows(notify, DsnAction.DELAYED) is delay


def test_remaining_time_text() -> None:
    assert remaining_time_text(timedelta(days=1, hours=20)) == "1 days, 20 hours and 0 minutes"
    assert remaining_time_text(timedelta(seconds=-5)) == "0 days, 0 hours and 0 minutes"


@given(
    subject=st.text(max_size=200),
    address=st.from_regex(r"[a-z0-9.]{1,20}@[a-z0-9]{1,10}\.com", fullmatch=True),
)
@example(subject="\x1e0", address="a@b.com")  # a line end to str.splitlines (seen failing)
@example(subject="a\r\n--_000_r1_--\r\n\u2028b", address="a@b.com")  # a decoded CRLF
def test_any_subject_gives_a_parseable_report(subject: str, address: str) -> None:
    original = OriginalMessage(address, "<x@y>", subject, b"Subject: x\r\n\r\n", RECEIVED)
    report = Report.of(
        parse(build_ndr(original, [local_failure(address, EXPIRED_REPLY)], origin()))
    )
    assert report.recipients[0]["Final-Recipient"] == f"rfc822;{address}"
    assert report.to == address
    delay = Report.of(
        parse(
            build_delay_dsn(
                original, [delayed(address)], origin(), retry_until=RECEIVED + timedelta(days=2)
            )
        )
    )
    assert delay.recipients[0]["Final-Recipient"] == f"rfc822;{address}"
    assert delay.text.splitlines()[2].startswith("Subject: ")


def test_a_report_needs_recipients() -> None:
    with pytest.raises(ValueError):
        build_ndr(ORIGINAL, [], origin())
