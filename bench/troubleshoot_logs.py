"""Scan rate of ``sitemail troubleshoot --logs`` beside ``grep -c`` over the same files.

The corpus: ``size_mb`` of Exchange 2010 protocol logs (SmtpSend and
SmtpReceive folders of one hub, files of ``file_mb`` as Exchange rotates
them), made of sessions written by the transport's own log writer: hub-to-hub
deliveries with anonymous TLS and X-EXPS, received sessions, and one
session in ``failure_every`` masked by an inspecting firewall (the story 1
failure), each with its own session id.  It is generated once into
``cache_dir`` and reused (the generation is not measured).

sitemail: ``python -m sitemail.diagnose.cli troubleshoot --logs DIR --json``,
a child process; its wall time and peak memory, and a check that it found
the inspection.  grep: ``grep -c -r '5.7.3 Cannot achieve'`` over the same
folder (LC_ALL=C), the floor for reading the files at all.  Both read from
the page cache after the first trial; run with ``--warmup 1`` for even
rounds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import PROJECT_ROOT, Benchmark, Metric, TrialResult, Workload
from sitemail.clock import ManualClock
from sitemail.diagnose import samples
from sitemail.mailflow.protocol_log import ProtocolLog

PATTERN = "5.7.3 Cannot achieve"
FOLDERS = (("send", "SEND", "SmtpSend"), ("recv", "RECV", "SmtpReceive"))
_STAMP = "corpus.json"


def _rows(write: Callable[[ProtocolLog], None], send: bool) -> tuple[str, str]:
    """(header, rows with ``@SID@`` for the session id) of one session as 2010 writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
        make = ProtocolLog.send if send else ProtocolLog.receive
        log = make(Path(tmp), clock=clock)
        write(log)
        log.close()
        (path,) = Path(tmp).glob("*.LOG")
        lines = path.read_text().splitlines(keepends=True)
    rows = [x for x in lines if not x.startswith("#")]
    sid = rows[0].split(",")[2]
    header = "".join(x for x in lines if x.startswith("#"))
    return header, "".join(rows).replace(sid, "@SID@")


def _templates() -> dict[str, str]:
    send_header, send_ok = _rows(samples.send_delivered, send=True)
    _, send_masked = _rows(samples.send_masked, send=True)
    recv_header, recv_ok = _rows(
        lambda log: samples.receive_on(
            log,
            "EX-NY1\\Default EX-NY1",
            samples.EHLO_2010,
            client="ex-fl1.contoso.com",
            then="X-ANONYMOUSTLS",
        ),
        send=False,
    )
    return {
        "send_ok": send_ok,
        "send_masked": send_masked,
        "recv_ok": recv_ok,
        "send_ok_header": send_header,
        "recv_ok_header": recv_header,
    }


def make_corpus(root: Path, size_mb: int, file_mb: int, failure_every: int) -> Path:
    """Write (or reuse) the corpus; return its folder."""
    folder = root / f"corpus-{size_mb}mb-{file_mb}-{failure_every}"
    stamp = folder / _STAMP
    if stamp.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    t = _templates()
    target = size_mb * 1024 * 1024
    per_file = file_mb * 1024 * 1024
    base = folder / "EX-NY1" / "TransportRoles" / "Logs" / "ProtocolLogs"
    written = 0
    number = 0
    session = 0x08D0_0000_0000_0000
    while written < target:
        number += 1
        for kind, prefix, dirname in (
            ("send", "SEND", "SmtpSend"),
            ("recv", "RECV", "SmtpReceive"),
        ):
            path = base / dirname / f"{prefix}20260302-{number}.LOG"
            path.parent.mkdir(parents=True, exist_ok=True)
            header = t["send_ok_header" if kind == "send" else "recv_ok_header"]
            chunks = [header]
            size = len(header)
            while size < per_file // 2 and written + size < target:
                session += 1
                sid = f"{session:016X}"
                if kind == "send":
                    name = "send_masked" if session % failure_every == 0 else "send_ok"
                else:
                    name = "recv_ok"
                block = t[name].replace("@SID@", sid)
                chunks.append(block)
                size += len(block)
            path.write_text("".join(chunks), newline="")
            written += size
    stamp.write_text(json.dumps({"bytes": written, "sessions": session & 0xFFFFFFFF}))
    return folder


def _corpus(params: Mapping[str, Any]) -> Path:
    root = Path(str(params["cache_dir"]))
    root.mkdir(parents=True, exist_ok=True)
    return make_corpus(
        root, int(params["size_mb"]), int(params["file_mb"]), int(params["failure_every"])
    )


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.LOG"))


def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str, int]:
    """Run a child; (seconds, peak RSS KiB, stdout, exit status)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.DEVNULL, cwd=PROJECT_ROOT, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return seconds, int(usage.ru_maxrss), text, proc.returncode


def sitemail_trial(params: Mapping[str, Any]) -> TrialResult:
    folder = _corpus(params)
    size = _bytes(folder)
    seconds, rss, text, code = _run(
        [
            sys.executable,
            "-m",
            "sitemail.diagnose.cli",
            "troubleshoot",
            "--logs",
            str(folder),
            "--json",
        ]
    )
    if code not in (0, 1):
        raise RuntimeError(f"troubleshoot --logs exited {code}")
    report = json.loads(text)
    causes = [f["cause"] for f in report["findings"]]
    if "esmtp-inspection" not in causes:
        raise RuntimeError(f"troubleshoot --logs missed the inspection: {causes}")
    return TrialResult(
        {"mb_per_s": size / 1e6 / seconds, "seconds": seconds},
        peak_rss_kib=rss,
        notes={"bytes": size, "rows": report["stats"]["rows"], "causes": causes},
    )


def grep_trial(params: Mapping[str, Any]) -> TrialResult:
    folder = _corpus(params)
    size = _bytes(folder)
    env = dict(os.environ, LC_ALL="C")
    seconds, rss, text, code = _run(["grep", "-c", "-r", PATTERN, str(folder)], env)
    if code not in (0, 1):
        raise RuntimeError(f"grep exited {code}")
    hits = sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if ":" in line)
    return TrialResult(
        {"mb_per_s": size / 1e6 / seconds, "seconds": seconds},
        peak_rss_kib=rss,
        notes={"bytes": size, "matching_lines": hits},
    )


def grep_version() -> str | None:
    try:
        out = subprocess.run(["grep", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.splitlines()[0] if out.stdout else None


BENCHMARK = Benchmark(
    name="troubleshoot_logs",
    description="troubleshoot --logs scan rate over Exchange 2010 protocol logs, beside grep -c",
    sitemail=Workload(
        "sitemail",
        sitemail_trial,
        description="python -m sitemail.diagnose.cli troubleshoot --logs DIR --json",
    ),
    peers=[
        Workload("grep", grep_trial, version=grep_version, description="grep -c -r PATTERN DIR")
    ],
    parameters={
        "size_mb": 1024,
        "file_mb": 10,
        "failure_every": 50,
        "cache_dir": str(Path(tempfile.gettempdir()) / "sitemail-bench-logs"),
    },
    metrics={
        "mb_per_s": Metric("MB/s", higher_is_better=True, description="log bytes read per second"),
        "seconds": Metric("s", higher_is_better=False, description="wall time of one scan"),
    },
)
