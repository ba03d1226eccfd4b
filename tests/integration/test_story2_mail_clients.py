"""Mail clients on the seed lab: Mail Submission, POP3/IMAP4 served or proxied (story 2, step 2).

alice and bob have mailboxes on EX-NY1 (NY), adam on EX-FL1 (FL).  A message
put in alice's Outbox with the store's ``submit`` reaches bob and (once
``inspect esmtp`` is off on both ASAs) adam, and is filed in alice's Sent
Items once.  adam signing in to NY's Client Access server by IMAP4 or POP3
is proxied to EX-FL1 and reads it; alice is served by EX-NY1 itself.
Clients: Python's imaplib and poplib, and curl.  The tests run in file
order on one lab (the first turns inspection off).
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from bench.lab_names import LabNamesAdapter, MappedConnection
from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    Version,
)
from exchangelib.protocol import BaseProtocol
from tests.clients.davmail import davmail
from tests.conftest import RunningLab, in_mailbox, stays, wait_for

from sitemail.mailbox.store_client import StoreClient
from sitemail.mailflow.tracking_log import read_tracking_log
from sitemail.org.pki import server_cert_files

pytestmark = pytest.mark.lab

NY1, FL1 = "127.1.0.11", "127.2.0.11"
ADDRESSES = {"EX-NY1": NY1, "EX-FL1": FL1}
PASSWORD = "Pa55word!"
NO_INSPECTION = "\n".join(
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
T = TypeVar("T")


def offset(lab: RunningLab) -> int:
    return int(lab.status()["port_offset"])


def tls(lab: RunningLab) -> ssl.SSLContext:
    """Trusts only the organization CA; the lab's names are not in DNS, so no name check."""
    ctx = ssl.create_default_context(cafile=str(lab.dir / "pki" / "ca.pem"))
    ctx.check_hostname = False
    return ctx


def store_call(lab: RunningLab, call: Callable[[StoreClient], Any]) -> Any:
    """Run ``call`` with a store client holding EX-NY1's server certificate."""

    async def go() -> Any:
        directory = lab.open_directory()
        try:
            async with StoreClient(
                directory,
                lambda server: (ADDRESSES[server], 8444),
                ca_file=lab.dir / "pki" / "ca.pem",
                cert_files=server_cert_files(lab.dir / "pki", "EX-NY1"),
            ) as store:
                return await call(store)
        finally:
            directory.close()

    return asyncio.run(go())


def folder_count(lab: RunningLab, mailbox: str, folder: str) -> int:
    async def count(store: StoreClient) -> int:
        return (await store.get_folder(mailbox, folder)).total

    return int(store_call(lab, count))


def imap(lab: RunningLab, user: str, server: str = NY1) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(server, 993 + offset(lab), ssl_context=tls(lab), timeout=30)
    client.login(user, PASSWORD)
    return client


def pop3(lab: RunningLab, user: str, server: str = NY1) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL(server, 995 + offset(lab), context=tls(lab), timeout=30)
    client.user(user)
    client.pass_(PASSWORD)
    return client


def curl(lab: RunningLab, url: str, user: str) -> str:
    host = "ex-ny1.contoso.com"
    port = int(url.split(":")[2].split("/")[0])
    proc = subprocess.run(
        [
            "curl", "-sS", "--max-time", "30",
            "--cacert", str(lab.dir / "pki" / "ca.pem"),
            "--resolve", f"{host}:{port}:{NY1}",
            "-u", f"{user}:{PASSWORD}",
            url.replace("HOST", host),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def fetched(data: list[Any]) -> bytes:
    """The literal of imaplib's answer to a FETCH of one item."""
    first = data[0]
    assert isinstance(first, tuple) and isinstance(first[1], bytes), data
    return first[1]


def process_log(lab: RunningLab, server: str) -> str:
    return (lab.dir / "servers" / server / "process.log").read_text(errors="replace")


SUBMITTED = "<lunch-1@story2>"


# ------------------------------------------------------------------ Mail Submission


def test_a_message_submitted_from_alices_outbox_reaches_ny_and_fl_once(
    seed_lab: RunningLab,
) -> None:
    lab = seed_lab
    for fw in ("ASA-NY", "ASA-FL"):
        assert "[OK]" in lab.run("asa", fw, "-c", NO_INSPECTION).stdout
    raw = (
        b"From: Alice Ny <alice@contoso.com>\r\nTo: Bob Ny <bob@contoso.com>\r\n"
        b"Bcc: adam@contoso.com\r\nSubject: Lunch on Friday\r\n"
        b"Message-ID: " + SUBMITTED.encode() + b"\r\n\r\nSee you at noon.\r\n"
    )

    async def compose_and_submit(store: StoreClient) -> int:
        placed = await store.append("alice", "drafts", raw)
        await store.submit("alice", placed.message_id)
        return placed.message_id

    message_id = store_call(lab, compose_and_submit)

    # bob's Inbox and alice's Sent Items in NY, adam's Inbox in FL.
    # Exactly once: counted after no queue holds the message any more, and a quiet period.
    wait_for(lambda: in_mailbox(lab, "EX-NY1", "NY-DB1", SUBMITTED) >= 2, "bob and Sent", 60)
    wait_for(lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", SUBMITTED) >= 1, "adam has it")
    wait_for(lambda: not lab.queued(SUBMITTED), "no queue holds it")
    stays(lambda: once_each(lab), "bob, adam and Sent Items have it once")
    assert folder_count(lab, "alice", "sentitems") == 1
    assert folder_count(lab, "alice", "outbox") == 0
    # bob's copy does not show who else got it.
    bob = imap(lab, "bob")
    bob.select("INBOX")
    _, data = bob.fetch("1", "(BODY.PEEK[HEADER])")
    header = fetched(data)
    assert b"Lunch on Friday" in header and b"Bcc" not in header and b"adam" not in header
    bob.logout()
    # Tracked: SUBMIT on the mailbox server, the hub's RECEIVE after it.
    rows = list(read_tracking_log(lab.dir / "servers/EX-NY1/TransportRoles/Logs/MessageTracking"))
    submits = [r for r in rows if r.event_id == "SUBMIT" and r.message_id == SUBMITTED]
    assert len(submits) == 1 and submits[0].source == "STOREDRIVER"
    assert set(submits[0].recipient_address) == {"bob@contoso.com", "adam@contoso.com"}
    assert any(r.event_id == "RECEIVE" and r.message_id == SUBMITTED for r in rows)

    # Submitted a second time (back to the Outbox from Sent Items): filed, not sent again.
    async def submit_again(store: StoreClient) -> None:
        await store.submit("alice", message_id)

    store_call(lab, submit_again)
    wait_for(lambda: folder_count(lab, "alice", "outbox") == 0, "the Outbox is empty")
    wait_for(lambda: not lab.queued(SUBMITTED), "no queue holds it")
    stays(
        lambda: once_each(lab) and folder_count(lab, "alice", "sentitems") == 1,
        "still once each, one copy in Sent Items",
    )


def once_each(lab: RunningLab) -> bool:
    """bob's Inbox and alice's Sent Items (NY), adam's Inbox (FL): one copy each."""
    return (
        in_mailbox(lab, "EX-NY1", "NY-DB1", SUBMITTED) == 2
        and in_mailbox(lab, "EX-FL1", "FL-DB1", SUBMITTED) == 1
    )


# ------------------------------------------------------------------ proxied across sites


def test_adam_on_ny_cas_is_proxied_to_fl_and_reads_his_mail(seed_lab: RunningLab) -> None:
    lab = seed_lab
    client = imap(lab, "adam")
    typ, _ = client.select("INBOX", readonly=True)
    assert typ == "OK"
    _, found = client.search(None, "HEADER", "Message-ID", SUBMITTED)
    [number] = found[0].split()
    _, data = client.fetch(number, "(BODY.PEEK[])")
    assert b"See you at noon." in fetched(data)
    client.logout()

    mail = pop3(lab, "adam")
    count, _ = mail.stat()
    assert count >= 1
    assert any(b"Lunch on Friday" in b"\n".join(mail.retr(n)[1]) for n in range(1, count + 1))
    mail.quit()

    log = process_log(lab, "EX-NY1")
    assert "IMAP4 adam from" in log and "proxied to EX-FL1" in log
    assert "POP3 adam from" in log
    # EX-FL1 served both, to EX-NY1 (its address, through the two ASAs).
    assert re.search(
        r"IMAP4 adam from 127\.1\.0\.11:\d+ served locally", process_log(lab, "EX-FL1")
    )
    assert re.search(r"POP3 adam from 127\.1\.0\.11:\d+ served locally", process_log(lab, "EX-FL1"))


def test_curl_reads_adams_mail_through_ny_by_imaps_and_pop3s(seed_lab: RunningLab) -> None:
    lab = seed_lab
    o = offset(lab)
    listing = curl(lab, f"imaps://HOST:{993 + o}/INBOX?SUBJECT%20Lunch", "adam")
    [uid] = re.findall(r"\* SEARCH (\d+)", listing)
    message = curl(lab, f"imaps://HOST:{993 + o}/INBOX;UID={uid}", "adam")
    assert "Subject: Lunch on Friday" in message
    assert "See you at noon." in curl(lab, f"pop3s://HOST:{995 + o}/1", "adam")


# ------------------------------------------------------------------ served locally


def test_alice_on_ny_is_served_locally_append_store_expunge(seed_lab: RunningLab) -> None:
    lab = seed_lab
    client = imap(lab, "alice")
    assert "served locally" in process_log(lab, "EX-NY1").split("IMAP4 alice from")[-1]
    typ, data = client.append(
        "INBOX", "(\\Seen)", None, b"Message-ID: <appended@story2>\r\nSubject: note\r\n\r\nx\r\n"
    )
    assert typ == "OK" and b"APPENDUID" in data[0]
    assert in_mailbox(lab, "EX-NY1", "NY-DB1", "<appended@story2>") == 1
    client.select("INBOX")
    _, found = client.uid("SEARCH", "SUBJECT", "note")
    [uid] = found[0].split()
    _, flags = client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
    assert isinstance(flags[0], bytes)
    assert b"\\Deleted" in flags[0] and b"\\Seen" in flags[0]
    _, expunged = client.expunge()
    assert expunged[0] is not None
    assert in_mailbox(lab, "EX-NY1", "NY-DB1", "<appended@story2>") == 0
    _, after = client.uid("SEARCH", "SUBJECT", "note")
    assert after == [b""]
    client.logout()


def test_idle_tells_alice_of_new_mail(seed_lab: RunningLab) -> None:
    lab = seed_lab
    raw = socket.create_connection((NY1, 993 + offset(lab)), timeout=30)
    conn = tls(lab).wrap_socket(raw)
    reader = conn.makefile("rb")
    assert reader.readline().startswith(b"* OK")
    conn.sendall(f'a LOGIN alice "{PASSWORD}"\r\nb SELECT INBOX\r\n'.encode())
    while not reader.readline().startswith(b"b OK"):
        pass
    conn.sendall(b"c IDLE\r\n")
    assert reader.readline().startswith(b"+ ")

    async def deliver(store: StoreClient) -> None:
        message = b"Message-ID: <idle@story2>\r\nSubject: ping\r\n\r\nping\r\n"
        await store.deliver("alice", "story2:idle", message)

    store_call(lab, deliver)
    assert re.match(rb"\* \d+ EXISTS", reader.readline())
    conn.sendall(b"DONE\r\nd LOGOUT\r\n")
    assert reader.readline().startswith(b"c OK")
    conn.close()


# ------------------------------------------------------------------ refusals


def test_wrong_password_is_refused_by_imap_and_pop3(seed_lab: RunningLab) -> None:
    lab = seed_lab
    client = imaplib.IMAP4_SSL(NY1, 993 + offset(lab), ssl_context=tls(lab), timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="LOGIN failed"):
        client.login("adam", "wrong")
    client.logout()
    mail = poplib.POP3_SSL(NY1, 995 + offset(lab), context=tls(lab), timeout=30)
    mail.user("CONTOSO\\adam")
    with pytest.raises(poplib.error_proto, match="Logon failure"):
        mail.pass_("wrong")
    mail.quit()


def test_plain_text_login_before_tls_is_refused(seed_lab: RunningLab) -> None:
    lab = seed_lab
    client = imaplib.IMAP4(NY1, 143 + offset(lab), timeout=30)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="Command received in Invalid state"):
        client.login("alice", PASSWORD)
    client.starttls(ssl_context=tls(lab))
    assert client.login("alice@contoso.com", PASSWORD)[0] == "OK"
    client.logout()

    mail = poplib.POP3(NY1, 110 + offset(lab), timeout=30)
    assert "USER" not in mail.capa() and "STLS" in mail.capa()
    with pytest.raises(poplib.error_proto, match="Command is not valid in this state"):
        mail.user("alice")
    mail.stls(context=tls(lab))
    mail.user("alice")
    assert mail.pass_(PASSWORD).startswith(b"+OK")
    mail.quit()


def test_pop3_uidl_is_stable_across_sessions(seed_lab: RunningLab) -> None:
    lab = seed_lab

    def uidls() -> dict[bytes, bytes]:
        mail = pop3(lab, "bob")
        _, lines, _ = mail.uidl()
        mail.quit()
        return {line.split()[1]: line.split()[0] for line in lines}

    first = uidls()
    assert first

    async def deliver(store: StoreClient) -> None:
        await store.deliver("bob", "story2:uidl", b"Subject: another\r\n\r\nmore\r\n")

    store_call(lab, deliver)
    second = uidls()
    assert len(second) == len(first) + 1
    assert set(first) <= set(second)  # the same unique ids, for the same messages
    assert all(second[uid] == number for uid, number in first.items())


def test_pop3_dele_removes_the_message_at_quit(seed_lab: RunningLab) -> None:
    lab = seed_lab
    mail = pop3(lab, "bob")
    count, _ = mail.stat()
    mail.dele(count)
    mail.quit()
    mail = pop3(lab, "bob")
    assert mail.stat()[0] == count - 1
    mail.quit()


# ------------------------------------------------------------------ Debian's mail clients


def run_client(command: list[str], *, stdin: bytes = b"", home: Path | None = None) -> str:
    proc = subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        timeout=90,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home or Path.cwd()), "LANG": "C.UTF-8"},
    )
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode == 0, f"{command[0]} exited {proc.returncode}: {out}"
    return out


def private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)  # fetchmail and msmtp refuse a password file others can read
    return path


def test_debian_mail_clients_send_through_ny_and_read_adams_mail_through_ny(
    seed_lab: RunningLab, tmp_path: Path
) -> None:
    # GnuTLS (msmtp, mutt) and OpenSSL (fetchmail, mbsync) clients as users set them up
    # against Exchange: submission with STARTTLS and AUTH LOGIN on the Client connector,
    # POP3 with STLS and IMAP4 over TLS on NY's Client Access server, proxied to FL.
    lab, port = seed_lab, offset(seed_lab)
    ca = lab.dir / "pki" / "ca.pem"
    msmtprc = private_file(
        tmp_path / "msmtprc",
        f"account bob\nhost {NY1}\nport {587 + port}\nfrom bob@contoso.com\nauth login\n"
        f"user bob\npassword {PASSWORD}\ntls on\ntls_starttls on\ntls_trust_file {ca}\n"
        "tls_host_override ex-ny1.contoso.com\n",
    )
    run_client(
        ["msmtp", "-C", str(msmtprc), "-a", "bob", "adam@contoso.com"],
        stdin=b"From: bob@contoso.com\r\nTo: adam@contoso.com\r\nSubject: sent with msmtp\r\n"
        b"Message-ID: <msmtp@story2>\r\n\r\nFrom Debian's msmtp.\r\n",
    )
    # mutt asks SASL, which would try NTLM first (Exchange offers it; sitemail does not):
    # users of Exchange set smtp_authenticators to LOGIN for a Basic-authentication connector.
    muttrc = private_file(
        tmp_path / "muttrc",
        f'set smtp_url="smtp://alice@{NY1}:{587 + port}/"\nset smtp_pass="{PASSWORD}"\n'
        f'set ssl_starttls=yes\nset ssl_force_tls=yes\nset ssl_ca_certificates_file="{ca}"\n'
        'set ssl_verify_host=no\nset smtp_authenticators="login"\nset from="alice@contoso.com"\n'
        'set use_from=yes\nset record=""\n',
    )
    run_client(
        ["mutt", "-n", "-F", str(muttrc), "-s", "sent with mutt", "--", "adam@contoso.com"],
        stdin=b"From Debian's mutt.\n",
        home=tmp_path,
    )
    wait_for(lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", "<msmtp@story2>") == 1, "msmtp's", 60)
    wait_for(lambda: b"sent with mutt" in adams_subjects(lab), "mutt's message in FL", 60)

    mbox = tmp_path / "fetched.mbox"
    fetchmailrc = private_file(
        tmp_path / "fetchmailrc",
        f"set no syslog\npoll {NY1} port {110 + port} protocol pop3 timeout 30\n"
        f'  user "adam" password "{PASSWORD}" is "root" here\n'
        f"  sslproto tls1.2+ sslcertck sslcertfile {ca} sslcommonname ex-ny1.contoso.com\n"
        f"  keep\n  mda \"/bin/sh -c 'cat >> {mbox}'\"\n",
    )
    run_client(["fetchmail", "-f", str(fetchmailrc), "--nodetach"], home=tmp_path)
    fetched_mail = mbox.read_bytes()
    assert (
        b"Subject: sent with msmtp" in fetched_mail and b"Subject: sent with mutt" in fetched_mail
    )

    # mbsync checks the certificate's name against the host it dials; a certificate
    # given in CertificateFile is trusted as it is (how users pin an Exchange certificate).
    maildir = tmp_path / "maildir"
    maildir.mkdir()
    mbsyncrc = private_file(
        tmp_path / "mbsyncrc",
        f"IMAPAccount adam\nHost {NY1}\nPort {993 + port}\nUser adam\nPass {PASSWORD}\n"
        f"SSLType IMAPS\nCertificateFile {lab.dir / 'pki' / 'EX-NY1.pem'}\n\n"
        "IMAPStore adam-remote\nAccount adam\n\n"
        f"MaildirStore adam-local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n"
        "Channel adam\nFar :adam-remote:\nNear :adam-local:\nPatterns INBOX\nCreate Near\n"
        "Sync Pull\nSyncState *\n",
    )
    run_client(["mbsync", "-c", str(mbsyncrc), "adam"], home=tmp_path)
    synced = b"".join(p.read_bytes() for p in (maildir / "INBOX").rglob("*") if p.is_file())
    assert b"Subject: sent with msmtp" in synced and b"Subject: sent with mutt" in synced
    assert synced.count(b"\nSubject: ") == adams_subjects(lab).count(b"\n")  # the whole Inbox


def adams_subjects(lab: RunningLab) -> bytes:
    """The subjects in adam's Inbox, a line each, read through NY's IMAP4 proxy."""
    client = imap(lab, "adam")
    try:
        client.select("INBOX", readonly=True)
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return b"".join(b"\n" + item[1].strip() for item in data if isinstance(item, tuple))
    finally:
        client.logout()


# ------------------------------------------------------------------ DavMail (EWS mode)


def test_davmail_reads_and_sends_adams_mail_through_ews_proxied_by_ny(
    seed_lab: RunningLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DavMail signs in at NY's EWS (the mailbox is in FL: every call is proxied), learns
    # adam's address with ConvertId, lists his folders with a restriction on
    # PR_CONTAINER_CLASS, reads messages by their IMAP UID (PR_INTERNET_ARTICLE_NUMBER) and
    # MimeContent, and sends with CreateItem SendAndSaveCopy; its CalDAV and CardDAV write
    # adam's calendar and contacts through EWS (issue 19: the appointment is busy time at NY).
    lab = seed_lab
    lab.shell(
        'Set-WebServicesVirtualDirectory "EX-NY1\\EWS (Default Web Site)"'
        " -BasicAuthentication $true"
    )
    ews = f"https://mail.contoso.com:{443 + offset(lab)}/EWS/Exchange.asmx"
    with davmail(
        tmp_path / "davmail",
        ca_file=lab.dir / "pki" / "ca.pem",
        ews_url=ews,
        names={"mail.contoso.com": NY1},
    ) as gateway:
        client = imaplib.IMAP4(gateway.host, gateway.imap_port, timeout=60)
        client.login("adam@contoso.com", PASSWORD)
        _, listed = client.list()
        names = {line.decode().rsplit('"/" ', 1)[1].strip('"') for line in listed if line}
        assert {"INBOX", "Sent", "Drafts", "Trash"} <= names
        _, count = client.select("INBOX")
        _, data = client.fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = b"".join(item[1] for item in data if isinstance(item, tuple))
        assert b"Subject: sent with msmtp" in subjects, subjects
        assert int(count[0]) == adams_subjects(lab).count(b"\n")  # the whole Inbox
        uid_line = next(item[0] for item in data if isinstance(item, tuple))
        uid = re.search(rb"UID (\d+)", uid_line)
        assert uid is not None
        _, body = client.uid("FETCH", uid.group(1), "(BODY[])")
        raw = fetched(body)
        assert raw.startswith(b"Received: ") and b"\r\nMessage-ID: " in raw  # the MIME as stored
        client.logout()

        smtp = smtplib.SMTP(gateway.host, gateway.smtp_port, timeout=60)
        smtp.login("adam@contoso.com", PASSWORD)
        smtp.sendmail(
            "adam@contoso.com",
            ["bob@contoso.com"],
            b"From: adam@contoso.com\r\nTo: bob@contoso.com\r\nSubject: sent with DavMail\r\n"
            b"Message-ID: <davmail@story2>\r\n\r\nThrough DavMail and EWS.\r\n",
        )
        smtp.quit()

        # CalDAV: an appointment PUT through DavMail is created by EWS in adam's calendar in
        # FL (CreateItem from its iCalendar), found again by its name, and read back.
        event = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//sitemail tests//EN\r\n"
            "BEGIN:VEVENT\r\nUID:davmail-budget@contoso.com\r\nDTSTAMP:20261207T050000Z\r\n"
            "DTSTART:20301007T140000Z\r\nDTEND:20301007T153000Z\r\n"
            "SUMMARY:Budget review (CalDAV)\r\nLOCATION:Tampa\r\nTRANSP:OPAQUE\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        dav = gateway.caldav_url("adam@contoso.com")
        auth = ("adam@contoso.com", PASSWORD)
        put = requests.put(
            dav + "budget.ics", data=event.encode(), auth=auth, timeout=60,
            headers={"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
        )  # fmt: skip
        assert put.status_code == 201, put.text
        got = requests.get(dav + "budget.ics", auth=auth, timeout=60)
        assert got.status_code == 200 and "SUMMARY:Budget review (CalDAV)" in got.text
        assert "BEGIN:VTIMEZONE" in got.text and "UID:davmail-budget@contoso.com" in got.text
        # CardDAV: a contact PUT through DavMail is a Contact of adam's Contacts folder.
        card = (
            "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:davmail-carol\r\nFN:Carol Fabrikam\r\n"
            "N:Fabrikam;Carol;;;\r\nEMAIL;TYPE=work:carol@fabrikam.com\r\nORG:Fabrikam\r\n"
            "END:VCARD\r\n"
        )
        contacts = gateway.caldav_url("adam@contoso.com", "contacts")
        put = requests.put(
            contacts + "carol.vcf", data=card.encode(), auth=auth, timeout=60,
            headers={"Content-Type": "text/vcard; charset=utf-8"},
        )  # fmt: skip
        assert put.status_code == 201, put.text
        got = requests.get(contacts + "carol.vcf", auth=auth, timeout=60)
        assert got.status_code == 200 and "EMAIL;TYPE=work:carol@fabrikam.com" in got.text
    wait_for(lambda: bob_has(lab, b"sent with DavMail"), "DavMail's message at bob (NY)", 60)

    # The appointment is busy time when alice asks NY's availability service about adam.
    monkeypatch.setattr(MappedConnection, "names", {"mail.contoso.com": NY1})
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", LabNamesAdapter)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.dir / "pki" / "ca.pem"))
    config = Configuration(
        service_endpoint=ews,
        credentials=Credentials("contoso\\alice", PASSWORD),
        auth_type=BASIC,
        version=Version(build=Build(14, 3, 123, 4)),
    )
    alice = Account("alice@contoso.com", config=config, autodiscover=False, access_type=DELEGATE)
    utc = EWSTimeZone("UTC")
    (view,) = alice.protocol.get_free_busy_info(
        accounts=[("adam@contoso.com", "Required", False)],
        start=EWSDateTime(2030, 10, 7, 8, tzinfo=utc),
        end=EWSDateTime(2030, 10, 7, 18, tzinfo=utc),
        merged_free_busy_interval=30,
        requested_view="FreeBusy",
    )
    busy = [(e.start.hour, e.start.minute, e.end.hour, e.end.minute, e.busy_type)
            for e in view.calendar_events or []]  # fmt: skip
    assert busy == [(14, 0, 15, 30, "Busy")]
    # And OWA's calendar shows it in Chromium, adam signed in at NY (proxied to FL).
    owa_day_view_shows(lab, "Budget review (CalDAV)", "2030-10-07")


def owa_day_view_shows(lab: RunningLab, subject: str, day: str) -> None:
    from playwright.sync_api import sync_playwright
    from tests.scenarios.test_story2_owa import ARTIFACTS, CHROMIUM, chromium_args

    rules = f"MAP mail.contoso.com {NY1}, MAP * ~NOTFOUND"
    port = 443 + offset(lab)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=chromium_args(lab.dir / "pki" / "ca.pem", rules)
        )
        try:
            page = browser.new_page()
            page.goto(f"https://mail.contoso.com:{port}/owa/")
            page.get_by_label("Domain\\user name:").fill("contoso\\adam")
            page.get_by_label("Password:").fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in").click()
            page.goto(
                f"https://mail.contoso.com:{port}/owa/?ae=Folder&t=IPF.Appointment&vt=Day&d={day}"
            )
            assert subject in page.content()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "davmail-appointment-in-owa.png"), full_page=True)
        finally:
            browser.close()


def bob_has(lab: RunningLab, subject: bytes) -> bool:
    client = imap(lab, "bob")
    try:
        client.select("INBOX", readonly=True)
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return any(isinstance(item, tuple) and subject in item[1] for item in data)
    finally:
        client.logout()
