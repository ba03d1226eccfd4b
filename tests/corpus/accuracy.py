"""Score a troubleshooter's reports against generated organizations' ground truth.

A report is the ``--json`` output of ``troubleshoot --logs``:
``{"findings": [{"cause", "severity", "subject", ...}, ...]}`` in rank order.
Per organization:

- ``ranked_first``: a faulty org whose first finding has the true cause and
  severity ``error``;
- ``false_alarm``: a healthy org with any ``error`` or ``warning`` finding;
- ``wrong_subject``: the first finding has the true cause but a subject the
  truth does not list;
- ``found``: the true cause is among the error findings at any rank.

Run ``python -m tests.corpus.accuracy --count 20 --seed 1 --healthy 4`` to
generate a corpus in a temporary folder and score the current troubleshooter.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.corpus.truth import Truth

PROJECT_ROOT = Path(__file__).resolve().parents[2]
Report = dict[str, Any]


def troubleshooter_argv(path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sitemail.diagnose.cli",
        "troubleshoot",
        "--logs",
        str(path),
        "--json",
    ]


def run_troubleshooter(path: Path, timeout: float = 900.0) -> Report:
    """The report of ``troubleshoot --logs PATH --json`` (exit 0: nothing, 1: findings).

    Any other exit, a timeout or output that is not JSON gives an empty report
    with an ``error``: it scores as a miss, not as a crash of the scoring.
    """
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            troubleshooter_argv(path),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=PROJECT_ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"findings": [], "error": f"timed out after {timeout:.0f} s"}
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        return {"findings": [], "error": f"exit {proc.returncode}: {tail}", "seconds": seconds}
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"findings": [], "error": "output is not JSON", "seconds": seconds}
    if not isinstance(report, dict) or not isinstance(report.get("findings"), list):
        return {"findings": [], "error": "no findings list", "seconds": seconds}
    report["seconds"] = seconds
    return report


def _brief(finding: dict[str, Any]) -> dict[str, Any]:
    return {k: finding.get(k) for k in ("cause", "severity", "subject", "title")}


def score_org(truth: Truth, report: Report) -> dict[str, Any]:
    findings = [f for f in report.get("findings", []) if isinstance(f, dict)]
    first = findings[0] if findings else None
    alarms = [f for f in findings if f.get("severity") in ("error", "warning")]
    right_first = first is not None and not truth.healthy and first.get("cause") == truth.cause
    return {
        "name": truth.name,
        "path": str(truth.path),
        "healthy": truth.healthy,
        "cause": truth.cause,
        "variant": truth.variant,
        "visible_in": truth.visible_in,
        "release": truth.release,
        "zipped": truth.zipped,
        "ranked_first": bool(
            right_first and first is not None and first.get("severity") == "error"
        ),
        "false_alarm": bool(truth.healthy and alarms),
        "wrong_subject": bool(
            right_first and first is not None and first.get("subject") not in truth.subjects
        ),
        "found": bool(
            not truth.healthy
            and any(
                f.get("cause") == truth.cause and f.get("severity") == "error" for f in findings
            )
        ),
        "first": [_brief(f) for f in findings[:3]],
        "error": report.get("error"),
        "seconds": report.get("seconds"),
    }


def evaluate(
    truths: Sequence[Truth], report_for: Callable[[Path], Report], *, jobs: int = 1
) -> dict[str, Any]:
    """Run ``report_for`` on every organization's path and score the reports."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        reports = list(pool.map(lambda t: report_for(Path(t.path)), truths))
    rows = [score_org(t, r) for t, r in zip(truths, reports, strict=True)]
    faulty = [r for r in rows if not r["healthy"]]
    per_cause: dict[str, dict[str, int]] = {}
    for r in faulty:
        entry = per_cause.setdefault(
            r["cause"], {"orgs": 0, "ranked_first": 0, "found": 0, "wrong_subject": 0}
        )
        entry["orgs"] += 1
        for key in ("ranked_first", "found", "wrong_subject"):
            entry[key] += int(r[key])
    misses = [
        {k: r[k] for k in ("name", "path", "cause", "variant", "visible_in", "first", "error")}
        for r in rows
        if (not r["healthy"] and not r["ranked_first"]) or r["false_alarm"] or r["wrong_subject"]
    ]
    return {
        "orgs": len(rows),
        "healthy": len(rows) - len(faulty),
        "faulty": len(faulty),
        "ranked_first": sum(r["ranked_first"] for r in rows),
        "false_alarms": sum(r["false_alarm"] for r in rows),
        "wrong_subjects": sum(r["wrong_subject"] for r in rows),
        "found": sum(r["found"] for r in rows),
        "errors": sum(1 for r in rows if r["error"]),
        "per_cause": dict(sorted(per_cause.items())),
        "per_org": rows,
        "misses": misses,
    }


def truth_report(truth: Truth) -> Report:
    """The answer key written as a report: what a perfect troubleshooter would say."""
    if truth.healthy:
        return {"findings": []}
    return {
        "findings": [
            {
                "cause": truth.cause,
                "severity": "error",
                "subject": truth.subjects[0] if truth.subjects else "",
            }
        ]
    }


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"orgs {result['orgs']} (healthy {result['healthy']}, faulty {result['faulty']}): "
        f"ranked first {result['ranked_first']}/{result['faulty']}, found at any rank "
        f"{result['found']}, wrong subjects {result['wrong_subjects']}, false alarms "
        f"{result['false_alarms']}/{result['healthy']}, errors {result['errors']}",
    ]
    for cause, e in result["per_cause"].items():
        lines.append(
            f"  {cause:<28} {e['ranked_first']}/{e['orgs']} first, {e['found']} found, "
            f"{e['wrong_subject']} wrong subject"
        )
    for miss in result["misses"]:
        first = ", ".join(f"{f['cause']}({f['severity']}) {f['subject']!r}" for f in miss["first"])
        lines.append(
            f"  miss {miss['name']}: {miss['cause']}/{miss['variant']}"
            f"[{miss['visible_in']}] -> {first or 'nothing'}"
            + (f" [{miss['error']}]" if miss["error"] else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tests.corpus.generate import generate_corpus

    p = argparse.ArgumentParser(prog="python -m tests.corpus.accuracy")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--healthy", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--size", default="small")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--root", type=Path, help="where to write the corpus (default: a temp dir)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sitemail-corpus-") as tmp:
        root = args.root or Path(tmp)
        truths = generate_corpus(root, args.count, args.seed, args.healthy, size=args.size)
        result = evaluate(truths, run_troubleshooter, jobs=args.jobs)
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
