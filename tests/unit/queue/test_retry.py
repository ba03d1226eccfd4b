"""The retry ladder of spec 5.3: 4 x 1 min, then 6 x 5 min, then every 10 min."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sitemail.org.model import TransportSettings
from sitemail.transport.retry import RetryStage, ladder, next_retry_time, retry_step

MIN = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("failures", "stage", "delay"),
    [
        (1, RetryStage.GLITCH, 1 * MIN),
        (4, RetryStage.GLITCH, 1 * MIN),
        (5, RetryStage.TRANSIENT, 5 * MIN),
        (10, RetryStage.TRANSIENT, 5 * MIN),
        (11, RetryStage.OUTBOUND, 10 * MIN),
        (500, RetryStage.OUTBOUND, 10 * MIN),
    ],
)
def test_default_ladder(failures: int, stage: RetryStage, delay: timedelta) -> None:
    step = retry_step(TransportSettings(), failures)
    assert (step.stage, step.delay) == (stage, delay)


def test_the_first_eleven_waits_add_up_to_the_spec_ladder() -> None:
    waits = [s.delay for s in ladder(TransportSettings(), 11)]
    assert waits == [MIN] * 4 + [5 * MIN] * 6 + [10 * MIN]


def test_every_setting_moves_the_ladder() -> None:
    settings = TransportSettings(
        queue_glitch_retry_count=2,
        queue_glitch_retry_interval=timedelta(seconds=10),
        transient_failure_retry_count=1,
        transient_failure_retry_interval=timedelta(seconds=30),
        outbound_connection_failure_retry_interval=timedelta(hours=1),
    )
    waits = [s.delay.total_seconds() for s in ladder(settings, 5)]
    assert waits == [10, 10, 30, 3600, 3600]


def test_zero_counts_skip_straight_to_the_outbound_interval() -> None:
    settings = TransportSettings(queue_glitch_retry_count=0, transient_failure_retry_count=0)
    assert retry_step(settings, 1).stage is RetryStage.OUTBOUND


def test_mailbox_delivery_queues_use_their_own_interval_after_the_glitches() -> None:
    settings = TransportSettings(mailbox_delivery_queue_retry_interval=timedelta(minutes=7))
    steps = ladder(settings, 6, mailbox_delivery=True)
    assert [s.stage for s in steps[:4]] == [RetryStage.GLITCH] * 4
    assert [s.delay for s in steps[4:]] == [7 * MIN, 7 * MIN]


def test_next_retry_time_adds_the_wait() -> None:
    failed_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert next_retry_time(TransportSettings(), 5, failed_at) == failed_at + 5 * MIN


def test_failures_start_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        retry_step(TransportSettings(), 0)
