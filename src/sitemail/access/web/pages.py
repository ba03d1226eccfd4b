"""The front door's own pages: sign-in, cross-site redirection, errors, signed out.

Strings marked *2010* are Exchange 2010's wording (from general knowledge of
the product: verify before relying on them as exact); the others are
sitemail's.
"""

from __future__ import annotations

from aiohttp import web

from sitemail.access.web.common import html_response, security_headers
from sitemail.access.web.html import Markup, el, join, render_page

__all__ = [
    "BAD_CREDENTIALS",
    "MANUAL_REDIRECT_TEXT",
    "SIGNED_OUT_TEXT",
    "error_page",
    "logon_page",
    "manual_redirect_page",
    "message_page",
    "nothing_here_page",
    "redirect",
    "signed_out_page",
]

# 2010 (unverified wording): the cross-site redirection page of CrossSiteRedirectType
# Manual (spec 8.4), followed by a link to the mailbox site's OWA ExternalUrl.
MANUAL_REDIRECT_TEXT = "Use the following link to open this mailbox with the best performance:"
# 2010 (unverified wording): the sign-in page after a wrong user name or password.
BAD_CREDENTIALS = "The user name or password you entered isn't correct. Try entering it again."
# 2010 (unverified wording): the page after Sign out.
SIGNED_OUT_TEXT = (
    "You have successfully signed out of Outlook Web App. For increased security, close your "
    "browser window."
)
COOKIES_NEEDED = (
    "Your browser must allow cookies to sign in, and the sign-in page must be fresh. "
    "Open the sign-in page again and sign in."
)


def message_page(
    title: str, heading: str, body: Markup, *, status: int = 200, kind: str = "", footer: str = ""
) -> web.Response:
    text = render_page(
        "message.html", title=title, heading=heading, body=body, kind=kind, footer=footer
    )
    return html_response(text, status=status)


def logon_page(
    *,
    destination: str,
    canary: str,
    server: str,
    message: str | None = None,
    username: str = "",
    trusted: bool = False,
    status: int = 200,
    product: str = "Outlook Web App",
) -> web.Response:
    text = render_page(
        "logon.html",
        product=product,
        destination=destination,
        canary=canary,
        server=server,
        message=el("div", {"class": "error", "role": "alert"}, message) if message else "",
        username=username,
        public_checked=Markup("" if trusted else "checked"),
        private_checked=Markup("checked" if trusted else ""),
    )
    return html_response(text, status=status)


def manual_redirect_page(url: str, *, display_name: str, server: str) -> web.Response:
    """CrossSiteRedirectType Manual: a page with the mailbox site's OWA URL (spec 8.4)."""
    body = join(
        [
            el("p", {}, MANUAL_REDIRECT_TEXT),
            el("p", {"class": "target"}, el("a", {"href": url, "id": "redirect-link"}, url)),
            el(
                "p",
                {"class": "details"},
                f"{display_name}, your mailbox is in another Active Directory site; this "
                f"server ({server}) sends you to the Client Access server of that site. You "
                "may be asked to sign in again.",
            ),
        ]
    )
    return message_page(
        "Outlook Web App",
        "Your mailbox is at another site",
        body,
        kind="redirect",
        footer=f"Server: {server}",
    )


def error_page(
    heading: str,
    text: str,
    *,
    status: int,
    details: list[tuple[str, str]] | None = None,
    server: str = "",
) -> web.Response:
    """An error the user (or their administrator) can act on, with its details."""
    detail_list = None
    if details:
        detail_list = el(
            "dl", {"class": "details"}, [[el("dt", {}, k), el("dd", {}, v)] for k, v in details]
        )
    body = join([el("p", {"class": "error", "role": "alert"}, text), detail_list])
    footer = f"Server: {server}" if server else ""
    return message_page(heading, heading, body, status=status, kind="failure", footer=footer)


def nothing_here_page(host: str, path: str, *, server: str) -> web.Response:
    """404 for a path that no virtual directory of this host name holds."""
    return error_page(
        "Not Found",
        f"There is nothing at {path[:200]} on {host}.",
        status=404,
        server=server,
    )


def signed_out_page(sign_in_again: str, *, server: str) -> web.Response:
    body = join(
        [
            el("p", {}, SIGNED_OUT_TEXT),
            el("p", {}, el("a", {"href": sign_in_again}, "Sign in again")),
        ]
    )
    return message_page(
        "Outlook Web App", "Signed out", body, kind="signedout", footer=f"Server: {server}"
    )


def redirect(location: str, *, status: int) -> web.Response:
    """A redirect (301, 302) with the headers every page carries."""
    response = web.Response(status=status, headers={"Location": location})
    security_headers(response)
    return response
