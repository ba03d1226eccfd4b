"""Story 1 on a running lab: intra-organization SMTP stuck in Retry behind the ASAs, and fixed.

Mail from NY to NY is delivered; NY to FL waits in EX-NY1's queue for site FL
with Exchange 2010's LastError while `inspect esmtp` is on; the SmtpSend log
shows why; the seed's ASA lines turn inspection off; after Retry-Queue the
message reaches adam's mailbox exactly once and can be tracked end to end.
Every step is what the seed's administrator types: Exchange Management Shell
lines (``sitemail shell``) and ASA lines (``sitemail asa``).
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import RunningLab, delivered_once, in_mailbox, submit_as, wait_for

pytestmark = pytest.mark.lab

NY1, FL1 = "127.1.0.11", "127.2.0.11"
PASSWORD = "Pa55word!"
LAST_ERROR = (
    '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange '
    'Server authentication." Attempted failover to alternate host, but that did not succeed. '
    "Either there are no alternate hosts, or delivery failed to all alternate hosts."
)
SEED_LINES = "\n".join(
    [
        "config t",
        "policy-map global_policy",
        "class inspection_default",
        "no inspect esmtp",
        "exit",
        "exit",
        "exit",
        "wr me",
    ]
)


def fl_queue(lab: RunningLab) -> dict[str, Any] | None:
    """EX-NY1's queue for site FL, as Get-Queue shows it."""
    for q in lab.shell("Get-Queue -Server EX-NY1"):
        if q["DeliveryType"] == "SmtpRelayToRemoteAdSite" and q["NextHopDomain"] == "FL":
            return q
    return None


def set_intra_org_logging(lab: RunningLab, level: str) -> None:
    """The seed's line (with its en dash), then until both hubs have taken it."""
    lab.shell(f"Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel {level}")
    lab.changes_live()


def test_story_one(seed_lab: RunningLab) -> None:
    lab = seed_lab
    # Step 1: NY to NY is delivered.
    submit_as("alice", ["bob@contoso.com"], "ny-to-ny@story1")
    assert wait_for(lambda: in_mailbox(lab, "EX-NY1", "NY-DB1", "ny-to-ny@story1"), "bob") == 1

    # Step 2: NY to FL stays in the queue for site FL, in Retry, with Exchange's LastError.
    set_intra_org_logging(lab, "Verbose")
    submit_as("alice", ["adam@contoso.com"], "ny-to-fl@story1")
    queue = wait_for(
        lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and q, "the FL queue in Retry"
    )
    assert queue["LastError"] == LAST_ERROR
    assert queue["Identity"].startswith("EX-NY1\\")
    assert queue["MessageCount"] == 1
    assert in_mailbox(lab, "EX-FL1", "FL-DB1", "ny-to-fl@story1") == 0

    # Step 5: the SmtpSend log shows the masked EHLO reply and the 451 5.7.3.
    send_dir = lab.dir / "servers/EX-NY1/TransportRoles/Logs/ProtocolLogs/SmtpSend"
    text = "\n".join(p.read_text() for p in sorted(send_dir.glob("SEND*.LOG")))
    assert "#Log-type: SMTP Send Protocol Log" in text
    assert "Intra-Organization SMTP Send Connector" in text
    assert "XXXXXXXA" in text
    assert "451 5.7.3 Cannot achieve Exchange Server authentication" in text
    set_intra_org_logging(lab, "None")

    # Step 7: the seed's lines on both ASAs.
    for fw in ("ASA-NY", "ASA-FL"):
        out = lab.run("asa", fw, "-c", SEED_LINES).stdout
        assert "[OK]" in out

    # Step 8: Retry-Queue, and the message is delivered exactly once: once no queue holds
    # it any more, adam's mailbox has one copy, and still one after a quiet period.
    lab.shell(f"Retry-Queue -Identity {queue['Identity']}")
    delivered_once(
        lab,
        lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", "ny-to-fl@story1"),
        "ny-to-fl@story1",
        "adam has it",
    )

    # Tracked across sites: SEND on EX-NY1, RECEIVE and DELIVER on EX-FL1.
    events = {
        (e["EventId"], str(e["ServerHostname"]).split(".")[0].upper())
        for e in lab.shell("Get-MessageTrackingLog -MessageId ny-to-fl@story1")
    }
    assert {("SEND", "EX-NY1"), ("RECEIVE", "EX-FL1"), ("DELIVER", "EX-FL1")} <= events


def test_fl_to_ny_flows_once_inspection_is_off(seed_lab: RunningLab) -> None:
    # Runs after test_story_one in this module: both ASAs have inspection off.
    submit_as("adam", ["bob@contoso.com"], "fl-to-ny@story1", server=FL1)
    delivered_once(
        seed_lab,
        lambda: in_mailbox(seed_lab, "EX-NY1", "NY-DB1", "fl-to-ny@story1"),
        "fl-to-ny@story1",
        "bob has it",
    )
