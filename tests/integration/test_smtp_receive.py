"""Receive connectors of a running lab, driven by real clients (swaks, smtplib, curl).

Issue 3: banner and EHLO as Exchange 2010 shows them, permissions with
Exchange's replies, STARTTLS/AUTH LOGIN, X-ANONYMOUSTLS + X-EXPS with the
organization's certificates, durable acceptance, protocol logs, and
connector changes that apply without a restart.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.conftest import RunningLab, find_message, in_mailbox, stays, wait_for

from sitemail.mailflow.exchange_auth import make_blob
from sitemail.org.directory import open_directory
from sitemail.org.model import ReceiveConnector
from sitemail.org.pki import (
    admin_cert_files,
    anonymous_tls_client_context,
    client_ssl_context,
    server_cert_files,
)

pytestmark = pytest.mark.lab

NY1, FL1, INTERNET = "127.1.0.11", "127.2.0.11", "127.99.0.11"
PASSWORD = "Pa55word!"
TOO_BIG = (552, "5.3.4 Message size exceeds fixed maximum message size")


# ------------------------------------------------------------------ helpers


def set_connector(lab: RunningLab, identity: str, **changes: object) -> None:
    """What Set-ReceiveConnector does: change the object in the directory."""
    d = open_directory(str(lab.dir / "directory.db"))
    try:
        rc = d.require(ReceiveConnector, identity)
        d.put(ReceiveConnector.model_validate({**rc.model_dump(), **changes}))
    finally:
        d.close()
    time.sleep(1.2)  # the servers poll the directory every 0.5 s


def accepted(lab: RunningLab, message_id: str) -> bytes:
    """The message as the organization holds it (queued or delivered); fails if nowhere."""
    for _ in range(50):
        found = find_message(lab, message_id)
        if found is not None:
            return found
        time.sleep(0.1)  # between a queue's removal and the mailbox's commit
    raise AssertionError(f"{message_id} was acknowledged but is nowhere in the lab")


def smtp(host: str, port: int = 25, source: str | None = None) -> smtplib.SMTP:
    return smtplib.SMTP(host, port, timeout=15, source_address=(source, 0) if source else None)


def ca(lab: RunningLab) -> ssl.SSLContext:
    return client_ssl_context(lab.dir / "pki" / "ca.pem")


@pytest.fixture(scope="module")
def lab(seed_lab: RunningLab) -> Iterator[RunningLab]:
    # Failing replies to anonymous sessions are tarpitted 5 s by default; the tests that
    # do not measure the tarpit make it short so that the suite stays quick.
    for identity in ("EX-FL1\\Default EX-FL1", "EX-NY1\\Internet EX-NY1", "EX-FL1\\Client EX-FL1"):
        set_connector(seed_lab, identity, tarpit_interval=0)
    yield seed_lab


# ---------------------------------------------------------------- greeting


def test_banner_and_ehlo_are_exchange_2010s(lab: RunningLab) -> None:
    with smtp(FL1) as s:
        code, text = s.ehlo("ex-ny1.contoso.com")
        assert code == 250
        lines = text.decode().splitlines()
    assert lines == [
        "ex-fl1.contoso.com Hello [127.0.0.1]",
        "SIZE",
        "PIPELINING",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "X-ANONYMOUSTLS",
        "AUTH NTLM",
        "X-EXPS GSSAPI NTLM",
        "8BITMIME",
        "BINARYMIME",
        "CHUNKING",
        "XEXCH50",
        "XRDST",
        "XSHADOW",
    ]


def test_raw_banner_format(lab: RunningLab) -> None:
    with socket.create_connection((FL1, 587), timeout=10) as sock:
        banner = sock.makefile("rb").readline().decode()
    assert banner.startswith("220 ex-fl1.contoso.com Microsoft ESMTP MAIL Service ready at ")
    assert banner.endswith("\r\n")


# ------------------------------------------------------------- permissions


def test_anonymous_mail_on_the_default_connector_is_not_authenticated(lab: RunningLab) -> None:
    with smtp(FL1) as s:
        s.ehlo("client.example")
        code, text = s.mail("someone@fabrikam.com")
        assert (code, text.decode()) == (530, "5.7.1 Client was not authenticated")
        # Exchange closes the session after this reply.
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.noop()


def test_no_default_connector_relays_for_anonymous_senders(lab: RunningLab) -> None:
    # EX-NY1's Internet connector takes anonymous mail from the Internet, for us only.
    with smtp(NY1, source=INTERNET) as s:
        s.ehlo("mail.fabrikam.com")
        assert s.mail("carol@fabrikam.com")[0] == 250
        code, text = s.rcpt("someone@example.org")
        assert (code, text.decode()) == (550, "5.7.1 Unable to relay")
        assert s.rcpt("alice@contoso.com")[0] == 250
        # An anonymous sender may not claim to be one of ours.
    with smtp(NY1, source=INTERNET) as s:
        s.ehlo("mail.fabrikam.com")
        assert s.mail("alice@contoso.com")[0] == 250  # AnonymousUsers has AcceptAnySender


def test_ntlm_is_advertised_but_answered_honestly(lab: RunningLab) -> None:
    with smtp(FL1, 587) as s:
        s.ehlo("client.example")
        code, text = s.docmd(
            "AUTH", "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw=="
        )
        assert (code, text.decode()) == (454, "4.7.0 Temporary authentication failure")


def test_auth_login_needs_tls_first_on_basicauthrequiretls(lab: RunningLab) -> None:
    with smtp(FL1, 587) as s:
        s.ehlo("client.example")
        assert "LOGIN" not in s.esmtp_features.get("auth", "")
        code, _ = s.docmd("AUTH", "LOGIN")
        assert code == 504


# ---------------------------------------------------- real clients submit mail


def test_smtplib_starttls_login_and_send_is_queued_durably(lab: RunningLab) -> None:
    with smtp(FL1, 587) as s:
        s.ehlo("client.example")
        s.starttls(context=_ca_no_hostname(lab))
        s.ehlo("client.example")
        assert "LOGIN" in s.esmtp_features["auth"]
        s.login("adam", PASSWORD)
        msg = "Subject: hello from smtplib\r\nMessage-ID: <smtplib-1@test>\r\n\r\nBody\r\n"
        s.sendmail("adam@contoso.com", ["alice@contoso.com"], msg)
    assert accepted(lab, "<smtplib-1@test>")


def test_wrong_password_is_refused_with_exchanges_text(lab: RunningLab) -> None:
    with smtp(FL1, 587) as s:
        s.ehlo("client.example")
        s.starttls(context=_ca_no_hostname(lab))
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            s.login("adam", "wrong")
        assert info.value.smtp_code == 535
        assert info.value.smtp_error.decode() == "5.7.3 Authentication unsuccessful"


def test_authenticated_users_may_only_send_as_themselves(lab: RunningLab) -> None:
    with smtp(FL1, 587) as s:
        s.ehlo("client.example")
        s.starttls(context=_ca_no_hostname(lab))
        s.ehlo("client.example")
        s.login("adam@contoso.com", PASSWORD)
        code, text = s.mail("alice@contoso.com")
        assert (code, text.decode()) == (
            550,
            "5.7.1 Client does not have permissions to send as this sender",
        )


def _ca_no_hostname(lab: RunningLab) -> ssl.SSLContext:
    ctx = ca(lab)
    ctx.check_hostname = False  # we connect by address; the chain is still checked
    return ctx


def test_swaks_starttls_auth_login_with_pipelining(lab: RunningLab) -> None:
    proc = subprocess.run(
        [
            "swaks", "--server", f"{FL1}:587", "-tls", "--pipeline",
            "--auth", "LOGIN", "--auth-user", "adam", "--auth-password", PASSWORD,
            "--from", "adam@contoso.com", "--to", "fiona@contoso.com",
            "--header", "Message-Id: <swaks-pipe@test>",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "250 2.6.0 <swaks-pipe@test> [InternalId=" in proc.stdout
    assert "Queued mail for delivery" in proc.stdout
    assert accepted(lab, "<swaks-pipe@test>")


def test_swaks_without_tls_on_a_tls_connector_gets_no_login(lab: RunningLab) -> None:
    proc = subprocess.run(
        [
            "swaks", "--server", f"{FL1}:587", "--auth", "LOGIN",
            "--auth-user", "adam", "--auth-password", PASSWORD, "--to", "alice@contoso.com",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # swaks: "Host did not advertise authentication" (exit 28).
    assert proc.returncode == 28, proc.stdout + proc.stderr


def test_curl_smtps_submission(lab: RunningLab, tmp_path: Path) -> None:
    mail = tmp_path / "mail.txt"
    mail.write_text("Subject: from curl\r\nMessage-ID: <curl-1@test>\r\n\r\nHello\r\n")
    proc = subprocess.run(
        [
            "curl", "-sS", "--url", f"smtp://{FL1}:587", "--ssl-reqd",
            "--cacert", str(lab.dir / "pki" / "ca.pem"),
            "--mail-from", "adam@contoso.com", "--mail-rcpt", "alice@contoso.com",
            "--user", f"adam:{PASSWORD}", "--login-options", "AUTH=LOGIN", "-T", str(mail),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert accepted(lab, "<curl-1@test>")


# ----------------------------------------------------- the message itself


def _raw(host: str, port: int, source: str | None = None) -> tuple[socket.socket, object]:
    sock = socket.create_connection((host, port), timeout=15, source_address=(source, 0))
    return sock, sock.makefile("rb")


def _reply(f: object) -> str:
    lines = []
    while True:
        line = f.readline().decode()  # type: ignore[attr-defined]
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return "".join(lines)


def test_bdat_chunks_are_accepted_and_joined(lab: RunningLab) -> None:
    sock, f = _raw(NY1, 25, INTERNET)
    with sock:
        _reply(f)
        sock.sendall(b"EHLO mail.fabrikam.com\r\n")
        assert "CHUNKING" in _reply(f)
        sock.sendall(
            b"MAIL FROM:<carol@fabrikam.com> BODY=BINARYMIME\r\nRCPT TO:<bob@contoso.com>\r\n"
        )
        assert _reply(f).startswith("250 2.1.0")
        assert _reply(f).startswith("250 2.1.5")
        part1 = b"Message-ID: <bdat-1@test>\r\nSubject: chunks\r\n\r\nfirst "
        part2 = b"second\r\n\x00\xff binary\r\n"
        sock.sendall(b"BDAT %d\r\n" % len(part1) + part1)
        assert _reply(f).startswith("250")
        sock.sendall(b"BDAT %d LAST\r\n" % len(part2) + part2)
        assert "<bdat-1@test> [InternalId=" in _reply(f)
        sock.sendall(b"QUIT\r\n")
    body = accepted(lab, "<bdat-1@test>")
    assert body.endswith(b"first second\r\n\x00\xff binary\r\n")
    assert body.startswith(b"Received: from mail.fabrikam.com (127.99.0.11) by ex-ny1.contoso.com")


def test_data_after_bdat_and_a_lone_bdat_0_last_are_refused(lab: RunningLab) -> None:
    # RFC 3030 §2, with smtplib sending the raw commands.
    with smtp(NY1, 25, INTERNET) as s:
        s.ehlo("mail.fabrikam.com")
        assert s.docmd("MAIL FROM:<carol@fabrikam.com>")[0] == 250
        assert s.docmd("RCPT TO:<bob@contoso.com>")[0] == 250
        s.send(b"BDAT 5\r\nfirst")
        assert s.getreply()[0] == 250
        assert s.docmd("DATA") == (503, b"5.5.1 Data command not allowed after BDAT")
        assert s.docmd("RSET")[0] == 250
        assert s.docmd("MAIL FROM:<carol@fabrikam.com>")[0] == 250
        assert s.docmd("RCPT TO:<bob@contoso.com>")[0] == 250
        assert s.docmd("BDAT 0 LAST") == (503, b"5.5.1 No message data received")
        assert s.docmd("NOOP")[0] == 250
        # A chunk before MAIL or RCPT is read and refused, not taken.
        assert s.docmd("RSET")[0] == 250
        s.send(b"BDAT 5\r\nfirst")
        assert s.getreply() == (503, b"5.5.2 Need mail command")
        assert s.docmd("MAIL FROM:<carol@fabrikam.com>")[0] == 250
        s.send(b"BDAT 5\r\nfirst")
        assert s.getreply() == (503, b"5.5.2 Need rcpt command")
        assert s.docmd("NOOP")[0] == 250


def test_smtp_smuggling_never_ends_data(lab: RunningLab) -> None:
    sock, f = _raw(NY1, 25, INTERNET)
    with sock:
        _reply(f)
        sock.sendall(b"EHLO mail.fabrikam.com\r\n")
        _reply(f)
        sock.sendall(b"MAIL FROM:<carol@fabrikam.com>\r\nRCPT TO:<bob@contoso.com>\r\nDATA\r\n")
        _reply(f), _reply(f)
        assert _reply(f).startswith("354")
        smuggled = (
            b"Message-ID: <smuggle-1@test>\r\n\r\nhello\n.\nMAIL FROM:<evil@x>\r\n"
            b"\r.\rRCPT TO:<x@y>\r\n\n.\r\nDATA\r\n.\r\n"
        )
        sock.sendall(smuggled)
        assert "<smuggle-1@test>" in _reply(f)
        sock.sendall(b"QUIT\r\n")
        assert _reply(f).startswith("221")
    assert b"\n.\nMAIL FROM:<evil@x>" in accepted(lab, "<smuggle-1@test>")


def test_header_firewall_strips_organization_headers_from_anonymous_senders(
    lab: RunningLab,
) -> None:
    with smtp(NY1, source=INTERNET) as s:
        s.ehlo("mail.fabrikam.com")
        s.sendmail(
            "carol@fabrikam.com",
            ["bob@contoso.com"],
            "X-MS-Exchange-Organization-AuthAs: Internal\r\n"
            "Message-ID: <firewall-1@test>\r\nSubject: spoof\r\n\r\nbody\r\n",
        )
    body = accepted(lab, "<firewall-1@test>")
    assert b"X-MS-Exchange-Organization-AuthAs: Anonymous" in body
    assert b"AuthAs: Internal" not in body


def test_oversize_message_is_refused_with_exchanges_reply(lab: RunningLab) -> None:
    with smtp(NY1, source=INTERNET) as s:
        s.ehlo("mail.fabrikam.com")
        code, text = s.docmd("MAIL", "FROM:<carol@fabrikam.com> SIZE=20000000")
        assert (code, text.decode()) == (
            552,
            "5.3.4 Message size exceeds fixed maximum message size",
        )
        assert s.mail("carol@fabrikam.com")[0] == 250
        assert s.rcpt("bob@contoso.com")[0] == 250
        code, _ = s.docmd("DATA")
        assert code == 354
        s.send(b"Subject: big\r\n\r\n")
        chunk = b"x" * 998 + b"\r\n"
        for _ in range(11 * 1024):
            s.send(chunk)
        code, text = s.docmd(".")
        assert (code, text.decode()) == (
            552,
            "5.3.4 Message size exceeds fixed maximum message size",
        )
        assert s.noop()[0] == 250


def test_overlong_command_line_is_refused(lab: RunningLab) -> None:
    with smtp(FL1) as s:
        s.ehlo("client.example")
        code, _ = s.docmd("NOOP", "a" * 600)
        assert code == 500


# ------------------------------------------------ Exchange Server authentication


def _x_exps(lab: RunningLab, cert_of: str) -> tuple[int, str, str]:
    """X-ANONYMOUSTLS, EHLO, X-EXPS EXCHANGEAUTH presenting ``cert_of``'s certificate."""
    pki = lab.dir / "pki"
    files = admin_cert_files(pki) if cert_of == "admin" else server_cert_files(pki, cert_of)
    with smtp(FL1, source=NY1) as s:
        s.ehlo("ex-ny1.contoso.com")
        code, _ = s.docmd("X-ANONYMOUSTLS")
        assert code == 220
        s.sock = anonymous_tls_client_context(files).wrap_socket(s.sock)
        s.file = None
        s.ehlo("ex-ny1.contoso.com")
        ehlo = s.ehlo_resp.decode()
        blob = make_blob(cert_of, "ex-fl1.contoso.com")
        code, text = s.docmd("X-EXPS", f"EXCHANGEAUTH SHA256 {blob}")
        return code, text.decode(), ehlo


def test_a_hub_of_the_organization_passes_exchange_server_authentication(
    lab: RunningLab,
) -> None:
    code, text, ehlo = _x_exps(lab, "EX-NY1")
    assert "X-EXPS EXCHANGEAUTH GSSAPI NTLM" in ehlo and "X-EXCHANGEAUTH SHA256" in ehlo
    assert "AUTH NTLM LOGIN" in ehlo
    assert "STARTTLS" not in ehlo and "X-ANONYMOUSTLS" not in ehlo
    assert code == 235
    assert base64.b64decode(text)  # the mutual authentication blob


def test_the_admin_certificate_is_not_an_exchange_server(lab: RunningLab) -> None:
    code, text, _ = _x_exps(lab, "admin")
    assert (code, text) == (535, "5.7.3 Authentication unsuccessful")


# ------------------------------------------- configuration, logs, durability


def test_connector_changes_apply_without_a_restart(lab: RunningLab) -> None:
    set_connector(lab, "EX-FL1\\Client EX-FL1", remote_ip_ranges=["127.5.0.0/16"])
    try:
        with socket.create_connection((FL1, 587), timeout=10, source_address=(NY1, 0)) as sock:
            # No connector covers the client: no banner, the connection is closed.
            assert sock.recv(100) == b""
    finally:
        set_connector(lab, "EX-FL1\\Client EX-FL1", remote_ip_ranges=["0.0.0.0-255.255.255.255"])
    with socket.create_connection((FL1, 587), timeout=10, source_address=(NY1, 0)) as sock:
        assert sock.recv(100).startswith(b"220 ")


def test_new_binding_listens_without_a_restart(lab: RunningLab) -> None:
    d = open_directory(str(lab.dir / "directory.db"))
    try:
        d.put(
            ReceiveConnector(
                server="EX-FL1",
                name="Relay EX-FL1",
                bindings=["0.0.0.0:2525"],
                remote_ip_ranges=["127.1.0.0/16"],
                banner="220 Relay ready",
                tarpit_interval=0,
            )
        )
    finally:
        d.close()
    time.sleep(1.2)
    offset = lab.status()["port_offset"]
    with socket.create_connection((FL1, 2525 + offset), timeout=10, source_address=(NY1, 0)) as s:
        assert s.recv(100) == b"220 Relay ready\r\n"


def test_slow_client_times_out_with_exchanges_reply(lab: RunningLab) -> None:
    set_connector(lab, "EX-FL1\\Client EX-FL1", connection_inactivity_timeout=2)
    try:
        with socket.create_connection((FL1, 587), timeout=10) as sock:
            f = sock.makefile("rb")
            f.readline()
            start = time.monotonic()
            assert f.readline() == b"451 4.7.0 Timeout waiting for client input\r\n"
            assert time.monotonic() - start >= 1.5
            assert f.readline() == b""
    finally:
        set_connector(lab, "EX-FL1\\Client EX-FL1", connection_inactivity_timeout=300)


def test_tarpit_delays_failing_replies_to_anonymous_sessions(lab: RunningLab) -> None:
    set_connector(lab, "EX-FL1\\Default EX-FL1", tarpit_interval=1)
    try:
        with smtp(FL1) as s:
            s.ehlo("client.example")
            start = time.monotonic()
            assert s.mail("x@fabrikam.com")[0] == 530
            assert time.monotonic() - start >= 0.9
    finally:
        set_connector(lab, "EX-FL1\\Default EX-FL1", tarpit_interval=0)


def test_verbose_protocol_log_is_written_in_exchange_format(lab: RunningLab) -> None:
    set_connector(lab, "EX-FL1\\Default EX-FL1", protocol_logging_level="Verbose")
    try:
        with smtp(FL1, source=NY1) as s:
            s.ehlo("ex-ny1.contoso.com")
            s.mail("x@fabrikam.com")
    finally:
        set_connector(lab, "EX-FL1\\Default EX-FL1", protocol_logging_level="None")
    folder = lab.dir / "servers" / "EX-FL1" / "TransportRoles" / "Logs" / "ProtocolLogs"
    files = sorted((folder / "SmtpReceive").glob("RECV*-*.LOG"))
    assert files, "no SmtpReceive log file"
    text = files[-1].read_text()
    lines = text.splitlines()
    assert lines[0] == "#Software: Microsoft Exchange Server"
    assert lines[1] == "#Version: 14.0.0.0"
    assert lines[2] == "#Log-type: SMTP Receive Protocol Log"
    assert lines[4] == (
        "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
        "remote-endpoint,event,data,context"
    )
    rows = [r for r in lines if "EX-FL1\\Default EX-FL1" in r]
    assert rows[0].endswith(",+,,")
    assert rows[1].endswith(",*,,Set Session Permissions")  # anonymous: no rights at all
    assert any(",<,ehlo ex-ny1.contoso.com," in r.lower() for r in rows)
    assert any(",>,250-XSHADOW," in r or ",>,250 XSHADOW," in r for r in rows)
    assert any(",>,530 5.7.1 Client was not authenticated," in r for r in rows)
    assert rows[-1].endswith(",-,,Local")
    for r in rows:
        assert f",{FL1}:25,{NY1}:" in r


# The message waits in EX-NY1's suspended Submission queue while the transport stops, so
# what is delivered afterwards can only have come out of the queue the restart found.

SUBMISSION = "EX-NY1\\Submission"


@contextmanager
def submission_held(lab: RunningLab) -> Iterator[None]:
    """EX-NY1 accepts mail but categorizes (and so delivers) none until the block ends."""
    lab.run("shell", "-c", f"Suspend-Queue -Identity {SUBMISSION}")
    try:
        yield
    finally:
        lab.run("shell", "-c", f"Resume-Queue -Identity {SUBMISSION}")


def queued(lab: RunningLab, message_id: str) -> list[str]:
    """The identities (SERVER\\queue\\number) of the message in EX-NY1's queues (Get-Message)."""
    messages = lab.shell("Get-Message -Server EX-NY1")
    return [str(m["Identity"]) for m in messages if m["InternetMessageId"] == message_id]


def send_held_message(lab: RunningLab, message_id: str) -> str:
    """Send a message for bob, see it in the suspended Submission queue and nowhere else;
    its identity there."""
    with smtp(NY1, source=INTERNET) as s:
        s.ehlo("mail.fabrikam.com")
        s.sendmail(
            "carol@fabrikam.com", ["bob@contoso.com"], f"Message-ID: {message_id}\r\n\r\nbody\r\n"
        )
    [identity] = queued(lab, message_id)
    assert identity.startswith(SUBMISSION + "\\")
    assert in_mailbox(lab, "EX-NY1", "NY-DB1", message_id) == 0
    return identity


def delivered_once_from_the_queue(lab: RunningLab, message_id: str, identity: str) -> None:
    """After the restart: the same queued message, delivered once the queue resumes, once."""
    assert queued(lab, message_id) == [identity], "the restart lost the queued message"
    assert in_mailbox(lab, "EX-NY1", "NY-DB1", message_id) == 0
    lab.run("shell", "-c", f"Resume-Queue -Identity {SUBMISSION}")

    def delivered() -> bool:
        return in_mailbox(lab, "EX-NY1", "NY-DB1", message_id) >= 1 and not queued(lab, message_id)

    wait_for(delivered, f"{message_id} delivered to bob and gone from the queues")
    stays(
        lambda: in_mailbox(lab, "EX-NY1", "NY-DB1", message_id) == 1,
        f"{message_id} is in bob's mailbox exactly once",
    )


def test_restart_service_keeps_accepted_mail(lab: RunningLab) -> None:
    with submission_held(lab):
        identity = send_held_message(lab, "<restart-1@test>")
        pki = lab.dir / "pki"
        ctx = client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))
        ctx.check_hostname = False
        req = urllib.request.Request(
            f"https://{NY1}:8443/services/MSExchangeTransport/restart", method="POST"
        )
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            assert resp.status == 200
        delivered_once_from_the_queue(lab, "<restart-1@test>", identity)
    with smtp(NY1, source=INTERNET) as s:
        assert s.ehlo("mail.fabrikam.com")[0] == 250


def test_a_250_survives_kill_9(lab: RunningLab) -> None:
    with submission_held(lab):
        identity = send_held_message(lab, "<kill-1@test>")
        lab.run("lab", "restart", "EX-NY1")  # kill -9 and start again
        delivered_once_from_the_queue(lab, "<kill-1@test>", identity)
