"""Making a message's HTML safe to show inside OWA (what OWA's "safe HTML" filter does).

A message body is written by whoever sent the mail, so it is treated as
hostile: the output keeps text and simple formatting and nothing that can
run code, load anything from the network, or look like part of OWA.

- Elements on an allow-list are kept (paragraphs, lists, tables, emphasis,
  links); a short deny-list (``script``, ``style``, ``iframe``, ``object``,
  ``svg``, ``template``, form controls ...) is dropped *with* its content;
  anything else is dropped and its text kept.
- Attributes are on a per-purpose allow-list and their values are checked:
  no ``style`` (CSS can load URLs), no event handlers, no ``id``/``class``.
- Links keep ``http``, ``https`` and ``mailto`` targets only, open in a new
  window and send no referrer; every other scheme (``javascript:``,
  ``data:``, ``vbscript:``, and tricks such as ``java\\tscript:``) loses its href.
- Images never load: ``<img>`` becomes its alt text in brackets, as OWA
  shows a blocked picture.  Remote content is the "web beacon" OWA blocks.

The output is well-formed (every kept element closed in order) and is also
protected by the pages' Content-Security-Policy, which forbids scripts and
remote loads should anything slip through.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from sitemail.access.web.html import Markup, escape

__all__ = ["MAX_HTML_INPUT", "sanitize_html", "text_to_html"]

#: The longest HTML body shown (characters); the rest is cut, with a note.
MAX_HTML_INPUT = 2 * 1024 * 1024
#: How deep kept elements may nest (a million nested divs must not make a huge page).
MAX_DEPTH = 100

_KEEP = frozenset(
    {
        "a",
        "abbr",
        "address",
        "b",
        "bdi",
        "bdo",
        "big",
        "blockquote",
        "br",
        "caption",
        "center",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "font",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "u",
        "ul",
        "var",
    }
)
# Dropped together with everything inside them.
_DROP_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "head",
        "title",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "noscript",
        "noframes",
        "template",
        "svg",
        "math",
        "textarea",
        "select",
        "option",
        "button",
        "audio",
        "video",
        "canvas",
        "xml",
    }
)
# HTML's void elements: they never have content, so dropping one drops nothing after it.
_VOID = frozenset(
    {"br", "hr", "col", "img", "input", "meta", "link", "area", "base", "wbr", "embed", "frame"}
    | {"param", "source", "track", "keygen"}
)

_GLOBAL_ATTRS = frozenset({"title", "dir", "lang", "align", "valign"})
_TAG_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href"}),
    "font": frozenset({"color", "size", "face"}),
    "table": frozenset({"border", "cellpadding", "cellspacing", "width", "bgcolor"}),
    "td": frozenset({"colspan", "rowspan", "width", "height", "bgcolor", "nowrap"}),
    "th": frozenset({"colspan", "rowspan", "width", "height", "bgcolor", "nowrap"}),
    "tr": frozenset({"bgcolor"}),
    "col": frozenset({"span", "width"}),
    "colgroup": frozenset({"span", "width"}),
    "ol": frozenset({"start", "type"}),
    "li": frozenset({"value"}),
    "hr": frozenset({"width", "size", "noshade"}),
}
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})

_COLOR = re.compile(r"#?[0-9A-Za-z]{1,20}")
_LENGTH = re.compile(r"[0-9]{1,5}%?")
_WORDS = re.compile(r"[0-9A-Za-z ,._-]{0,100}")
_BOOLEAN = frozenset({"nowrap", "noshade"})
# Characters a browser ignores inside a URL scheme ("java\tscript:" is javascript:).
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")


def _clean_href(value: str) -> str | None:
    url = _URL_NOISE.sub("", value)
    if not url:
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if scheme not in _SAFE_SCHEMES:
        # A relative link means nothing in a mail; an unknown scheme may run code.
        return None
    return url


def _clean_value(name: str, value: str | None) -> str | None:
    if name in _BOOLEAN:
        return name
    if value is None:
        return None
    text = value.strip()
    if name in ("color", "bgcolor"):
        return text if _COLOR.fullmatch(text) else None
    if name in ("width", "height", "border", "cellpadding", "cellspacing", "colspan", "rowspan"):
        return text if _LENGTH.fullmatch(text) else None
    if name in ("size", "start", "value", "span"):
        return text if re.fullmatch(r"[+-]?[0-9]{1,4}", text) else None
    if name in ("face", "type", "align", "valign", "dir", "lang"):
        return text if _WORDS.fullmatch(text) else None
    if name == "title":
        return text[:500]
    return None


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []  # kept elements, innermost last
        self.skip: list[str] = []  # dropped-with-content elements we are inside

    # -- parser callbacks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if self.skip:
            if tag in _DROP_WITH_CONTENT and tag not in _VOID:
                self.skip.append(tag)
            return
        if tag in _DROP_WITH_CONTENT:
            if tag not in _VOID:
                self.skip.append(tag)
            return
        if tag == "img":
            self._image(attrs)
            return
        if tag not in _KEEP:
            return
        if tag not in _VOID and len(self.open) >= MAX_DEPTH:
            return
        self.out.append(self._open_tag(tag, attrs))
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if self.skip or tag in _DROP_WITH_CONTENT:
            return
        if tag == "img":
            self._image(attrs)
        elif tag in _KEEP and tag in _VOID:
            self.out.append(self._open_tag(tag, attrs))
        elif tag in _KEEP and len(self.open) < MAX_DEPTH:
            self.out.append(self._open_tag(tag, attrs) + f"</{tag}>")

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if self.skip:
            if tag in self.skip:
                # Unwind to it: an unclosed <script> inside <title> must not swallow the rest.
                while self.skip.pop() != tag:
                    pass
            return
        if tag not in self.open:
            return
        # Close everything opened inside it, so the output stays well-formed.
        while self.open:
            inner = self.open.pop()
            self.out.append(f"</{inner}>")
            if inner == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(escape(data))

    # Comments, declarations, processing instructions and CDATA are dropped
    # (HTMLParser's defaults already ignore them; conditional comments included).

    # -- helpers

    def _image(self, attrs: list[tuple[str, str | None]]) -> None:
        alt = next((v for k, v in attrs if k.lower() == "alt" and v), "")
        if alt.strip():
            self.out.append(escape(f"[{alt.strip()[:200]}]"))

    def _open_tag(self, tag: str, attrs: list[tuple[str, str | None]]) -> str:
        allowed = _GLOBAL_ATTRS | _TAG_ATTRS.get(tag, frozenset())
        kept: dict[str, str] = {}
        for raw_name, raw_value in attrs:
            name = raw_name.lower()
            if name not in allowed or name in kept:
                continue
            if name == "href":
                value = _clean_href(raw_value or "")
            else:
                value = _clean_value(name, raw_value)
            if value is not None:
                kept[name] = value
        if tag == "a" and "href" in kept:
            kept["target"] = "_blank"
            kept["rel"] = "noopener noreferrer"
        text = "".join(f' {k}="{escape(v)}"' for k, v in kept.items())
        return f"<{tag}{text}>"

    def result(self) -> str:
        closing = "".join(f"</{t}>" for t in reversed(self.open))
        return "".join(self.out) + closing


def sanitize_html(source: str) -> Markup:
    """``source`` (a message's HTML body) reduced to safe, well-formed markup."""
    truncated = len(source) > MAX_HTML_INPUT
    parser = _Sanitizer()
    parser.feed(source[:MAX_HTML_INPUT])
    parser.close()
    body = parser.result()
    if truncated:
        body += "<p><em>[The rest of this message is too long to show.]</em></p>"
    return Markup(body)


def text_to_html(text: str) -> Markup:
    """A plain-text body for a ``white-space: pre-wrap`` block: escaped, nothing else."""
    if len(text) > MAX_HTML_INPUT:
        text = text[:MAX_HTML_INPUT] + "\n[The rest of this message is too long to show.]"
    return escape(text)
