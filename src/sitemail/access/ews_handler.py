"""``/EWS/Exchange.asmx``: Exchange Web Services and availability on a 2010 or 2007 CAS.

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
3. **serves** the operation from the store API (reading: :mod:`.ews_mailbox`,
   :mod:`.ews_folder_view`; changing messages and folders: :mod:`.ews_items`,
   :mod:`.ews_folders`; user configurations: :mod:`.ews_user_configuration`;
   calendar items, contacts and tasks: :mod:`.ews_typed`; synchronizing:
   :mod:`.ews_sync`; notifications: :mod:`.ews_notifications`, whose
   GetStreamingEvents answers one long chunked response; free/busy:
   :mod:`.ews_availability`), answering SOAP faults the way Exchange does
   (HTTP 500 with the EWS error code in the detail).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from aiohttp import web

from sitemail.access.ews_account import ACCOUNT_OPERATIONS, account_operation
from sitemail.access.ews_attachments import EwsAttachments
from sitemail.access.ews_availability import get_user_availability
from sitemail.access.ews_body import bodies_in_body_type
from sitemail.access.ews_distribution_lists import expand_dl
from sitemail.access.ews_export import EwsExport
from sitemail.access.ews_folder_view import FolderView
from sitemail.access.ews_folders import EwsFolders
from sitemail.access.ews_freebusy import FreeBusySource
from sitemail.access.ews_items import EwsItems
from sitemail.access.ews_mailbox import EwsMailbox, EwsStore
from sitemail.access.ews_message_fields import KeptHeaders
from sitemail.access.ews_notifications import (
    KEEPALIVE,
    MAX_STREAMS_PER_USER,
    SETTLE,
    TOO_MANY_STREAMS,
    EwsNotifications,
    StoreChanges,
)
from sitemail.access.ews_resolve import resolve_names
from sitemail.access.ews_soap import (
    SERVER_VERSION,
    EwsRequest,
    SoapFault,
    check_schema,
    envelope,
    fault_envelope,
    parse_request,
)
from sitemail.access.ews_subscriptions import Subscriptions, affinity_cookies
from sitemail.access.ews_sync import EwsSync
from sitemail.access.ews_sync_state import StateSeal
from sitemail.access.ews_time_zones import get_server_time_zones, use_request_zone
from sitemail.access.ews_typed import EwsTypedItems
from sitemail.access.ews_user_configuration import OPERATIONS as CONFIGURATION_OPERATIONS
from sitemail.access.ews_user_configuration import EwsUserConfigurations
from sitemail.access.folder_watch import FolderWatches
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

    #: Seconds in a minute of a subscription's Timeout and a stream's ConnectionTimeout
    #: (tests shorten it).
    STREAM_MINUTE = 60.0
    #: Seconds between a quiet stream's keep-alive envelopes, and that a stream woken by a
    #: change waits before reading it (ews_notifications; tests shorten them).
    STREAM_KEEPALIVE = KEEPALIVE
    STREAM_SETTLE = SETTLE

    def __init__(
        self,
        door: Callable[[], FrontDoor | None],
        store: Callable[[], EwsStore | None],
        *,
        state_key: bytes | None = None,
        subscriptions: Subscriptions | None = None,
    ) -> None:
        self._door = door
        self._headers = KeptHeaders()  # every request's messages' header properties
        self._store = store
        # SyncStates are sealed with this key: without one (tests), a key of this process.
        self._seal = StateSeal(state_key or secrets.token_bytes(32))
        # Pull and streaming subscriptions: this server's (its workers' shared file).
        self._subscriptions = subscriptions or Subscriptions()
        self._streams: dict[str, list[web.Request]] = {}
        self._watches: tuple[EwsStore, FolderWatches] | None = None

    async def __call__(
        self, request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        door = self._door()
        if door is None:
            return web.Response(status=503, text="The web site is starting.")
        # Every envelope of this request carries this server's ServerVersionInfo.
        SERVER_VERSION.set(door.version)
        proxied = user.method is SignInMethod.PROXIED
        mailbox = user.mailbox
        if request.method != "POST":
            return web.Response(
                status=405,
                headers={"Allow": "POST"},
                text="Exchange Web Services take SOAP requests by POST.",
            )
        outcome = door.decisions.decide(ctx, ClientProtocol.EWS, mailbox)
        if proxied and not isinstance(outcome, ServeLocally) and await _availability(request):
            # Another site's CAS asks for free/busy of this site's mailboxes (ews_freebusy).
            return await self._serve(door, request, ctx, user, local_only=True)
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
                answer = await self._serve(door, request, ctx, user)
                if not proxied and not answer.prepared:
                    for name, value in affinity_cookies(request.headers, door.server).items():
                        answer.set_cookie(name, value, path="/EWS", secure=True, httponly=True)
                return answer
            case Proxy():
                # The subscriptions live on the mailbox's site's CAS: the cookie names it.
                cookies = affinity_cookies(request.headers, outcome.target_server)
                return await door.handoff.forward_service(
                    request, ctx, outcome, user, cookies=cookies
                )
            case Legacy(action=Proxy() as action):
                # An Exchange 2007 mailbox: to the 2007 Client Access server of its site.
                return await door.handoff.forward_service(request, ctx, action, user)
            case Error() | Legacy() | _:
                message = outcome.message if isinstance(outcome, Error) else str(outcome)
                return fault_response(
                    SoapFault("ErrorMailboxStoreUnavailable", message, fault_code="s:Server")
                )

    async def _serve(
        self,
        door: FrontDoor,
        request: web.Request,
        ctx: RequestContext,
        user: AppUser,
        *,
        local_only: bool = False,
    ) -> web.StreamResponse:
        mailbox = user.mailbox
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
            box = EwsMailbox(store, mailbox, mailboxes, self._headers)
            if parsed.operation == "GetStreamingEvents":
                return await self._stream(request, parsed, box, door)
            source = FreeBusySource(door, store, ctx, user, local_only=local_only)
            answer = await self._operation(parsed, box, door, source)
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

    def _notifications(self, box: EwsMailbox, door: FrontDoor) -> EwsNotifications:
        return EwsNotifications(
            box,
            self._subscriptions,
            self._seal,
            door.clock,
            minute=self.STREAM_MINUTE,
            keepalive=self.STREAM_KEEPALIVE,
            settle=self.STREAM_SETTLE,
        )

    def _folder_watches(self, store: EwsStore) -> FolderWatches:
        """The long polls this worker's streams share (IMAP IDLE's kind), on the current store."""
        if self._watches is None or self._watches[0] is not store:
            self._watches = (store, FolderWatches(StoreChanges(store)))
        return self._watches[1]

    async def _stream(
        self, request: web.Request, parsed: EwsRequest, box: EwsMailbox, door: FrontDoor
    ) -> web.StreamResponse:
        """GetStreamingEvents: one long chunked answer, a bounded number per user at a time."""
        key = box.alias.casefold()
        # A stream whose client left frees its slot now, not when its handler next looks.
        open_now = [r for r in self._streams.get(key, []) if not _closed(r)]
        if len(open_now) >= MAX_STREAMS_PER_USER:
            raise SoapFault(
                TOO_MANY_STREAMS, f"A user may hold {MAX_STREAMS_PER_USER} streams open at a time."
            )
        self._streams[key] = [*open_now, request]
        try:
            watches = self._folder_watches(box.store)
            return await self._notifications(box, door).stream(request, parsed.body, watches)
        finally:
            left = [r for r in self._streams.get(key, []) if r is not request]
            if left:
                self._streams[key] = left
            else:
                self._streams.pop(key, None)

    async def _operation(
        self, request: EwsRequest, box: EwsMailbox, door: FrontDoor, source: FreeBusySource
    ) -> bytes:
        body = request.body
        use_request_zone(request.time_zone)
        items = EwsItems(box, door.clock)
        folders = EwsFolders(box)
        attachments = EwsAttachments(box, items.compose_attached)
        typed = EwsTypedItems(box, door.clock)
        if await typed.claims(request.operation, body):
            # Calendar items, contacts and tasks (:mod:`.ews_typed`); messages below.
            match request.operation:
                case "CreateItem":
                    return envelope(await typed.create_item(body))
                case "GetItem":
                    return envelope(await typed.get_item(body))
                case "UpdateItem":
                    return envelope(await typed.update_item(body))
                case "DeleteItem":
                    return envelope(await typed.delete_item(body))
                case "FindItem":
                    return envelope(await typed.find_item(body))
        match request.operation:
            case "GetFolder":
                return envelope(await FolderView(box).get_folder(body))
            case "FindFolder":
                return envelope(await FolderView(box).find_folder(body))
            case "FindItem":
                return envelope(await box.find_item(body))
            case "GetItem":
                return envelope(bodies_in_body_type(await box.get_item(body), body))
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
            case "SyncFolderItems":
                answer = await EwsSync(box, self._seal).sync_folder_items(body)
                return envelope(bodies_in_body_type(answer, body))
            case "SyncFolderHierarchy":
                return envelope(await EwsSync(box, self._seal).sync_folder_hierarchy(body))
            case "Subscribe":
                return envelope(await self._notifications(box, door).subscribe(body))
            case "GetEvents":
                return envelope(await self._notifications(box, door).get_events(body))
            case "Unsubscribe":
                return envelope(await self._notifications(box, door).unsubscribe(body))
            case "ResolveNames":
                # The directory and the user's Contacts folder (ews_resolve).
                return envelope(await resolve_names(box, body))
            case "ExpandDL":
                # Private lists of the Contacts folder (ews_distribution_lists).
                return envelope(await expand_dl(box, body))
            case "ConvertId":
                return envelope(box.convert_id(body))
            case operation if operation in CONFIGURATION_OPERATIONS:
                configurations = EwsUserConfigurations(box)
                return envelope(await configurations.serve(operation, body))
            case "GetUserAvailabilityRequest":
                return envelope(await get_user_availability(body, box.directory, source))
            case "GetServerTimeZones":
                return envelope(get_server_time_zones(body, door.clock.now().year))
        # OOF, mail tips, rooms, delegates, Inbox rules (ews_account).
        account = await account_operation(request.operation, body, box, door.directory, door.clock)
        if account is not None:
            return envelope(account)
        raise SoapFault(
            "ErrorInvalidOperation",
            f"{request.operation} is not among the operations sitemail's Exchange Web Services "
            f"serve ({', '.join(OPERATIONS)}).",
        )


async def _availability(request: web.Request) -> bool:
    """Whether the request is a GetUserAvailabilityRequest (read, bounded, from its body)."""
    try:
        return parse_request(await request.read()).operation == "GetUserAvailabilityRequest"
    except (SoapFault, web.HTTPRequestEntityTooLarge):
        return False


def _closed(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


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
    "SyncFolderItems",
    "SyncFolderHierarchy",
    "Subscribe",
    "GetEvents",
    "GetStreamingEvents",
    "Unsubscribe",
    "ResolveNames",
    "ExpandDL",
    "ConvertId",
    "GetUserAvailability",
    "GetServerTimeZones",
    *ACCOUNT_OPERATIONS,
    *CONFIGURATION_OPERATIONS,
)
