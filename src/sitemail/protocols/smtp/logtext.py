"""What the protocol log writes for SMTP lines (spec §4.3).

Each reply line is its own ``>``/``<`` row, and authentication data is
never logged: the replies ``334 <blob>`` and ``235 <blob>`` become
``334 <authentication information>`` / ``235 <authentication information>``
and ``X-EXPS EXCHANGEAUTH SHA256 <blob>`` becomes
``X-EXPS EXCHANGEAUTH SHA256 `` (trailing space kept, as Exchange writes it).
The same rules serve the receive side (events' ``log_text``) and the send
side (:func:`command_log_text` on the line we wrote).
"""

from __future__ import annotations

from .command import parse_command_line
from .events import AUTH_REDACTED
from .reply import Reply
from .text import strip_eol

_AUTH_CODES = frozenset({334, 235})


def reply_log_lines(reply: Reply, *, redact_auth: bool = True) -> list[str]:
    """One string per wire line; 334/235 texts replaced by ``<authentication information>``.

    334 and 235 occur only inside AUTH/X-EXPS exchanges, so the code alone
    tells when to redact.  Whether Exchange also hides the text of a plain
    ``235 2.7.0 Authentication successful`` is not documented; redaction is
    on for both by default (safer) and can be switched off.
    """
    if redact_auth and reply.code in _AUTH_CODES:
        return [f"{reply.code} {AUTH_REDACTED}"]
    return reply.wire_lines()


def command_log_text(line: str, *, in_auth_exchange: bool = False) -> str:
    """The log text for a command line we sent (or received, without an event at hand).

    ``in_auth_exchange`` marks a SASL continuation line, which is replaced
    entirely.  AUTH and X-EXPS keep the mechanism (and X-EXPS's hash name)
    and lose the blob.
    """
    line = strip_eol(line)
    if in_auth_exchange:
        return AUTH_REDACTED
    cmd = parse_command_line(line)
    words = cmd.argument.split()
    if cmd.verb == "AUTH" and words:
        keep = 1
    elif cmd.verb == "X-EXPS" and words:
        keep = 2 if words[0].upper() == "EXCHANGEAUTH" else 1
    else:
        return line
    if len(words) <= keep:
        return line
    return f"{cmd.verb} {' '.join(words[:keep])} "
