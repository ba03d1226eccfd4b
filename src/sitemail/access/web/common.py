"""What the front door hands to the web services behind it, and what they share.

The front door (:mod:`.front`) finds the virtual directory (a
:class:`RequestContext`), signs the user in once for every service
(:mod:`.authentication`) and calls the service's handler with the
:class:`AppUser` it established.  The user may have signed in here (forms,
Basic) or have been authenticated by another Client Access server that
proxied the request; OWA and ECP cannot tell and do not need to, the other
services (EWS, ActiveSync, Autodiscover) read :attr:`AppUser.method` to
refuse proxy chains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from aiohttp import web
from multidict import MultiDict

from sitemail.access.directory_view import AccessDirectory
from sitemail.access.entry_points import EntryPoint
from sitemail.access.ews_settings_store import SettingsStore
from sitemail.access.ews_typed_store import TypedItemStore
from sitemail.access.outcomes import ClientProtocol
from sitemail.access.web.sessions import CANARY_FIELD, canary_matches
from sitemail.mailbox.records import (
    Flags,
    FlagUpdate,
    Folder,
    FolderView,
    MessageDetail,
    MessagePage,
    MessageSummary,
    Placement,
)
from sitemail.org.model import Mailbox, VirtualDirectory, VirtualDirectoryKind
from sitemail.org.pki import ServerIdentity

__all__ = [
    "BROWSER_APPS",
    "MAX_FORM",
    "AppUser",
    "BadForm",
    "MailStore",
    "PartStream",
    "ProtocolHandler",
    "RequestContext",
    "SignInMethod",
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


#: The virtual directories a browser signs in to (forms or Basic), and their protocol.
BROWSER_APPS = {
    VirtualDirectoryKind.OWA: ClientProtocol.OWA,
    VirtualDirectoryKind.ECP: ClientProtocol.ECP,
}


@dataclass(frozen=True)
class RequestContext:
    """What the front door knows about a request on a virtual directory."""

    host: str  # normalized host name the browser used
    entry: EntryPoint
    vdir: VirtualDirectory
    subpath: str  # the path below the virtual directory, starting with '/'
    snapshot: AccessDirectory
    peer: ServerIdentity | None  # the server that proxied the request, if one did


class SignInMethod(StrEnum):
    """How the front door established who a request is for."""

    FORMS = "forms"  # the forms-based session cookies (OWA, ECP)
    BASIC = "basic"  # Basic credentials, where the virtual directory allows them
    # Another Client Access server's certificate on a virtual directory with
    # WindowsAuthentication on: sitemail's stand-in for the proxying CAS's Kerberos ticket.
    PROXIED = "proxied"


@dataclass(frozen=True)
class AppUser:
    """The signed-in user a request is served for."""

    mailbox: Mailbox
    canary: str  # the CSRF canary every form must carry back
    trusted: bool  # "This is a private computer"
    method: SignInMethod
    proxied_by: str | None = None  # the CAS that proxied the request, if one did

    @property
    def alias(self) -> str:
        return self.mailbox.alias

    @property
    def log_name(self) -> str:
        """The user as the request log names them (with the proxying server, if any)."""
        if self.proxied_by is None:
            return self.alias
        return f"{self.alias} (via {self.proxied_by})"


ProtocolHandler = Callable[[web.Request, RequestContext, AppUser], Awaitable[web.StreamResponse]]
"""A web service behind the front door: the request, its virtual directory, its signed-in user."""


class PartStream(Protocol):
    size: int | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class MailStore(TypedItemStore, SettingsStore, Protocol):
    """The part of :class:`~sitemail.mailbox.store_client.StoreClient` OWA uses (its
    calendar too: :class:`~sitemail.access.ews_typed_store.TypedItemStore`; and the
    mailbox's settings: :class:`~sitemail.access.ews_settings_store.SettingsStore`)."""

    async def list_folders(self, mailbox: str) -> list[Folder]: ...

    async def get_folder(self, mailbox: str, folder: int | str) -> Folder: ...

    async def folder_view(
        self, mailbox: str, folder: int | str, *, offset: int = 0, limit: int = 50
    ) -> FolderView: ...

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
