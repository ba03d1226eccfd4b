"""The ESMTP inspection policy: every knob the inspection engine obeys.

One :class:`EsmtpPolicy` describes what an ASA does to one SMTP connection.
Its defaults are the ASA's hidden ``_default_esmtp_map`` (specs/asa-esmtp.md
§1.2, §7.1).  The parts an administrator can change on a real ASA (parameters
and match rules of ``policy-map type inspect esmtp``) are filled in from the
running configuration by :func:`sitemail.firewall.asa_config.AsaConfig.esmtp_policy`;
the rest are emulator knobs (PIX modes, masking details the spec marks
unverified) that a lab can set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

Mode = Literal["asa", "pix51", "pix44"]
UnknownCommandAction = Literal["x-mask", "noop", "fake-ok"]
RuleAction = Literal["drop-connection", "reset", "mask", "log"]
SuffixPolicy = Literal["A", "sequence"]
AddressAction = Literal["drop-connection", "log"]

#: RFC 821 §4.5.1 minimum set plus the eight extended verbs the ASA passes (§1.4).
ASA_ALLOWED_VERBS = frozenset(
    {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"}
    | {"AUTH", "ETRN", "HELP", "SAML", "SEND", "SOML", "VRFY"}
)
#: PIX Mailguard: only the seven RFC 821 commands (§2).
PIX_ALLOWED_VERBS = frozenset({"HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"})

#: EHLO keywords that pass; the exact list is unverified on hardware (§1.7), so it is a knob.
ASA_EHLO_KNOWN_KEYWORDS = frozenset(
    {"8BITMIME", "AUTH", "BINARYMIME", "DSN", "ENHANCEDSTATUSCODES", "ETRN", "PIPELINING"}
    | {"SIZE", "VRFY"}
)

#: The name `match ehlo-reply-parameter` uses for each known keyword (CLI value list, [unv]).
EHLO_PARAMETER_NAMES: dict[str, str] = {
    "8BITMIME": "8bitmime",
    "AUTH": "auth",
    "BINARYMIME": "binarymime",
    "CHECKPOINT": "checkpnt",
    "DSN": "dsn",
    "ENHANCEDSTATUSCODES": "ecode",
    "ETRN": "etrn",
    "PIPELINING": "pipelining",
    "SIZE": "size",
    "VRFY": "vrfy",
}


@dataclass(frozen=True)
class Outcome:
    """What one match rule of an inspect map does, and how syslog names it."""

    action: RuleAction  # "log" means log only
    log: bool = False
    class_id: int = 0  # 1-based position in its map: syslog says "matched Class N"
    criterion: str = ""  # as the running config prints it, e.g. "header line length gt 998"


@dataclass(frozen=True)
class LimitRule:
    """``match ... gt <threshold>`` with its action."""

    threshold: int
    outcome: Outcome


@dataclass(frozen=True)
class NameRule:
    """``match ehlo-reply-parameter NAME...`` or ``match cmd verb VERB...`` with its action."""

    names: frozenset[str]
    outcome: Outcome


@dataclass(frozen=True)
class MailRelay:
    """``mail-relay DOMAIN action ...``: recipients outside DOMAIN are a relay attempt."""

    domain: str
    action: AddressAction


@dataclass(frozen=True)
class SyslogSettings:
    """Message IDs and wording of the syslog lines the engine writes.

    108004 and 507003 are observed verbatim (spec §1.12).  Everything marked
    [unv] is from memory only (spec §9) and therefore a setting.
    """

    classification: str = "%ASA-4-108004"
    flow_terminated: str = "%ASA-4-507003"
    log_flow_terminated: bool = True  # 507003 follows 108004 in the observed log [obs]
    # [unv] 108002: an address character was replaced (level 2 from memory).
    address_char_replaced: str = "%ASA-2-108002"
    # [unv] 108003: connection ended because of a bad pattern in an address.
    address_pattern_dropped: str = "%ASA-2-108003"
    # [unv] 108007: TLS started on an inspected session (allow-tls action log).
    tls_started: str = "%ASA-6-108007"
    dropped_connection_words: str = "Dropped connection for"  # observed
    reset_connection_words: str = "Reset connection for"  # [unv]
    masked_words: str = "Masked header flags for"  # [unv]
    logged_words: str = "Logged for"  # [unv]


def _rule(threshold: int, action: RuleAction, log: bool, class_id: int, text: str) -> LimitRule:
    return LimitRule(threshold, Outcome(action, log, class_id, text))


# The rules of _default_esmtp_map in its order (§1.2): class N is the Nth match.
DEFAULT_CMD_LINE = _rule(512, "drop-connection", True, 1, "cmd line length gt 512")
DEFAULT_RCPT_COUNT = _rule(100, "drop-connection", True, 2, "cmd RCPT count gt 100")
DEFAULT_BODY_LINE = _rule(998, "log", True, 3, "body line length gt 998")
DEFAULT_HEADER_LINE = _rule(998, "drop-connection", True, 4, "header line length gt 998")
DEFAULT_SENDER_ADDRESS = _rule(320, "drop-connection", True, 5, "sender-address length gt 320")
DEFAULT_MIME_FILENAME = _rule(255, "drop-connection", True, 6, "MIME filename length gt 255")
DEFAULT_EHLO_OTHERS = NameRule(
    frozenset({"others"}), Outcome("mask", False, 7, "ehlo-reply-parameter others")
)


@dataclass(frozen=True)
class EsmtpPolicy:
    """Everything one inspection engine obeys; defaults = ``_default_esmtp_map``."""

    map_name: str = "_default_esmtp_map"
    mode: Mode = "asa"
    # Banner (§1.6): keep "2", "0" and a space after "0"; CR/LF and the code are never touched.
    mask_banner: bool = True
    banner_keep_chars: bytes = b"20"
    banner_keep_space_after0: bool = True
    # TLS (§1.8).
    allow_tls: bool = False
    allow_tls_log: bool = False
    # Commands (§1.4).
    allowed_verbs: frozenset[str] = ASA_ALLOWED_VERBS
    unknown_command_action: UnknownCommandAction = "x-mask"
    x_mask_keep_space: bool = True  # [obs EPOST] "XXXX XXXXXXXXX"
    per_segment_checks: bool = True  # [C-113423] each segment judged alone
    fake_ok_reply: bytes = b"250 OK\r\n"  # PIX 4.x answers denied commands itself
    verb_rules: tuple[NameRule, ...] = ()
    # EHLO reply (§1.7).
    ehlo_known_keywords: frozenset[str] = ASA_EHLO_KNOWN_KEYWORDS
    ehlo_rules: tuple[NameRule, ...] = (DEFAULT_EHLO_OTHERS,)
    ehlo_mask_suffix: SuffixPolicy = "A"  # [unv] "sequence" gives A, B, C ... per reply
    ehlo_mask_params: bool = False  # [unv] mask only the keyword
    # Limits (§1.2), numbered as in the default map so syslog names the right class.
    cmd_line_max: LimitRule | None = DEFAULT_CMD_LINE
    rcpt_max: LimitRule | None = DEFAULT_RCPT_COUNT
    body_line_max: LimitRule | None = DEFAULT_BODY_LINE
    header_line_max: LimitRule | None = DEFAULT_HEADER_LINE
    sender_addr_max: LimitRule | None = DEFAULT_SENDER_ADDRESS
    mime_filename_max: LimitRule | None = DEFAULT_MIME_FILENAME
    header_length_max: LimitRule | None = None
    body_length_max: LimitRule | None = None
    # Address checks (§1.10), off by default.
    special_character: AddressAction | None = None
    special_characters: bytes = b"|"
    mail_relay: MailRelay | None = None
    # PIX bug CSCds90792: "." and CRLF in separate segments are swallowed (§1.3).
    pix_dotcrlf_bug: bool = False
    # Emulator bound, not an ASA fact: a server line longer than this is passed on unbuffered.
    reply_line_buffer_max: int = 8192
    # Emulator bound: an accepted command line with no length rule is streamed past this.
    command_buffer_max: int = 65536
    syslog: SyslogSettings = field(default_factory=SyslogSettings)

    @classmethod
    def pix51(cls) -> EsmtpPolicy:
        """PIX 5.1-6.2 Mailguard: 7 verbs, others turned into NOOP of the same length."""
        return _pix(cls(), "pix51", "noop")

    @classmethod
    def pix44(cls) -> EsmtpPolicy:
        """PIX 4.x Mailguard: banner all asterisks, denied commands answered ``250 OK``."""
        return _pix(cls(), "pix44", "fake-ok")


def _pix(base: EsmtpPolicy, mode: Mode, action: UnknownCommandAction) -> EsmtpPolicy:
    # The PIX had no ESMTP maps: no EHLO masking rules and no documented limits.
    return replace(
        base,
        mode=mode,
        unknown_command_action=action,
        map_name="",
        allowed_verbs=PIX_ALLOWED_VERBS,
        ehlo_rules=(),
        cmd_line_max=None,
        rcpt_max=None,
        body_line_max=None,
        header_line_max=None,
        sender_addr_max=None,
        mime_filename_max=None,
    )
