"""Values of the queue engine: Exchange's enums, routing decisions, records.

Names and values follow exchange-2010.md §5.1–5.2.  Records that the shell
shows (:class:`QueueInfo`, :class:`MessageInfo`) carry exactly the 2010
properties; :meth:`QueueInfo.properties` gives them under their Exchange
names, in Format-List order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sitemail.mailflow.envelope import Envelope
from sitemail.mailflow.tracking_log import TrackingEventId, TrackingSource

ZERO_GUID = "00000000-0000-0000-0000-000000000000"

SUBMISSION = "Submission"
UNREACHABLE = "Unreachable"
POISON = "Poison"
# NextHopDomain of the three special queues (§5.1).
SUBMISSION_NEXT_HOP = "Submission"
UNREACHABLE_NEXT_HOP = "Unreachable Domain"
POISON_NEXT_HOP = "Poison Message"
#: The envelope property (``Envelope.headers``) naming the hub that keeps a shadow
#: copy of a message we took (shadow redundancy; :mod:`.shadow`).
SHADOW_PEER = "ShadowServer"


class DeliveryType(StrEnum):
    """Microsoft.Exchange.Data.DeliveryType as of 2010 (no 2013 additions)."""

    UNDEFINED = "Undefined"
    DNS_CONNECTOR_DELIVERY = "DnsConnectorDelivery"
    MAPI_DELIVERY = "MapiDelivery"
    NON_SMTP_GATEWAY_DELIVERY = "NonSmtpGatewayDelivery"
    SMART_HOST_CONNECTOR_DELIVERY = "SmartHostConnectorDelivery"
    SMTP_RELAY_TO_REMOTE_AD_SITE = "SmtpRelayToRemoteAdSite"
    SMTP_RELAY_TO_TI_RG = "SmtpRelayToTiRg"
    SMTP_RELAY_WITHIN_AD_SITE = "SmtpRelayWithinAdSite"
    SMTP_RELAY_WITHIN_AD_SITE_TO_EDGE = "SmtpRelayWithinAdSiteToEdge"
    UNREACHABLE = "Unreachable"
    SHADOW_REDUNDANCY = "ShadowRedundancy"
    HEARTBEAT = "Heartbeat"
    DELIVERY_AGENT = "DeliveryAgent"


class QueueStatus(StrEnum):
    ACTIVE = "Active"
    CONNECTING = "Connecting"
    READY = "Ready"
    RETRY = "Retry"
    SUSPENDED = "Suspended"


class MessageStatus(StrEnum):
    ACTIVE = "Active"
    READY = "Ready"
    RETRY = "Retry"
    SUSPENDED = "Suspended"
    PENDING_REMOVE = "PendingRemove"
    PENDING_SUSPEND = "PendingSuspend"


class QueueKind(StrEnum):
    SUBMISSION = "submission"
    UNREACHABLE = "unreachable"
    POISON = "poison"
    DELIVERY = "delivery"
    SHADOW = "shadow"  # copies kept until the next hop reports delivery (never sent)


# --------------------------------------------------------------------------
# What the categorizer decides for each recipient
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NextHop:
    """Queue the recipient for delivery to this next hop.

    ``key`` names the queue: recipients with the same key share one queue
    (and so one ``<SERVER>\\<n>`` identity).  It defaults to delivery type
    plus next hop domain, which is what Exchange groups by.
    """

    delivery_type: DeliveryType
    next_hop_domain: str
    key: str = ""
    tls_domain: str = ""
    next_hop_connector: str = ZERO_GUID

    @property
    def queue_key(self) -> str:
        return self.key or f"{self.delivery_type.value}:{self.next_hop_domain.lower()}"


@dataclass(frozen=True, slots=True)
class UnreachableRoute:
    """No route: the recipient waits in the Unreachable queue (§6.1 step 5)."""

    reason: str


@dataclass(frozen=True, slots=True)
class FailRecipient:
    """Fail the recipient now with an NDR.

    ``reply`` is e.g. ``550 5.1.1 RESOLVER.ADR.RecipNotFound; not found``.
    """

    reply: str


RouteDecision = NextHop | UnreachableRoute | FailRecipient


# --------------------------------------------------------------------------
# What workers take out of the store
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    id: int  # the store's recipient id: outcomes and routes refer to it
    address: str
    notify: str | None = None
    orcpt: str | None = None


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A queue as the pipeline knows it."""

    queue_id: int
    identity: str  # "<SERVER>\Submission", "<SERVER>\12"...
    kind: QueueKind
    delivery_type: DeliveryType
    next_hop_domain: str
    key: str
    tls_domain: str = ""
    next_hop_connector: str = ZERO_GUID


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One message in one queue, with the recipients it holds there.

    ``envelope`` is the envelope as received, with ``recipients`` narrowed to
    this queue's.  ``body``: the message itself when the queue database holds
    it (bodies up to 64 KiB), read from there instead of a file; otherwise
    ``body_path`` is the spool file (read it, never write it).  Use
    :attr:`source` for whichever it is.
    """

    item_id: int
    identity: str  # "<SERVER>\<queue>\<item id>"
    internal_id: int  # the InternalId given at accept()
    envelope: Envelope
    recipients: tuple[QueuedRecipient, ...]
    size: int
    body_path: Path
    retry_count: int = 0
    last_error: str = ""
    body: bytes | None = None

    @property
    def source(self) -> bytes | Path:
        """The message's octets: in memory when the database held them, else its file."""
        return self.body if self.body is not None else self.body_path


@dataclass(frozen=True, slots=True)
class DeliveryBatch:
    """Messages locked for one delivery attempt: report each, then finish the lease."""

    lease: int
    queue: QueueRef
    messages: tuple[QueuedMessage, ...]


class Outcome(StrEnum):
    DELIVERED = "delivered"  # 250 from the next hop, or stored in the mailbox
    FAILED = "failed"  # 5xx: NDR now
    DEFERRED = "deferred"  # 4xx for this message: retry it after MessageRetryInterval


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    recipient_id: int
    outcome: Outcome
    reply: str = ""  # the reply as text, "550 5.1.1 User unknown"
    # A FAILED reply came from the next hop ("Remote Server returned '...'")
    # rather than from this server ("#550 ... ##").
    remote: bool = True
    remote_mta: str | None = None
    duplicate: bool = False
    """DELIVERED: the mailbox had it already (same Message-ID and submit time): the
    store discarded it, and tracking says DUPLICATEDELIVER."""

    @classmethod
    def delivered(
        cls,
        recipient_id: int,
        reply: str = "250 2.6.0 Queued mail for delivery",
        *,
        duplicate: bool = False,
    ) -> RecipientOutcome:
        return cls(recipient_id, Outcome.DELIVERED, reply, duplicate=duplicate)

    @classmethod
    def failed(
        cls, recipient_id: int, reply: str, *, remote: bool = True, remote_mta: str | None = None
    ) -> RecipientOutcome:
        return cls(recipient_id, Outcome.FAILED, reply, remote, remote_mta)

    @classmethod
    def deferred(cls, recipient_id: int, reply: str) -> RecipientOutcome:
        return cls(recipient_id, Outcome.DEFERRED, reply)


@dataclass(frozen=True, slots=True)
class RouteResult:
    queued: tuple[tuple[str, int], ...]  # (queue identity, message item id) created
    failed: tuple[str, ...]  # recipients failed now
    dsn_ids: tuple[int, ...]  # InternalIds of the NDRs submitted


@dataclass(frozen=True, slots=True)
class ReportResult:
    delivered: tuple[str, ...]
    failed: tuple[str, ...]
    deferred: tuple[str, ...]
    dsn_ids: tuple[int, ...]
    message_done: bool  # nothing of this message is left in this queue


@dataclass(frozen=True, slots=True)
class SweepResult:
    expired: tuple[str, ...] = ()  # message identities that expired (NDR'd)
    delay_notified: tuple[int, ...] = ()  # InternalIds that got a delay DSN
    dsn_ids: tuple[int, ...] = ()
    queues_removed: tuple[str, ...] = ()
    resubmitted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`QueueStore.open` found and did."""

    orphan_spool_files: int = 0  # bodies of messages never accepted: deleted
    requeued: tuple[int, ...] = ()  # items that were in flight: back to Ready
    poisoned: tuple[int, ...] = ()  # items moved to the Poison queue
    missing_bodies: tuple[int, ...] = ()  # accepted messages whose body is nowhere


# --------------------------------------------------------------------------
# Records for Get-Queue / Get-Message
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueInfo:
    identity: str
    delivery_type: DeliveryType
    next_hop_domain: str
    tls_domain: str
    next_hop_connector: str
    status: QueueStatus
    message_count: int
    last_error: str
    retry_count: int
    last_retry_time: datetime | None
    next_retry_time: datetime | None
    is_valid: bool = True

    def properties(self) -> list[tuple[str, object]]:
        """The Get-Queue properties under their Exchange names (Format-List order)."""
        return [
            ("Identity", self.identity),
            ("DeliveryType", self.delivery_type.value),
            ("NextHopDomain", self.next_hop_domain),
            ("TlsDomain", self.tls_domain),
            ("NextHopConnector", self.next_hop_connector),
            ("Status", self.status.value),
            ("MessageCount", self.message_count),
            ("LastError", self.last_error),
            ("RetryCount", self.retry_count),
            ("LastRetryTime", self.last_retry_time),
            ("NextRetryTime", self.next_retry_time),
            ("IsValid", self.is_valid),
        ]


@dataclass(frozen=True, slots=True)
class MessageInfo:
    identity: str
    from_address: str
    status: MessageStatus
    size: int
    scl: int
    queue: str
    date_received: datetime
    expiration_time: datetime | None  # None in the Poison queue: never expires
    last_error: str
    retry_count: int
    subject: str
    recipients: tuple[str, ...]
    internet_message_id: str

    def properties(self) -> list[tuple[str, object]]:
        """The Get-Message properties under their Exchange names."""
        return [
            ("Identity", self.identity),
            ("FromAddress", self.from_address),
            ("Status", self.status.value),
            ("Size", self.size),
            ("SCL", self.scl),
            ("Queue", self.queue),
            ("DateReceived", self.date_received),
            ("ExpirationTime", self.expiration_time),
            ("LastError", self.last_error),
            ("RetryCount", self.retry_count),
            ("Subject", self.subject),
            ("Recipients", list(self.recipients)),
            ("InternetMessageId", self.internet_message_id),
        ]


# --------------------------------------------------------------------------
# Events for message tracking and for waking workers
# --------------------------------------------------------------------------


class QueueEventKind(StrEnum):
    RECEIVED = "received"  # accepted into Submission
    ROUTED = "routed"  # categorized into delivery/Unreachable queues
    DELIVERED = "delivered"
    FAILED = "failed"  # recipients failed (5xx, expiry, admin removal with NDR)
    DEFERRED = "deferred"  # a message-level 4xx
    DSN = "dsn"  # a report was generated and submitted
    POISONED = "poisoned"
    REMOVED = "removed"  # admin removal without NDR
    RESUBMITTED = "resubmitted"  # back to Submission
    QUEUE_RETRY = "queue-retry"  # a connection attempt failed: queue in Retry
    CHANGED = "changed"  # suspend/resume/retry-now: a scheduler should look again


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """Something happened to a message or a queue (delivered after the commit).

    ``tracking``/``source`` say which message tracking row the event
    stands for (None: no row); :func:`sitemail.transport.queue.tracking.write_tracking`
    writes it.
    """

    kind: QueueEventKind
    time: datetime
    tracking: TrackingEventId | None = None
    source: TrackingSource | None = None
    internal_id: int | None = None
    internet_message_id: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    size: int | None = None
    subject: str = ""
    queue: str = ""  # queue identity
    delivery_type: DeliveryType | None = None
    next_hop_domain: str = ""
    reference: str = ""  # for a DSN: the Message-ID of the original
    client_ip: str = ""
    client_hostname: str = ""
    connector_id: str = ""
    detail: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())
