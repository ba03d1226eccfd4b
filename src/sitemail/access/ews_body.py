"""An item's body in the BodyType a request's shape asks for (``Best``, ``HTML``, ``Text``).

Exchange keeps a message's body in the form it was written and converts it
when a client asks for the other one: ``Text`` of an HTML body is the text
a reader sees, one line per block (paragraph, line break, list item, table
row), the lines ending in CRLF, as Exchange's text conversion gives them
(exchangelib's live test reads ``Hello HTML\\r\\n`` for
``<html><body>Hello HTML</body></html>``).  ``Best`` (the default) and
``HTML`` give the body as it is: sitemail does not make HTML of a text body
(unverified how Exchange 2010 wraps one, so nothing is invented).
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from sitemail.access.ews_soap import m, t

__all__ = [
    "BODY_TYPES",
    "MAX_HTML",
    "bodies_in_body_type",
    "body_type",
    "html_to_text",
    "in_body_type",
]

BODY_TYPES = ("Best", "HTML", "Text")
#: The most HTML converted (the rest is left out): a body larger than this is no body a
#: client reads as text.
MAX_HTML = 2 * 1024 * 1024
#: Elements whose content is not text a reader sees.
_HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template"})
#: Elements that start and end a line of text.
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "dd",
        "div",
        "dl",
        "dt",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tr",
        "ul",
    }
)


def body_type(shape: ET.Element | None) -> str:
    """The BodyType a shape (ItemShape, AttachmentShape) asks for; ``Best`` when none."""
    if shape is None:
        return "Best"
    wanted = (shape.findtext(t("BodyType")) or "Best").strip()
    return wanted if wanted in BODY_TYPES else "Best"


def in_body_type(text: str, html: bool, wanted: str) -> tuple[str, bool]:
    """The body ``text`` (HTML when ``html``) as ``wanted`` asks: the text and whether it is
    HTML."""
    if html and wanted == "Text":
        return html_to_text(text), False
    return text, html


def bodies_in_body_type(answer: ET.Element, request: ET.Element) -> ET.Element:
    """``answer`` (GetItem's, SyncFolderItems') with its items' bodies in the BodyType the
    request's ItemShape asks for."""
    wanted = body_type(request.find(m("ItemShape")))
    if wanted != "Text":
        return answer
    for body in answer.iter(t("Body")):
        if body.get("BodyType") == "HTML":
            text, _ = in_body_type(body.text or "", True, wanted)
            body.text = text or None
            body.set("BodyType", "Text")
    return answer


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.hidden = 0
        self.pre = 0

    def _end_line(self, *, blank_too: bool = False) -> None:
        text = "".join(self.line)
        if not self.pre:
            text = " ".join(text.split())
        if text or blank_too:
            self.lines.append(text)
        self.line = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self._end_line(blank_too=True)
        elif tag in _BLOCKS:
            self._end_line()
            if tag == "pre":
                self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self._end_line()
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            first, *rest = data.split("\n")
            self.line.append(first)
            for part in rest:
                self._end_line(blank_too=True)
                self.line.append(part)
        else:
            self.line.append(data)


def html_to_text(source: str) -> str:
    """The text of an HTML body: a line per block, each ending in CRLF."""
    parser = _Text()
    with contextlib.suppress(Exception):  # html.parser is lenient, but the input is hostile
        parser.feed(source[:MAX_HTML])
        parser.close()
    parser._end_line()
    return "".join(line + "\r\n" for line in parser.lines)
