"""Outlook Web App: the mailbox in a browser, served from the mailbox's own site.

The pages follow OWA 2010's light version, which works without scripts:
everything lives at the virtual directory's root with the action in the
query (``?ae=Folder&id=inbox``, ``?ae=Item&id=42``, ``?ae=Item&a=New``), and
every change is a form POST carrying the session's canary.  Links are
relative (``?ae=...``), so the same page works whether the browser reached
this server directly or through another Client Access server that proxied
it, under whatever host name the user typed.

All mailbox access goes through the store API of the mailbox's server
(:class:`~.common.MailStore`); nothing here touches a database file.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import quote

from aiohttp import web

from sitemail.access.web.common import (
    AppUser,
    BadForm,
    MailStore,
    RequestContext,
    html_response,
    read_form,
    security_headers,
)
from sitemail.access.web.compose import ComposeError, Draft, build_message, reply_draft
from sitemail.access.web.html import Markup, el, join, render_page
from sitemail.access.web.owa_calendar import (
    APPOINTMENT_CLASS,
    CALENDAR_ACTIONS,
    CALENDAR_CLASS,
    CalendarPage,
    OwaCalendar,
)
from sitemail.access.web.owa_list import (
    PAGE_SIZE,
    FolderPages,
    depth,
    folder_title,
    folder_tree,
    names,
    ordered_folders,
    size,
    when,
)
from sitemail.access.web.owa_schedule import AvailabilityLookup
from sitemail.access.web.sanitize import MAX_HTML_INPUT, sanitize_html, text_to_html
from sitemail.access.web.sessions import CANARY_FIELD
from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailbox.errors import MessageNotFound, NotFound, StoreError
from sitemail.mailbox.records import (
    Flags,
    FlagUpdate,
    Folder,
    MessageDetail,
    MimePart,
    WellKnownFolder,
)

__all__ = ["PAGE_SIZE", "OwaApp"]

log = logging.getLogger("sitemail.owa")

#: Largest body part read to show it (bigger ones are cut).
MAX_BODY_READ = MAX_HTML_INPUT
_MAX_PAGE = 100_000

_CALENDAR_LINK = f"?ae=Folder&t={CALENDAR_CLASS}"
_CALENDAR_NAV = el("div", {"class": "navtitle"}, el("a", {"href": _CALENDAR_LINK}, "Calendar"))
_WELL_KNOWN = frozenset(w.value for w in WellKnownFolder)


class OwaApp:
    """The OWA pages of one Client Access server."""

    def __init__(
        self, store: MailStore, *, clock: Clock = SYSTEM_CLOCK, product: str = "Outlook Web App"
    ) -> None:
        self.store = store
        # The name in the title bar: 2007's Outlook Web Access or 2010's Outlook Web App.
        self.product = product
        self.clock = clock
        self.calendar = OwaCalendar(store, clock)
        self.pages = FolderPages()
        # The Scheduling Assistant's free/busy: the W3SVC plugs in the availability service.
        self.availability: AvailabilityLookup | None = None

    async def handle(
        self,
        request: web.Request,
        user: AppUser,
        subpath: str,
        ctx: RequestContext | None = None,
    ) -> web.StreamResponse:
        """Serve ``subpath`` (the path below the virtual directory) for ``user``."""
        if subpath not in ("/", "/default.aspx"):
            return self._page(
                user, "Not found", _error_box("The page you asked for isn't here."), 404
            )
        try:
            if request.method == "POST":
                return await self._post(request, user)
            if request.method not in ("GET", "HEAD"):
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "POST"])
            return await self._get(request, user, ctx)
        except BadForm as exc:
            return self._page(user, "Action refused", _error_box(str(exc)), 403)
        except MessageNotFound:
            body = _error_box("The item no longer exists. It may have been moved or deleted.")
            return self._page(user, "Item not found", body, 404)
        except NotFound as exc:
            return self._page(user, "Not found", _error_box(str(exc)), 404)
        except StoreError as exc:
            log.warning("store error for %s: %s", user.alias, exc)
            body = _error_box(
                "Outlook Web App couldn't reach your mailbox. Try again in a moment. "
                f"({type(exc).__name__}: {exc})"
            )
            return self._page(user, "Mailbox unavailable", body, 503)

    # ------------------------------------------------------------------ GET

    async def _get(
        self, request: web.Request, user: AppUser, ctx: RequestContext | None = None
    ) -> web.StreamResponse:
        q = request.query
        ae = q.get("ae", "Folder")
        action = q.get("a", "")
        if q.get("t") in (CALENDAR_CLASS, APPOINTMENT_CLASS):
            found = self.availability if ctx is not None else None
            lookup = found(ctx, user) if found is not None and ctx is not None else None
            return await self._calendar(user, await self.calendar.get(user, q, lookup))
        if ae == "Folder":
            return await self._folder_view(user, q.get("id", "inbox"), q.get("p", "1"), q.get("n"))
        if ae == "Item" and action == "New":
            return await self._compose(user, Draft(body=_signature_block(user)))
        if ae == "Item" and action in ("Reply", "ReplyAll", "Forward"):
            return await self._reply(user, _message_id(q.get("id")), action)
        if ae == "Item":
            return await self._read(user, _message_id(q.get("id")))
        if ae == "Attachment":
            return await self._attachment(
                request, user, _message_id(q.get("id")), q.get("part", "")
            )
        return self._page(
            user, "Not found", _error_box("Outlook Web App doesn't know that page."), 400
        )

    async def _folders(self, user: AppUser) -> list[Folder]:
        return ordered_folders(await self.store.list_folders(user.alias))

    async def _folder_view(
        self, user: AppUser, folder_arg: str, page_arg: str, notice: str | None
    ) -> web.StreamResponse:
        folder_ref = _folder_ref(folder_arg)
        page = _page_number(page_arg)
        # The folder tree, the folder and its page in one store call.
        view = await self.store.folder_view(
            user.alias, folder_ref, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
        title, content, tree = self.pages.render(user.alias, folder_arg, page, notice, view)
        return self._page(user, title, content, tree=tree)

    async def _read(self, user: AppUser, message_id: int) -> web.StreamResponse:
        message = await self.store.get_message(user.alias, message_id)
        if not message.flags.seen:
            # Opening an item marks it read, as OWA does.
            await self.store.set_flags(user.alias, message_id, FlagUpdate(seen=True))
        folders = await self._folders(user)
        body = await self._body(user, message)
        move_choices = [
            f
            for f in folders
            if f.id != message.folder_id and f.well_known != WellKnownFolder.OUTBOX
        ]
        attachments = _attachments(message.structure)
        actions = el(
            "div",
            {"class": "actions"},
            el("a", {"class": "button", "href": f"?ae=Item&a=Reply&id={message.id}"}, "Reply"),
            el(
                "a",
                {"class": "button", "href": f"?ae=Item&a=ReplyAll&id={message.id}"},
                "Reply All",
            ),
            el("a", {"class": "button", "href": f"?ae=Item&a=Forward&id={message.id}"}, "Forward"),
            _post_form(user, {"a": "Delete", "id": message.id}, "Delete", "button danger"),
            _move_form(user, message.id, move_choices),
        )
        header_rows = [
            ("From:", names([message.from_address] if message.from_address else [])),
            ("Sent:", when(message.sent_at or message.received_at)),
            ("To:", names(message.to)),
        ]
        if message.cc:
            header_rows.append(("Cc:", names(message.cc)))
        headers = el(
            "table",
            {"class": "itemhead"},
            [el("tr", {}, el("th", {}, k), el("td", {}, v)) for k, v in header_rows],
        )
        attach = None
        if attachments:
            attach = el(
                "ul",
                {"class": "attachments"},
                [
                    el(
                        "li",
                        {},
                        el(
                            "a",
                            {"href": f"?ae=Attachment&id={message.id}&part={quote(p.part_id)}"},
                            p.filename or "attachment",
                        ),
                        f" ({size(p.body_size)})",
                    )
                    for p in attachments
                ],
            )
        content = join(
            [
                actions,
                el("h1", {"class": "subject"}, message.subject or "(no subject)"),
                headers,
                attach,
                body,
            ]
        )
        return self._page(
            user,
            message.subject or "(no subject)",
            content,
            folders=folders,
            current=message.folder_id,
        )

    async def _body_text(self, user: AppUser, message: MessageDetail) -> tuple[str, bool] | None:
        """The text of the message's body part and whether it is HTML; None if it has none."""
        part = _body_part(message.structure)
        if part is None:
            return None
        data = bytearray()
        async with self.store.open_part(user.alias, message.id, part.part_id) as stream:
            async for chunk in stream:
                data += chunk
                if len(data) > MAX_BODY_READ:
                    break
        return _decode(bytes(data), part.charset), part.content_type == "text/html"

    async def _body(self, user: AppUser, message: MessageDetail) -> Markup:
        found = await self._body_text(user, message)
        if found is None:
            return el("div", {"class": "body empty"}, "This message has no text.")
        text, is_html = found
        if is_html:
            return el("div", {"class": "body html"}, sanitize_html(text))
        return el("div", {"class": "body text"}, text_to_html(text))

    async def _attachment(
        self, request: web.Request, user: AppUser, message_id: int, part_id: str
    ) -> web.StreamResponse:
        message = await self.store.get_message(user.alias, message_id)
        part = message.structure.find(part_id) if part_id else None
        if part is None or part.is_multipart:
            raise NotFound("That attachment isn't in this message.")
        filename = part.filename or "attachment"
        response = web.StreamResponse()
        # Served as a download, never rendered: an attached HTML file must not run here.
        response.content_type = "application/octet-stream"
        response.headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache, no-store"
        async with self.store.open_part(user.alias, message_id, part.part_id) as stream:
            if stream.size is not None:
                response.content_length = stream.size
            await response.prepare(request)
            async for chunk in stream:
                await response.write(chunk)
        await response.write_eof()
        return response

    async def _reply(self, user: AppUser, message_id: int, mode: str) -> web.StreamResponse:
        original = await self.store.get_message(user.alias, message_id)
        found = await self._body_text(user, original)
        text = ""
        if found is not None:
            text = _html_to_text(found[0]) if found[1] else found[0]
        quoted = "\n".join("> " + line if mode != "Forward" else line for line in text.splitlines())
        draft = reply_draft(
            original, quoted, me=user.mailbox, mode=mode, signature=user.mailbox.signature
        )
        return await self._compose(user, draft)

    async def _compose(
        self, user: AppUser, draft: Draft, *, error: str | None = None
    ) -> web.StreamResponse:
        folders = await self._folders(user)
        hidden = {"a": "Send", CANARY_FIELD: user.canary}
        if draft.in_reply_to is not None:
            hidden["rid"] = str(draft.in_reply_to)
        form = el(
            "form",
            {"method": "post", "action": "?ae=Item", "class": "compose"},
            [el("input", {"type": "hidden", "name": k, "value": v}) for k, v in hidden.items()],
            _error_box(error) if error else None,
            _field("To:", "to", draft.to),
            _field("Cc:", "cc", draft.cc),
            _field("Bcc:", "bcc", draft.bcc),
            _field("Subject:", "subject", draft.subject),
            el("textarea", {"name": "body", "rows": 18, "aria-label": "Message"}, draft.body),
            el(
                "div",
                {"class": "actions"},
                el("button", {"type": "submit", "class": "button primary"}, "Send"),
                el("a", {"class": "button", "href": "?ae=Folder&id=inbox"}, "Cancel"),
            ),
        )
        title = "Untitled Message" if not draft.subject else draft.subject
        status = 400 if error else 200
        return self._page(
            user, title, join([el("h1", {}, title), form]), folders=folders, status=status
        )

    # ------------------------------------------------------------------ POST

    async def _post(self, request: web.Request, user: AppUser) -> web.StreamResponse:
        form = await read_form(request, user)
        action = form.get("a", "")
        if action in CALENDAR_ACTIONS:
            result = await self.calendar.post(user, form)
            return (
                result if isinstance(result, web.Response) else await self._calendar(user, result)
            )
        if action == "Send":
            draft = Draft(
                to=form.get("to", ""),
                cc=form.get("cc", ""),
                bcc=form.get("bcc", ""),
                subject=form.get("subject", ""),
                body=form.get("body", ""),
                in_reply_to=_optional_id(form.get("rid")),
            )
            return await self._send(user, draft)
        if action == "Delete":
            message_id = _message_id(form.get("id"))
            summary = await self.store.get_message(user.alias, message_id)
            placement = await self.store.delete(user.alias, message_id)
            code = "deleted" if placement is not None else "purged"
            return _see_other(f"?ae=Folder&id={summary.folder_id}&n={code}")
        if action == "Move":
            message_id = _message_id(form.get("id"))
            target = _folder_ref(form.get("folder", ""))
            summary = await self.store.get_message(user.alias, message_id)
            await self.store.move(user.alias, message_id, target)
            return _see_other(f"?ae=Folder&id={summary.folder_id}&n=moved")
        raise BadForm("the form asked for an action Outlook Web App doesn't know")

    async def _send(self, user: AppUser, draft: Draft) -> web.StreamResponse:
        in_reply_to: str | None = None
        references: list[str] = []
        if draft.in_reply_to is not None:
            try:
                original = await self.store.get_message(user.alias, draft.in_reply_to)
                in_reply_to = original.internet_message_id
                references = [original.in_reply_to] if original.in_reply_to else []
            except MessageNotFound:
                draft = Draft(draft.to, draft.cc, draft.bcc, draft.subject, draft.body, None)
        try:
            raw = build_message(
                user.mailbox,
                draft,
                now=self.clock.now(),
                references=references,
                in_reply_to=in_reply_to,
            )
        except ComposeError as exc:
            return await self._compose(user, draft, error=str(exc))
        # Save in Drafts, then submit: the Mail Submission service hands it to a hub of
        # the mailbox's site and files it in Sent Items.
        placed = await self.store.append(
            user.alias, WellKnownFolder.DRAFTS.value, raw, flags=Flags(draft=True, seen=True)
        )
        await self.store.submit(user.alias, placed.message_id)
        if draft.in_reply_to is not None:
            with contextlib.suppress(MessageNotFound):
                await self.store.set_flags(user.alias, draft.in_reply_to, FlagUpdate(answered=True))
        return _see_other("?ae=Folder&id=inbox&n=sent")

    async def _calendar(self, user: AppUser, page: CalendarPage) -> web.Response:
        """A calendar page (:mod:`.owa_calendar`) in OWA's frame."""
        return self._page(
            user, page.title, page.content, page.status, folders=await self._folders(user)
        )

    # ------------------------------------------------------------------ frame

    def _page(
        self,
        user: AppUser,
        title: str,
        content: Markup,
        status: int = 200,
        *,
        folders: Sequence[Folder] = (),
        current: int | None = None,
        tree: Markup | None = None,
    ) -> web.Response:
        text = render_page(
            "owa.html",
            title=f"{title} - {self.product}",
            product=self.product,
            user=user.mailbox.display_name,
            signout=_signout_form(user),
            folders=join(
                [
                    folder_tree(folders, current) if tree is None else tree,
                    _CALENDAR_NAV,
                ]
            ),
            content=content,
        )
        return html_response(text, status=status)


# ---------------------------------------------------------------------- helpers


def _see_other(location: str) -> web.Response:
    """Post/Redirect/Get, to a relative location (under whatever URL the browser is on)."""
    response = web.Response(status=303, headers={"Location": location})
    security_headers(response)
    return response


def _message_id(value: str | None) -> int:
    parsed = _optional_id(value)
    if parsed is None:
        raise NotFound("No item was named.")
    return parsed


def _optional_id(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _folder_ref(value: str) -> int | str:
    if value.isdigit() and len(value) <= 18:
        return int(value)
    if value in _WELL_KNOWN:
        return value
    raise NotFound("That folder isn't in your mailbox.")


def _page_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= _MAX_PAGE:
        return 1
    return int(value)


def _error_box(text: str | None) -> Markup:
    return el("div", {"class": "error", "role": "alert"}, text or "")


def _field(label: str, name: str, value: str) -> Markup:
    return el(
        "label",
        {"class": "field"},
        el("span", {}, label),
        el("input", {"type": "text", "name": name, "value": value, "autocomplete": "off"}),
    )


def _post_form(user: AppUser, fields: dict[str, object], label: str, cls: str) -> Markup:
    return el(
        "form",
        {"method": "post", "action": "?ae=Item", "class": "inline"},
        el("input", {"type": "hidden", "name": CANARY_FIELD, "value": user.canary}),
        [el("input", {"type": "hidden", "name": k, "value": v}) for k, v in fields.items()],
        el("button", {"type": "submit", "class": cls}, label),
    )


def _move_form(user: AppUser, message_id: int, folders: Sequence[Folder]) -> Markup:
    return el(
        "form",
        {"method": "post", "action": "?ae=Item", "class": "inline"},
        el("input", {"type": "hidden", "name": CANARY_FIELD, "value": user.canary}),
        el("input", {"type": "hidden", "name": "a", "value": "Move"}),
        el("input", {"type": "hidden", "name": "id", "value": message_id}),
        el(
            "select",
            {"name": "folder", "aria-label": "Move to folder", "required": True},
            el("option", {"value": "", "selected": True, "disabled": True}, "Move to folder..."),
            [
                el("option", {"value": f.id}, "\u00a0\u00a0" * depth(f) + folder_title(f))
                for f in folders
            ],
        ),
        el("button", {"type": "submit", "class": "button"}, "Move"),
    )


def _signout_form(user: AppUser) -> Markup:
    return _signout_markup(user.canary)


@lru_cache(maxsize=1024)  # one per session in use: it goes on every page
def _signout_markup(canary: str) -> Markup:
    # Site-wide: the front door that holds the session (this server or the one
    # that proxied) answers /owa/logoff.owa.
    return el(
        "form",
        {"method": "post", "action": "/owa/logoff.owa", "class": "inline"},
        el("input", {"type": "hidden", "name": CANARY_FIELD, "value": canary}),
        el("a", {"href": "/ecp/?rfr=owa", "class": "link"}, "Options"),
        el("button", {"type": "submit", "class": "link"}, "Sign out"),
    )


def _signature_block(user: AppUser) -> str:
    return f"\n\n{user.mailbox.signature}" if user.mailbox.signature else ""


def _leaves(part: MimePart) -> list[MimePart]:
    return [p for p in part.walk() if not p.is_multipart]


def _is_attachment(part: MimePart) -> bool:
    return (
        (part.disposition or "").lower() == "attachment"
        or bool(part.filename)
        or part.content_type == "message/rfc822"
    )


def _body_part(structure: MimePart) -> MimePart | None:
    leaves = [p for p in _leaves(structure) if not _is_attachment(p)]
    for wanted in ("text/html", "text/plain"):
        for part in leaves:
            if part.content_type == wanted:
                return part
    return None


def _attachments(structure: MimePart) -> list[MimePart]:
    return [p for p in _leaves(structure) if _is_attachment(p)]


def _decode(data: bytes, charset: str | None) -> str:
    name = (charset or "utf-8").strip().lower()
    try:
        codecs.lookup(name)
    except LookupError:
        name = "utf-8"
    return data.decode(name, errors="replace")


def _html_to_text(source: str) -> str:
    """A reply quotes the original's text: its HTML without tags."""
    from html.parser import HTMLParser

    class _Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("script", "style", "head", "title"):
                self.skip += 1
            elif tag in ("br", "p", "div", "tr", "li", "h1", "h2", "h3"):
                self.parts.append("\n")

        def handle_endtag(self, tag: str) -> None:
            if tag in ("script", "style", "head", "title") and self.skip:
                self.skip -= 1

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    parser = _Text()
    parser.feed(source[:MAX_HTML_INPUT])
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
