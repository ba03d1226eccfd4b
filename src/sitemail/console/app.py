"""The console's web application (aiohttp): routes, sign-in gate, CSRF and headers.

Only ``/signin`` answers without a session: every other route sends a page
request to the sign-in form (303) and answers an API request with 401.  Every
POST carries the session's CSRF token (a form field, or the ``X-CSRF-Token``
header from the page script) and, when the browser names one, an Origin of
this console; a cross-site POST is refused before anything runs.  After
sign-in the browser goes back only to one of the console's own pages (never
to a URL the request names).  Request bodies are small and bounded
(:data:`MAX_BODY`), and the pages forbid framing, inline scripts and any other
origin (Content-Security-Policy).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from sitemail.diagnose.routing_view import build_view, render_svg
from sitemail.shell import CmdletError

from .auth import (
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    Sessions,
    tokens_match,
)
from .backend import ConsoleInputError, OrganizationBackend
from .pages import queues_page, signin_page, topology_page, troubleshoot_page
from .pages_conversation import conversations_page
from .pages_mailflow import tracking_page
from .path_svg import Hub, render_path
from .sessions_backend import ConversationSource
from .topology_svg import render_topology
from .tracking import search_criteria, tracking_command
from .troubleshoot_job import TroubleshootJobs

T = TypeVar("T")

#: No request of the console needs more than a sign-in form or an identity.
MAX_BODY = 16 * 1024
#: The pages the browser may be sent back to after sign-in (no open redirect).
PAGES = ("/", "/queues", "/tracking", "/conversations", "/troubleshoot")
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
#: How long one backend call may take before the request answers 504.
BACKEND_TIMEOUT = 60.0

SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions", Sessions)
_SESSION: web.RequestKey[ConsoleSession] = web.RequestKey("console.session", ConsoleSession)
_NONCE: web.RequestKey[str] = web.RequestKey("console.nonce", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Backend:
    """The organization backend on one worker thread: its calls block (urllib, SQLite),
    and one thread keeps them in order and off the event loop."""

    def __init__(self, backend: OrganizationBackend) -> None:
        self.backend = backend
        self.conversations = ConversationSource(backend.services)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-backend")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(
            loop.run_in_executor(self._pool, partial(fn, *args)), BACKEND_TIMEOUT
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


BACKEND: web.AppKey[Backend] = web.AppKey("backend", Backend)
JOBS: web.AppKey[TroubleshootJobs] = web.AppKey("jobs", TroubleshootJobs)


def _public(handler: Handler) -> Handler:
    handler.public = True  # type: ignore[attr-defined]
    return handler


def is_public(handler: object) -> bool:
    return bool(getattr(handler, "public", False))


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from a page of another origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-site request; the CSRF token still decides
    parts = urlsplit(origin)
    return parts.scheme == "https" and parts.netloc == request.host


@web.middleware
async def security(request: web.Request, handler: Handler) -> web.StreamResponse:
    nonce = secrets.token_urlsafe(16)
    request[_NONCE] = nonce
    try:
        response = await _gate(request, handler)
    except web.HTTPException as error:
        _headers(error, nonce)
        raise
    _headers(response, nonce)
    return response


def _headers(response: web.StreamResponse, nonce: str) -> None:
    headers = response.headers
    headers["Content-Security-Policy"] = (
        f"default-src 'self'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    # Not no-referrer: with it, Chromium sends "Origin: null" on the form posts.
    headers["Referrer-Policy"] = "same-origin"
    headers["Cache-Control"] = "no-store"
    headers["Strict-Transport-Security"] = "max-age=31536000"


async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    match_info = request.match_info
    route_handler = getattr(match_info, "handler", None)
    if request.method == "POST" and not _same_origin(request):
        return _refuse(request, 403, "This request comes from another site; it is refused.")
    if is_public(route_handler):
        return await handler(request)
    session = request.app[SESSIONS].find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if _is_api(request) or request.method != "GET":
            return _refuse(request, 401, "Sign in first: this console needs a session.")
        target = request.path if request.path in PAGES else "/"
        raise web.HTTPSeeOther("/signin?" + urlencode({"next": target}))
    if request.method == "POST":
        given = request.headers.get("X-CSRF-Token")
        if given is None and request.content_type == "application/x-www-form-urlencoded":
            given = str((await request.post()).get("csrf", ""))
        if not tokens_match(session.csrf, given):
            return _refuse(request, 403, "The request has no valid CSRF token; reload the page.")
    request[_SESSION] = session
    return await handler(request)


def _refuse(request: web.Request, status: int, text: str) -> web.Response:
    if _is_api(request):
        return web.json_response({"error": text}, status=status)
    return web.Response(status=status, text=text)


def _session(request: web.Request) -> ConsoleSession:
    return request[_SESSION]


def _cookie(response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(name, value, path="/", secure=True, httponly=True, samesite="Strict")


# --- sign-in ------------------------------------------------------------------------------


def _next_path(value: object) -> str:
    return value if isinstance(value, str) and value in PAGES else "/"


def _prelogin_token(request: web.Request) -> str:
    """The sign-in form's token: the browser's current one when it has one, so that a second
    load of the form (another tab, a favicon's redirect) does not void the first."""
    current = request.cookies.get(PRELOGIN_COOKIE, "")
    if 32 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


@_public
async def signin_form(request: web.Request) -> web.StreamResponse:
    token = _prelogin_token(request)
    page = signin_page(token, request[_NONCE], next_path=_next_path(request.query.get("next")))
    response = web.Response(text=page, content_type="text/html")
    _cookie(response, PRELOGIN_COOKIE, token)
    return response


@_public
async def signin_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    expected = request.cookies.get(PRELOGIN_COOKIE)
    if expected is None or not tokens_match(expected, str(form.get("csrf", ""))):
        return web.Response(status=403, text="The sign-in form expired; load it again.")
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    next_path = _next_path(form.get("next"))
    result = await request.app[SESSIONS].sign_in(name, password)
    if result.session is None:
        token = _prelogin_token(request)
        page = signin_page(
            token, request[_NONCE], next_path=next_path, error=result.error, name=name[:256]
        )
        response = web.Response(text=page, content_type="text/html", status=401)
        _cookie(response, PRELOGIN_COOKIE, token)
        return response
    redirect = web.HTTPSeeOther(next_path)
    _cookie(redirect, SESSION_COOKIE, result.session.id)
    redirect.del_cookie(PRELOGIN_COOKIE, path="/")
    raise redirect


async def signout(request: web.Request) -> web.StreamResponse:
    request.app[SESSIONS].end(_session(request).id)
    redirect = web.HTTPSeeOther("/signin")
    redirect.del_cookie(SESSION_COOKIE, path="/")
    raise redirect


# --- pages --------------------------------------------------------------------------------


async def topology(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    data = await backend.call(backend.backend.topology)
    routing = await backend.call(lambda: render_svg(build_view(backend.backend.directory)))
    page = topology_page(_session(request), render_topology(data), routing)
    return web.Response(text=page, content_type="text/html")


async def topology_svg(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    data = await backend.call(backend.backend.topology)
    return web.Response(text=render_topology(data), content_type="image/svg+xml")


async def queues(request: web.Request) -> web.StreamResponse:
    return web.Response(text=queues_page(_session(request)), content_type="text/html")


async def tracking(request: web.Request) -> web.StreamResponse:
    """The search form, the events a search finds and, for ``?path=ID``, that message's way."""
    backend = request.app[BACKEND]
    form = {k: v[:5376] for k, v in request.query.items() if isinstance(v, str)}
    page = partial(tracking_page, _session(request), form)
    try:
        criteria = search_criteria(request.query)
        wanted = request.query.get("path", "").strip()
        path = search_criteria({"message_id": wanted}).get("message_id")
    except ConsoleInputError as error:
        return web.Response(text=page(error=str(error)), content_type="text/html", status=400)
    try:
        result = None
        if criteria:
            result = await backend.call(backend.backend.track, tracking_command(criteria))
        drawn = None
        if path:
            found = await backend.call(
                backend.backend.track, tracking_command({"message_id": path})
            )
            hubs = [Hub(*h) for h in await backend.call(backend.backend.hubs)]
            drawn = (path, found, render_path(found.objects, hubs))
    except ConsoleInputError as error:
        return web.Response(text=page(error=str(error)), content_type="text/html", status=400)
    except TimeoutError:
        text = page(error="The organization did not answer in time.")
        return web.Response(text=text, content_type="text/html", status=504)
    return web.Response(text=page(result=result, path=drawn), content_type="text/html")


async def conversations(request: web.Request) -> web.StreamResponse:
    """The hubs' send sessions, or (``?server=HUB&session=ID``) one conversation from both
    ends."""
    backend = request.app[BACKEND]
    session = _session(request)
    server = request.query.get("server", "")[:64]
    wanted = request.query.get("session", "")[:64]
    try:
        if server or wanted:
            found = await backend.call(backend.conversations.conversation, server, wanted)
            captured = await backend.call(backend.backend.captured, found["firewalls"])
            page = conversations_page(session, conversation=found, captures=captured)
        else:
            listing = await backend.call(backend.conversations.send_sessions)
            page = conversations_page(session, listing=listing)
    except ConsoleInputError as error:
        text = conversations_page(session, error=str(error))
        return web.Response(text=text, content_type="text/html", status=400)
    except TimeoutError:
        text = conversations_page(session, error="The organization did not answer in time.")
        return web.Response(text=text, content_type="text/html", status=504)
    return web.Response(text=page, content_type="text/html")


async def record_conversation(request: web.Request) -> web.StreamResponse:
    """Start the console's captures on every firewall (a form POST, with the CSRF token)."""
    backend = request.app[BACKEND]
    session = _session(request)
    try:
        recorded = await backend.call(backend.backend.record_next)
        listing = await backend.call(backend.conversations.send_sessions)
    except TimeoutError:
        text = conversations_page(session, error="The organization did not answer in time.")
        return web.Response(text=text, content_type="text/html", status=504)
    page = conversations_page(session, listing=listing, recorded=recorded)
    return web.Response(text=page, content_type="text/html")


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    text = resources.files("sitemail.console").joinpath("static", name).read_text("utf-8")
    return web.Response(text=text, content_type=STATIC[name])


# --- JSON ---------------------------------------------------------------------------------


async def _json_call(request: web.Request, fn: Callable[..., Any], *args: Any) -> web.Response:
    backend = request.app[BACKEND]
    try:
        result = await backend.call(fn, *args)
    except ConsoleInputError as error:
        return web.json_response({"error": str(error)}, status=400)
    except CmdletError as error:
        return web.json_response({"error": str(error)}, status=404)
    except TimeoutError:
        return web.json_response({"error": "The organization did not answer in time."}, status=504)
    data = result.to_json() if hasattr(result, "to_json") else result
    return web.json_response(data)


async def _identity(request: web.Request) -> str:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="expected a JSON body") from None
    identity = body.get("identity") if isinstance(body, dict) else None
    if not isinstance(identity, str):
        raise web.HTTPBadRequest(text='expected {"identity": "SERVER\\\\QUEUE"}')
    return identity


async def api_topology(request: web.Request) -> web.StreamResponse:
    return await _json_call(request, request.app[BACKEND].backend.topology)


async def api_live(request: web.Request) -> web.StreamResponse:
    return await _json_call(request, request.app[BACKEND].backend.live)


async def api_queues(request: web.Request) -> web.StreamResponse:
    return await _json_call(request, request.app[BACKEND].backend.queues)


async def api_messages(request: web.Request) -> web.StreamResponse:
    queue = request.query.get("queue", "")
    return await _json_call(request, request.app[BACKEND].backend.messages, queue)


async def api_queue_action(request: web.Request) -> web.StreamResponse:
    identity = await _identity(request)
    action = request.match_info["action"]
    return await _json_call(request, request.app[BACKEND].backend.queue_action, action, identity)


async def api_message_action(request: web.Request) -> web.StreamResponse:
    identity = await _identity(request)
    action = request.match_info["action"]
    return await _json_call(request, request.app[BACKEND].backend.message_action, action, identity)


async def api_server(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    return await _json_call(request, request.app[BACKEND].backend.server_detail, name)


async def api_firewall(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    return await _json_call(request, request.app[BACKEND].backend.firewall_detail, name)


async def api_firewall_inspection(request: web.Request) -> web.StreamResponse:
    """Turn ESMTP inspection on or off: ``{"inspect": "on"|"off", "confirm": true}``.  The
    page asks the administrator first; ``confirm`` says it did, so no script posts it by
    mistake."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="expected a JSON body") from None
    wanted = body.get("inspect") if isinstance(body, dict) else None
    if wanted not in ("on", "off") or not isinstance(body, dict) or body.get("confirm") is not True:
        return web.json_response(
            {"error": 'expected {"inspect": "on" or "off", "confirm": true}'}, status=400
        )
    name = request.match_info["name"]
    backend = request.app[BACKEND]
    return await _json_call(request, backend.backend.set_inspection, name, wanted == "on")


async def troubleshoot(request: web.Request) -> web.StreamResponse:
    return web.Response(text=troubleshoot_page(_session(request)), content_type="text/html")


async def api_troubleshoot_status(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[JOBS].status() or {"state": "none"})


async def api_troubleshoot_start(request: web.Request) -> web.StreamResponse:
    """Start the live troubleshooter (``{"probes": true|false}``), or return the running job."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="expected a JSON body") from None
    probes = body.get("probes", True) if isinstance(body, dict) else None
    if not isinstance(probes, bool):
        return web.json_response({"error": 'expected {"probes": true or false}'}, status=400)
    return web.json_response(request.app[JOBS].start(probes).to_json())


def make_app(
    sessions: Sessions, backend: OrganizationBackend, jobs: TroubleshootJobs | None = None
) -> web.Application:
    app = web.Application(middlewares=[security], client_max_size=MAX_BODY)
    app[SESSIONS] = sessions
    app[JOBS] = jobs if jobs is not None else TroubleshootJobs(backend.lab_dir)
    runner = Backend(backend)
    app[BACKEND] = runner

    async def close(_: web.Application) -> None:
        runner.close()

    app.on_cleanup.append(close)
    app.add_routes(
        [
            web.get("/signin", signin_form),
            web.post("/signin", signin_post),
            web.post("/signout", signout),
            web.get("/", topology),
            web.get("/topology.svg", topology_svg),
            web.get("/queues", queues),
            web.get("/tracking", tracking),
            web.get("/conversations", conversations),
            web.post("/conversations/record", record_conversation),
            web.get("/troubleshoot", troubleshoot),
            web.get("/api/troubleshoot", api_troubleshoot_status),
            web.post("/api/troubleshoot", api_troubleshoot_start),
            web.get("/static/{name}", static),
            web.get("/api/topology", api_topology),
            web.get("/api/live", api_live),
            web.get("/api/queues", api_queues),
            web.get("/api/messages", api_messages),
            web.post("/api/queues/{action}", api_queue_action),
            web.post("/api/messages/{action}", api_message_action),
            web.get("/api/servers/{name}", api_server),
            web.get("/api/firewalls/{name}", api_firewall),
            web.post("/api/firewalls/{name}/inspection", api_firewall_inspection),
        ]
    )
    return app


__all__ = ["MAX_BODY", "PAGES", "Backend", "is_public", "make_app"]
