"""The Mail Submission service: Outbox to a hub of the site, then Sent Items, once.

The hub is a stand-in for ``send_message`` that records what it was given
and answers as told; the store is a real mailbox database.  The real SMTP
hand-off is exercised on a running lab (tests/integration).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.doubles.smtp_peer import Peer

from sitemail.clock import SYSTEM_CLOCK, ManualClock
from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.errors import MessageNotFound
from sitemail.mailbox.records import FlagUpdate, WellKnownFolder
from sitemail.mailbox.submission_envelope import (
    SubmissionRefused,
    header_end,
    prepare_submission,
)
from sitemail.mailbox.submission_service import (
    RETRY_INTERVALS,
    MailSubmissionService,
    SubmissionSettings,
)
from sitemail.mailflow.outbound import (
    OutboundMessage,
    RecipientResult,
    RecipientStatus,
    SendResult,
    Target,
    TargetAttempt,
)
from sitemail.mailflow.tracking_log import read_tracking_log
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import (
    AcceptedDomain,
    Mailbox,
    MailboxDatabase,
    Organization,
    Server,
    ServerRole,
    Site,
)
from sitemail.org.pki import OrganizationPki
from sitemail.protocols.smtp import Reply

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADDRESSES = {"EX-NY1": "127.1.0.11", "EX-NY2": "127.1.0.12", "EX-FL1": "127.2.0.11"}
QUEUED = Reply.of(250, "<x@contoso.com> [InternalId=1] Queued mail for delivery", enhanced="2.6.0")
UNREACHABLE = Reply.of(421, "Unable to connect", enhanced="4.2.1")
DEFERRED = Reply.of(452, "Insufficient system resources", enhanced="4.3.1")
REFUSED = Reply.of(550, "Recipient rejected", enhanced="5.1.1")


# --------------------------------------------------------------------- the hub


@dataclass
class Handoff:
    targets: list[Target]
    message: OutboundMessage
    data: bytes


@dataclass
class FakeHub:
    """Answers each recipient with ``answers.get(address, QUEUED)``; ``down`` fails every target."""

    handoffs: list[Handoff] = field(default_factory=list)
    answers: dict[str, Reply] = field(default_factory=dict)
    down: bool = False

    async def __call__(
        self,
        targets: Sequence[Target],
        message: OutboundMessage,
        body: Any,
        settings: Any,
        *,
        local_address: str | None = None,
    ) -> SendResult:
        assert local_address == ADDRESSES["EX-NY1"]
        assert settings.server_name == "EX-NY1"
        source = body()
        if isinstance(source, AsyncIterable):
            data = b"".join([c async for c in source])
        else:
            data = b"".join(source)
        if self.down:
            attempts = tuple(TargetAttempt(t, UNREACHABLE, "", True) for t in targets)
            deferred = tuple(
                RecipientResult(r.address, RecipientStatus.DEFERRED, UNREACHABLE)
                for r in message.recipients
            )
            return SendResult(deferred, attempts, None, None, "421 4.2.1 Unable to connect")
        self.handoffs.append(Handoff(list(targets), message, data))
        results = []
        for r in message.recipients:
            reply = self.answers.get(r.address.lower(), QUEUED)
            status = (
                RecipientStatus.DELIVERED
                if reply.is_positive
                else RecipientStatus.FAILED
                if reply.is_permanent
                else RecipientStatus.DEFERRED
            )
            results.append(RecipientResult(r.address, status, reply))
        target = targets[0]
        return SendResult(
            tuple(results), (TargetAttempt(target, QUEUED, "", False),), target, QUEUED, None
        )


# --------------------------------------------------------------------- the server


@dataclass
class Store:
    db: StoreDatabase

    def databases(self) -> list[StoreDatabase]:
        return [self.db]


@dataclass
class Env:
    home: Path
    directory: Directory
    db: StoreDatabase
    clock: ManualClock
    hub: FakeHub
    settings: SubmissionSettings

    def service(self, poll_interval: float = 10.0) -> MailSubmissionService:
        return MailSubmissionService(
            self.settings,
            self.directory,
            Store(self.db),
            ADDRESSES.__getitem__,
            clock=self.clock,
            send=self.hub,
            poll_interval=poll_interval,
        )

    def outbox(self, raw: bytes, mailbox: str = "alice") -> int:
        placed = self.db.append(mailbox, WellKnownFolder.DRAFTS.value, raw)
        self.db.submit(mailbox, placed.message_id)
        return placed.message_id

    def folder_of(self, message_id: int, mailbox: str = "alice") -> str:
        folder_id = self.db.get_message(mailbox, message_id).folder_id
        folder = self.db.get_folder(mailbox, folder_id)
        return folder.well_known.value if folder.well_known else folder.name

    def count(self, folder: WellKnownFolder, mailbox: str = "alice") -> int:
        return self.db.get_folder(mailbox, folder.value).total


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    pki = OrganizationPki.open_or_create(folder, "Contoso")
    pki.ensure_server("EX-NY1", "ex-ny1.contoso.com", addresses=[ADDRESSES["EX-NY1"]])
    return folder


@pytest.fixture
def env(tmp_path: Path, pki_dir: Path) -> Iterator[Env]:
    directory = open_directory(str(tmp_path / "directory.db"))
    directory.put(
        Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    )
    for site in ("NY", "FL"):
        directory.put(Site(name=site))
    roles = [ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT]
    for name, site, rs in [
        ("EX-NY1", "NY", roles),
        ("EX-NY2", "NY", [ServerRole.HUB_TRANSPORT]),
        ("EX-FL1", "FL", roles),
    ]:
        directory.put(
            Server(
                name=name,
                fqdn=f"{name.lower()}.contoso.com",
                site=site,
                roles=rs,
                addresses=[ADDRESSES[name]],
            )
        )
    directory.put(MailboxDatabase(name="NY-DB1", server="EX-NY1"))
    for alias in ("alice", "bob"):
        directory.put(
            Mailbox(
                alias=alias,
                display_name=alias.title(),
                primary_smtp_address=f"{alias}@contoso.com",
                email_addresses=[f"smtp:{alias}.ny@contoso.com"],
                database="NY-DB1",
            )
        )
    home = tmp_path / "servers" / "EX-NY1"
    clock = ManualClock(START)
    db = StoreDatabase(home / "mailbox" / "NY-DB1.db", clock=clock)
    settings = SubmissionSettings(
        server="EX-NY1",
        fqdn="ex-ny1.contoso.com",
        site="NY",
        address=ADDRESSES["EX-NY1"],
        home=home,
        pki_dir=pki_dir,
    )
    try:
        yield Env(home, directory, db, clock, FakeHub(), settings)
    finally:
        db.close()
        directory.close()


def run(service: MailSubmissionService, passes: int = 1) -> int:
    async def go() -> int:
        await service.start()
        try:
            return sum([await service.run_once() for _ in range(passes)])
        finally:
            await service.stop()

    return asyncio.run(go())


def compose(
    *,
    sender: str = "Alice <alice@contoso.com>",
    to: str = "Bob <bob@contoso.com>",
    cc: str | None = None,
    bcc: str | None = None,
    message_id: str | None = "<m1@contoso.com>",
    extra: Iterable[str] = (),
    body: str = "Hello Bob,\r\n\r\n.see you\r\n",
) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", "Subject: Lunch"]
    if message_id:
        lines.append("Date: Mon, 02 Mar 2026 08:59:00 +0000")
    if cc:
        lines.append(f"Cc: {cc}")
    if bcc:
        lines.append(f"Bcc: {bcc}")
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


# --------------------------------------------------------------------- hand-off


def test_outbox_message_goes_to_the_local_hub_with_envelope_from_its_headers(env: Env) -> None:
    raw = compose(cc="carol@fabrikam.com", bcc="Dave <dave@contoso.com>, bob@contoso.com")
    message_id = env.outbox(raw)

    assert run(env.service()) == 1

    [handoff] = env.hub.handoffs
    assert handoff.message.mail_from == "alice@contoso.com"
    assert [r.address for r in handoff.message.recipients] == [
        "bob@contoso.com",
        "carol@fabrikam.com",
        "dave@contoso.com",
    ]
    # Bcc left the bytes; everything else went as stored.
    assert b"Bcc" not in handoff.data and b"dave" not in handoff.data
    assert handoff.data == raw.replace(b"Bcc: Dave <dave@contoso.com>, bob@contoso.com\r\n", b"")
    assert handoff.message.size == len(handoff.data)
    # Hubs of the site only, this server first (FL's hub is never a target).
    assert [t.host for t in handoff.targets] == ["ex-ny1.contoso.com", "ex-ny2.contoso.com"]
    assert [t.address for t in handoff.targets] == ["127.1.0.11", "127.1.0.12"]
    assert all(t.port == 25 for t in handoff.targets)
    # Filed in Sent Items, read; the Outbox is empty.
    assert env.folder_of(message_id) == "sentitems"
    assert env.db.get_message("alice", message_id).flags.seen
    assert env.count(WellKnownFolder.OUTBOX) == 0


def test_a_message_submitted_flagged_deleted_is_sent_and_not_kept(env: Env) -> None:
    # EWS's SendOnly: the client wants no copy in Sent Items (delete after submit).
    message_id = env.outbox(compose())
    env.db.set_flags("alice", message_id, FlagUpdate(deleted=True))

    assert run(env.service()) == 1

    [handoff] = env.hub.handoffs
    assert [r.address for r in handoff.message.recipients] == ["bob@contoso.com"]
    assert env.count(WellKnownFolder.OUTBOX) == 0
    assert env.count(WellKnownFolder.SENT_ITEMS) == 0
    with pytest.raises(MessageNotFound):
        env.db.get_message("alice", message_id)


def test_submit_row_in_the_message_tracking_log(env: Env) -> None:
    env.outbox(compose(bcc="dave@contoso.com"))
    run(env.service())

    rows = list(read_tracking_log(env.home / "TransportRoles/Logs/MessageTracking"))
    [row] = [r for r in rows if r.event_id == "SUBMIT"]
    assert row.source == "STOREDRIVER"
    assert row.message_id == "<m1@contoso.com>"
    assert row.sender_address == "alice@contoso.com"
    assert row.recipient_address == ("bob@contoso.com", "dave@contoso.com")
    assert row.server_hostname == "ex-ny1.contoso.com"
    assert row.client_hostname == "ex-ny1.contoso.com"
    assert row.message_subject == "Lunch"
    assert "MDB:NY-DB1" in row.source_context


def test_sender_is_the_owner_unless_from_names_one_of_the_owners_addresses(env: Env) -> None:
    env.outbox(compose(sender="alice.ny@contoso.com", message_id="<own@x>"))
    env.outbox(compose(sender="ceo@contoso.com", message_id="<forged@x>"))
    run(env.service())

    senders = {h.message.mail_from for h in env.hub.handoffs}
    assert senders == {"alice.ny@contoso.com", "alice@contoso.com"}


def test_organization_headers_written_by_the_user_do_not_reach_the_hub(env: Env) -> None:
    env.outbox(
        compose(
            extra=[
                "X-MS-Exchange-Organization-AuthAs: Internal",
                "X-MS-Exchange-Forest-Rules: x",
                "X-Mailer: test",
            ]
        )
    )
    run(env.service())

    data = env.hub.handoffs[0].data
    assert b"X-MS-Exchange" not in data
    assert b"X-Mailer: test" in data


# --------------------------------------------------------------------- exactly once


def test_a_crash_between_hand_off_and_filing_does_not_send_again(env: Env) -> None:
    message_id = env.outbox(compose())
    real = env.db.complete_submission

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the process died here")

    env.db.complete_submission = crash  # type: ignore[method-assign]
    run(env.service())
    assert len(env.hub.handoffs) == 1
    assert env.folder_of(message_id) == "outbox"

    env.db.complete_submission = real  # type: ignore[method-assign]
    env.clock.advance(RETRY_INTERVALS[-1])
    run(env.service())  # a new service: what it knows comes from the journal on disk

    assert len(env.hub.handoffs) == 1
    assert env.folder_of(message_id) == "sentitems"


def test_a_message_submitted_twice_is_sent_once(env: Env) -> None:
    message_id = env.outbox(compose())
    run(env.service())
    env.db.submit("alice", message_id)  # back to the Outbox from Sent Items
    copy = env.db.copy("alice", message_id, WellKnownFolder.DRAFTS.value)
    env.db.submit("alice", copy.message_id)  # the same Message-ID once more

    run(env.service())

    assert len(env.hub.handoffs) == 1
    assert env.count(WellKnownFolder.OUTBOX) == 0
    assert env.count(WellKnownFolder.SENT_ITEMS) == 2


def test_without_a_hub_the_message_waits_and_is_tried_again_later(env: Env) -> None:
    message_id = env.outbox(compose(message_id=None))
    env.hub.down = True
    service = env.service()

    async def go() -> None:
        await service.start()
        try:
            assert await service.run_once() == 0
            env.hub.down = False
            assert await service.run_once() == 0  # not due yet
            assert env.hub.handoffs == []
            env.clock.advance(RETRY_INTERVALS[0])
            assert await service.run_once() == 1
        finally:
            await service.stop()

    asyncio.run(go())
    assert env.folder_of(message_id) == "sentitems"
    # A Message-ID was added, the one the stored message will always get.
    data = env.hub.handoffs[0].data
    assert data.count(b"Message-ID: <") == 1 and b"@ex-ny1.contoso.com>" in data
    assert b"\r\nDate: " in data


def test_added_message_id_is_the_same_on_every_attempt(env: Env) -> None:
    env.outbox(compose(message_id=None, to="bob@contoso.com, dave@contoso.com"))
    env.hub.answers = {"dave@contoso.com": DEFERRED}
    run(env.service())
    env.hub.answers = {}
    env.clock.advance(RETRY_INTERVALS[-1])
    run(env.service())

    first, second = env.hub.handoffs
    ids = [
        next(line for line in h.data.split(b"\r\n") if line.startswith(b"Message-ID:"))
        for h in (first, second)
    ]
    assert ids[0] == ids[1]


def test_a_deferred_recipient_is_retried_alone(env: Env) -> None:
    message_id = env.outbox(compose(to="bob@contoso.com", cc="dave@contoso.com"))
    env.hub.answers = {"dave@contoso.com": DEFERRED}
    run(env.service())
    assert env.folder_of(message_id) == "outbox"

    env.hub.answers = {}
    env.clock.advance(RETRY_INTERVALS[0])
    run(env.service())

    assert [[r.address for r in h.message.recipients] for h in env.hub.handoffs] == [
        ["bob@contoso.com", "dave@contoso.com"],
        ["dave@contoso.com"],
    ]
    assert env.folder_of(message_id) == "sentitems"


def test_a_refused_recipient_gets_the_sender_an_ndr_once(env: Env) -> None:
    message_id = env.outbox(compose(to="bob@contoso.com, nobody@contoso.com"))
    env.hub.answers = {"nobody@contoso.com": REFUSED}
    run(env.service())
    run(env.service())

    assert env.folder_of(message_id) == "sentitems"
    inbox = env.db.list_messages("alice", WellKnownFolder.INBOX.value)
    [ndr] = inbox.items
    assert ndr.subject == "Undeliverable: Lunch"
    text = env.db.read_raw("alice", ndr.id).decode()
    assert "nobody@contoso.com" in text
    assert "Remote Server returned '550 5.1.1 Recipient rejected'" in text


def test_a_message_without_recipients_is_returned_and_filed(env: Env) -> None:
    message_id = env.outbox(b"From: alice@contoso.com\r\nSubject: Lunch\r\n\r\nHi\r\n")
    run(env.service())

    assert env.hub.handoffs == []
    assert env.folder_of(message_id) == "sentitems"
    [ndr] = env.db.list_messages("alice", WellKnownFolder.INBOX.value).items
    assert "STOREDRV.Submit" in env.db.read_raw("alice", ndr.id).decode()


def test_the_running_service_wakes_when_a_message_is_submitted(env: Env) -> None:
    service = env.service(poll_interval=60.0)

    async def go() -> None:
        await service.start()
        try:
            await asyncio.sleep(0.05)
            message_id = await asyncio.to_thread(env.outbox, compose())
            for _ in range(100):
                if env.hub.handoffs and env.folder_of(message_id) == "sentitems":
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("the submitted message was not picked up")
        finally:
            await service.stop()

    asyncio.run(go())


# --------------------------------------------------------------------- the envelope


def prepare(head: bytes) -> Any:
    return prepare_submission(
        head,
        owner_addresses=["alice@contoso.com"],
        owner_primary="alice@contoso.com",
        fallback_message_id="<fallback@ex-ny1.contoso.com>",
        now=START,
    )


def test_folded_bcc_lines_leave_with_their_field() -> None:
    head = (
        b"From: alice@contoso.com\r\nBcc: a@contoso.com,\r\n b@contoso.com\r\n"
        b"To: c@contoso.com\r\nMessage-ID: <1@x>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\n"
        b"\r\nbody"
    )
    prepared = prepare(head)

    assert prepared.recipients == ("c@contoso.com", "a@contoso.com", "b@contoso.com")
    assert prepared.header == (
        b"From: alice@contoso.com\r\nTo: c@contoso.com\r\nMessage-ID: <1@x>\r\n"
        b"Date: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\n"
    )
    assert head[prepared.body_offset :] == b"body"


def test_a_header_section_that_never_ends_is_refused() -> None:
    with pytest.raises(SubmissionRefused):
        prepare(b"To: a@contoso.com\r\nX: " + b"y" * 300_000)


header_line = st.one_of(
    st.sampled_from(
        [b"To: bob@contoso.com", b"Bcc: secret@contoso.com", b"Cc: x@y.z, Z <q@r.s>", b" folded"]
    ),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(header_line, max_size=8),
    end=st.sampled_from([b"\r\n", b"\n"]),
    body=st.binary(max_size=60),
)
def test_no_header_section_crashes_preparation_and_bcc_never_leaves(
    lines: list[bytes], end: bytes, body: bytes
) -> None:
    head = b"".join(line + end for line in lines) + end + body
    try:
        prepared = prepare(head)
    except SubmissionRefused:
        return
    assert b"secret@contoso.com" not in prepared.header
    assert prepared.recipients
    assert prepared.header.endswith(b"\r\n")
    assert header_end(head) == prepared.body_offset


def test_a_pass_hands_its_messages_to_the_hub_over_one_session(env: Env, pki_dir: Path) -> None:
    # The real sender against a receiving hub double: one TLS and Exchange authentication
    # for the pass, RSET between the messages, each message once.
    pki = OrganizationPki.open_or_create(pki_dir, "Contoso")
    ids = [
        env.outbox(compose(message_id=f"<m{n}@contoso.com>", body=f"note {n}\r\n"))
        for n in range(3)
    ]

    async def go() -> tuple[int, Peer]:
        async with Peer(ADDRESSES["EX-NY1"], pki, name="EX-NY1") as peer:
            settings = replace(env.settings, port_offset=peer.port - 25)
            # The system clock: the certificates are checked against it.
            service = MailSubmissionService(
                settings, env.directory, Store(env.db), ADDRESSES.__getitem__, clock=SYSTEM_CLOCK
            )
            await service.start()
            try:
                return await service.run_once(), peer
            finally:
                await service.stop()

    handled, peer = asyncio.run(asyncio.wait_for(go(), 30))
    assert handled == 3
    assert [m.endswith(f"note {n}\r\n".encode()) for n, m in enumerate(peer.seen.messages)] == [
        True
    ] * 3
    assert peer.seen.client_ips == [ADDRESSES["EX-NY1"]]  # one connection
    assert peer.seen.authenticated == ["EX-NY1"]  # one Exchange authentication
    verbs = [c.split(" ", 1)[0].upper() for c in peer.seen.commands]
    assert verbs.count("RSET") == 2 and verbs.count("MAIL") == 3
    assert [env.folder_of(i) for i in ids] == ["sentitems"] * 3
