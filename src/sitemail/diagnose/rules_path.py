"""Rules about the path between sites: ESMTP inspection, port 25, routing.

Live, a path is (site of the sending hub, hub of another site): the probe
went that way from the sending hub's address, and the firewalls of both
sites lie on it (the source site's on its ``inside`` interface, the target
site's on its ``outside``).  From logs alone a path is (the server whose
SmtpSend log it is, the peer it talked to).
"""

from __future__ import annotations

from sitemail.diagnose import commands as cmd
from sitemail.diagnose.facts import Facts, FirewallFact, PathProbe, QueueFact
from sitemail.diagnose.findings import (
    Confidence,
    Evidence,
    EvidenceKind,
    Finding,
    Fix,
    Severity,
)
from sitemail.diagnose.logs import LogKind
from sitemail.diagnose.logscan import Outcome
from sitemail.diagnose.path_acl import AclBlock, blocks_on_path, fix_lines, packet_tracer_line
from sitemail.diagnose.probe import Verdict
from sitemail.diagnose.rules import (
    Rule,
    group_evidence,
    queue_evidence,
)
from sitemail.org.model import Server
from sitemail.transport.routing import RoutingTable, least_cost_path

INSPECTION = "esmtp-inspection"
PORT_25 = "port-25-unreachable"
NO_ROUTE = "no-route"
UNREACHABLE_QUEUE = "unreachable-queue"


def _probe(facts: Facts, from_site: str, server: str, via: str) -> PathProbe | None:
    return next(
        (
            p
            for p in facts.probes
            if p.from_site == from_site and p.server == server and p.via == via
        ),
        None,
    )


def firewalls_on_path(facts: Facts, from_site: str, to_site: str) -> list[tuple[FirewallFact, str]]:
    """(firewall, interface the connection arrives on) for every firewall on the path."""
    out = []
    source = facts.firewall_of_site(from_site)
    if source is not None:
        out.append((source, "inside"))
    target = facts.firewall_of_site(to_site)
    if target is not None:
        out.append((target, "outside"))
    return out


def _senders(facts: Facts) -> list[tuple[str, list[Server]]]:
    """Sites with hubs, and their hubs."""
    out: dict[str, list[Server]] = {}
    for hub in facts.hubs():
        out.setdefault(hub.site, []).append(hub)
    return sorted(out.items())


def _queues_from(facts: Facts, senders: list[Server], site: str) -> list[QueueFact]:
    names = {s.name.lower() for s in senders}
    return [q for q in facts.queues_to(site) if q.server.lower() in names]


def _retry_fixes(queues: list[QueueFact], site: str) -> list[Fix]:
    waiting = [q for q in queues if q.status == "Retry" or q.message_count]
    if not waiting:
        return []
    return [
        cmd.shell(
            *(cmd.retry_queue(q.identity) for q in waiting),
            comment=f"then deliver what waits for {site} now instead of at the next retry",
        )
    ]


def _probe_evidence(p: PathProbe, tests: set[str] | None = None) -> list[Evidence]:
    r = p.result
    where = f"{p.source} -> {p.address}:{p.port}"
    out = [
        Evidence(
            EvidenceKind.PROBE,
            f"probe {p.via} to {p.server}: {r.headline()} (confidence {r.confidence:.2f})",
            where,
        )
    ]
    for s in r.signals:
        if tests is None or s.test in tests or (s.points_to == "inspection" and not tests):
            out.append(Evidence(EvidenceKind.PROBE, s.text, where))
    return out


# ------------------------------------------------------------------ inspection


def inspection(facts: Facts) -> list[Finding]:
    if not facts.live:
        return []  # logs alone: rules_logs
    findings = []
    for from_site, senders in _senders(facts):
        for target in facts.hubs():
            if target.site == from_site:
                continue
            found = _inspection_on_path(facts, from_site, senders, target)
            if found is not None:
                findings.append(found)
    return _one_per_pair_of_sites(findings)


def _waiting(f: Finding) -> bool:
    return any(e.kind is EvidenceKind.QUEUE for e in f.evidence)


def _one_per_pair_of_sites(findings: list[Finding]) -> list[Finding]:
    """Both directions between two sites cross the same firewalls and have the same fix:
    one finding, about the direction where mail waits, naming the other in a line."""
    kept: dict[frozenset[str], Finding] = {}
    for f in sorted(findings, key=lambda f: not _waiting(f)):
        pair = frozenset(part.strip() for part in f.subject.split("->"))
        have = kept.get(pair)
        if have is None:
            kept[pair] = f
            continue
        have.evidence.append(
            Evidence(
                EvidenceKind.PROBE,
                f"the same masking on the way back, {f.subject} ({f.evidence[0].text})",
                f.evidence[0].location,
            )
        )
        for fix in f.fixes:
            if fix not in have.fixes:
                have.fixes.insert(len([x for x in have.fixes if x.kind.value == "asa"]), fix)
    return list(kept.values())


def _inspection_on_path(
    facts: Facts, from_site: str, senders: list[Server], target: Server
) -> Finding | None:
    probe = _probe(facts, from_site, target.name, "path")
    on_path = firewalls_on_path(facts, from_site, target.site)
    inspecting = [(fw, iface) for fw, iface in on_path if fw.esmtp.get(iface)]
    probed_inspected = probe is not None and probe.result.inspected
    if not probed_inspected and not (probe is None and inspecting):
        return None
    evidence: list[Evidence] = []
    if probe is not None:
        evidence += _probe_evidence(probe, {"banner-charset", "ehlo-masked", "split-segment"})
        evidence += [
            Evidence(EvidenceKind.PROBE, s.text, probe.address)
            for s in probe.result.signals
            if s.test == "exchange-auth"
        ]
    direct = _probe(facts, from_site, target.name, "direct")
    if direct is not None and direct.result.verdict is Verdict.CLEAN:
        evidence.append(
            Evidence(
                EvidenceKind.PROBE,
                f"the same hub probed at its own address {direct.address}, bypassing the "
                f"firewalls: {direct.result.headline()} - the masking happens on the path",
                direct.address,
            )
        )
    for fw, iface in inspecting:
        evidence.append(
            Evidence(
                EvidenceKind.FIREWALL,
                f"{fw.name}: policy-map global_policy, class inspection_default: inspect "
                f"esmtp ({fw.esmtp[iface]}) applies to SMTP arriving on its {iface} interface",
                fw.name,
            )
        )
    queues = _queues_from(facts, senders, target.site)
    evidence += queue_evidence(q for q in queues if "5.7.3" in q.last_error)
    for sender in senders:
        evidence += group_evidence(facts, LogKind.SMTP_SEND, [Outcome.MASKED], server=sender.name)
    fixes = [cmd.no_inspect_esmtp(fw.name) for fw, _ in inspecting]
    if not fixes:
        fixes.append(
            cmd.asa(
                None,
                cmd.ASA_NO_INSPECT_ESMTP,
                f"on every Cisco ASA/PIX between {from_site} and {target.site}",
            )
        )
    fixes += _retry_fixes(queues, target.site)
    names = " and ".join(fw.name for fw, _ in inspecting) or "a device on the path"
    return Finding(
        cause=INSPECTION,
        title=f"ESMTP inspection on {names} masks the EHLO reply between {from_site} and "
        f"{target.site}",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH if probed_inspected else Confidence.MEDIUM,
        summary=(
            f"Mail from {from_site} to {target.site} cannot use Exchange Server "
            f"authentication: {names} inspect{'s' if len(inspecting) == 1 else ''} SMTP "
            f"(inspect esmtp), mask the banner and turn STARTTLS, X-ANONYMOUSTLS and X-EXPS in "
            f"{target.name}'s EHLO reply into X's, so the sending hub gives up with "
            '"451 5.7.3 Cannot achieve Exchange Server authentication" and the queue for '
            f"{target.site} stays in Retry. Turn ESMTP inspection off on "
            f"{'each firewall' if len(inspecting) != 1 else 'the firewall'} between the sites."
        ),
        evidence=evidence,
        fixes=fixes,
        symptoms=(3, 4),
        subject=f"{from_site} -> {target.site}",
    )


# ------------------------------------------------------------------ port 25


def port_25(facts: Facts) -> list[Finding]:
    findings: list[Finding] = []
    if facts.live:
        for from_site, senders in _senders(facts):
            for target in facts.hubs():
                if target.site == from_site:
                    continue
                probe = _probe(facts, from_site, target.name, "path")
                queues = _queues_from(facts, senders, target.site)
                blocks = [
                    block
                    for sender in senders
                    if sender.address and target.address
                    for block in blocks_on_path(
                        firewalls_on_path(facts, from_site, target.site),
                        sender.address,
                        target.address,
                    )
                ]
                if blocks:
                    findings.append(
                        _access_list_live(facts, from_site, senders, target, probe, queues, blocks)
                    )
                    continue
                refused = [q for q in queues if "4.2.1 Unable to connect" in q.last_error]
                if (probe is None or probe.result.verdict is not Verdict.UNREACHABLE) and not (
                    refused and probe is None
                ):
                    continue
                findings.append(_port_25_live(facts, from_site, senders, target, probe, queues))
        return findings
    return findings


def _port_25_live(
    facts: Facts,
    from_site: str,
    senders: list[Server],
    target: Server,
    probe: PathProbe | None,
    queues: list[QueueFact],
) -> Finding:
    evidence: list[Evidence] = []
    if probe is not None:
        evidence += _probe_evidence(probe, {"connect"})
    evidence += queue_evidence(queues)
    for sender in senders:
        evidence += group_evidence(
            facts, LogKind.SMTP_SEND, [Outcome.FAILED_TO_CONNECT], server=sender.name
        )
    fixes: list[Fix] = []
    source = senders[0]
    for fw, iface in firewalls_on_path(facts, from_site, target.site):
        if not fw.reachable:
            evidence.append(
                Evidence(EvidenceKind.FIREWALL, f"{fw.name} does not answer: {fw.error}", fw.name)
            )
            fixes.append(cmd.note(f"Start {fw.name} again (sitemail lab restart {fw.name})."))
            continue
        fixes.append(
            cmd.asa(
                fw.name,
                (
                    "config t",
                    f"access-list {iface}_access_in extended permit tcp host "
                    f"{source.address} host {target.address} eq smtp",
                    f"access-group {iface}_access_in in interface {iface}",
                    "exit",
                    "wr me",
                ),
                "if an access list on this ASA drops SMTP between the hubs",
            )
        )
    fixes.insert(
        0,
        cmd.shell(
            f"Test-NetConnection -ComputerName {target.fqdn} -Port 25",
            comment=f"on {source.name}: TcpTestSucceeded must become True",
        ),
    )
    fixes += _retry_fixes(queues, target.site)
    return Finding(
        cause=PORT_25,
        title=f"Port 25 of {target.name} is unreachable from {from_site}",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        summary=(
            f"Nothing answers on TCP port 25 when {from_site} connects to {target.name} the "
            f"way the hubs do ({probe.address if probe else target.fqdn}): the queue for "
            f"{target.site} waits with 421 4.2.1 Unable to connect. Something between the "
            "sites blocks or misroutes SMTP."
        ),
        evidence=evidence,
        fixes=fixes,
        symptoms=(3, 4),
        subject=f"{from_site} -> {target.name}",
    )


def _access_list_live(
    facts: Facts,
    from_site: str,
    senders: list[Server],
    target: Server,
    probe: PathProbe | None,
    queues: list[QueueFact],
    blocks: list[AclBlock],
) -> Finding:
    """An access group on the path refuses SMTP between the hubs: name the line and undo it."""
    evidence: list[Evidence] = []
    for block in blocks:
        group = block.verdict.group
        assert group is not None
        evidence.append(
            Evidence(
                EvidenceKind.FIREWALL,
                f"{block.firewall.name}: {group.text()}; {block.denying_line} refuses TCP/25 "
                f"from {block.source} to {block.destination} arriving on its {block.interface} "
                "interface (the firewall resets the connection and logs %ASA-4-106023)",
                block.firewall.name,
            )
        )
    if probe is not None:
        evidence += _probe_evidence(probe, {"connect", "banner"})
    evidence += queue_evidence(queues)
    for sender in senders:
        evidence += group_evidence(
            facts,
            LogKind.SMTP_SEND,
            [Outcome.DROPPED_BEFORE_BANNER, Outcome.FAILED_TO_CONNECT],
            server=sender.name,
        )
    fixes: list[Fix] = []
    for block in blocks:
        if any(f.target == block.firewall.name and f.lines == fix_lines(block) for f in fixes):
            continue
        fixes.append(
            cmd.asa(
                block.firewall.name,
                fix_lines(block),
                f"lets SMTP from {block.source} to {block.destination} through; check with "
                f"`{packet_tracer_line(block)}` (Action: allow) and `show access-list`",
            )
        )
    fixes += _retry_fixes(queues, target.site)
    names = " and ".join(dict.fromkeys(b.firewall.name for b in blocks))
    first = blocks[0]
    return Finding(
        cause=PORT_25,
        title=f"An access list on {names} blocks SMTP from {from_site} to {target.name}",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        summary=(
            f"{first.firewall.name}'s access group on its {first.interface} interface refuses "
            f"TCP port 25 from {first.source} to {target.name} ({first.destination}): "
            f"{first.denying_line}. The firewall resets each connection before the banner, so "
            f"the queue for {target.site} waits in Retry (421 4.4.2 Connection dropped; behind "
            "a real ASA, which drops the SYN, 421 4.2.1 Unable to connect). Remove the line, "
            "or permit SMTP between the hubs before it."
        ),
        evidence=evidence,
        fixes=fixes,
        symptoms=(3, 4),
        subject=f"{from_site} -> {target.name}",
    )


# ------------------------------------------------------------------ routing


def routing(facts: Facts) -> list[Finding]:
    if not facts.live:
        return []  # logs alone: rules_logs
    assert facts.organization is not None
    table = RoutingTable(
        facts.organization,
        facts.sites,
        facts.links,
        facts.servers,
        [],
        [],
        facts.send_connectors,
    )
    findings = []
    sites_with_hubs = sorted({h.site for h in facts.hubs()})
    unreachable = [q for q in facts.queues if q.delivery_type == "Unreachable"]
    stuck = [m for m in facts.messages if m.queue.endswith("\\Unreachable")]
    for from_site, senders in _senders(facts):
        for site in sites_with_hubs:
            if site == from_site or least_cost_path(table, from_site, site) is not None:
                continue
            links = (
                "; ".join(
                    f"{link.name} ({', '.join(link.sites)}) cost {link.effective_cost}"
                    for link in facts.links
                )
                or "none"
            )
            evidence = [
                Evidence(
                    EvidenceKind.ROUTING,
                    f"no chain of site links joins {from_site} to {site}; site links: {links}",
                ),
                *queue_evidence(q for q in unreachable if q.server in {s.name for s in senders}),
                *(
                    Evidence(EvidenceKind.QUEUE, f"{m.identity} {m.subject!r}: {m.last_error}")
                    for m in stuck[:5]
                ),
            ]
            queue_ids = sorted({q.identity for q in unreachable})
            fixes = [
                cmd.shell(
                    f"New-ADReplicationSiteLink -Name {from_site}-{site} -SitesIncluded "
                    f"{from_site},{site} -Cost 100",
                    comment="Active Directory module (or AD Sites and Services); Exchange "
                    "routes on the new link without a restart",
                ),
                cmd.shell(
                    *(f"Retry-Queue -Identity {cmd.quote(q)} -Resubmit $true" for q in queue_ids),
                    comment="the Unreachable queue is retried only with -Resubmit",
                )
                if queue_ids
                else cmd.note("Messages for the site wait in each hub's Unreachable queue."),
            ]
            findings.append(
                Finding(
                    cause=NO_ROUTE,
                    title=f"No route from site {from_site} to site {site}",
                    severity=Severity.ERROR,
                    confidence=Confidence.HIGH,
                    summary=(
                        f"The routing configuration has no site link (or chain of links) "
                        f"between {from_site} and {site}, so the categorizer on "
                        f"{', '.join(s.name for s in senders)} puts mail for {site}'s "
                        "mailboxes in the Unreachable queue; no connection is even tried."
                    ),
                    evidence=evidence,
                    fixes=fixes,
                    symptoms=(3, 4),
                    subject=f"{from_site} -> {site}",
                )
            )
    if not findings and stuck:
        findings.append(
            Finding(
                cause=UNREACHABLE_QUEUE,
                title="Messages wait in the Unreachable queue",
                severity=Severity.WARNING,
                confidence=Confidence.HIGH,
                summary=(
                    "Every site is reachable now, but messages routed while it was not still "
                    "wait in Unreachable; resubmit them."
                ),
                evidence=[
                    Evidence(EvidenceKind.QUEUE, f"{m.identity} {m.subject!r}: {m.last_error}")
                    for m in stuck[:5]
                ],
                fixes=[
                    cmd.shell(
                        *(
                            f"Retry-Queue -Identity {cmd.quote(q.identity)} -Resubmit $true"
                            for q in unreachable
                        )
                    )
                ],
                symptoms=(3, 4),
                subject="Unreachable",
            )
        )
    return findings


RULES: list[Rule] = [inspection, port_25, routing]
