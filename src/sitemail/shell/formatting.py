"""Text rendering of objects: PowerShell's tables and lists, and Out-Default's choice.

Tables have a header, a ``----`` underline as long as each header, numbers
right-aligned, and cells cut with ``...`` to fit the console width. Lists
align ``Name : Value`` and wrap long values under the value column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .properties import PropertySpec, property_names, resolve
from .records import Record
from .values import to_display, to_string
from .views import ViewRegistry

_MAX_PROPERTIES_IN_TABLE = 4


@dataclass(frozen=True)
class FormattedText:
    """The output of Format-Table/Format-List: lines printed as they are."""

    lines: tuple[str, ...]
    type_name = "Microsoft.PowerShell.Commands.Internal.Format.FormatEntryData"

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _cell(value: object) -> str:
    return to_display(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render_table(
    objects: Sequence[object],
    specs: Sequence[PropertySpec],
    width: int,
    *,
    autosize: bool = True,
    hide_headers: bool = False,
) -> list[str]:
    """A table of ``objects`` with one column per spec, fitted to ``width``."""
    if not specs:
        return []
    values = [[spec.get(obj) for spec in specs] for obj in objects]
    cells = [[_cell(v) for v in row] for row in values]
    headers = [spec.label for spec in specs]
    right = []
    for i, spec in enumerate(specs):
        if spec.align in ("left", "right"):
            right.append(spec.align == "right")
        else:
            column = [row[i] for row in values if row[i] is not None]
            right.append(bool(column) and all(_is_number(v) for v in column))
    widths = []
    for i, spec in enumerate(specs):
        natural = max([len(headers[i]), *(len(row[i]) for row in cells)])
        widths.append(spec.width if spec.width is not None and not autosize else natural)
    widths, kept = _fit(widths, headers, width - 1)
    lines: list[str] = []

    def line(texts: list[str]) -> str:
        parts = []
        for i in kept:
            text = _truncate(texts[i], widths[i])
            parts.append(text.rjust(widths[i]) if right[i] else text.ljust(widths[i]))
        return " ".join(parts).rstrip()

    if not hide_headers:
        lines.append(line(headers))
        lines.append(line(["-" * len(h) for h in headers]))
    lines.extend(line(row) for row in cells)
    return lines


def _fit(widths: list[int], headers: list[str], available: int) -> tuple[list[int], list[int]]:
    """Shrink the widest columns (and drop the last ones if need be) to fit ``available``."""
    widths = list(widths)
    kept = list(range(len(widths)))
    minimums = [min(w, max(len(h), 6)) for w, h in zip(widths, headers, strict=True)]
    while len(kept) > 1 and sum(minimums[i] for i in kept) + len(kept) - 1 > available:
        kept.pop()
    overflow = sum(widths[i] for i in kept) + len(kept) - 1 - available
    while overflow > 0:
        shrinkable = [i for i in kept if widths[i] > minimums[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        overflow -= 1
    return widths, kept


def _truncate(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    return text[: width - 3] + "..."


def render_list(
    objects: Sequence[object], specs_for: Sequence[Sequence[PropertySpec]], width: int
) -> list[str]:
    """``Name : Value`` blocks, one per object, separated by blank lines."""
    lines: list[str] = []
    for obj, specs in zip(objects, specs_for, strict=True):
        if not specs:
            continue
        if lines:
            lines.append("")
        label_width = max(len(s.label) for s in specs)
        value_width = max(width - 1 - label_width - 3, 10)
        for spec in specs:
            text = to_display(spec.get(obj))
            chunks = _wrap(text, value_width)
            lines.append(f"{spec.label.ljust(label_width)} : {chunks[0]}".rstrip())
            lines.extend((" " * (label_width + 3) + chunk).rstrip() for chunk in chunks[1:])
    return lines


def _wrap(text: str, width: int) -> list[str]:
    out: list[str] = []
    for raw in text.splitlines() or [""]:
        while len(raw) > width:
            cut = raw.rfind(" ", 0, width + 1)
            if cut <= 0:
                cut = width
            out.append(raw[:cut])
            raw = raw[cut:].lstrip(" ")
        out.append(raw)
    return out


def table_specs(obj: object, views: ViewRegistry) -> list[PropertySpec]:
    """The columns Format-Table shows for ``obj`` when none are named."""
    if isinstance(obj, Record):
        view = views.table(obj.type_name)
        if view is not None:
            return [
                PropertySpec(
                    c.header,
                    (lambda name: lambda o: _get(o, name))(c.property),
                    c.width,
                    c.align,
                )
                for c in view.columns
            ]
    return resolve(property_names(obj), [obj])


def list_specs(obj: object, views: ViewRegistry) -> list[PropertySpec]:
    """The properties Format-List shows for ``obj`` when none are named."""
    if isinstance(obj, Record):
        view = views.list(obj.type_name)
        if view is not None:
            return resolve(view.properties, [obj])
    return resolve(property_names(obj), [obj])


def _get(obj: object, name: str) -> object:
    from .operators import get_member

    return get_member(obj, name)


def _shape(obj: object, views: ViewRegistry) -> tuple[str, str]:
    if isinstance(obj, FormattedText):
        return ("text", "")
    if isinstance(obj, Record):
        if views.table(obj.type_name) is not None:
            return ("table", obj.type_name)
        if views.list(obj.type_name) is not None:
            return ("list", obj.type_name)
        kind = "table" if len(obj.names()) <= _MAX_PROPERTIES_IN_TABLE else "list"
        return (kind, obj.type_name)
    if isinstance(obj, Mapping):
        return ("hashtable", "")
    return ("scalar", "")


def format_default(objects: Sequence[object], views: ViewRegistry, width: int) -> list[str]:
    """What the console shows for a statement's output (PowerShell's Out-Default)."""
    lines: list[str] = []
    index = 0
    while index < len(objects):
        shape = _shape(objects[index], views)
        end = index
        while end < len(objects) and _shape(objects[end], views) == shape:
            end += 1
        group = objects[index:end]
        index = end
        kind = shape[0]
        if kind == "text":
            for obj in group:
                lines.extend(obj.lines if isinstance(obj, FormattedText) else [])
        elif kind == "scalar":
            for obj in group:
                lines.extend(to_string(obj).split("\n"))
        elif kind == "hashtable":
            rows = [
                {"Name": to_string(k), "Value": v}
                for table in group
                if isinstance(table, Mapping)
                for k, v in table.items()
            ]
            specs = [
                PropertySpec("Name", lambda r: _row(r, "Name")),
                PropertySpec("Value", lambda r: _row(r, "Value")),
            ]
            lines.extend(["", *render_table(rows, specs, width), ""])
        elif kind == "table":
            specs = table_specs(group[0], views)
            lines.extend(["", *render_table(group, specs, width, autosize=False), ""])
        else:
            body = render_list(group, [list_specs(obj, views) for obj in group], width)
            lines.extend(["", *body, ""])
    return lines


def _row(row: object, key: str) -> object:
    return row.get(key) if isinstance(row, dict) else None
