"""SMTP sessions of the lab's plain MTAs on loopback, driven by smtplib and raw sockets.

No lab: one listener in a background event loop, with the Internet host's
profile and a real queue store, or EX2003's profile and a real mailbox
store behind a real directory.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import smtplib
import socket
import sqlite3
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sitemail.clock import ManualClock
from sitemail.exchange2003.smtp_service import StoreSink, legacy_profile
from sitemail.internet.host import QueueSink
from sitemail.internet.policy import SUBMISSION_PORT, InternetProfile
from sitemail.mailbox.store_backend import StoreBackend
from sitemail.mta.profile import Limits, MessageSink, MtaProfile
from sitemail.mta.session import MtaListener
from sitemail.org.directory import open_directory
from sitemail.org.model import (
    AcceptedDomain,
    ExchangeVersion,
    Mailbox,
    MailboxDatabase,
    Organization,
    Server,
    ServerRole,
)
from sitemail.org.passwords import hash_password
from sitemail.org.pki import ServerCertSpec, ensure_organization_pki, server_cert_files
from sitemail.org.pki import server_ssl_context as make_server_context
from sitemail.transport.headers import delivered_to_key, submit_time_of
from sitemail.transport.queue import QueueStore

HOST = "127.0.0.1"
PASSWORD = "Pa55word!"
MESSAGE = b"Subject: hello\r\nMessage-ID: <m1@fabrikam.com>\r\n\r\nHi there\r\n"


class Client(smtplib.SMTP):
    welcome: tuple[int, bytes] = (0, b"")

    def getwelcome(self) -> bytes:
        code, text = self.welcome
        assert code == 220
        return text


def _free_offset(ports: tuple[int, ...]) -> int:
    for _ in range(50):
        probe = socket.socket()
        probe.bind((HOST, 0))
        offset = probe.getsockname()[1] - min(ports)
        probe.close()
        held = []
        try:
            for port in ports:
                s = socket.socket()
                held.append(s)
                s.bind((HOST, port + offset))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return offset
    raise RuntimeError("no free ports for the test listener")


class Running:
    """A listener in its own thread and event loop; ``port(25)`` is where it listens."""

    def __init__(
        self,
        profile: Callable[[], MtaProfile],
        sink: Callable[[], MessageSink],
        tls: ssl.SSLContext | None,
        ports: tuple[int, ...] = (25,),
    ) -> None:
        # An offset at which every service port is free (other tests use 127.0.0.1 too).
        self.offset = _free_offset(ports)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.listener: MtaListener | None = None

        async def start() -> None:
            self.listener = MtaListener(
                profile, sink(), tls=tls, port_offset=self.offset, clock=ManualClock()
            )
            for port in ports:
                await self.listener.listen(HOST, port)

        def run() -> None:
            try:
                self.loop.run_until_complete(start())
            except BaseException as exc:  # reported to the test thread
                self.error = exc
                self.ready.set()
                return
            self.ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.ready.wait(10)
        if self.error is not None:
            raise self.error

    def port(self, service_port: int = 25) -> int:
        return service_port + self.offset

    def smtp(self, service_port: int = 25) -> Client:
        client = Client(timeout=10)
        client._host = HOST  # type: ignore[attr-defined]  # smtplib's SNI name for STARTTLS
        client.welcome = client.connect(HOST, self.port(service_port))
        return client

    def stop(self) -> None:
        async def close() -> None:
            if self.listener is not None:
                await self.listener.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pki = tmp_path_factory.mktemp("pki")
    ensure_organization_pki(
        pki,
        "fabrikam.com (Internet)",
        [ServerCertSpec(name="MTA", fqdn="mail.fabrikam.com", addresses=[HOST])],
        admin=False,
    )
    return pki


def tls_of(pki: Path) -> ssl.SSLContext:
    return make_server_context(server_cert_files(pki, "MTA"))


# ---------------------------------------------------------------- the Internet host


@pytest.fixture
def store(tmp_path: Path) -> Iterator[QueueStore]:
    s = QueueStore.open(tmp_path, server="INTERNET", fqdn="mail.fabrikam.com")
    yield s
    s.close()


INTERNET = InternetProfile(
    hostname="mail.fabrikam.com",
    domains=frozenset({"fabrikam.com"}),
    users={"carol@fabrikam.com": hash_password(PASSWORD)},
)


@pytest.fixture
def internet(certificate: Path, store: QueueStore) -> Iterator[Running]:
    running = Running(
        lambda: INTERNET, lambda: QueueSink(store), tls_of(certificate), (25, SUBMISSION_PORT)
    )
    yield running
    running.stop()


def queued(store: QueueStore) -> list[tuple[str, list[str], bytes]]:
    """(sender, recipients, body) of every accepted message, from the store's own files."""
    conn = sqlite3.connect(f"file:{store.queue_dir / 'mail.que'}?mode=ro", uri=True)
    try:
        # A small body is in mail.que itself; a large one in its spool file.
        rows = conn.execute(
            "SELECT m.id, m.mail_from, m.body_file, b.data FROM messages m "
            "LEFT JOIN bodies b ON b.message_id = m.id ORDER BY m.id"
        ).fetchall()
        out = []
        for mid, sender, body, data in rows:
            rcpts = [
                r[0]
                for r in conn.execute(
                    "SELECT address FROM recipients WHERE message_id=? ORDER BY id", (mid,)
                )
            ]
            stored = bytes(data) if data is not None else (store.spool_dir / body).read_bytes()
            out.append((sender, rcpts, stored))
        return out
    finally:
        conn.close()


def test_anonymous_mail_for_a_local_user_is_queued_durably_before_the_250(
    internet: Running, store: QueueStore
) -> None:
    with internet.smtp() as s:
        assert s.getwelcome() == b"mail.fabrikam.com ESMTP"
        code, text = s.ehlo("mx.contoso.com")
        assert code == 250
        assert text.decode().splitlines() == [
            "mail.fabrikam.com",
            "PIPELINING",
            "SIZE 10240000",
            "STARTTLS",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
        ]
        assert s.mail("alice@contoso.com") == (250, b"2.1.0 Ok")
        assert s.rcpt("carol@fabrikam.com") == (250, b"2.1.5 Ok")
        code, text = s.data(b"Subject: no id\r\n\r\n.leading dot\r\n")
        assert code == 250
        assert text.decode().startswith("2.0.0 Ok: queued as ")
        # Acknowledged means on disk: the message is in the store right now.
        [(sender, rcpts, body)] = queued(store)
    assert (sender, rcpts) == ("alice@contoso.com", ["carol@fabrikam.com"])
    assert body.startswith(b"Received: from mx.contoso.com (unknown [127.0.0.1])\r\n")
    assert b"\tby mail.fabrikam.com with ESMTP;\r\n" in body
    # A Message-ID was added (its recipient mailbox deduplicates on it); dots unstuffed.
    assert b"\r\nMessage-ID: <" in body
    assert body.endswith(b"\r\n\r\n.leading dot\r\n")


def test_an_unusable_message_id_is_kept_and_the_queue_names_the_message_itself(
    internet: Running, store: QueueStore
) -> None:
    with internet.smtp() as s:
        s.sendmail("a@b.example", ["carol@fabrikam.com"], b"Message-ID: no-brackets\r\n\r\nx\r\n")
    [(_, _, body)] = queued(store)
    assert body.count(b"Message-ID:") == 1
    assert b"Message-ID: no-brackets\r\n" in body
    conn = sqlite3.connect(f"file:{store.queue_dir / 'mail.que'}?mode=ro", uri=True)
    try:
        [(message_id,)] = conn.execute("SELECT internet_message_id FROM messages").fetchall()
    finally:
        conn.close()
    assert message_id.startswith("<") and message_id.endswith("@mail.fabrikam.com>")


def test_relay_and_unknown_users_are_refused_to_anonymous_clients(
    internet: Running, store: QueueStore
) -> None:
    with internet.smtp() as s:
        s.ehlo("mx.contoso.com")
        s.mail("alice@contoso.com")
        assert s.rcpt("bob@contoso.com") == (554, b"5.7.1 <bob@contoso.com>: Relay access denied")
        assert s.rcpt("x@fabrikam.com") == (
            550,
            b"5.1.1 <x@fabrikam.com>: Recipient address rejected: User unknown",
        )
        assert s.docmd("DATA") == (503, b"5.5.1 Error: need RCPT command")
        assert s.docmd("AUTH", "LOGIN") == (503, b"5.5.1 Error: authentication not enabled")
        assert s.docmd("VRFY", "carol") == (502, b"5.5.1 VRFY command is disabled")
        assert s.docmd("X-EXPS", "GSSAPI") == (502, b"5.5.2 Error: command not recognized")
    assert queued(store) == []


def test_commands_out_of_order_get_postfixs_replies(internet: Running) -> None:
    with internet.smtp() as s:
        assert s.docmd("MAIL", "FROM:<a@b.example>") == (
            503,
            b"5.5.1 Error: send HELO/EHLO first",
        )
        assert s.docmd("EHLO") == (501, b"Syntax: EHLO hostname")
        assert s.helo("client.example")[0] == 250
        assert s.docmd("MAIL", "FROM:<a@b.example>")[0] == 250
        assert s.docmd("MAIL", "FROM:<a@b.example>") == (503, b"5.5.1 Error: nested MAIL command")
        assert s.docmd("RCPT", "TO:<not an address>") == (
            501,
            b"5.1.3 Bad recipient address syntax",
        )
        assert s.docmd("RSET") == (250, b"2.0.0 Ok")
        # No CHUNKING here: BDAT is unknown, its chunk is read all the same (RFC 3030).
        s.send(b"BDAT 4 LAST\r\nabcd")
        assert s.getreply() == (502, b"5.5.2 Error: command not recognized")
        assert s.noop() == (250, b"2.0.0 Ok")


def test_authenticated_users_relay_after_starttls(internet: Running, store: QueueStore) -> None:
    with internet.smtp() as s:
        s.ehlo("client.fabrikam.com")
        assert s.starttls(context=client_tls())[0] == 220
        _, text = s.ehlo("client.fabrikam.com")
        assert "AUTH LOGIN PLAIN" in text.decode().splitlines()
        assert "STARTTLS" not in text.decode().splitlines()
        with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
            s.login("carol", "wrong")
        assert bad.value.smtp_code == 535
        assert bad.value.smtp_error == b"5.7.8 Error: authentication failed: authentication failure"
        s.user, s.password = "carol@fabrikam.com", PASSWORD
        assert s.auth("LOGIN", s.auth_login, initial_response_ok=False)[0] == 235
        s.sendmail("carol@fabrikam.com", ["alice@contoso.com"], MESSAGE)
    [(sender, rcpts, body)] = queued(store)
    assert (sender, rcpts) == ("carol@fabrikam.com", ["alice@contoso.com"])
    assert b"\tby mail.fabrikam.com with ESMTPSA;\r\n" in body
    assert body.count(b"Message-ID:") == 1


def test_auth_plain_with_and_without_an_initial_response(internet: Running) -> None:
    blob = base64.b64encode(f"\0carol@fabrikam.com\0{PASSWORD}".encode()).decode()
    with internet.smtp() as s:
        s.ehlo("c")
        s.starttls(context=client_tls())
        s.ehlo("c")
        assert s.docmd("AUTH", "CRAM-MD5")[0] == 535
        assert s.docmd("AUTH", f"PLAIN {blob}") == (235, b"2.7.0 Authentication successful")
        assert s.docmd("AUTH", "PLAIN") == (503, b"5.5.1 Error: already authenticated")
    with internet.smtp() as s:
        s.ehlo("c")
        s.starttls(context=client_tls())
        s.ehlo("c")
        assert s.docmd("AUTH", "PLAIN")[0] == 334
        assert s.docmd(blob) == (235, b"2.7.0 Authentication successful")


def test_submission_port_wants_tls_then_authentication(
    internet: Running, store: QueueStore
) -> None:
    with internet.smtp(SUBMISSION_PORT) as s:
        s.ehlo("laptop")
        assert s.mail("carol@fabrikam.com") == (
            530,
            b"5.7.0 Must issue a STARTTLS command first",
        )
        s.starttls(context=client_tls())
        s.ehlo("laptop")
        assert s.mail("carol@fabrikam.com")[0] == 250
        assert s.rcpt("carol@fabrikam.com") == (
            554,
            b"5.7.1 <unknown[127.0.0.1]>: Client host rejected: Access denied",
        )
        s.rset()
        s.login("carol@fabrikam.com", PASSWORD)
        s.sendmail("carol@fabrikam.com", ["alice@contoso.com", "carol@fabrikam.com"], MESSAGE)
    [(_, rcpts, _)] = queued(store)
    assert rcpts == ["alice@contoso.com", "carol@fabrikam.com"]


def test_size_limit_and_chunking_refused(certificate: Path, store: QueueStore) -> None:
    small = dataclasses.replace(INTERNET, limits=Limits(max_message_size=100))
    running = Running(lambda: small, lambda: QueueSink(store), tls_of(certificate))
    try:
        with running.smtp() as s:
            s.ehlo("c")
            assert s.docmd("MAIL", "FROM:<a@b.example> SIZE=101") == (
                552,
                b"5.3.4 Message size exceeds fixed limit",
            )
            s.mail("a@b.example")
            s.rcpt("carol@fabrikam.com")
            assert s.data(b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n") == (
                552,
                b"5.3.4 Message size exceeds fixed limit",
            )
            # BDAT is not offered: the chunk is read and refused, and the session goes on.
            s.mail("a@b.example")
            s.rcpt("carol@fabrikam.com")
            s.send(b"BDAT 5 LAST\r\nhello")
            assert s.getreply() == (502, b"5.5.2 Error: command not recognized")
            assert s.noop() == (250, b"2.0.0 Ok")
        assert queued(store) == []
    finally:
        running.stop()


def test_too_many_errors_close_the_session(internet: Running) -> None:
    with internet.smtp() as s:
        for _ in range(20):
            assert s.docmd("WHAT")[0] == 502
        assert s.docmd("WHAT") == (421, b"4.7.0 Error: too many errors")


# ---------------------------------------------------------------- Exchange 2003


@pytest.fixture
def ex2003(tmp_path: Path, certificate: Path) -> Iterator[tuple[Running, Path]]:
    directory = open_directory(str(tmp_path / "directory.db"))
    org = Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    server = Server(
        name="EX2003",
        fqdn="ex2003.contoso.com",
        site="NY",
        version=ExchangeVersion.E2003,
        roles=[ServerRole.MAILBOX],
        addresses=[HOST],
    )
    for obj in (
        org,
        server,
        MailboxDatabase(name="EX2003-MBX", server="EX2003"),
        MailboxDatabase(name="NY-DB1", server="EX-NY1"),
        Mailbox(
            alias="larry",
            display_name="Larry",
            primary_smtp_address="larry@contoso.com",
            database="EX2003-MBX",
        ),
        Mailbox(
            alias="alice",
            display_name="Alice",
            primary_smtp_address="alice@contoso.com",
            database="NY-DB1",
        ),
    ):
        directory.put(obj)
    mailbox_dir = tmp_path / "mailbox"
    backend = StoreBackend("EX2003", directory, mailbox_dir)
    running = Running(
        lambda: legacy_profile(directory, server),
        lambda: StoreSink(lambda: backend, mailbox_dir / "spool"),
        tls_of(certificate),
    )
    yield running, mailbox_dir / "EX2003-MBX.db"
    running.stop()
    backend.close()
    directory.close()


def stored(db: Path) -> list[tuple[str, str]]:
    """(mailbox, delivery id) of every delivery in a mailbox database."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            (str(r[0]), str(r[1]))
            for r in conn.execute(
                "SELECT b.name, d.key FROM deliveries d JOIN mailboxes b ON b.id=d.mailbox_id"
            )
        ]
    finally:
        conn.close()


def test_exchange_2003_stores_mail_for_its_mailboxes_once_per_message_id(
    ex2003: tuple[Running, Path],
) -> None:
    running, db = ex2003
    for _ in range(2):  # a hub that sends again after a lost 250
        with running.smtp() as s:
            welcome = s.getwelcome().decode()
            assert welcome.startswith(
                "ex2003.contoso.com Microsoft ESMTP MAIL Service, Version: 6.0.3790.4675 ready at  "
            )
            s.ehlo("ex-ny1.contoso.com")
            assert s.has_extn("chunking") and s.has_extn("starttls")
            assert s.mail("alice@contoso.com") == (
                250,
                b"2.1.0 alice@contoso.com....Sender OK",
            )
            assert s.rcpt("larry@contoso.com") == (250, b"2.1.5 larry@contoso.com")
            assert s.rcpt("alice@contoso.com") == (
                550,
                b"5.7.1 Unable to relay for alice@contoso.com",
            )
            assert s.rcpt("nobody@contoso.com") == (550, b"5.1.1 User unknown")
            assert s.data(MESSAGE) == (250, b"2.6.0 <m1@fabrikam.com> Queued mail for delivery")
            # Stored (committed) before the 250 was read.
            # Once per Message-ID and submit time (the store's duplicate key).
            key = delivered_to_key(
                "<m1@fabrikam.com>", submit_time_of(MESSAGE), "larry@contoso.com"
            )
            assert stored(db) == [("larry", key)]


def test_exchange_2003_takes_bdat_chunks_inside_tls(ex2003: tuple[Running, Path]) -> None:
    running, db = ex2003
    body = b"Subject: chunked\r\nMessage-ID: <m2@contoso.com>\r\n\r\nin two chunks\r\n"
    with running.smtp() as s:
        s.ehlo("ex-ny1.contoso.com")
        assert s.starttls(context=client_tls()) == (220, b"2.0.0 SMTP server ready")
        s.ehlo("ex-ny1.contoso.com")
        s.mail("alice@contoso.com")
        s.rcpt("larry@contoso.com")
        s.send(b"BDAT 20\r\n" + body[:20])
        assert s.getreply()[0] == 250
        s.send(b"BDAT %d LAST\r\n" % (len(body) - 20) + body[20:])
        assert s.getreply() == (250, b"2.6.0 <m2@contoso.com> Queued mail for delivery")
    key = delivered_to_key("<m2@contoso.com>", submit_time_of(body), "larry@contoso.com")
    assert ("larry", key) in stored(db)


def test_exchange_2003_answers_451_when_its_store_is_down(
    tmp_path: Path, certificate: Path
) -> None:
    directory = open_directory(str(tmp_path / "directory.db"))
    server = Server(
        name="EX2003", fqdn="ex2003.contoso.com", site="NY", version=ExchangeVersion.E2003
    )
    directory.put(
        Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    )
    directory.put(MailboxDatabase(name="EX2003-MBX", server="EX2003"))
    directory.put(
        Mailbox(
            alias="larry",
            display_name="Larry",
            primary_smtp_address="larry@contoso.com",
            database="EX2003-MBX",
        )
    )
    running = Running(
        lambda: legacy_profile(directory, server),
        lambda: StoreSink(lambda: None, tmp_path / "spool"),
        None,
    )
    try:
        with running.smtp() as s:
            s.ehlo("ex-ny1.contoso.com")
            assert not s.has_extn("starttls")  # no certificate, no TLS
            s.mail("alice@contoso.com")
            s.rcpt("larry@contoso.com")
            assert s.data(MESSAGE) == (
                451,
                b"4.3.2 The mailbox store is not available; try again later",
            )
        assert list((tmp_path / "spool").iterdir()) == []  # nothing left behind
    finally:
        running.stop()
        directory.close()
