"""The Exchange Control Panel's options for a user: display name, signature, password.

ECP is reached through OWA ("Options") and follows OWA's cross-site rules
(spec 8.3).  Its changes are directory changes (Set-Mailbox, Set-MailboxMessageConfiguration,
Set-ADAccountPassword in Exchange), written by the Client Access server of the
mailbox's site; every form carries the session's canary.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from sitemail.access.web.common import (
    AppUser,
    BadForm,
    RequestContext,
    html_response,
    read_form,
    security_headers,
)
from sitemail.access.web.html import Markup, el, join, render_page
from sitemail.access.web.logon import MAX_PASSWORD, check_password
from sitemail.access.web.sessions import CANARY_FIELD
from sitemail.org.directory import Directory
from sitemail.org.model import Mailbox
from sitemail.org.passwords import hash_password

__all__ = ["MAX_DISPLAY_NAME", "MAX_SIGNATURE", "MIN_PASSWORD", "EcpApp"]

log = logging.getLogger("sitemail.ecp")

MAX_DISPLAY_NAME = 256
MAX_SIGNATURE = 8 * 1024
MIN_PASSWORD = 8

_NOTICES = {
    "name": "Your display name was saved.",
    "signature": "Your signature was saved.",
    "password": "Your password was changed.",
}


class EcpApp:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    async def handle(
        self,
        request: web.Request,
        user: AppUser,
        subpath: str,
        ctx: RequestContext | None = None,
    ) -> web.StreamResponse:
        del ctx  # the control panel's pages need nothing of the request's context
        if subpath not in ("/", "/default.aspx", "/PersonalSettings/Password.aspx"):
            return self._page(user, el("div", {"class": "error"}, "That page isn't here."), 404)
        try:
            if request.method == "POST":
                return await self._post(request, user)
        except BadForm as exc:
            return self._page(user, el("div", {"class": "error", "role": "alert"}, str(exc)), 403)
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "POST"])
        return self._page(user, self._forms(user, notice=request.query.get("n")))

    def _forms(
        self, user: AppUser, *, notice: str | None = None, error: str | None = None, which: str = ""
    ) -> Markup:
        mailbox = user.mailbox
        text = _NOTICES.get(notice or "")

        def form(action: str, *fields: Markup, button: str) -> Markup:
            return el(
                "form",
                {"method": "post", "action": "/ecp/", "class": "options", "id": action},
                el("input", {"type": "hidden", "name": CANARY_FIELD, "value": user.canary}),
                el("input", {"type": "hidden", "name": "a", "value": action}),
                fields,
                el("button", {"type": "submit", "class": "button primary"}, button),
            )

        def err(name: str) -> Markup | None:
            return (
                el("div", {"class": "error", "role": "alert"}, error)
                if error and which == name
                else None
            )

        return join(
            [
                el("h1", {}, "My Account"),
                el("div", {"class": "notice"}, text) if text else None,
                el("p", {}, f"{mailbox.display_name} <{mailbox.primary_smtp_address}>"),
                el(
                    "fieldset",
                    {},
                    el("legend", {}, "General"),
                    err("name"),
                    form(
                        "name",
                        _field("Display name:", "displayname", "text", mailbox.display_name),
                        button="Save",
                    ),
                ),
                el(
                    "fieldset",
                    {},
                    el("legend", {}, "E-Mail Signature"),
                    err("signature"),
                    form(
                        "signature",
                        el(
                            "textarea",
                            {"name": "signature", "rows": 6, "aria-label": "Signature"},
                            mailbox.signature,
                        ),
                        button="Save",
                    ),
                ),
                el(
                    "fieldset",
                    {},
                    el("legend", {}, "Change Password"),
                    err("password"),
                    form(
                        "password",
                        _field("Current password:", "oldpwd", "password", ""),
                        _field("New password:", "newpwd", "password", ""),
                        _field("Confirm new password:", "confirmpwd", "password", ""),
                        button="Save",
                    ),
                ),
            ]
        )

    async def _post(self, request: web.Request, user: AppUser) -> web.StreamResponse:
        form = await read_form(request, user)
        action = form.get("a", "")
        mailbox = self.directory.get(Mailbox, user.alias)
        if mailbox is None:
            raise BadForm("your mailbox is no longer in the directory")
        if action == "name":
            name = " ".join(form.get("displayname", "").split())
            if not name or len(name) > MAX_DISPLAY_NAME:
                return self._failed(
                    user, "name", f"Enter a display name of 1 to {MAX_DISPLAY_NAME} characters."
                )
            await asyncio.to_thread(self._save, mailbox.model_copy(update={"display_name": name}))
            return _see_other("/ecp/?n=name")
        if action == "signature":
            signature = form.get("signature", "").replace("\r\n", "\n")
            if len(signature) > MAX_SIGNATURE:
                return self._failed(user, "signature", "The signature is too long.")
            await asyncio.to_thread(self._save, mailbox.model_copy(update={"signature": signature}))
            return _see_other("/ecp/?n=signature")
        if action == "password":
            old, new, confirm = (
                form.get("oldpwd", ""),
                form.get("newpwd", ""),
                form.get("confirmpwd", ""),
            )
            if not await check_password(mailbox, old):
                return self._failed(
                    user, "password", "The current password you entered isn't correct."
                )
            if new != confirm:
                return self._failed(user, "password", "The new passwords don't match.")
            if not MIN_PASSWORD <= len(new) <= MAX_PASSWORD:
                return self._failed(
                    user,
                    "password",
                    f"The new password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters.",
                )
            hashed = await asyncio.to_thread(hash_password, new)
            await asyncio.to_thread(
                self._save, mailbox.model_copy(update={"password_hash": hashed})
            )
            log.info("password changed for %s", user.alias)
            return _see_other("/ecp/?n=password")
        raise BadForm("the form asked for an option ECP doesn't know")

    def _save(self, mailbox: Mailbox) -> None:
        self.directory.put(Mailbox.model_validate(mailbox.model_dump()))

    def _failed(self, user: AppUser, which: str, error: str) -> web.Response:
        return self._page(user, self._forms(user, error=error, which=which), 400)

    def _page(self, user: AppUser, content: Markup, status: int = 200) -> web.Response:
        fresh = self.directory.get(Mailbox, user.alias) or user.mailbox
        text = render_page(
            "ecp.html",
            title="Options: My Account - Outlook Web App",
            user=fresh.display_name,
            signout=el(
                "form",
                {"method": "post", "action": "/owa/logoff.owa", "class": "inline"},
                el("input", {"type": "hidden", "name": CANARY_FIELD, "value": user.canary}),
                el("a", {"href": "/owa/", "class": "link"}, "Mail"),
                el("button", {"type": "submit", "class": "link"}, "Sign out"),
            ),
            content=content,
        )
        return html_response(text, status=status)


def _field(label: str, name: str, kind: str, value: str) -> Markup:
    return el(
        "label",
        {"class": "field"},
        el("span", {}, label),
        el("input", {"type": kind, "name": name, "value": value, "autocomplete": "off"}),
    )


def _see_other(location: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    security_headers(response)
    return response
