"""Building HTML safely: every value is escaped unless it is already :class:`Markup`.

Pages are page templates (``sitemail/access/templates/*.html``, ``$name``
placeholders) filled with fragments built by :func:`el`.  Nothing reaches a
page without passing through :func:`escape`, so a subject line, a display
name or a folder name can never become markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from functools import cache
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
    return Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    """Concatenate fragments, escaping the ones that are not Markup."""
    return Markup(escape(sep).join(escape(p) for p in parts if p is not None))


def _children(children: Iterable[object]) -> Markup:
    out: list[str] = []
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, str | int):
            out.append(escape(child))
        elif isinstance(child, Iterable):
            out.append(_children(child))
        else:
            out.append(escape(child))
    return Markup("".join(out))


def el(tag: str, attrs: Mapping[str, object] | None = None, *children: object) -> Markup:
    """``<tag attr="...">children</tag>`` with every attribute value and text escaped.

    An attribute whose value is ``None`` or ``False`` is left out; ``True``
    writes a bare attribute (``checked``).
    """
    parts = [tag]
    for name, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(name)
        else:
            parts.append(f'{name}="{escape(value)}"')
    opening = "<" + " ".join(parts) + ">"
    if tag in _VOID:
        return Markup(opening)
    return Markup(f"{opening}{_children(children)}</{tag}>")


@cache
def _template(name: str) -> Template:
    text = resources.files("sitemail.access").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def render_page(name: str, **values: object) -> str:
    """Fill template ``name`` with ``values`` (escaped unless Markup); a missing one is an error."""
    return _template(name).substitute({k: escape(v) for k, v in values.items()})
