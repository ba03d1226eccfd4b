"""The admin HTTPS API of a server process.

Only a client presenting the organization's admin certificate may call it:
the TLS layer demands a certificate from the organization CA, and every
request then checks that it is the *admin* certificate, not a server's.
Roles add their own routes (queues, messages) through :func:`build_app`.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

import sitemail
from sitemail.org.pki import AdminIdentity, PeerVerifier
from sitemail.server.services import ServiceError, ServiceHost
from sitemail.server.watcher import DirectoryWatcher

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RouteAdder = Callable[[web.Application], None]

HOST_KEY = web.AppKey("host", ServiceHost)
INFO_KEY = web.AppKey("info", dict)
WATCHER_KEY = web.AppKey("watcher", DirectoryWatcher)


def _admin_only(verifier: PeerVerifier) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        tls = request.transport.get_extra_info("ssl_object") if request.transport else None
        if not isinstance(tls, ssl.SSLObject):
            raise web.HTTPForbidden(text="the admin API needs TLS with the admin certificate\n")
        if not isinstance(verifier.identify_ssl(tls), AdminIdentity):
            raise web.HTTPForbidden(
                text="only the organization's admin certificate may call the admin API\n"
            )
        return await handler(request)

    return middleware


async def _health(request: web.Request) -> web.Response:
    body: dict[str, Any] = {"status": "ok", "name": request.app[INFO_KEY]["name"]}
    watcher = request.app.get(WATCHER_KEY)
    if watcher is not None:
        # The directory change this server's services have all applied.
        body["directory_change"] = watcher.applied
    return web.json_response(body)


async def _version(request: web.Request) -> web.Response:
    info = request.app[INFO_KEY]
    return web.json_response(
        {"sitemail": sitemail.__version__, "exchange": info.get("version"), "name": info["name"]}
    )


async def _roles(request: web.Request) -> web.Response:
    return web.json_response({"roles": request.app[INFO_KEY].get("roles", [])})


async def _services(request: web.Request) -> web.Response:
    host = request.app[HOST_KEY]
    return web.json_response(
        [
            {"Name": s.name, "DisplayName": s.display_name, "Status": status.value}
            for s, status in host.status()
        ]
    )


async def _restart(request: web.Request) -> web.Response:
    host = request.app[HOST_KEY]
    name = request.match_info["name"]
    try:
        await host.restart(name)
    except ServiceError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    return web.json_response({"restarted": host.get(name).name})


def build_app(
    host: ServiceHost,
    verifier: PeerVerifier,
    info: dict[str, Any],
    extra_routes: list[RouteAdder] | None = None,
    watcher: DirectoryWatcher | None = None,
) -> web.Application:
    app = web.Application(middlewares=[_admin_only(verifier)], client_max_size=1024 * 1024)
    app[HOST_KEY] = host
    app[INFO_KEY] = info
    if watcher is not None:
        app[WATCHER_KEY] = watcher
    app.router.add_get("/health", _health)
    app.router.add_get("/version", _version)
    app.router.add_get("/roles", _roles)
    app.router.add_get("/services", _services)
    app.router.add_post("/services/{name}/restart", _restart)
    for add in extra_routes or []:
        add(app)
    return app
