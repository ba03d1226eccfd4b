"""Mail in and out of the organization, and to its Exchange 2003 server, on the seed lab.

Story 1 step 1: mail from the Internet reaches a NY user, mail from a NY user
reaches the Internet (EX-NY1's send connector "Internet", smart host
mail.fabrikam.com, through ASA-NY), and a NY user's mail to larry reaches
the legacy Exchange 2003 server's mailbox database.  Clients are swaks and
smtplib; mailboxes are read from the database files, read-only.
"""

from __future__ import annotations

import re
import smtplib
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Callable

import pytest
from tests.conftest import RunningLab

pytestmark = pytest.mark.lab

NY1, EX2003, INTERNET = "127.1.0.11", "127.1.0.12", "127.99.0.11"
PASSWORD = "Pa55word!"
# Another Internet address than the host's own: a client "somewhere on the Internet".
OUTSIDER = "127.99.0.50"


def offset(lab: RunningLab) -> int:
    return int(lab.status()["port_offset"])


def delivered(lab: RunningLab, server: str, database: str, mailbox: str, message_id: str) -> int:
    """How many times ``message_id`` was delivered to ``mailbox`` (read-only look at the file)."""
    path = lab.dir / "servers" / server / "mailbox" / f"{database}.db"
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        keys = conn.execute(
            "SELECT d.key FROM deliveries d JOIN mailboxes b ON b.id = d.mailbox_id "
            "WHERE b.name = ?",
            (mailbox,),
        ).fetchall()
    except sqlite3.OperationalError:  # the store has not created its tables yet
        return 0
    finally:
        conn.close()
    # The store's duplicate key: "<Message-ID>:<submit time digest>:<address>".
    head, tail = f"<{message_id}>:", f":{mailbox_address(mailbox)}"
    return sum(1 for (key,) in keys if key.startswith(head) and key.endswith(tail))


def mailbox_address(mailbox: str) -> str:
    return mailbox if "@" in mailbox else f"{mailbox}@contoso.com"


def wait_for(predicate: Callable[[], int], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def swaks(*args: str) -> str:
    proc = subprocess.run(
        ["swaks", "--timeout", "20", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def inbox_text(lab: RunningLab, server: str, database: str, message_id: str) -> bytes:
    path = lab.dir / "servers" / server / "mailbox" / f"{database}.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT data FROM contents WHERE internet_message_id = ?", (f"<{message_id}>",)
        ).fetchone()
    finally:
        conn.close()
    return bytes(row[0]) if row else b""


def test_mail_from_the_internet_reaches_alice(seed_lab: RunningLab) -> None:
    lab, port = seed_lab, offset(seed_lab)
    # The Internet host's user submits (587, STARTTLS, AUTH); the host relays it to the
    # organization's MX (EX-NY1's "Internet EX-NY1" connector) through ASA-NY.
    out = swaks(
        "--server", f"{INTERNET}:{587 + port}", "--local-interface", OUTSIDER,
        "--tls", "--auth", "LOGIN", "--auth-user", "carol@fabrikam.com",
        "--auth-password", PASSWORD,
        "--from", "carol@fabrikam.com", "--to", "alice@contoso.com",
        "--header", "Message-Id: <inbound-1@fabrikam.com>",
        "--header", "Subject: from the Internet",
    )  # fmt: skip
    assert "<-  220 mail.fabrikam.com ESMTP" in out
    assert "<~  250 2.0.0 Ok: queued as " in out
    assert wait_for(lambda: delivered(lab, "EX-NY1", "NY-DB1", "alice", "inbound-1@fabrikam.com"))
    text = inbox_text(lab, "EX-NY1", "NY-DB1", "inbound-1@fabrikam.com")
    # Stamped by the Internet host, then by EX-NY1 which saw the host's own address.
    assert b"by mail.fabrikam.com with ESMTPSA;" in text
    assert re.search(rb"Received: from mail\.fabrikam\.com \(127\.99\.0\.11\) by ex-ny1", text)

    # Anyone on the Internet may also talk to the MX directly.
    swaks(
        "--server", f"{NY1}:{25 + port}", "--local-interface", INTERNET,
        "--ehlo", "mail.fabrikam.com",
        "--from", "carol@fabrikam.com", "--to", "alice@contoso.com",
        "--header", "Message-Id: <inbound-2@fabrikam.com>",
    )  # fmt: skip
    assert wait_for(lambda: delivered(lab, "EX-NY1", "NY-DB1", "alice", "inbound-2@fabrikam.com"))


def test_mail_from_alice_reaches_the_internet_and_larry(seed_lab: RunningLab) -> None:
    lab, port = seed_lab, offset(seed_lab)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(NY1, 587 + port, timeout=30) as s:
        s.ehlo("workstation.contoso.com")
        s.starttls(context=ctx)
        s.ehlo("workstation.contoso.com")
        s.login("alice", PASSWORD)
        refused = s.sendmail(
            "alice@contoso.com",
            ["carol@fabrikam.com", "larry@contoso.com"],
            b"Subject: out and legacy\r\nMessage-ID: <outbound-1@contoso.com>\r\n\r\nHello\r\n",
        )
        assert refused == {}
    # Out: EX-NY1's send connector "Internet" -> smart host mail.fabrikam.com -> ASA-NY.
    assert wait_for(
        lambda: delivered(
            lab, "INTERNET", "INTERNET", "carol@fabrikam.com", "outbound-1@contoso.com"
        )
    )
    text = inbox_text(lab, "INTERNET", "INTERNET", "outbound-1@contoso.com")
    assert re.search(rb"Received: from ex-ny1\.contoso\.com \(unknown \[127\.1\.0\.11\]\)", text)
    # The header firewall on the way out: the organization's own fields stay inside it.
    assert b"X-MS-Exchange-Organization-" not in text
    # Legacy: SmtpRelayToTiRg to EX2003's SMTP service, stored in its database once.
    assert wait_for(
        lambda: delivered(lab, "EX2003", "EX2003-MBX", "larry", "outbound-1@contoso.com")
    )
    text = inbox_text(lab, "EX2003", "EX2003-MBX", "outbound-1@contoso.com")
    assert b"by ex2003.contoso.com with Microsoft SMTPSVC(6.0.3790.4675);" in text
    assert b"X-MS-Exchange-Organization-AuthSource: ex-ny1.contoso.com" in text  # still inside
    assert delivered(lab, "EX2003", "EX2003-MBX", "larry", "outbound-1@contoso.com") == 1


def test_the_internet_host_relays_nothing_for_anonymous_clients(seed_lab: RunningLab) -> None:
    port = offset(seed_lab)
    with smtplib.SMTP(INTERNET, 25 + port, timeout=15, source_address=(OUTSIDER, 0)) as s:
        s.ehlo("spammer.example")
        assert s.mail("someone@spammer.example")[0] == 250
        assert s.rcpt("alice@contoso.com") == (
            554,
            b"5.7.1 <alice@contoso.com>: Relay access denied",
        )
        assert s.rcpt("nobody@fabrikam.com") == (
            550,
            b"5.1.1 <nobody@fabrikam.com>: Recipient address rejected: User unknown",
        )


def test_ex2003_speaks_exchange_2003(seed_lab: RunningLab) -> None:
    port = offset(seed_lab)
    with smtplib.SMTP(timeout=15) as s:
        code, banner = s.connect(EX2003, 25 + port, source_address=(NY1, 0))
        assert code == 220
        assert re.fullmatch(
            r"ex2003\.contoso\.com Microsoft ESMTP MAIL Service, Version: 6\.0\.3790\.4675 "
            r"ready at  \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
            banner.decode(),
        )
        s.ehlo("ex-ny1.contoso.com")
        s.mail("alice@contoso.com")
        assert s.rcpt("carol@fabrikam.com") == (
            550,
            b"5.7.1 Unable to relay for carol@fabrikam.com",
        )


def test_a_message_delivered_twice_is_stored_once_and_tracked_as_a_duplicate(
    seed_lab: RunningLab,
) -> None:
    """Exchange's store keys duplicates on Message-ID and submit time (the Date field)."""
    lab, port = seed_lab, offset(seed_lab)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def message(date: str, text: str) -> bytes:
        return (
            f"Subject: {text}\r\nMessage-ID: <dup-1@contoso.com>\r\nDate: {date}\r\n\r\n{text}\r\n"
        ).encode()

    first = message("Mon, 7 Dec 2026 10:00:00 +0000", "first")
    with smtplib.SMTP(NY1, 587 + port, timeout=30) as s:
        s.ehlo("workstation.contoso.com")
        s.starttls(context=ctx)
        s.ehlo("workstation.contoso.com")
        s.login("alice", PASSWORD)
        s.sendmail("alice@contoso.com", ["alice@contoso.com"], first)
        assert wait_for(lambda: delivered(lab, "EX-NY1", "NY-DB1", "alice", "dup-1@contoso.com"))
        s.sendmail("alice@contoso.com", ["alice@contoso.com"], first)  # the same message again
        # Another message reusing the Message-ID, written at another time: delivered.
        other = message("Mon, 7 Dec 2026 10:05:00 +0000", "second")
        s.sendmail("alice@contoso.com", ["alice@contoso.com"], other)

    def tracked() -> str:
        line = "Get-MessageTrackingLog -MessageId dup-1@contoso.com | Format-Table EventId"
        return lab.run("shell", "-c", line, "--server", "EX-NY1").stdout

    assert wait_for(lambda: "DUPLICATEDELIVER" in tracked() and tracked().count("DELIVER") >= 3)
    assert delivered(lab, "EX-NY1", "NY-DB1", "alice", "dup-1@contoso.com") == 2
