"""The retry ladder of a delivery queue (exchange-2010.md §5.3).

After a failed connection attempt a queue goes to ``Retry`` and waits:

1. up to ``QueueGlitchRetryCount`` (4) retries ``QueueGlitchRetryInterval``
   (1 min) apart — brief network glitches;
2. then up to ``TransientFailureRetryCount`` (6) retries
   ``TransientFailureRetryInterval`` (5 min) apart;
3. then one attempt every ``OutboundConnectionFailureRetryInterval`` (10 min)
   until the destination answers or the messages expire.

Mailbox delivery queues (``MapiDelivery``) have their own steady interval,
``MailboxDeliveryQueueRetryInterval`` (5 min), once the glitch retries are
used up: that key exists for exactly those queues (§5.3, EdgeTransport.exe.config).

Everything here is pure: the settings and the number of consecutive failures
in, the wait out.  The queue store asks the clock for "now".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sitemail.org.model import TransportSettings


class RetryStage(StrEnum):
    GLITCH = "QueueGlitchRetry"
    TRANSIENT = "TransientFailureRetry"
    OUTBOUND = "OutboundConnectionFailureRetry"
    MAILBOX = "MailboxDeliveryQueueRetry"


@dataclass(frozen=True, slots=True)
class RetryStep:
    """When to try again after the ``failures``-th consecutive failed attempt."""

    failures: int
    stage: RetryStage
    delay: timedelta


def retry_step(
    settings: TransportSettings, failures: int, *, mailbox_delivery: bool = False
) -> RetryStep:
    """The wait after ``failures`` consecutive failed attempts (the first failure is 1)."""
    if failures < 1:
        raise ValueError(f"failures counts failed attempts and starts at 1, got {failures}")
    glitches = settings.queue_glitch_retry_count
    if failures <= glitches:
        return RetryStep(failures, RetryStage.GLITCH, settings.queue_glitch_retry_interval)
    if mailbox_delivery:
        return RetryStep(
            failures, RetryStage.MAILBOX, settings.mailbox_delivery_queue_retry_interval
        )
    if failures <= glitches + settings.transient_failure_retry_count:
        return RetryStep(failures, RetryStage.TRANSIENT, settings.transient_failure_retry_interval)
    return RetryStep(
        failures, RetryStage.OUTBOUND, settings.outbound_connection_failure_retry_interval
    )


def next_retry_time(
    settings: TransportSettings,
    failures: int,
    failed_at: datetime,
    *,
    mailbox_delivery: bool = False,
) -> datetime:
    """NextRetryTime after the ``failures``-th consecutive attempt failed at ``failed_at``."""
    return failed_at + retry_step(settings, failures, mailbox_delivery=mailbox_delivery).delay


def ladder(
    settings: TransportSettings, attempts: int, *, mailbox_delivery: bool = False
) -> list[RetryStep]:
    """The first ``attempts`` steps, for display and for tests."""
    return [
        retry_step(settings, n, mailbox_delivery=mailbox_delivery) for n in range(1, attempts + 1)
    ]
