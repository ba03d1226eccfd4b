"""The troubleshooter on organizations it has never seen: logs generated from the spec by
``tests/corpus`` (other names, address plans, releases, layouts, archives, hours of
ordinary traffic and Internet noise), every cause family in every variant, and healthy
controls. Each fault must be the first finding, with a subject the truth lists, and a
healthy organization must give no error and no warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.corpus import all_variants, generate_corpus
from tests.corpus.accuracy import evaluate, summary

from sitemail.diagnose.offline import troubleshoot_logs


def report_for(path: Path) -> dict[str, Any]:
    return troubleshoot_logs([path]).to_json()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 19])
def test_every_cause_first_and_no_false_alarm(tmp_path: Path, seed: int) -> None:
    count = len(all_variants()) + 7
    truths = generate_corpus(tmp_path, count, seed, healthy=7)
    assert {(t.cause, t.variant) for t in truths if not t.healthy} == set(all_variants())
    result = evaluate(truths, report_for)
    text = summary(result)
    assert result["ranked_first"] == result["faulty"], text
    assert result["false_alarms"] == 0, text
    assert result["wrong_subjects"] == 0, text
    assert result["errors"] == 0, text
