"""The troubleshooter on organizations it has never seen: logs generated from the spec by
``tests/corpus`` (other names, address plans, releases, layouts, archives, hours of
ordinary traffic and Internet noise), every cause family in every variant, and healthy
controls. Each fault must be the first finding, with a subject the truth lists, and a
healthy organization must give no error and no warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.corpus import CAUSES, all_variants, generate_corpus
from tests.corpus.accuracy import evaluate, summary

from sitemail.diagnose.facts import Facts
from sitemail.diagnose.logs.archives import unpacked
from sitemail.diagnose.logscan import scan_logs
from sitemail.diagnose.offline import troubleshoot_logs
from sitemail.diagnose.rules import build_report


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


@pytest.mark.slow
def test_the_byte_prefilter_concludes_what_a_full_parse_concludes(tmp_path: Path) -> None:
    # The fast scan parses only the sessions a rule can use; whatever it skips must not
    # change a finding, its severity or its subject.
    truths = generate_corpus(tmp_path, len(CAUSES) + 2, 41, healthy=2)
    for truth in truths:
        with unpacked([truth.path]) as files:
            # Two worker processes, as on a large input: sessions whole in a file are
            # digested in the workers, the others joined across files.
            fast = build_report(Facts("logs", logs=scan_logs(files.paths, workers=2)))
            full = build_report(Facts("logs", logs=scan_logs(files.paths, prefilter=False)))
        assert sorted((f.cause, f.severity, f.subject) for f in fast.findings) == sorted(
            (f.cause, f.severity, f.subject) for f in full.findings
        ), truth.name
        assert [f.cause for f in fast.findings[:1]] == [f.cause for f in full.findings[:1]]
        assert (
            fast.stats["rows"] == full.stats["rows"]
            and fast.stats["sessions"] == full.stats["sessions"]
        ), truth.name
