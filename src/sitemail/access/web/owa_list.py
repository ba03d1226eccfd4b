"""OWA's folder view: the list of a folder's messages, its pager and the folder tree.

Rendered from one store answer (:class:`~sitemail.mailbox.records.FolderView`).
The store client hands back the very same answer object while the store says
nothing changed (an ETag and a 304), so :class:`FolderPages` keeps the HTML
made from each answer and makes it again only for a new one: a page asked
again costs no rendering (the rows were a seventh of a CAS worker's time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlencode

from sitemail.access.web.html import Markup, el, join
from sitemail.lru import LruCache
from sitemail.mailbox.folder_tree import WELL_KNOWN_ORDER
from sitemail.mailbox.records import (
    Address,
    Folder,
    FolderView,
    MessageSummary,
    WellKnownFolder,
)

__all__ = [
    "PAGE_SIZE",
    "FolderPages",
    "depth",
    "folder_title",
    "folder_tree",
    "names",
    "ordered_folders",
    "size",
    "when",
]

#: Messages per page of a folder view.
PAGE_SIZE = 20
#: Rendered folder views a worker keeps.
KEPT_PAGES = 256

# The order OWA lists the default folders in: Exchange's (the mail view shows mail folders
# only, so the rest of that order does not show here).
_FOLDER_ORDER = WELL_KNOWN_ORDER


# Fixed notices (the query names one by code; no text from the URL is shown).
_NOTICES = {
    "sent": "Your message was sent.",
    "deleted": "The item was moved to Deleted Items.",
    "purged": "The item was permanently deleted.",
    "moved": "The item was moved.",
}


def _row(m: MessageSummary, folder: Folder) -> Markup:
    who = (
        m.to
        if folder.well_known
        in (WellKnownFolder.SENT_ITEMS, WellKnownFolder.DRAFTS, WellKnownFolder.OUTBOX)
        else ([m.from_address] if m.from_address else [])
    )
    link = f"?ae=Item&id={m.id}"
    cls = "unread" if not m.flags.seen else "read"
    return el(
        "tr",
        {"class": cls},
        el("td", {"class": "from"}, names(who)),
        el(
            "td",
            {"class": "subject"},
            el("a", {"href": link}, m.subject or "(no subject)"),
            el("span", {"class": "preview"}, m.preview[:120]) if m.preview else None,
        ),
        el("td", {"class": "date"}, when(m.received_at)),
        el("td", {"class": "size"}, size(m.size)),
    )


def ordered_folders(folders: list[Folder]) -> list[Folder]:
    """Depth-first, the default mail folders first in OWA's order, then by name."""
    rank = {w: i for i, w in enumerate(_FOLDER_ORDER)}
    ids = {f.id for f in folders}

    def key(f: Folder) -> tuple[int, str]:
        return (rank.get(f.well_known, len(rank)) if f.well_known else len(rank), f.name.casefold())

    children: dict[int | None, list[Folder]] = {}
    for f in folders:
        parent = f.parent_id if f.parent_id in ids else None
        children.setdefault(parent, []).append(f)
    out: list[Folder] = []

    def walk(parent: int | None) -> None:
        for f in sorted(children.get(parent, []), key=key):
            if not holds_mail(f):
                continue  # Calendar, Contacts, Outlook's settings ... are not OWA's mail folders
            out.append(f)
            if len(out) < 10_000:
                walk(f.id)

    walk(None)
    return out


def holds_mail(folder: Folder) -> bool:
    """Whether OWA's mail view lists the folder: a mail class (IPF.Note, IPF.Note.*) or none."""
    kind = folder.folder_class
    return kind in ("", "IPF.Note") or kind.startswith("IPF.Note.")


def depth(folder: Folder) -> int:
    return folder.path.count("/")


def folder_title(folder: Folder) -> str:
    return folder.well_known.display_name if folder.well_known else folder.name


def folder_tree(folders: Sequence[Folder], current: int | None) -> Markup:
    if not folders:
        return Markup("")
    items = []
    for f in folders:
        label = [el("span", {"class": "name"}, folder_title(f))]
        if f.unread:
            label.append(el("span", {"class": "unread"}, f"({f.unread})"))
        cls = "folder current" if f.id == current else "folder"
        items.append(
            el(
                "li",
                {"class": cls},
                el(
                    "a",
                    {"href": f"?ae=Folder&id={f.id}", "class": f"depth{min(depth(f), 6)}"},
                    label,
                ),
            )
        )
    return el("ul", {"class": "tree"}, items)


def pager(folder: Folder, page: int, total: int) -> Markup:
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    links = []
    if page > 1:
        links.append(
            el(
                "a",
                {
                    "class": "button",
                    "href": "?" + urlencode({"ae": "Folder", "id": folder.id, "p": page - 1}),
                },
                "Previous Page",
            )
        )
    links.append(el("span", {"class": "pageno"}, f"Page {min(page, pages)} of {pages}"))
    if page < pages:
        links.append(
            el(
                "a",
                {
                    "class": "button",
                    "href": "?" + urlencode({"ae": "Folder", "id": folder.id, "p": page + 1}),
                },
                "Next Page",
            )
        )
    return el("div", {"class": "pager"}, links)


def notice_box(code: str | None) -> Markup | None:
    text = _NOTICES.get(code or "")
    return el("div", {"class": "notice"}, text) if text else None


def names(addresses: Sequence[Address | None]) -> str:
    return "; ".join(a.name or a.address for a in addresses if a is not None)


def when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%a %m/%d/%Y %H:%M}"


def size(size: int) -> str:
    return f"{max(1, (size + 1023) // 1024)} KB"


class FolderPages:
    """The folder view's title, content and folder tree, made once per store answer."""

    def __init__(self) -> None:
        self._made: LruCache[
            tuple[str, str, int, str | None], tuple[FolderView, str, Markup, Markup]
        ] = LruCache(KEPT_PAGES)

    def render(
        self, mailbox: str, folder_arg: str, page: int, notice: str | None, view: FolderView
    ) -> tuple[str, Markup, Markup]:
        """(title, content, folder tree) of page ``page`` of ``view``."""
        key = (mailbox.casefold(), folder_arg, page, notice)
        made = self._made.get(key)
        if made is not None and made[0] is view:  # the store's very answer: same HTML
            return made[1], made[2], made[3]
        title, content, tree = _render(view, page, notice)
        self._made.put(key, (view, title, content, tree))
        return title, content, tree


def _render(view: FolderView, page: int, notice: str | None) -> tuple[str, Markup, Markup]:
    folders, folder, listing = ordered_folders(view.folders), view.folder, view.page
    rows = [_row(m, folder) for m in listing.items]
    if not rows:
        rows = [
            el(
                "tr",
                {},
                el(
                    "td",
                    {"colspan": 4, "class": "empty"},
                    "There are no items to show in this view.",
                ),
            )
        ]
    first = listing.offset + 1 if listing.items else 0
    last = listing.offset + len(listing.items)
    page_links = pager(folder, page, listing.total)
    content = join(
        [
            notice_box(notice),
            el(
                "div",
                {"class": "listhead"},
                el("h1", {}, folder_title(folder)),
                el("span", {"class": "count"}, f"Items {first} to {last} of {listing.total}"),
                el("a", {"class": "button", "href": "?ae=Item&a=New"}, "New Message"),
            ),
            el(
                "table",
                {"class": "messages"},
                el(
                    "thead",
                    {},
                    el(
                        "tr",
                        {},
                        el("th", {}, "From"),
                        el("th", {}, "Subject"),
                        el("th", {}, "Received"),
                        el("th", {}, "Size"),
                    ),
                ),
                el("tbody", {}, rows),
            ),
            page_links,
        ]
    )
    return folder_title(folder), content, folder_tree(folders, folder.id)
