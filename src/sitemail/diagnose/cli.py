"""The troubleshooter's commands: ``probe smtp``, ``troubleshoot``, ``routing``.

Each command has an ``add_*_arguments(parser)`` / ``run_*(args)`` pair for
``sitemail``'s own parser (the pair adds its own ``--dir``), and a
``*_main(argv)`` that parses alone.  ``python -m sitemail.diagnose.cli
COMMAND ...`` runs them without the main command.

Exit status: 0 nothing found (or information only); 1 ``troubleshoot``
found something to act on (an error or a warning finding) or ``probe`` found
the path inspected or unreachable; 2 a usage error or nothing to read (no
lab, no such file, an unreadable archive).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sitemail.diagnose.findings import SYMPTOMS, Report, Severity

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

# The rest (rich, asyncio, the probe, the report writers) is imported where it is
# used: a log scan starts its workers sooner without them, and a --json run never
# needs rich.


def _lab_dir(args: argparse.Namespace) -> Path:
    from sitemail.org.lab_state import default_lab_dir

    return Path(args.dir) if args.dir else default_lab_dir()


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir", metavar="DIR", help="the lab folder (default: $SITEMAIL_LAB or ~/.sitemail/lab)"
    )


# ------------------------------------------------------------------ probe


def add_probe_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Tell from the client side whether something on the path inspects or rewrites SMTP "
        "(Cisco ASA/PIX ESMTP inspection). Sends no mail, ends with QUIT, bounded in time."
    )
    p.add_argument("protocol", choices=["smtp"], help="what to probe (smtp)")
    p.add_argument("target", metavar="HOST[:PORT]", help="server to probe (port 25 by default)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--source", metavar="ADDR", help="local address to connect from")
    p.add_argument("--helo", metavar="NAME", help="EHLO name (default probe.sitemail.invalid)")
    p.add_argument(
        "--timeout", type=float, default=45.0, metavar="S", help="limit for the whole probe"
    )
    p.add_argument(
        "--no-long-line",
        action="store_true",
        help="skip the 600-byte line test (its second connection may be dropped on purpose)",
    )


def run_probe(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from sitemail.diagnose.probe import Verdict
    from sitemail.diagnose.probe_run import ProbeSettings, parse_target, probe
    from sitemail.diagnose.report_text import print_probe

    try:
        host, port = parse_target(args.target)
    except ValueError as exc:
        print(f"sitemail probe: {exc}", file=sys.stderr)
        return 2
    settings = ProbeSettings(
        source=args.source,
        total_timeout=args.timeout,
        long_line=not args.no_long_line,
        **({"helo": args.helo} if args.helo else {}),
    )
    result = asyncio.run(probe(host, port, settings))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print_probe(result, Console())
    return 1 if result.verdict in (Verdict.INSPECTED, Verdict.UNREACHABLE) else 0


def probe_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sitemail probe")
    add_probe_arguments(p)
    return run_probe(p.parse_args(argv))


# ------------------------------------------------------------------ troubleshoot


def add_troubleshoot_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Find why mail does not flow: in the running lab (queues, connectors, firewalls, "
        "probes between sites, logs) or in protocol and tracking logs copied from Exchange."
    )
    p.add_argument(
        "--logs",
        nargs="+",
        metavar="PATH",
        help="read these log files or folders instead of the running lab",
    )
    p.add_argument(
        "--symptom",
        type=int,
        choices=sorted(SYMPTOMS),
        metavar="N",
        help="only what explains one of the six symptoms: "
        + " ".join(f"{n}) {text}" for n, text in SYMPTOMS.items()),
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--html", metavar="FILE", help="also write the report as a web page")
    p.add_argument(
        "--no-probe", action="store_true", help="live: do not probe SMTP between the sites"
    )
    _add_dir(p)


def _usage_error(exc: Exception) -> int:
    print(f"sitemail troubleshoot: {exc}", file=sys.stderr)
    return 2


def run_troubleshoot(args: argparse.Namespace) -> int:
    report: Report
    try:
        if args.logs:
            from sitemail.diagnose.offline import ArchiveError, troubleshoot_logs

            shown = ScanProgress()
            try:
                report = troubleshoot_logs(
                    args.logs, args.symptom, progress=shown, started=shown.start
                )
            except ArchiveError as exc:
                return _usage_error(exc)
            finally:
                shown.close()
        else:
            from rich.console import Console

            from sitemail.diagnose.live import LabNotFound, troubleshoot_live

            err = Console(stderr=True)

            def say(text: str) -> None:
                if not args.json:
                    err.print(f"[dim]... {text}[/]")

            try:
                report = troubleshoot_live(
                    _lab_dir(args), args.symptom, probes=not args.no_probe, say=say
                )
            except LabNotFound as exc:
                return _usage_error(exc)
    except FileNotFoundError as exc:
        return _usage_error(exc)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        from rich.console import Console

        from sitemail.diagnose.report_html import render_html
        from sitemail.diagnose.report_text import print_report

        print_report(report, Console())
        if args.html:
            Path(args.html).write_text(render_html(report), encoding="utf-8")
            Console().print(f"Report written to {args.html}")
    return 1 if any(f.severity is not Severity.INFO for f in report.findings) else 0


class ScanProgress:
    """Progress of a log scan on stderr, once it has taken more than two seconds: a bar
    when stderr is a terminal, else a line every few seconds."""

    AFTER = 2.0
    EVERY = 5.0

    def __init__(self, console: Console | None = None) -> None:
        self.console = console  # stderr's, made when first needed
        self.began = time.monotonic()
        self.said = 0.0
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self) -> None:
        self.began = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.began < self.AFTER:
            return
        if self.console is None:
            from rich.console import Console

            self.console = Console(stderr=True)
        if self.console.is_terminal:
            if self.bar is None:
                from rich.progress import (
                    BarColumn,
                    DownloadColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                    TransferSpeedColumn,
                )

                self.bar = Progress(
                    TextColumn("scanning logs"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=True,
                )
                self.bar.start()
                self.task = self.bar.add_task("scan", total=total)
            assert self.task is not None
            self.bar.update(self.task, completed=done, total=total)
        elif now - self.said >= self.EVERY:
            self.said = now
            self.console.print(
                f"scanning logs: {done / 1e6:,.0f} of {total / 1e6:,.0f} MB "
                f"({done / 1e6 / (now - self.began):,.0f} MB/s)",
                highlight=False,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def troubleshoot_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sitemail troubleshoot")
    add_troubleshoot_arguments(p)
    return run_troubleshoot(p.parse_args(argv))


# ------------------------------------------------------------------ routing


def add_routing_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Sites, site links and costs, hubs, connectors, and the route from every hub to "
        "every site (the Exchange Toolbox's routing log viewer)."
    )
    p.add_argument("--json", action="store_true", help="print the view as JSON")
    p.add_argument("--svg", metavar="FILE", help="also draw it as an SVG picture")
    _add_dir(p)


def run_routing(args: argparse.Namespace) -> int:
    from sitemail.diagnose.routing_view import build_view, render_svg, render_text
    from sitemail.org.directory import DirectoryError, open_directory
    from sitemail.org.lab_state import lab_directory_url

    lab_dir = _lab_dir(args)
    url = lab_directory_url(lab_dir)
    if url is None:
        print(
            f"sitemail routing: no lab in {lab_dir}; start one with `sitemail lab up` "
            "or pass --dir",
            file=sys.stderr,
        )
        return 2
    try:
        directory = open_directory(url)
    except DirectoryError as exc:
        print(f"sitemail routing: {exc}", file=sys.stderr)
        return 2
    try:
        view = build_view(directory)
    finally:
        directory.close()
    if args.json:
        print(json.dumps(view.to_json(), indent=2))
    else:
        print(render_text(view), end="")
    if args.svg:
        Path(args.svg).write_text(render_svg(view), encoding="utf-8")
        if not args.json:
            print(f"Picture written to {args.svg}")
    return 0


def routing_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sitemail routing")
    add_routing_arguments(p)
    return run_routing(p.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"probe": probe_main, "troubleshoot": troubleshoot_main, "routing": routing_main}
    if not argv or argv[0] not in commands:
        print(
            "usage: python -m sitemail.diagnose.cli {probe,troubleshoot,routing} ...",
            file=sys.stderr,
        )
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
