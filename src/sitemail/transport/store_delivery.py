"""Delivering a queue batch into mailboxes: the hub's MapiDelivery queues and the
Internet host's local delivery run this one loop; each says how it words the outcomes.

Per recipient, the delivery id is the store's duplicate key (Message-ID and client
submit time, :func:`~sitemail.transport.headers.delivered_to_key`), so a message the
queue delivers again after a crash (between the store's commit and the queue's report)
is stored once, and the store's answer says when it was a duplicate.  That is what
lets the whole batch go to the store in one call and be reported to the queue in one
transaction (one commit each, not one per recipient).  An unavailable store retries
the whole queue; an over-size message fails the recipient; other store errors defer it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sitemail.mailbox.delivery_batch import BatchMessage, DeliveryAnswer
from sitemail.mailbox.errors import MailboxNotFound, MessageTooLarge, StoreError, StoreUnavailable
from sitemail.transport.headers import client_submit_time, delivered_to_key
from sitemail.transport.queue import DeliveryBatch, QueueStore, RecipientOutcome

#: Puts a batch into mailboxes: one answer per recipient, messages and their recipients
#: in order; raises StoreUnavailable when the store as a whole did not answer.
DeliverMany = Callable[[Sequence[BatchMessage]], Awaitable[list[DeliveryAnswer]]]


@dataclass(frozen=True, slots=True)
class StoreReplies:
    """How a server words the outcomes of a mailbox delivery (``{exc}``: the error)."""

    delivered: str
    unavailable: str
    too_large: str
    deferred: str
    not_found: str | None = None
    """None: a missing mailbox is deferred like any other store error."""


def _batch(batch: DeliveryBatch) -> list[BatchMessage]:
    """Each message with its (address, delivery id) pairs (reads each message's header)."""
    out: list[BatchMessage] = []
    for msg in batch.messages:
        submitted = client_submit_time(msg.source)
        mid = msg.envelope.internet_message_id
        pairs = tuple(
            (rcpt.address, delivered_to_key(mid, submitted, rcpt.address))
            for rcpt in msg.recipients
        )
        out.append(BatchMessage(msg.source, pairs))
    return out


def _outcome(rcpt_id: int, answer: DeliveryAnswer, replies: StoreReplies) -> RecipientOutcome:
    if isinstance(answer, MessageTooLarge):
        return RecipientOutcome.failed(rcpt_id, replies.too_large, remote=False)
    if isinstance(answer, MailboxNotFound) and replies.not_found is not None:
        return RecipientOutcome.failed(rcpt_id, replies.not_found, remote=False)
    if isinstance(answer, StoreError):
        return RecipientOutcome.deferred(rcpt_id, replies.deferred.format(exc=answer))
    return RecipientOutcome.delivered(rcpt_id, replies.delivered, duplicate=answer.duplicate)


async def deliver_to_mailboxes(
    store: QueueStore, batch: DeliveryBatch, deliver: DeliverMany, replies: StoreReplies
) -> bool:
    """Deliver ``batch``; True when the store did not answer and the queue went to Retry."""
    messages = await asyncio.to_thread(_batch, batch)
    try:
        answers = await deliver(messages)
        unavailable = next((a for a in answers if isinstance(a, StoreUnavailable)), None)
        if unavailable is not None:
            raise unavailable
    except StoreUnavailable as exc:
        # Nothing is reported: what the store did take is a duplicate next time.
        error = replies.unavailable.format(exc=exc)
        await asyncio.to_thread(store.report_connection_failure, batch.lease, error)
        return True
    if any(not isinstance(a, StoreError) for a in answers):
        await asyncio.to_thread(store.mark_connected, batch.lease)
    reports: list[tuple[int, Sequence[RecipientOutcome]]] = []
    position = 0
    for msg in batch.messages:
        outcomes = [
            _outcome(rcpt.id, answers[position + i], replies)
            for i, rcpt in enumerate(msg.recipients)
        ]
        position += len(msg.recipients)
        reports.append((msg.item_id, outcomes))
    await asyncio.to_thread(store.report_many, batch.lease, reports)
    return False
