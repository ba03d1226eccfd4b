"""Helpers for the queue engine tests: a store on a ManualClock, message helpers, crashes."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

from sitemail.clock import ManualClock
from sitemail.mailflow.envelope import Envelope, EnvelopeRecipient
from sitemail.org.model import TransportSettings
from sitemail.transport.queue import (
    DeliveryType,
    NextHop,
    QueueEvent,
    QueueStore,
    RouteDecision,
)

SERVER = "EX01"
FQDN = "ex01.contoso.com"
SHANDONG = NextHop(DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE, "Shandong")
MAILBOX = NextHop(DeliveryType.MAPI_DELIVERY, "parizien.altin.com")


@dataclass
class Env:
    """A store, its clock and everything it told its listeners."""

    home: Path
    clock: ManualClock
    settings: TransportSettings
    store: QueueStore
    events: list[QueueEvent] = field(default_factory=list)

    def reopen(self) -> QueueStore:
        self.store.close()
        self.store = open_store(self.home, self.clock, self.settings, self.events)
        return self.store

    def submit(
        self,
        *recipients: str,
        sender: str = "alice@contoso.com",
        subject: str = "Quarterly report",
        body: bytes = b"Hello.\r\n",
        notify: str | None = None,
        message_id: str | None = None,
    ) -> int:
        mid = message_id or f"<m{len(self.events)}.{self.clock.monotonic()}@contoso.com>"
        spool = self.store.open_spool()
        spool.write(
            f"From: {sender or 'postmaster@contoso.com'}\r\nSubject: {subject}\r\n"
            f"Message-ID: {mid}\r\n\r\n".encode()
        )
        spool.write(body)
        envelope = Envelope(
            mail_from=sender,
            recipients=tuple(EnvelopeRecipient(r, notify=notify) for r in recipients),
            internet_message_id=mid,
            received_at=self.clock.now(),
            subject=subject,
            client_ip="10.1.0.11",
        )
        return self.store.accept(spool, envelope)

    def categorize(self, decide: Callable[[str], RouteDecision] = lambda _: SHANDONG) -> None:
        """Route everything in Submission with ``decide(recipient address)``."""
        for msg in self.store.take_for_categorization(limit=1000):
            self.store.route(msg.item_id, {r.id: decide(r.address) for r in msg.recipients})

    def reports(self) -> list[Report]:
        """The DSNs/NDRs waiting in Submission, parsed."""
        return [
            Report.of(parse(self.store.export_message(info.identity)))
            for info in self.store.get_messages(f"{SERVER}\\Submission")
            if info.from_address == "<>"
        ]


@dataclass(frozen=True)
class Report:
    """A multipart/report taken apart (RFC 3464)."""

    subject: str
    to: str
    text: str  # the text/plain part
    per_message: Message  # the first block of message/delivery-status
    recipients: list[Message]  # its per-recipient blocks
    headers: str  # text/rfc822-headers

    @classmethod
    def of(cls, msg: EmailMessage) -> Report:
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "delivery-status"
        text, status, headers = list(msg.iter_parts())
        assert isinstance(text, EmailMessage) and isinstance(headers, EmailMessage)
        assert status.get_content_type() == "message/delivery-status"
        payload = status.get_payload()
        assert isinstance(payload, list)
        blocks = [b for b in payload if isinstance(b, Message)]
        return cls(
            subject=str(msg["Subject"]),
            to=str(msg["To"]),
            text=str(text.get_content()),
            per_message=blocks[0],
            recipients=blocks[1:],
            headers=bytes(headers.get_payload(decode=True)).decode(),
        )


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def open_store(
    home: Path, clock: ManualClock, settings: TransportSettings, events: list[QueueEvent]
) -> QueueStore:
    return QueueStore.open(
        home, server=SERVER, fqdn=FQDN, clock=clock, settings=settings, listeners=[events.append]
    )


def crash_in_child(home: Path, clock: ManualClock, work: Callable[[QueueStore], None]) -> None:
    """Open the store in a forked child, do ``work``, and die by SIGKILL (a real crash)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            store = QueueStore.open(home, server=SERVER, fqdn=FQDN, clock=clock)
            work(store)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
