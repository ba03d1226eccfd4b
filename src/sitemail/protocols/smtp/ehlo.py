"""The EHLO (or LHLO) reply as keyword -> parameters (RFC 5321 §4.1.1.1).

The first line is the greeting (``EX02.contoso.com Hello [10.1.0.11]``);
every further line is one service extension, a keyword and its
space-separated parameters::

    250-AUTH NTLM LOGIN             -> "AUTH": ("NTLM", "LOGIN")
    250-X-EXPS EXCHANGEAUTH GSSAPI  -> "X-EXPS": ("EXCHANGEAUTH", "GSSAPI")
    250 XXXXXXXA                    -> "XXXXXXXA": ()   (an ASA-masked keyword)

Keywords are upper-cased; the order of the reply is kept because the order
itself is evidence (Exchange 2010's fixed order, a firewall's masking).  The
keyword and its parameters are separated by SP only (``ehlo-line =
ehlo-keyword *( SP ehlo-param )``): ``AUTH<TAB>LOGIN`` is one unknown keyword,
to the hub sender, to the log readers and to the ASA, which masks it.
:func:`ehlo_keyword_span` is the bytes form for the firewall, which rewrites
keywords in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .reply import Reply
from .text import ascii_upper, strip_eol_bytes


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


def ehlo_keyword(text: str) -> str:
    """The keyword of one EHLO reply line's text, as sent: up to the first SP.

    A text that starts with a space has the empty keyword, as
    :func:`ehlo_keyword_span` reads it on the wire.
    """
    return text.partition(" ")[0]


def split_ehlo_line(text: str) -> tuple[str, tuple[str, ...]]:
    """The :func:`ehlo_keyword` and the parameters of one EHLO reply line's text.

    ``"SIZE 10485760"`` gives ``("SIZE", ("10485760",))``; between parameters
    a run of spaces counts as one.
    """
    keyword, _, rest = text.partition(" ")
    return keyword, tuple(param for param in rest.split(" ") if param)


def greeting_domain(text: str) -> str:
    """The first word of a greeting's or an EHLO reply's first line: the server's name.

    ``220 EX02.contoso.com Microsoft ESMTP ...`` and ``250-EX02.contoso.com Hello
    [10.1.0.11]`` both name ``EX02.contoso.com`` there (RFC 5321 §4.2, §4.1.1.1).
    """
    return text.partition(" ")[0]


def ehlo_keyword_span(line: bytes) -> tuple[int, int] | None:
    """Where the keyword of a raw EHLO reply line (``250-SIZE 1000\\r\\n``) is, or None.

    The keyword starts after the code and its separator and ends at the first
    SP or the line end; a line with no keyword there gives None.
    """
    end = line.find(b" ", 4)
    if end < 0:
        end = len(strip_eol_bytes(line))
    return (4, end) if end > 4 else None


def parse_ehlo_reply(reply: Reply) -> EhloReply:
    """Split a (positive) EHLO/LHLO reply into greeting and keywords; never raises."""
    out = EhloReply(reply.lines[0])
    for line in reply.lines[1:]:
        keyword, params = split_ehlo_line(line)
        if keyword:
            out.keywords.setdefault(ascii_upper(keyword), params)
    return out
