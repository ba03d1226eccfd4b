"""What protocol and tracking logs say, boiled down for the rules.

Every SMTP session of the SmtpSend and SmtpReceive logs is read once and
given an *outcome* (why it failed, or that it delivered); sessions with the
same server, connector, peer and outcome are counted together and a few of
them kept as examples, with the rows that prove the outcome (``file:line``).
Message tracking logs add messages that expired, were delayed, were
refused with an NDR, or were received and never went anywhere.  Memory is
bounded by the number of distinct groups and by the readers' own bounds,
whatever the size of the logs.

The probe's own sessions (EHLO :data:`sitemail.diagnose.probe.PROBE_HELO`)
are left out: they are not traffic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sitemail.diagnose.logs import (
    LogKind,
    ProtocolRow,
    SmtpSession,
    find_log_files,
    group_sessions,
    read_protocol_file,
    read_tracking_rows,
)
from sitemail.diagnose.probe import PROBE_HELO, is_masked_banner

#: Example sessions kept per group, and rows kept per example.
MAX_EXAMPLES = 3
MAX_KEY_ROWS = 12
#: Tracking: messages followed at once (oldest forgotten first), examples per kind.
MAX_TRACKED_MESSAGES = 100_000
MAX_TRACKING_EXAMPLES = 10

CANNOT_ACHIEVE = "5.7.3 Cannot achieve Exchange Server authentication"
CANNOT_LOAD_CERT = "Cannot load Internal Transport Certificate"
SEND_AS_DENIED_TEXT = "550 5.7.1 Client does not have permissions to send as this sender"
NOT_AUTHENTICATED_TEXT = "530 5.7.1 Client was not authenticated"
SUBMIT_DENIED_TEXT = "550 5.7.1 Client does not have permissions to submit to this server"
UNABLE_TO_RELAY_TEXT = "550 5.7.1 Unable to relay"
_MASKED_KEYWORD = re.compile(r"X+[A-Z]")


class Outcome(StrEnum):
    MASKED = "masked"
    """Send: the peer's greeting or EHLO keywords were masked, then 451 5.7.3."""
    NO_EXCHANGE_AUTH = "no-exchange-auth"
    """Send: a clean EHLO reply without X-ANONYMOUSTLS/X-EXPS, then 451 5.7.3.
    Receive: EHLO answered without X-ANONYMOUSTLS and the client quit at once."""
    NO_AUTH = "no-auth"
    """Send: as above, and no STARTTLS and no AUTH either (AuthMechanism None)."""
    FAILED_TO_CONNECT = "failed-to-connect"
    DROPPED_BEFORE_BANNER = "dropped-before-banner"
    SEND_AS_DENIED = "send-as-denied"
    NOT_AUTHENTICATED = "not-authenticated"
    SUBMIT_DENIED = "submit-denied"
    RELAY_DENIED = "relay-denied"
    TLS_FAILED = "tls-failed"
    CERTIFICATE = "certificate"
    AUTH_FAILED = "auth-failed"
    ANONYMOUS_RELAY = "anonymous-relay"
    """Receive: an anonymous session holds SMTPAcceptAnyRecipient."""
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class KeyRow:
    location: str
    text: str


@dataclass(slots=True)
class SessionDigest:
    kind: LogKind
    server: str
    """The server whose log it is (the folder above TransportRoles, else the log's folder)."""
    connector_id: str
    session_id: str
    local: str
    remote: str
    peer: str
    """Send: the receiver's name from its EHLO greeting; receive: the client's EHLO name."""
    outcome: Outcome
    rows: list[KeyRow]
    start: str
    masked_keywords: tuple[str, ...] = ()
    ehlo_keywords: tuple[str, ...] = ()


@dataclass(slots=True)
class Group:
    count: int
    first: str
    last: str
    examples: list[SessionDigest]


GroupKey = tuple[LogKind, str, str, str, Outcome]


@dataclass(slots=True)
class TrackingFacts:
    expired: list[KeyRow] = field(default_factory=list)
    expired_count: int = 0
    delayed: list[KeyRow] = field(default_factory=list)
    delayed_count: int = 0
    ndr: dict[str, list[KeyRow]] = field(default_factory=dict)
    """Permanent failures by status text (the NDR's diagnostic)."""
    ndr_count: dict[str, int] = field(default_factory=dict)
    stuck: list[KeyRow] = field(default_factory=list)
    """Messages received and then never sent, delivered, deferred or failed."""
    rows: int = 0


@dataclass(slots=True)
class LogDigest:
    groups: dict[GroupKey, Group] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    rows: int = 0
    sessions: int = 0
    tracking: TrackingFacts = field(default_factory=TrackingFacts)
    releases: set[str] = field(default_factory=set)

    def add(self, s: SessionDigest) -> None:
        key = (s.kind, s.server, s.connector_id, s.peer, s.outcome)
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = Group(1, s.start, s.start, [s])
            return
        group.count += 1
        group.last = s.start or group.last
        if len(group.examples) < MAX_EXAMPLES:
            group.examples.append(s)

    def by_outcome(self, kind: LogKind, *outcomes: Outcome) -> list[tuple[GroupKey, Group]]:
        wanted = set(outcomes)
        return [(k, g) for k, g in self.groups.items() if k[0] is kind and k[4] in wanted]


def server_of(path: str) -> str:
    """``.../servers/EX-NY1/TransportRoles/Logs/...`` -> ``EX-NY1``; else the log's folder."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if part.lower() == "transportroles" and i > 0:
            return parts[i - 1]
    return Path(path).parent.name


def _row_text(r: ProtocolRow) -> str:
    v = r.values
    return ",".join(x for x in (v[6], v[7], v[8]) if x) or v[6]


def _key(rows: list[KeyRow], r: ProtocolRow) -> None:
    if len(rows) < MAX_KEY_ROWS:
        rows.append(KeyRow(r.location, _row_text(r)))


def _offered(keywords: tuple[str, ...]) -> str:
    missing = [k for k in ("STARTTLS", "X-ANONYMOUSTLS", "X-EXPS", "AUTH") if k not in keywords]
    return f"EHLO reply offers {' '.join(keywords) or 'nothing'}; no {', no '.join(missing)}"


def _info_text(r: ProtocolRow) -> str:
    # The sender's own notes (the synthetic 451 5.7.3, "Failed to connect") are
    # information rows; the text sits in data or in context depending on the writer.
    v = r.values
    return v[7] or v[8]


def digest_send(session: SmtpSession, server: str) -> SessionDigest | None:
    rows: list[KeyRow] = []
    connected = banner_seen = False
    banner: list[str] = []
    first_ehlo: list[str] = []
    reading_ehlo = False
    ehlos = 0
    peer = ""
    first_ehlo_at = ""
    flags: set[Outcome] = set()
    cannot_achieve = delivered = False
    for r in session.rows:
        v = r.values
        ev, data = v[6], v[7]
        if ev == "+":
            connected = True
        elif ev == "<":
            if reading_ehlo:
                if ehlos == 1:
                    first_ehlo.append(data)
                    if len(first_ehlo) == 1:
                        peer = data[4:].split(" ", 1)[0]
                        first_ehlo_at = r.location
                    elif _MASKED_KEYWORD.fullmatch(data[4:].split(" ", 1)[0]):
                        _key(rows, r)
                if len(data) < 4 or data[3] != "-":
                    reading_ehlo = False
            elif not ehlos and data[:3].isdigit():
                banner.append(data)
                banner_seen = True
                _key(rows, r)
            elif data.startswith(SEND_AS_DENIED_TEXT):
                flags.add(Outcome.SEND_AS_DENIED)
                _key(rows, r)
            elif data.startswith(NOT_AUTHENTICATED_TEXT):
                flags.add(Outcome.NOT_AUTHENTICATED)
                _key(rows, r)
            elif data.startswith(SUBMIT_DENIED_TEXT):
                flags.add(Outcome.SUBMIT_DENIED)
                _key(rows, r)
            elif data.startswith(UNABLE_TO_RELAY_TEXT):
                flags.add(Outcome.RELAY_DENIED)
                _key(rows, r)
            elif data.startswith("235"):
                _key(rows, r)
            elif data.startswith("250 2.6.0"):
                delivered = True
        elif ev == ">":
            head = data[:4].upper()
            if head in ("EHLO", "HELO"):
                ehlos += 1
                reading_ehlo = True
                if ehlos == 1:
                    _key(rows, r)
        elif ev == "*":
            text = _info_text(r)
            if CANNOT_ACHIEVE in text:
                cannot_achieve = True
                _key(rows, r)
            elif text.startswith("Failed to connect") or "4.2.1 Unable to connect" in text:
                flags.add(Outcome.FAILED_TO_CONNECT)
                _key(rows, r)
            elif "4.4.2 Connection dropped" in text and not banner_seen:
                flags.add(Outcome.DROPPED_BEFORE_BANNER)
                _key(rows, r)
            elif CANNOT_LOAD_CERT in text:
                flags.add(Outcome.CERTIFICATE)
                _key(rows, r)
            elif text.startswith("TLS negotiation failed"):
                flags.add(Outcome.TLS_FAILED)
                _key(rows, r)
            elif text.startswith("Outbound Authentication failed") or "454 4.7.0" in text:
                flags.add(Outcome.AUTH_FAILED)
                _key(rows, r)
        elif ev == "-" and connected and not banner_seen:
            flags.add(Outcome.DROPPED_BEFORE_BANNER)
            _key(rows, r)
    keywords = tuple(line[4:].split(" ", 1)[0].upper() for line in first_ehlo[1:] if len(line) > 4)
    masked = tuple(k for k in keywords if _MASKED_KEYWORD.fullmatch(k))
    outcome: Outcome | None
    if Outcome.FAILED_TO_CONNECT in flags and not connected:
        outcome = Outcome.FAILED_TO_CONNECT
    elif Outcome.DROPPED_BEFORE_BANNER in flags:
        outcome = Outcome.DROPPED_BEFORE_BANNER
    elif cannot_achieve:
        if masked or (banner and is_masked_banner(banner)):
            outcome = Outcome.MASKED
        elif "STARTTLS" not in keywords and "AUTH" not in keywords:
            outcome = Outcome.NO_AUTH
        else:
            outcome = Outcome.NO_EXCHANGE_AUTH
        if outcome is not Outcome.MASKED and first_ehlo_at:
            # The reply that lacked what Exchange authentication needs is the evidence.
            rows.insert(min(len(rows), 2), KeyRow(first_ehlo_at, _offered(keywords)))
    else:
        order = (
            Outcome.CERTIFICATE,
            Outcome.TLS_FAILED,
            Outcome.AUTH_FAILED,
            Outcome.SEND_AS_DENIED,
            Outcome.NOT_AUTHENTICATED,
            Outcome.SUBMIT_DENIED,
            Outcome.RELAY_DENIED,
        )
        outcome = next((o for o in order if o in flags), None)
        if outcome is None and delivered:
            outcome = Outcome.DELIVERED
    if outcome is None:
        return None
    return SessionDigest(
        LogKind.SMTP_SEND,
        server,
        session.connector_id,
        session.session_id,
        session.local_endpoint,
        session.remote_endpoint,
        peer or session.remote_endpoint,
        outcome,
        rows,
        session.rows[0].values[0] if session.rows else "",
        masked,
        keywords,
    )


def digest_receive(session: SmtpSession, server: str) -> SessionDigest | None:
    rows: list[KeyRow] = []
    client = ""
    ehlos = 0
    replying = False
    first_reply: list[str] = []
    first_reply_at = ""
    authenticated = False
    after_first_ehlo: str | None = None  # the client's next command after the first EHLO
    flags: set[Outcome] = set()
    delivered = False
    for r in session.rows:
        v = r.values
        ev, data = v[6], v[7]
        if ev == "<":
            if replying:
                replying = False
            head = data[:4].upper()
            if head in ("EHLO", "HELO"):
                ehlos += 1
                if ehlos == 1:
                    client = data[5:].strip()
                    if client.lower() == PROBE_HELO:
                        return None
                    _key(rows, r)
                    replying = True
            elif ehlos == 1 and after_first_ehlo is None:
                after_first_ehlo = data.upper()
                _key(rows, r)
        elif ev == ">":
            if replying and ehlos == 1:
                if not first_reply:
                    first_reply_at = r.location
                first_reply.append(data)
                if len(data) < 4 or data[3] != "-":
                    replying = False
            elif data.startswith("235"):
                authenticated = True
            elif data.startswith(NOT_AUTHENTICATED_TEXT):
                flags.add(Outcome.NOT_AUTHENTICATED)
                _key(rows, r)
            elif data.startswith(SEND_AS_DENIED_TEXT):
                flags.add(Outcome.SEND_AS_DENIED)
                _key(rows, r)
            elif data.startswith("250 2.6.0"):
                delivered = True
        elif ev == "*" and v[8] == "Set Session Permissions":
            if authenticated:
                _key(rows, r)
            elif "SMTPAcceptAnyRecipient" in data:
                flags.add(Outcome.ANONYMOUS_RELAY)
                _key(rows, r)
    keywords = tuple(line[4:].split(" ", 1)[0].upper() for line in first_reply[1:] if len(line) > 4)
    outcome: Outcome | None = None
    if Outcome.SEND_AS_DENIED in flags and authenticated:
        outcome = Outcome.SEND_AS_DENIED
    elif Outcome.ANONYMOUS_RELAY in flags:
        outcome = Outcome.ANONYMOUS_RELAY
    elif Outcome.NOT_AUTHENTICATED in flags:
        outcome = Outcome.NOT_AUTHENTICATED
    elif first_reply and "X-ANONYMOUSTLS" not in keywords and after_first_ehlo == "QUIT":
        # An Exchange hub that finds no X-ANONYMOUSTLS gives up with QUIT at once;
        # the reply it got is the evidence.
        outcome = Outcome.NO_EXCHANGE_AUTH
        rows.insert(min(len(rows), 1), KeyRow(first_reply_at, _offered(keywords)))
    elif delivered:
        outcome = Outcome.DELIVERED
    if outcome is None:
        return None
    return SessionDigest(
        LogKind.SMTP_RECEIVE,
        server,
        session.connector_id,
        session.session_id,
        session.local_endpoint,
        session.remote_endpoint,
        client,
        outcome,
        rows,
        session.rows[0].values[0] if session.rows else "",
        (),
        keywords,
    )


def scan_protocol_logs(paths: Iterable[Path | str], digest: LogDigest | None = None) -> LogDigest:
    """Read every SmtpSend/SmtpReceive log under ``paths`` into a digest."""
    out = digest or LogDigest()
    for log in find_log_files(list(paths), (LogKind.SMTP_SEND, LogKind.SMTP_RECEIVE)):
        path = str(log.path)
        out.files.append(path)
        if log.release:
            out.releases.add(log.release)
        try:
            out.bytes += log.path.stat().st_size
        except OSError:
            continue
        server = server_of(path)
        digest_one = digest_send if log.kind is LogKind.SMTP_SEND else digest_receive
        for session in group_sessions(read_protocol_file(log)):
            out.sessions += 1
            out.rows += len(session.rows)
            d = digest_one(session, server)
            if d is not None:
                out.add(d)
    return out


# ------------------------------------------------------------------ tracking logs

_FOLLOW_UPS = frozenset({"SEND", "DELIVER", "FAIL", "DEFER", "DSN", "TRANSFER", "BADMAIL"})


def _tracking_row(path: str, line: int, text: str) -> KeyRow:
    return KeyRow(f"{path}:{line}" if path else "", text)


def scan_tracking_logs(
    paths: Iterable[Path | str], digest: LogDigest | None = None, *, now: datetime | None = None
) -> LogDigest:
    """Expired, delayed, refused and stuck messages from message tracking logs."""
    out = digest or LogDigest()
    t = out.tracking
    pending: dict[tuple[str, str], tuple[datetime, KeyRow]] = {}
    for entry in read_tracking_rows(list(paths)):
        t.rows += 1
        event = entry.event_id.upper()
        statuses = " ".join(entry.recipient_status)
        recipients = ",".join(entry.recipient_address)
        where = (entry.path, entry.line)
        if event == "FAIL":
            if "4.4.7" in statuses:
                t.expired_count += 1
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
    t.stuck = [row for _, row in sorted(pending.values(), key=lambda p: p[0])][
        :MAX_TRACKING_EXAMPLES
    ]
    return out


def scan_logs(paths: Iterable[Path | str]) -> LogDigest:
    """Protocol and tracking logs under ``paths``, in one digest."""
    paths = list(paths)
    digest = scan_protocol_logs(paths)
    return scan_tracking_logs(paths, digest)
