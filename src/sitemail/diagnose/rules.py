"""The troubleshooter's rules: pure functions from :class:`Facts` to findings.

Each rule looks at what is known (a live lab gives the directory, queues,
firewalls and probes; log files give the digest) and names a cause with its
evidence and its fix.  The rules live in three modules by subject:

- :mod:`.rules_path` - inspection on the path, port 25, routing between sites;
- :mod:`.rules_connectors` - receive connectors: remote IP ranges, a narrower
  connector capturing the sender, AuthMechanism, PermissionGroups, open relay;
- :mod:`.rules_messages` - delayed, expired and refused messages, submission,
  certificates.

:func:`evaluate` runs them all and merges findings of one cause about one
subject (their evidence and fixes are joined).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sitemail.diagnose.facts import Facts, QueueFact
from sitemail.diagnose.findings import (
    Confidence,
    Evidence,
    EvidenceKind,
    Finding,
    Report,
    Severity,
    for_symptom,
    sort_findings,
)
from sitemail.diagnose.logs import LogKind
from sitemail.diagnose.logscan import Group, GroupKey, KeyRow, Outcome

Rule = Callable[[Facts], list[Finding]]

EDGE_SYMPTOM = 6

#: Evidence items kept per finding (the report says how many more there were).
MAX_EVIDENCE = 14


def log_evidence(rows: Iterable[KeyRow], limit: int = 6) -> list[Evidence]:
    out: list[Evidence] = []
    for row in rows:
        if len(out) >= limit:
            break
        out.append(Evidence(EvidenceKind.LOG, row.text, row.location or None))
    return out


def example_evidence(group: Group, rows: int = 6) -> list[Evidence]:
    """The rows of a group's first session, and how many sessions were like it."""
    return [
        *log_evidence(group.examples[0].rows, rows),
        Evidence(EvidenceKind.LOG, f"{group.count} session(s) like it"),
    ]


def group_evidence(
    facts: Facts,
    kind: LogKind,
    outcomes: Iterable[Outcome],
    *,
    server: str | None = None,
    connector: str | None = None,
    rows: int = 6,
) -> list[Evidence]:
    """The rows of the first example of every matching log group, with a count line."""
    out: list[Evidence] = []
    for key, group in facts.logs.by_outcome(kind, *outcomes):
        if server is not None and key[1].lower() != server.lower():
            continue
        if connector is not None and key[2].lower() != connector.lower():
            continue
        out.append(Evidence(EvidenceKind.LOG, _group_line(key, group)))
        out.extend(log_evidence(group.examples[0].rows, rows))
    return out


def _group_line(key: GroupKey, group: Group) -> str:
    kind, server, connector, peer, outcome = key
    side = "sent" if kind is LogKind.SMTP_SEND else "received"
    when = f" between {group.first} and {group.last}" if group.first != group.last else ""
    return (
        f"{server} {kind.value} log: {group.count} session(s) {side} on {connector} "
        f"with {peer or '?'} ended {outcome.value}{when}"
    )


def queue_evidence(queues: Iterable[QueueFact]) -> list[Evidence]:
    out = []
    for q in queues:
        text = (
            f"{q.identity} DeliveryType {q.delivery_type} NextHopDomain {q.next_hop} "
            f"Status {q.status} MessageCount {q.message_count}"
        )
        if q.last_error:
            text += f" LastError {q.last_error}"
        out.append(Evidence(EvidenceKind.QUEUE, text, q.identity))
    return out


def _merge(findings: list[Finding]) -> list[Finding]:
    merged: dict[tuple[str, str], Finding] = {}
    for f in findings:
        key = (f.cause, f.subject)
        have = merged.get(key)
        if have is None:
            merged[key] = f
            continue
        for e in f.evidence:
            if e not in have.evidence:
                have.evidence.append(e)
        for fix in f.fixes:
            if fix not in have.fixes:
                have.fixes.append(fix)
    for f in merged.values():
        if len(f.evidence) > MAX_EVIDENCE:
            extra = len(f.evidence) - MAX_EVIDENCE
            f.evidence = f.evidence[:MAX_EVIDENCE]
            f.evidence.append(Evidence(EvidenceKind.LOG, f"... and {extra} more"))
    return list(merged.values())


def all_rules(live: bool = True) -> list[Rule]:
    """The live rules (directory, queues, firewalls, probes, logs), or the rules that read
    logs alone (:mod:`.rules_logs`)."""
    if not live:
        from sitemail.diagnose import rules_logs

        return list(rules_logs.RULES)
    from sitemail.diagnose import (
        rules_connectors,
        rules_exchange2007,
        rules_legacy,
        rules_messages,
        rules_path,
    )

    return [
        *rules_path.RULES,
        *rules_connectors.RULES,
        *rules_messages.RULES,
        *rules_legacy.RULES,
        *rules_exchange2007.RULES,
    ]


def evaluate(facts: Facts, rules: Iterable[Rule] | None = None) -> list[Finding]:
    """Every finding the rules make of ``facts``, merged and in report order."""
    found: list[Finding] = []
    for rule in all_rules(facts.live) if rules is None else rules:
        found.extend(rule(facts))
    return sort_findings(_merge(found))


def build_report(facts: Facts, symptom: int | None = None) -> Report:
    """Findings for ``facts`` (for one symptom, when given) and what was looked at."""
    findings = for_symptom(evaluate(facts), symptom)
    looked = []
    if facts.live:
        looked.append(
            f"directory: {len(facts.sites)} sites, {len(facts.links)} site links, "
            f"{len(facts.hubs())} hubs, {len(facts.connectors)} receive connectors"
        )
        servers = sorted({q.server for q in facts.queues})
        looked.append(
            f"queues: {len(facts.queues)} on {', '.join(servers) or 'no server'}, "
            f"{len(facts.messages)} messages"
        )
        for name, why in facts.unreachable_servers.items():
            looked.append(f"{name}: admin API did not answer ({why})")
        for fw in facts.firewalls:
            state = (
                "inspect esmtp on "
                + (", ".join(i for i, m in sorted(fw.esmtp.items()) if m) or "no interface")
                if fw.reachable
                else f"not answering ({fw.error})"
            )
            looked.append(f"firewall {fw.name}: {state}")
        for p in facts.probes:
            looked.append(
                f"probe {p.from_site} -> {p.server} ({p.via}, {p.source} -> "
                f"{p.address}:{p.port}): {p.result.verdict.value}"
            )
    d = facts.logs
    looked.append(
        f"logs: {len(d.files)} protocol log files, {d.rows} rows, {d.sessions} sessions; "
        f"{d.tracking.rows} tracking rows"
    )
    if symptom == EDGE_SYMPTOM and not findings:
        findings.append(
            Finding(
                cause="edge-sync",
                title="No Edge Transport server: nothing to synchronize",
                severity=Severity.INFO,
                confidence=Confidence.HIGH,
                summary=(
                    "This organization has no Edge Transport server, so EdgeSync has no "
                    "subscription to check; Internet mail is received by the hubs."
                ),
                symptoms=(EDGE_SYMPTOM,),
                subject="edge",
            )
        )
    return Report(
        mode=facts.mode,
        findings=findings,
        looked_at=looked,
        symptom=symptom,
        stats={
            "files": len(d.files),
            "bytes": d.bytes,
            "rows": d.rows,
            "sessions": d.sessions,
            "tracking_rows": d.tracking.rows,
        },
    )
