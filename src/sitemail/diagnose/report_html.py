"""``--html FILE``: the report as one self-contained page (no scripts, no external files)."""

from __future__ import annotations

from html import escape

from sitemail.diagnose.findings import SYMPTOMS, Finding, FixKind, Report, Severity

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;
color:#1d2330}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}
main{max-width:1100px;margin:0 auto;padding:20px 32px 40px}
.summary{display:flex;gap:12px;margin:8px 0 20px}
.pill{padding:6px 12px;border-radius:14px;font-weight:600;font-size:14px;background:#e3e7ee}
.pill.error{background:#fde2e1;color:#a61b1b}.pill.warning{background:#fff1cc;color:#8a5a00}
.pill.info{background:#dff1fb;color:#0b5a7a}
.finding{background:#fff;border-radius:8px;margin:0 0 18px;box-shadow:0 1px 3px rgba(0,0,0,.12);
border-left:6px solid #999;overflow:hidden}
.finding.error{border-left-color:#d33}.finding.warning{border-left-color:#e0a000}
.finding.info{border-left-color:#2a9fd6}
.finding h2{font-size:17px;margin:0;padding:14px 18px 4px}
.meta{padding:0 18px;color:#5b6475;font-size:13px}
.meta code{background:#eef1f5;padding:1px 5px;border-radius:4px}
.finding p.summary-text{padding:0 18px;line-height:1.45}
h3{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#5b6475;margin:14px 18px 6px}
table{border-collapse:collapse;margin:0 18px 8px;width:calc(100% - 36px);font-size:13px}
td{border-top:1px solid #eceff3;padding:5px 8px;vertical-align:top}
td.loc{font-family:ui-monospace,Menlo,Consolas,monospace;color:#5b6475;white-space:nowrap;
max-width:360px;overflow:hidden;text-overflow:ellipsis}
td.kind{color:#5b6475;width:70px}
.fix{margin:0 18px 12px}
.fix .where{font-weight:600;font-size:13px;margin-bottom:3px}
.fix .comment{color:#5b6475;font-weight:400}
pre{background:#101820;color:#d7f7c2;padding:10px 12px;border-radius:6px;margin:0;
font-size:13px;overflow-x:auto}
pre.note{background:#eef1f5;color:#1d2330;white-space:pre-wrap}
.looked{font-size:13px;color:#5b6475}
.ok{background:#e3f6e5;color:#1e6b2a;padding:14px 18px;border-radius:8px}
"""


def _fix_html(fix_kind: FixKind, target: str | None, comment: str, lines: tuple[str, ...]) -> str:
    where = {
        FixKind.SHELL: "Exchange Management Shell",
        FixKind.ASA: f"On {target} (ASA console)" if target else "On the firewall (ASA console)",
        FixKind.NOTE: "By hand",
    }[fix_kind]
    note = f' <span class="comment"># {escape(comment)}</span>' if comment else ""
    css = ' class="note"' if fix_kind is FixKind.NOTE else ""
    body = escape("\n".join(lines))
    head = f'<div class="where">{escape(where)}{note}</div>'
    return f'<div class="fix">{head}<pre{css}>{body}</pre></div>'


def _finding_html(n: int, f: Finding) -> str:
    rows = "".join(
        f'<tr><td class="kind">{escape(e.kind.value)}</td>'
        f'<td class="loc" title="{escape(e.location or "")}">{escape(e.short_location or "")}</td>'
        f"<td>{escape(e.text)}</td></tr>"
        for e in f.evidence
    )
    fixes = "".join(_fix_html(x.kind, x.target, x.comment, x.lines) for x in f.fixes)
    symptoms = ", ".join(str(s) for s in f.symptoms) or "-"
    return (
        f'<section class="finding {f.severity.value}">'
        f"<h2>{n}. {escape(f.title)}</h2>"
        f'<div class="meta">cause <code>{escape(f.cause)}</code> &middot; '
        f"{escape(f.severity.value)} &middot; {escape(f.confidence.value)} confidence &middot; "
        f"about {escape(f.subject)} &middot; symptoms {symptoms}</div>"
        f'<p class="summary-text">{escape(f.summary)}</p>'
        + (f"<h3>Evidence</h3><table>{rows}</table>" if rows else "")
        + (f"<h3>Fix</h3>{fixes}" if fixes else "")
        + "</section>"
    )


def render_html(report: Report) -> str:
    where = "the running lab" if report.mode == "live" else "log files"
    counts = {s: sum(1 for f in report.findings if f.severity is s) for s in Severity}
    pills = "".join(f'<span class="pill {s.value}">{counts[s]} {s.value}</span>' for s in Severity)
    symptom = (
        f"<p><b>Symptom {report.symptom}:</b> {escape(SYMPTOMS[report.symptom])}</p>"
        if report.symptom is not None
        else ""
    )
    body = (
        "".join(_finding_html(i, f) for i, f in enumerate(report.findings, 1))
        if report.findings
        else f'<p class="ok">No problem found in {escape(where)}.</p>'
    )
    looked = "".join(f"<li>{escape(line)}</li>" for line in report.looked_at)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>sitemail mail flow troubleshooter - {escape(where)}</title>"
        f"<style>{_CSS}</style></head><body>"
        "<header><h1>Mail flow troubleshooter</h1>"
        f"<p>sitemail, {escape(where)}, {escape(report.generated.isoformat(timespec='seconds'))}"
        "</p></header><main>"
        f'{symptom}<div class="summary">{pills}</div>{body}'
        f'<h3>Looked at</h3><ul class="looked">{looked}</ul>'
        "</main></body></html>\n"
    )
