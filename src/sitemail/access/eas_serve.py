"""Serving one ActiveSync request for a mailbox this server reads (2010 CAS, or the 2003 back-end).

The caller has authenticated the user and decided that this server does
the work; here the request is checked against what the server speaks
(:class:`~.eas_request.EasBanner`), the WBXML body decoded, the command run
(:mod:`.eas_commands`, SendMail in :mod:`.eas_send`) and the answer encoded.
OPTIONS answers with the banner's headers.  An unsupported protocol version
(an EAS 16.x device on Exchange 2010, say) gets
:data:`UNSUPPORTED_VERSION_STATUS` and an unknown command HTTP 501, each
with a sentence saying which are served.
"""

from __future__ import annotations

import logging

from aiohttp import web

from sitemail.access.decision import parse_eas_version
from sitemail.access.eas_commands import EasContext, EasStore, folder_sync, provision, sync
from sitemail.access.eas_request import WBXML_TYPE, EasBanner, EasRequest
from sitemail.access.eas_send import (
    Outgoing,
    SendRefused,
    refusal,
    send_mail,
    send_mail_request,
)
from sitemail.access.eas_state import SyncStates
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.records import Address
from sitemail.protocols.wbxml import Element, WbxmlError, decode, encode

__all__ = ["UNSUPPORTED_VERSION_STATUS", "serve_eas"]

#: What Exchange 2010 answers a command in a protocol version it does not speak (16.x):
#: HTTP 400 is what sitemail has always sent; Exchange's own status is unverified.
UNSUPPORTED_VERSION_STATUS = 400  # unverified

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
    owner: Address | None = None,
) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=200, headers=banner.headers())
    if request.method != "POST":
        return web.Response(status=405, headers={"Allow": "OPTIONS,POST"})
    version = parse_eas_version(parsed.version)
    if parsed.version not in banner.protocol_versions or version is None:
        return _text(
            UNSUPPORTED_VERSION_STATUS,
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
    if parsed.command == "SendMail" and version < (14, 0):
        # EAS 2.x and 12.x send the message itself, not WBXML.
        try:
            mime = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _text(413, "The request body is too large.", banner)
        outgoing = Outgoing(client_id=None, mime=mime, save_copy=parsed.save_in_sent)
        return await _send(outgoing, parsed, alias, store, states, banner, wbxml=False)
    try:
        document = decode(await request.read())
    except WbxmlError as exc:
        return _text(400, f"The request body is not ActiveSync WBXML: {exc}.", banner)
    except web.HTTPRequestEntityTooLarge:
        return _text(413, "The request body is too large.", banner)
    ctx = EasContext(
        store=store,
        states=states,
        alias=alias,
        device_id=parsed.device_id,
        version=version,
        owner=owner,
    )
    try:
        answer: Element
        if parsed.command == "SendMail":
            try:
                outgoing = send_mail_request(document)
            except SendRefused as exc:
                return _wbxml(refusal(exc.status), banner)
            return await _send(outgoing, parsed, alias, store, states, banner, wbxml=True)
        if parsed.command == "FolderSync":
            answer = await folder_sync(document, ctx)
        elif parsed.command == "Sync":
            answer = await sync(document, ctx)
        else:
            answer = provision(document)
    except StoreError as exc:
        log.warning("ActiveSync %s for %s: %s", parsed.command, alias, exc)
        return _text(503, f"The mailbox store is not available: {exc}", banner)
    return _wbxml(answer, banner)


def _wbxml(answer: Element, banner: EasBanner) -> web.Response:
    response = web.Response(status=200, body=encode(answer), content_type=WBXML_TYPE)
    response.headers["MS-Server-ActiveSync"] = banner.server_version
    return response


async def _send(
    outgoing: Outgoing,
    parsed: EasRequest,
    alias: str,
    store: EasStore,
    states: SyncStates,
    banner: EasBanner,
    *,
    wbxml: bool,
) -> web.Response:
    """SendMail: HTTP 200 and no body once submitted; a refusal as the device's version reads it."""
    try:
        await send_mail(outgoing, store, states, alias, parsed.device_id)
    except SendRefused as exc:
        if wbxml:
            return _wbxml(refusal(exc.status), banner)
        return _text(400, f"The message was not sent: {exc.reason}.", banner)
    except StoreError as exc:
        log.warning("ActiveSync SendMail for %s: %s", alias, exc)
        return _text(503, f"The mailbox store is not available: {exc}", banner)
    response = web.Response(status=200)
    response.headers["MS-Server-ActiveSync"] = banner.server_version
    return response
