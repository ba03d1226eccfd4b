"""FindFolder's Restriction, and the paging views of FindFolder and FindItem.

Paging: ``IndexedPage{Item,Folder}View`` (``MaxEntriesReturned``,
``Offset``, ``BasePoint`` Beginning or End) answers ``IndexedPagingOffset``,
the offset of the next page; ``FractionalPage{Item,Folder}View``
(``Numerator``/``Denominator``: where in the view to start, as a fraction
of it) answers ``NumeratorOffset`` and ``AbsoluteDenominator``, the next
page's numerator over the view's size.  Both answer ``TotalItemsInView``
and ``IncludesLastItemInRange``.

A FindFolder restriction is evaluated over what FindFolder shows of a
folder: ``folder:DisplayName`` and ``folder:FolderClass`` (strings, any
case) and ``folder:TotalCount``, ``folder:ChildFolderCount`` and
``folder:UnreadCount`` (integers), with the operators FindItem's
restrictions have (:mod:`.ews_restriction`).  Another property is refused
with ``ErrorUnsupportedPathForQuery``, as FindItem refuses one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sitemail.access.ews_aqs import Query
from sitemail.access.ews_item_properties import extended_key
from sitemail.access.ews_mapi_properties import MapiFolder, folder_value, is_folder_tag
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_restriction import _COMPARISONS, FIELDS, Predicate, _fold, _local
from sitemail.access.ews_restriction import _field as _message_field
from sitemail.access.ews_soap import SoapFault, m, t
from sitemail.clock import SYSTEM_CLOCK
from sitemail.mailbox.limits import MAX_PAGE_SIZE
from sitemail.mailbox.records import Folder, MessagePage, MessageSummary

__all__ = [
    "FolderFacts",
    "FolderPredicate",
    "Grouping",
    "Paging",
    "folder_facts",
    "parse_folder_restriction",
    "parse_grouping",
    "parse_paging",
    "query_predicate",
    "today",
]

#: Messages one text search of a QueryString term may name (a folder's view is bounded
#: the same way, ews_mailbox.MAX_VIEW).
MAX_TEXT_MATCHES = 20_000


@dataclass(frozen=True)
class FolderFacts:
    """What a FindFolder restriction may test of one folder."""

    name: str
    folder_class: str
    total: int
    unread: int
    children: int
    uidnext: int = 0
    size: int = 0


FolderPredicate = Callable[[FolderFacts], bool]

_FOLDER_FIELDS: dict[str, tuple[str, Callable[[FolderFacts], str | int]]] = {
    "folder:DisplayName": ("string", lambda f: f.name),
    "folder:FolderClass": ("string", lambda f: f.folder_class),
    "folder:TotalCount": ("int", lambda f: f.total),
    "folder:UnreadCount": ("int", lambda f: f.unread),
    "folder:ChildFolderCount": ("int", lambda f: f.children),
}


@dataclass(frozen=True)
class Paging:
    """A FindItem/FindFolder view: how many from where."""

    limit: int
    offset: int = 0
    from_end: bool = False
    fraction: tuple[int, int] | None = None  # (numerator, denominator)

    def window(self, total: int) -> tuple[int, int]:
        """The view's slice [start, stop) of ``total`` entries in view order."""
        if self.fraction is not None:
            numerator, denominator = self.fraction
            start = min(total * numerator // denominator, total)
            return start, min(start + self.limit, total)
        if self.from_end:
            stop = max(total - self.offset, 0)
            return max(stop - self.limit, 0), stop
        start = min(self.offset, total)
        return start, min(start + self.limit, total)

    def attributes(self, start: int, shown: int, total: int) -> dict[str, str]:
        """The RootFolder attributes that say where the next page starts."""
        end = start + shown
        if self.fraction is not None:
            place = {"NumeratorOffset": str(end), "AbsoluteDenominator": str(total)}
        elif self.from_end:
            place = {"IndexedPagingOffset": str(self.offset + shown)}
        else:
            place = {"IndexedPagingOffset": str(end)}
        last = (start == 0) if self.from_end and self.fraction is None else end >= total
        return {
            **place,
            "TotalItemsInView": str(total),
            "IncludesLastItemInRange": "true" if last else "false",
        }


def _int(view: ET.Element, name: str, default: int | None) -> int:
    text = view.get(name)
    if text is None:
        if default is None:
            raise SoapFault("ErrorSchemaValidation", f"The paging view needs {name}.")
        return default
    try:
        value = int(text)
    except ValueError:
        raise SoapFault("ErrorSchemaValidation", f"{name} must be an integer.") from None
    if value < 0:
        raise SoapFault("ErrorSchemaValidation", f"{name} must not be negative.")
    return value


def parse_paging(body: ET.Element, kind: str, most: int) -> Paging:
    """The request's ``IndexedPage{kind}View`` or ``FractionalPage{kind}View`` (all, at most
    ``most`` at a time, when it has neither)."""
    indexed = body.find(m(f"IndexedPage{kind}View"))
    fractional = body.find(m(f"FractionalPage{kind}View"))
    if indexed is not None:
        return Paging(
            limit=min(_int(indexed, "MaxEntriesReturned", most), most),
            offset=_int(indexed, "Offset", 0),
            from_end=indexed.get("BasePoint", "Beginning") == "End",
        )
    if fractional is not None:
        numerator = _int(fractional, "Numerator", None)
        denominator = _int(fractional, "Denominator", None)
        if denominator == 0:
            # Unverified: the code Exchange 2010 gives a zero denominator.
            raise SoapFault("ErrorSchemaValidation", "Denominator must be greater than zero.")
        return Paging(
            limit=min(_int(fractional, "MaxEntriesReturned", most), most),
            fraction=(numerator, denominator),
        )
    return Paging(limit=most)


def _field(element: ET.Element | None) -> tuple[str, str, Callable[[FolderFacts], str | int]]:
    if element is None or _local(element) not in ("FieldURI", "ExtendedFieldURI"):
        raise Refused("ErrorInvalidRestriction", "The restriction names no property.")
    uri = element.get("FieldURI", "")
    found = _FOLDER_FIELDS.get(uri) if _local(element) == "FieldURI" else None
    if _local(element) == "ExtendedFieldURI":
        found = _mapi_field(element)
    if found is None:
        raise Refused(
            "ErrorUnsupportedPathForQuery",
            f"The property {uri or _local(element)} can't be used in a restriction.",
        )
    return uri, found[0], found[1]


def _mapi_field(element: ET.Element) -> tuple[str, Callable[[FolderFacts], str | int]] | None:
    """A folder's MAPI property by tag (its class, counts, next UID), when it names one."""
    key, attrs = extended_key(element)
    if not is_folder_tag(key):
        return None
    numeric = attrs["PropertyType"] in ("Integer", "Long", "Short")

    def read(f: FolderFacts) -> str | int:
        view = MapiFolder(f.name, f.folder_class, f.total, f.unread, f.children, f.uidnext, f.size)
        text = folder_value(key, view) or ""
        return int(text) if numeric and text else text

    return ("int" if numeric else "string"), read


def _node(element: ET.Element) -> FolderPredicate:
    op = _local(element)
    children = list(element)
    if op in ("And", "Or"):
        parts = [_node(c) for c in children]
        if op == "And":
            return lambda f: all(p(f) for p in parts)
        return lambda f: any(p(f) for p in parts)
    if op == "Not":
        if len(children) != 1:
            raise Refused("ErrorInvalidRestriction", "Not takes one restriction.")
        inner = _node(children[0])
        return lambda f: not inner(f)
    if op == "Exists":
        _field(children[0] if children else None)
        return lambda f: True  # every folder has each of these properties
    if op in _COMPARISONS or op == "Contains":
        uri, kind, read = _field(children[0] if children else None)
        holder = element if op == "Contains" else element.find(t("FieldURIOrConstant"))
        constant = holder.find(t("Constant")) if holder is not None else None
        if constant is None:
            raise Refused(
                "ErrorUnsupportedQueryFilter", "Comparing two properties is not supported."
            )
        text = constant.get("Value", "")
        if op == "Contains":
            return _contains(element, kind, read, text, uri)
        compare = _COMPARISONS[op]
        if kind == "int":
            try:
                number = int(text)
            except ValueError:
                raise Refused(
                    "ErrorInvalidValueForProperty",
                    f"The value {text[:100]!r} is not valid for {uri}.",
                ) from None
            return lambda f: compare(read(f), number)
        wanted = text.casefold()
        return lambda f: compare(str(read(f)).casefold(), wanted)
    raise Refused("ErrorUnsupportedQueryFilter", f"The restriction {op} is not supported.")


def _contains(
    element: ET.Element,
    kind: str,
    read: Callable[[FolderFacts], str | int],
    text: str,
    uri: str,
) -> FolderPredicate:
    if kind != "string":
        raise Refused("ErrorUnsupportedQueryFilter", f"Contains does not apply to {uri}.")
    mode = element.get("ContainmentMode", "FullString")
    comparison = element.get("ContainmentComparison", "Exact")
    wanted = _fold(text, comparison)

    def test(f: FolderFacts) -> bool:
        value = _fold(str(read(f)), comparison)
        if mode == "FullString":
            return value == wanted
        if mode == "Prefixed":
            return value.startswith(wanted)
        if mode == "PrefixOnWords":
            return any(word.startswith(wanted) for word in value.split())
        if mode == "ExactPhrase":
            return f" {wanted} " in f" {value} "
        return wanted in value

    return test


def parse_folder_restriction(restriction: ET.Element) -> FolderPredicate:
    """The predicate a FindFolder ``<m:Restriction>`` stands for."""
    children = list(restriction)
    if len(children) != 1:
        raise Refused("ErrorInvalidRestriction", "A restriction holds one search expression.")
    return _node(children[0])


MAIL_CLASS = "IPF.Note"


def folder_facts(folders: list[Folder], ref: int | str) -> FolderFacts:
    """What a FindFolder restriction tests of one folder (or of the Top of Information Store)."""
    if not isinstance(ref, int):  # the Top of Information Store has no class
        children = sum(1 for f in folders if f.parent_id is None and f.ipm)
        return FolderFacts("Top of Information Store", "", 0, 0, children)
    folder = next(f for f in folders if f.id == ref)
    return FolderFacts(
        name=folder.name,
        folder_class=folder.folder_class,
        total=folder.total,
        unread=folder.unread,
        children=sum(1 for f in folders if f.parent_id == folder.id),
        uidnext=folder.uidnext,
        size=folder.size,
    )


def today() -> date:
    """The UTC day AQS's date words (today, this week ...) count from."""
    return SYSTEM_CLOCK.now().astimezone(UTC).date()


async def query_predicate(
    store: TextSearch, alias: str, query: Query | None, folder: int | str, wanted: Predicate | None
) -> Predicate | None:
    """A FindItem's Restriction and QueryString together, the latter bound to ``folder``."""
    if query is None:
        return wanted

    async def search(text: str, fields: frozenset[str]) -> set[int]:
        found: set[int] = set()
        while len(found) < MAX_TEXT_MATCHES:
            page = await store.search(
                alias,
                text,
                folder=folder,
                fields=sorted(fields),
                offset=len(found),
                limit=MAX_PAGE_SIZE,
            )
            found.update(s.id for s in page.items)
            if not page.items or len(found) >= page.total:
                break
        return found

    matches = await query.predicate(search)
    if wanted is None:
        return matches
    both: Predicate = wanted
    return lambda s: both(s) and matches(s)


class TextSearch(Protocol):
    """The store's text search (the store API client's)."""

    async def search(
        self,
        mailbox: str,
        query: str,
        *,
        folder: int | str | None = None,
        fields: Collection[str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> MessagePage: ...


# ------------------------------------------------------------------ FindItem grouping

#: Subject prefixes a conversation topic leaves out (Outlook's English ones; unverified
#: which others Exchange 2010 strips).
_PREFIXES = re.compile(r"^\s*((re|fw|fwd)\s*:\s*)+", re.IGNORECASE)


def conversation_topic(subject: str) -> str:
    return _PREFIXES.sub("", subject).strip()


@dataclass(frozen=True)
class Grouping:
    """A FindItem's GroupBy (or DistinguishedGroupBy ConversationTopic): items of equal
    ``key`` together, groups ordered by their members' ``aggregate`` (smallest or largest)."""

    key: Callable[[MessageSummary], Any]
    aggregate: Callable[[MessageSummary], Any]
    maximum: bool
    descending: bool

    def arrange(self, items: list[MessageSummary]) -> list[MessageSummary]:
        """The view's items, group after group (each group in the view's order)."""
        groups: dict[Any, list[MessageSummary]] = {}
        for item in items:
            groups.setdefault(_index(self.key(item)), []).append(item)

        def rank(members: list[MessageSummary]) -> tuple[bool, Any]:
            values = [v for v in (self.aggregate(s) for s in members) if v is not None]
            if not values:
                return (False, 0)
            return (True, max(values) if self.maximum else min(values))

        ordered = sorted(groups.values(), key=rank, reverse=self.descending)
        return [item for members in ordered for item in members]

    def groups(self, items: list[MessageSummary]) -> list[tuple[str, list[MessageSummary]]]:
        """Runs of equal key in ``items`` (a page of :meth:`arrange`'s list), with their index."""
        out: list[tuple[str, list[MessageSummary]]] = []
        for item in items:
            index = _index(self.key(item))
            if out and out[-1][0] == index:
                out[-1][1].append(item)
            else:
                out.append((index, [item]))
        return out


def _index(value: Any) -> str:
    """A GroupIndex: the grouped property's value as the schema writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def parse_grouping(body: ET.Element) -> Grouping | None:
    """The request's GroupBy or DistinguishedGroupBy, ``None`` when it has neither."""
    group_by = body.find(m("GroupBy"))
    distinguished = body.find(m("DistinguishedGroupBy"))
    if distinguished is not None:
        standard = (distinguished.findtext(t("StandardGroupBy")) or "").strip()
        if standard != "ConversationTopic":
            raise SoapFault("ErrorSchemaValidation", "StandardGroupBy must be ConversationTopic.")
        # Conversations newest first, as Outlook shows them (unverified for Exchange's own
        # order of DistinguishedGroupBy groups).
        received = FIELDS["item:DateTimeReceived"].read
        return Grouping(lambda s: conversation_topic(s.subject), received, True, True)
    if group_by is None:
        return None
    children = list(group_by)
    _, key = _message_field(children[0] if children else None, FIELDS)
    aggregate_on = group_by.find(t("AggregateOn"))
    if aggregate_on is None:
        raise SoapFault("ErrorSchemaValidation", "GroupBy needs AggregateOn.")
    _, aggregate = _message_field(next(iter(aggregate_on), None), FIELDS)
    kind = aggregate_on.get("Aggregate", "")
    if kind not in ("Minimum", "Maximum"):
        raise SoapFault("ErrorSchemaValidation", "Aggregate must be Minimum or Maximum.")
    return Grouping(
        key.read,
        aggregate.read,
        maximum=kind == "Maximum",
        descending=group_by.get("Order", "Ascending") == "Descending",
    )
