"""EWS notifications (MS-OXWSNTIF): Subscribe, GetEvents, GetStreamingEvents, Unsubscribe.

A subscription watches folders (or all of them) for the event types it
names.  Its events are not queued as the store changes: each
subscription keeps a snapshot of what it watches (the folders' parents and
names, and each watched folder's messages as :mod:`.ews_sync_state` keeps
them), and a GetEvents diffs the store against it with the same CONDSTORE
changes SyncFolderItems reads.  A message created in a folder is a
``CreatedEvent`` (and a ``NewMailEvent`` in the Inbox); gone, a
``DeletedEvent``; gone from one watched folder and come into another (the
store keeps a message's id when it moves), a ``MovedEvent``; changed, a
``ModifiedEvent``.  Folders created, deleted, renamed (Modified) and moved
below a watched folder are events too.  Differences from Exchange: a copy
is a ``CreatedEvent`` (the store does not say what it was copied from), a
message saved in the Inbox by its owner is also ``NewMailEvent``, and
``FreeBusyChangedEvent`` is accepted but never raised (the store keeps no
calendar).

Watermarks name a subscription and the number of its answers; the answer
before the newest can be asked for again (a client whose answer was lost),
any other watermark is ``ErrorInvalidWatermark``.  A pull subscription
expires ``Timeout`` minutes after its last GetEvents; a streaming one 30
minutes after its last stream closed.  Push subscriptions are refused with
``ErrorInvalidOperation``: sitemail's CAS makes no calls to clients.

A streaming answer is one chunked HTTP response holding a SOAP envelope
per notification, and one saying ``ConnectionStatus`` Closed when the
ConnectionTimeout is over.  Between notifications the CAS waits on the
store's long poll (:class:`~sitemail.access.folder_watch.FolderWatches`,
IMAP IDLE's), not in a loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sitemail.access.ews_ids import TOP, change_key, folder_id, item_id
from sitemail.access.ews_mailbox import EwsMailbox, EwsStore
from sitemail.access.ews_responses import Refused, response_message
from sitemail.access.ews_soap import SoapFault, envelope, m, sub, t
from sitemail.access.ews_subscriptions import (
    Subscription,
    Subscriptions,
    is_subscription_id,
    new_id,
)
from sitemail.access.ews_sync import EwsSync
from sitemail.access.ews_sync_state import (
    FolderEntry,
    ItemEntry,
    ItemSnapshot,
    StateSeal,
    diff_folders,
    dump_folders,
    load_folders,
)
from sitemail.access.folder_watch import FolderWatches
from sitemail.clock import Clock
from sitemail.mailbox.records import Folder, FolderChanges, WellKnownFolder

__all__ = ["EVENT_TYPES", "KEEPALIVE", "SETTLE", "EwsNotifications", "StoreChanges"]

EVENT_TYPES = (
    "CopiedEvent",
    "CreatedEvent",
    "DeletedEvent",
    "ModifiedEvent",
    "MovedEvent",
    "NewMailEvent",
    "FreeBusyChangedEvent",
)
#: Most events one GetEvents answer or streamed notification holds; the rest wait
#: (MoreEvents).  Unverified: Exchange 2010's own batch size.
MAX_EVENTS = 50
#: Events a subscription keeps for its next answers before the oldest are dropped.
MAX_PENDING = 2000
#: Minutes a streaming subscription outlives its last connection (unverified).
STREAMING_LIFETIME_MINUTES = 30
#: Streams one user may hold open on one worker at a time: Exchange's HangingConnectionLimit
#: on premises (three; documented for later versions, unverified for 2010 SP3).
MAX_STREAMS_PER_USER = 3
#: Exchange's codes for a subscription or a stream too many (in the schema since 2010 SP1;
#: unverified that 2010 SP3 answers exactly these).
TOO_MANY_SUBSCRIPTIONS = "ErrorExceededSubscriptionCount"
TOO_MANY_STREAMS = "ErrorExceededConnectionCount"
#: Folders a stream waits on with a long poll each; the others are looked at when one of
#: those wakes, or every KEEPALIVE seconds.
MAX_WAITED_FOLDERS = 32
#: Seconds of silence after which a stream says it is still open (an envelope with
#: ConnectionStatus OK and no notifications), so that a proxy or client reading it does
#: not take the quiet for a dead connection: below the CAS proxy's 60-second read
#: timeout.  Unverified: Exchange 2010's own interval.
KEEPALIVE = 30.0
#: Seconds a stream woken by a change waits before it reads the events: changes made
#: together go out in one notification, and a stream whose client has just left (through
#: another site's CAS, which then closes its connection here) gives nothing away to it.
SETTLE = 1.0
#: How often a waiting stream looks whether its client is still connected.
CHECK_SECONDS = 5.0
#: Folders one subscription may name (sitemail's bound; a mailbox has far fewer).
MAX_WATCHED = 100
#: A parent id standing for the Top of Information Store in snapshots.
_TOP = 0

_GONE = "The specified subscription was not found."  # unverified wording
#: Exchange's text for an id that is no subscription id at all (exchangelib's live tests
#: expect this wording from a real server).
INVALID_SUBSCRIPTION = "Subscription is invalid."


class EwsNotifications:
    """The notification operations for one signed-in user, on one server's subscriptions."""

    def __init__(
        self,
        box: EwsMailbox,
        subs: Subscriptions,
        seal: StateSeal,
        clock: Clock,
        *,
        minute: float = 60.0,
        keepalive: float = KEEPALIVE,
        settle: float = SETTLE,
    ) -> None:
        self.box = box
        self.alias = box.alias
        self.subs = subs
        self.sync = EwsSync(box, seal)
        self.clock = clock
        self.minute = minute  # seconds a Timeout/ConnectionTimeout minute lasts
        self.keepalive = keepalive
        self.settle = settle

    def _now(self) -> float:
        return self.clock.now().timestamp()

    # ------------------------------------------------------------ Subscribe

    async def subscribe(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("SubscribeResponse"))
        messages = sub(response, m("ResponseMessages"))
        request = next(iter(body), None)
        kind = request.tag.rsplit("}", 1)[-1] if request is not None else ""
        if request is None or kind not in (
            "PullSubscriptionRequest",
            "StreamingSubscriptionRequest",
            "PushSubscriptionRequest",
        ):
            raise SoapFault("ErrorSchemaValidation", "Subscribe needs a subscription request.")
        if kind == "PushSubscriptionRequest":
            response_message(
                messages,
                "Subscribe",
                "ErrorInvalidOperation",
                "sitemail's Client Access servers make no calls to clients: use a pull or "
                "streaming subscription.",
            )
            return response
        events = [(e.text or "").strip() for e in request.iter(t("EventType"))]
        if not events or any(e not in EVENT_TYPES for e in events):
            raise SoapFault("ErrorSchemaValidation", "EventTypes holds an unknown event type.")
        pull = kind == "PullSubscriptionRequest"
        minutes = STREAMING_LIFETIME_MINUTES
        if pull:
            try:
                minutes = int((request.findtext(t("Timeout")) or "").strip())
            except ValueError:
                minutes = 0
            if not 1 <= minutes <= 1440:
                raise SoapFault(
                    "ErrorSchemaValidation", "Timeout must be an integer from 1 to 1440 minutes."
                )
        try:
            watched = await self._watched(request)
            snapshot = await self._start(request, watched)
        except Refused as exc:
            response_message(messages, "Subscribe", exc.code, exc.text)
            return response
        now = self._now()
        record = Subscription(
            id=new_id(),
            alias=self.alias.casefold(),
            kind="pull" if pull else "streaming",
            folders=watched,
            events=sorted(set(events)),
            timeout=minutes * self.minute,
            expires=now + minutes * self.minute,
            snapshot=snapshot,
        )
        if not self.subs.add(record, now):
            response_message(
                messages,
                "Subscribe",
                TOO_MANY_SUBSCRIPTIONS,
                "The mailbox has the most subscriptions it may have; end one first.",
            )
            return response
        msg = response_message(messages, "Subscribe")
        sub(msg, m("SubscriptionId"), record.id)
        if pull:
            sub(msg, m("Watermark"), _watermark(record.id, record.seq))
        return response

    async def _watched(self, request: ET.Element) -> list[int] | None:
        """The folders a request watches (``_TOP`` for the folders above the store's)."""
        if request.get("SubscribeToAllFolders", "false").lower() in ("true", "1"):
            return None
        ids = request.find(t("FolderIds"))
        if ids is None or not len(ids):
            raise SoapFault("ErrorSchemaValidation", "FolderIds or SubscribeToAllFolders needed.")
        if len(ids) > MAX_WATCHED:
            raise SoapFault(
                "ErrorSchemaValidation", f"A subscription may name at most {MAX_WATCHED} folders."
            )
        watched: list[int] = []
        for ref in list(ids):
            folder = await self.sync.store_folder(ref)
            watched.append(_TOP if folder is None else folder.id)
        return sorted(set(watched))

    async def _start(self, request: ET.Element, watched: list[int] | None) -> dict[str, Any]:
        """The snapshot a new subscription starts from: an old one's at its watermark (a
        watched folder the old one did not watch starts from now), or now."""
        mark = (request.findtext(m("Watermark")) or "").strip()
        folders = await self.box.store.list_folders(self.alias)
        snapshot: dict[str, Any] = {"folders": dump_folders(_entries(folders)), "items": {}}
        if mark:
            sub_id, seq = _parse_watermark(mark)
            old = self.subs.get(sub_id)
            if old is None or old.alias != self.alias.casefold() or old.seq != seq:
                raise Refused("ErrorInvalidWatermark", "The watermark is not valid.")
            snapshot = {"folders": old.snapshot["folders"], "items": dict(old.snapshot["items"])}
        for folder in folders:
            if (watched is None or folder.id in watched) and str(folder.id) not in snapshot[
                "items"
            ]:
                entries, modseq = await self.sync._all_uids(folder.id)
                items = ItemSnapshot(modseq, {e.uid: ItemEntry.of(e) for e in entries})
                snapshot["items"][str(folder.id)] = items.dump()
        return snapshot

    # ------------------------------------------------------------ events from the store

    async def _events(self, record: Subscription) -> list[dict[str, Any]]:
        """The events since the record's snapshot; the snapshot is brought up to date."""
        folders = await self.box.store.list_folders(self.alias)
        now = _entries(folders)
        known = load_folders(record.snapshot.get("folders", {"f": []}))
        watched = record.folders
        stamp = self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        out: list[dict[str, Any]] = []

        def concerns(parent: int | None) -> bool:
            return watched is None or (parent if parent is not None else _TOP) in watched

        for kind, ident in diff_folders(known, now, [f.id for f in folders]):
            before, after = known.get(ident), now.get(ident)
            if kind == "Create" and after and concerns(after.parent):
                out.append(_event("CreatedEvent", stamp, folder=ident, parent=after.parent))
            elif kind == "Delete" and before and concerns(before.parent):
                out.append(_event("DeletedEvent", stamp, folder=ident, parent=before.parent))
            elif kind == "Update" and before and after:
                if before.parent != after.parent:
                    if concerns(before.parent) or concerns(after.parent):
                        out.append(
                            _event(
                                "MovedEvent",
                                stamp,
                                folder=ident,
                                parent=after.parent,
                                old_parent=before.parent,
                            )
                        )
                elif concerns(after.parent):
                    out.append(_event("ModifiedEvent", stamp, folder=ident, parent=after.parent))
        items: dict[str, Any] = {}
        gone: dict[int, int] = {}  # message id -> the folder it left
        created: list[tuple[int, int]] = []  # (message id, folder)
        inbox = next((f.id for f in folders if f.well_known == WellKnownFolder.INBOX), None)
        for folder in folders:
            if watched is not None and folder.id not in watched:
                continue
            old = record.snapshot.get("items", {}).get(str(folder.id))
            snap = ItemSnapshot() if old is None else ItemSnapshot.load(old)
            if old is not None and snap.modseq == folder.modseq:
                items[str(folder.id)] = old  # nothing changed in it: no store call
                continue
            changes, modseq = await self.sync._item_changes(folder, snap)
            for change in changes:
                mid = change.entry.message_id
                if change.kind == "Delete":
                    snap.items.pop(change.uid, None)
                    gone[mid] = folder.id
                    continue
                if change.replaced is not None:
                    snap.items.pop(change.replaced, None)
                snap.items[change.uid] = change.entry
                if change.kind == "Create":
                    created.append((mid, folder.id))
                else:
                    out.append(_event("ModifiedEvent", stamp, item=mid, parent=folder.id))
            snap.modseq = modseq
            items[str(folder.id)] = snap.dump()
        for mid, where in created:
            if mid in gone:
                old_parent = gone.pop(mid)
                out.append(
                    _event("MovedEvent", stamp, item=mid, parent=where, old_parent=old_parent)
                )
                continue
            out.append(_event("CreatedEvent", stamp, item=mid, parent=where))
            if where == inbox:
                out.append(_event("NewMailEvent", stamp, item=mid, parent=where))
        for mid, where in gone.items():
            out.append(_event("DeletedEvent", stamp, item=mid, parent=where))
        record.snapshot = {"folders": dump_folders(now), "items": items}
        return [e for e in out if e["type"] in record.events]

    async def _next(self, record: Subscription) -> tuple[list[dict[str, Any]], bool]:
        """The record's next batch of events (pending ones first), and whether more wait."""
        if len(record.pending) < MAX_EVENTS:
            record.pending = (record.pending + await self._events(record))[-MAX_PENDING:]
        batch, record.pending = record.pending[:MAX_EVENTS], record.pending[MAX_EVENTS:]
        return batch, bool(record.pending)

    def _record(self, sub_id: str, kind: str) -> Subscription:
        if not is_subscription_id(sub_id):
            raise Refused("ErrorInvalidSubscription", INVALID_SUBSCRIPTION)
        record = self.subs.get(sub_id)
        if record is None or record.ended:
            raise Refused("ErrorSubscriptionNotFound", _GONE)
        if record.alias != self.alias.casefold():
            raise Refused(
                "ErrorSubscriptionAccessDenied", "The subscription belongs to another user."
            )
        if record.kind != kind:
            raise Refused(
                "ErrorInvalidSubscription",
                f"The subscription is a {record.kind} subscription.",
            )
        if record.expires <= self._now():
            raise Refused("ErrorExpiredSubscription", "The subscription has expired.")
        return record

    # ------------------------------------------------------------ GetEvents

    async def get_events(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("GetEventsResponse"))
        messages = sub(response, m("ResponseMessages"))
        sub_id = (body.findtext(m("SubscriptionId")) or "").strip()
        mark = (body.findtext(m("Watermark")) or "").strip()
        try:
            record = self._record(sub_id, "pull")
            given_id, seq = _parse_watermark(mark)
            if given_id != record.id:
                raise Refused("ErrorInvalidWatermark", "The watermark is not valid.")
            if seq == record.seq - 1 and record.previous:
                events, more = record.previous["events"], record.previous["more"]
                new_mark = _watermark(record.id, record.seq)
            elif seq == record.seq:
                seen = record.seq
                events, more = await self._next(record)
                record.seq += 1
                record.previous = {"events": events, "more": more}
                record.expires = self._now() + record.timeout
                if not self.subs.save(record, seen):
                    raise Refused("ErrorInvalidWatermark", "The watermark is not valid.")
                new_mark = _watermark(record.id, record.seq)
            else:
                raise Refused("ErrorInvalidWatermark", "The watermark is not valid.")
        except Refused as exc:
            response_message(messages, "GetEvents", exc.code, exc.text)
            return response
        msg = response_message(messages, "GetEvents")
        note = sub(msg, m("Notification"))
        sub(note, t("SubscriptionId"), record.id)
        sub(note, t("PreviousWatermark"), mark)
        sub(note, t("MoreEvents"), "true" if more else "false")
        self._write_events(note, events, new_mark)
        return response

    def _write_events(self, note: ET.Element, events: list[dict[str, Any]], mark: str) -> None:
        if not events:
            sub(sub(note, t("StatusEvent")), t("Watermark"), mark)
        for event in events:
            element = sub(note, t(event["type"]))
            sub(element, t("Watermark"), mark)
            sub(element, t("TimeStamp"), event["ts"])
            if event.get("item") is not None:
                # With the folder, as the item's own id says it (ews_ids).
                ident = item_id(self.alias, event["item"], _folder_number(event["parent"]))
                sub(element, t("ItemId"), Id=ident, ChangeKey=change_key(0))
            else:
                sub(element, t("FolderId"), Id=self._fid(event["folder"]), ChangeKey=change_key(0))
            sub(
                element, t("ParentFolderId"), Id=self._fid(event["parent"]), ChangeKey=change_key(0)
            )
            if event["type"] == "MovedEvent":
                if event.get("item") is not None:
                    old = item_id(self.alias, event["item"], _folder_number(event["old_parent"]))
                    sub(element, t("OldItemId"), Id=old, ChangeKey=change_key(0))
                else:
                    sub(
                        element,
                        t("OldFolderId"),
                        Id=self._fid(event["folder"]),
                        ChangeKey=change_key(0),
                    )
                sub(
                    element,
                    t("OldParentFolderId"),
                    Id=self._fid(event["old_parent"]),
                    ChangeKey=change_key(0),
                )

    def _fid(self, folder: int | None) -> str:
        return folder_id(self.alias, TOP if folder in (None, _TOP) else folder)

    # ------------------------------------------------------------ Unsubscribe

    async def unsubscribe(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("UnsubscribeResponse"))
        messages = sub(response, m("ResponseMessages"))
        sub_id = (body.findtext(m("SubscriptionId")) or "").strip()
        record = self.subs.get(sub_id)
        if not is_subscription_id(sub_id):
            response_message(
                messages, "Unsubscribe", "ErrorInvalidSubscription", INVALID_SUBSCRIPTION
            )
        elif record is None or record.ended or record.alias != self.alias.casefold():
            response_message(messages, "Unsubscribe", "ErrorSubscriptionNotFound", _GONE)
        else:
            self.subs.end(sub_id)
            response_message(messages, "Unsubscribe")
        return response

    # ------------------------------------------------------------ GetStreamingEvents

    async def stream(
        self, request: web.Request, body: ET.Element, watches: FolderWatches
    ) -> web.StreamResponse:
        """GetStreamingEvents; ``watches`` are the long polls this worker's streams share."""
        ids = [(e.text or "").strip() for e in body.iter(t("SubscriptionId"))][:50]
        try:
            minutes = int((body.findtext(m("ConnectionTimeout")) or "").strip())
        except ValueError:
            minutes = 0
        if not ids or not 1 <= minutes <= 30:
            raise SoapFault(
                "ErrorSchemaValidation",
                "GetStreamingEvents needs SubscriptionIds and a ConnectionTimeout of 1 to 30.",
            )
        records: list[Subscription] = []
        failed: list[tuple[str, Refused]] = []
        for sub_id in ids:
            try:
                records.append(self._record(sub_id, "streaming"))
            except Refused as exc:
                failed.append((sub_id, exc))
        if failed:
            # The first refusal, naming every id refused (ErrorSubscriptionIds).
            bad = [sub_id for sub_id, _ in failed]
            return _single(_stream_answer([], "Closed", refused=failed[0][1], ids=bad))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + minutes * self.minute
        answer = web.StreamResponse(status=200)
        answer.content_type = "text/xml"
        answer.charset = "utf-8"
        answer.enable_chunked_encoding()
        await answer.prepare(request)

        def gone() -> bool:
            transport = request.transport
            return transport is None or transport.is_closing()

        written = loop.time()
        try:
            while True:
                notes: list[ET.Element] = []
                for record in records:
                    fresh = self.subs.get(record.id)
                    if fresh is None or fresh.ended:
                        continue
                    seen = fresh.seq
                    events, _ = await self._next(fresh)
                    fresh.seq += 1 if events else 0
                    fresh.expires = self._now() + fresh.timeout
                    # Saved even without events: the snapshot moved on to what was filtered out.
                    if self.subs.save(fresh, seen) and events:
                        note = ET.Element(m("Notification"))
                        sub(note, t("SubscriptionId"), fresh.id)
                        self._write_events(note, events, _watermark(fresh.id, fresh.seq))
                        notes.append(note)
                    record.snapshot = fresh.snapshot
                if notes or loop.time() - written >= self.keepalive:
                    await answer.write(_stream_answer(notes, "OK"))
                    written = loop.time()
                left = deadline - loop.time()
                if left <= 0:
                    break
                quiet = max(0.0, self.keepalive - (loop.time() - written))
                if await self._wait(watches, records, min(left, quiet), gone):
                    await asyncio.sleep(min(self.settle, max(0.0, deadline - loop.time())))
                if gone():
                    return answer  # the client went away: its stream slot is free again
            await answer.write(_stream_answer([], "Closed"))
            await answer.write_eof()
        except ConnectionError:
            pass  # the client went away while it was written to
        return answer

    async def _wait(
        self,
        watches: FolderWatches,
        records: list[Subscription],
        timeout: float,
        gone: Callable[[], bool],
    ) -> bool:
        """Until a watched folder changes after the records' snapshots (True), ``timeout``
        passes, or the client goes away (looked at every CHECK_SECONDS: aiohttp does not
        cancel a handler whose client left)."""
        marks: dict[int, int] = {}
        for record in records:
            for key, data in record.snapshot.get("items", {}).items():
                folder, modseq = int(key), int(data.get("m", 0))
                marks[folder] = min(marks.get(folder, modseq), modseq)
        chosen = sorted(marks.items())[:MAX_WAITED_FOLDERS]
        tasks = [
            asyncio.ensure_future(watches.wait(self.alias, folder, modseq, timeout))
            for folder, modseq in chosen
        ]
        if not tasks:
            tasks = [asyncio.ensure_future(asyncio.sleep(timeout, False))]
        try:
            while not gone():
                done, _ = await asyncio.wait(
                    tasks, timeout=CHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    return any(
                        not t.cancelled() and t.exception() is None and t.result() for t in done
                    )
            return False
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class StoreChanges:
    """The handler's store as a folder watch reads it; closing the watch leaves it open."""

    def __init__(self, store: EwsStore) -> None:
        self._store = store

    async def changes(
        self, mailbox: str, folder: int | str, since_modseq: int, *, wait: float = 0.0
    ) -> FolderChanges:
        return await self._store.changes(mailbox, folder, since_modseq, wait=wait)

    async def close(self) -> None:
        return None  # the store is the handler's, not this watch's


def _entries(folders: list[Folder]) -> dict[int, FolderEntry]:
    return {f.id: FolderEntry(f.parent_id, f.name) for f in folders}


def _event(kind: str, stamp: str, **fields: int | None) -> dict[str, Any]:
    return {"type": kind, "ts": stamp, **fields}


def _watermark(sub_id: str, seq: int) -> str:
    return base64.b64encode(f"{sub_id}:{seq}".encode()).decode("ascii")


def _parse_watermark(text: str) -> tuple[str, int]:
    try:
        sub_id, _, seq = base64.b64decode(text, validate=True).decode().rpartition(":")
        return sub_id, int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Refused("ErrorInvalidWatermark", "The watermark is not valid.") from None


def _stream_answer(
    notes: list[ET.Element],
    status: str,
    *,
    refused: Refused | None = None,
    ids: list[str] | None = None,
) -> bytes:
    response = ET.Element(m("GetStreamingEventsResponse"))
    messages = sub(response, m("ResponseMessages"))
    if refused is not None:
        msg = response_message(messages, "GetStreamingEvents", refused.code, refused.text)
        errors = sub(msg, m("ErrorSubscriptionIds"))
        for sub_id in ids or []:
            sub(errors, m("SubscriptionId"), sub_id)
    else:
        msg = response_message(messages, "GetStreamingEvents")
        if notes:
            container = sub(msg, m("Notifications"))
            for note in notes:
                container.append(note)
    sub(msg, m("ConnectionStatus"), status)
    return envelope(response)


def _single(data: bytes) -> web.Response:
    return web.Response(body=data, content_type="text/xml", charset="utf-8")


def _folder_number(folder: object) -> int | None:
    """A folder id of an event as an item id's folder (a well-known name gives none)."""
    if isinstance(folder, int):
        return folder
    return int(folder) if isinstance(folder, str) and folder.isdigit() else None
