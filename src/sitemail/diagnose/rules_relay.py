"""Internet-facing receive connectors, from their logs: open relays and lost anonymous mail.

An anonymous session that relayed is an open relay only on evidence: it came
from outside the organization's networks and had a recipient of a domain that
is not the organization's accepted (:class:`~.orgmap.OrgMap` says which are);
a relay connector that only the organization's own hosts used is information.
A connector that took anonymous (Internet) mail and then answered 530 to many
sources lost AnonymousUsers; a few 530s on a connector that never took
anonymous mail are Internet noise.
"""

from __future__ import annotations

from sitemail.diagnose import commands as cmd
from sitemail.diagnose.conversation import Outcome
from sitemail.diagnose.findings import Confidence, Evidence, EvidenceKind, Finding, Severity
from sitemail.diagnose.logscan import LogDigest, RelayFacts
from sitemail.diagnose.orgmap import OrgMap
from sitemail.diagnose.rules import log_evidence
from sitemail.diagnose.rules_logs import OPEN_RELAY, PERMISSION_GROUPS, RELAY_CONNECTOR


def anonymous_findings(d: LogDigest) -> list[Finding]:
    """An Internet connector that took anonymous mail and now refuses it (530)."""
    out = []
    for connector, a in d.anonymous.items():
        if not a.delivered or a.refused_after < 3 or len(a.refused_sources) < 2:
            continue
        groups = [
            g
            for k, g in d.groups.items()
            if k[2] == connector and k[4] is Outcome.NOT_AUTHENTICATED
        ]
        evidence = [
            Evidence(
                EvidenceKind.LOG,
                f"{a.delivered} anonymous session(s) delivered on {connector} until "
                f"{a.last_delivered}; then {a.refused_after} refused with 530 from "
                f"{len(a.refused_sources)} source(s)",
            )
        ]
        for g in groups[:1]:
            evidence += log_evidence(g.examples[0].rows, 6)
        out.append(
            Finding(
                cause=PERMISSION_GROUPS,
                title=f"{connector} stopped taking anonymous (Internet) mail",
                severity=Severity.ERROR,
                confidence=Confidence.HIGH,
                summary=(
                    f"{connector} accepted mail from anonymous senders, then began answering "
                    "530 5.7.1 Client was not authenticated at MAIL FROM: its PermissionGroups "
                    "lost AnonymousUsers, and Internet mail is refused."
                ),
                evidence=evidence,
                fixes=[
                    cmd.shell(
                        f"Set-ReceiveConnector {cmd.quote(connector)} -PermissionGroups "
                        "AnonymousUsers,ExchangeUsers,ExchangeServers,"
                        "ExchangeLegacyServers",
                        comment="the groups it had, with AnonymousUsers back",
                    )
                ],
                symptoms=(2,),
                subject=connector,
            )
        )
    return out


def relay_findings(d: LogDigest) -> list[Finding]:
    out = []
    for connector, relay in d.relay.items():
        outside = _relayed_outside(d.org, relay)
        if outside:
            out.append(_open_relay(connector, relay, outside))
        elif any(not d.org.is_org_domain(dom) for dom in relay.domains):
            sources = ", ".join(sorted(relay.sources)[:5])
            out.append(
                Finding(
                    cause=RELAY_CONNECTOR,
                    title=f"{connector} relays for internal hosts",
                    severity=Severity.INFO,
                    confidence=Confidence.HIGH,
                    summary=(
                        f"Anonymous sessions on {connector} may send to any domain, and only "
                        f"the organization's own addresses used it ({sources}): a relay "
                        "connector for devices and applications, scoped by RemoteIPRanges. "
                        "Keep its ranges to those hosts."
                    ),
                    evidence=[
                        Evidence(
                            EvidenceKind.LOG,
                            f"{relay.sessions} session(s) from {len(relay.sources)} address(es)",
                        )
                    ],
                    subject=connector,
                )
            )
    return out


def _relayed_outside(org: OrgMap, relay: RelayFacts) -> list[tuple[str, str, int]]:
    """(source, domain, sessions) of relaying from outside the organization's networks to
    domains that are not its own, most sessions first."""
    return sorted(
        (
            (source, domain, n)
            for (source, domain), n in relay.pairs.items()
            if not org.is_internal(source) and not org.is_org_domain(domain)
        ),
        key=lambda x: -x[2],
    )


def _open_relay(connector: str, relay: RelayFacts, outside: list[tuple[str, str, int]]) -> Finding:
    sources = sorted({src for src, _, _ in outside})
    domains = sorted({dom for _, dom, _ in outside})
    first = outside[0]
    ex = relay.examples.get(first[1])
    evidence = [
        Evidence(
            EvidenceKind.LOG,
            f"{sum(n for _, _, n in outside)} recipient(s) of {len(domains)} outside domain(s) "
            f"({', '.join(domains[:4])}) accepted from {len(sources)} outside address(es) "
            f"({', '.join(sources[:4])}) on {connector}",
        ),
        *(log_evidence(ex.rows, 6) if ex is not None else []),
    ]
    return Finding(
        cause=OPEN_RELAY,
        title=f"{connector} is an open relay",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        summary=(
            f"Anonymous senders from outside the organization's networks hold "
            f"SMTPAcceptAnyRecipient on {connector} (its Set Session Permissions row) and had "
            "recipients in other organizations' domains accepted: anyone can relay through it."
        ),
        evidence=evidence,
        fixes=[
            cmd.shell(
                cmd.set_connector(
                    connector, auth_mechanism="Tls", permission_groups="AnonymousUsers"
                ),
                comment="for Internet mail; a relay for chosen hosts keeps its rights but lists "
                "only them in -RemoteIPRanges",
            )
        ],
        symptoms=(),
        subject=connector,
    )
