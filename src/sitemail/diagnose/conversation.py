"""What one logged SMTP session means: who spoke, as whom, and how it ended.

A protocol log session is read the way an engineer reads it: the rows are
commands of one side and replies of the other (``>``/``<`` swap between the
SmtpSend and SmtpReceive logs), information rows (``*``) carry the writer's
own notes.  From that sequence, not from one wording, come

- the *principal* of the session: anonymous until a ``235`` answers an
  ``X-EXPS`` (an Exchange server) or an ``AUTH`` (a user); the
  ``Set Session Permissions`` row before that is the connector's anonymous
  rights, the one after it the authenticated peer's;
- every reply by its code and enhanced status code in the context of the
  command it answers (``5.7.x`` to MAIL after server authentication is a
  permission refusal whatever its text; ``5.1.1`` to RCPT is an unknown
  recipient);
- the shape of the greeting and the EHLO reply: a banner masked to
  asterisks (Cisco PIX/ASA), keywords overwritten with X runs (ASA
  ``inspect esmtp``), an EHLO refused as an unknown command and retried as
  HELO (PIX Mailguard), or a clean reply without X-ANONYMOUSTLS/X-EXPS.

The SMTP grammar is :mod:`sitemail.protocols.smtp`'s (command lines, reply
lines, enhanced codes), the one the servers and the firewall use.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from enum import StrEnum

from sitemail.diagnose.logs import LogKind, ProtocolRow, SmtpSession
from sitemail.diagnose.probe import is_masked_banner
from sitemail.protocols.smtp.address import path_mailbox
from sitemail.protocols.smtp.command import parse_command_line
from sitemail.protocols.smtp.ehlo import ehlo_keyword, greeting_domain
from sitemail.protocols.smtp.errors import SmtpSyntaxError
from sitemail.protocols.smtp.reply import parse_reply_line, reply_text, split_enhanced
from sitemail.protocols.smtp.text import ascii_upper

#: A keyword an inspecting ASA overwrote: X's and one last letter (asa-esmtp.md 1.7).
MASKED_KEYWORD = re.compile(r"X{2,}[A-Z]")
MASKED_VERB = re.compile(r"X+")
#: EHLO names of sitemail's own probe sessions: not traffic.
PROBE_NAMES = frozenset({"probe.sitemail.invalid"})

#: Rights of the session, as Exchange logs them in ``Set Session Permissions``.
ACCEPT_ANY_RECIPIENT = "SMTPAcceptAnyRecipient"


class Principal(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    SERVER = "server"


class Firewall(StrEnum):
    """Which family of middlebox the session's greeting and EHLO reply show."""

    NONE = ""
    ASA = "asa"  # inspect esmtp: X...A keywords, banner of asterisks keeping 2 and 0
    PIX = "pix"  # fixup protocol smtp (Mailguard): EHLO refused as unknown, HELO used
    BANNER = "banner"  # only the greeting is masked


class Outcome(StrEnum):
    MASKED = "masked"
    """Send: a middlebox rewrote the greeting or the EHLO reply, then 451 5.7.3."""
    NO_EXCHANGE_AUTH = "no-exchange-auth"
    """Send: a clean EHLO reply without X-ANONYMOUSTLS/X-EXPS, then 451 5.7.3.
    Receive: the reply had no X-ANONYMOUSTLS and the client quit at once."""
    NO_AUTH = "no-auth"
    """Send: as above, and no STARTTLS and no AUTH either (AuthMechanism None)."""
    QUIT_DESPITE_OFFER = "quit-despite-offer"
    """Receive: the reply offered X-ANONYMOUSTLS, yet the client quit at once (what it
    saw was not what was sent: a device on the path took the keywords out)."""
    FAILED_TO_CONNECT = "failed-to-connect"
    DROPPED_BEFORE_BANNER = "dropped-before-banner"
    SEND_AS_DENIED = "send-as-denied"
    """An authenticated Exchange server refused at MAIL/RCPT with a 5.7.x (any wording)."""
    NOT_AUTHENTICATED = "not-authenticated"
    """Anonymous session refused at MAIL FROM for want of authentication (530)."""
    SUBMIT_DENIED = "submit-denied"
    RELAY_DENIED = "relay-denied"
    TLS_FAILED = "tls-failed"
    CERTIFICATE = "certificate"
    AUTH_FAILED = "auth-failed"
    ANONYMOUS_RELAY = "anonymous-relay"
    """Receive: an anonymous session holding SMTPAcceptAnyRecipient had recipients accepted."""
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class KeyRow:
    location: str
    text: str


@dataclass(slots=True)
class Refusal:
    verb: str
    code: int
    enhanced: str
    text: str


@dataclass(slots=True)
class SessionDigest:
    kind: LogKind
    server: str
    """The server whose log it is (set by the scanner, see :mod:`.orgmap`)."""
    connector_id: str
    session_id: str
    local: str
    remote: str
    peer: str
    """Send: the receiver's name from its greeting; receive: the client's EHLO name."""
    outcome: Outcome
    rows: list[KeyRow]
    start: str
    masked_keywords: tuple[str, ...] = ()
    ehlo_keywords: tuple[str, ...] = ()
    own_name: str = ""
    """Send: the name this server gave in EHLO/HELO; receive: its banner's name."""
    principal: Principal = Principal.ANONYMOUS
    firewall: Firewall = Firewall.NONE
    anonymous_rights: frozenset[str] = frozenset()
    rights: frozenset[str] = frozenset()
    """The rights after authentication (empty when none happened)."""
    accepted_domains: tuple[str, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    sender_domain: str = ""


MAX_KEY_ROWS = 12


@dataclass(slots=True)
class _Reader:
    """State while walking one session's rows."""

    rows: list[KeyRow] = field(default_factory=list)
    banner: list[str] = field(default_factory=list)
    banner_done: bool = False
    connected: bool = False
    commands: int = 0
    hello_verbs: list[str] = field(default_factory=list)
    first_reply: list[str] = field(default_factory=list)
    first_reply_at: ProtocolRow | None = None
    first_reply_code: int = 0
    masked_command: bool = False
    greeting: str = ""
    verb: str = ""
    """The command the next reply answers."""
    auth_verb: str = ""
    after_first_hello: str | None = None
    principal: Principal = Principal.ANONYMOUS
    anonymous_rights: frozenset[str] | None = None
    rights: frozenset[str] = frozenset()
    accepted: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    delivered: bool = False
    info: list[tuple[str, ProtocolRow]] = field(default_factory=list)
    own_name: str = ""
    sender_domain: str = ""
    rcpt: str = ""
    ended: bool = False

    def key(self, row: ProtocolRow | None, text: str) -> None:
        # The row's file:line is only made for the few rows kept as evidence.
        if len(self.rows) < MAX_KEY_ROWS:
            self.rows.append(KeyRow(row.location if row is not None else "", text))


def _row_text(values: list[str]) -> str:
    return ",".join(x for x in (values[6], values[7], values[8]) if x) or values[6]


def _reply(text: str) -> tuple[int, bool, str] | None:
    try:
        line = parse_reply_line(text)
    except SmtpSyntaxError:
        return None
    return line.code, line.last, line.text


def _domain(address: str) -> str:
    inner = address.strip().strip("<>").split(">", 1)[0]
    return inner.rpartition("@")[2].strip().lower().rstrip(".") if "@" in inner else ""


def _rights(text: str) -> frozenset[str]:
    return frozenset(text.split())


def keyword_of(line: str) -> str:
    """The upper-cased keyword of one EHLO reply line (``250-SIZE 1000`` -> ``SIZE``)."""
    return ascii_upper(ehlo_keyword(reply_text(line)))


def greeting_name(line: str) -> str:
    """``250-EX02.contoso.com Hello [10.1.0.11]`` / ``220 EX02... Microsoft ESMTP`` -> name."""
    name = greeting_domain(reply_text(line))
    return "" if not name or "*" in name or (name[0].isdigit() and "." in name[:4]) else name


#: Digests by the shape of their session (see :func:`digest`), at most this many.
MEMO_SIZE = 4096
_Shape = tuple[str, ...]
_MEMO: dict[_Shape, tuple[SessionDigest, tuple[int, ...], bool] | None] = {}


def _ip(endpoint: str) -> str:
    return endpoint.rpartition(":")[0] or endpoint


def digest(session: SmtpSession, server: str = "") -> SessionDigest | None:
    """The meaning of one session; None for sessions that say nothing (probes, empty).

    A failing path repeats one conversation hundreds of times (every retry, every
    message), so a session whose rows say what an earlier one's said (the same
    events, data and context, connector and addresses; only times, ids, sequence
    numbers and ports differ) gets that one's meaning with its own id, endpoints,
    start and evidence rows, without being read again.
    """
    rows = session.rows
    if not rows:
        return None
    first = rows[0].values
    shape = (
        server,
        session.kind,
        first[1],
        _ip(session.local_endpoint),
        _ip(session.remote_endpoint),
        *(x for r in rows for x in r.values[6:9]),
    )
    if shape in _MEMO:
        known = _MEMO[shape]
        return _again(known, session) if known is not None else None
    found = _read(session, server)
    if len(_MEMO) >= MEMO_SIZE:
        _MEMO.clear()
    if found is None:
        _MEMO[shape] = None
        return None
    at = {r.location: i for i, r in enumerate(rows)}
    _MEMO[shape] = (
        found,
        tuple(at.get(k.location, -1) for k in found.rows),
        found.peer == session.remote_endpoint,
    )
    return dataclasses.replace(found, rows=list(found.rows))


def _again(
    known: tuple[SessionDigest, tuple[int, ...], bool], session: SmtpSession
) -> SessionDigest:
    """An earlier digest of the same shape, made this session's."""
    model, indices, peer_is_remote = known
    rows, remote = session.rows, session.remote_endpoint
    return dataclasses.replace(
        model,
        session_id=session.session_id,
        local=session.local_endpoint,
        remote=remote,
        peer=remote if peer_is_remote else model.peer,
        start=rows[0].values[0],
        rows=[
            KeyRow(rows[i].location if i >= 0 else "", k.text)
            for i, k in zip(indices, model.rows, strict=True)
        ],
    )


def _read(session: SmtpSession, server: str) -> SessionDigest | None:
    send = session.kind is LogKind.SMTP_SEND
    client_ev, server_ev = (">", "<") if send else ("<", ">")
    st = _Reader()
    for r in session.rows:
        v = r.values
        ev, data = v[6], v[7]
        where = r
        if ev == "+":
            st.connected = True
        elif ev == "-":
            st.ended = True
            if send and not st.banner:
                st.key(where, _row_text(v))
        elif ev == "*":
            _information(st, v, where)
        elif ev == client_ev:
            if not _command(st, data, where, send):
                return None
        elif ev == server_ev:
            _server_line(st, data, where)
    return _conclude(session, server, st, send)


def _information(st: _Reader, v: list[str], where: ProtocolRow) -> None:
    data, context = v[7], v[8]
    if "permissions" in context.lower() or ("permissions" in data.lower() and not context):
        rights = _rights(data)
        if st.principal is Principal.ANONYMOUS and st.anonymous_rights is None:
            st.anonymous_rights = rights
        elif st.principal is not Principal.ANONYMOUS:
            st.rights = rights
            st.key(where, _row_text(v))
        return
    text = data or context
    if text:
        st.info.append((text, where))


def _command(st: _Reader, data: str, where: ProtocolRow, send: bool) -> bool:
    line = parse_command_line(data)
    verb = line.verb
    st.commands += 1
    if len(verb) >= 4 and MASKED_VERB.fullmatch(verb):
        # The receiver got a command a firewall overwrote with X's (PIX Mailguard, or an
        # ASA judging a partial line): what the client sent is not what arrived.
        st.masked_command = True
        st.key(where, data)
    if st.hello_verbs and st.after_first_hello is None and verb not in ("EHLO", "HELO"):
        st.after_first_hello = verb
        if not send:
            st.key(where, data)
    if verb in ("EHLO", "HELO"):
        name = line.argument.split(" ", 1)[0]
        if name.lower() in PROBE_NAMES:
            return False
        if not st.own_name:
            st.own_name = name
        st.hello_verbs.append(verb)
        if len(st.hello_verbs) == 1 or (len(st.hello_verbs) == 2 and st.first_reply_code >= 500):
            st.key(where, data)
    elif verb in ("X-EXPS", "AUTH"):
        st.auth_verb = verb
    elif verb == "MAIL":
        st.sender_domain = _domain(path_mailbox(data))
    elif verb == "RCPT":
        st.rcpt = path_mailbox(data)
    st.verb = verb
    return True


def _server_line(st: _Reader, data: str, where: ProtocolRow) -> None:
    parsed = _reply(data)
    if parsed is None:
        return
    code, last, text = parsed
    if not st.hello_verbs and not st.commands:
        # The greeting, before any command.
        st.banner.append(data)
        if len(st.banner) == 1:
            st.key(where, data)
        if last:
            st.banner_done = True
            st.greeting = st.greeting or greeting_name(st.banner[0])
        return
    verb = st.verb
    if verb in ("EHLO", "HELO"):
        _hello_reply(st, code, data, where)
        return
    if code == 235 and st.auth_verb:
        st.principal = Principal.SERVER if st.auth_verb == "X-EXPS" else Principal.USER
        st.key(where, data)
        return
    if not last:
        return
    if code >= 400:
        enhanced, rest = split_enhanced(code, text)
        st.refusals.append(Refusal(verb, code, enhanced or "", rest))
        if verb in ("MAIL", "RCPT", "X-EXPS", "AUTH", "X-ANONYMOUSTLS", "STARTTLS"):
            st.key(where, data)
    elif verb == "RCPT" and code == 250:
        domain = _domain(st.rcpt)
        if domain and len(st.accepted) < 32:
            st.accepted.append(domain)
    elif code == 250 and (
        verb in ("DATA", "BDAT", "") or "Queued" in text or text.startswith("2.6.0")
    ):
        st.delivered = True


def _hello_reply(st: _Reader, code: int, data: str, where: ProtocolRow) -> None:
    """Keep the reply to the first EHLO, or to the HELO that followed a refused EHLO (the
    PIX fallback): the reply that decided what the client could do before any TLS."""
    number = len(st.hello_verbs)
    fallback = number == 2 and st.first_reply_code >= 500 and st.hello_verbs[1] == "HELO"
    if number != 1 and not fallback:
        return
    if fallback and st.first_reply_code >= 500:
        st.refusals.append(Refusal("EHLO", st.first_reply_code, "", " ".join(st.first_reply)))
        st.first_reply = []
        st.first_reply_code = 0
    if not st.first_reply:
        st.first_reply_at = where
        st.first_reply_code = code
        if code >= 400:
            st.key(where, data)
        elif code == 250:
            st.greeting = greeting_name(data) or st.greeting
    st.first_reply.append(data)
    if number == 1 and len(st.first_reply) > 1 and MASKED_KEYWORD.fullmatch(keyword_of(data)):
        st.key(where, data)


_INFO_PATTERNS: tuple[tuple[Outcome | str, tuple[str, ...]], ...] = (
    (Outcome.CERTIFICATE, ("internal transport certificate",)),
    ("cannot-achieve", ("cannot achieve exchange server authentication",)),
    (Outcome.TLS_FAILED, ("tls negotiation failed", "tls handshake failed")),
    (
        Outcome.AUTH_FAILED,
        ("outbound authentication failed", "454 4.7.0", "authentication failed with"),
    ),
    (
        Outcome.FAILED_TO_CONNECT,
        (
            "failed to connect",
            "unable to connect",
            "connection attempt failed",
            "winsock error",
            "connection refused",
            "actively refused",
            "did not properly respond",
            "no connection could be made",
            "4.2.1",
            "10060",
            "10061",
        ),
    ),
    (Outcome.DROPPED_BEFORE_BANNER, ("connection dropped", "4.4.2")),
)


def _notes(st: _Reader) -> dict[Outcome | str, ProtocolRow | None]:
    found: dict[Outcome | str, ProtocolRow | None] = {}
    for text, where in st.info:
        low = text.lower()
        for what, needles in _INFO_PATTERNS:
            if what not in found and any(n in low for n in needles):
                found[what] = where
                st.key(where, text)
                break
    return found


def _permission_refusal(st: _Reader) -> Refusal | None:
    for ref in st.refusals:
        if ref.verb in ("MAIL", "RCPT", "DATA", "BDAT") and (
            ref.enhanced.startswith("5.7.") or ref.code == 530
        ):
            return ref
    return None


def _conclude(session: SmtpSession, server: str, st: _Reader, send: bool) -> SessionDigest | None:
    if not session.rows or (not st.connected and not st.info and not st.commands):
        return None
    keywords = tuple(keyword_of(line) for line in st.first_reply[1:] if len(line) > 4)
    masked = tuple(k for k in keywords if MASKED_KEYWORD.fullmatch(k))
    notes = _notes(st)
    banner_masked = bool(st.banner) and is_masked_banner(st.banner)
    pix = st.masked_command or (
        len(st.hello_verbs) >= 2
        and st.hello_verbs[:2] == ["EHLO", "HELO"]
        and any(r.verb == "EHLO" and r.code >= 500 for r in st.refusals)
    )
    firewall = (
        Firewall.PIX
        if st.masked_command or (pix and (banner_masked or not st.banner))
        else Firewall.ASA
        if masked
        else Firewall.BANNER
        if banner_masked
        else Firewall.NONE
    )
    refused = _permission_refusal(st)
    outcome: Outcome | None = None
    if send:
        outcome = _send_outcome(st, notes, keywords, firewall, refused)
    else:
        outcome = _receive_outcome(st, keywords, refused, firewall, notes)
    if outcome is None:
        return None
    if outcome in (Outcome.NO_EXCHANGE_AUTH, Outcome.NO_AUTH, Outcome.QUIT_DESPITE_OFFER) and (
        st.first_reply_at
    ):
        st.rows.insert(min(len(st.rows), 2), KeyRow(st.first_reply_at.location, offered(keywords)))
    peer = st.greeting if send else st.own_name
    return SessionDigest(
        session.kind,
        server,
        session.connector_id,
        session.session_id,
        session.local_endpoint,
        session.remote_endpoint,
        peer or session.remote_endpoint,
        outcome,
        st.rows,
        session.rows[0].values[0],
        masked,
        keywords,
        st.own_name if send else st.greeting,
        st.principal,
        firewall,
        st.anonymous_rights or frozenset(),
        st.rights,
        tuple(dict.fromkeys(st.accepted)),
        tuple(st.refusals),
        st.sender_domain,
    )


def _send_outcome(
    st: _Reader,
    notes: dict[Outcome | str, ProtocolRow | None],
    keywords: tuple[str, ...],
    firewall: Firewall,
    refused: Refusal | None,
) -> Outcome | None:
    if not st.banner and not st.hello_verbs:
        if not st.connected and (Outcome.FAILED_TO_CONNECT in notes or st.info):
            return Outcome.FAILED_TO_CONNECT if Outcome.FAILED_TO_CONNECT in notes else None
        if st.connected and (st.ended or Outcome.DROPPED_BEFORE_BANNER in notes):
            return Outcome.DROPPED_BEFORE_BANNER
        return None
    gave_up = (
        not st.delivered
        and st.first_reply_code == 250
        and st.after_first_hello in ("QUIT", None)
        and st.principal is Principal.ANONYMOUS
    )
    if gave_up and "cannot-achieve" not in notes:
        # A hub that quits right after the EHLO reply gave up on Exchange Server
        # authentication, whether or not its log says 451 5.7.3 (the wording of that row
        # is not settled, spec exchange-2010.md 4.5): with X-ANONYMOUSTLS offered, its own
        # certificate failed it (the decision tree of 3.2).
        if firewall is Firewall.NONE and "X-ANONYMOUSTLS" in keywords:
            return Outcome.CERTIFICATE
        notes["cannot-achieve"] = st.first_reply_at
    if Outcome.CERTIFICATE in notes:
        return Outcome.CERTIFICATE
    if "cannot-achieve" in notes:
        if firewall is not Firewall.NONE:
            return Outcome.MASKED
        if "X-ANONYMOUSTLS" not in keywords and not (
            "X-EXPS" in keywords and st.principal is Principal.ANONYMOUS and _tls_done(st)
        ):
            if "STARTTLS" not in keywords and "AUTH" not in keywords:
                return Outcome.NO_AUTH
            return Outcome.NO_EXCHANGE_AUTH
    failed = _tls_or_auth_failed(st, notes)
    if failed is not None:
        return failed
    if refused is not None and st.principal is Principal.SERVER:
        return Outcome.SEND_AS_DENIED
    if "cannot-achieve" in notes:
        return Outcome.NO_EXCHANGE_AUTH
    if any(r.verb == "RCPT" and r.enhanced == "5.7.1" for r in st.refusals):
        return Outcome.RELAY_DENIED
    if st.delivered:
        return Outcome.DELIVERED
    return None


def _tls_or_auth_failed(
    st: _Reader, notes: dict[Outcome | str, ProtocolRow | None]
) -> Outcome | None:
    """Anonymous TLS that failed, or Exchange authentication refused (454/535 to X-EXPS)."""
    if Outcome.TLS_FAILED in notes:
        return Outcome.TLS_FAILED
    if Outcome.AUTH_FAILED in notes or any(
        r.verb == "X-EXPS" and r.code in (454, 535) for r in st.refusals
    ):
        return Outcome.AUTH_FAILED
    return None


def _tls_done(st: _Reader) -> bool:
    return len(st.hello_verbs) >= 2


def _receive_outcome(
    st: _Reader,
    keywords: tuple[str, ...],
    refused: Refusal | None,
    firewall: Firewall,
    notes: dict[Outcome | str, ProtocolRow | None],
) -> Outcome | None:
    if firewall is not Firewall.NONE and not st.delivered and st.principal is Principal.ANONYMOUS:
        return Outcome.MASKED
    if not st.delivered and st.principal is Principal.ANONYMOUS:
        # The peer asked for anonymous TLS or Exchange authentication and it failed.
        failed = _tls_or_auth_failed(st, notes)
        if failed is not None:
            return failed
    if refused is not None and st.principal is Principal.SERVER:
        return Outcome.SEND_AS_DENIED
    if refused is not None and st.principal is Principal.ANONYMOUS and refused.verb == "MAIL":
        if refused.code == 530 and (
            refused.enhanced == "5.7.1" or "authenticated" in refused.text.lower()
        ):
            return Outcome.NOT_AUTHENTICATED
        if "submit" in refused.text.lower():
            return Outcome.SUBMIT_DENIED
    anonymous = st.anonymous_rights or frozenset()
    if st.principal is Principal.ANONYMOUS and ACCEPT_ANY_RECIPIENT in anonymous and st.accepted:
        return Outcome.ANONYMOUS_RELAY
    if (
        st.first_reply
        and st.first_reply_code == 250
        and len(st.hello_verbs) == 1
        and st.after_first_hello in ("QUIT", None)
        and st.principal is Principal.ANONYMOUS
    ):
        if "X-ANONYMOUSTLS" in keywords:
            return Outcome.QUIT_DESPITE_OFFER
        return Outcome.NO_EXCHANGE_AUTH
    if st.delivered:
        return Outcome.DELIVERED
    return None


def offered(keywords: tuple[str, ...]) -> str:
    missing = [k for k in ("STARTTLS", "X-ANONYMOUSTLS", "X-EXPS", "AUTH") if k not in keywords]
    if not missing:
        return f"EHLO reply offers {' '.join(keywords)}"
    return f"EHLO reply offers {' '.join(keywords) or 'nothing'}; no {', no '.join(missing)}"
