"""An abusive client against the seed lab's Client Access and Hub servers, and the users it must
not lock out (issue 20, items 1-3 and 10): IMAP4/POP3 connection exhaustion and password guessing,
IDLE exhaustion, slow HTTPS request headers, and one load test over IMAP4, POP3, SMTP and HTTPS.

The abuser and the legitimate users connect from addresses of their own (127.66.0.x for the
clients of the organization, 127.99.0.x for the Internet's): real sockets, real TLS, and the
clients people use (imaplib, poplib, smtplib, curl).
"""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from tests.conftest import RunningLab
from tests.integration.test_shell_lab import ok
from tests.integration.test_story2_mail_clients import offset, tls

pytestmark = pytest.mark.lab

NY1, FL1 = "127.1.0.11", "127.2.0.11"
PASSWORD = "Pa55word!"
ABUSER, USER = "127.66.0.1", "127.66.0.2"
INTERNET_ABUSER, INTERNET_USER = "127.99.0.50", "127.99.0.51"


def send_to_alice(lab: RunningLab, subject: str) -> None:
    """A message from the Internet (the legitimate sender's address) to alice."""
    message = EmailMessage()
    message["From"], message["To"] = "carol@fabrikam.com", "alice@contoso.com"
    message["Subject"] = subject
    message.set_content("hello")
    with smtplib.SMTP(NY1, 25 + offset(lab), timeout=30, source_address=(INTERNET_USER, 0)) as smtp:
        smtp.starttls(context=tls(lab))
        assert not smtp.send_message(message)


def connect(address: str, port: int, source: str) -> socket.socket:
    return socket.create_connection((address, port), timeout=30, source_address=(source, 0))


def imap_login(lab: RunningLab, user: str, password: str, server: str = NY1) -> str:
    """imaplib from the legitimate user's address: the tagged answer to LOGIN."""
    client = imaplib.IMAP4_SSL(
        server, 993 + offset(lab), ssl_context=tls(lab), timeout=30
    )  # imaplib cannot bind a source address; the server sees 127.0.0.1 for it
    try:
        return str(client.login(user, password)[0])
    except imaplib.IMAP4.error as exc:
        return f"NO {exc}"
    finally:
        with contextlib.suppress(imaplib.IMAP4.abort, OSError):
            client.logout()


def owa_sign_in(lab: RunningLab, user: str, password: str) -> str:
    """curl posting OWA's form to /owa/auth.owa, as monitoring scripts do: the HTTP status."""
    port = 443 + offset(lab)
    result = subprocess.run(
        [
            "curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code}",
            "--cacert", str(lab.dir / "pki" / "ca.pem"),
            "--resolve", f"mail.contoso.com:{port}:{NY1}",
            "--data-urlencode", f"destination=https://mail.contoso.com:{port}/owa/",
            "--data-urlencode", "flags=4",
            "--data-urlencode", "forcedownlevel=0",
            "--data-urlencode", f"username={user}",
            "--data-urlencode", f"password={password}",
            "--data-urlencode", "isUtf8=1",
            f"https://mail.contoso.com:{port}/owa/auth.owa",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def lab(seed_lab: RunningLab) -> Iterator[RunningLab]:
    yield seed_lab
    # Leave nobody locked out for the next module's tests.
    ok(seed_lab, "Search-ADAccount -LockedOut | Unlock-ADAccount")


# ------------------------------------------------------------------ guessing (item 2)


def test_guessing_over_imap_on_fl_locks_the_account_in_owa_and_pop3_on_ny(
    lab: RunningLab,
) -> None:
    # One IMAPS connection to EX-FL1: each wrong password answered after a delay, the third
    # ends the connection.
    raw = connect(FL1, 993 + offset(lab), ABUSER)
    conn = tls(lab).wrap_socket(raw)
    reader = conn.makefile("rb")
    assert reader.readline().startswith(b"* OK")
    started = time.monotonic()
    answers = []
    for n in range(3):
        conn.sendall(f'g{n} LOGIN bob "guess{n}"\r\n'.encode())
        answers.append(reader.readline())
    assert [a.split(b" ", 2)[1] for a in answers] == [b"NO", b"NO", b"NO"]
    assert time.monotonic() - started >= 2.5  # a guess a second at most
    assert reader.readline().startswith(b"* BYE")
    assert reader.readline() == b""  # closed
    conn.close()
    # Two more wrong passwords over POP3 on EX-NY1: five in all, the account is locked.
    for guess in ("guess3", "guess4"):
        mail = poplib.POP3_SSL(NY1, 995 + offset(lab), context=tls(lab), timeout=30)
        mail.user("bob")
        with pytest.raises(poplib.error_proto, match="Logon failure"):
            mail.pass_(guess)
        mail.quit()
    # Now the right password fails everywhere, on every protocol and server.
    assert imap_login(lab, "bob", PASSWORD).startswith("NO")
    assert imap_login(lab, "bob@contoso.com", PASSWORD, server=FL1).startswith("NO")
    mail = poplib.POP3_SSL(NY1, 995 + offset(lab), context=tls(lab), timeout=30)
    mail.user("CONTOSO\\bob")
    with pytest.raises(poplib.error_proto):
        mail.pass_(PASSWORD)
    mail.quit()
    assert owa_sign_in(lab, "bob", PASSWORD) == "429"
    # The administrator finds and unlocks the account; bob signs in again.
    assert re.search(r"\bbob\s+True\s+5\b", ok(lab, "Search-ADAccount -LockedOut"))
    ok(lab, "Unlock-ADAccount bob")
    assert imap_login(lab, "bob", PASSWORD) == "OK"
    assert owa_sign_in(lab, "bob", PASSWORD) == "302"
    assert imap_login(lab, "alice", PASSWORD) == "OK"  # nobody else was ever affected


# ------------------------------------------------------------ exhaustion (items 1, 10)


def test_a_client_that_never_signs_in_is_cut_off_whatever_it_sends(lab: RunningLab) -> None:
    ok(lab, "Set-ImapSettings -PreAuthenticatedConnectionTimeout 00:00:04")
    ok(lab, "Set-PopSettings -PreAuthenticatedConnectionTimeout 00:00:04")
    ok(lab, "Restart-Service MSExchangeIMAP4")
    ok(lab, "Restart-Service MSExchangePOP3")
    try:
        for port, greeting, keepalive in (
            (143, b"* OK", b"a NOOP\r\n"),
            (110, b"+OK", b"NOOP\r\n"),
        ):
            conn = connect(NY1, port + offset(lab), ABUSER)
            reader = conn.makefile("rb")
            assert reader.readline().startswith(greeting)
            started = time.monotonic()
            closed = False
            while time.monotonic() - started < 12:
                try:
                    conn.sendall(keepalive)  # each one answered, none of them extends
                    if not reader.readline():
                        closed = True
                        break
                except OSError:
                    closed = True
                    break
                time.sleep(0.5)
            assert closed and 3.5 <= time.monotonic() - started < 8
            conn.close()
    finally:
        ok(lab, "Set-ImapSettings -PreAuthenticatedConnectionTimeout 00:01:00")
        ok(lab, "Set-PopSettings -PreAuthenticatedConnectionTimeout 00:01:00")
        ok(lab, "Restart-Service MSExchangeIMAP4")
        ok(lab, "Restart-Service MSExchangePOP3")


def _hold(
    address: str, port: int, source: str, count: int, *, tls_ctx: ssl.SSLContext | None = None
) -> tuple[list[socket.socket], int]:
    """Open ``count`` connections and keep them; (those kept, how many the server refused).

    A refused connection is closed by the server at once, after a refusal (``* BYE``,
    ``-ERR``, ``421``) or none; a kept one greets (IMAP4, POP3, SMTP) or stays silent (HTTPS).
    """
    opened: list[socket.socket] = []
    refused = 0
    for _ in range(count):
        try:
            conn = connect(address, port, source)
            opened.append(tls_ctx.wrap_socket(conn) if tls_ctx is not None else conn)
        except (ssl.SSLError, OSError):
            refused += 1
    time.sleep(1.0)  # the refusals arrive
    kept = []
    for conn in opened:
        conn.setblocking(False)
        try:
            first: bytes | None = conn.recv(200)
        except (ssl.SSLWantReadError, BlockingIOError):
            first = None  # nothing to read: HTTPS waiting for a request
        except (ssl.SSLError, OSError):
            first = b""
        if first is not None and (not first or first.startswith((b"* BYE", b"-ERR", b"421"))):
            refused += 1
            conn.close()
        else:
            kept.append(conn)
    return kept, refused


def test_one_abusive_address_cannot_deny_imap_pop3_smtp_or_https_to_others(
    lab: RunningLab,
) -> None:
    held: list[socket.socket] = []
    try:
        imap_kept, imap_refused = _hold(NY1, 143 + offset(lab), ABUSER, 40)
        pop_kept, pop_refused = _hold(NY1, 110 + offset(lab), ABUSER, 40)
        smtp_kept, smtp_refused = _hold(NY1, 25 + offset(lab), INTERNET_ABUSER, 40)
        web_kept, web_refused = _hold(NY1, 443 + offset(lab), ABUSER, 230, tls_ctx=tls(lab))
        held = imap_kept + pop_kept + smtp_kept + web_kept
        # Each service keeps a bounded share for the one address, and refuses the rest.
        assert (len(imap_kept), imap_refused) == (20, 20)
        assert (len(pop_kept), pop_refused) == (20, 20)
        assert len(smtp_kept) == 20 and smtp_refused == 20  # MaxInboundConnectionPerSource
        assert len(web_kept) == 200 and web_refused == 30

        # Meanwhile the others are served at once.
        started = time.monotonic()
        client = imaplib.IMAP4(NY1, 143 + offset(lab), timeout=30)
        client.starttls(ssl_context=tls(lab))
        client.login("alice", PASSWORD)
        assert client.select("INBOX")[0] == "OK"
        client.logout()
        mail = poplib.POP3_SSL(NY1, 995 + offset(lab), context=tls(lab), timeout=30)
        mail.user("alice")
        mail.pass_(PASSWORD)
        mail.stat()
        mail.quit()
        send_to_alice(lab, "through the crowd")
        assert owa_sign_in(lab, "alice", PASSWORD) == "302"
        assert time.monotonic() - started < 20
    finally:
        for conn in held:
            conn.close()


# ------------------------------------------------------------------ IDLE (item 3)


def test_idle_sessions_of_one_user_are_bounded_and_all_hear_of_new_mail(
    lab: RunningLab,
) -> None:
    sessions = []
    refused = 0
    try:
        for _ in range(20):
            conn = tls(lab).wrap_socket(connect(NY1, 993 + offset(lab), USER))
            reader = conn.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            conn.sendall(f'a LOGIN alice "{PASSWORD}"\r\n'.encode())
            answer = reader.readline()
            if not answer.startswith(b"a OK"):
                assert answer.startswith(b"a NO"), answer
                refused += 1
                conn.close()
                continue
            conn.sendall(b"b SELECT INBOX\r\nc IDLE\r\n")
            while not reader.readline().startswith(b"+ "):
                pass
            sessions.append((conn, reader))
        # MaxConnectionsPerUser (16): the user's seventeenth sign-in is refused.
        assert (len(sessions), refused) == (16, 4)

        # Another user is not held up by them.
        started = time.monotonic()
        client = imaplib.IMAP4_SSL(NY1, 993 + offset(lab), ssl_context=tls(lab), timeout=30)
        client.login("bob", PASSWORD)
        assert client.select("INBOX")[0] == "OK"
        client.logout()
        assert time.monotonic() - started < 3

        # New mail reaches every IDLE session.
        send_to_alice(lab, "to every idle session")
        for conn, reader in sessions:
            conn.settimeout(30)
            assert re.match(rb"\* \d+ EXISTS", reader.readline())
        for conn, _ in sessions:
            conn.sendall(b"DONE\r\nd LOGOUT\r\n")
    finally:
        for conn, _ in sessions:
            conn.close()
