"""How often ``sitemail troubleshoot --logs`` names the right cause, over other organizations.

The corpus: ``orgs`` organizations written by ``tests.corpus`` (an oracle written
from the Exchange and ASA specs that imports nothing from sitemail): random
sites, hubs, address plans, Exchange 2007/2010/2013+ builds and log layouts,
hours of background traffic and Internet noise, and in all but ``healthy`` of
them one fault of the eight cause families (every family in every variant
round-robin, the rest random), some zipped or gzipped.  It is generated once
into ``cache_dir`` (keyed by its parameters) and reused; the generation is
not measured (bump ``tests.corpus.GENERATOR_VERSION`` when the generator
changes, or the old corpus is reused).  Each organization's truth is a
``.truth.json`` beside its logs, never inside them.

sitemail: ``python -m sitemail.diagnose.cli troubleshoot --logs PATH --json``
on every organization (``jobs`` at a time), each report scored by
``tests.corpus.accuracy.evaluate``: ``ranked_first`` (faulty orgs whose first
finding is the true cause, severity error), ``false_alarms`` (healthy orgs
with an error or warning finding), ``wrong_subjects`` (right cause first, but
a subject the truth does not list), ``found`` (true cause among the error
findings at any rank), and the corpus's ``orgs`` and ``healthy``; the misses
and per-cause counts are in the trial's notes.

The peer, ``answer-key``: the harness would run with no peer at all
(``peers=[]`` passes its checks), but then its table shows no numbers, since
it prints only ratios against peers.  The least artificial peer is the answer
key itself: each truth read as the report a perfect troubleshooter would give,
scored by the same ``evaluate``.  Its counts are the ceiling (``ranked_first``
= the faulty orgs, no false alarms, no wrong subjects; a trial fails if the
scorer gives it anything else), so the ``ranked_first`` ratio sitemail /
answer-key is the share of faulty organizations ranked first; ``orgs`` and
``healthy`` must come out 1.00 (both sides scored the same corpus); the
ratios of ``false_alarms`` and ``wrong_subjects`` are n/a (the key's are 0)
and their counts are in the sitemail column.  Accuracy does not move between
rounds (the corpus and the troubleshooter are deterministic): ``-n 1`` is
enough.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.corpus import GENERATOR_VERSION, Truth, generate_corpus
from tests.corpus.accuracy import evaluate, run_troubleshooter, truth_report

from bench.harness import Benchmark, Metric, TrialResult, Workload

_STAMP = "corpus.json"
COUNTS = ("ranked_first", "false_alarms", "wrong_subjects", "found", "orgs", "healthy")


def corpus(params: Mapping[str, Any]) -> list[Truth]:
    """The generated organizations (made once per parameter set, then reused)."""
    orgs, healthy = int(params["orgs"]), int(params["healthy"])
    seed, size = int(params["seed"]), str(params["size"])
    if orgs < 60 or healthy < 10:
        raise ValueError("the benchmark wants at least 60 organizations, 10 of them healthy")
    key = f"v{GENERATOR_VERSION}-orgs{orgs}-healthy{healthy}-seed{seed}-{size}"
    root = Path(str(params["cache_dir"])) / key
    stamp = root / _STAMP
    if stamp.exists():
        names = json.loads(stamp.read_text())["orgs"]
        return [Truth.load(root / f"{name}.truth.json") for name in names]
    root.mkdir(parents=True, exist_ok=True)
    truths = generate_corpus(root, orgs, seed, healthy, size=size)
    stamp.write_text(json.dumps({"orgs": [t.name for t in truths]}))
    return truths


def _metrics(result: Mapping[str, Any]) -> dict[str, float]:
    return {key: float(result[key]) for key in COUNTS}


def sitemail_trial(params: Mapping[str, Any]) -> TrialResult:
    truths = corpus(params)
    result = evaluate(truths, run_troubleshooter, jobs=int(params["jobs"]))
    seconds = [r["seconds"] for r in result["per_org"] if r["seconds"] is not None]
    metrics = _metrics(result)
    metrics["seconds_per_org"] = sum(seconds) / len(seconds) if seconds else 0.0
    misses = [
        {
            "name": m["name"],
            "truth": f"{m['cause']}/{m['variant']}",
            "first": m["first"][:1],
            "error": m["error"],
        }
        for m in result["misses"]
    ]
    return TrialResult(
        metrics,
        notes={"per_cause": result["per_cause"], "misses": misses, "errors": result["errors"]},
    )


def answer_key_trial(params: Mapping[str, Any]) -> TrialResult:
    truths = corpus(params)
    by_path = {Path(t.path): t for t in truths}
    result = evaluate(truths, lambda path: truth_report(by_path[path]))
    if (
        result["ranked_first"] != result["faulty"]
        or result["false_alarms"]
        or result["wrong_subjects"]
    ):
        raise RuntimeError(f"the scorer does not give the answer key full marks: {result}")
    return TrialResult(_metrics(result), notes={"faulty": result["faulty"]})


BENCHMARK = Benchmark(
    name="diagnosis_accuracy",
    description="troubleshoot --logs: right cause ranked first over generated organizations",
    sitemail=Workload(
        "sitemail",
        sitemail_trial,
        description="python -m sitemail.diagnose.cli troubleshoot --logs PATH --json, per org",
    ),
    peers=[
        Workload(
            "answer-key",
            answer_key_trial,
            version="tests.corpus truth",
            description="each organization's truth scored as a report (the ceiling)",
        )
    ],
    parameters={
        "orgs": 60,
        "healthy": 10,
        "seed": 1,
        "size": "small",
        "jobs": 2,
        "cache_dir": str(Path(tempfile.gettempdir()) / "sitemail-bench-diagnosis"),
    },
    metrics={
        "ranked_first": Metric(
            "orgs",
            higher_is_better=True,
            description="faulty orgs whose first finding is the true cause",
        ),
        "false_alarms": Metric(
            "orgs",
            higher_is_better=False,
            description="healthy orgs with an error or warning finding",
        ),
        "wrong_subjects": Metric(
            "orgs",
            higher_is_better=False,
            description="right cause first, subject not in the truth",
        ),
        "found": Metric(
            "orgs",
            higher_is_better=True,
            description="faulty orgs with the true cause among the errors",
        ),
        "orgs": Metric("orgs", description="organizations scored"),
        "healthy": Metric("orgs", description="healthy controls among them"),
        "seconds_per_org": Metric(
            "s", higher_is_better=False, description="mean wall time of one troubleshoot run"
        ),
    },
)
