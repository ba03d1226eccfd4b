"""Rules about receive connectors (exchange-2010.md 1.1-1.6, 3.2).

Live, for every sending hub and every hub of another site, the rule asks
what :func:`select_connector` asks: which connector of the receiving hub
takes a connection from the sender's address on port 25?  Then:

- none: its RemoteIPRanges do not cover the sender (the connection gets no
  banner; the queue shows ``421 4.4.2 Connection dropped``);
- a narrower connector than ``Default <SERVER>`` without Exchange Server
  authentication or permissions: it captures the hub's traffic;
- the connector lacks ``ExchangeServer`` in AuthMechanism: no
  X-ANONYMOUSTLS/X-EXPS in its EHLO reply, ``451 5.7.3`` on the sender;
- it lacks ``ExchangeServers`` in PermissionGroups: the authenticated hub may
  not send as the organization's senders, ``550 5.7.1`` and NDRs.

The same causes are read from logs: the sender's EHLO reply without
X-ANONYMOUSTLS, the receiver's session on an unexpected connector, the
``550 5.7.1`` after a successful ``235``, a connection closed before its
banner.  Internet mail needs ``AnonymousUsers``; a connector that grants
anonymous senders Accept-Any-Recipient over wide ranges is an open relay.
"""

from __future__ import annotations

from sitemail.diagnose import commands as cmd
from sitemail.diagnose.facts import Facts, QueueFact
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
from sitemail.diagnose.orgmap import inside_internal
from sitemail.diagnose.rules import (
    Rule,
    group_evidence,
    log_evidence,
    queue_evidence,
)
from sitemail.org.model import AuthMechanism, PermissionGroup, ReceiveConnector, Server
from sitemail.transport.connector_selection import select_connector
from sitemail.transport.permissions import Principal, Right, session_rights

REMOTE_IP_RANGES = "connector-remote-ip-ranges"
CAPTURED = "connector-captured"
AUTH_MECHANISM = "connector-auth-mechanism"
PERMISSION_GROUPS = "connector-permission-groups"
OPEN_RELAY = "open-relay"

SMTP_PORT = 25
RELAY_CONNECTOR = "relay-connector"


def describe(c: ReceiveConnector) -> str:
    return (
        f"{c.identity}: Bindings {{{', '.join(c.bindings)}}}, RemoteIPRanges "
        f"{{{', '.join(c.remote_ip_ranges)}}}, AuthMechanism "
        f"{', '.join(m.value for m in c.auth_mechanism)}, PermissionGroups "
        f"{', '.join(g.value for g in c.permission_groups)}"
        + ("" if c.enabled else ", Enabled False")
    )


def _connector_evidence(c: ReceiveConnector) -> Evidence:
    return Evidence(EvidenceKind.CONNECTOR, describe(c), c.identity)


def _is_default(c: ReceiveConnector) -> bool:
    return c.name.lower() == f"default {c.server}".lower()


def _pairs(facts: Facts) -> list[tuple[Server, Server]]:
    """(sending hub, receiving hub of another site)."""
    hubs = facts.hubs()
    return [(s, r) for s in hubs for r in hubs if s.site != r.site and s.address and r.address]


def connectors(facts: Facts) -> list[Finding]:
    if not facts.live:
        return []  # logs alone: rules_logs
    findings: list[Finding] = []
    for sender, receiver in _pairs(facts):
        assert sender.address is not None and receiver.address is not None
        found = _judge_pair(facts, sender, receiver)
        if found is not None:
            findings.append(found)
    findings += _internet(facts)
    return findings


def _judge_pair(facts: Facts, sender: Server, receiver: Server) -> Finding | None:
    assert sender.address is not None and receiver.address is not None
    conns = facts.connectors_of(receiver.name)
    chosen = select_connector(conns, receiver.address, SMTP_PORT, sender.address)
    queues = [q for q in facts.queues_to(receiver.site) if q.server == sender.name]
    base = queue_evidence(queues)
    if chosen is None:
        port25 = [c for c in conns if any(p == SMTP_PORT for _, p in c.ports)]
        evidence = [
            Evidence(
                EvidenceKind.CONNECTOR,
                f"no enabled receive connector of {receiver.name} on port 25 covers "
                f"{sender.name}'s address {sender.address}",
                receiver.name,
            ),
            *(_connector_evidence(c) for c in port25),
            *base,
            *group_evidence(
                facts, LogKind.SMTP_SEND, [Outcome.DROPPED_BEFORE_BANNER], server=sender.name
            ),
            *_probe_lines(facts, sender.site, receiver.name, {"banner"}),
        ]
        default = next((c for c in port25 if _is_default(c)), port25[0] if port25 else None)
        fixes = (
            [
                cmd.shell(
                    cmd.set_connector(default.identity, remote_ip_ranges=cmd.ALL_ADDRESSES),
                    comment="the out-of-box value; or keep the list and add "
                    f"{sender.address} to it",
                )
            ]
            if default is not None
            else [cmd.note(f"Create a receive connector on {receiver.name} for port 25.")]
        )
        return Finding(
            cause=REMOTE_IP_RANGES,
            title=f"No receive connector of {receiver.name} accepts {sender.name}",
            severity=Severity.ERROR,
            confidence=Confidence.HIGH,
            summary=(
                f"{receiver.name}'s connectors on port 25 do not list {sender.name}'s "
                f"address {sender.address} in their RemoteIPRanges, so its connections are "
                "closed without a banner and the queue for "
                f"{receiver.site} waits with 421 4.4.2 Connection dropped."
            ),
            evidence=evidence,
            fixes=fixes + _retry(queues),
            symptoms=(3, 4),
            subject=default.identity if default else receiver.name,
        )
    lacks_auth = AuthMechanism.EXCHANGE_SERVER not in chosen.auth_mechanism
    lacks_group = PermissionGroup.EXCHANGE_SERVERS not in chosen.permission_groups
    if not _is_default(chosen) and (lacks_auth or lacks_group):
        return _captured(facts, sender, receiver, chosen, conns, base, queues)
    if lacks_auth:
        return _auth_mechanism(facts, sender, receiver, chosen, base, queues)
    if lacks_group:
        return _permission_groups(facts, sender, receiver, chosen, base)
    if AuthMechanism.TLS not in chosen.auth_mechanism:
        return Finding(
            cause=AUTH_MECHANISM,
            title=f"{chosen.identity} has no Tls in its AuthMechanism",
            severity=Severity.WARNING,
            confidence=Confidence.HIGH,
            summary=(
                "Hub-to-hub mail still flows (X-ANONYMOUSTLS does not need it), but the "
                "connector offers no STARTTLS to clients and BasicAuthRequireTLS needs Tls."
            ),
            evidence=[_connector_evidence(chosen)],
            fixes=[cmd.shell(cmd.auth_fix(chosen))],
            symptoms=(2,),
            subject=chosen.identity,
        )
    return None


def _retry(queues: list[QueueFact]) -> list[Fix]:
    waiting = [q for q in queues if q.status == "Retry"]
    if not waiting:
        return []
    return [
        cmd.shell(
            *(cmd.retry_queue(q.identity) for q in waiting),
            comment="then deliver what waits now",
        )
    ]


def _probe_lines(facts: Facts, site: str, server: str, tests: set[str]) -> list[Evidence]:
    out = []
    for p in facts.probes:
        if p.from_site == site and p.server == server and p.via == "path":
            out.append(
                Evidence(
                    EvidenceKind.PROBE,
                    f"probe to {server}: {p.result.headline()}",
                    f"{p.address}:{p.port}",
                )
            )
            out += [
                Evidence(EvidenceKind.PROBE, s.text, f"{p.address}:{p.port}")
                for s in p.result.signals
                if s.test in tests
            ]
    return out


def _auth_mechanism(
    facts: Facts,
    sender: Server,
    receiver: Server,
    chosen: ReceiveConnector,
    base: list[Evidence],
    queues: list[QueueFact],
) -> Finding:
    none = chosen.auth_mechanism == [AuthMechanism.NONE]
    lost = "all authentication (AuthMechanism None)" if none else "ExchangeServer"
    return Finding(
        cause=AUTH_MECHANISM,
        title=f"{chosen.identity} lost {'all authentication' if none else 'ExchangeServer'} "
        "from its AuthMechanism",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        summary=(
            f"{chosen.identity} takes {sender.name}'s connections but has lost {lost}: its "
            "EHLO reply offers no X-ANONYMOUSTLS and no X-EXPS, so "
            f"{sender.name} cannot do Exchange Server authentication and gives up with 451 "
            f"5.7.3 Cannot achieve Exchange Server authentication (the path itself is clean)."
        ),
        evidence=[
            _connector_evidence(chosen),
            *base,
            *_probe_lines(facts, sender.site, receiver.name, {"exchange-auth", "ehlo-masked"}),
            *group_evidence(
                facts,
                LogKind.SMTP_SEND,
                [Outcome.NO_EXCHANGE_AUTH, Outcome.NO_AUTH],
                server=sender.name,
            ),
            *group_evidence(
                facts, LogKind.SMTP_RECEIVE, [Outcome.NO_EXCHANGE_AUTH], server=receiver.name
            ),
        ],
        fixes=[cmd.shell(cmd.auth_fix(chosen)), *_retry(queues)],
        symptoms=(3, 4),
        subject=chosen.identity,
    )


def _permission_groups(
    facts: Facts,
    sender: Server,
    receiver: Server,
    chosen: ReceiveConnector,
    base: list[Evidence],
) -> Finding:
    t = facts.logs.tracking
    ndrs = [
        row for reason, rows in t.ndr.items() if "send as this sender" in reason for row in rows
    ]
    return Finding(
        cause=PERMISSION_GROUPS,
        title=f"{chosen.identity} lost ExchangeServers from its PermissionGroups",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        summary=(
            f"{sender.name} authenticates as an Exchange server on {chosen.identity}, but "
            "the connector no longer grants the Exchange Servers group its rights: the "
            "session has only ExchangeUsers' (no Accept-Any-Sender, no Accept-Authoritative-"
            "Domain-Sender), MAIL FROM is refused with 550 5.7.1 Client does not have "
            "permissions to send as this sender, and the senders get NDRs."
        ),
        evidence=[
            _connector_evidence(chosen),
            *base,
            *group_evidence(facts, LogKind.SMTP_SEND, [Outcome.SEND_AS_DENIED], server=sender.name),
            *group_evidence(
                facts, LogKind.SMTP_RECEIVE, [Outcome.SEND_AS_DENIED], server=receiver.name
            ),
            *log_evidence(ndrs, 3),
        ],
        fixes=[
            cmd.shell(
                cmd.permission_fix(chosen),
                comment="the senders must send again: the refused messages were returned",
            )
        ],
        symptoms=(1, 3),
        subject=chosen.identity,
    )


def _captured(
    facts: Facts,
    sender: Server,
    receiver: Server,
    chosen: ReceiveConnector,
    conns: list[ReceiveConnector],
    base: list[Evidence],
    queues: list[QueueFact],
) -> Finding:
    hubs = [h.address for h in facts.hubs() if h.address and h.site != receiver.site]
    remaining = cmd.ranges_without(chosen.remote_ip_ranges, hubs)
    default = next((c for c in conns if _is_default(c)), None)
    fixes = [
        cmd.shell(
            cmd.set_connector(chosen.identity, remote_ip_ranges=",".join(remaining))
            if remaining
            else f"Remove-ReceiveConnector {cmd.quote(chosen.identity)}",
            comment="take the other sites' hubs out of its RemoteIPRanges, so that they land "
            f"on {default.identity if default else 'the Default connector'} again",
        ),
        *_retry(queues),
    ]
    missing = [
        what
        for what, gone in (
            (
                "ExchangeServer authentication",
                AuthMechanism.EXCHANGE_SERVER not in chosen.auth_mechanism,
            ),
            (
                "the ExchangeServers group",
                PermissionGroup.EXCHANGE_SERVERS not in chosen.permission_groups,
            ),
        )
        if gone
    ]
    return Finding(
        cause=CAPTURED,
        title=f"{chosen.identity} captures {sender.name}'s connections",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        summary=(
            f"{chosen.identity} lists {sender.name}'s address {sender.address} more "
            f"specifically than {default.identity if default else 'the Default connector'}, "
            f"so hub-to-hub mail lands on it; it has no {' and no '.join(missing)}, so the "
            "hub cannot authenticate (451 5.7.3) or may not send as the organization."
        ),
        evidence=[
            _connector_evidence(chosen),
            *([_connector_evidence(default)] if default else []),
            *base,
            *group_evidence(
                facts,
                LogKind.SMTP_SEND,
                [Outcome.NO_EXCHANGE_AUTH, Outcome.NO_AUTH, Outcome.SEND_AS_DENIED],
                server=sender.name,
            ),
            *group_evidence(
                facts,
                LogKind.SMTP_RECEIVE,
                [Outcome.NO_EXCHANGE_AUTH, Outcome.SEND_AS_DENIED],
                server=receiver.name,
            ),
        ],
        fixes=fixes,
        symptoms=(3, 4),
        subject=chosen.identity,
    )


def _internet(facts: Facts) -> list[Finding]:
    """Internet mail needs a connector that lets anonymous senders submit."""
    sources = {s.lower() for c in facts.send_connectors for s in c.source_transport_servers}
    findings = []
    for host in facts.internet_hosts:
        if not host.address:
            continue
        for hub in facts.hubs():
            if hub.name.lower() not in sources or not hub.address:
                continue
            chosen = select_connector(
                facts.connectors_of(hub.name), hub.address, SMTP_PORT, host.address
            )
            if chosen is None:
                continue
            anonymous = session_rights(chosen, Principal.ANONYMOUS)
            if Right.SMTPSubmit in anonymous:
                continue
            findings.append(
                Finding(
                    cause=PERMISSION_GROUPS,
                    title=f"{chosen.identity} refuses Internet mail: no AnonymousUsers",
                    severity=Severity.ERROR,
                    confidence=Confidence.HIGH,
                    summary=(
                        f"Mail from the Internet ({host.fqdn}, {host.address}) lands on "
                        f"{chosen.identity}, which does not let anonymous senders submit: "
                        "they get 530 5.7.1 Client was not authenticated at MAIL FROM."
                    ),
                    evidence=[
                        _connector_evidence(chosen),
                        *group_evidence(
                            facts,
                            LogKind.SMTP_RECEIVE,
                            [Outcome.NOT_AUTHENTICATED],
                            server=hub.name,
                        ),
                    ],
                    fixes=[cmd.shell(cmd.permission_fix(chosen, "AnonymousUsers"))],
                    symptoms=(2,),
                    subject=chosen.identity,
                )
            )
    return findings


def open_relay(facts: Facts) -> list[Finding]:
    findings = []
    outside = [h.address for h in facts.internet_hosts if h.address]
    for c in facts.connectors:
        if not c.enabled:
            continue
        if Right.SMTPAcceptAnyRecipient not in session_rights(c, Principal.ANONYMOUS):
            continue
        # A relay connector scoped to the organization's own networks (copiers, scanners,
        # application servers) is normal practice; one that the Internet reaches is open.
        wide = [
            r.text
            for r in c.ranges
            if any(a in r for a in outside) or not inside_internal(r.first, r.last)
        ]
        if not wide:
            findings.append(
                Finding(
                    cause=RELAY_CONNECTOR,
                    title=f"{c.identity} relays for internal hosts",
                    severity=Severity.INFO,
                    confidence=Confidence.HIGH,
                    summary=(
                        "Anonymous senders in its RemoteIPRanges "
                        f"({', '.join(r.text for r in c.ranges)}) may send to any domain: a "
                        "relay connector for devices and applications. Keep the ranges to them."
                    ),
                    evidence=[_connector_evidence(c)],
                    subject=c.identity,
                )
            )
            continue
        findings.append(
            Finding(
                cause=OPEN_RELAY,
                title=f"{c.identity} makes {c.server} an open relay",
                severity=Severity.ERROR,
                confidence=Confidence.HIGH,
                summary=(
                    f"Anonymous senders from {', '.join(wide)} hold "
                    "ms-Exch-SMTP-Accept-Any-Recipient on this connector (ExternalAuthoritative "
                    "with ExchangeServers treats them as externally secured servers): anyone "
                    "there can relay mail to any domain through it."
                ),
                evidence=[_connector_evidence(c)],
                fixes=[
                    cmd.shell(
                        cmd.set_connector(
                            c.identity, auth_mechanism="Tls", permission_groups="AnonymousUsers"
                        ),
                        comment="for Internet mail; a relay for chosen hosts keeps "
                        "ExternalAuthoritative but lists only them in -RemoteIPRanges",
                    )
                ],
                symptoms=(),
                subject=c.identity,
            )
        )
    return findings


RULES: list[Rule] = [connectors, open_relay]
