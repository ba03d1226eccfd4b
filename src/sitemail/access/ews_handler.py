"""``/EWS/Exchange.asmx``: Exchange Web Services (and the availability service) on a 2010 CAS.

One POST is one SOAP operation.  The front door has found the virtual
directory; this handler then

1. gets the user the front door signed in (:mod:`.web.authentication`): a
   request proxied by another Client Access server is for the user it names
   (server certificate, WindowsAuthentication on this virtual directory); a
   client signs in with Basic where the virtual directory allows it
   (``Set-WebServicesVirtualDirectory -BasicAuthentication $true``), since
   sitemail has no Kerberos/NTLM for clients;
2. **decides**: EWS is never redirected (spec 8.3 table): the mailbox's
   site serves it; from any other site it is proxied to the EWS
   InternalUrl of a CAS there (:mod:`.web.handoff`), the
   availability service with it (it lives on the same virtual directory);
3. **serves** the operation from the store API (reading: :mod:`.ews_mailbox`;
   changing messages and folders: :mod:`.ews_items`, :mod:`.ews_folders`;
   free/busy: :mod:`.ews_availability`), answering SOAP faults the way Exchange does
   (HTTP 500 with the EWS error code in the detail).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from sitemail.access.ews_attachments import EwsAttachments
from sitemail.access.ews_availability import get_server_time_zones, get_user_availability
from sitemail.access.ews_export import EwsExport
from sitemail.access.ews_folders import EwsFolders
from sitemail.access.ews_items import EwsItems
from sitemail.access.ews_mailbox import EwsMailbox, EwsStore
from sitemail.access.ews_soap import (
    EwsRequest,
    SoapFault,
    check_schema,
    envelope,
    fault_envelope,
    parse_request,
)
from sitemail.access.outcomes import ClientProtocol, Error, Legacy, Proxy, ServeLocally
from sitemail.access.web.common import AppUser, RequestContext, SignInMethod
from sitemail.access.web.front import FrontDoor
from sitemail.mailbox.errors import StoreError
from sitemail.org.model import Mailbox

__all__ = ["EwsHandler"]

log = logging.getLogger("sitemail.w3svc.ews")

_XML = "text/xml"


def soap_response(body: bytes, *, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=_XML, charset="utf-8")


def fault_response(fault: SoapFault, *, status: int = 500) -> web.Response:
    return soap_response(fault_envelope(fault), status=status)


class EwsHandler:
    """The EWS virtual directory's handler, plugged into the front door of one server."""

    def __init__(
        self,
        door: Callable[[], FrontDoor | None],
        store: Callable[[], EwsStore | None],
    ) -> None:
        self._door = door
        self._store = store

    async def __call__(
        self, request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        door = self._door()
        if door is None:
            return web.Response(status=503, text="The web site is starting.")
        proxied = user.method is SignInMethod.PROXIED
        mailbox = user.mailbox
        if request.method != "POST":
            return web.Response(
                status=405,
                headers={"Allow": "POST"},
                text="Exchange Web Services take SOAP requests by POST.",
            )
        outcome = door.decisions.decide(ctx, ClientProtocol.EWS, mailbox)
        if proxied and not isinstance(outcome, ServeLocally):
            # A proxied request is served here or not at all: no proxy chains.
            return fault_response(
                SoapFault(
                    "ErrorProxyRequestProcessingFailed",
                    f"{door.server} does not serve {mailbox.alias}'s mailbox, so it cannot take "
                    "a request another Client Access server proxied.",
                    fault_code="s:Server",
                ),
                status=421,
            )
        match outcome:
            case ServeLocally():
                return await self._serve(door, request, mailbox)
            case Proxy():
                return await door.handoff.forward_service(request, ctx, outcome, user)
            case Error() | Legacy() | _:
                message = outcome.message if isinstance(outcome, Error) else str(outcome)
                return fault_response(
                    SoapFault("ErrorMailboxStoreUnavailable", message, fault_code="s:Server")
                )

    async def _serve(
        self, door: FrontDoor, request: web.Request, mailbox: Mailbox
    ) -> web.StreamResponse:
        store = self._store()
        if store is None:
            return fault_response(
                SoapFault(
                    "ErrorMailboxStoreUnavailable",
                    "The mailbox store is not available.",
                    fault_code="s:Server",
                )
            )
        try:
            parsed = parse_request(await request.read())
            check_schema(parsed.schema)
            mailboxes = door.directory.list(Mailbox)
            box = EwsMailbox(store, mailbox, mailboxes)
            answer = await self._operation(parsed, box, door)
        except SoapFault as fault:
            return fault_response(fault)
        except web.HTTPRequestEntityTooLarge:
            return fault_response(
                SoapFault("ErrorRequestTooLarge", "The request is too large."), status=413
            )
        except StoreError as exc:
            log.warning("EWS for %s: %s", mailbox.alias, exc)
            return fault_response(
                SoapFault("ErrorMailboxStoreUnavailable", str(exc), fault_code="s:Server")
            )
        return soap_response(answer)

    async def _operation(self, request: EwsRequest, box: EwsMailbox, door: FrontDoor) -> bytes:
        body = request.body
        items = EwsItems(box, door.clock)
        folders = EwsFolders(box)
        attachments = EwsAttachments(box, items.compose_attached)
        match request.operation:
            case "GetFolder":
                return envelope(await box.get_folder(body))
            case "FindFolder":
                return envelope(await box.find_folder(body))
            case "FindItem":
                return envelope(await box.find_item(body))
            case "GetItem":
                return envelope(await box.get_item(body))
            case "CreateItem":
                return envelope(await items.create_item(body))
            case "UpdateItem":
                return envelope(await items.update_item(body))
            case "DeleteItem":
                return envelope(await items.delete_item(body))
            case "MoveItem" | "CopyItem":
                return envelope(await items.move_item(body, request.operation))
            case "SendItem":
                return envelope(await items.send_item(body))
            case "CreateAttachment":
                return envelope(await attachments.create_attachment(body))
            case "GetAttachment":
                return envelope(await attachments.get_attachment(body))
            case "DeleteAttachment":
                return envelope(await attachments.delete_attachment(body))
            case "ExportItems":
                return envelope(await EwsExport(box).export_items(body))
            case "UploadItems":
                return envelope(await EwsExport(box).upload_items(body))
            case "CreateFolder":
                return envelope(await folders.create_folder(body))
            case "UpdateFolder":
                return envelope(await folders.update_folder(body))
            case "DeleteFolder":
                return envelope(await folders.delete_folder(body))
            case "MoveFolder":
                return envelope(await folders.move_folder(body))
            case "EmptyFolder":
                return envelope(await folders.empty_folder(body))
            case "ResolveNames":
                return envelope(box.resolve_names(body))
            case "ConvertId":
                return envelope(box.convert_id(body))
            case "GetUserAvailabilityRequest":
                return envelope(get_user_availability(body, box.directory))
            case "GetServerTimeZones":
                return envelope(get_server_time_zones(body))
        raise SoapFault(
            "ErrorInvalidOperation",
            f"{request.operation} is not among the operations sitemail's Exchange Web Services "
            f"serve ({', '.join(OPERATIONS)}).",
        )


#: The operations served, as the refusal of any other names them.
OPERATIONS = (
    "GetFolder",
    "FindFolder",
    "CreateFolder",
    "UpdateFolder",
    "DeleteFolder",
    "MoveFolder",
    "EmptyFolder",
    "FindItem",
    "GetItem",
    "CreateItem",
    "UpdateItem",
    "DeleteItem",
    "MoveItem",
    "CopyItem",
    "SendItem",
    "CreateAttachment",
    "GetAttachment",
    "DeleteAttachment",
    "ExportItems",
    "UploadItems",
    "ResolveNames",
    "ConvertId",
    "GetUserAvailability",
    "GetServerTimeZones",
)
