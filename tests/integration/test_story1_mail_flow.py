"""Story 1 on a running lab: intra-organization SMTP stuck in Retry behind the ASAs, and fixed.

Mail from NY to NY is delivered; NY to FL waits in EX-NY1's queue for site FL
with Exchange 2010's LastError while `inspect esmtp` is on; the SmtpSend log
shows why; the seed's ASA lines turn inspection off; after Retry-Queue the
message reaches adam's mailbox exactly once and can be tracked end to end.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from tests.conftest import RunningLab, in_mailbox, submit_as

from sitemail.org.model import LoggingLevel, Server
from sitemail.org.pki import admin_cert_files, client_ssl_context

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


def admin(lab: RunningLab, address: str, path: str, body: dict[str, Any] | None = None) -> Any:
    pki = lab.dir / "pki"
    ctx = client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))
    ctx.check_hostname = False
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"https://{address}:8443{path}",
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.loads(resp.read())


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def fl_queue(lab: RunningLab) -> dict[str, Any] | None:
    for q in admin(lab, NY1, "/queues"):
        if q["DeliveryType"] == "SmtpRelayToRemoteAdSite" and q["NextHopDomain"] == "FL":
            return q  # type: ignore[no-any-return]
    return None


def set_intra_org_logging(lab: RunningLab, level: LoggingLevel) -> None:
    d = lab.open_directory()
    try:
        for server in d.list(Server):
            server.transport.intra_org_connector_protocol_logging_level = level
            d.put(server)
    finally:
        d.close()
    time.sleep(1.2)


def test_story_one(seed_lab: RunningLab) -> None:
    lab = seed_lab
    # Step 1: NY to NY is delivered.
    submit_as("alice", ["bob@contoso.com"], "ny-to-ny@story1")
    assert wait_for(lambda: in_mailbox(lab, "EX-NY1", "NY-DB1", "ny-to-ny@story1")) == 1

    # Step 2: NY to FL stays in the queue for site FL, in Retry, with Exchange's LastError.
    set_intra_org_logging(lab, LoggingLevel.VERBOSE)
    submit_as("alice", ["adam@contoso.com"], "ny-to-fl@story1")
    queue = wait_for(lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and q)
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
    set_intra_org_logging(lab, LoggingLevel.NONE)

    # Step 7: the seed's lines on both ASAs.
    for fw in ("ASA-NY", "ASA-FL"):
        out = lab.run("asa", fw, "-c", SEED_LINES).stdout
        assert "[OK]" in out

    # Step 8: Retry-Queue, and the message is delivered exactly once.
    admin(lab, NY1, "/queues/retry", {"identity": queue["Identity"]})
    assert wait_for(lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", "ny-to-fl@story1")) == 1
    time.sleep(1)
    assert in_mailbox(lab, "EX-FL1", "FL-DB1", "ny-to-fl@story1") == 1

    # Tracked across sites: SEND on EX-NY1, RECEIVE and DELIVER on EX-FL1.
    sent = admin(lab, NY1, "/tracking", {"message_id": "<ny-to-fl@story1>"})
    assert "SEND" in [e["EventId"] for e in sent]
    received = admin(lab, FL1, "/tracking", {"message_id": "<ny-to-fl@story1>"})
    events = [e["EventId"] for e in received]
    assert "RECEIVE" in events and "DELIVER" in events


def test_fl_to_ny_flows_once_inspection_is_off(seed_lab: RunningLab) -> None:
    # Runs after test_story_one in this module: both ASAs have inspection off.
    submit_as("adam", ["bob@contoso.com"], "fl-to-ny@story1", server=FL1)
    assert wait_for(lambda: in_mailbox(seed_lab, "EX-NY1", "NY-DB1", "fl-to-ny@story1")) == 1
