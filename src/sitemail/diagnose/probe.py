"""Is something on the path inspecting SMTP?  The client-side heuristics (asa-esmtp.md §8).

This module is pure: it judges a :class:`ProbeTranscript`, the record of what
a probe sent and what came back, and says what it means.  The I/O that fills
the transcript lives in :mod:`sitemail.diagnose.probe_run`.

The tests, each scored (``weight`` is how much it alone would convince):

1. banner character set: after ``220[- ]`` only ``* 2 0 SP TAB``, at least
   four ``*`` (Postfix's PIX test, nmap's "Cisco PIX sanitized smtpd");
2. masked EHLO keywords ``^X+[A-Z]$`` (``XXXXXXXA`` is STARTTLS);
3. forced STARTTLS: only a reply that echoes ``XXXXXXXX`` is conclusive;
4. split segment: ``NO`` then ``OP\\r\\n`` refused while ``NOOP\\r\\n`` works;
5. unknown-verb echo: a reply that echoes ``XXXXX`` for ``XYZZY``; ``HELP``
   refused suggests PIX Mailguard;
6. long line: a command over 512 bytes closes the connection with no reply
   while a 400-byte one is answered;
7. no ``ESMTP`` in the greeting although EHLO works.

Tests that pass cleanly count for a clean path (a split ``NOOP`` answered
``250`` is the strongest: an inspecting ASA cannot let it through).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sitemail.protocols.smtp.ehlo import ehlo_keyword
from sitemail.protocols.smtp.reply import reply_code, reply_text

#: What the probe sends as its EHLO name: a reserved domain, so that log rules can
#: tell the probe's own sessions from real traffic.
PROBE_HELO = "probe.sitemail.invalid"
UNKNOWN_VERB = "XYZZY"
#: A command line longer than the ASA's 512 bytes, and a control below it.
LONG_LINE_LENGTH = 600
MEDIUM_LINE_LENGTH = 400
ASA_CMD_LINE_MAX = 512

_BANNER_MASK_CHARS = frozenset("*20 \t")
_MASKED_KEYWORD = re.compile(r"X+[A-Z]")
_X_RUN = re.compile(r"X{4,}")

#: Keywords an inspecting firewall masks, by length: what a masked keyword stood for.
#: Exchange 2010's own (spec exchange-2010.md 2.2) first.  X-EXCHANGEAUTH is left out:
#: it is only offered inside anonymous TLS, where no firewall can read it.
MASKABLE_KEYWORDS = (
    "STARTTLS",
    "X-ANONYMOUSTLS",
    "X-EXPS",
    "CHUNKING",
    "XEXCH50",
    "XSHADOW",
    "XRDST",
    "XLONGADDR",
    "XORAR",
    "HELP",
    "SMTPUTF8",
    "X-LINK2STATE",
    "DELIVERBY",
    "TURN",
    "ATRN",
)


class Verdict(StrEnum):
    INSPECTED = "inspected"
    """Something on the path inspects and rewrites SMTP (Cisco ASA/PIX style)."""
    CLEAN = "clean"
    """No sign of inspection, and the active tests passed."""
    INCONCLUSIVE = "inconclusive"
    UNREACHABLE = "unreachable"
    """No TCP connection (refused, timed out, no route)."""
    NO_BANNER = "no-banner"
    """Connected, but closed (or silent) before any greeting."""
    REFUSED = "refused"
    """A greeting other than 220 (421, 554): the server does not take mail from here."""


@dataclass(slots=True)
class Exchange:
    """One command the probe sent and what came back."""

    sent: str
    reply: list[str] | None = None
    """Reply lines without CRLF; None when no complete reply came."""
    closed: bool = False
    """The connection closed instead of (or right after) the reply."""
    timed_out: bool = False

    @property
    def code(self) -> int | None:
        if not self.reply:
            return None
        return reply_code(self.reply[-1])

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "reply": self.reply,
            "closed": self.closed,
            "timed_out": self.timed_out,
        }


@dataclass(slots=True)
class ProbeTranscript:
    """What a probe did against one ``host:port`` (filled by the runner or by tests)."""

    target: str
    source: str | None = None
    connected: bool = False
    connect_error: str | None = None
    banner: list[str] | None = None
    banner_closed: bool = False
    ehlo: Exchange | None = None
    starttls: Exchange | None = None
    """Sent only when STARTTLS was not advertised (the forced STARTTLS test)."""
    unknown_verb: Exchange | None = None
    help: Exchange | None = None
    split_noop: Exchange | None = None
    noop: Exchange | None = None
    medium_line: Exchange | None = None
    long_line: Exchange | None = None
    quit_sent: bool = False
    elapsed: float = 0.0
    bytes_read: int = 0
    notes: list[str] = field(default_factory=list)

    def exchanges(self) -> list[tuple[str, Exchange]]:
        named = [
            ("ehlo", self.ehlo),
            ("starttls", self.starttls),
            ("unknown_verb", self.unknown_verb),
            ("help", self.help),
            ("split_noop", self.split_noop),
            ("noop", self.noop),
            ("medium_line", self.medium_line),
            ("long_line", self.long_line),
        ]
        return [(n, e) for n, e in named if e is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "source": self.source,
            "connected": self.connected,
            "connect_error": self.connect_error,
            "banner": self.banner,
            "banner_closed": self.banner_closed,
            **{name: ex.to_json() for name, ex in self.exchanges()},
            "quit_sent": self.quit_sent,
            "elapsed": round(self.elapsed, 3),
            "bytes_read": self.bytes_read,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Signal:
    """One observation and which way it points."""

    test: str
    points_to: str
    """``inspection``, ``clean`` or ``info``."""
    weight: float
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "points_to": self.points_to,
            "weight": self.weight,
            "text": self.text,
        }


@dataclass(slots=True)
class ProbeResult:
    transcript: ProbeTranscript
    verdict: Verdict
    confidence: float
    signals: list[Signal]
    masked_keywords: list[str] = field(default_factory=list)
    """Masked EHLO keywords as seen (``XXXXXXXA``), in reply order."""
    exchange_server: bool = False
    """The greeting or EHLO reply is an Exchange receive connector's."""

    @property
    def inspected(self) -> bool:
        return self.verdict is Verdict.INSPECTED

    def headline(self) -> str:
        return {
            Verdict.INSPECTED: "SMTP is inspected on this path (Cisco ASA/PIX ESMTP inspection)",
            Verdict.CLEAN: "no sign of SMTP inspection on this path",
            Verdict.INCONCLUSIVE: "the probe cannot tell whether SMTP is inspected on this path",
            Verdict.UNREACHABLE: "nothing answers on this port from here",
            Verdict.NO_BANNER: "the connection opens but closes before any greeting",
            Verdict.REFUSED: "the server answers but does not take mail from here",
        }[self.verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.transcript.target,
            "source": self.transcript.source,
            "verdict": self.verdict.value,
            "confidence": self.confidence,
            "headline": self.headline(),
            "masked_keywords": list(self.masked_keywords),
            "exchange_server": self.exchange_server,
            "signals": [s.to_json() for s in self.signals],
            "transcript": self.transcript.to_json(),
        }


# ------------------------------------------------------------------ single tests


def banner_text(line: str) -> str:
    """A greeting line without its ``220`` and separator."""
    return reply_text(line)


def is_masked_banner(lines: list[str]) -> bool:
    """Test 1: every text byte in ``* 2 0 SP TAB`` and at least four ``*``."""
    text = "".join(banner_text(line) for line in lines)
    return text.count("*") >= 4 and set(text) <= _BANNER_MASK_CHARS


def spaces_only_after_zero(lines: list[str]) -> bool:
    """The ASA keeps a space only after a ``0`` (the "0 SPACE" rule, §1.6)."""
    for line in lines:
        text = banner_text(line)
        for i, ch in enumerate(text):
            if ch == " " and (i == 0 or text[i - 1] != "0"):
                return False
    return True


def ehlo_keywords(reply: list[str]) -> list[str]:
    """The keyword of every EHLO reply line after the greeting line."""
    keywords = (ehlo_keyword(reply_text(line)) for line in reply[1:])
    return [keyword for keyword in keywords if keyword]


def masked_keywords(reply: list[str]) -> list[str]:
    """Test 2: keywords of the form ``X...X`` + one capital (``XXXXXXXA``)."""
    return [k for k in ehlo_keywords(reply) if len(k) >= 2 and _MASKED_KEYWORD.fullmatch(k)]


def unmask_candidates(masked: str) -> list[str]:
    """The keywords a masked one may have been (same length)."""
    return [k for k in MASKABLE_KEYWORDS if len(k) == len(masked)]


def echoes_x(reply: list[str] | None, length: int) -> bool:
    """The reply quotes a run of at least ``length`` X's (a masked command echoed back)."""
    if not reply:
        return False
    return any(len(m.group(0)) >= length for line in reply for m in _X_RUN.finditer(line))


def is_exchange(banner: list[str] | None, ehlo: list[str] | None) -> bool:
    if banner and any("Microsoft ESMTP MAIL Service" in line for line in banner):
        return True
    keywords = {k.upper() for k in ehlo_keywords(ehlo or [])}
    return bool(keywords & {"X-ANONYMOUSTLS", "X-EXPS", "XEXCH50", "XSHADOW", "XRDST"})


# ------------------------------------------------------------------ the verdict


def _describe_masked(masked: list[str]) -> str:
    parts = []
    for k in masked:
        cands = unmask_candidates(k)
        parts.append(f"{k} ({' or '.join(cands)})" if cands else k)
    return ", ".join(parts)


def _combine(weights: list[float]) -> float:
    """Independent signals: 1 - prod(1 - w)."""
    rest = 1.0
    for w in weights:
        rest *= 1.0 - w
    return round(1.0 - rest, 2)


def judge(t: ProbeTranscript) -> ProbeResult:
    """The verdict, its confidence and the signals behind it."""
    signals: list[Signal] = []
    if not t.connected:
        signals.append(
            Signal("connect", "info", 0.0, f"no TCP connection to {t.target}: {t.connect_error}")
        )
        return ProbeResult(t, Verdict.UNREACHABLE, 0.95, signals)
    if not t.banner:
        how = "closed the connection" if t.banner_closed else "sent nothing"
        signals.append(
            Signal(
                "banner",
                "info",
                0.0,
                f"TCP connected, but the far end {how} before any greeting (an Exchange "
                "server does this when no receive connector covers the client's address)",
            )
        )
        return ProbeResult(t, Verdict.NO_BANNER, 0.9, signals)
    exchange = is_exchange(t.banner, t.ehlo.reply if t.ehlo else None)
    if reply_code(t.banner[-1]) != 220:
        signals.append(Signal("banner", "info", 0.0, f"greeting {t.banner[-1]!r}"))
        return ProbeResult(t, Verdict.REFUSED, 0.9, signals, exchange_server=exchange)

    _banner_tests(t.banner, t.ehlo, signals)
    masked = _ehlo_tests(t, signals)
    _active_tests(t, signals)

    inspection = [s.weight for s in signals if s.points_to == "inspection"]
    clean = [s.weight for s in signals if s.points_to == "clean"]
    strong = max(inspection, default=0.0)
    # One strong sign convicts; weak ones only together and unopposed.
    weak_together = bool(inspection) and _combine(inspection) >= 0.6 and _combine(clean) < 0.5
    if strong >= 0.8 or weak_together:
        verdict, confidence = Verdict.INSPECTED, _combine(inspection)
    elif not inspection and _combine(clean) >= 0.5:
        verdict, confidence = Verdict.CLEAN, _combine(clean)
    else:
        verdict = Verdict.INCONCLUSIVE
        confidence = round(abs(_combine(inspection) - _combine(clean)), 2)
    _tool_outputs(t, masked, signals)
    return ProbeResult(t, verdict, confidence, signals, masked, exchange)


def _banner_tests(banner: list[str], ehlo: Exchange | None, signals: list[Signal]) -> None:
    shown = " / ".join(banner)
    if is_masked_banner(banner):
        rule = (
            "; spaces survive only after a 0, as the ASA's mask-banner leaves them"
            if spaces_only_after_zero(banner)
            else ""
        )
        signals.append(
            Signal(
                "banner-charset",
                "inspection",
                0.9,
                f"greeting masked: {shown!r} is all '*', '2', '0' and spaces{rule}",
            )
        )
        return
    text = "".join(banner_text(line) for line in banner)
    if any(ch.isalpha() for ch in text):
        signals.append(Signal("banner-charset", "clean", 0.4, f"greeting readable: {shown!r}"))
    if "ESMTP" not in text.upper() and ehlo is not None and ehlo.code == 250:
        signals.append(
            Signal(
                "banner-esmtp",
                "inspection",
                0.2,
                "no ESMTP in the greeting although EHLO is answered 250 (weak: many "
                "servers never say ESMTP)",
            )
        )


def _ehlo_tests(t: ProbeTranscript, signals: list[Signal]) -> list[str]:
    ehlo = t.ehlo
    if ehlo is None or ehlo.reply is None or ehlo.code != 250:
        got = "no reply" if ehlo is None or ehlo.reply is None else repr(ehlo.reply[-1])
        signals.append(Signal("ehlo", "info", 0.0, f"EHLO not accepted: {got}"))
        return []
    masked = masked_keywords(ehlo.reply)
    keywords = [k.upper() for k in ehlo_keywords(ehlo.reply)]
    if masked:
        several = " (several: inspection masks every keyword it does not know)"
        signals.append(
            Signal(
                "ehlo-masked",
                "inspection",
                0.95,
                f"EHLO reply has masked keywords {_describe_masked(masked)}"
                + (several if len(masked) > 1 else ""),
            )
        )
        lost = {c for k in masked for c in unmask_candidates(k)}
        if {"X-ANONYMOUSTLS", "X-EXPS"} & lost:
            signals.append(
                Signal(
                    "exchange-auth",
                    "info",
                    0.0,
                    "X-ANONYMOUSTLS and X-EXPS cannot pass this path: an Exchange hub "
                    "sending here fails with 451 5.7.3 Cannot achieve Exchange Server "
                    "authentication",
                )
            )
    else:
        signals.append(
            Signal("ehlo-masked", "clean", 0.3, f"EHLO keywords unmasked: {' '.join(keywords)}")
        )
        if "STARTTLS" not in keywords:
            signals.append(
                Signal(
                    "starttls-absent",
                    "info",
                    0.0,
                    "STARTTLS not offered, and not masked: the server does not offer it, or a "
                    "proxy deletes the line (F-Secure-style) rather than masking it",
                )
            )
        if is_exchange(t.banner, ehlo.reply) and "X-ANONYMOUSTLS" not in keywords:
            signals.append(
                Signal(
                    "exchange-auth",
                    "info",
                    0.0,
                    "an Exchange server that offers no X-ANONYMOUSTLS here: the receive "
                    "connector this client lands on has no ExchangeServer authentication",
                )
            )
    return masked


def _active_tests(t: ProbeTranscript, signals: list[Signal]) -> None:
    st = t.starttls
    if st is not None and st.reply is not None:
        if echoes_x(st.reply, 8):
            signals.append(
                Signal(
                    "forced-starttls",
                    "inspection",
                    0.95,
                    f"STARTTLS sent anyway came back echoed as X's: {st.reply[-1]!r}",
                )
            )
        else:
            signals.append(
                Signal(
                    "forced-starttls",
                    "info",
                    0.0,
                    f"STARTTLS sent anyway: {st.reply[-1]!r} (no echo: not conclusive)",
                )
            )
    uv = t.unknown_verb
    if uv is not None and uv.reply is not None:
        if echoes_x(uv.reply, len(UNKNOWN_VERB)):
            signals.append(
                Signal(
                    "unknown-verb",
                    "inspection",
                    0.8,
                    f"{UNKNOWN_VERB} reached the server masked: {uv.reply[-1]!r}",
                )
            )
        elif UNKNOWN_VERB in " ".join(uv.reply):
            signals.append(Signal("unknown-verb", "clean", 0.3, f"{UNKNOWN_VERB} echoed intact"))
    hp = t.help
    if hp is not None and hp.code is not None and hp.code >= 500:
        signals.append(
            Signal(
                "help",
                "info",
                0.0,
                f"HELP refused ({hp.reply[-1] if hp.reply else ''!r}): PIX Mailguard refuses "
                "HELP; so do servers that do not implement it",
            )
        )
    sp, ctl = t.split_noop, t.noop
    if sp is not None and ctl is not None and ctl.code == 250:
        if sp.reply is not None and sp.code is not None and sp.code >= 500:
            signals.append(
                Signal(
                    "split-segment",
                    "inspection",
                    0.9,
                    f"NOOP sent in two segments ('NO' + 'OP') was refused ({sp.reply[-1]!r}) "
                    "while NOOP in one segment is answered 250: each segment is judged alone",
                )
            )
        elif sp.code == 250:
            signals.append(
                Signal(
                    "split-segment",
                    "clean",
                    0.8,
                    "NOOP sent in two segments answered 250: nothing judges segments alone",
                )
            )
    ml, ll = t.medium_line, t.long_line
    if ll is not None:
        medium_ok = ml is None or (ml.reply is not None and not ml.closed)
        if ll.reply is None and (ll.closed or ll.timed_out) and medium_ok:
            signals.append(
                Signal(
                    "long-line",
                    "inspection",
                    0.6,
                    f"a {LONG_LINE_LENGTH}-byte command line ended the connection with no "
                    f"reply, while a {MEDIUM_LINE_LENGTH}-byte one is answered (the ASA drops "
                    f"command lines over {ASA_CMD_LINE_MAX} bytes)",
                )
            )
        elif ll.reply is not None:
            signals.append(
                Signal(
                    "long-line",
                    "clean",
                    0.4,
                    f"a {LONG_LINE_LENGTH}-byte command line is answered: {ll.reply[-1]!r}",
                )
            )


def _tool_outputs(t: ProbeTranscript, masked: list[str], signals: list[Signal]) -> None:
    """What tools admins know would say about the same path (§8 item 10)."""
    said = []
    if t.banner and is_masked_banner(t.banner):
        said += [
            'nmap: "Cisco PIX sanitized smtpd"',
            'Postfix: "enabling PIX workarounds"',
            'MXToolbox: "Masked External Banner"',
        ]
    keywords = {k.upper() for k in ehlo_keywords(t.ehlo.reply or [])} if t.ehlo else set()
    if t.ehlo is not None and t.ehlo.code == 250 and "STARTTLS" not in keywords:
        said += [
            'swaks: "*** Host did not advertise STARTTLS" (exit 29)',
            'testssl.sh: "No STARTTLS found in handshake"',
        ]
    if said:
        signals.append(Signal("tools", "info", 0.0, "other tools would report: " + "; ".join(said)))
