"""Delivering a queue batch into mailboxes: the hub's MapiDelivery queues and the
Internet host's local delivery run this one loop; each says how it words the outcomes.

Per recipient, the delivery id is the store's duplicate key (Message-ID and client
submit time, :func:`~sitemail.transport.headers.delivered_to_key`), so a message the
queue delivers again after a crash (between the store's commit and the queue's report)
is stored once, and the store's answer says when it was a duplicate.  An unavailable
store retries the whole queue; an over-size message fails the recipient; other store
errors defer it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sitemail.mailbox.errors import MailboxNotFound, MessageTooLarge, StoreError, StoreUnavailable
from sitemail.mailbox.records import DeliveryResult
from sitemail.transport.headers import client_submit_time, delivered_to_key
from sitemail.transport.queue import DeliveryBatch, QueueStore, RecipientOutcome

#: Puts one message into one mailbox: (address, delivery id, body file).
DeliverOne = Callable[[str, str, Path], Awaitable[DeliveryResult]]


@dataclass(frozen=True, slots=True)
class StoreReplies:
    """How a server words the outcomes of a mailbox delivery (``{exc}``: the error)."""

    delivered: str
    unavailable: str
    too_large: str
    deferred: str
    not_found: str | None = None
    """None: a missing mailbox is deferred like any other store error."""


async def deliver_to_mailboxes(
    store: QueueStore, batch: DeliveryBatch, deliver: DeliverOne, replies: StoreReplies
) -> bool:
    """Deliver ``batch``; True when the store did not answer and the queue went to Retry."""
    connected = False
    for msg in batch.messages:
        outcomes: list[RecipientOutcome] = []
        submitted = await asyncio.to_thread(client_submit_time, msg.body_path)
        for rcpt in msg.recipients:
            mid = msg.envelope.internet_message_id
            delivery_id = delivered_to_key(mid, submitted, rcpt.address)
            try:
                result = await deliver(rcpt.address, delivery_id, msg.body_path)
            except StoreUnavailable as exc:
                error = replies.unavailable.format(exc=exc)
                await asyncio.to_thread(store.report_connection_failure, batch.lease, error)
                return True
            except MessageTooLarge:
                outcomes.append(RecipientOutcome.failed(rcpt.id, replies.too_large, remote=False))
                continue
            except StoreError as exc:
                if isinstance(exc, MailboxNotFound) and replies.not_found is not None:
                    reply = replies.not_found
                    outcomes.append(RecipientOutcome.failed(rcpt.id, reply, remote=False))
                else:
                    reply = replies.deferred.format(exc=exc)
                    outcomes.append(RecipientOutcome.deferred(rcpt.id, reply))
                continue
            if not connected:
                await asyncio.to_thread(store.mark_connected, batch.lease)
                connected = True
            outcomes.append(
                RecipientOutcome.delivered(rcpt.id, replies.delivered, duplicate=result.duplicate)
            )
        await asyncio.to_thread(store.report, batch.lease, msg.item_id, outcomes)
    return False
