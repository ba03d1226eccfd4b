"""Issue 13 item 3 on a running lab: shadow redundancy between EX-NY1 and EX-FL1.

XSHADOW needs Exchange Server authentication, which works across the sites only
with ESMTP inspection off on both ASAs (the story's fixed state): the module
turns it off first.  The heartbeat is shortened with Set-TransportConfig so that
the tests take seconds, not Exchange's 15-minute intervals.
"""

from __future__ import annotations

import os
import signal
import smtplib
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import RunningLab, delivered_once, in_mailbox, wait_for
from tests.integration.test_reliability import INTERNET, NY1, SEED_OFF

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(seed_lab: RunningLab) -> Iterator[RunningLab]:
    for fw in ("ASA-NY", "ASA-FL"):
        seed_lab.run("asa", fw, "-c", SEED_OFF)
    # One heartbeat a second; only a new shadow id, never missed heartbeats, may
    # resubmit within these tests (15 x 1 s is longer than EX-FL1's restart).
    seed_lab.run(
        "shell",
        "-c",
        "Set-TransportConfig -ShadowHeartbeatTimeoutInterval 00:00:01 "
        "-ShadowHeartbeatRetryCount 15",
    )
    seed_lab.changes_live()
    yield seed_lab


def send_to_adam(*message_ids: str) -> None:
    """From the Internet host to EX-NY1, for adam's mailbox in FL: NY relays to EX-FL1."""
    with smtplib.SMTP(NY1, 25, timeout=20, source_address=(INTERNET, 0)) as smtp:
        smtp.ehlo("mail.fabrikam.com")
        for mid in message_ids:
            smtp.sendmail(
                "carol@fabrikam.com",
                ["adam@contoso.com"],
                f"Message-ID: <{mid}>\r\nSubject: {mid}\r\n\r\nHello Adam\r\n",
            )


def shadow_queues(lab: RunningLab) -> list[dict[str, Any]]:
    return [
        q for q in lab.shell("Get-Queue -Server EX-NY1") if q["DeliveryType"] == "ShadowRedundancy"
    ]


def adam_has(lab: RunningLab, mid: str) -> int:
    return in_mailbox(lab, "EX-FL1", "FL-DB1", mid)


def test_discard_notifications_empty_the_shadow_queue(lab: RunningLab) -> None:
    mids = [f"shadow-flow-{n}@fabrikam.com" for n in range(3)]
    send_to_adam(*mids)
    for mid in mids:
        delivered_once(lab, lambda mid=mid: adam_has(lab, mid), mid, f"{mid} in adam's mailbox")
    # EX-FL1 delivered them: its discard notifications empty EX-NY1's shadow queue.
    wait_for(lambda: not shadow_queues(lab), "EX-NY1's shadow queue is empty", 20)


def test_a_lost_ex_fl1_queue_loses_no_message_ex_ny1_handed_over(lab: RunningLab) -> None:
    # EX-FL1 takes messages but holds them (categorization suspended): in its mail.que only.
    lab.run("shell", "-c", "Suspend-Queue EX-FL1\\Submission")
    mids = [f"shadow-lost-{n}@fabrikam.com" for n in range(3)]
    send_to_adam(*mids)
    wait_for(
        lambda: [q["MessageCount"] for q in shadow_queues(lab)] == [3],
        "EX-NY1 shows a shadow queue with the three messages",
        30,
    )
    [queue] = shadow_queues(lab)
    assert queue["NextHopDomain"] == "ex-fl1.contoso.com"
    assert queue["Identity"].startswith("EX-NY1\\")
    assert all(adam_has(lab, mid) == 0 for mid in mids)

    # A lost disk: kill -9 EX-FL1 and delete its queue database, then start it again.
    [fl1] = [s for s in lab.status()["servers"] if s["name"] == "EX-FL1"]
    os.kill(fl1["pid"], signal.SIGKILL)
    wait_for(lambda: not _alive(fl1["pid"]), "EX-FL1 is gone", 10)
    queue_dir = lab.dir / "servers" / "EX-FL1" / "queue"
    for name in ("mail.que", "mail.que-wal", "mail.que-shm"):
        (queue_dir / name).unlink(missing_ok=True)
    lab.run("lab", "restart", "EX-FL1")

    # EX-NY1's heartbeat sees a new shadow id and resubmits its copies: each arrives once.
    for mid in mids:
        delivered_once(lab, lambda mid=mid: adam_has(lab, mid), mid, f"{mid} in adam's mailbox", 60)
    wait_for(lambda: not shadow_queues(lab), "EX-NY1's shadow queue is empty again", 30)
    tracking = lab.shell(f"Get-MessageTrackingLog -Server EX-NY1 -MessageId {mids[0]}")
    assert "RESUBMIT" in [row["EventId"] for row in tracking]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie until the lab's supervisor (not us) reaps it: gone for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
