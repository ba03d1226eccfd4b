"""The store API: HTTPS routes a hub (delivery) and a CAS (OWA, POP3, IMAP4, EWS) call.

Every route names a mailbox (alias or address) and is refused with 409
``wrong_server`` unless the mailbox's database is on this server.  Only a
TLS client presenting a certificate of a *server of the organization* (or
the organization admin's, for diagnostics) is served: the others get 403.
Metadata travels as JSON (the records of :mod:`sitemail.mailbox.records`),
message bodies as streamed bytes both ways, so a 10 MB message never sits
in memory.  Every input is bounded; errors are ``{"error", "message"}`` with
the status of :mod:`sitemail.mailbox.errors`.

Routes (under an optional prefix)::

    POST   /mailboxes/{mb}/deliver?id=ID                      raw body -> DeliveryResult
    POST   /deliveries                 multipart batch (.delivery_batch) -> {"results": [...]}
    GET    /mailboxes/{mb}/folders[?path=A/B|?all=1]          {"folders": [Folder]} | Folder
    POST   /mailboxes/{mb}/folders                            {"name","parent"?,"class"?} -> Folder
    GET    /mailboxes/{mb}/folders/{f}                        Folder
    PATCH  /mailboxes/{mb}/folders/{f}                        {"name"?, "parent"?} -> Folder
    DELETE /mailboxes/{mb}/folders/{f}                        {"deleted": [ids]}
    GET    /mailboxes/{mb}/folders/{f}/messages?offset&limit&order=newest|oldest  MessagePage
    POST   /mailboxes/{mb}/folders/{f}/append?flags=seen,draft&received=ISO  raw -> Placement
    GET    /mailboxes/{mb}/folders/{f}/uids?since&limit       FolderUids
    GET    /mailboxes/{mb}/folders/{f}/changes?modseq&wait    FolderChanges (long poll)
    POST   /mailboxes/{mb}/folders/{f}/flags                  {"uids","add","remove","replace"}
    POST   /mailboxes/{mb}/folders/{f}/expunge                {"uids"?} -> ExpungeResult
    GET    /mailboxes/{mb}/messages/{id}                      MessageDetail
    GET    /mailboxes/{mb}/messages/{id}/raw?start&length     raw bytes
    GET    /mailboxes/{mb}/messages/{id}/parts/{part}         decoded part bytes
    PATCH  /mailboxes/{mb}/messages/{id}                      FlagUpdate -> MessageSummary
    POST   /mailboxes/{mb}/messages/{id}/move                 {"folder"} -> Placement
    POST   /mailboxes/{mb}/messages/{id}/copy                 {"folder"} -> Placement
    POST   /mailboxes/{mb}/messages/{id}/submit               -> Placement (moved to Outbox)
    DELETE /mailboxes/{mb}/messages/{id}?hard=1               {"placement": Placement|null}
    GET    /mailboxes/{mb}/search?q&folder&fields&offset&limit  MessagePage

Calendar items, contacts and tasks have their routes in :mod:`.store_api_items`,
a folder's properties in :mod:`.store_api_folders`.

``{f}`` is a folder id, a well-known folder name (``inbox``, ``drafts``,
``sentitems``, ``deleteditems``, ``junkemail``, ``outbox`` ...) or a system
folder's key (``recoverableitemsdeletions`` ..., :mod:`.system_folders`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from sitemail.mailbox.database import SEARCH_FIELDS, StoreDatabase
from sitemail.mailbox.delivery_batch import (
    DELIVER_TO,
    MAX_PARTS,
    MAX_RECIPIENTS,
    answers_json,
    parse_recipients,
)
from sitemail.mailbox.errors import (
    AccessDenied,
    InvalidRequest,
    MessageTooLarge,
    StoreError,
)
from sitemail.mailbox.folder_tree import FolderRef
from sitemail.mailbox.limits import (
    MAX_FOLDER_NAME,
    MAX_MAILBOX_NAME,
    MAX_PAGE_SIZE,
    MAX_QUERY,
    MAX_UID_PAGE,
)
from sitemail.mailbox.locate import MailboxLocation
from sitemail.mailbox.readers import PartReader, RawReader
from sitemail.mailbox.records import FLAG_NAMES, Flags, FlagUpdate
from sitemail.mailbox.sources import CHUNK_SIZE
from sitemail.mailbox.store_api_bytes import SHORT_RANGE, short_range
from sitemail.mailbox.store_api_folders import folder_routes, kept_answer
from sitemail.mailbox.store_api_items import item_routes
from sitemail.mailbox.store_api_settings import settings_routes
from sitemail.mailbox.store_backend import StoreBackend
from sitemail.mailbox.store_json import record_bytes, records_bytes, records_response
from sitemail.mailbox.store_json import record_response as _json
from sitemail.org.pki import CertFiles, PeerIdentity, PeerVerifier, server_ssl_context

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: JSON request bodies are small (a folder name, a list of UIDs).
MAX_JSON_BODY = 256 * 1024
#: The longest a ``changes`` request may wait for something to happen.
MAX_WAIT_SECONDS = 60.0
#: How long stopping the service waits for requests in flight.
SHUTDOWN_TIMEOUT = 10.0
_MAX_ID = 2**63 - 1

BACKEND_KEY = web.AppKey("store_backend", StoreBackend)


def store_ssl_context(files: CertFiles, ca_file: Path) -> ssl.SSLContext:
    """The TLS server context of the store API.

    Client certificates are *optional* at the TLS layer: a client without
    one completes the handshake and gets a readable 403 instead of a bare
    handshake failure.  A certificate that does not chain to the
    organization CA still fails the handshake (OpenSSL checks what a client
    presents), and the routes then admit only servers and the admin.
    """
    context = server_ssl_context(files, ca_file=ca_file, client_certs="optional")
    # No TLS 1.3 session tickets: the store's clients keep their connections and never
    # resume a session, and each ticket (it carries the client's certificate) is most
    # of a kilobyte written on every new connection for nothing.
    context.num_tickets = 0
    return context


def add_store_routes(
    app: web.Application, backend: StoreBackend, verifier: PeerVerifier, *, prefix: str = ""
) -> None:
    """Add the store API's routes to ``app`` (created by the caller)."""
    app[BACKEND_KEY] = backend
    routes = _Routes(backend, verifier)
    base = f"{prefix}/mailboxes/{{mailbox}}"
    folder = f"{base}/folders/{{folder}}"
    message = f"{base}/messages/{{id}}"
    # aiohttp tries the routes under /mailboxes one by one in this order: the page
    # every OWA view asks for comes first (no other route matches a folder route's
    # paths, so the order changes no match).
    table = folder_routes(backend, routes._mailbox, _json_body, base)
    table += [
        ("POST", f"{base}/deliver", routes.deliver),
        ("POST", f"{prefix}/deliveries", routes.deliveries),
        ("GET", f"{base}/folders", routes.list_folders),
        ("POST", f"{base}/folders", routes.create_folder),
        ("GET", folder, routes.get_folder),
        ("PATCH", folder, routes.update_folder),
        ("DELETE", folder, routes.delete_folder),
        ("GET", f"{folder}/messages", routes.list_messages),
        ("POST", f"{folder}/append", routes.append),
        ("GET", f"{folder}/uids", routes.uids),
        ("GET", f"{folder}/changes", routes.changes),
        ("POST", f"{folder}/flags", routes.store_flags),
        ("POST", f"{folder}/expunge", routes.expunge),
        ("GET", message, routes.get_message),
        ("GET", f"{message}/raw", routes.raw),
        ("PUT", f"{message}/raw", routes.replace),
        ("GET", f"{message}/properties", routes.get_properties),
        ("PUT", f"{message}/properties", routes.set_properties),
        ("GET", f"{message}/parts/{{part}}", routes.part),
        ("PATCH", message, routes.set_flags),
        ("POST", f"{message}/move", routes.move),
        ("POST", f"{message}/copy", routes.copy),
        ("POST", f"{message}/submit", routes.submit),
        ("DELETE", message, routes.delete),
        ("GET", f"{base}/search", routes.search),
    ]
    table += item_routes(backend, routes._mailbox, _json_body, base)
    table += settings_routes(backend, routes._mailbox, _json_body, base)
    for method, path, handler in table:
        app.router.add_route(method, path, routes.guard(handler))


def create_store_app(backend: StoreBackend, verifier: PeerVerifier) -> web.Application:
    """An application serving only the store API."""
    # Message bodies are streamed and bounded by the routes themselves; this
    # limit only caps what aiohttp would read into memory on its own.
    app = web.Application(client_max_size=MAX_JSON_BODY)
    add_store_routes(app, backend, verifier)
    return app


class StoreServer:
    """The store API on its own TLS site at (host, port); port 0 picks a free one."""

    def __init__(
        self,
        backend: StoreBackend,
        verifier: PeerVerifier,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self.backend = backend
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._app = create_store_app(backend, verifier)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(
            self._app,
            access_log=None,
            handle_signals=False,
            # Stopping waits this long for requests in flight (a message still
            # streaming to a client); long polls are woken before that.
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl, backlog=128)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])

    async def stop(self) -> None:
        self.backend.wake_all()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


# --------------------------------------------------------------------- routes


class _Routes:
    def __init__(self, backend: StoreBackend, verifier: PeerVerifier) -> None:
        self.backend = backend
        self.verifier = verifier

    def guard(self, handler: Handler) -> Handler:
        """Admit only organization servers and the admin; turn store errors into JSON."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                self._peer(request)
                return await handler(request)
            except StoreError as exc:
                return web.json_response(exc.to_json(), status=exc.status)

        return guarded

    def _peer(self, request: web.Request) -> PeerIdentity:
        tls = request.transport.get_extra_info("ssl_object") if request.transport else None
        if not isinstance(tls, ssl.SSLObject):
            raise AccessDenied(
                "the store API needs TLS with a server certificate of the organization"
            )
        identity = self.verifier.identify_ssl(tls)
        if identity is None:
            raise AccessDenied(
                "the store API serves only servers of the organization (and its admin): "
                "present a server certificate issued by the organization CA"
            )
        return identity

    async def _mailbox(self, request: web.Request) -> tuple[StoreDatabase, MailboxLocation]:
        name = request.match_info["mailbox"]
        if len(name) > MAX_MAILBOX_NAME:
            raise InvalidRequest(f"mailbox name longer than {MAX_MAILBOX_NAME} characters")
        return await self.backend.place(name)

    # -- delivery and append

    async def deliver(self, request: web.Request) -> web.StreamResponse:
        delivery_id = request.query.get("id", "")
        if not delivery_id:
            raise InvalidRequest("deliver needs ?id=<internal message id>:<recipient>")
        db, where = await self._mailbox(request)
        with await self._spool(request) as spool:
            result = await self.backend.run(lambda: db.deliver(where.alias, delivery_id, spool))
        return _json(result, status=200 if result.duplicate else 201)

    async def deliveries(self, request: web.Request) -> web.StreamResponse:
        """A hub's batch (:mod:`.delivery_batch`): every message spooled, then stored
        with one transaction per database."""
        if not request.content_type.startswith("multipart/"):
            raise InvalidRequest("a delivery batch is a multipart body")
        reader = await request.multipart()
        spooled: list[tuple[IO[bytes] | StoreError, list[tuple[str, str]]]] = []
        count = 0
        try:
            while (part := await _next_part(reader)) is not None:
                if not isinstance(part, BodyPartReader) or len(spooled) >= MAX_PARTS:
                    raise InvalidRequest(
                        f"a delivery batch holds at most {MAX_PARTS} messages, not nested parts"
                    )
                recipients = parse_recipients(part.headers.get(DELIVER_TO))
                count += len(recipients)
                if count > MAX_RECIPIENTS:
                    raise InvalidRequest(
                        f"a delivery batch holds at most {MAX_RECIPIENTS} recipients"
                    )
                body: IO[bytes] | StoreError
                try:
                    body = await self._spool_chunks(part.read_chunk, part.headers)
                except MessageTooLarge as exc:
                    body = exc
                spooled.append((body, recipients))
            answers = await self.backend.run(lambda: self.backend.deliver_spooled(spooled))
        finally:
            for body, _ in spooled:
                if not isinstance(body, StoreError):
                    body.close()
        return web.json_response(answers_json(answers))

    async def append(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        folder = _folder_ref(request.match_info["folder"])
        flags = _flags_param(request.query.get("flags", ""))
        received = _time_param(request.query.get("received"))
        with await self._spool(request) as spool:
            placed = await self.backend.run(
                lambda: db.append(where.alias, folder, spool, flags=flags, received_at=received)
            )
        return _json(placed, status=201)

    async def replace(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        with await self._spool(request) as spool:
            placed = await self.backend.run(lambda: db.replace(where.alias, message_id, spool))
        return _json(placed)

    async def get_properties(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        return _json(await self.backend.run(lambda: db.get_properties(where.alias, message_id)))

    async def set_properties(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        body = await _json_body(request, allow_empty=True)
        properties = body.get("properties", {})
        if not isinstance(properties, dict):
            raise InvalidRequest("properties must be a JSON object")
        return _json(
            await self.backend.run(lambda: db.set_properties(where.alias, message_id, properties))
        )

    async def _spool(self, request: web.Request) -> IO[bytes]:
        """The request body in an anonymous temporary file, refused beyond the size limit."""
        return await self._spool_chunks(
            lambda: request.content.read(CHUNK_SIZE), request.headers, drain=False
        )

    async def _spool_chunks(
        self,
        read: Callable[[], Awaitable[bytes]],
        headers: Mapping[str, str],
        *,
        drain: bool = True,
    ) -> IO[bytes]:
        """A body read by ``read()`` (empty at its end) in an anonymous temporary file.

        Beyond the size limit MessageTooLarge; with ``drain`` the rest of the
        body is read and dropped first (a batch part: the parts after it still count).
        """
        limit = self.backend.max_message_size
        length = headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            if drain:
                while await read():
                    pass
            raise MessageTooLarge(
                f"message of {length} bytes is larger than the store's limit of {limit} bytes"
            )
        spool = self.backend.spool_file()  # in memory until it is large (no thread hop)
        try:
            size = 0
            # Writes go to the page cache and take microseconds: done inline
            # rather than paying a thread hop per chunk.
            while chunk := await read():
                size += len(chunk)
                if size > limit:
                    if drain:
                        while await read():
                            pass
                    raise MessageTooLarge(
                        f"message is larger than the store's limit of {limit} bytes"
                    )
                spool.write(chunk)
            spool.flush()
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool

    # -- folders

    async def list_folders(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        path = request.query.get("path")
        if path is not None:
            if len(path) > 64 * (MAX_FOLDER_NAME + 1):
                raise InvalidRequest("folder path too long")
            return _json(await self.backend.run(lambda: db.find_folder(where.alias, path)))
        every = request.query.get("all") == "1"  # Exchange's own folders too
        key = (db.name, where.alias.casefold(), "folders", every)
        return await kept_answer(
            self.backend,
            request,
            db,
            key,
            lambda: records_bytes("folders", db.list_folders(where.alias, everything=every)),
        )

    async def create_folder(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        body = await _json_body(request)
        name = _str_field(body, "name", required=True)
        parent = _folder_field(body, "parent")
        kind = _str_field(body, "class") if body.get("class") is not None else "IPF.Note"
        folder = await self.backend.run(lambda: db.create_folder(where.alias, name, parent, kind))
        return _json(folder, status=201)

    async def get_folder(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        ref = _folder_ref(request.match_info["folder"])
        return _json(await self.backend.run(lambda: db.get_folder(where.alias, ref)))

    async def update_folder(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        ref = _folder_ref(request.match_info["folder"])
        body = await _json_body(request)
        unknown = set(body) - {"name", "parent"}
        if unknown or not body:
            raise InvalidRequest('update a folder with {"name": ...} and/or {"parent": id|null}')
        name = _str_field(body, "name") if "name" in body else None
        parent = _folder_field(body, "parent")

        def update() -> Any:
            result = None
            if "parent" in body:
                result = db.move_folder(where.alias, ref, parent)
            if name is not None:
                result = db.rename_folder(where.alias, ref, name)
            return result

        return _json(await self.backend.run(update))

    async def delete_folder(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        ref = _folder_ref(request.match_info["folder"])
        deleted = await self.backend.run(lambda: db.delete_folder(where.alias, ref))
        return web.json_response({"deleted": deleted})

    # -- messages

    async def list_messages(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        ref = _folder_ref(request.match_info["folder"])
        offset = _int_param(request, "offset", 0, 0, _MAX_ID)
        limit = _int_param(request, "limit", 50, 1, MAX_PAGE_SIZE)
        order = request.query.get("order", "newest")
        if order not in ("newest", "oldest"):
            raise InvalidRequest("order must be newest or oldest")
        key = (db.name, where.alias.casefold(), "messages", ref, offset, limit, order)
        return await kept_answer(
            self.backend,
            request,
            db,
            key,
            lambda: record_bytes(
                db.list_messages(
                    where.alias, ref, offset=offset, limit=limit, oldest_first=order == "oldest"
                )
            ),
        )

    async def get_message(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        return _json(await self.backend.run(lambda: db.get_message(where.alias, message_id)))

    async def raw(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        start = _int_param(request, "start", 0, 0, _MAX_ID)
        length = _opt_int_param(request, "length", 0, _MAX_ID)
        if length is not None and length <= SHORT_RANGE:
            return await short_range(self.backend, db, where.alias, message_id, start, length)
        reader = await self.backend.run(
            lambda: db.open_raw(where.alias, message_id, start=start, length=length)
        )
        headers = {"X-Message-Size": str(reader.total_size)}
        return await self._stream(request, reader, "message/rfc822", reader.size, headers)

    async def part(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        part_id = request.match_info["part"]
        if len(part_id) > 64:
            raise InvalidRequest("part number too long")
        reader = await self.backend.run(lambda: db.open_part(where.alias, message_id, part_id))
        # The decoded length is unknown until decoded, so the body is chunked;
        # the part's own type is in the message's structure, not trusted here.
        return await self._stream(request, reader, "application/octet-stream", None, {})

    async def _stream(
        self,
        request: web.Request,
        reader: RawReader | PartReader,
        content_type: str,
        size: int | None,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        try:
            response = web.StreamResponse(headers={"Content-Type": content_type, **headers})
            if size is not None:
                response.content_length = size
            await response.prepare(request)
            while True:
                chunk = await self.backend.run(reader.read)
                if not chunk:
                    break
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            await self.backend.run(reader.close)

    async def set_flags(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        update = _model(FlagUpdate, await _json_body(request))
        return _json(await self.backend.run(lambda: db.set_flags(where.alias, message_id, update)))

    async def move(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        target = _target(await _json_body(request))
        return _json(await self.backend.run(lambda: db.move(where.alias, message_id, target)))

    async def copy(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        target = _target(await _json_body(request))
        placed = await self.backend.run(lambda: db.copy(where.alias, message_id, target))
        return _json(placed, status=201)

    async def submit(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        return _json(await self.backend.run(lambda: db.submit(where.alias, message_id)))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        message_id = _message_id(request)
        hard = _bool_param(request, "hard")
        placed = await self.backend.run(lambda: db.delete(where.alias, message_id, hard=hard))
        return web.json_response(
            {"placement": None if placed is None else placed.model_dump(mode="json")}
        )

    async def search(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        query = request.query.get("q", "")
        if not query.strip() or len(query) > MAX_QUERY:
            raise InvalidRequest(f"search needs ?q= with 1 to {MAX_QUERY} characters")
        folder_text = request.query.get("folder")
        folder = None if folder_text is None else _folder_ref(folder_text)
        fields_text = request.query.get("fields")
        fields = SEARCH_FIELDS if not fields_text else frozenset(fields_text.split(","))
        offset = _int_param(request, "offset", 0, 0, _MAX_ID)
        limit = _int_param(request, "limit", 50, 1, MAX_PAGE_SIZE)
        page = await self.backend.run(
            lambda: db.search(
                where.alias, query, folder=folder, fields=fields, offset=offset, limit=limit
            )
        )
        return _json(page)

    # -- IMAP

    async def uids(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        ref = _folder_ref(request.match_info["folder"])
        since = _int_param(request, "since", 0, 0, _MAX_ID)
        limit = _int_param(request, "limit", MAX_UID_PAGE, 1, MAX_UID_PAGE)
        return _json(
            await self.backend.run(lambda: db.uids(where.alias, ref, since=since, limit=limit))
        )

    async def changes(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        ref = _folder_ref(request.match_info["folder"])
        modseq = _int_param(request, "modseq", 0, 0, _MAX_ID)
        wait = _float_param(request, "wait", 0.0, 0.0, MAX_WAIT_SECONDS)

        def look() -> Any:
            return db.changes(where.alias, ref, modseq)

        found = await self.backend.run(look)
        if wait and not (found.changed or found.vanished):
            key = where.alias.lower()
            event = self.backend.watch(key)
            try:
                found = await self.backend.run(look)  # a change may have come meanwhile
                if not (found.changed or found.vanished):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), wait)
                    found = await self.backend.run(look)
            finally:
                self.backend.unwatch(key, event)
        return _json(found)

    async def store_flags(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        ref = _folder_ref(request.match_info["folder"])
        body = await _json_body(request)
        uids = _uid_list(body.get("uids"))
        add = _flag_list(body.get("add", []))
        remove = _flag_list(body.get("remove", []))
        replace = None if body.get("replace") is None else _flag_list(body["replace"])
        entries = await self.backend.run(
            lambda: db.store_flags(where.alias, ref, uids, add=add, remove=remove, replace=replace)
        )
        return records_response("entries", entries)

    async def expunge(self, request: web.Request) -> web.StreamResponse:
        db, where = await self._mailbox(request)
        ref = _folder_ref(request.match_info["folder"])
        body = await _json_body(request, allow_empty=True)
        uids = None if body.get("uids") is None else _uid_list(body["uids"])
        return _json(await self.backend.run(lambda: db.expunge(where.alias, ref, uids)))


# ------------------------------------------------------------------- helpers


async def _next_part(reader: MultipartReader) -> Any:
    """The next part of a batch; a framing error (a header line over aiohttp's 8 KiB,
    a bad boundary) is the client's: 400, not 500."""
    try:
        return await reader.next()
    except (ValueError, HttpProcessingError) as exc:
        raise InvalidRequest(f"the delivery batch is not well-formed multipart: {exc}") from None


async def _json_body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise InvalidRequest(f"JSON body larger than {MAX_JSON_BODY} bytes")
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > MAX_JSON_BODY:
            raise InvalidRequest(f"JSON body larger than {MAX_JSON_BODY} bytes")
    if not data.strip():
        if allow_empty:
            return {}
        raise InvalidRequest("this request needs a JSON object body")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    return body


def _model(cls: type[FlagUpdate], body: dict[str, Any]) -> FlagUpdate:
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}") from None


def _str_field(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f'"{name}" must be a string' + (" (required)" if required else ""))
    return value


def _folder_field(body: dict[str, Any], name: str) -> FolderRef | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRequest(f'"{name}" must be a folder id or a well-known folder name')
    return _folder_ref(value)


def _target(body: dict[str, Any]) -> FolderRef:
    target = _folder_field(body, "folder")
    if target is None:
        raise InvalidRequest('this request needs {"folder": <folder id or well-known name>}')
    return target


def _folder_ref(value: int | str) -> FolderRef:
    if isinstance(value, int):
        if not 0 < value <= _MAX_ID:
            raise InvalidRequest(f"folder id {value} is out of range")
        return value
    if not value or len(value) > 64:
        raise InvalidRequest("folder must be a folder id or a well-known folder name")
    if value.isdigit():
        return _folder_ref(int(value))
    return value


def _message_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 19 or not 0 < int(text) <= _MAX_ID:
        raise InvalidRequest(f"message id {text[:40]!r} is not a positive integer")
    return int(text)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    value = _opt_int_param(request, name, low, high)
    return default if value is None else value


def _opt_int_param(request: web.Request, name: str, low: int, high: int) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 19 or not low <= int(text) <= high:
        raise InvalidRequest(f"?{name}= must be a whole number from {low} to {high}")
    return int(text)


def _float_param(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise InvalidRequest(f"?{name}= must be a number of seconds from {low:g} to {high:g}")
    return value


def _bool_param(request: web.Request, name: str) -> bool:
    text = request.query.get(name, "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise InvalidRequest(f"?{name}= must be true or false")


def _time_param(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest("?received= must be an ISO 8601 time with a UTC offset") from None
    if value.tzinfo is None:
        raise InvalidRequest("?received= must carry a UTC offset (for example +00:00)")
    return value


def _flags_param(text: str) -> Flags:
    names = [n for n in text.split(",") if n] if text else []
    return Flags.of(tuple(_flag_list(names)))


def _flag_list(value: object) -> list[str]:
    if not isinstance(value, list) or len(value) > len(FLAG_NAMES) * 2:
        raise InvalidRequest(f"flags must be a list among {', '.join(FLAG_NAMES)}")
    unknown = [v for v in value if v not in FLAG_NAMES]
    if unknown:
        raise InvalidRequest(
            f"unknown flag {str(unknown[0])[:40]!r}: expected {', '.join(FLAG_NAMES)}"
        )
    return [str(v) for v in value]


def _uid_list(value: object) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_UID_PAGE:
        raise InvalidRequest(f'"uids" must be a list of at most {MAX_UID_PAGE} UIDs')
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= _MAX_ID for v in value):
        raise InvalidRequest('"uids" must hold positive whole numbers')
    return [int(v) for v in value]
