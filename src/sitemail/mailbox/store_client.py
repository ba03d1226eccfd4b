"""The client of the store API, for hubs (delivery) and client access servers.

It finds a mailbox's server through the directory (mailbox -> homeMDB ->
server, spec 6.1/8.2), asks the caller's ``resolve(server_name)`` for the
address and port to connect to (in the lab that depends on the caller's
site), and calls that server over TLS: it presents its own server
certificate, trusts only the organization CA, and checks that the peer's
certificate names the server's FQDN whatever address it dialled.

Errors are the classes of :mod:`sitemail.mailbox.errors`: MailboxNotFound,
WrongServer (with ``.server``), FolderNotFound, MessageNotFound ... as the
server reported them, and StoreUnavailable when the server cannot be
reached, times out, refuses TLS, or fails.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel

from sitemail.lru import LruCache
from sitemail.mailbox.delivery_batch import (
    DELIVER_TO,
    BatchMessage,
    DeliveryAnswer,
    LocalStore,
    answers_from_json,
    deliver_here,
    part_headers,
)
from sitemail.mailbox.errors import StoreError, StoreUnavailable, WrongServer, error_from_json
from sitemail.mailbox.locate import MailboxLocation, MailboxLocator
from sitemail.mailbox.records import (
    DeliveryResult,
    ExpungeResult,
    Flags,
    FlagUpdate,
    Folder,
    FolderChanges,
    FolderUids,
    ItemProperties,
    MessageDetail,
    MessagePage,
    MessageSummary,
    Placement,
    Record,
    UidEntry,
)
from sitemail.mailbox.sources import CHUNK_SIZE
from sitemail.mailbox.store_client_folders import KEPT_VIEWS, FolderPropertyCalls
from sitemail.mailbox.store_client_items import TypedItemCalls
from sitemail.mailbox.store_client_settings import SettingsCalls
from sitemail.mailbox.store_reading import MAX_JSON_RESPONSE, read_capped, validated
from sitemail.org.cached_directory import DerivedCache
from sitemail.org.directory import Directory
from sitemail.org.pki import CertFiles, client_ssl_context

R = TypeVar("R", bound=BaseModel)

Resolver = Callable[[str], tuple[str, int]]
"""``resolve(server_name) -> (host, port)`` of that server's store API, as seen from the caller."""

Upload = bytes | bytearray | memoryview | Path | IO[bytes] | AsyncIterable[bytes]
"""A message to send: bytes, a file path, an open binary file, or an async iterable of chunks."""

FolderArg = int | str
"""A folder id or a well-known folder name (``"inbox"``, ``"sentitems"`` ...)."""


@dataclass(frozen=True)
class _Target:
    location: MailboxLocation
    base: str  # https://host:port/mailboxes/<alias>
    server_hostname: str


class RawStream:
    """A message body arriving from the store: ``size`` bytes, read with ``async for``."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.size = response.content_length
        message_size = response.headers.get("X-Message-Size")
        self.message_size = int(message_size) if message_size and message_size.isdigit() else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK_SIZE):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StoreUnavailable(f"the store stopped sending the message: {exc}") from None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])


class StoreClient(TypedItemCalls, SettingsCalls, FolderPropertyCalls):
    """Calls the store API of whichever server holds a mailbox.

    Use ``async with StoreClient(...) as store:``; one client keeps a pool of
    connections and can serve many requests at once.
    """

    def __init__(
        self,
        directory: Directory,
        resolve: Resolver,
        *,
        ca_file: Path,
        cert_files: CertFiles,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_connections: int = 64,
        local: Callable[[str], LocalStore | None] | None = None,
    ) -> None:
        self._locator = MailboxLocator(directory)
        self._views = LruCache(KEPT_VIEWS)  # FolderPropertyCalls._kept_get's
        # Where each mailbox was found (see _target).
        self._places: DerivedCache[str, _Target] = DerivedCache(directory)
        # server name -> its store when it runs in this process (deliver_many goes there
        # directly; see delivery_batch.deliver_here)
        self._local = local
        self._resolve = resolve
        self._ssl = client_ssl_context(ca_file, files=cert_files)
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> StoreClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._max_connections)
            # The store API sets no cookies: no jar to look through on every call.
            self._session = aiohttp.ClientSession(
                connector=connector, raise_for_status=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    # ------------------------------------------------------------ locating

    async def locate(self, mailbox: str) -> MailboxLocation:
        """Where the directory says ``mailbox`` lives (MailboxNotFound if nowhere)."""
        return await asyncio.to_thread(self._locator.locate, mailbox)

    async def _target(self, mailbox: str) -> _Target:
        # The locator and the resolver may read the directory: off the loop.  A
        # place found under the directory cache's current counter, checked within
        # its staleness bound, is what the locator would find again: no thread
        # hop per store call (two per OWA page; a tenth of a CAS worker's time).
        counter, known = self._places.get(mailbox)
        if known is not None:
            return known
        target = await asyncio.to_thread(self._target_now, mailbox)
        self._places.put(mailbox, counter, target)
        return target

    def _target_now(self, mailbox: str) -> _Target:
        where = self._locator.locate(mailbox)
        if where.server is None:
            raise WrongServer(
                f"mailbox {where.alias} has database {where.database}, which is not in the "
                "directory: fix the mailbox's database (homeMDB)",
                mailbox=where.alias,
                database=where.database,
                server=None,
            )
        try:
            host, port = self._resolve(where.server)
        except LookupError as exc:
            raise StoreUnavailable(
                f"no address known for server {where.server} (mailbox {where.alias}): {exc}"
            ) from None
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return _Target(
            location=where,
            base=f"https://{hostport}/mailboxes/{quote(where.alias, safe='')}",
            server_hostname=where.server_fqdn or where.server,
        )

    # ------------------------------------------------------------ requests

    @asynccontextmanager
    async def _request(
        self,
        method: str,
        mailbox: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        read_timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        target = await self._target(mailbox)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self._connect_timeout,
            sock_connect=self._connect_timeout,
            sock_read=read_timeout or self._timeout,
        )
        server = target.location.server
        # Only failures before the response is handed over are the store's;
        # what the caller does with the body raises its own errors.
        try:
            response = await self._client().request(
                method,
                target.base + path,
                params=params,
                json=json_body,
                data=data,
                headers=headers,
                timeout=timeout,
                server_hostname=target.server_hostname,
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            raise StoreUnavailable(
                f"the store of {server} presented a certificate this server does not trust "
                f"({exc.certificate_error}): is it a server of this organization?"
            ) from None
        except aiohttp.ServerDisconnectedError:
            raise StoreUnavailable(
                f"the store of {server} closed the connection without an answer (it refuses "
                "client certificates not issued by the organization CA)"
            ) from None
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise StoreUnavailable(
                f"the store of {server} cannot be reached: {type(exc).__name__}: {exc}"
            ) from None
        try:
            if response.status >= 400:
                raise await _error(response, server)
            yield response
        finally:
            response.release()

    async def _call(
        self,
        cls: type[R],
        method: str,
        mailbox: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        read_timeout: float | None = None,
    ) -> R:
        async with self._request(
            method,
            mailbox,
            path,
            params=params,
            json_body=json_body,
            data=data,
            read_timeout=read_timeout,
        ) as response:
            text = await read_capped(response, MAX_JSON_RESPONSE)
        # Parsed straight into the record by pydantic's own JSON reader: no dict
        # tree built first (a list page's decode cost a CAS worker a tenth).
        return validated(cls, text)

    async def _json(
        self,
        method: str,
        mailbox: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        read_timeout: float | None = None,
    ) -> Any:
        async with self._request(
            method,
            mailbox,
            path,
            params=params,
            json_body=json_body,
            data=data,
            read_timeout=read_timeout,
        ) as response:
            return await _read_json(response)

    # ------------------------------------------------------------ delivery

    async def deliver(self, mailbox: str, delivery_id: str, message: Upload) -> DeliveryResult:
        """Deliver to the Inbox, once per ``delivery_id`` (the hub's duplicate key)."""
        async with _upload(message) as data:
            return await self._call(
                DeliveryResult,
                "POST",
                mailbox,
                "/deliver",
                params={"id": delivery_id},
                data=data,
            )

    async def deliver_many(self, messages: Sequence[BatchMessage]) -> list[DeliveryAnswer]:
        """Deliver a batch: one request per server, one answer per recipient in order.

        A recipient the directory cannot place gets its error; a server that
        cannot be reached gives StoreUnavailable to each of its recipients.
        """
        flat = [(m, pair) for m in messages for pair in m.recipients]
        answers: list[DeliveryAnswer | None] = [None] * len(flat)
        targets = await asyncio.to_thread(self._targets_now, [pair[0] for _, pair in flat])
        by_server: dict[tuple[str, str, str], list[int]] = {}
        for index, target in enumerate(targets):
            if isinstance(target, StoreError):
                answers[index] = target
            else:
                root = target.base.rsplit("/mailboxes/", 1)[0]
                server = target.location.server or ""
                by_server.setdefault((root, target.server_hostname, server), []).append(index)

        async def post(root: str, hostname: str, server: str, indexes: list[int]) -> None:
            wanted: dict[int, list[tuple[str, str]]] = {}
            order: list[BatchMessage] = []
            for index in indexes:
                message, pair = flat[index]
                if id(message) not in wanted:
                    wanted[id(message)] = []
                    order.append(message)
                wanted[id(message)].append(pair)
            batch = [BatchMessage(m.body, tuple(wanted[id(m)])) for m in order]
            here = self._local(server) if self._local is not None else None
            try:
                if here is not None:
                    got = await deliver_here(here, batch)
                else:
                    got = await self._post_batch(root, hostname, batch)
            except StoreError as exc:
                got = [exc] * len(indexes)
            # The batch lists each message's recipients together, in first-seen order.
            sent = [i for m in order for i in indexes if flat[i][0] is m]
            for index, answer in zip(sent, got, strict=True):
                answers[index] = answer

        await asyncio.gather(*(post(r, h, s, ix) for (r, h, s), ix in by_server.items()))
        return [a for a in answers if a is not None]

    async def _post_batch(
        self, root: str, hostname: str, batch: list[BatchMessage]
    ) -> list[DeliveryAnswer]:
        expected = sum(len(m.recipients) for m in batch)
        with ExitStack() as files:

            def open_parts() -> list[tuple[IO[bytes] | bytes, str]]:
                return [
                    (
                        message.body
                        if isinstance(message.body, bytes)
                        else files.enter_context(message.body.open("rb")),
                        value,
                    )
                    for message in batch
                    for value in part_headers(message)
                ]

            writer = aiohttp.MultipartWriter("mixed")
            # Bodies are streamed from the queue's files, never held in memory.
            for handle, value in await asyncio.to_thread(open_parts):
                writer.append(handle, {DELIVER_TO: value})
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self._connect_timeout,
                sock_connect=self._connect_timeout,
                sock_read=self._timeout,
            )
            try:
                response = await self._client().post(
                    root + "/deliveries",
                    data=writer,
                    timeout=timeout,
                    server_hostname=hostname,
                )
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
                raise StoreUnavailable(
                    f"the store of {hostname} cannot be reached: {type(exc).__name__}: {exc}"
                ) from None
        try:
            if response.status >= 400:
                raise await _error(response, hostname)
            return answers_from_json(await _read_json(response), expected)
        finally:
            response.release()

    def _targets_now(self, mailboxes: list[str]) -> list[_Target | StoreError]:
        out: list[_Target | StoreError] = []
        for mailbox in mailboxes:
            try:
                out.append(self._target_now(mailbox))
            except StoreError as exc:
                out.append(exc)
        return out

    async def append(
        self,
        mailbox: str,
        folder: FolderArg,
        message: Upload,
        *,
        flags: Flags | None = None,
        received_at: datetime | None = None,
    ) -> Placement:
        """Add a message to a folder (IMAP APPEND, a draft, a sent item)."""
        params = {"flags": ",".join((flags or Flags()).names())}
        if received_at is not None:
            params["received"] = received_at.isoformat()
        async with _upload(message) as data:
            return await self._call(
                Placement,
                "POST",
                mailbox,
                f"/folders/{_seg(folder)}/append",
                params=params,
                data=data,
            )

    async def replace(self, mailbox: str, message_id: int, message: Upload) -> Placement:
        """New content for a message, under its id (EWS UpdateItem of a changed item)."""
        async with _upload(message) as data:
            return await self._call(
                Placement, "PUT", mailbox, f"/messages/{int(message_id)}/raw", data=data
            )

    async def get_properties(self, mailbox: str, message_id: int) -> ItemProperties:
        """A message's properties beside its content (EWS reminders, extended properties)."""
        return await self._call(
            ItemProperties, "GET", mailbox, f"/messages/{int(message_id)}/properties"
        )

    async def set_properties(
        self, mailbox: str, message_id: int, properties: dict[str, Any]
    ) -> ItemProperties:
        return await self._call(
            ItemProperties,
            "PUT",
            mailbox,
            f"/messages/{int(message_id)}/properties",
            json_body={"properties": properties},
        )

    # ------------------------------------------------------------- folders

    async def list_folders(self, mailbox: str, *, everything: bool = False) -> list[Folder]:
        """The folders of the Top of Information Store (``everything``: and Exchange's own)."""
        # Kept with the store's ETag (every ActiveSync Sync and IMAP session asks).
        params = {"all": "1"} if everything else {}
        # A list of its own for each caller (the kept answer is shared).
        return list((await self._kept_get(_FolderList, mailbox, "/folders", params)).folders)

    async def find_folder(self, mailbox: str, path: str) -> Folder:
        """The folder at a ``/``-separated path (case-insensitive), e.g. ``Inbox/Projects``."""
        return await self._call(Folder, "GET", mailbox, "/folders", params={"path": path})

    async def get_folder(self, mailbox: str, folder: FolderArg) -> Folder:
        return await self._call(Folder, "GET", mailbox, f"/folders/{_seg(folder)}")

    async def create_folder(
        self,
        mailbox: str,
        name: str,
        parent: FolderArg | None = None,
        folder_class: str | None = None,
    ) -> Folder:
        """A new folder (``folder_class`` ``""``: without a class; ``None``: a mail folder)."""
        body = {"name": name, "parent": parent, "class": folder_class}
        return await self._call(Folder, "POST", mailbox, "/folders", json_body=body)

    async def rename_folder(self, mailbox: str, folder: FolderArg, name: str) -> Folder:
        return await self._call(
            Folder, "PATCH", mailbox, f"/folders/{_seg(folder)}", json_body={"name": name}
        )

    async def move_folder(
        self, mailbox: str, folder: FolderArg, parent: FolderArg | None
    ) -> Folder:
        """Move a folder under ``parent`` (``None``: to the top of the mailbox)."""
        return await self._call(
            Folder, "PATCH", mailbox, f"/folders/{_seg(folder)}", json_body={"parent": parent}
        )

    async def delete_folder(self, mailbox: str, folder: FolderArg) -> list[int]:
        body = await self._json("DELETE", mailbox, f"/folders/{_seg(folder)}")
        return [int(x) for x in body["deleted"]]

    # ------------------------------------------------------------ messages

    async def list_messages(
        self,
        mailbox: str,
        folder: FolderArg,
        *,
        offset: int = 0,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> MessagePage:
        params = {
            "offset": str(offset),
            "limit": str(limit),
            "order": "oldest" if oldest_first else "newest",
        }
        # Kept with the store's ETag, as folder views are (EWS FindItem and ActiveSync
        # ask for the same page again and again).
        return await self._kept_get(
            MessagePage, mailbox, f"/folders/{_seg(folder)}/messages", params
        )

    async def get_message(self, mailbox: str, message_id: int) -> MessageDetail:
        return await self._call(MessageDetail, "GET", mailbox, f"/messages/{int(message_id)}")

    @asynccontextmanager
    async def open_raw(
        self, mailbox: str, message_id: int, *, start: int = 0, length: int | None = None
    ) -> AsyncIterator[RawStream]:
        """The message's bytes (or a range of them) as a stream, in bounded memory."""
        params = {"start": str(start)}
        if length is not None:
            params["length"] = str(length)
        async with self._request(
            "GET", mailbox, f"/messages/{int(message_id)}/raw", params=params
        ) as response:
            yield RawStream(response)

    async def read_raw(
        self, mailbox: str, message_id: int, *, start: int = 0, length: int | None = None
    ) -> bytes:
        """The message's bytes in memory (prefer :meth:`open_raw` for large messages)."""
        async with self.open_raw(mailbox, message_id, start=start, length=length) as stream:
            return await stream.read()

    async def download_raw(self, mailbox: str, message_id: int, file: IO[bytes]) -> int:
        """Write the message's bytes to ``file``; returns how many were written."""
        written = 0
        async with self.open_raw(mailbox, message_id) as stream:
            async for chunk in stream:
                await asyncio.to_thread(file.write, chunk)
                written += len(chunk)
        return written

    @asynccontextmanager
    async def open_part(
        self, mailbox: str, message_id: int, part_id: str
    ) -> AsyncIterator[RawStream]:
        """One MIME part's decoded body (part numbers are in the message's structure)."""
        async with self._request(
            "GET", mailbox, f"/messages/{int(message_id)}/parts/{quote(part_id, safe='')}"
        ) as response:
            yield RawStream(response)

    async def read_part(self, mailbox: str, message_id: int, part_id: str) -> bytes:
        async with self.open_part(mailbox, message_id, part_id) as stream:
            return await stream.read()

    async def set_flags(self, mailbox: str, message_id: int, update: FlagUpdate) -> MessageSummary:
        return await self._call(
            MessageSummary,
            "PATCH",
            mailbox,
            f"/messages/{int(message_id)}",
            json_body=update.model_dump(exclude_none=True),
        )

    async def move(self, mailbox: str, message_id: int, folder: FolderArg) -> Placement:
        return await self._call(
            Placement,
            "POST",
            mailbox,
            f"/messages/{int(message_id)}/move",
            json_body={"folder": folder},
        )

    async def copy(self, mailbox: str, message_id: int, folder: FolderArg) -> Placement:
        return await self._call(
            Placement,
            "POST",
            mailbox,
            f"/messages/{int(message_id)}/copy",
            json_body={"folder": folder},
        )

    async def delete(
        self, mailbox: str, message_id: int, *, hard: bool = False
    ) -> Placement | None:
        """To Deleted Items (``None`` if deleted for good: ``hard`` or already there)."""
        body = await self._json(
            "DELETE",
            mailbox,
            f"/messages/{int(message_id)}",
            params={"hard": "1" if hard else "0"},
        )
        placement = body.get("placement")
        return None if placement is None else Placement.model_validate(placement)

    async def submit(self, mailbox: str, message_id: int) -> Placement:
        """Move a composed message to the Outbox for the Mail Submission service to send."""
        return await self._call(
            Placement, "POST", mailbox, f"/messages/{int(message_id)}/submit", json_body={}
        )

    async def search(
        self,
        mailbox: str,
        query: str,
        *,
        folder: FolderArg | None = None,
        fields: Collection[str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> MessagePage:
        """Messages whose subject/from/to/text (``fields``) contain ``query``, any case."""
        params = {"q": query, "offset": str(offset), "limit": str(limit)}
        if folder is not None:
            params["folder"] = str(folder)
        if fields:
            params["fields"] = ",".join(fields)
        return await self._call(MessagePage, "GET", mailbox, "/search", params=params)

    # ---------------------------------------------------------------- IMAP

    async def uids(
        self, mailbox: str, folder: FolderArg, *, since: int = 0, limit: int | None = None
    ) -> FolderUids:
        params = {"since": str(since)}
        if limit is not None:
            params["limit"] = str(limit)
        return await self._call(
            FolderUids, "GET", mailbox, f"/folders/{_seg(folder)}/uids", params=params
        )

    async def changes(
        self, mailbox: str, folder: FolderArg, since_modseq: int, *, wait: float = 0.0
    ) -> FolderChanges:
        """Changes after ``since_modseq``; with ``wait`` > 0, waits up to that long for one."""
        return await self._call(
            FolderChanges,
            "GET",
            mailbox,
            f"/folders/{_seg(folder)}/changes",
            params={"modseq": str(since_modseq), "wait": f"{wait:g}"},
            read_timeout=self._timeout + wait,
        )

    async def store_flags(
        self,
        mailbox: str,
        folder: FolderArg,
        uids: Collection[int],
        *,
        add: Collection[str] = (),
        remove: Collection[str] = (),
        replace: Collection[str] | None = None,
    ) -> list[UidEntry]:
        body = await self._json(
            "POST",
            mailbox,
            f"/folders/{_seg(folder)}/flags",
            json_body={
                "uids": list(uids),
                "add": list(add),
                "remove": list(remove),
                "replace": None if replace is None else list(replace),
            },
        )
        return [UidEntry.model_validate(e) for e in body["entries"]]

    async def expunge(
        self, mailbox: str, folder: FolderArg, uids: Collection[int] | None = None
    ) -> ExpungeResult:
        return await self._call(
            ExpungeResult,
            "POST",
            mailbox,
            f"/folders/{_seg(folder)}/expunge",
            json_body={"uids": None if uids is None else list(uids)},
        )


# ------------------------------------------------------------------ helpers


def _seg(folder: FolderArg) -> str:
    return quote(str(folder), safe="")


@asynccontextmanager
async def _upload(message: Upload) -> AsyncIterator[Any]:
    """What aiohttp sends as the body: bytes, an open file (streamed), or chunks."""
    if isinstance(message, Path):
        handle = await asyncio.to_thread(message.open, "rb")
        try:
            yield handle
        finally:
            await asyncio.to_thread(handle.close)
    elif isinstance(message, bytearray | memoryview):
        yield bytes(message)
    else:
        yield message


class _FolderList(Record):
    folders: list[Folder]


async def _read_json(response: aiohttp.ClientResponse) -> Any:
    data = await read_capped(response, MAX_JSON_RESPONSE)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise StoreUnavailable(f"the store answered something that is not JSON: {exc}") from None


async def _error(response: aiohttp.ClientResponse, server: str | None) -> StoreError:
    try:
        body = json.loads(await read_capped(response, 64 * 1024))
    except (ValueError, StoreUnavailable):
        body = None
    if not isinstance(body, dict):
        body = {"message": f"the store of {server} answered HTTP {response.status}"}
    return error_from_json(response.status, body)
