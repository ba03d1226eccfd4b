"""The EHLO (or LHLO) reply as keyword -> parameters (RFC 5321 §4.1.1.1).

The first line is the greeting (``EX02.contoso.com Hello [10.1.0.11]``);
every further line is one service extension, a keyword and its
space-separated parameters::

    250-AUTH NTLM LOGIN             -> "AUTH": ("NTLM", "LOGIN")
    250-X-EXPS EXCHANGEAUTH GSSAPI  -> "X-EXPS": ("EXCHANGEAUTH", "GSSAPI")
    250 XXXXXXXA                    -> "XXXXXXXA": ()   (an ASA-masked keyword)

Keywords are upper-cased; the order of the reply is kept because the order
itself is evidence (Exchange 2010's fixed order, a firewall's masking).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .reply import Reply


@dataclass(slots=True)
class EhloReply:
    """A parsed EHLO reply."""

    greeting: str
    """Text of the first line."""
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Keyword -> parameters, in the order the server sent them (first wins on repeats)."""

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self.keywords

    def params(self, keyword: str) -> tuple[str, ...]:
        """Parameters of ``keyword`` (empty if absent or bare)."""
        return self.keywords.get(keyword.upper(), ())

    def has(self, keyword: str, param: str | None = None) -> bool:
        """Is ``keyword`` offered (and, if given, with ``param`` among its parameters)?

        ``has("X-EXPS", "EXCHANGEAUTH")`` is the question the hub sender asks.
        """
        key = keyword.upper()
        if key not in self.keywords:
            return False
        return param is None or param.upper() in (p.upper() for p in self.keywords[key])


def parse_ehlo_reply(reply: Reply) -> EhloReply:
    """Split a (positive) EHLO/LHLO reply into greeting and keywords; never raises."""
    out = EhloReply(reply.lines[0])
    for line in reply.lines[1:]:
        tokens = line.split()
        if not tokens:
            continue
        out.keywords.setdefault(tokens[0].upper(), tuple(tokens[1:]))
    return out
