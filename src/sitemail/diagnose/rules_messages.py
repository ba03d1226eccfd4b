"""Rules about messages and certificates: delayed, expired, refused, pending submission.

Delays are judged against the sending server's own timers
(DelayNotificationTimeout 4 h, MessageExpirationTimeout 2 days, spec 5.3);
NDRs and expiries come from the queues (live) or the tracking log.
Certificate trouble shows in the SmtpSend log (``TLS negotiation failed``,
``Cannot load Internal Transport Certificate``, a refused X-EXPS) and, in a
lab, in the organization's certificate files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sitemail.diagnose import commands as cmd
from sitemail.diagnose.facts import Facts, MessageFact
from sitemail.diagnose.findings import Confidence, Evidence, EvidenceKind, Finding, Severity
from sitemail.diagnose.logs import LogKind
from sitemail.diagnose.logscan import Outcome
from sitemail.diagnose.rules import Rule, group_evidence, log_evidence

DELAYED = "messages-delayed"
EXPIRED = "messages-expired"
NDR = "nondelivery-reports"
SUBMISSION = "submission-backlog"
CERTIFICATE = "certificate"

#: Known permanent failures and what they mean (spec 1.5, 5.5, 9.1).
NDR_MEANINGS = {
    "5.1.1": "the recipient is not in the directory (RESOLVER.ADR.RecipNotFound)",
    "5.1.6": "the recipient's homeMDB / msExchHomeServerName is missing",
    "5.7.1 Unable to relay": "a connector refused to relay to a domain outside the "
    "organization (no Accept-Any-Recipient)",
    "send as this sender": "a receive connector's PermissionGroups lost ExchangeServers",
    "5.3.4": "the message is larger than a size limit",
    "5.4.6": "a mail loop (hop count exceeded)",
}
#: A message in Submission longer than this is pending submission, not passing through.
SUBMISSION_AGE = timedelta(minutes=1)


def _age(m: MessageFact, now: datetime) -> timedelta | None:
    if m.date_received is None:
        return None
    received = m.date_received
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return now - received


def _timers(facts: Facts, server: str) -> tuple[timedelta, timedelta]:
    s = facts.server(server)
    if s is None:
        return timedelta(hours=4), timedelta(days=2)
    return s.transport.delay_notification_timeout, s.transport.message_expiration_timeout


def delays(facts: Facts) -> list[Finding]:
    now = facts.now or datetime.now(UTC)
    delayed: list[tuple[MessageFact, timedelta]] = []
    expired: list[MessageFact] = []
    for m in facts.messages:
        if m.status not in ("Retry", "Ready", "Active") or m.queue.endswith("\\Submission"):
            continue
        age = _age(m, now)
        if age is None:
            continue
        delay_after, _ = _timers(facts, m.server)
        expires = m.expiration_time
        if expires is not None and _aware(expires) <= now:
            expired.append(m)
        elif age >= delay_after:
            delayed.append((m, age))
    t = facts.logs.tracking
    findings = []
    if delayed or t.delayed_count:
        evidence = [
            Evidence(
                EvidenceKind.QUEUE,
                f"{m.identity} {m.subject!r} from {m.from_address}: waiting {_hours(age)}, "
                f"LastError {m.last_error or '-'}",
                m.identity,
            )
            for m, age in delayed[:8]
        ] + log_evidence(t.delayed, 5)
        count = len(delayed) + t.delayed_count
        findings.append(
            Finding(
                cause=DELAYED,
                title=f"{count} message(s) delayed past DelayNotificationTimeout",
                severity=Severity.WARNING,
                confidence=Confidence.HIGH,
                summary=(
                    "Messages have waited longer than DelayNotificationTimeout (4 hours by "
                    "default): their senders got a Delivery delayed notice. The cause is the "
                    "queue's LastError; fix it (see the other findings) and retry the queue."
                ),
                evidence=evidence,
                fixes=[cmd.shell('Get-Queue -Filter {Status -eq "Retry"} | Retry-Queue')],
                symptoms=(2, 3, 4),
                subject="delayed",
            )
        )
    if expired or t.expired_count:
        evidence = [
            Evidence(EvidenceKind.QUEUE, f"{m.identity} {m.subject!r} expired {m.expiration_time}")
            for m in expired[:8]
        ] + log_evidence(t.expired, 5)
        findings.append(
            Finding(
                cause=EXPIRED,
                title=f"{len(expired) + t.expired_count} message(s) expired undelivered",
                severity=Severity.ERROR,
                confidence=Confidence.HIGH,
                summary=(
                    "Messages reached MessageExpirationTimeout (2 days by default) and were "
                    "returned to their senders with #550 4.4.7 QUEUE.Expired; message expired "
                    "##. They must be sent again once the cause is fixed."
                ),
                evidence=evidence,
                fixes=[
                    cmd.shell(
                        "Get-MessageTrackingLog -EventId FAIL | where "
                        '{$_.RecipientStatus -like "*4.4.7*"} | Format-Table '
                        "Timestamp,Sender,Recipients,MessageSubject",
                        comment="who must send again",
                    )
                ],
                symptoms=(1, 3),
                subject="expired",
            )
        )
    return findings


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _hours(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{age.total_seconds() / 60:.0f} min"


def nondelivery(facts: Facts) -> list[Finding]:
    t = facts.logs.tracking
    reasons = {r: n for r, n in t.ndr_count.items() if "send as this sender" not in r}
    if not reasons:
        return []
    evidence = []
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:6]:
        meaning = next((m for key, m in NDR_MEANINGS.items() if key in reason), "")
        evidence.append(
            Evidence(EvidenceKind.LOG, f"{count} x {reason}" + (f" - {meaning}" if meaning else ""))
        )
        evidence += log_evidence(t.ndr[reason], 2)
    return [
        Finding(
            cause=NDR,
            title="Recipients were refused with nondelivery reports",
            severity=Severity.WARNING,
            confidence=Confidence.MEDIUM,
            summary="The tracking log shows permanent failures (FAIL) and the NDRs they made.",
            evidence=evidence,
            fixes=[
                cmd.shell(
                    "Get-MessageTrackingLog -EventId FAIL | Format-List "
                    "Timestamp,Sender,Recipients,RecipientStatus",
                )
            ],
            symptoms=(1,),
            subject="ndr",
        )
    ]


def submission(facts: Facts) -> list[Finding]:
    now = facts.now or datetime.now(UTC)
    pending = [
        m
        for m in facts.messages
        if m.queue.endswith("\\Submission") and (_age(m, now) or timedelta()) > SUBMISSION_AGE
    ]
    if not pending:
        return []
    servers = sorted({m.server for m in pending})
    return [
        Finding(
            cause=SUBMISSION,
            title=f"Messages are pending submission on {', '.join(servers)}",
            severity=Severity.WARNING,
            confidence=Confidence.HIGH,
            summary=(
                "Messages wait in the Submission queue: the categorizer does not take them "
                "(transport service stopped or stuck, or the directory unreachable)."
            ),
            evidence=[
                Evidence(EvidenceKind.QUEUE, f"{m.identity} {m.subject!r}", m.identity)
                for m in pending[:8]
            ],
            fixes=[
                cmd.shell(
                    *(f"Restart-Service MSExchangeTransport -ComputerName {s}" for s in servers)
                )
            ],
            symptoms=(5,),
            subject="submission",
        )
    ]


def certificates(facts: Facts) -> list[Finding]:
    findings = []
    for key, _group in facts.logs.by_outcome(
        LogKind.SMTP_SEND, Outcome.CERTIFICATE, Outcome.TLS_FAILED, Outcome.AUTH_FAILED
    ):
        server, peer, outcome = key[1], key[3], key[4]
        what = {
            Outcome.CERTIFICATE: f"{server} cannot load its Internal Transport Certificate",
            Outcome.TLS_FAILED: f"TLS negotiation between {server} and {peer} fails",
            Outcome.AUTH_FAILED: f"{peer} refuses {server}'s Exchange Server authentication",
        }[outcome]
        findings.append(
            Finding(
                cause=CERTIFICATE,
                title=what,
                severity=Severity.ERROR,
                confidence=Confidence.MEDIUM,
                summary=(
                    f"{what}: hub-to-hub TLS and Exchange authentication rest on the servers' "
                    "certificates (and, on Windows, Kerberos). Check that each hub has a valid "
                    "certificate enabled for SMTP and that the clocks agree."
                ),
                evidence=group_evidence(facts, LogKind.SMTP_SEND, [outcome], server=server),
                fixes=[cmd.certificate_fix(server)],
                symptoms=(3, 4),
                subject=f"{server} -> {peer}",
            )
        )
    findings += _lab_certificates(facts)
    return findings


def _lab_certificates(facts: Facts) -> list[Finding]:
    if not facts.live or facts.lab_dir is None:
        return []
    from cryptography import x509

    pki = Path(facts.lab_dir) / "pki"
    now = facts.now or datetime.now(UTC)
    out = []
    for hub in facts.hubs():
        path = pki / f"{hub.name}.pem"
        problem = ""
        if not path.exists():
            problem = f"{path} is missing"
        else:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            if cert.not_valid_after_utc <= now:
                problem = f"{path} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
            elif cert.not_valid_before_utc > now:
                problem = f"{path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
        if problem:
            out.append(
                Finding(
                    cause=CERTIFICATE,
                    title=f"{hub.name}'s certificate is not usable",
                    severity=Severity.ERROR,
                    confidence=Confidence.HIGH,
                    summary=f"{problem}: {hub.name} cannot do TLS or Exchange authentication.",
                    evidence=[Evidence(EvidenceKind.CONFIG, problem, str(path))],
                    fixes=[cmd.shell(f"New-ExchangeCertificate -Server {hub.name} -Services SMTP")],
                    symptoms=(3, 4),
                    subject=hub.name,
                )
            )
    return out


def not_answering(facts: Facts) -> list[Finding]:
    """A hub whose admin API or a firewall whose console does not answer: a stopped process
    explains missing queues and refused connections better than any setting."""
    findings = []
    for name, why in sorted(facts.unreachable_servers.items()):
        findings.append(
            Finding(
                cause="server-not-answering",
                title=f"{name} does not answer",
                severity=Severity.ERROR,
                confidence=Confidence.HIGH,
                summary=(
                    f"{name}'s admin API did not answer, so its queues could not be read; "
                    "if its transport service is down, no mail enters or leaves it."
                ),
                evidence=[Evidence(EvidenceKind.CONFIG, why, name)],
                fixes=[
                    cmd.shell(
                        f"Get-Service MSExchangeTransport -ComputerName {name}",
                        comment=f"in the lab: sitemail lab restart {name}",
                    )
                ],
                symptoms=(3, 4, 5),
                subject=name,
            )
        )
    for fw in facts.firewalls:
        if not fw.reachable:
            findings.append(
                Finding(
                    cause="firewall-not-answering",
                    title=f"{fw.name} does not answer its console",
                    severity=Severity.ERROR,
                    confidence=Confidence.MEDIUM,
                    summary=(
                        f"{fw.name} (site {fw.site}) did not answer: if it is down, nothing "
                        f"passes between {fw.site} and the other sites."
                    ),
                    evidence=[Evidence(EvidenceKind.FIREWALL, fw.error, fw.name)],
                    fixes=[cmd.note(f"Start it again: sitemail lab restart {fw.name}")],
                    symptoms=(3, 4),
                    subject=fw.name,
                )
            )
    return findings


RULES: list[Rule] = [delays, nondelivery, submission, certificates, not_answering]
