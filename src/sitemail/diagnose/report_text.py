"""The report as a person reads it in a terminal: cause, evidence with file:line, exact fix."""

from __future__ import annotations

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from sitemail.diagnose.findings import (
    SYMPTOMS,
    Finding,
    FixKind,
    Report,
    Severity,
)
from sitemail.diagnose.probe import ProbeResult

_COLOR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _finding(n: int, f: Finding) -> Panel:
    parts: list[Text] = []
    parts.append(Text(f.summary))
    if f.evidence:
        parts.append(Text("\nEvidence", style="bold"))
        for e in f.evidence:
            line = Text("  - ")
            if e.short_location:
                line.append(e.short_location, style="dim")
                line.append("  ")
            line.append(e.text)
            parts.append(line)
    if f.fixes:
        parts.append(Text("\nFix", style="bold"))
        for fix in f.fixes:
            where = {
                FixKind.SHELL: "Exchange Management Shell",
                FixKind.ASA: f"on {fix.target} (sitemail asa {fix.target})"
                if fix.target
                else "on the firewall",
                FixKind.NOTE: "",
            }[fix.kind]
            head = Text("  ")
            if where:
                head.append(where, style="bold")
            if fix.comment:
                head.append(f"  # {fix.comment}", style="dim")
            if where or fix.comment:
                parts.append(head)
            for text in fix.lines:
                style = "" if fix.kind is FixKind.NOTE else "green"
                parts.append(Text(f"    {text}", style=style))
    title = (
        f"[bold {_COLOR[f.severity]}]{n}. {escape(f.title)}[/]  "
        f"[dim]({f.cause}, {f.confidence.value} confidence)[/]"
    )
    return Panel(Group(*parts), title=title, title_align="left", border_style=_COLOR[f.severity])


def print_report(report: Report, console: Console) -> None:
    if report.symptom is not None:
        console.print(f"[bold]Symptom {report.symptom}:[/] {escape(SYMPTOMS[report.symptom])}")
    where = "the running lab" if report.mode == "live" else "the log files"
    if not report.findings:
        console.print(f"[green]No problem found in {where}.[/]")
    else:
        errors = sum(1 for f in report.findings if f.severity is Severity.ERROR)
        console.print(
            f"[bold]{len(report.findings)} finding(s) in {where}[/] ({errors} stopping mail):"
        )
        for i, f in enumerate(report.findings, 1):
            console.print(_finding(i, f))
    console.print("[dim]Looked at:[/]")
    for line in report.looked_at:
        console.print(f"[dim]  {escape(line)}[/]")


def print_probe(result: ProbeResult, console: Console) -> None:
    t = result.transcript
    color = {"inspected": "red", "clean": "green"}.get(result.verdict.value, "yellow")
    console.print(
        f"[bold]{escape(t.target)}[/]: [bold {color}]{result.verdict.value}[/] "
        f"(confidence {result.confidence:.2f}) - {escape(result.headline())}"
    )
    for s in result.signals:
        mark = {"inspection": "[red]![/]", "clean": "[green]ok[/]", "info": "[dim]i[/]"}[
            s.points_to
        ]
        console.print(f"  {mark} [dim]{s.test}:[/] {escape(s.text)}")
    console.print(
        f"[dim]  {t.elapsed:.2f} s, {t.bytes_read} bytes read, "
        f"{'ended with QUIT' if t.quit_sent else 'no QUIT (connection gone)'}; no mail sent[/]"
    )
    for note in t.notes:
        console.print(f"[dim]  note: {escape(note)}[/]")
