"""What the ASA console accepts as typed input, and how text reaches a terminal safely.

The ASA takes printable ASCII on its console; a name it stores has limits
(ASA 9.x configuration guide): a ``hostname`` is up to 63 letters, digits and
hyphens, beginning and ending with a letter or digit; the name of a
policy-map, class-map, inspect map, service policy or access-list is up to
40 characters.  Anything else gets the ``^`` marker under the offending word
and :data:`~sitemail.firewall.asa_cli_text.INVALID_INPUT`, as the ASA answers
a bad argument.

Whatever the console prints (the echo of a line, the answer, the prompt) and
whatever the firewall logs goes through :func:`terminal_safe`, so a control
character (ESC, CR, BEL, C1 controls, bidirectional overrides) is shown as an
escape (``\\x1b``) and never acts on the terminal or the log reader's screen.
"""

from __future__ import annotations

import re

from sitemail.firewall.asa_cli_grammar import ARG, Matched

__all__ = [
    "MAX_HOSTNAME",
    "MAX_NAME",
    "bad_argument",
    "bad_character",
    "terminal_safe",
]

MAX_HOSTNAME = 63
MAX_NAME = 40
# The keyword before a free word that names a map or list (the name follows it).
NAME_KEYWORDS = frozenset(
    {"policy-map", "class-map", "esmtp", "class", "service-policy", "access-list"}
)
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
# A tab acts on no terminal but to move the cursor, and the ASA's own output has them
# (between the offset, the hex and the text of ``show capture NAME dump``).
_UNPRINTABLE_BUT_LINES = re.compile(r"[^\x20-\x7e\n\t]")


def bad_character(line: str) -> int | None:
    """Column of the first character of ``line`` that is not printable ASCII, if any."""
    found = _UNPRINTABLE.search(line)
    return found.start() if found else None


def bad_argument(found: Matched) -> int | None:
    """Column of the first free word of ``found`` that breaks the ASA's limits, if any."""
    for i, element in enumerate(found.path):
        if element != ARG or i == 0:
            continue
        keyword = found.path[i - 1]
        value = found.args[found.path[:i].count(ARG)]
        if keyword == "hostname" and not _HOSTNAME.fullmatch(value):
            return found.columns[i]
        if keyword in NAME_KEYWORDS and len(value) > MAX_NAME:
            return found.columns[i]
    return None


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str, *, lines: bool = False) -> str:
    """``text`` with every character but printable ASCII escaped (with ``lines``, output of
    several lines: but printable ASCII, ``\\n`` and ``\\t``)."""
    pattern = _UNPRINTABLE_BUT_LINES if lines else _UNPRINTABLE
    return pattern.sub(_escape, text)
