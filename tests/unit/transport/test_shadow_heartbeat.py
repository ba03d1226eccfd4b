"""The shadow heartbeat's decision: discard, resubmit, or count a missed heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sitemail.mailflow.smtp_sender import Heartbeat
from sitemail.protocols.smtp.shadow import MAX_DISCARD_IDS
from sitemail.transport.queue import ShadowPeer
from sitemail.transport.shadow_redundancy import Verdict, judge

HUB = "ex-fl1.contoso.com"
DISK = "first-disk"


def peer(*shadow_ids: str) -> ShadowPeer:
    return ShadowPeer(HUB, frozenset(shadow_ids), 3, datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("shadow_ids", "answer", "misses", "expected"),
    [
        # It answers with the disk our copies are on: drop what it finished.
        ((DISK,), Heartbeat(HUB, DISK, [4, 5]), 2, Verdict((4, 5), DISK)),
        # A new disk: everything taken under the old one is resubmitted.
        ((DISK,), Heartbeat(HUB, "new", []), 0, Verdict((), "new", resubmit=True)),
        ((DISK, "new"), Heartbeat(HUB, "new", [9]), 0, Verdict((9,), "new", resubmit=True)),
        # No answer: counted, until ShadowHeartbeatRetryCount (3) is reached.
        ((DISK,), None, 0, Verdict(misses=1)),
        ((DISK,), None, 1, Verdict(misses=2)),
        ((DISK,), None, 2, Verdict(resubmit=True)),
    ],
)
def test_judge(
    shadow_ids: tuple[str, ...], answer: Heartbeat | None, misses: int, expected: Verdict
) -> None:
    assert judge(peer(*shadow_ids), answer, misses, retry_count=3) == expected


def test_a_full_answer_asks_again_without_waiting() -> None:
    ids = list(range(1, MAX_DISCARD_IDS + 1))
    verdict = judge(peer(DISK), Heartbeat(HUB, DISK, ids), 0, retry_count=3)
    assert verdict.again_soon and verdict.discard == tuple(ids)


def test_retry_count_one_resubmits_at_the_first_miss() -> None:
    assert judge(peer(DISK), None, 0, retry_count=1) == Verdict(resubmit=True)
