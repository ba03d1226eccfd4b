"""Issue 4's reliability test: no acknowledged message is lost or doubled across kill -9.

2,000 messages go to EX-NY1 (half for bob in NY, half for adam in FL, so
half cross the sites hub to hub) while the hubs, which are also the mailbox
servers, are killed with SIGKILL at random moments, several times each.
After every process is back and the queues have drained, every message that
got a 250 is in its recipient's mailbox exactly once (counted by Message-ID),
and no message that was refused is anywhere.
"""

from __future__ import annotations

import contextlib
import json
import random
import smtplib
import sqlite3
import threading
import time
import urllib.request
from typing import Any

import pytest
from tests.conftest import RunningLab

from sitemail.org.pki import admin_cert_files, client_ssl_context

pytestmark = pytest.mark.lab

NY1, FL1, INTERNET = "127.1.0.11", "127.2.0.11", "127.99.0.11"
MESSAGES = 2000
SEED_OFF = "\n".join(
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


def _queues(lab: RunningLab, address: str) -> list[dict[str, Any]]:
    pki = lab.dir / "pki"
    ctx = client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))
    ctx.check_hostname = False
    with urllib.request.urlopen(f"https://{address}:8443/queues", context=ctx, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _mailbox_counts(lab: RunningLab, server: str, db: str) -> dict[str, int]:
    path = lab.dir / "servers" / server / "mailbox" / f"{db}.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT c.internet_message_id, count(*) FROM messages m "
            "JOIN contents c ON c.id = m.content_id GROUP BY c.internet_message_id"
        ).fetchall()
    finally:
        conn.close()
    return {str(mid).strip("<>"): int(n) for mid, n in rows}


def _drained(lab: RunningLab) -> bool:
    try:
        for address in (NY1, FL1):
            for q in _queues(lab, address):
                if q["Identity"].endswith("\\Poison"):
                    continue
                if q["DeliveryType"] == "ShadowRedundancy":
                    continue  # shadow copies of delivered messages, discarded in time
                if q["MessageCount"]:
                    return False
    except OSError:
        return False
    return True


def test_kill_9_during_2000_messages_loses_and_doubles_nothing(seed_lab: RunningLab) -> None:
    lab = seed_lab
    for fw in ("ASA-NY", "ASA-FL"):
        lab.run("asa", fw, "-c", SEED_OFF)
    acked: dict[str, str] = {}  # message id -> recipient
    refused: set[str] = set()
    done = threading.Event()
    rng = random.Random(20261127)

    def send_all() -> None:
        i = 0
        conn: smtplib.SMTP | None = None
        while i < MESSAGES:
            mid = f"rel-{i}@test"
            rcpt = "bob@contoso.com" if i % 2 == 0 else "adam@contoso.com"
            try:
                if conn is None:
                    conn = smtplib.SMTP(NY1, 25, timeout=20, source_address=(INTERNET, 0))
                    conn.ehlo("mail.fabrikam.com")
                conn.sendmail(
                    "carol@fabrikam.com",
                    [rcpt],
                    f"Message-ID: <{mid}>\r\nSubject: {i}\r\n\r\nbody {i}\r\n",
                )
                acked[mid] = rcpt
                i += 1
            except smtplib.SMTPResponseException as exc:
                refused.add(mid)  # an explicit 4xx/5xx: the message was not taken
                i += 1
                if exc.smtp_code == 421:
                    conn = None
            except (OSError, smtplib.SMTPServerDisconnected):
                # No reply: unknown whether it was taken. Try the same message again
                # under a new Message-ID so that the count stays unambiguous.
                conn = None
                i += 1
                time.sleep(0.2)
        if conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                conn.quit()
        done.set()

    def kill_now_and_then() -> None:
        kills = {"EX-NY1": 0, "EX-FL1": 0}
        while not done.is_set() or min(kills.values()) < 3:
            time.sleep(rng.uniform(0.5, 2.0))
            victim = rng.choice(sorted(kills))
            lab.run("lab", "restart", victim)
            kills[victim] += 1
            if done.is_set() and min(kills.values()) >= 3:
                break

    sender = threading.Thread(target=send_all)
    killer = threading.Thread(target=kill_now_and_then)
    sender.start()
    killer.start()
    sender.join(600)
    killer.join(600)
    assert not sender.is_alive() and not killer.is_alive()

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not _drained(lab):
        time.sleep(1)
    assert _drained(lab), "the queues did not drain"

    ny = _mailbox_counts(lab, "EX-NY1", "NY-DB1")
    fl = _mailbox_counts(lab, "EX-FL1", "FL-DB1")
    assert len(acked) > MESSAGES // 2, f"only {len(acked)} messages were acknowledged"
    lost = [m for m, r in acked.items() if (ny if r.startswith("bob") else fl).get(m, 0) == 0]
    doubled = [m for m in acked if ny.get(m, 0) + fl.get(m, 0) > 1]
    taken_refused = [m for m in refused if ny.get(m, 0) + fl.get(m, 0) > 0]
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {lost[:5]}"
    assert not doubled, f"{len(doubled)} messages delivered twice, e.g. {doubled[:5]}"
    assert not taken_refused, f"refused messages were delivered: {taken_refused[:5]}"
    print(
        f"reliability: {len(acked)} acknowledged, {len(refused)} refused, "
        f"{MESSAGES - len(acked) - len(refused)} without reply; delivered exactly once"
    )
