"""The causes, from protocol and tracking logs alone (``troubleshoot --logs``).

Hub-to-hub mail is judged per *path*: a sending hub and a receiving hub,
named as the organization names them (:class:`~.orgmap.OrgMap`), seen from
the sender's SmtpSend log, the receiver's SmtpReceive log, or both.  Each
failing path gets one cause, in this order of evidence:

1. something on the path rewrote SMTP: a masked greeting or masked EHLO
   keywords (Cisco ASA ``inspect esmtp``), an EHLO refused as an unknown
   command and retried as HELO (PIX Mailguard), or a receiver whose own log
   offered X-ANONYMOUSTLS to a hub that then quit (a proxy that strips
   keywords): ``esmtp-inspection``, subject the path;
2. a clean EHLO reply without X-ANONYMOUSTLS/X-EXPS: the connector the hub
   landed on lacks Exchange Server authentication; when that connector is
   not the one hubs normally land on (a narrower relay connector), it
   captures the hub (``connector-captured``), else ``connector-auth-mechanism``;
3. a 5.7.x refusal after X-EXPS succeeded (any wording):
   ``connector-permission-groups``;
4. connections closed before any banner: ``connector-remote-ip-ranges``;
   connections never made: ``port-25-unreachable``;
5. TLS or authentication failures: ``certificate``.

Consequences (delay notices, expired messages, NDRs) are evidence under the
root cause, not findings of their own; alone, they are reported as what they
are.  Internet noise (unknown recipients, refused relay attempts, failed
logons, scanners) is not a finding.  An anonymous session that relayed is an
open relay only when it came from outside the organization's networks and
reached a domain that is not the organization's; a relay connector for the
organization's own devices is information.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sitemail.diagnose import commands as cmd
from sitemail.diagnose.conversation import Firewall, Outcome, SessionDigest
from sitemail.diagnose.facts import Facts
from sitemail.diagnose.findings import (
    Confidence,
    Evidence,
    EvidenceKind,
    Finding,
    Fix,
    Severity,
)
from sitemail.diagnose.logs import LogKind
from sitemail.diagnose.logscan import INTRA_ORG, Group, LogDigest
from sitemail.diagnose.orgmap import OrgMap, endpoint_ip, endpoint_port
from sitemail.diagnose.rules import Rule, log_evidence

INSPECTION = "esmtp-inspection"
AUTH_MECHANISM = "connector-auth-mechanism"
CAPTURED = "connector-captured"
PERMISSION_GROUPS = "connector-permission-groups"
REMOTE_IP_RANGES = "connector-remote-ip-ranges"
PORT_25 = "port-25-unreachable"
CERTIFICATE = "certificate"
OPEN_RELAY = "open-relay"
DELAYED = "messages-delayed"
EXPIRED = "messages-expired"
NDR = "nondelivery-reports"
NO_ROUTE = "no-route"
RELAY_CONNECTOR = "relay-connector"

_FAILURES = frozenset(
    {
        Outcome.MASKED,
        Outcome.NO_EXCHANGE_AUTH,
        Outcome.NO_AUTH,
        Outcome.QUIT_DESPITE_OFFER,
        Outcome.FAILED_TO_CONNECT,
        Outcome.DROPPED_BEFORE_BANNER,
        Outcome.SEND_AS_DENIED,
        Outcome.TLS_FAILED,
        Outcome.CERTIFICATE,
        Outcome.AUTH_FAILED,
    }
)
#: NDR diagnostics that are ordinary life, never a finding: unknown or full mailboxes,
#: size limits, remote refusals of spam.
_NOISE_NDR = ("5.1.", "5.2.", "5.3.4", "5.7.1 Unable to relay", "5.7.606", "5.7.5")


@dataclass(slots=True)
class Side:
    """What one log (send or receive) shows of a path."""

    count: int = 0
    first: str = ""
    last: str = ""
    groups: list[tuple[str, Group]] = field(default_factory=list)
    """(connector id, group)."""

    def add(self, connector: str, group: Group) -> None:
        self.count += group.count
        self.first = min(self.first or group.first, group.first)
        self.last = max(self.last, group.last)
        self.groups.append((connector, group))

    def examples(self) -> list[SessionDigest]:
        return [e for _, g in self.groups for e in g.examples]


@dataclass(slots=True)
class PathFacts:
    sender: str
    receiver: str
    send: dict[Outcome, Side] = field(default_factory=lambda: defaultdict(Side))
    receive: dict[Outcome, Side] = field(default_factory=lambda: defaultdict(Side))
    port: int | None = None

    @property
    def subject(self) -> str:
        return f"{self.sender} -> {self.receiver}"

    def failing(self) -> list[Outcome]:
        return [o for o in (*self.send, *self.receive) if o in _FAILURES]

    def last(self, outcomes: set[Outcome] | frozenset[Outcome]) -> str:
        sides = [s for o, s in (*self.send.items(), *self.receive.items()) if o in outcomes]
        return max((s.last for s in sides), default="")

    def count(self, *outcomes: Outcome) -> int:
        return sum(s.count for o, s in (*self.send.items(), *self.receive.items()) if o in outcomes)


def _is_intra(org: OrgMap, connector: str, peer: str, remote: str) -> bool:
    return INTRA_ORG in connector.lower() or org.is_hub(peer) or org.is_hub(endpoint_ip(remote))


def collect_paths(d: LogDigest) -> dict[tuple[str, str], PathFacts]:
    """Every hub-to-hub path the logs show, with what each side saw of it."""
    org = d.org
    paths: dict[tuple[str, str], PathFacts] = {}

    def path(sender: str, receiver: str) -> PathFacts:
        key = (sender.lower(), receiver.lower())
        found = paths.get(key)
        if found is None:
            found = paths[key] = PathFacts(sender, receiver)
        return found

    for (kind, server, connector, peer, outcome), group in d.groups.items():
        example = group.examples[0]
        if kind is LogKind.SMTP_SEND:
            if not _is_intra(org, connector, peer, example.remote) and outcome not in (
                Outcome.MASKED,
                Outcome.NO_EXCHANGE_AUTH,
                Outcome.NO_AUTH,
                Outcome.SEND_AS_DENIED,
                Outcome.CERTIFICATE,
                Outcome.TLS_FAILED,
                Outcome.AUTH_FAILED,
            ):
                continue
            receiver = org.name_of(peer if not peer[:1].isdigit() else example.remote)
            p = path(server, receiver)
            p.send[outcome].add(connector, group)
            p.port = p.port or endpoint_port(example.remote)
        else:
            client = peer or ""
            if not client:
                continue
            ip = endpoint_ip(example.remote)
            hub = (
                org.is_hub(client)
                or org.is_hub(ip)
                or (
                    # A server of the organization whose own logs are missing: an internal
                    # address and a name in the organization's domains.
                    org.is_internal(ip) and "." in client and org.is_org_domain(client)
                )
            )
            if not hub:
                continue
            p = path(org.name_of(client), server)
            p.receive[outcome].add(connector, group)
            p.port = p.port or endpoint_port(example.local)
    return paths


def _evidence(side: Side, what: str, limit: int = 6) -> list[Evidence]:
    out: list[Evidence] = []
    for connector, group in side.groups[:3]:
        when = f" between {group.first} and {group.last}" if group.first != group.last else ""
        ex = group.examples[0]
        out.append(
            Evidence(
                EvidenceKind.LOG,
                f"{ex.server} {ex.kind.value} log: {group.count} session(s) on {connector} "
                f"{what}{when}",
            )
        )
        out += log_evidence(ex.rows, limit)
    return out


def _severity(p: PathFacts, failing: set[Outcome] | frozenset[Outcome]) -> Severity | None:
    """Error while the path still fails; warning when it failed and then recovered;
    nothing for one failure among successes."""
    last_fail = p.last(failing)
    last_ok = p.last({Outcome.DELIVERED})
    if not last_fail:
        return None
    if last_ok > last_fail:
        return Severity.WARNING if p.count(*failing) > 1 else None
    return Severity.ERROR


def _retry(p: PathFacts) -> Fix:
    return cmd.shell(
        f"Get-Queue -Server {p.sender} | where {{$_.NextHopDomain -ne $null -and "
        '$_.LastError -like "451 4.4.0*"} | Retry-Queue',
        comment="then deliver what waits now instead of at the next retry",
    )


def path_findings(d: LogDigest) -> list[Finding]:
    findings: list[Finding] = []
    hub_connectors = _hub_connectors(d)
    paths = [p for p in collect_paths(d).values() if p.sender.lower() != p.receiver.lower()]
    own = _senders_that_cannot_authenticate(paths)
    weight: dict[int, int] = {}
    for p in paths:
        if p.sender.lower() in own and not p.send:
            found: Finding | None = _sender_cannot_authenticate(p, own[p.sender.lower()])
        else:
            found = _judge(d, p, hub_connectors)
        if found is not None:
            findings.append(found)
            weight[id(found)] = p.count(*_FAILURES)
    return _one_inspection(findings, weight)


def _one_inspection(findings: list[Finding], weight: dict[int, int]) -> list[Finding]:
    """One firewall that inspects SMTP between two sites breaks every path across it:
    one finding (about the path with most failures), naming the other paths, rather than
    one a path."""
    masked = [f for f in findings if f.cause == INSPECTION]
    if len(masked) < 2:
        return findings
    for severity in (Severity.ERROR, Severity.WARNING):
        same = sorted(
            (f for f in masked if f.severity is severity), key=lambda f: -weight.get(id(f), 0)
        )
        if len(same) < 2:
            continue
        head, rest = same[0], same[1:]
        head.title += f" (and {len(rest)} other path{'s' if len(rest) > 1 else ''})"
        head.evidence.append(
            Evidence(
                EvidenceKind.LOG,
                "the same on "
                + ", ".join(f.subject for f in rest[:12])
                + (f" and {len(rest) - 12} more" if len(rest) > 12 else ""),
            )
        )
        for f in rest[:2]:
            head.evidence += f.evidence[:1]
        dropped = {id(f) for f in rest}
        findings = [f for f in findings if id(f) not in dropped]
    return findings


def _quits(p: PathFacts) -> bool:
    """Seen from the receiver alone: the hub quit after a whole reply offering
    X-ANONYMOUSTLS."""
    return Outcome.QUIT_DESPITE_OFFER in p.receive and not p.send


def _senders_that_cannot_authenticate(paths: list[PathFacts]) -> dict[str, list[PathFacts]]:
    """Hubs that quit right after a whole EHLO reply towards two or more receivers, where no
    other hub does so towards the same receivers: the trouble travels with the sender (its
    certificate), not with a path through a firewall, which every hub on one side of it
    meets. Only judged where the sender's own SmtpSend log is missing."""
    quitting: dict[str, list[PathFacts]] = defaultdict(list)
    for p in paths:
        if _quits(p):
            quitting[p.sender.lower()].append(p)
    out = {}
    for sender, failing in quitting.items():
        receivers = {p.receiver.lower() for p in failing}
        others = [
            p
            for p in paths
            if p.sender.lower() != sender and p.receiver.lower() in receivers and _quits(p)
        ]
        # A firewall between sites spares the sender's own site: the sender must fail
        # towards a receiver of its own subnet too (where none is seen, the path is blamed).
        if len(receivers) >= 2 and not others and any(_same_subnet(p) for p in failing):
            out[sender] = failing
    return out


def _same_subnet(p: PathFacts) -> bool:
    """Sender and receiver in one /24 (one site, no firewall between them)."""
    for e in p.receive.get(Outcome.QUIT_DESPITE_OFFER, Side()).examples():
        client, server = endpoint_ip(e.remote), endpoint_ip(e.local)
        if client.count(".") == 3 and client.rsplit(".", 1)[0] == server.rsplit(".", 1)[0]:
            return True
    return False


def _sender_cannot_authenticate(p: PathFacts, failing: list[PathFacts]) -> Finding | None:
    severity = _severity(p, {Outcome.QUIT_DESPITE_OFFER})
    if severity is None:
        return None
    receivers = ", ".join(sorted(x.receiver for x in failing))
    return Finding(
        cause=CERTIFICATE,
        title=f"{p.sender} cannot start Exchange Server authentication",
        severity=severity,
        confidence=Confidence.MEDIUM,
        summary=(
            f"Every receiver's log ({receivers}) shows {p.sender} quitting right after an EHLO "
            "reply that offered X-ANONYMOUSTLS and X-EXPS, while the other hubs go on to "
            f"authenticate: {p.sender} cannot use its Internal Transport Certificate (451 5.7.3 "
            "Cannot load Internal Transport Certificate). Its own SmtpSend log would say so."
        ),
        evidence=[
            ev
            for x in failing[:3]
            for ev in _evidence(
                x.receive[Outcome.QUIT_DESPITE_OFFER], f"from {p.sender}: quit after EHLO", 4
            )
        ],
        fixes=[cmd.certificate_fix(p.sender)],
        symptoms=(3, 4),
        subject=p.sender,
    )


def _hub_connectors(d: LogDigest) -> dict[str, set[str]]:
    """Receiving server -> the connectors where authenticated hubs delivered."""
    out: dict[str, set[str]] = defaultdict(set)
    for (kind, server, connector, peer, outcome), _g in d.groups.items():
        if kind is LogKind.SMTP_RECEIVE and outcome is Outcome.DELIVERED and peer:
            out[server.lower()].add(connector)
    return out


def _judge(d: LogDigest, p: PathFacts, hub_connectors: dict[str, set[str]]) -> Finding | None:
    send, recv = p.send, p.receive
    masked = {Outcome.MASKED, Outcome.QUIT_DESPITE_OFFER}
    no_auth = {Outcome.NO_EXCHANGE_AUTH, Outcome.NO_AUTH}
    certs = {Outcome.CERTIFICATE, Outcome.TLS_FAILED, Outcome.AUTH_FAILED}
    if (
        Outcome.MASKED in send
        or Outcome.MASKED in recv
        or (Outcome.QUIT_DESPITE_OFFER in recv and not (send.keys() | recv.keys()) & certs)
    ):
        severity = _severity(p, masked | no_auth)
        return _inspection(p, severity) if severity else None
    if (send.keys() | recv.keys()) & certs:
        severity = _severity(p, certs)
        return _certificate(p, severity) if severity else None
    if send.keys() & no_auth or Outcome.NO_EXCHANGE_AUTH in recv:
        severity = _severity(p, no_auth)
        return _no_exchange_auth(d, p, severity, hub_connectors) if severity else None
    if Outcome.SEND_AS_DENIED in send or Outcome.SEND_AS_DENIED in recv:
        severity = _severity(p, {Outcome.SEND_AS_DENIED})
        return _permissions(d, p, severity) if severity else None
    if Outcome.DROPPED_BEFORE_BANNER in send:
        severity = _severity(p, {Outcome.DROPPED_BEFORE_BANNER})
        return _dropped(d, p, severity) if severity else None
    if Outcome.FAILED_TO_CONNECT in send:
        severity = _severity(p, {Outcome.FAILED_TO_CONNECT})
        return _unreachable(p, severity) if severity else None
    return None


def _family(p: PathFacts) -> tuple[str, str]:
    """(who rewrote the session, what it did), from the examples' fingerprints."""
    kinds = {
        e.firewall for side in (*p.send.values(), *p.receive.values()) for e in side.examples()
    }
    masked = sorted(
        {k for e in p.send.get(Outcome.MASKED, Side()).examples() for k in e.masked_keywords}
    )
    if Firewall.PIX in kinds:
        return (
            "a Cisco PIX with Mailguard (fixup protocol smtp)",
            "masks the banner and turns EHLO into X's, so the receiver answers 500 "
            "Unrecognized command and the hub falls back to HELO, without any extension",
        )
    if Firewall.ASA in kinds or masked:
        lost = ", ".join(masked[:6]) or "the keywords"
        return (
            "a Cisco ASA with inspect esmtp",
            f"overwrites the EHLO keywords it does not know with X's ({lost}): STARTTLS, "
            "X-ANONYMOUSTLS and X-EXPS never reach the sending hub",
        )
    if Firewall.BANNER in kinds:
        return (
            "a Cisco ASA/PIX (banner masked to asterisks)",
            "rewrites the session (the banner is masked), and the hub cannot authenticate",
        )
    return (
        "an SMTP-aware firewall or proxy",
        "takes X-ANONYMOUSTLS and X-EXPS out of the EHLO reply: the receiver's own log "
        "shows them offered, yet the sending hub quit as if they were not there",
    )


def _inspection(p: PathFacts, severity: Severity) -> Finding:
    device, what = _family(p)
    evidence: list[Evidence] = []
    for outcome in (Outcome.MASKED, Outcome.NO_EXCHANGE_AUTH, Outcome.NO_AUTH):
        if outcome in p.send:
            evidence += _evidence(p.send[outcome], f"to {p.receiver} failed ({outcome.value})")
    for outcome in (Outcome.QUIT_DESPITE_OFFER, Outcome.MASKED):
        if outcome in p.receive:
            evidence += _evidence(
                p.receive[outcome],
                f"from {p.sender}: the reply was whole, the hub quit at once",
            )
    fixes = [
        cmd.asa(
            None,
            cmd.ASA_NO_INSPECT_ESMTP,
            f"on every Cisco ASA between {p.sender} and {p.receiver}",
        )
    ]
    if "PIX" in device:
        fixes.insert(
            0, cmd.asa(None, ("config t", "no fixup protocol smtp 25", "exit", "wr me"), "on a PIX")
        )
    fixes.append(_retry(p))
    return Finding(
        cause=INSPECTION,
        title=f"SMTP inspection between {p.sender} and {p.receiver} breaks Exchange "
        "Server authentication",
        severity=severity,
        confidence=Confidence.HIGH,
        summary=(
            f"Something on the path from {p.sender} to {p.receiver} ({device}) {what}. "
            f"{p.sender} cannot do Exchange Server authentication and gives up with 451 5.7.3 "
            "Cannot achieve Exchange Server authentication; its queue waits in Retry. Turn "
            "SMTP/ESMTP inspection off for the hubs' traffic on every firewall between them."
        ),
        evidence=evidence,
        fixes=fixes,
        symptoms=(3, 4),
        subject=p.subject,
    )


def _receive_connectors(p: PathFacts, outcomes: set[Outcome]) -> list[str]:
    return list(
        dict.fromkeys(c for o in outcomes if o in p.receive for c, _ in p.receive[o].groups)
    )


def _is_default_name(connector: str) -> bool:
    return connector.split("\\", 1)[-1].lower().startswith("default")


def _no_exchange_auth(
    d: LogDigest, p: PathFacts, severity: Severity, hub_connectors: dict[str, set[str]]
) -> Finding:
    landed = _receive_connectors(p, {Outcome.NO_EXCHANGE_AUTH})
    evidence: list[Evidence] = []
    for outcome in (Outcome.NO_EXCHANGE_AUTH, Outcome.NO_AUTH):
        if outcome in p.send:
            evidence += _evidence(p.send[outcome], f"to {p.receiver} failed with 451 5.7.3")
    if Outcome.NO_EXCHANGE_AUTH in p.receive:
        evidence += _evidence(
            p.receive[Outcome.NO_EXCHANGE_AUTH],
            f"from {p.sender}: no X-ANONYMOUSTLS offered, the hub quit",
        )
    usual = hub_connectors.get(p.receiver.lower(), set())
    connector = landed[0] if landed else d.org.default_connector(p.receiver, p.port)
    captured = bool(landed) and (
        not _is_default_name(connector) or (bool(usual) and connector not in usual)
    )
    none = Outcome.NO_AUTH in p.send
    if captured:
        default = next(iter(sorted(usual)), d.org.default_connector(p.receiver, p.port))
        return Finding(
            cause=CAPTURED,
            title=f"{connector} captures {p.sender}'s connections",
            severity=severity,
            confidence=Confidence.HIGH,
            summary=(
                f"{p.sender}'s connections to {p.receiver} land on {connector}, not on "
                f"{default}: its RemoteIPRanges list {p.sender}'s address more specifically. "
                "It offers no X-ANONYMOUSTLS and no X-EXPS, so the hub cannot do Exchange "
                "Server authentication (451 5.7.3). Take the hubs out of its RemoteIPRanges."
            ),
            evidence=evidence,
            fixes=[
                cmd.shell(
                    f"Get-ReceiveConnector {cmd.quote(connector)} | Format-List "
                    "RemoteIPRanges,AuthMechanism,PermissionGroups",
                    f"Set-ReceiveConnector {cmd.quote(connector)} -RemoteIPRanges "
                    "<its ranges without the hubs' addresses>",
                    comment=f"so that {p.sender} lands on {default} again",
                ),
                _retry(p),
            ],
            symptoms=(3, 4),
            subject=connector,
        )
    seen = "its EHLO reply" if landed else f"the EHLO reply {p.sender} got"
    return Finding(
        cause=AUTH_MECHANISM,
        title=f"{connector} offers no Exchange Server authentication",
        severity=severity,
        confidence=Confidence.HIGH if landed else Confidence.MEDIUM,
        summary=(
            f"{connector} takes {p.sender}'s connections, but {seen} is whole (nothing masks "
            "it) and has no X-ANONYMOUSTLS and no X-EXPS"
            + (" (nor STARTTLS or AUTH: AuthMechanism None)" if none else "")
            + ": its AuthMechanism lost ExchangeServer, so the sending hub gives up with 451 "
            "5.7.3 Cannot achieve Exchange Server authentication."
            + (
                ""
                if landed
                else " (Without the receiver's own log: if a narrower connector "
                "of the receiver takes the hub's address, that connector is the one.)"
            )
        ),
        evidence=evidence,
        fixes=[
            cmd.shell(
                cmd.set_connector(
                    connector, auth_mechanism=cmd.flag_list(m.value for m in cmd.DEFAULT_AUTH)
                ),
                comment="the out-of-box AuthMechanism of Default <SERVER>",
            ),
            _retry(p),
        ],
        symptoms=(3, 4),
        subject=connector,
    )


def _permissions(d: LogDigest, p: PathFacts, severity: Severity) -> Finding:
    landed = _receive_connectors(p, {Outcome.SEND_AS_DENIED})
    connector = landed[0] if landed else d.org.default_connector(p.receiver, p.port)
    refusals = [
        r
        for side in (p.send.get(Outcome.SEND_AS_DENIED), p.receive.get(Outcome.SEND_AS_DENIED))
        if side
        for e in side.examples()
        for r in e.refusals
        if r.verb in ("MAIL", "RCPT")
    ]
    said = f"{refusals[0].code} {refusals[0].enhanced} {refusals[0].text}" if refusals else "5.7.1"
    evidence: list[Evidence] = []
    if Outcome.SEND_AS_DENIED in p.receive:
        evidence += _evidence(p.receive[Outcome.SEND_AS_DENIED], f"from {p.sender} refused")
    if Outcome.SEND_AS_DENIED in p.send:
        evidence += _evidence(p.send[Outcome.SEND_AS_DENIED], f"to {p.receiver} refused")
    ndrs = [r for reason, rows in d.tracking.ndr.items() if "5.7." in reason for r in rows]
    return Finding(
        cause=PERMISSION_GROUPS,
        title=f"{connector} does not grant ExchangeServers its rights",
        severity=severity,
        confidence=Confidence.HIGH,
        summary=(
            f"{p.sender} authenticated as an Exchange server on {connector} (X-EXPS, 235) and "
            f"was then refused ({said.strip()}): the session holds fewer rights than the "
            "Exchange Servers group's, so the connector's PermissionGroups lost "
            "ExchangeServers. The refused messages came back to their senders as NDRs."
        ),
        evidence=evidence + log_evidence(ndrs, 3),
        fixes=[
            cmd.shell(
                cmd.set_connector(
                    connector,
                    permission_groups=cmd.flag_list(g.value for g in cmd.DEFAULT_PERMISSION_GROUPS),
                ),
                comment="the out-of-box PermissionGroups of Default <SERVER>; the senders must "
                "send again",
            )
        ],
        symptoms=(1, 3),
        subject=connector,
    )


def _dropped(d: LogDigest, p: PathFacts, severity: Severity) -> Finding:
    # A receiver known only by its address has no connector name to give: the path is
    # the subject then.
    known = not _is_address(p.receiver)
    connector = d.org.default_connector(p.receiver, p.port) if known else p.subject
    return Finding(
        cause=REMOTE_IP_RANGES,
        title=f"{p.receiver} closes {p.sender}'s connections before its banner",
        severity=severity,
        confidence=Confidence.MEDIUM,
        summary=(
            f"{p.sender}'s connections to {p.receiver} open and are closed before any 220 "
            "greeting (421 4.4.2 Connection dropped). An Exchange receiver does this when no "
            f"receive connector's RemoteIPRanges cover the client: {connector} no longer lists "
            f"{p.sender}'s address (less likely: a device on the path resets them)."
        ),
        evidence=_evidence(p.send[Outcome.DROPPED_BEFORE_BANNER], "closed before the banner"),
        fixes=[
            cmd.shell(
                f"Get-ReceiveConnector -Server {p.receiver} | Format-Table "
                "Identity,Bindings,RemoteIPRanges",
                cmd.set_connector(
                    connector if known else "<SERVER>\\Default <SERVER>",
                    remote_ip_ranges=cmd.ALL_ADDRESSES,
                ),
                comment="the out-of-box range; or add the hubs' addresses to the list",
            ),
            _retry(p),
        ],
        symptoms=(3, 4),
        subject=connector if known else p.subject,
    )


def _is_address(name: str) -> bool:
    return bool(name) and (name[0].isdigit() or ":" in name)


def _unreachable(p: PathFacts, severity: Severity) -> Finding:
    where = next(
        (e.remote for e in p.send.get(Outcome.FAILED_TO_CONNECT, Side()).examples() if e.remote),
        p.receiver,
    )
    return Finding(
        cause=PORT_25,
        title=f"{p.sender} cannot open a TCP connection to {p.receiver}",
        severity=severity,
        confidence=Confidence.HIGH,
        summary=(
            f"Every attempt of {p.sender} to reach {p.receiver} ({where}) fails before SMTP "
            "starts: port 25 is blocked or unreachable between them (a firewall access list, "
            "a route, or the receiving transport service not listening)."
        ),
        evidence=_evidence(p.send[Outcome.FAILED_TO_CONNECT], "never connected"),
        fixes=[
            cmd.shell(
                f"Test-NetConnection -ComputerName {p.receiver} -Port 25",
                comment=f"on {p.sender}: TcpTestSucceeded must become True",
            ),
            cmd.note(
                "Permit TCP 25 between the hubs on every firewall and router on the path "
                f"(on an ASA: access-list ... extended permit tcp host <{p.sender}> host "
                f"<{p.receiver}> eq smtp), then Retry-Queue the queue that waits."
            ),
        ],
        symptoms=(3, 4),
        subject=p.subject,
    )


def _certificate(p: PathFacts, severity: Severity) -> Finding:
    seen = {**p.receive, **p.send}
    if Outcome.CERTIFICATE in seen:
        outcome, subject = Outcome.CERTIFICATE, p.sender
        title = f"{p.sender} cannot load its Internal Transport Certificate"
    elif Outcome.TLS_FAILED in seen:
        outcome, subject = Outcome.TLS_FAILED, p.subject
        title = f"TLS negotiation between {p.sender} and {p.receiver} fails"
    else:
        outcome, subject = Outcome.AUTH_FAILED, p.subject
        title = f"{p.receiver} refuses {p.sender}'s Exchange Server authentication"
    server = p.sender if outcome is Outcome.CERTIFICATE else p.receiver
    return Finding(
        cause=CERTIFICATE,
        title=title,
        severity=severity,
        confidence=Confidence.MEDIUM,
        summary=(
            f"{title}: hub-to-hub TLS and Exchange authentication rest on the servers' "
            "certificates (and Kerberos). Check that each hub has a valid certificate enabled "
            "for SMTP and that the clocks agree."
        ),
        evidence=_evidence(seen[outcome], f"between {p.sender} and {p.receiver} failed"),
        fixes=[cmd.certificate_fix(server)],
        symptoms=(3, 4),
        subject=subject,
    )


# ------------------------------------------------------------------ consequences


def consequences(d: LogDigest, roots: list[Finding]) -> list[Finding]:
    """Delays, expiries and NDRs: evidence under the root cause when there is one."""
    t = d.tracking
    lines: list[Evidence] = []
    if t.delayed_count:
        lines.append(Evidence(EvidenceKind.LOG, f"{t.delayed_count} delay notice(s) sent"))
        lines += log_evidence(t.delayed, 2)
    if t.expired_count:
        lines.append(Evidence(EvidenceKind.LOG, f"{t.expired_count} message(s) expired (4.4.7)"))
        lines += log_evidence(t.expired, 2)
    serious = {r: n for r, n in t.ndr_count.items() if not any(x in r for x in _NOISE_NDR)}
    for reason, count in sorted(serious.items(), key=lambda kv: -kv[1])[:3]:
        if "4.4.7" in reason:
            continue
        lines.append(Evidence(EvidenceKind.LOG, f"{count} NDR(s): {reason}"))
    errors = [f for f in roots if f.severity is Severity.ERROR]
    if errors:
        if lines:
            errors[0].evidence += [
                Evidence(EvidenceKind.LOG, "consequences in the message tracking logs:"),
                *lines,
            ]
        return []
    out = []
    inside = sum(n for dom, n in t.expired_domains.items() if d.org.is_org_domain(dom))
    if t.expired_count:
        out.append(
            Finding(
                cause=EXPIRED,
                title=f"{t.expired_count} message(s) expired undelivered",
                # Mail for other organizations' servers that stayed unreachable for days
                # is Internet life; mail for the organization's own recipients is lost.
                severity=Severity.ERROR if inside else Severity.INFO,
                confidence=Confidence.HIGH,
                summary=(
                    "Messages reached MessageExpirationTimeout and were returned with "
                    "#550 4.4.7 QUEUE.Expired; the protocol logs given do not show why: add the "
                    "SmtpSend logs of the servers that held them."
                ),
                evidence=log_evidence(t.expired, 5),
                symptoms=(1, 3),
                subject="expired",
            )
        )
    elif t.delayed_count:
        out.append(
            Finding(
                cause=DELAYED,
                title=f"{t.delayed_count} message(s) delayed past DelayNotificationTimeout",
                # Alone (no failing path in the protocol logs), delay notices are most often
                # about other organizations' servers: information, with where to look.
                severity=Severity.INFO,
                confidence=Confidence.MEDIUM,
                summary="Senders got Delivery delayed notices; the queue's LastError says why.",
                evidence=log_evidence(t.delayed, 5),
                fixes=[cmd.shell("Get-Queue | Format-List Identity,Status,LastError")],
                symptoms=(2, 3, 4),
                subject="delayed",
            )
        )
    if t.stuck and not d.failing():
        out.append(
            Finding(
                cause=NO_ROUTE,
                title="Messages were received and never sent: routing may have no path",
                # Information only: the tracking logs of the servers that passed such a
                # message on may simply be missing, which logs alone cannot tell.
                severity=Severity.INFO,
                confidence=Confidence.LOW,
                summary=(
                    "The tracking log shows messages received and then neither sent, "
                    "delivered, deferred nor failed, and no failed attempt in the SmtpSend "
                    "logs: the categorizer may have found no route (Unreachable queue)"
                    + (", and some waited over 30 minutes." if t.stuck_old else ".")
                ),
                evidence=log_evidence(t.stuck, 8),
                fixes=[
                    cmd.shell(
                        "Get-AdSiteLink | Format-Table Name,Sites,Cost,ExchangeCost",
                        "Get-Queue -Identity *\\Unreachable | Format-List",
                    )
                ],
                symptoms=(3, 4),
                subject="routing",
            )
        )
    return out


def from_logs(facts: Facts) -> list[Finding]:
    from sitemail.diagnose.rules_relay import anonymous_findings, relay_findings

    d = facts.logs
    roots = path_findings(d) + anonymous_findings(d) + relay_findings(d)
    return roots + consequences(d, roots)


RULES: list[Rule] = [from_logs]
