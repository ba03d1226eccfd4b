# ruff: noqa: E501 - the hand-written 2007/2013 log samples keep their real, long rows
"""From log files alone: each cause of story 1 found in 2010-shaped logs written by the
transport's own writer, and in hand-written 2007 and 2013 samples."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitemail.clock import ManualClock
from sitemail.diagnose import samples
from sitemail.diagnose.conversation import digest
from sitemail.diagnose.logs import LogKind, ProtocolRow, SmtpSession
from sitemail.diagnose.logscan import Outcome, scan_logs
from sitemail.diagnose.offline import troubleshoot_logs
from sitemail.mailflow.protocol_log import ProtocolLog

DEFAULT = "EX-FL1\\Default EX-FL1"
RELAY = "EX-FL1\\Relay EX-FL1"


def server_logs(root: Path, server: str) -> tuple[ProtocolLog, ProtocolLog]:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    base = root / server / "TransportRoles" / "Logs" / "ProtocolLogs"
    return (
        ProtocolLog.send(base / "SmtpSend", clock=clock),
        ProtocolLog.receive(base / "SmtpReceive", clock=clock),
    )


def write(root: Path, *steps: Callable[[ProtocolLog, ProtocolLog, ProtocolLog], None]) -> Path:
    ny_send, _ = server_logs(root, "EX-NY1")
    _, fl_receive = server_logs(root, "EX-FL1")
    samples.send_delivered(ny_send)  # healthy traffic around the trouble
    for step in steps:
        step(ny_send, fl_receive, ny_send)
    ny_send.close()
    fl_receive.close()
    return root


CASES: list[tuple[str, list[Callable[[ProtocolLog, ProtocolLog, ProtocolLog], None]], str, str]] = [
    (
        "inspection",
        [lambda s, r, _: samples.send_masked(s)],
        "esmtp-inspection",
        "EX-NY1 -> EX-FL1",
    ),
    (
        "auth-mechanism, both logs",
        [
            lambda s, r, _: samples.send_refused_at_ehlo(s, samples.EHLO_NO_EXCHANGE_AUTH),
            lambda s, r, _: samples.receive_on(r, DEFAULT, samples.EHLO_NO_EXCHANGE_AUTH),
        ],
        "connector-auth-mechanism",
        DEFAULT,
    ),
    (
        "auth-mechanism, send log only",
        [lambda s, r, _: samples.send_refused_at_ehlo(s, samples.EHLO_NO_EXCHANGE_AUTH)],
        "connector-auth-mechanism",
        DEFAULT,
    ),
    (
        "captured by a narrower connector",
        [
            lambda s, r, _: samples.send_refused_at_ehlo(s, ("SIZE", "STARTTLS", "8BITMIME")),
            lambda s, r, _: samples.receive_on(r, RELAY, ("SIZE", "STARTTLS", "8BITMIME")),
        ],
        "connector-captured",
        RELAY,
    ),
    (
        "permission groups",
        [
            lambda s, r, _: samples.send_send_as_denied(s),
            lambda s, r, _: samples.receive_send_as_denied(r, DEFAULT),
        ],
        "connector-permission-groups",
        DEFAULT,
    ),
    (
        "port 25",
        [lambda s, r, _: samples.send_failed_to_connect(s)],
        "port-25-unreachable",
        "EX-NY1 -> EX-FL1",
    ),
    (
        "remote ip ranges",
        [lambda s, r, _: samples.send_dropped_before_banner(s)],
        "connector-remote-ip-ranges",
        DEFAULT,
    ),
]
ERRORS = {c[2] for c in CASES}


@pytest.mark.parametrize(
    ("steps", "cause", "subject"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_cause_is_found_alone_from_logs(
    tmp_path: Path,
    steps: list[Callable[[ProtocolLog, ProtocolLog, ProtocolLog], None]],
    cause: str,
    subject: str,
) -> None:
    report = troubleshoot_logs([write(tmp_path, *steps)])
    errors = [f for f in report.findings if f.severity.value == "error"]
    assert [(f.cause, f.subject) for f in errors] == [(cause, subject)]
    finding = errors[0]
    located = [e for e in finding.evidence if e.location]
    assert located, finding
    for e in located:
        path, _, line = e.location.rpartition(":")  # type: ignore[union-attr]
        assert Path(path).exists() and int(line) > 0
    assert finding.fixes


def test_inspection_fix_is_the_seed_lines(tmp_path: Path) -> None:
    report = troubleshoot_logs([write(tmp_path, lambda s, r, _: samples.send_masked(s))])
    (finding,) = report.findings
    asa = [f for f in finding.fixes if f.kind.value == "asa"]
    assert asa[0].lines == (
        "config t",
        "policy-map global_policy",
        "class inspection_default",
        "no inspect esmtp",
        "exit",
        "exit",
        "exit",
        "wr me",
    )
    masked = [e.text for e in finding.evidence if "XXXXXXXA" in e.text]
    assert masked


def test_auth_none_is_told_from_exchange_server_lost(tmp_path: Path) -> None:
    none = ("SIZE", "PIPELINING", "8BITMIME")
    report = troubleshoot_logs(
        [write(tmp_path, lambda s, r, _: samples.send_refused_at_ehlo(s, none))]
    )
    (finding,) = report.findings
    assert "AuthMechanism None" in finding.summary
    assert finding.fixes[0].lines == (
        'Set-ReceiveConnector "EX-FL1\\Default EX-FL1" -AuthMechanism '
        "Tls,Integrated,BasicAuth,BasicAuthRequireTLS,ExchangeServer",
    )


def test_healthy_logs_give_no_finding(tmp_path: Path) -> None:
    report = troubleshoot_logs([write(tmp_path)])
    assert report.findings == []
    assert report.stats["rows"] > 20 and report.stats["files"] == 1


def test_the_probe_own_sessions_are_not_traffic(tmp_path: Path) -> None:
    _, fl = server_logs(tmp_path, "EX-FL1")
    samples.receive_on(fl, DEFAULT, ("SIZE",), client="probe.sitemail.invalid")
    fl.close()
    assert scan_logs([tmp_path]).groups == {}


SAMPLE_2007 = """#Software: Microsoft Exchange Server
#Version: 8.0.0.0
#Log-type: SMTP Send Protocol Log
#Date: 2009-06-01T10:00:00.000Z
#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context
2009-06-01T10:00:00.000Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,0,,192.168.2.10:25,*,,attempting to connect
2009-06-01T10:00:00.010Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,1,192.168.1.10:3456,192.168.2.10:25,+,,
2009-06-01T10:00:00.020Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,2,192.168.1.10:3456,192.168.2.10:25,<,220 *******************************************************************,
2009-06-01T10:00:00.030Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,3,192.168.1.10:3456,192.168.2.10:25,>,EHLO hub1.contoso.local,
2009-06-01T10:00:00.040Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,4,192.168.1.10:3456,192.168.2.10:25,<,250-hub2.contoso.local Hello [192.168.1.10],
2009-06-01T10:00:00.041Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,5,192.168.1.10:3456,192.168.2.10:25,<,250-SIZE,
2009-06-01T10:00:00.042Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,6,192.168.1.10:3456,192.168.2.10:25,<,250-PIPELINING,
2009-06-01T10:00:00.043Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,7,192.168.1.10:3456,192.168.2.10:25,<,250 XXXXXXXA,
2009-06-01T10:00:00.050Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,8,192.168.1.10:3456,192.168.2.10:25,*,,451 5.7.3 Cannot achieve Exchange Server authentication
2009-06-01T10:00:00.060Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,9,192.168.1.10:3456,192.168.2.10:25,>,QUIT,
2009-06-01T10:00:00.070Z,Intra-Organization SMTP Send Connector,08CBA1B2C3D4E5F6,10,192.168.1.10:3456,192.168.2.10:25,-,,Local
"""

# 2013+: "#Log-Type", a build number, hourly file names, the columns in another order.
SAMPLE_2013 = """#Software: Microsoft Exchange Server
#Version: 15.01.2507.006
#Log-Type: SMTP Receive Protocol Log
#Date: 2023-02-01T00:00:01.000Z
#Fields: date-time,session-id,connector-id,sequence-number,local-endpoint,remote-endpoint,event,data,context
2023-02-01T00:00:01.000Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,0,10.0.0.5:25,203.0.113.9:50000,+,,
2023-02-01T00:00:01.001Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,1,10.0.0.5:25,203.0.113.9:50000,*,SMTPSubmit SMTPAcceptAnyRecipient SMTPAcceptAnySender,Set Session Permissions
2023-02-01T00:00:01.002Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,2,10.0.0.5:25,203.0.113.9:50000,>,"220 ex13.contoso.com Microsoft ESMTP MAIL Service ready at Wed, 1 Feb 2023 00:00:01 +0000",
2023-02-01T00:00:01.003Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,3,10.0.0.5:25,203.0.113.9:50000,<,EHLO spammer.example,
2023-02-01T00:00:01.004Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,4,10.0.0.5:25,203.0.113.9:50000,>,250 ex13.contoso.com Hello [203.0.113.9],
2023-02-01T00:00:01.005Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,5,10.0.0.5:25,203.0.113.9:50000,<,MAIL FROM:<x@spammer.example>,
2023-02-01T00:00:01.006Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,6,10.0.0.5:25,203.0.113.9:50000,>,250 2.1.0 Sender OK,
2023-02-01T00:00:01.007Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,7,10.0.0.5:25,203.0.113.9:50000,<,RCPT TO:<victim@fabrikam.example>,
2023-02-01T00:00:01.008Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,8,10.0.0.5:25,203.0.113.9:50000,>,250 2.1.5 Recipient OK,
2023-02-01T00:00:01.009Z,08DB03F0A1B2C3D4,EX13\\Default Frontend EX13,9,10.0.0.5:25,203.0.113.9:50000,-,,Remote
"""


def test_a_2007_send_log_shows_the_masking(tmp_path: Path) -> None:
    (tmp_path / "SEND20090601-1.LOG").write_text(SAMPLE_2007.replace("\n", "\r\n"))
    digest = scan_logs([tmp_path])
    assert digest.releases == {"2007"}
    report = troubleshoot_logs([tmp_path])
    (finding,) = report.findings
    assert finding.cause == "esmtp-inspection"
    assert finding.subject == "HUB1 -> HUB2"  # the hubs' own names, not the log's folder


def test_a_2013_receive_log_shows_an_open_relay(tmp_path: Path) -> None:
    (tmp_path / "RECV2023020100-1.LOG").write_text(SAMPLE_2013)
    digest = scan_logs([tmp_path])
    assert digest.releases == {"2016"}
    # An anonymous session from outside, holding SMTPAcceptAnyRecipient, had a recipient
    # of another organization accepted: relaying, judged per connector.
    assert list(digest.relay) == ["EX13\\Default Frontend EX13"]
    assert digest.relay["EX13\\Default Frontend EX13"].sources == {"203.0.113.9": 1}
    report = troubleshoot_logs([tmp_path])
    assert [(f.cause, f.subject) for f in report.findings] == [
        ("open-relay", "EX13\\Default Frontend EX13")
    ]


_ROW = st.tuples(
    st.sampled_from(["+", "-", "<", ">", "*", "?", ""]),
    st.text(max_size=60),
    st.sampled_from(["", "Local", "Remote", "Set Session Permissions", "x"]),
)
_TEXTS = st.sampled_from(
    [
        "220 ******",
        "EHLO a",
        "250-XXXXXXXA",
        "250 X-ANONYMOUSTLS",
        "QUIT",
        "235 <authentication information>",
        "451 5.7.3 Cannot achieve Exchange Server authentication",
        "550 5.7.1 Client does not have permissions to send as this sender",
        "Failed to connect",
        "SMTPAcceptAnyRecipient",
        "",
    ]
)


@given(
    st.lists(
        st.tuples(
            _ROW.map(lambda r: r[0]), _TEXTS | st.text(max_size=30), _ROW.map(lambda r: r[2])
        ),
        max_size=30,
    )
)
def test_no_session_crashes_the_digest(rows: list[tuple[str, str, str]]) -> None:
    # Property: whatever a (damaged, foreign) log holds, the digest never raises.
    session = SmtpSession(LogKind.SMTP_SEND, "c", "s")
    for i, (event, data, context) in enumerate(rows):
        values = ["2026-03-02T09:00:00.000Z", "c", "s", str(i), "", "", event, data, context]
        session.rows.append(ProtocolRow(values, "f.LOG", i + 1, LogKind.SMTP_SEND))
    for kind in (LogKind.SMTP_SEND, LogKind.SMTP_RECEIVE):
        session.kind = kind
        result = digest(session, "EX-NY1")
        assert result is None or result.outcome in Outcome


@pytest.mark.parametrize(
    ("step", "cause"),
    [
        (lambda s, r, _: samples.send_masked(s), "esmtp-inspection"),
        (
            lambda s, r, _: samples.send_refused_at_ehlo(s, samples.EHLO_NO_EXCHANGE_AUTH),
            "connector-auth-mechanism",
        ),
    ],
    ids=["masked", "no-exchange-auth"],
)
def test_a_sender_that_logs_no_451_row_still_tells_the_cause(
    tmp_path: Path, step: Callable[[ProtocolLog, ProtocolLog, ProtocolLog], None], cause: str
) -> None:
    # How a 2010 sender records its synthetic 451 5.7.3 is not settled (spec 4.5): a hub that
    # quits right after the EHLO reply has given up on Exchange Server authentication.
    root = write(tmp_path, step)
    for log in root.rglob("*.LOG"):
        rows = log.read_text().splitlines(keepends=True)
        log.write_text("".join(r for r in rows if "5.7.3" not in r))
    report = troubleshoot_logs([root])
    assert [f.cause for f in report.findings if f.severity.value == "error"] == [cause]


@pytest.mark.parametrize(
    ("recipient", "severity"),
    [("someone@dead-domain.example", "info"), ("adam@contoso.com", "error")],
    ids=["to another organization", "inside the organization"],
)
def test_expired_mail_matters_when_it_was_the_organizations_own(
    tmp_path: Path, recipient: str, severity: str
) -> None:
    # Mail to another organization's server that stayed unreachable for two days is Internet
    # life; mail to the organization's own recipients that expired is mail lost.
    from sitemail.mailflow.tracking_log import MessageTrackingLog, TrackingEventId, TrackingSource

    write(tmp_path)  # EX-NY1's hub-to-hub traffic: the organization is contoso.com
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    log = MessageTrackingLog(tmp_path / "EX-NY1" / "MessageTracking", clock=clock)
    log.log(
        TrackingEventId.DELIVER,
        TrackingSource.STOREDRIVER,
        message_id="<a@contoso.com>",
        recipients=["bob@contoso.com"],
        server_hostname="EX-NY1",
    )
    log.log(
        TrackingEventId.FAIL,
        TrackingSource.QUEUE,
        message_id="<b@contoso.com>",
        recipients=[recipient],
        recipient_status=["550 4.4.7 QUEUE.Expired; message expired"],
        server_hostname="EX-NY1",
    )
    log.close()
    report = troubleshoot_logs([tmp_path])
    assert [(f.cause, f.severity.value) for f in report.findings] == [
        ("messages-expired", severity)
    ]
