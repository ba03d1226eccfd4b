"""A message's HTML shown in OWA: formatting kept, nothing that runs or loads from elsewhere."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.access.web.html import el, escape
from sitemail.access.web.sanitize import sanitize_html, text_to_html


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<p>Hello <b>Adam</b></p>", "<p>Hello <b>Adam</b></p>"),
        ("<p onclick='steal()'>x</p>", "<p>x</p>"),
        ("before<script>alert(1)</script>after", "beforeafter"),
        ("<style>body{background:url(http://evil/)}</style>text", "text"),
        ("<iframe src='https://evil'></iframe>ok", "ok"),
        ("<svg><script>alert(1)</script><text>x</text></svg>after", "after"),
        ("<form action='https://evil'><input name=p>Pass</form>", "Pass"),
        ('<img src="http://tracker.example/p.gif" alt="logo">', "[logo]"),
        ('<img src="http://tracker.example/p.gif">', ""),
        ('<div style="background:url(http://tracker)">x</div>', "<div>x</div>"),
        (
            '<a href="https://contoso.com/x">l</a>',
            '<a href="https://contoso.com/x" target="_blank" rel="noopener noreferrer">l</a>',
        ),
        (
            '<a href="mailto:bob@contoso.com">m</a>',
            '<a href="mailto:bob@contoso.com" target="_blank" rel="noopener noreferrer">m</a>',
        ),
        ('<a href="javascript:alert(1)">j</a>', "<a>j</a>"),
        ('<a href="java\tscript:alert(1)">j</a>', "<a>j</a>"),
        ('<a href=" JaVaScRiPt:alert(1)">j</a>', "<a>j</a>"),
        ('<a href="data:text/html,<script>x</script>">d</a>', "<a>d</a>"),
        ('<a href="vbscript:msgbox">v</a>', "<a>v</a>"),
        ("<b><i>unclosed", "<b><i>unclosed</i></b>"),
        ("<p>a</b>b</p>", "<p>ab</p>"),
        ("<!-- comment --><![CDATA[x]]>t", "t"),
        ("&lt;script&gt;", "&lt;script&gt;"),
        (
            '<td bgcolor="red" colspan="2" width="50%">c</td>',
            '<td bgcolor="red" colspan="2" width="50%">c</td>',
        ),
        ('<td bgcolor="expression(alert(1))">c</td>', "<td>c</td>"),
        (
            '<base href="https://evil/"><meta http-equiv="refresh" content="0;url=https://evil">x',
            "x",
        ),
        ("<object data='x.swf'></object><embed src='x'>y", "y"),
    ],
)
def test_sanitizer_table(source: str, expected: str) -> None:
    assert sanitize_html(source) == expected


class _Checker(HTMLParser):
    """Collects what a browser would build from the output."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.stack: list[str] = []
        self.balanced = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(k, v or "") for k, v in attrs]
        if tag not in ("br", "hr", "col"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.balanced = False


_pieces = st.sampled_from(
    [
        "<script>",
        "</script>",
        "<p>",
        "</p>",
        "<b>",
        "</b>",
        "<a href='javascript:x'>",
        "<a href='https://ok'>",
        "</a>",
        "<img src=http://x onerror=alert(1)>",
        "<div style='x'>",
        "</div>",
        "<table><tr><td>",
        "</td></tr></table>",
        "<svg>",
        "</svg>",
        "<title>",
        "</title>",
        "<!--",
        "-->",
        "&lt;",
        "&#106;avascript:",
        "<iframe>",
        "<",
        ">",
        "'",
        '"',
        "text",
        " on",
        "=",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_pieces | st.text(max_size=8), max_size=40).map("".join))
def test_no_input_yields_script_handlers_or_remote_loads(source: str) -> None:
    out = sanitize_html(source)
    checker = _Checker()
    checker.feed(out)
    checker.close()
    assert checker.balanced
    assert not {"script", "iframe", "img", "svg", "style", "object", "embed", "form", "base"} & set(
        checker.tags
    )
    for name, value in checker.attrs:
        assert not name.startswith("on")
        assert name not in ("style", "src", "srcset", "background")
        if name == "href":
            assert re.match(r"(https?|mailto):", value, re.I), value


def test_plain_text_is_escaped_and_kept_as_is() -> None:
    assert text_to_html("a < b\n<script>") == "a &lt; b\n&lt;script&gt;"


def test_page_builder_escapes_text_and_attributes() -> None:
    assert (
        el("a", {"href": '"><script>'}, "<b>") == '<a href="&quot;&gt;&lt;script&gt;">&lt;b&gt;</a>'
    )
    assert escape(escape("<")) == "&lt;"  # escaping twice does nothing more
