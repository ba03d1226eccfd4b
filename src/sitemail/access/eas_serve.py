"""Serving one ActiveSync request for a mailbox this server reads (2010 CAS, or the 2003 back-end).

The caller has authenticated the user and decided that this server does
the work; here the request is checked against what the server speaks
(:class:`~.eas_request.EasBanner`), the WBXML body decoded, the command run
(:mod:`.eas_commands`) and the answer encoded.  OPTIONS answers with the
banner's headers.  An unsupported protocol version gets HTTP 400 and an
unknown command HTTP 501, each with a sentence saying which are served.
"""

from __future__ import annotations

import logging

from aiohttp import web

from sitemail.access.decision import parse_eas_version
from sitemail.access.eas_commands import EasContext, EasStore, folder_sync, provision, sync
from sitemail.access.eas_request import WBXML_TYPE, EasBanner, EasRequest
from sitemail.access.eas_state import SyncStates
from sitemail.mailbox.errors import StoreError
from sitemail.protocols.wbxml import Element, WbxmlError, decode, encode

__all__ = ["serve_eas"]

log = logging.getLogger("sitemail.w3svc.eas")


def _text(status: int, text: str, banner: EasBanner) -> web.Response:
    response = web.Response(status=status, text=text, content_type="text/plain")
    response.headers["MS-Server-ActiveSync"] = banner.server_version
    return response


async def serve_eas(
    request: web.Request,
    parsed: EasRequest,
    alias: str,
    store: EasStore,
    states: SyncStates,
    banner: EasBanner,
) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=200, headers=banner.headers())
    if request.method != "POST":
        return web.Response(status=405, headers={"Allow": "OPTIONS,POST"})
    version = parse_eas_version(parsed.version)
    if parsed.version not in banner.protocol_versions or version is None:
        return _text(
            400,
            f"MS-ASProtocolVersion {parsed.version or '(none)'} is not spoken here; use one of "
            f"{','.join(banner.protocol_versions)}.",
            banner,
        )
    if parsed.command not in banner.commands:
        return _text(
            501,
            f"The command {parsed.command} is not served here; served: "
            f"{','.join(banner.commands)}.",
            banner,
        )
    try:
        document = decode(await request.read())
    except WbxmlError as exc:
        return _text(400, f"The request body is not ActiveSync WBXML: {exc}.", banner)
    except web.HTTPRequestEntityTooLarge:
        return _text(413, "The request body is too large.", banner)
    ctx = EasContext(
        store=store, states=states, alias=alias, device_id=parsed.device_id, version=version
    )
    try:
        answer: Element
        if parsed.command == "FolderSync":
            answer = await folder_sync(document, ctx)
        elif parsed.command == "Sync":
            answer = await sync(document, ctx)
        else:
            answer = provision(document)
    except StoreError as exc:
        log.warning("ActiveSync %s for %s: %s", parsed.command, alias, exc)
        return _text(503, f"The mailbox store is not available: {exc}", banner)
    response = web.Response(status=200, body=encode(answer), content_type=WBXML_TYPE)
    response.headers["MS-Server-ActiveSync"] = banner.server_version
    return response
