"""How the web site names itself on the wire: as IIS 7.5 under Exchange 2010 SP3 does.

Clients and connectivity analyzers read these headers (and ActiveSync
devices the 451's reason phrase), so every exact string the front end puts
in a status line or an identity header is here, in one place:

- ``Server: Microsoft-IIS/7.5`` (Windows Server 2008 R2, the system
  Exchange 2010 SP3 runs on), ``X-Powered-By: ASP.NET`` and
  ``X-AspNet-Version`` (Exchange 2010's web applications run on the .NET
  2.0 runtime) on every answer of the application;
- ``X-OWA-Version``, the build of Exchange, on answers of the OWA virtual
  directory and its sign-in pages;
- the reason phrases Exchange's protocols give where they are not HTTP's
  usual ones: ``451 Redirect`` (ActiveSync, MS-ASHTTP), ``440 Login Timeout``
  (OWA's forms session).

None of these values is in the spec; they are named here as unverified
(general knowledge of Exchange 2010 SP3 servers), so that a capture of a
real server can correct them in one place.
"""

from __future__ import annotations

from aiohttp import web

__all__ = [
    "ASPNET_VERSION",
    "LOGIN_TIMEOUT",
    "OWA_VERSION",
    "POWERED_BY",
    "REASONS",
    "REDIRECT_451",
    "SERVER",
    "activesync_redirect",
    "identify",
    "status_reason",
]

#: IIS 7.5 (Windows Server 2008 R2). Unverified.
SERVER = "Microsoft-IIS/7.5"
#: Unverified.
POWERED_BY = "ASP.NET"
#: The .NET 2.0 runtime (CLR 2.0.50727) that Exchange 2010's applications run on. Unverified.
ASPNET_VERSION = "2.0.50727"
#: Exchange 2010 SP3's build, as ``X-OWA-Version`` gives it (the same build as the
#: Received headers' ``id 14.3.123.4``). Unverified.
OWA_VERSION = "14.3.123.4"

#: ActiveSync's "go elsewhere" (MS-ASHTTP 3.1.5.2.2 shows no phrase). Unverified phrase.
REDIRECT_451 = 451
#: OWA's answer to a request whose forms session is gone (a script's, not a page load).
LOGIN_TIMEOUT = 440

#: Reason phrases that differ from the ones aiohttp knows (or that it has none for).
REASONS: dict[int, str] = {
    REDIRECT_451: "Redirect",
    LOGIN_TIMEOUT: "Login Timeout",
}

_OWA_PREFIX = "/owa"


def status_reason(status: int) -> str | None:
    """The reason phrase for ``status`` where Exchange's differs; None: HTTP's own."""
    return REASONS.get(status)


def activesync_redirect(url: str) -> web.Response:
    """MS-ASHTTP's HTTP 451: the device sends its requests to ``url`` from now on."""
    return web.Response(
        status=REDIRECT_451, reason=REASONS[REDIRECT_451], headers={"X-MS-Location": url}
    )


def identify(path: str, response: web.StreamResponse) -> None:
    """The identity headers of an answer to a request for ``path`` (its headers are built)."""
    headers = response.headers
    # aiohttp has already put its own name in; IIS's replaces it.
    headers["Server"] = SERVER
    headers["X-Powered-By"] = POWERED_BY
    headers["X-AspNet-Version"] = ASPNET_VERSION
    lowered = path.lower()
    if lowered == _OWA_PREFIX or lowered.startswith(_OWA_PREFIX + "/"):
        headers["X-OWA-Version"] = OWA_VERSION
