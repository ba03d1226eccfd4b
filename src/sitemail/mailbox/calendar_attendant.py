"""The Calendar Attendant: meeting messages delivered to an Inbox update the mailbox's calendar.

Exchange 2010's Mailbox server runs this assistant on the events of its
databases: a meeting request that arrives is put in the attendee's calendar
as tentative at once (so free/busy shows it before the attendee answers),
an update replaces it, a cancellation marks it cancelled and free, and an
attendee's reply records their answer on the organizer's meeting.  Here it
listens to the store's change notifications, and for a mailbox whose Inbox
got new messages reads those after the last UID it handled:

- ``text/calendar`` METHOD:REQUEST: the item of that UID is created
  (Tentative) or updated, unless it already has a later SEQUENCE; the
  attendee's own answer and busy status are kept on an update;
- METHOD:CANCEL: the item of that UID becomes cancelled and Free;
- METHOD:REPLY: the answers (PARTSTAT) of the replying attendees are set on
  the item of that UID.

Everything is idempotent (keyed by UID and SEQUENCE).  The UIDs handled are
kept in memory from the service's start: messages already in an Inbox then
are not handled again (a declined meeting must not come back).  Work runs
on the store's threads, one mailbox at a time, outside the delivery's
transaction: a failure is logged and never fails a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

from sitemail.mailbox.database import StoreChange, StoreDatabase
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.ical_parse import MAX_ICAL, ICalError, ParsedEvent, parse_event
from sitemail.mailbox.item_records import (
    Attendee,
    CalendarData,
    FreeBusy,
    ResponseType,
    TypedItem,
)
from sitemail.mailbox.records import WellKnownFolder
from sitemail.mailbox.store_backend import StoreBackend

__all__ = ["CalendarAttendant", "handle_inbox"]

log = logging.getLogger("sitemail.mailbox.attendant")

_INBOX = WellKnownFolder.INBOX.value
_CALENDAR = WellKnownFolder.CALENDAR.value
#: Most new Inbox messages read in one pass (the rest in the next).
MAX_PER_PASS = 200
#: Most calendar items searched for the one of a UID.
MAX_SEARCH = 1000


def _event_of(db: StoreDatabase, mailbox: str, message_id: int) -> ParsedEvent | None:
    # Every delivery to an Inbox comes here: its structure alone says whether it is a
    # meeting message, without decoding the addresses and preview of get_message.
    structure = db.structure(mailbox, message_id)
    part = next((p for p in structure.walk() if p.content_type == "text/calendar"), None)
    if part is None or part.body_size > MAX_ICAL * 4:
        return None
    with db.open_part(mailbox, message_id, part.part_id) as reader:
        data = reader.read(MAX_ICAL * 4)
    try:
        return parse_event(data.decode(part.charset or "utf-8", "replace"))
    except (ICalError, LookupError) as exc:
        log.info("meeting message %s of %s not handled: %s", message_id, mailbox, exc)
        return None


def _by_uid(db: StoreDatabase, mailbox: str, uid: str) -> TypedItem | None:
    page = db.list_typed(mailbox, _CALENDAR, limit=MAX_SEARCH)
    return next((i for i in page.items if i.calendar and i.calendar.uid == uid), None)


def _apply(db: StoreDatabase, mailbox: str, event: ParsedEvent) -> None:
    record = event.record
    if not record.uid:
        return
    existing = _by_uid(db, mailbox, record.uid)
    old: CalendarData | None = existing.calendar if existing else None
    if event.method == "REQUEST":
        if existing is None:
            placeholder = record.model_copy(update={"free_busy": FreeBusy.TENTATIVE})
            db.create_typed(mailbox, _CALENDAR, placeholder)
        elif old is not None and record.sequence >= old.sequence:
            answered = {a.address.lower(): a.response for a in old.required + old.optional}
            kept = record.model_copy(
                update={
                    "free_busy": old.free_busy,
                    "required": [_keep(a, answered) for a in record.required],
                    "optional": [_keep(a, answered) for a in record.optional],
                }
            )
            if kept != old:
                db.replace_typed(mailbox, existing.id, kept)
    elif event.method == "CANCEL" and existing is not None and old is not None:
        if not old.cancelled:
            cancelled = old.model_copy(update={"cancelled": True, "free_busy": FreeBusy.FREE})
            db.replace_typed(mailbox, existing.id, cancelled)
    elif event.method == "REPLY" and existing is not None and old is not None:
        changed = old.model_copy(
            update={
                "required": [_answer(a, event) for a in old.required],
                "optional": [_answer(a, event) for a in old.optional],
            }
        )
        if changed != old:
            db.replace_typed(mailbox, existing.id, changed)


def _keep(person: Attendee, answered: dict[str, ResponseType]) -> Attendee:
    known = answered.get(person.address.lower())
    return person if known is None else person.model_copy(update={"response": known})


def _answer(person: Attendee, event: ParsedEvent) -> Attendee:
    answer = event.replies.get(person.address.lower())
    return person if answer is None else person.model_copy(update={"response": answer})


def handle_inbox(db: StoreDatabase, mailbox: str, after_uid: int) -> int:
    """Handle the Inbox messages above ``after_uid``; the last UID handled."""
    listing = db.uids(mailbox, _INBOX, since=after_uid, limit=MAX_PER_PASS)
    last = after_uid
    for entry in listing.entries:
        last = entry.uid
        try:
            event = _event_of(db, mailbox, entry.message_id)
            if event is not None:
                _apply(db, mailbox, event)
        except (StoreError, ValueError) as exc:
            log.warning("calendar attendant: message %s of %s: %s", entry.message_id, mailbox, exc)
    return last


class CalendarAttendant:
    """Runs :func:`handle_inbox` for mailboxes whose Inbox changed, on the store's threads."""

    def __init__(self, backend: StoreBackend) -> None:
        self.backend = backend
        self._marks: dict[tuple[str, str], int] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for db in self.backend.open_databases():
            self._marks.update(await self.backend.run(functools.partial(_current_marks, db)))
            self._unsubscribe.append(db.subscribe(functools.partial(self._changed, db)))

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._idle.set()

    async def idle(self) -> None:
        """Until no mailbox is waiting to be handled (for tests and orderly stops)."""
        await self._idle.wait()

    def _changed(self, db: StoreDatabase, change: StoreChange) -> None:
        # The writer's thread, after its commit: hand over to the loop.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._schedule, db, change.mailbox)

    def _schedule(self, db: StoreDatabase, mailbox: str) -> None:
        key = (db.name.lower(), mailbox)
        self._dirty.add(key)
        if key not in self._tasks:
            self._idle.clear()
            self._tasks[key] = asyncio.get_running_loop().create_task(self._run(db, mailbox, key))

    async def _run(self, db: StoreDatabase, mailbox: str, key: tuple[str, str]) -> None:
        try:
            while key in self._dirty:
                self._dirty.discard(key)
                after = self._marks.get(key, 0)
                last = await self.backend.run(functools.partial(handle_inbox, db, mailbox, after))
                self._marks[key] = last
                if last != after:
                    self._dirty.add(key)  # there may be more than one pass holds
        except Exception:
            log.exception("calendar attendant failed for %s", mailbox)
        finally:
            self._tasks.pop(key, None)
            if not self._tasks:
                self._idle.set()


def _current_marks(db: StoreDatabase) -> dict[tuple[str, str], int]:
    """The last Inbox UID of each mailbox now: what is there already is not handled."""
    marks = {}
    for mailbox in db.mailboxes():
        folder = db.get_folder(mailbox, _INBOX)
        marks[(db.name.lower(), mailbox)] = folder.uidnext - 1
    return marks
