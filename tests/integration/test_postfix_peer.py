"""Postfix at the other end: the lab's Internet host run by Postfix, and Postfix as a smart host.

One lab of the seed's organization with ``internet: {engine: postfix}``: the
lab runs a real Postfix as mail.fabrikam.com (carol's Maildir), which relays
mail for contoso.com into EX-NY1's "Internet EX-NY1" connector through
ASA-NY.  Beside it the tests start a second Postfix of their own
(mx.postfix.test on 127.99.0.25, own folder and queue) behind EX-NY1's send
connector "Postfix peer" (smart host 127.99.0.25): STARTTLS, DSN parameters,
its message_size_limit, 450 and 550 from a check_recipient_access map, and a
Postfix that is down.  What the organization shows is asked through
``sitemail shell``, as an administrator would.
"""

from __future__ import annotations

import re
import smtplib
import sqlite3
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import (
    EXAMPLES,
    RunningLab,
    delivered_once,
    in_mailbox,
    lab_slot,
    sitemail,
    stays,
    wait_for,
)

from sitemail.internet.postfix import PostfixConfig, PostfixInstance, Route
from sitemail.org.pki import ServerCertSpec, ensure_organization_pki, server_cert_files

pytestmark = pytest.mark.lab

NY1, INTERNET = "127.1.0.11", "127.99.0.11"
OUTSIDER = "127.99.0.50"  # a client somewhere on the Internet
PEER = "127.99.0.25"  # the tests' own Postfix, inside the Internet connector's RemoteIPRanges
PASSWORD = "Pa55word!"
SIZE_LIMIT = 20_000
ACCESS = (
    "later@postfix.test 450 4.2.1 Mailbox busy, try again later\n"
    "refused@postfix.test 550 5.7.1 Recipient refused by policy\n"
)
# What Postfix answers RCPT for them (smtpd's words around the access map's text).
REFUSED_550 = (
    b"550 5.7.1 <refused@postfix.test>: Recipient address rejected: Recipient refused by policy"
)
BUSY_450 = (
    b"450 4.2.1 <later@postfix.test>: Recipient address rejected: Mailbox busy, try again later"
)
CONNECT_ERROR = (
    '451 4.4.0 Primary target IP address responded with: "421 4.2.1 Unable to connect."'
    " Attempted failover to alternate host, but that did not succeed. Either there are no"
    " alternate hosts, or delivery failed to all alternate hosts."
)


def postfix_topology(folder: Path) -> Path:
    """The seed's topology with Postfix as its Internet host and a send connector to PEER."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / "seed.yaml").read_text())
    spec["internet"]["engine"] = "postfix"
    spec["send_connectors"].append(
        {
            "name": "Postfix peer",
            "source_transport_servers": ["EX-NY1"],
            "address_spaces": ["SMTP:postfix.test;1"],
            "smart_hosts": [PEER],
        }
    )
    path = folder / "seed-postfix.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    folder = tmp_path_factory.mktemp("postfixlab")
    with lab_slot():
        lab_dir = folder / "lab"
        sitemail("lab", "up", str(postfix_topology(folder)), "--dir", str(lab_dir))
        try:
            yield RunningLab(lab_dir)
        finally:
            sitemail("lab", "down", "--dir", str(lab_dir), check=False)
            # The lab's Postfix lives outside the temporary folder (out of the postfix
            # user's reach): remove it with the lab.
            labs_postfix(RunningLab(lab_dir)).remove()


def offset(lab: RunningLab) -> int:
    return int(lab.status()["port_offset"])


@pytest.fixture(scope="module")
def peer(lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostfixInstance]:
    """mx.postfix.test: a Postfix of the tests' own, routing contoso.com back to EX-NY1."""
    folder = tmp_path_factory.mktemp("peer")
    ensure_organization_pki(
        folder / "pki",
        "postfix.test",
        [ServerCertSpec(name="PEER", fqdn="mx.postfix.test", addresses=[PEER])],
        admin=False,
    )
    cert = server_cert_files(folder / "pki", "PEER")
    port = offset(lab)
    config = PostfixConfig(
        hostname="mx.postfix.test",
        address=PEER,
        smtp_port=25 + port,
        mailboxes=["ok@postfix.test", "later@postfix.test", "refused@postfix.test"],
        # Its reports (DSNs) go straight to EX-NY1's Internet connector.
        routes={"contoso.com": Route(NY1, 25 + port)},
        tls_cert=cert.cert,
        tls_key=cert.key,
        maps={"access": ACCESS},
        settings={
            "message_size_limit": str(SIZE_LIMIT),
            "smtpd_recipient_restrictions": (
                "check_recipient_access texthash:${config_directory}/access"
            ),
        },
    )
    instance = PostfixInstance(folder / "postfix", config)
    instance.start()
    try:
        yield instance
    finally:
        instance.remove()


def submit(
    sender: str,
    recipients: list[str],
    message_id: str,
    *,
    body: str = "Hello\r\n",
    rcpt_options: tuple[str, ...] = (),
    mail_options: tuple[str, ...] = (),
) -> dict[str, tuple[int, bytes]]:
    """A NY user's message through EX-NY1's client connector (587, STARTTLS, AUTH)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(NY1, 587, timeout=30) as s:
        s.ehlo("workstation.contoso.com")
        s.starttls(context=ctx)
        s.ehlo("workstation.contoso.com")
        s.login(sender.split("@")[0], PASSWORD)
        text = f"Subject: {message_id}\r\nMessage-ID: <{message_id}>\r\n\r\n{body}"
        return s.sendmail(
            sender,
            recipients,
            text.encode(),
            mail_options=list(mail_options),
            rcpt_options=list(rcpt_options),
        )


def mailbox_texts(lab: RunningLab, server: str, database: str) -> list[bytes]:
    """Every message a mailbox database holds (read-only look at the file)."""
    path = lab.dir / "servers" / server / "mailbox" / f"{database}.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [bytes(row[0]) for row in conn.execute("SELECT data FROM contents")]
    except sqlite3.OperationalError:  # the store has not created its tables yet
        return []
    finally:
        conn.close()


def reports_to_alice(lab: RunningLab, needle: bytes) -> list[bytes]:
    return [t for t in mailbox_texts(lab, "EX-NY1", "NY-DB1") if needle in t]


def with_id(messages: list[bytes], message_id: str) -> list[bytes]:
    return [m for m in messages if f"Message-ID: <{message_id}>".encode() in m]


def labs_postfix(lab: RunningLab) -> PostfixInstance:
    """A handle on the lab's own Postfix (to read carol's Maildir and its log)."""
    root = lab.dir / "servers" / "INTERNET" / "postfix"
    return PostfixInstance(root, PostfixConfig("mail.fabrikam.com", INTERNET))


def tracking(lab: RunningLab, message_id: str) -> list[dict[str, Any]]:
    return lab.shell(f"Get-MessageTrackingLog -MessageId {message_id} -Server EX-NY1")


# ------------------------------------------------------------ (c) the lab's Internet is Postfix


def test_the_labs_internet_host_is_postfix_and_mail_flows_both_ways(lab: RunningLab) -> None:
    (host,) = [s for s in lab.status()["servers"] if s["name"] == "INTERNET"]
    assert (host["state"], host["engine"]) == ("running", "postfix")
    assert "Internet mail host (Postfix)" in lab.run("lab", "status").stdout
    internet = labs_postfix(lab)

    # In: carol's host relays to the organization's MX, EX-NY1, through ASA-NY.
    with smtplib.SMTP(INTERNET, 25, timeout=30, source_address=(OUTSIDER, 0)) as s:
        code, banner = s.ehlo("client.fabrikam.com")
        assert code == 250 and banner.startswith(b"mail.fabrikam.com")
        refused = s.sendmail(
            "carol@fabrikam.com",
            ["alice@contoso.com"],
            b"Subject: in\r\nMessage-ID: <pf-in-1@fabrikam.com>\r\n\r\nHello alice\r\n",
        )
        assert refused == {}
    wait_for(lambda: in_mailbox(lab, "EX-NY1", "NY-DB1", "pf-in-1@fabrikam.com"), "alice has it")
    (text,) = with_id(mailbox_texts(lab, "EX-NY1", "NY-DB1"), "pf-in-1@fabrikam.com")
    assert re.search(rb"by mail\.fabrikam\.com \(Postfix\) with ESMTP id [0-9A-F]+", text)
    # EX-NY1 saw Postfix's own address (the firewall keeps the source), on its Internet connector.
    assert re.search(rb"Received: from mail\.fabrikam\.com \(127\.99\.0\.11\) by ex-ny1", text)
    # ASA-NY's inspection masks the banner: real Postfix recognizes the PIX and says so.
    log = (internet.root / "maillog").read_text()
    assert "enabling PIX workarounds" in log

    # Out: EX-NY1's send connector "Internet" to the smart host mail.fabrikam.com.
    assert submit("alice@contoso.com", ["carol@fabrikam.com"], "pf-out-1@contoso.com") == {}
    (delivered,) = wait_for(
        lambda: with_id(internet.messages("carol@fabrikam.com"), "pf-out-1@contoso.com"),
        "carol's Maildir has it",
    )
    assert re.search(
        rb"Received: from ex-ny1\.contoso\.com \(unknown \[127\.1\.0\.11\]\)\s+"
        rb"by mail\.fabrikam\.com \(Postfix\)",
        delivered,
    )
    assert b"X-MS-Exchange-Organization-" not in delivered  # the organization's own fields


def test_the_labs_postfix_keeps_the_relay_rule(lab: RunningLab) -> None:
    # From the organization's address, not the Internet's: only the host's own users.
    with smtplib.SMTP(INTERNET, 25, timeout=15, source_address=(NY1, 0)) as s:
        s.ehlo("ex-ny1.contoso.com")
        assert s.mail("alice@contoso.com")[0] == 250
        code, text = s.rcpt("someone@elsewhere.test")
        assert (code, text.split(b":")[0]) == (554, b"5.7.1 <someone@elsewhere.test>")
        assert b"Relay access denied" in text
        code, text = s.rcpt("nobody@fabrikam.com")
        assert code == 550 and b"User unknown in virtual mailbox table" in text


# ------------------------------------------------------------ (a) a send connector to Postfix


def test_starttls_and_dsn_parameters_reach_postfix(lab: RunningLab, peer: PostfixInstance) -> None:
    refused = submit(
        "alice@contoso.com",
        ["ok@postfix.test"],
        "pf-dsn-1@contoso.com",
        mail_options=("RET=HDRS", "ENVID=QQ314159"),
        rcpt_options=("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;ok@postfix.test"),
    )
    assert refused == {}
    (text,) = wait_for(
        lambda: with_id(peer.messages("ok@postfix.test"), "pf-dsn-1@contoso.com"),
        "the peer delivered it",
    )
    # EX-NY1 used STARTTLS (Postfix notes the TLS session in its Received field).
    assert re.search(rb"by mx\.postfix\.test \(Postfix\) with ESMTPS id", text), text[:600]
    assert re.search(rb"\(using TLSv1\.[23] with cipher", text)
    # NOTIFY=SUCCESS reached Postfix: its success report comes back to alice, with the
    # ENVID and ORCPT she gave EX-NY1.
    (report,) = wait_for(
        lambda: reports_to_alice(lab, b"Original-Envelope-Id: QQ314159"), "alice got the DSN"
    )
    assert b"Action: delivered" in report
    assert b"Original-Recipient: rfc822;ok@postfix.test" in report
    assert b"Final-Recipient: rfc822; ok@postfix.test" in report


def test_postfix_refusals_450_550_and_552(lab: RunningLab, peer: PostfixInstance) -> None:
    # A deferred recipient is tried again after MessageRetryInterval (15 minutes by default).
    lab.shell("Set-TransportServer EX-NY1 -MessageRetryInterval 00:00:05")
    lab.changes_live()
    refused = submit(
        "alice@contoso.com",
        ["ok@postfix.test", "later@postfix.test", "refused@postfix.test"],
        "pf-codes-1@contoso.com",
    )
    assert refused == {}  # EX-NY1 took all three; Postfix decides at the next hop
    wait_for(
        lambda: with_id(peer.messages("ok@postfix.test"), "pf-codes-1@contoso.com"), "ok has it"
    )

    # 550: alice gets EX-NY1's non-delivery report quoting Postfix's reply.
    (ndr,) = wait_for(lambda: reports_to_alice(lab, REFUSED_550), "alice's NDR")
    assert b"Subject: Undeliverable: pf-codes-1@contoso.com" in ndr
    assert b"Remote Server returned '" + REFUSED_550 + b"'" in ndr
    # 450: the message waits in the connector's queue with Postfix's reply as its LastError.
    (waiting,) = wait_for(
        lambda: [
            m
            for m in lab.shell("Get-Message -Server EX-NY1")
            if m["InternetMessageId"] == "<pf-codes-1@contoso.com>"
        ],
        "the deferred recipient's message",
    )
    assert (waiting["Status"], waiting["Recipients"]) == ("Retry", ["later@postfix.test"])
    assert waiting["LastError"] == BUSY_450.decode()
    events = {
        (e["EventId"], tuple(e["Recipients"]), tuple(e["RecipientStatus"]))
        for e in tracking(lab, "pf-codes-1@contoso.com")
    }
    assert ("FAIL", ("refused@postfix.test",), (REFUSED_550.decode(),)) in events
    assert ("DEFER", ("later@postfix.test",), (BUSY_450.decode(),)) in events

    # 552: larger than Postfix's message_size_limit; refused at MAIL FROM's SIZE=.
    assert (
        submit("alice@contoso.com", ["ok@postfix.test"], "pf-big-1@contoso.com", body="x" * 30_000)
        == {}
    )
    (ndr,) = wait_for(
        lambda: reports_to_alice(lab, b"552 5.3.4 Message size exceeds fixed limit"),
        "alice's NDR for the large message",
    )
    assert b"pf-big-1@contoso.com" in ndr
    assert not with_id(peer.messages("ok@postfix.test"), "pf-big-1@contoso.com")

    # The mailbox frees up: the deferred recipient gets it at the next try, once.
    _set_access(peer, "")
    wait_for(
        lambda: with_id(peer.messages("later@postfix.test"), "pf-codes-1@contoso.com"),
        "later has it",
    )
    wait_for(lambda: not lab.queued("pf-codes-1@contoso.com"), "no queue holds it")
    stays(
        lambda: (
            len(with_id(peer.messages("later@postfix.test"), "pf-codes-1@contoso.com")) == 1
            and len(with_id(peer.messages("ok@postfix.test"), "pf-codes-1@contoso.com")) == 1
        ),
        "each recipient has the message once",
    )


def test_postfix_down_puts_the_queue_in_retry(lab: RunningLab, peer: PostfixInstance) -> None:
    peer.stop()
    try:
        assert submit("alice@contoso.com", ["ok@postfix.test"], "pf-down-1@contoso.com") == {}
        (queue,) = wait_for(
            lambda: lab.shell('Get-Queue -Server EX-NY1 -Filter {Status -eq "Retry"}'),
            "the connector's queue in Retry",
        )
        assert (queue["DeliveryType"], queue["NextHopDomain"]) == (
            "SmartHostConnectorDelivery",
            PEER,
        )
        assert queue["LastError"] == CONNECT_ERROR
        assert queue["MessageCount"] == 1
    finally:
        peer.start()
    lab.shell(f"Retry-Queue -Identity {queue['Identity']}")
    delivered_once(
        lab,
        lambda: len(with_id(peer.messages("ok@postfix.test"), "pf-down-1@contoso.com")),
        "pf-down-1@contoso.com",
        "the peer delivered it",
    )


def _set_access(peer: PostfixInstance, table: str) -> None:
    (peer.etc / "access").write_text(table)
    done = subprocess.run(
        ["postfix", "-c", str(peer.etc), "reload"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
