"""The hand-off from an SMTP receive session to the transport's durable queue.

The receive session streams the message body into a :class:`SpoolWriter`
(bounded memory, straight to disk), then calls :meth:`MessageAcceptor.accept`
with the envelope.  ``accept`` returns only once the message and its envelope
are on disk (fsync): only then may the session answer 250.  A crash at any
moment before that loses nothing that was acknowledged; a spool file without
an accepted envelope is garbage that recovery removes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class EnvelopeRecipient:
    address: str
    notify: str | None = None  # RFC 3461 NOTIFY=
    orcpt: str | None = None  # RFC 3461 ORCPT=


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "" for the null reverse-path <>
    recipients: tuple[EnvelopeRecipient, ...]
    internet_message_id: str  # the Message-ID header, "<...>" (generated when absent)
    received_at: datetime
    client_ip: str = ""
    client_hostname: str = ""  # the HELO/EHLO argument
    connector_id: str = ""  # "<SERVER>\<connector>", for tracking and logs
    auth_as: str | None = None  # who authenticated: a mailbox, a server, or None
    body_type: str | None = None  # 7BIT | 8BITMIME | BINARYMIME
    ret: str | None = None  # RFC 3461 RET=
    envid: str | None = None  # RFC 3461 ENVID=
    subject: str = ""
    source: str = "SMTP"  # SMTP | STOREDRIVER | DSN (message tracking source)
    headers: dict[str, str] = field(default_factory=dict)  # extra transport properties


class SpoolWriter(Protocol):
    """A message body on its way to disk."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def abort(self) -> None:
        """Discard what was written (the session refused the message)."""
        ...


class MessageAcceptor(Protocol):
    def open_spool(self) -> SpoolWriter: ...

    def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        """Make the message durable and queue it for categorization.

        Returns the InternalId shown in ``250 2.6.0 <id> [InternalId=N] Queued mail
        for delivery``.  Raises :class:`AcceptError` when the store cannot take it.
        """
        ...


class AcceptError(Exception):
    """The store could not make the message durable (disk full, database locked...)."""


class AcceptOutcomeUnknown(Exception):
    """The store was asked and no answer came: the message may or may not be queued.

    A receive worker whose transport process died (or hung) between request
    and answer cannot know.  The session then closes the connection without a
    reply, as a crash would: a 4xx would tell the client the message was not
    taken, and it may well have been (the client retries either way; a
    duplicate is possible, a loss is not).
    """
