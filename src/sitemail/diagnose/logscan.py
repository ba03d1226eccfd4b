"""What protocol and tracking logs say, boiled down for the rules.

Every SMTP session of the SmtpSend and SmtpReceive logs is read once and
given a meaning (:mod:`sitemail.diagnose.conversation`: who spoke as whom,
how it ended); sessions with the same server, connector, peer and outcome
are counted together and a few kept as examples, with the rows that prove
the outcome (``file:line``).  While reading, the organization is learnt from
its own logs (:class:`~sitemail.diagnose.orgmap.OrgMap`: servers, their names
and addresses, its domains), and anonymous sessions that relayed are kept
per connector with their sources and domains, for the open-relay rule to
judge once the organization is known.  Message tracking logs add messages
that expired, were delayed, were refused with an NDR, or were received and
never went anywhere.  Memory is bounded by the number of distinct groups and
the readers' own bounds, whatever the size of the logs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sitemail.diagnose.conversation import (
    KeyRow,
    Outcome,
    Principal,
    SessionDigest,
    digest,
)
from sitemail.diagnose.logs import (
    ExchangeLogFile,
    LogKind,
    ProtocolRow,
    SmtpSession,
    find_log_files,
    group_sessions,
    read_protocol_file,
    read_tracking_rows,
)
from sitemail.diagnose.logs.parallel import FileBytes, scan_files
from sitemail.diagnose.orgmap import OrgMap, endpoint_ip, folder_server, host_label
from sitemail.mailflow.tracking_log import TrackingEntry

__all__ = [
    "Group",
    "GroupKey",
    "KeyRow",
    "LogDigest",
    "Outcome",
    "RelayFacts",
    "SessionDigest",
    "TrackingFacts",
    "scan_logs",
    "scan_protocol_logs",
    "scan_tracking_logs",
    "server_of",
]

#: Example sessions kept per group.
MAX_EXAMPLES = 3
#: Tracking: messages followed at once (oldest forgotten first), examples per kind.
MAX_TRACKED_MESSAGES = 100_000
MAX_TRACKING_EXAMPLES = 10
#: Sources and domains kept per relaying connector.
MAX_RELAY_KEYS = 2_000
MAX_RELAY_PAIRS = 50_000
#: 530 refusals remembered per connector (the latest).
MAX_REFUSALS = 10_000

INTRA_ORG = "intra-organization"
#: Receive outcomes of a client that gave up at once: kept per client, since the client
#: may be another site's hub (the rules decide).
_PATH_OUTCOMES = frozenset(
    {
        Outcome.NO_EXCHANGE_AUTH,
        Outcome.QUIT_DESPITE_OFFER,
        Outcome.MASKED,
        Outcome.TLS_FAILED,
        Outcome.AUTH_FAILED,
    }
)
MAX_GROUPS = 50_000
#: A message received and not passed on for this long when the log ends is stuck.
STUCK_AFTER = timedelta(minutes=30)


@dataclass(slots=True)
class Group:
    count: int
    first: str
    last: str
    examples: list[SessionDigest]


GroupKey = tuple[LogKind, str, str, str, Outcome]


@dataclass(slots=True)
class RelayFacts:
    """Anonymous sessions of one connector that had recipients accepted while holding
    SMTPAcceptAnyRecipient: who they came from and where they sent."""

    sessions: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    domains: Counter[str] = field(default_factory=Counter)
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(source address, recipient domain) -> sessions, to judge once the organization's
    networks and domains are known."""
    examples: dict[str, SessionDigest] = field(default_factory=dict)
    """One example session per recipient domain."""


@dataclass(slots=True)
class AnonymousFacts:
    """Anonymous mail on one connector: when it was taken, when it was refused (530).

    Sessions arrive in the order they ended, not started; what came after the last
    delivery is worked out when asked."""

    delivered: int = 0
    last_delivered: str = ""
    first_delivered: str = ""
    refused: int = 0
    refusals: list[tuple[str, str]] = field(default_factory=list)
    """(start, source address) of refusals, the latest :data:`MAX_REFUSALS` kept."""

    def refuse(self, start: str, source: str) -> None:
        self.refused += 1
        self.refusals.append((start, source))
        if len(self.refusals) > 2 * MAX_REFUSALS:
            self.refusals.sort()
            del self.refusals[:-MAX_REFUSALS]

    @property
    def after(self) -> list[tuple[str, str]]:
        return [r for r in self.refusals if r[0] > self.last_delivered]

    @property
    def refused_after(self) -> int:
        """Refusals after the last anonymous delivery."""
        return len(self.after)

    @property
    def refused_sources(self) -> set[str]:
        return {source for _, source in self.after}


@dataclass(slots=True)
class TrackingFacts:
    expired: list[KeyRow] = field(default_factory=list)
    expired_count: int = 0
    expired_domains: Counter[str] = field(default_factory=Counter)
    """Recipient domains of expired messages: mail to other organizations that could not
    be delivered for two days is ordinary life, mail inside the organization is not."""
    delayed: list[KeyRow] = field(default_factory=list)
    delayed_count: int = 0
    ndr: dict[str, list[KeyRow]] = field(default_factory=dict)
    """Permanent failures by status text (the NDR's diagnostic)."""
    ndr_count: dict[str, int] = field(default_factory=dict)
    stuck: list[KeyRow] = field(default_factory=list)
    """Messages received and then never sent, delivered, deferred or failed."""
    stuck_old: bool = False
    """Some of them had waited long (30 minutes before the last row) when the log ended."""
    rows: int = 0
    sent_outside: Counter[str] = field(default_factory=Counter)
    """Recipient domains of SEND events (bounded), to tell relayed mail that left."""


@dataclass(slots=True)
class LogDigest:
    groups: dict[GroupKey, Group] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    rows: int = 0
    sessions: int = 0
    tracking: TrackingFacts = field(default_factory=TrackingFacts)
    releases: set[str] = field(default_factory=set)
    org: OrgMap = field(default_factory=OrgMap)
    relay: dict[str, RelayFacts] = field(default_factory=dict)
    anonymous: dict[str, AnonymousFacts] = field(default_factory=dict)
    servers_with_logs: dict[str, set[LogKind]] = field(default_factory=dict)
    """Server name -> the kinds of protocol log read for it."""

    def add(self, s: SessionDigest) -> None:
        key = (s.kind, s.server, s.connector_id, s.peer, s.outcome)
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = Group(1, s.start, s.start, [s])
            return
        group.count += 1
        if s.start and s.start < group.first:
            group.first = s.start
        if s.start > group.last:
            group.last = s.start
        if len(group.examples) < MAX_EXAMPLES:
            group.examples.append(s)

    def failing(self) -> bool:
        """Does any SmtpSend session show a failure?"""
        return any(
            k[0] is LogKind.SMTP_SEND and k[4] not in (Outcome.DELIVERED, Outcome.RELAY_DENIED)
            for k in self.groups
        )

    def by_outcome(self, kind: LogKind, *outcomes: Outcome) -> list[tuple[GroupKey, Group]]:
        wanted = set(outcomes)
        return [(k, g) for k, g in self.groups.items() if k[0] is kind and k[4] in wanted]


def server_of(path: str) -> str:
    """``.../servers/EX-NY1/TransportRoles/Logs/...`` -> ``EX-NY1``; else the nearest
    folder Exchange does not name itself."""
    return folder_server(path) or Path(path).parent.name


# ------------------------------------------------------------------ protocol logs


def _learn(out: LogDigest, d: SessionDigest, server: str) -> None:
    """What one session tells about the organization."""
    org = out.org
    if d.kind is LogKind.SMTP_SEND:
        if d.own_name:
            org.server(server, fqdn=d.own_name)
        org.address(endpoint_ip(d.local), host_label(server) or server.lower())
        intra = (
            INTRA_ORG in d.connector_id.lower()
            or d.principal is Principal.SERVER
            or (
                d.outcome
                in (
                    Outcome.MASKED,
                    Outcome.NO_EXCHANGE_AUTH,
                    Outcome.NO_AUTH,
                    Outcome.SEND_AS_DENIED,
                    Outcome.CERTIFICATE,
                    Outcome.TLS_FAILED,
                    Outcome.AUTH_FAILED,
                )
            )
        )
        if intra and d.peer and not d.peer[0].isdigit():
            label = org.server(d.peer, fqdn=d.peer)
            org.address(endpoint_ip(d.remote), label)
        return
    label = host_label(server) or server.lower()
    org.address(endpoint_ip(d.local), label)
    org.connector(label, d.connector_id)
    if d.own_name:
        org.server(server, fqdn=d.own_name)
    if d.principal is Principal.SERVER:
        if d.peer:
            peer = org.server(d.peer, fqdn=d.peer)
            org.address(endpoint_ip(d.remote), peer)
        else:
            org.client(endpoint_ip(d.remote))
    elif d.principal is Principal.USER:
        org.client(endpoint_ip(d.remote))
        org.domain(d.sender_domain)
    elif ACCEPT_ANY not in d.anonymous_rights:
        # Without relay rights an anonymous sender only reaches accepted domains.
        for domain in d.accepted_domains:
            org.domain(domain)


ACCEPT_ANY = "SMTPAcceptAnyRecipient"


def _anonymous(out: LogDigest, d: SessionDigest) -> None:
    if d.kind is not LogKind.SMTP_RECEIVE or d.principal is not Principal.ANONYMOUS:
        return
    if d.outcome is Outcome.ANONYMOUS_RELAY:
        relay = out.relay.setdefault(d.connector_id, RelayFacts())
        relay.sessions += 1
        source = endpoint_ip(d.remote)
        if len(relay.sources) < MAX_RELAY_KEYS or source in relay.sources:
            relay.sources[source] += 1
        for domain in d.accepted_domains:
            if len(relay.domains) < MAX_RELAY_KEYS or domain in relay.domains:
                relay.domains[domain] += 1
            if len(relay.pairs) < MAX_RELAY_PAIRS or (source, domain) in relay.pairs:
                relay.pairs[(source, domain)] += 1
            if domain not in relay.examples and len(relay.examples) < MAX_RELAY_KEYS:
                relay.examples[domain] = d
    if d.outcome in (Outcome.DELIVERED, Outcome.ANONYMOUS_RELAY, Outcome.NOT_AUTHENTICATED):
        facts = out.anonymous.setdefault(d.connector_id, AnonymousFacts())
        if d.outcome is Outcome.NOT_AUTHENTICATED:
            facts.refuse(d.start, endpoint_ip(d.remote))
        else:
            facts.delivered += 1
            facts.last_delivered = max(facts.last_delivered, d.start)
            if not facts.first_delivered or d.start < facts.first_delivered:
                facts.first_delivered = d.start


def _file_server(sessions: list[SmtpSession | SessionDigest], kind: LogKind, path: str) -> str:
    """The server a file belongs to: the server part of its receive connector ids, else
    its folder (a send log names its server only in the EHLO it sends)."""
    if kind is LogKind.SMTP_RECEIVE:
        for s in sessions:
            if "\\" in s.connector_id:
                return s.connector_id.split("\\", 1)[0]
    folder = folder_server(path)
    if folder:
        # A folder named in lower case (ex01-logs) or by FQDN says which server, not how
        # the organization writes its name: NetBIOS names are upper case.
        if "." in folder and not folder[0].isdigit():
            folder = folder.split(".", 1)[0]
        return folder.upper() if folder.islower() else folder
    return Path(path).parent.name


def _own_name_server(out: LogDigest, digests: list[SessionDigest], folder: str) -> str:
    """A send log's server: the host label of the name it gives in EHLO, in the case the
    organization writes it (its folder when they agree, else as its logs name it)."""
    names = Counter(host_label(d.own_name) for d in digests if d.own_name)
    if not names:
        return folder
    label = names.most_common(1)[0][0]
    if host_label(folder) == label:
        return folder
    return out.org.names.get(label, label.upper())


Progress = Callable[[int, int], None]


#: Below this many bytes of protocol logs one process reads them (a pool costs more).
PARALLEL_FROM = 32 * 1024 * 1024


def scan_protocol_logs(
    paths: Iterable[Path | str],
    digest_: LogDigest | None = None,
    *,
    progress: Progress | None = None,
    prefilter: bool = True,
    workers: int | None = None,
    idle: Callable[[], None] | None = None,
) -> LogDigest:
    """Read every SmtpSend/SmtpReceive log under ``paths`` into a digest.

    With ``prefilter`` (the default) each file is scanned as bytes, on every core, and
    only the sessions a rule can use are parsed (:mod:`.logs.prefilter`: sessions with
    a failure marker, sessions that gave up or relayed, the first of each file as
    samples, those cut by rotation); without it every row is parsed (the reference).
    """
    out = digest_ or LogDigest()
    logs = list(find_log_files(list(paths), (LogKind.SMTP_SEND, LogKind.SMTP_RECEIVE)))
    # Receive logs first: their connector ids name the servers, which the send logs'
    # peers are then matched against.  The files of one folder are read as one stream,
    # in Exchange's (chronological) order, so that a session cut by a file rotation is
    # joined again.
    logs.sort(key=lambda log: log.kind is not LogKind.SMTP_RECEIVE)
    chains: dict[tuple[str, LogKind], list[ExchangeLogFile]] = {}
    for log in logs:
        chains.setdefault((str(log.path.parent), log.kind), []).append(log)
        out.files.append(str(log.path))
        if log.release:
            out.releases.add(log.release)
        try:
            out.bytes += log.path.stat().st_size
        except OSError:
            continue
    total = out.bytes
    if prefilter:
        _scan_selected(out, chains, total, progress, workers, idle)
        return out
    done = 0
    for (_folder, kind), chain in chains.items():

        def rows(chain: list[ExchangeLogFile] = chain) -> Iterator[ProtocolRow]:
            nonlocal done
            for log in chain:
                for row in read_protocol_file(log):
                    out.rows += 1
                    yield row
                done += log.path.stat().st_size
                if progress is not None:
                    progress(done, total)

        sessions = group_sessions(rows())
        _add_file(out, _counted(out, sessions), kind, str(chain[0].path))
    return out


def _counted(out: LogDigest, sessions: Iterable[SmtpSession]) -> Iterator[SmtpSession]:
    """Count connections (``+`` rows), as the byte scan does."""
    for session in sessions:
        out.sessions += sum(1 for r in session.rows if r.values[6] == "+")
        yield session


def _scan_selected(
    out: LogDigest,
    chains: dict[tuple[str, LogKind], list[ExchangeLogFile]],
    total: int,
    progress: Progress | None,
    workers: int | None,
    idle: Callable[[], None] | None,
) -> None:
    items = [
        (str(log.path), FileBytes(log.path), kind)
        for (_folder, kind), chain in chains.items()
        for log in chain
    ]
    if workers is None and total < PARALLEL_FROM:
        workers = 1
    scans = scan_files(
        items,
        workers=workers,
        progress=None if progress is None else (lambda done: progress(done, total)),
        finish=digest,
        idle=idle,
    )
    for (_folder, kind), chain in chains.items():

        def selected(chain: list[ExchangeLogFile] = chain) -> Iterator[SmtpSession | SessionDigest]:
            # Sessions whole in a file come digested by the workers; those cut by a
            # rotation are joined here, across the files of the folder, and come last.
            cut: list[ProtocolRow] = []
            for _log in chain:
                scan = next(scans)
                out.rows += scan.rows
                out.sessions += scan.sessions_total
                yield from scan.finished
                for session in scan.sessions:
                    cut.extend(session.rows)
            yield from group_sessions(cut)

        _add_file(out, selected(), kind, str(chain[0].path))


#: Sessions looked at first to tell whose log a folder is.
_PEEK = 64


def _add_file(
    out: LogDigest, sessions: Iterable[SmtpSession | SessionDigest], kind: LogKind, path: str
) -> None:
    """Digest a stream of sessions (or sessions already digested) of one server's folder,
    in bounded memory: the first say whose log it is, the rest are taken as they come."""
    stream = iter(sessions)
    head: list[SmtpSession | SessionDigest] = []
    for session in stream:
        head.append(session)
        if len(head) >= _PEEK:
            break
    folder = _file_server(head, kind, path)
    digests = [d for d in (_digested(s, folder) for s in head) if d is not None]
    server = folder if kind is LogKind.SMTP_RECEIVE else _own_name_server(out, digests, folder)
    out.org.server(server)
    out.servers_with_logs.setdefault(server, set()).add(kind)
    for d in digests:
        _take(out, d, server)
    for session in stream:
        found = _digested(session, server)
        if found is not None:
            _take(out, found, server)


def _digested(item: SmtpSession | SessionDigest, server: str) -> SessionDigest | None:
    return item if isinstance(item, SessionDigest) else digest(item, server)


def _take(out: LogDigest, d: SessionDigest, server: str) -> None:
    d.server = server
    _learn(out, d, server)
    _anonymous(out, d)
    if d.outcome is Outcome.ANONYMOUS_RELAY:
        return  # judged per connector once the organization is known
    if (
        d.kind is LogKind.SMTP_RECEIVE
        and d.principal is not Principal.SERVER
        and (d.outcome not in _PATH_OUTCOMES or len(out.groups) > MAX_GROUPS)
    ):
        d.peer = ""  # Internet clients: one group per outcome, not per random name
    elif (
        d.kind is LogKind.SMTP_SEND
        and INTRA_ORG not in d.connector_id.lower()
        and d.outcome is Outcome.DELIVERED
    ):
        d.peer = ""
    out.add(d)


# ------------------------------------------------------------------ tracking logs

_FOLLOW_UPS = frozenset({"SEND", "DELIVER", "FAIL", "DEFER", "DSN", "TRANSFER", "BADMAIL"})


def _tracking_row(path: str, line: int, text: str) -> KeyRow:
    return KeyRow(f"{path}:{line}" if path else "", text)


def _learn_tracking(org: OrgMap, entry: TrackingEntry, event: str) -> None:
    """A tracking row names the server that wrote it and, between hubs, the other one:
    the addresses of servers whose protocol logs may be missing."""
    if event == "RECEIVE" and entry.source.upper() == "SMTP" and entry.server_hostname:
        org.address(entry.server_ip, org.server(entry.server_hostname, fqdn=entry.server_hostname))
    elif event == "SEND" and entry.client_hostname:
        org.address(entry.client_ip, org.server(entry.client_hostname, fqdn=entry.client_hostname))
        if INTRA_ORG in entry.connector_id.lower() and entry.server_hostname:
            peer = org.server(entry.server_hostname, fqdn=entry.server_hostname)
            org.address(entry.server_ip, peer)


def scan_tracking_logs(
    paths: Iterable[Path | str], digest: LogDigest | None = None, *, now: datetime | None = None
) -> LogDigest:
    """Expired, delayed, refused and stuck messages from message tracking logs."""
    out = digest or LogDigest()
    t = out.tracking
    pending: dict[tuple[str, str], tuple[datetime, KeyRow]] = {}
    t_last: datetime | None = None
    for entry in read_tracking_rows(list(paths)):
        t.rows += 1
        if t_last is None or entry.timestamp > t_last:
            t_last = entry.timestamp
        event = entry.event_id.upper()
        statuses = " ".join(entry.recipient_status)
        recipients = ",".join(entry.recipient_address)
        where = (entry.path, entry.line)
        if event == "FAIL":
            if "4.4.7" in statuses:
                t.expired_count += 1
                for address in entry.recipient_address:
                    domain = address.rpartition("@")[2].lower()
                    if domain in t.expired_domains or len(t.expired_domains) < MAX_RELAY_KEYS:
                        t.expired_domains[domain] += 1
                if len(t.expired) < MAX_TRACKING_EXAMPLES:
                    t.expired.append(
                        _tracking_row(*where, f"FAIL {entry.message_id} {recipients}: {statuses}")
                    )
            else:
                reason = statuses or "(no status)"
                t.ndr_count[reason] = t.ndr_count.get(reason, 0) + 1
                kept = t.ndr.setdefault(reason, [])
                if len(kept) < MAX_TRACKING_EXAMPLES:
                    kept.append(
                        _tracking_row(*where, f"FAIL {entry.message_id} {recipients}: {statuses}")
                    )
        elif event == "DSN" and entry.message_subject.lower().startswith("delivery delayed"):
            t.delayed_count += 1
            if len(t.delayed) < MAX_TRACKING_EXAMPLES:
                t.delayed.append(
                    _tracking_row(*where, f"DSN {entry.message_subject} to {recipients}")
                )
        _learn_tracking(out.org, entry, event)
        if event == "DELIVER":
            for address in entry.recipient_address:
                out.org.domain(address.rpartition("@")[2], 1)
        elif event == "SEND" and len(t.sent_outside) < MAX_RELAY_KEYS:
            for address in entry.recipient_address:
                t.sent_outside[address.rpartition("@")[2].lower()] += 1
        key = (entry.server_hostname.lower(), entry.message_id)
        if event == "RECEIVE":
            pending[key] = (
                entry.timestamp,
                _tracking_row(
                    *where,
                    f"RECEIVE {entry.message_id} for {recipients} on {entry.server_hostname}, "
                    "then nothing",
                ),
            )
            if len(pending) > MAX_TRACKED_MESSAGES:
                pending.pop(next(iter(pending)))
        elif event in _FOLLOW_UPS:
            pending.pop(key, None)
    if pending:
        newest = max(when for when, _ in pending.values())
        last = max(newest, t_last) if t_last is not None else newest
        t.stuck_old = any(last - when > STUCK_AFTER for when, _ in pending.values())
    t.stuck = [row for _, row in sorted(pending.values(), key=lambda p: p[0])][
        :MAX_TRACKING_EXAMPLES
    ]
    return out


def scan_logs(
    paths: Iterable[Path | str],
    *,
    progress: Progress | None = None,
    prefilter: bool = True,
    workers: int | None = None,
    idle: Callable[[], None] | None = None,
) -> LogDigest:
    """Protocol and tracking logs under ``paths``, in one digest.

    ``idle`` is called once, while the workers scan the first files (or at the end
    when there are none): the caller's chance to do its own work meanwhile."""
    called = False

    def once() -> None:
        nonlocal called
        if idle is not None and not called:
            called = True
            idle()

    paths = list(paths)
    out = scan_tracking_logs(paths)
    out = scan_protocol_logs(
        paths, out, progress=progress, prefilter=prefilter, workers=workers, idle=once
    )
    once()
    return out
