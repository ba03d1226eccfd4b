"""ActiveSync Sync of the Calendar folder: appointments as MS-ASCAL ApplicationData.

A calendar item is sent with its times (UTC, in MS-ASCAL's compact
``20300107T080000Z`` form), subject, location, organizer, attendees,
busy status, reminder, body, its recurrence (Type 0 daily, 1 weekly,
2 monthly, 3 monthly on the nth day, 5 yearly, 6 yearly on the nth day) and
its exceptions (deleted ones, and modified ones with their own times).

The collection's state is keyed by the item's **UID in the folder**: the
store gives an item a new UID whenever it changes (its content is written
anew, :mod:`sitemail.mailbox.database_items`), so a changed appointment
reaches the device as the Delete of the old ServerId and the Add of the new
one, which MS-ASCMD devices take like any other pair of commands.  The
device's Delete is carried out (to Deleted Items); its Adds and Changes are kept
(:mod:`.eas_calendar_writes`), an Add answered with its ServerId in ``Responses``.

``TimeZone`` is the base64 TIME_ZONE_INFORMATION structure of MS-ASDTYPE:
the item's zone's bias and its daylight rule (first or last weekday of a
month at an hour), worked out from the IANA zone of its Windows id.
"""

from __future__ import annotations

import base64
import contextlib
import struct
from datetime import UTC, datetime, timedelta

from sitemail.access.eas_commands import DEFAULT_WINDOW, LIST_PAGE, MAX_FOLLOWED, MAX_WINDOW
from sitemail.access.eas_commands import EasContext as Context
from sitemail.access.eas_state import MessageEntry
from sitemail.mailbox.errors import NotFound
from sitemail.mailbox.item_records import (
    CalendarData,
    FreeBusy,
    ItemKind,
    Pattern,
    ResponseType,
    TypedItem,
    Weekday,
    WeekIndex,
)
from sitemail.mailbox.records import Folder
from sitemail.mailbox.recurrence import modified_occurrences
from sitemail.mailbox.windows_zones import DayRule, year_rule, zone_of
from sitemail.protocols.wbxml import Element, el

__all__ = ["application_data", "sync_calendar", "time_zone_blob"]

_BUSY = {FreeBusy.FREE: 0, FreeBusy.TENTATIVE: 1, FreeBusy.BUSY: 2, FreeBusy.OOF: 3}
_TYPE = {
    Pattern.DAILY: 0,
    Pattern.WEEKLY: 1,
    Pattern.ABSOLUTE_MONTHLY: 2,
    Pattern.RELATIVE_MONTHLY: 3,
    Pattern.ABSOLUTE_YEARLY: 5,
    Pattern.RELATIVE_YEARLY: 6,
}
# MS-ASCAL DayOfWeek: a bit mask, Sunday 1 ... Saturday 64.
_DAY_BITS = {
    Weekday.SUNDAY: 1,
    Weekday.MONDAY: 2,
    Weekday.TUESDAY: 4,
    Weekday.WEDNESDAY: 8,
    Weekday.THURSDAY: 16,
    Weekday.FRIDAY: 32,
    Weekday.SATURDAY: 64,
    Weekday.DAY: 127,
    Weekday.WEEKDAY: 62,
    Weekday.WEEKEND_DAY: 65,
}
_WEEK = {
    WeekIndex.FIRST: 1,
    WeekIndex.SECOND: 2,
    WeekIndex.THIRD: 3,
    WeekIndex.FOURTH: 4,
    WeekIndex.LAST: 5,
}
# AttendeeStatus: 0 unknown, 2 tentative, 3 accept, 4 decline, 5 not responded.
_ATTENDEE_STATUS = {
    ResponseType.TENTATIVE: 2,
    ResponseType.ACCEPT: 3,
    ResponseType.DECLINE: 4,
    ResponseType.NO_RESPONSE: 5,
}


def _compact(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _system_time(day: DayRule | None) -> bytes:
    """A SYSTEMTIME rule: wYear 0, the month, the weekday, which one (5 = last), the time."""
    if day is None:
        return bytes(16)
    week = 5 if day.occurrence < 0 else day.occurrence
    weekday = (day.weekday + 1) % 7  # Sunday 0
    minutes = int(day.time / timedelta(minutes=1))
    return struct.pack("<8H", 0, day.month, weekday, week, minutes // 60, minutes % 60, 0, 0)


def time_zone_blob(windows_id: str, year: int) -> str:
    """TIME_ZONE_INFORMATION (172 bytes, base64) of a Windows zone in ``year``: its
    standard bias, and the daylight bias and changes when it keeps daylight time
    (:func:`sitemail.mailbox.windows_zones.year_rule`)."""
    rule = year_rule(windows_id, year)
    name = windows_id.encode("utf-16-le")[:62].ljust(64, b"\0")
    data = (
        struct.pack("<i", -rule.standard)
        + name
        + _system_time(rule.standard_starts)
        + struct.pack("<i", 0)
        + name
        + _system_time(rule.daylight_starts)
        + struct.pack("<i", -rule.daylight)
    )
    return base64.b64encode(data).decode("ascii")


def _recurrence(data: CalendarData) -> Element | None:
    rule = data.recurrence
    if rule is None:
        return None
    days = sum({_DAY_BITS[d] for d in rule.days_of_week}) if rule.days_of_week else None
    until = None
    if rule.end_date is not None:
        local = data.start.astimezone(zone_of(data.time_zone))
        last = datetime.combine(rule.end_date, local.timetz())
        until = _compact(last)
    return el(
        "Calendar:Recurrence",
        el("Calendar:Type", _TYPE[rule.pattern]),
        el("Calendar:Interval", rule.interval),
        el("Calendar:Until", until) if until else None,
        el("Calendar:Occurrences", rule.count) if rule.count is not None else None,
        el("Calendar:DayOfWeek", days) if days is not None else None,
        el("Calendar:DayOfMonth", rule.day_of_month) if rule.day_of_month else None,
        el("Calendar:WeekOfMonth", _WEEK[rule.week_index]) if rule.week_index else None,
        el("Calendar:MonthOfYear", rule.month) if rule.month else None,
    )


def _exceptions(data: CalendarData) -> Element | None:
    if data.recurrence is None or not (data.deleted or data.modified):
        return None
    out = [
        el(
            "Calendar:Exception",
            el("Calendar:Deleted", 1),
            el("Calendar:ExceptionStartTime", _compact(moment)),
        )
        for moment in sorted(data.deleted)
    ]
    for occ in modified_occurrences(data):
        change = occ.modified
        assert change is not None
        out.append(
            el(
                "Calendar:Exception",
                el("Calendar:ExceptionStartTime", _compact(occ.original_start)),
                el("Calendar:StartTime", _compact(change.start)),
                el("Calendar:EndTime", _compact(change.end)),
                el("Calendar:Subject", change.subject) if change.subject is not None else None,
                el("Calendar:Location", change.location) if change.location is not None else None,
                el("Calendar:BusyStatus", _BUSY.get(change.free_busy, 2))
                if change.free_busy is not None
                else None,
            )
        )
    return el("Calendar:Exceptions", out)


def application_data(item: TypedItem, version: tuple[int, int]) -> Element:
    data = item.calendar
    assert data is not None
    organizer = data.organizer
    # MeetingStatus: 0 an appointment, 1 a meeting its organizer holds, +4 cancelled.  (The
    # store keeps only the calendars' own items: received meetings, 3, are not stored.)
    status = (1 if data.is_meeting else 0) | (4 if data.cancelled else 0)
    attendees = [
        el(
            "Calendar:Attendee",
            el("Calendar:Email", a.address),
            el("Calendar:Name", a.name or a.address),
            el("Calendar:AttendeeStatus", _ATTENDEE_STATUS.get(a.response, 0))
            if version >= (12, 0)
            else None,
            el("Calendar:AttendeeType", kind) if version >= (12, 0) else None,
        )
        for kind, people in ((1, data.required), (2, data.optional))
        for a in people
    ]
    if version >= (12, 0):
        body: Element | None = el(
            "AirSyncBase:Body",
            el("AirSyncBase:Type", 1),
            el("AirSyncBase:EstimatedDataSize", len(data.body.encode("utf-8"))),
            el("AirSyncBase:Data", data.body),
        )
    else:
        body = el("Calendar:Body", data.body) if data.body else None
    return el(
        "AirSync:ApplicationData",
        el("Calendar:TimeZone", time_zone_blob(data.time_zone, data.start.year)),
        el("Calendar:AllDayEvent", 1 if data.all_day else 0),
        body,
        el("Calendar:BusyStatus", _BUSY.get(data.free_busy, 2)),
        el("Calendar:OrganizerName", organizer.name or organizer.address) if organizer else None,
        el("Calendar:OrganizerEmail", organizer.address) if organizer else None,
        el("Calendar:DtStamp", _compact(item.created_at)),
        el("Calendar:EndTime", _compact(data.end)),
        el("Calendar:Location", data.location) if data.location else None,
        el("Calendar:Reminder", data.reminder_minutes)
        if data.reminder_minutes is not None
        else None,
        el("Calendar:Sensitivity", 0),
        el("Calendar:Subject", data.subject),
        el("Calendar:StartTime", _compact(data.start)),
        el("Calendar:UID", data.uid),
        el("Calendar:MeetingStatus", status),
        el("Calendar:Attendees", attendees) if attendees else None,
        _recurrence(data),
        _exceptions(data),
    )


async def _followed(ctx: Context, folder: int) -> dict[int, TypedItem]:
    """The folder's appointments by UID."""
    out: dict[int, TypedItem] = {}
    offset = 0
    while offset < MAX_FOLLOWED:
        page = await ctx.store.list_typed(
            ctx.alias, folder, kind=ItemKind.CALENDAR, offset=offset, limit=LIST_PAGE
        )
        out.update((i.uid, i) for i in page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    return out


async def sync_calendar(ctx: Context, collection: Element, folder: Folder) -> Element:
    """One Calendar collection of a Sync request."""
    key = (collection.findtext("SyncKey") or "").strip()
    cid = (collection.findtext("CollectionId") or "").strip()

    def answer(status: int, *rest: Element | None, sync_key: str | None = None) -> Element:
        return el(
            "AirSync:Collection",
            el("AirSync:Class", "Calendar") if ctx.version < (14, 0) else None,
            el("AirSync:SyncKey", sync_key or key or "0"),
            el("AirSync:CollectionId", cid),
            el("AirSync:Status", status),
            *rest,
        )

    known = ctx.states.collection(ctx.alias, ctx.device_id, cid, key)
    if known is None:
        return answer(3, sync_key="0")
    if key == "0":
        return answer(1, sync_key=ctx.states.save_collection(ctx.alias, ctx.device_id, cid, {}))
    current = await _followed(ctx, folder.id)
    commands = collection.find("Commands")
    responses: list[Element] = []
    if commands is not None:
        responses = await _device_writes(ctx, commands, folder, cid, current, known)
    for command in commands.elements("Delete") if commands is not None else []:
        _, sep, uid_text = (command.findtext("ServerId") or "").partition(":")
        uid = int(uid_text) if sep and uid_text.isdigit() else None
        if uid is not None and uid in current and uid in known:
            with contextlib.suppress(NotFound):  # gone meanwhile: gone all the same
                await ctx.store.delete(ctx.alias, current[uid].id)
            current.pop(uid)
            known.pop(uid)
    replies = el("AirSync:Responses", responses) if responses else None
    if collection.findtext("GetChanges") == "0":
        new_key = ctx.states.save_collection(ctx.alias, ctx.device_id, cid, known)
        return answer(1, replies, sync_key=new_key)
    try:
        window = max(1, min(int(collection.findtext("WindowSize") or DEFAULT_WINDOW), MAX_WINDOW))
    except ValueError:
        return answer(4)
    deletes = sorted(u for u in known if u not in current)
    adds = sorted(u for u in current if u not in known)
    out: list[Element] = []
    for uid in (deletes + adds)[:window]:
        server_id = f"{cid}:{uid}"
        if uid in current:
            out.append(
                el(
                    "AirSync:Add",
                    el("AirSync:ServerId", server_id),
                    application_data(current[uid], ctx.version),
                )
            )
            known[uid] = MessageEntry(read=True)
        else:
            out.append(el("AirSync:Delete", el("AirSync:ServerId", server_id)))
            known.pop(uid, None)
    more = len(deletes) + len(adds) > window
    new_key = ctx.states.save_collection(ctx.alias, ctx.device_id, cid, known)
    return answer(
        1,
        replies,
        el("AirSync:MoreAvailable") if more else None,
        el("AirSync:Commands", out) if out else None,
        sync_key=new_key,
    )


async def _device_writes(
    ctx: Context,
    commands: Element,
    folder: Folder,
    cid: str,
    current: dict[int, TypedItem],
    known: dict[int, MessageEntry],
) -> list[Element]:
    """Carry out the device's Adds and Changes; the Responses they get."""
    from sitemail.access.eas_calendar_writes import DeviceDataError, device_record

    me = ctx.owner
    responses: list[Element] = []
    for command in commands.elements("Add"):
        client_id = (command.findtext("ClientId") or "").strip()[:64]
        data = command.find("ApplicationData")
        try:
            if data is None or me is None:
                raise DeviceDataError("an Add carries ApplicationData, for a known owner")
            record = device_record(data, me)
        except DeviceDataError:
            responses.append(
                el("AirSync:Add", el("AirSync:ClientId", client_id), el("AirSync:Status", 6))
            )
            continue
        made = await ctx.store.create_typed(ctx.alias, folder.id, ItemKind.CALENDAR, record)
        current[made.uid] = made
        known[made.uid] = MessageEntry(read=True)  # the device has it: not sent back
        responses.append(
            el(
                "AirSync:Add",
                el("AirSync:ClientId", client_id),
                el("AirSync:ServerId", f"{cid}:{made.uid}"),
                el("AirSync:Status", 1),
            )
        )
    for command in commands.elements("Change"):
        server_id = (command.findtext("ServerId") or "").strip()
        _, sep, uid_text = server_id.partition(":")
        uid = int(uid_text) if sep and uid_text.isdigit() else None
        item = current.get(uid) if uid is not None else None
        data = command.find("ApplicationData")
        status = 1
        if item is None or item.calendar is None:
            status = 8  # the object was not found
        else:
            try:
                if data is None or me is None:
                    raise DeviceDataError("a Change carries ApplicationData, for a known owner")
                record = device_record(data, me, item.calendar)
            except DeviceDataError:
                status = 6
            else:
                # The new UID reaches the device as the old one's Delete and its own Add.
                changed = await ctx.store.replace_typed(ctx.alias, item.id, record)
                current.pop(item.uid, None)
                current[changed.uid] = changed
        if status != 1:
            responses.append(
                el(
                    "AirSync:Change",
                    el("AirSync:ServerId", server_id),
                    el("AirSync:Status", status),
                )
            )
    return responses
