"""``MSExchangeMailSubmission``: hands the messages waiting in Outboxes to a hub of the site.

A client (OWA, or anything calling the store's ``submit``) moves a
composed message to the Outbox.  This service, on the Mailbox server, finds
it there, sends it to a Hub Transport server of the **mailbox server's own
site**, and files it in Sent Items (``complete_submission``), unless the
client flagged it deleted to send it without a copy.  In Exchange
2010 that hand-off is the store driver over RPC; in sitemail every hop is a
network connection, so it is SMTP with the intra-organization sender:
X-ANONYMOUSTLS and X-EXPS EXCHANGEAUTH with this server's certificate, as
hub-to-hub traffic (:func:`sitemail.mailflow.smtp_sender.send_message`).
A co-located hub is tried first, then the site's others (Exchange 2010's
preference for the local Hub Transport role).

The envelope comes from the message's From/To/Cc/Bcc headers, and Bcc
leaves the bytes (:mod:`.submission_envelope`).  What a hub has accepted is
written to the journal (:mod:`.submission_journal`) before the message
leaves the Outbox, so a crash, a restart or a second submission of the same
Message-ID never sends it twice.  Each hand-off writes a ``SUBMIT`` row
(source ``STOREDRIVER``) to the server's message tracking log.

Recipients a hub refuses for good (5xx) get a non-delivery report in the
sender's Inbox; when no hub answers, the message stays in the Outbox and is
tried again with a growing pause.

The store is the ``MSExchangeIS`` service of the same process: this
service reads and moves messages through its open databases and hears of
every committed change from them, so a submitted message leaves within
moments without polling (a slow poll remains as a safety net).  Opening
the database files a second time would give a second writer on each file
and no change notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailbox.database import PendingSubmission, StoreDatabase
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.records import MessageSummary
from sitemail.mailbox.rows import to_us
from sitemail.mailbox.service import InformationStoreService
from sitemail.mailbox.submission_envelope import (
    MAX_HEADER_SECTION,
    PreparedSubmission,
    SubmissionRefused,
    derived_message_id,
    header_end,
    message_key,
    prepare_submission,
)
from sitemail.mailbox.submission_journal import (
    JOURNAL_FILE,
    SubmissionJournal,
    SubmissionState,
)
from sitemail.mailflow import dsn
from sitemail.mailflow.envelope import EnvelopeRecipient
from sitemail.mailflow.log_files import VERSION_2010, LogLimits
from sitemail.mailflow.outbound import (
    BodyReadError,
    BodySource,
    OutboundMessage,
    RecipientResult,
    SenderSettings,
    SendResult,
    Target,
)
from sitemail.mailflow.send_decision import SendPolicy, reply_text
from sitemail.mailflow.smtp_sender import NextHopConnection, send_message
from sitemail.mailflow.tracking_log import MessageTrackingLog, TrackingEventId, TrackingSource
from sitemail.org.directory import Directory
from sitemail.org.model import Mailbox, Organization, Server
from sitemail.org.pki import PeerVerifier, server_cert_files
from sitemail.org.version_facts import facts_for
from sitemail.server.context import ProcessContext
from sitemail.server.services import DISPLAY_NAMES, ServiceError, ServiceHost

log = logging.getLogger("sitemail.mailbox.submission")

SERVICE_NAME = "MSExchangeMailSubmission"
SMTP_PORT = 25
#: Outbox messages looked at per pass, oldest first.
BATCH = 100
#: The safety-net pass when no store change wakes the service.
POLL_INTERVAL = 10.0
#: Pauses before trying again a message no hub took (the last one repeats).
RETRY_INTERVALS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
#: How long the journal remembers a finished submission.
JOURNAL_RETENTION = timedelta(days=30)
#: Why a message no hub can take stays in the Outbox (sitemail's wording).
NO_HUB_REPLY = "451 4.4.0 No Hub Transport server is available in site {site}"
#: The NDR line for a message that names no recipient (sitemail's wording,
#: in the form of Exchange's store driver replies; not verified against 2010).
NO_RECIPIENTS_REPLY = "550 5.1.3 STOREDRV.Submit; message has no recipients"


class StoreProvider(Protocol):
    def databases(self) -> list[StoreDatabase]: ...


Sender = Callable[..., Awaitable[SendResult]]
"""``send_message``'s signature: (targets, message, body, settings, *, local_address=...)."""


@dataclass(frozen=True, slots=True)
class SubmissionSettings:
    """Where this server is and what it is called."""

    server: str
    fqdn: str
    site: str
    address: str
    home: Path
    pki_dir: Path
    port_offset: int = 0


class MailSubmissionService:
    """The Mail Submission service of one Mailbox server."""

    name = SERVICE_NAME
    display_name = DISPLAY_NAMES[SERVICE_NAME]  # "Microsoft Exchange Mail Submission"

    def __init__(
        self,
        settings: SubmissionSettings,
        directory: Directory,
        store: StoreProvider,
        address_of: Callable[[str], str],
        *,
        clock: Clock = SYSTEM_CLOCK,
        send: Sender = send_message,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.store = store
        self.address_of = address_of
        self.clock = clock
        self._send = send
        self.poll_interval = poll_interval
        self.journal: SubmissionJournal | None = None
        self.tracking: MessageTrackingLog | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriptions: dict[int, tuple[StoreDatabase, Callable[[], None]]] = {}
        # (database, mailbox, store id) -> (failed attempts, monotonic time of the next try)
        self._retry: dict[tuple[str, str, int], tuple[int, float]] = {}
        self._rotation = 0
        # One pass at a time: two passes would both find a message in the Outbox.
        self._pass_lock = asyncio.Lock()

    @classmethod
    def from_context(
        cls, ctx: ProcessContext, server: Server, host: ServiceHost | None
    ) -> MailSubmissionService:
        """The service of the server process ``ctx``, through ``host``'s MSExchangeIS."""
        if host is None:
            raise ServiceError(f"{SERVICE_NAME} needs the MSExchangeIS service of its process")
        store = host.get("MSExchangeIS")
        if not isinstance(store, InformationStoreService):
            raise ServiceError(f"{SERVICE_NAME} needs the Exchange 2010 MSExchangeIS service")
        settings = SubmissionSettings(
            server=server.name,
            fqdn=server.fqdn,
            site=server.site,
            address=ctx.address,
            home=ctx.home,
            pki_dir=ctx.pki_dir,
            port_offset=ctx.port_offset,
        )
        return cls(settings, ctx.directory, store, ctx.address_of, clock=ctx.clock)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        journal_path = self.settings.home / "mailbox" / JOURNAL_FILE
        self.journal = await asyncio.to_thread(SubmissionJournal, journal_path)
        self.tracking = await asyncio.to_thread(self._tracking_log)
        cutoff = to_us(self.clock.now() - JOURNAL_RETENTION)
        await asyncio.to_thread(self.journal.prune, cutoff)
        self._wake = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _, unsubscribe in self._subscriptions.values():
            unsubscribe()
        self._subscriptions.clear()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self.tracking is not None:
            self.tracking.close()
            self.tracking = None

    def _tracking_log(self) -> MessageTrackingLog | None:
        server = self.directory.get(Server, self.settings.server)
        t = server.transport if server is not None else None
        if t is None or not t.message_tracking_log_enabled or not t.message_tracking_log_path:
            return None
        # The hub's MSExchangeTransport writes to the same folder: LogWriter shares it.
        return MessageTrackingLog(
            self.settings.home / t.message_tracking_log_path,
            clock=self.clock,
            limits=LogLimits(
                max_file_size=t.message_tracking_log_max_file_size,
                max_directory_size=t.message_tracking_log_max_directory_size,
                max_age=t.message_tracking_log_max_age,
            ),
            subject_logging_enabled=t.message_tracking_log_subject_logging_enabled,
            version=facts_for(server.version).log_version if server is not None else VERSION_2010,
        )

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._follow_databases()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pass must not end the service
                log.exception("a Mail Submission pass failed")
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
            # that arrives as the event is set, and stop() would wait for the next wake.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_pause()):
                    await self._wake.wait()

    def _next_pause(self) -> float:
        now = self.clock.monotonic()
        due = [when - now for _, when in self._retry.values()]
        return max(0.05, min([self.poll_interval, *due]))

    def _follow_databases(self) -> None:
        """Hear of every change of the databases open now (they change when MSExchangeIS
        restarts)."""
        current = {id(db): db for db in self.store.databases()}
        for key in list(self._subscriptions):
            if key not in current:
                self._subscriptions.pop(key)[1]()
        for key, db in current.items():
            if key not in self._subscriptions:
                self._subscriptions[key] = (db, db.subscribe(self._changed))

    def _changed(self, _change: object) -> None:
        # Called in the thread that committed the change.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------ one pass

    async def run_once(self) -> int:
        """Submit what waits in the Outboxes now and is due; returns how many were handled."""
        async with self._pass_lock:
            return await self._pass()

    async def _pass(self) -> int:
        # A pass's messages go to the hub over one SMTP session, RSET between them (one
        # TLS handshake and Exchange authentication per pass, not per message).
        hub = _HubSession(self)
        try:
            return await self._pass_over(hub)
        finally:
            await hub.close()

    async def _pass_over(self, hub: _HubSession) -> int:
        handled = 0
        waiting: set[tuple[str, str, int]] = set()
        for db in self.store.databases():
            try:
                pending = await asyncio.to_thread(db.pending_submissions, BATCH)
            except Exception as exc:  # the database may be closing under us
                log.warning("cannot read the Outboxes of %s: %s", db.name, exc)
                waiting.update(k for k in self._retry if k[0] == db.name)
                continue
            for item in pending:
                key = (db.name, item.mailbox, item.message.id)
                waiting.add(key)
                retry = self._retry.get(key)
                if retry is not None and retry[1] > self.clock.monotonic():
                    continue
                try:
                    done = await self._submit(db, item, hub)
                except (StoreError, BodyReadError, OSError) as exc:
                    log.warning(
                        "submission of message %d of %s failed: %s", item.message.id, key[1], exc
                    )
                    done = False
                if done:
                    self._retry.pop(key, None)
                    handled += 1
                else:
                    attempts = (retry[0] if retry else 0) + 1
                    pause = RETRY_INTERVALS[min(attempts, len(RETRY_INTERVALS)) - 1]
                    self._retry[key] = (attempts, self.clock.monotonic() + pause)
        # Messages that left the Outbox otherwise (deleted, moved back) need no retry.
        self._retry = {k: v for k, v in self._retry.items() if k in waiting}
        return handled

    async def _submit(
        self, db: StoreDatabase, item: PendingSubmission, session: _HubSession
    ) -> bool:
        """One Outbox message; True when it left the Outbox, False to try again later."""
        assert self.journal is not None
        journal = self.journal
        mailbox, summary = item.mailbox, item.message
        owner = await asyncio.to_thread(self.directory.get, Mailbox, mailbox)
        primary = owner.primary_smtp_address if owner else await self._default_address(mailbox)
        head = await asyncio.to_thread(_read_head, db, mailbox, summary.id)
        fallback = derived_message_id(
            db.name, mailbox, summary.id, summary.received_at.isoformat(), self.settings.fqdn
        )
        try:
            prepared = prepare_submission(
                head,
                owner_addresses=owner.all_addresses if owner else [primary],
                owner_primary=primary,
                fallback_message_id=fallback,
                now=self.clock.now(),
            )
        except SubmissionRefused as exc:
            log.warning("message %d of %s cannot be submitted: %s", summary.id, mailbox, exc)
            await self._return_to_sender(
                db, mailbox, primary, summary, head, fallback, [(primary, NO_RECIPIENTS_REPLY)]
            )
            await self._complete(db, mailbox, summary)
            return True
        key = message_key(prepared.message_id)
        record = await asyncio.to_thread(journal.get, db.name, mailbox, key)
        if record is not None and record.state is SubmissionState.DONE:
            # Handed off before (a crash before the move, or submitted again): file it only.
            log.info("message %s was submitted before; filing it in Sent Items", key)
            await self._complete(db, mailbox, summary)
            return True
        taken = record.accepted if record is not None else frozenset()
        remaining = [r for r in prepared.recipients if r.casefold() not in taken]
        result = await session.send(
            OutboundMessage(
                prepared.mail_from,
                tuple(EnvelopeRecipient(r) for r in remaining),
                size=len(prepared.header) + max(0, summary.size - prepared.body_offset),
            ),
            self._body(db, mailbox, summary.id, prepared),
        )
        if result is None:
            return False  # no hub in the site, or none answered earlier in this pass
        if result.all_targets_failed:
            log.warning(
                "no hub of site %s took message %s: %s", self.settings.site, key, result.last_error
            )
            return False
        final = [*result.delivered, *result.failed]
        hub = result.target.host if result.target is not None else ""
        accepted = taken | {r.address.casefold() for r in final}
        state = SubmissionState.PARTIAL if result.deferred else SubmissionState.DONE
        if final:
            await asyncio.to_thread(
                journal.record,
                db.name,
                mailbox,
                key,
                state=state,
                accepted=accepted,
                hub=hub,
                now_us=to_us(self.clock.now()),
            )
        if result.delivered:
            self._track_submit(db.name, mailbox, summary, prepared, result)
        if result.failed:
            await self._return_to_sender(
                db,
                mailbox,
                primary,
                summary,
                head,
                prepared.message_id,
                [(r.address, reply_text(r.reply)) for r in result.failed],
                remote=result.failed,
            )
        if result.deferred:
            return False
        await self._complete(db, mailbox, summary)
        return True

    # ------------------------------------------------------------ helpers

    @staticmethod
    async def _complete(db: StoreDatabase, mailbox: str, summary: MessageSummary) -> None:
        """File the message in Sent Items, or drop it when its sender asked for no copy.

        A client that sends without keeping a copy (EWS's SendOnly) submits the
        message flagged deleted: MAPI's delete-after-submit, in the store's flags.
        """
        await asyncio.to_thread(
            db.complete_submission, mailbox, summary.id, save_copy=not summary.flags.deleted
        )

    async def _default_address(self, mailbox: str) -> str:
        orgs = await asyncio.to_thread(self.directory.list, Organization)
        domain = orgs[0].default_domain if orgs else self.settings.fqdn.partition(".")[2]
        return f"{mailbox}@{domain}"

    def _targets(self) -> list[Target]:
        """The hubs of this server's site: this server first if it is one, then the others
        in turn (each pass starts with the next, to spread the load)."""
        site = self.settings.site.casefold()
        hubs = sorted(
            (s for s in self.directory.list(Server) if s.site.casefold() == site and s.is_hub),
            key=lambda s: s.name.casefold(),
        )
        local = [h for h in hubs if h.name.casefold() == self.settings.server.casefold()]
        others = [h for h in hubs if h not in local]
        if others:
            self._rotation = (self._rotation + 1) % len(others)
            others = others[self._rotation :] + others[: self._rotation]
        port = SMTP_PORT + self.settings.port_offset
        return [Target(h.fqdn, self.address_of(h.name), port) for h in local + others]

    def _sender_settings(self) -> SenderSettings:
        pki = self.settings.pki_dir
        return SenderSettings(
            fqdn=self.settings.fqdn,
            server_name=self.settings.server,
            policy=SendPolicy.intra_org(),
            cert_files=server_cert_files(pki, self.settings.server),
            verifier=PeerVerifier.from_file(pki / "ca.pem", clock=self.clock),
            connect_timeout=10.0,
            reply_timeout=120.0,
        )

    def _body(
        self, db: StoreDatabase, mailbox: str, store_id: int, prepared: PreparedSubmission
    ) -> BodySource:
        """The rewritten header section, then the stored body, read a chunk at a time."""

        async def chunks() -> AsyncIterator[bytes]:
            yield prepared.header
            reader = await asyncio.to_thread(
                db.open_raw, mailbox, store_id, start=prepared.body_offset
            )
            try:
                while chunk := await asyncio.to_thread(reader.read):
                    yield chunk
            finally:
                await asyncio.to_thread(reader.close)

        return chunks

    def _track_submit(
        self,
        database: str,
        mailbox: str,
        summary: MessageSummary,
        prepared: PreparedSubmission,
        result: SendResult,
    ) -> None:
        """The SUBMIT row: this mailbox server, the hub that took the message as the client."""
        if self.tracking is None:
            return
        target = result.target
        context = (
            f"MDB:{database}, Mailbox:{mailbox}, Event:{summary.id}, MessageClass:IPM.Note, "
            f"CreationTime:{summary.received_at.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
        )
        try:
            self.tracking.log(
                TrackingEventId.SUBMIT,
                TrackingSource.STOREDRIVER,
                message_id=prepared.message_id,
                sender_address=prepared.mail_from,
                recipients=[r.address for r in result.delivered],
                recipient_status=[],
                server_hostname=self.settings.fqdn,
                server_ip=self.settings.address,
                client_hostname=target.host if target else "",
                client_ip=target.address if target else "",
                source_context=context,
                total_bytes=summary.size,
                message_subject=prepared.subject,
                return_path=prepared.mail_from,
                directionality="Originating",
            )
        except OSError as exc:  # a full disk must not stop mail
            log.warning("cannot write the message tracking log: %s", exc)

    async def _return_to_sender(
        self,
        db: StoreDatabase,
        mailbox: str,
        sender: str,
        summary: MessageSummary,
        head: bytes,
        message_id: str,
        failures: Sequence[tuple[str, str]],
        remote: Sequence[RecipientResult] = (),
    ) -> None:
        """An NDR in the sender's Inbox, once (its delivery id names the failures)."""
        recipients = (
            [dsn.remote_failure(r.address, reply_text(r.reply)) for r in remote]
            if remote
            else [dsn.local_failure(address, reply) for address, reply in failures]
        )
        original = dsn.OriginalMessage(
            sender=sender,
            internet_message_id=message_id,
            subject=summary.subject,
            headers=_header_block(head),
            received_at=summary.received_at,
        )
        now = self.clock.now()
        origin = dsn.ReportOrigin(
            generating_server=self.settings.fqdn,
            from_address=dsn.default_dsn_from(self.settings.fqdn),
            date=now,
            message_id=derived_message_id(
                db.name, mailbox, summary.id, f"ndr/{message_id}", self.settings.fqdn
            ),
        )
        report = dsn.build_ndr(original, recipients, origin)
        failed = ",".join(sorted(a.casefold() for a, _ in failures))
        delivery_id = f"MailSubmission:{message_key(message_id)}:{failed}"[:500]
        await asyncio.to_thread(db.deliver, mailbox, delivery_id, report)


class _HubSession:
    """The hand-off of one pass: opened at its first message, closed at its end.

    With the real sender, a :class:`NextHopConnection` (messages over one session);
    a sender given to the service (tests, tools) is called once per message.  Once
    no hub answered, the pass's other messages wait for the next pass instead of
    trying every hub again.
    """

    def __init__(self, service: MailSubmissionService) -> None:
        self.service = service
        self.connection: NextHopConnection | None = None
        self.targets: list[Target] | None = None
        self.failed = False

    async def send(self, message: OutboundMessage, body: BodySource) -> SendResult | None:
        service = self.service
        if self.failed:
            return None
        if self.targets is None:
            self.targets = await asyncio.to_thread(service._targets)
        if not self.targets:
            log.warning(NO_HUB_REPLY.format(site=service.settings.site))
            self.failed = True
            return None
        if service._send is not send_message:
            result = await service._send(
                self.targets,
                message,
                body,
                service._sender_settings(),
                local_address=service.settings.address,
            )
        else:
            if self.connection is None:
                self.connection = NextHopConnection(
                    self.targets,
                    service._sender_settings(),
                    local_address=service.settings.address,
                )
            result = await self.connection.send(message, body)
        self.failed = result.all_targets_failed
        return result

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


def _read_head(db: StoreDatabase, mailbox: str, store_id: int) -> bytes:
    with db.open_raw(mailbox, store_id, length=MAX_HEADER_SECTION) as reader:
        return b"".join(iter(reader.read, b""))


def _header_block(head: bytes) -> bytes:
    end = header_end(head)
    return head[: end if end is not None else len(head)]
