"""What the front door hands to the OWA and ECP applications, and what they share.

The front door (:mod:`.front`) authenticates the user, takes the
proxy-or-redirect decision and, when this server is to serve the request
itself, calls an application with an :class:`AppUser`.  The user may have
signed in here (forms, Basic) or have been authenticated by another Client
Access server that proxied the request; the application cannot tell and
does not need to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from multidict import MultiDict

from sitemail.access.web.sessions import CANARY_FIELD, canary_matches
from sitemail.mailbox.records import (
    Flags,
    FlagUpdate,
    Folder,
    MessageDetail,
    MessagePage,
    MessageSummary,
    Placement,
)
from sitemail.org.model import Mailbox

__all__ = [
    "MAX_FORM",
    "AppUser",
    "BadForm",
    "MailStore",
    "PartStream",
    "content_security_policy",
    "html_response",
    "read_form",
    "security_headers",
]

#: Largest form accepted (a composed message's text and its recipients).
MAX_FORM = 4 * 1024 * 1024


def content_security_policy(form_origins: Iterable[str] = ()) -> str:
    """No script runs, nothing loads from elsewhere, no framing; forms post here only.

    ``form_origins`` are other origins a form's answer may redirect to (browsers
    apply form-action to the redirects after a post): the sign-in page lists the
    directory's ExternalUrls, where silent cross-site redirection sends a user
    who has just signed in.
    """
    targets = " ".join(["'self'", *sorted(set(form_origins))])
    return (
        f"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action {targets}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


CONTENT_SECURITY_POLICY = content_security_policy()


@dataclass(frozen=True)
class AppUser:
    """The signed-in user a request is served for."""

    mailbox: Mailbox
    canary: str  # the CSRF canary every form must carry back
    trusted: bool  # "This is a private computer"
    proxied_by: str | None = None  # the CAS that proxied the request, if one did

    @property
    def alias(self) -> str:
        return self.mailbox.alias


class PartStream(Protocol):
    size: int | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class MailStore(Protocol):
    """The part of :class:`~sitemail.mailbox.store_client.StoreClient` OWA uses."""

    async def list_folders(self, mailbox: str) -> list[Folder]: ...

    async def get_folder(self, mailbox: str, folder: int | str) -> Folder: ...

    async def list_messages(
        self,
        mailbox: str,
        folder: int | str,
        *,
        offset: int = 0,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> MessagePage: ...

    async def get_message(self, mailbox: str, message_id: int) -> MessageDetail: ...

    async def read_part(self, mailbox: str, message_id: int, part_id: str) -> bytes: ...

    def open_part(
        self, mailbox: str, message_id: int, part_id: str
    ) -> AbstractAsyncContextManager[PartStream]: ...

    async def set_flags(
        self, mailbox: str, message_id: int, update: FlagUpdate
    ) -> MessageSummary: ...

    async def move(self, mailbox: str, message_id: int, folder: int | str) -> Placement: ...

    async def delete(
        self, mailbox: str, message_id: int, *, hard: bool = False
    ) -> Placement | None: ...

    async def append(
        self,
        mailbox: str,
        folder: int | str,
        message: bytes,
        *,
        flags: Flags | None = None,
    ) -> Placement: ...

    async def submit(self, mailbox: str, message_id: int) -> Placement: ...


class BadForm(Exception):
    """A form post that cannot be taken (no canary, wrong canary, too large)."""


async def read_form(request: web.Request, user: AppUser) -> MultiDict[str]:
    """The posted form, after checking its CSRF canary against the user's session."""
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise BadForm("the form is larger than this server accepts") from None
    canary = form.get(CANARY_FIELD)
    if not isinstance(canary, str) or not canary_matches(user.canary, canary):
        raise BadForm(
            "the form did not carry this session's canary (it may come from another site, "
            "or from a page shown before you signed in again)"
        )
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))


def security_headers(response: web.StreamResponse, *, cacheable: bool = False) -> None:
    """Headers every page carries (kept when a proxied server already set them)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # Messages hold links and a sign-on token travels in a URL: no Referer leaves the
    # site.  ("no-referrer" would also make the browser send "Origin: null" with our own
    # form posts, which the same-origin check must be able to read.)
    headers.setdefault("Referrer-Policy", "same-origin")
    if not cacheable:
        headers.setdefault("Cache-Control", "no-cache, no-store")
        headers.setdefault("Pragma", "no-cache")


def html_response(text: str, *, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    security_headers(response)
    return response
