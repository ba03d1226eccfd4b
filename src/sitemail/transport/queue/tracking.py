"""Writing message tracking rows for queue events (exchange-2010.md §6.3).

The store does not write tracking rows itself; the hub attaches a listener::

    store.add_listener(lambda ev: write_tracking(tracking_log, ev, server_hostname=fqdn))

Events without a tracking meaning (ROUTED, RESUBMITTED, QUEUE_RETRY,
CHANGED) write nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sitemail.mailflow.tracking_log import MessageTrackingLog, TrackingEntry

from .model import QueueEvent


def write_tracking(
    log: MessageTrackingLog, event: QueueEvent, *, server_hostname: str, server_ip: str = ""
) -> TrackingEntry | None:
    entry = tracking_entry(log, event, server_hostname=server_hostname, server_ip=server_ip)
    if entry is not None:
        log.write(entry)
    return entry


def write_tracking_batch(
    log: MessageTrackingLog,
    events: Sequence[QueueEvent],
    *,
    server_hostname: str,
    server_ip: str = "",
) -> None:
    """The rows of one commit's events, in one append."""
    entries = [
        e
        for e in (
            tracking_entry(log, ev, server_hostname=server_hostname, server_ip=server_ip)
            for ev in events
        )
        if e is not None
    ]
    if entries:
        log.write_many(entries)


def tracking_entry(
    log: MessageTrackingLog, event: QueueEvent, *, server_hostname: str, server_ip: str = ""
) -> TrackingEntry | None:
    if event.tracking is None or event.source is None:
        return None
    return log.entry(
        event.tracking,
        event.source,
        message_id=event.internet_message_id,
        sender_address=event.sender,
        recipients=event.recipients,
        recipient_status=event.statuses,
        internal_message_id="" if event.internal_id is None else str(event.internal_id),
        total_bytes=event.size,
        message_subject=event.subject,
        return_path=event.sender,
        reference=event.reference,
        server_hostname=server_hostname,
        server_ip=server_ip,
        client_ip=event.client_ip,
        client_hostname=event.client_hostname,
        connector_id=event.connector_id,
    )
