"""Building HTML safely: every value is escaped unless it is already :class:`Markup`.

Pages are page templates (``sitemail/access/templates/*.html``, ``$name``
placeholders) filled with fragments built by :func:`el`.  Nothing reaches a
page without passing through :func:`escape`, so a subject line, a display
name or a folder name can never become markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from html import escape as _html_escape
from importlib import resources
from string import Template

__all__ = ["Markup", "el", "escape", "join", "render_page"]

# Elements that have no closing tag.
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "col"})


class Markup(str):
    """Text that is already HTML: inserted as it is."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """``value`` as HTML text (quotes escaped too, so it is safe in attributes)."""
    if isinstance(value, Markup):
        return value
    return Markup(_escaped(value))


def _escaped(value: object) -> str:
    return _html_escape(value if type(value) is str else str(value), quote=True)


def join(parts: Iterable[object], sep: str = "") -> Markup:
    """Concatenate fragments, escaping the ones that are not Markup."""
    return Markup(escape(sep).join(escape(p) for p in parts if p is not None))


def _children(children: Iterable[object]) -> str:
    # Plain strings until the element is done: a list page's rows are a tenth of a
    # worker's time, and a Markup made per child was most of el's own.
    out: list[str] = []
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, Markup):
            out.append(child)
        elif isinstance(child, str | int):
            out.append(_escaped(child))
        elif isinstance(child, Iterable):
            out.append(_children(child))
        else:
            out.append(_escaped(child))
    return "".join(out)


def el(tag: str, attrs: Mapping[str, object] | None = None, *children: object) -> Markup:
    """``<tag attr="...">children</tag>`` with every attribute value and text escaped.

    An attribute whose value is ``None`` or ``False`` is left out; ``True``
    writes a bare attribute (``checked``).
    """
    opening = "<" + tag
    if attrs:
        for name, value in attrs.items():
            if value is None or value is False:
                continue
            if value is True:
                opening += " " + name
            elif isinstance(value, Markup):
                opening += f' {name}="{value}"'
            else:
                opening += f' {name}="{_escaped(value)}"'
    if tag in _VOID:
        return Markup(opening + ">")
    return Markup(f"{opening}>{_children(children)}</{tag}>")


@cache
def _template(name: str) -> Template:
    text = resources.files("sitemail.access").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def render_page(name: str, **values: object) -> str:
    """Fill template ``name`` with ``values`` (escaped unless Markup); a missing one is an error."""
    return _template(name).substitute({k: escape(v) for k, v in values.items()})
