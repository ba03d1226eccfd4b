"""OWA's calendar: the day and week views, an appointment's page, and the form that makes one.

Pages follow the light version of OWA 2010 like the mail pages
(:mod:`.owa`): no scripts, the action in the query, every change a form
POST with the session's canary, links relative to the virtual directory.

- ``?ae=Folder&t=IPF.Appointment&vt=Week&d=2030-01-07``: the week (Sunday
  first, en-US's first day of the week) holding that date; ``vt=Day`` one
  day.  Recurring appointments are expanded into their occurrences
  (:mod:`sitemail.mailbox.recurrence`).
- ``?ae=Item&t=IPM.Appointment&id=N[&i=K]``: an appointment (occurrence
  ``K`` of a series), with a Delete button.
- ``?ae=Item&t=IPM.Appointment&a=New&d=...``: the new appointment form,
  posted back with ``a=SaveAppt``.

Times are shown and entered in UTC: OWA shows a calendar in the time zone
of the mailbox's regional settings, and sitemail keeps none per mailbox, so
every mailbox has the servers' zone, UTC (EWS clients, which name their own
zone, get any Windows zone).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError

from sitemail.access.web.common import AppUser, BadForm, MailStore, security_headers
from sitemail.access.web.html import Markup, el, join
from sitemail.access.web.owa_schedule import ScheduleLookup, schedule_page
from sitemail.access.web.sanitize import text_to_html
from sitemail.access.web.sessions import CANARY_FIELD
from sitemail.clock import Clock
from sitemail.mailbox.errors import MessageNotFound
from sitemail.mailbox.item_records import MAX_BODY, MAX_TEXT, CalendarData, FreeBusy, ItemKind
from sitemail.mailbox.records import Address, WellKnownFolder
from sitemail.mailbox.recurrence import Occurrence, expand, occurrence_at

__all__ = ["APPOINTMENT_CLASS", "CALENDAR_ACTIONS", "CALENDAR_CLASS", "CalendarPage", "OwaCalendar"]

CALENDAR_CLASS = "IPF.Appointment"
APPOINTMENT_CLASS = "IPM.Appointment"
CALENDAR_ACTIONS = frozenset({"SaveAppt", "DeleteAppt"})
#: Most appointments one view shows.
MAX_SHOWN = 500
_CALENDAR = WellKnownFolder.CALENDAR.value
_SHOW_AS = (FreeBusy.BUSY, FreeBusy.FREE, FreeBusy.TENTATIVE, FreeBusy.OOF)
_NOTICES = {"saved": "The appointment was saved.", "deleted": "The appointment was deleted."}


@dataclass(frozen=True)
class CalendarPage:
    """What OWA's frame shows (the frame itself is :class:`~.owa.OwaApp`'s)."""

    title: str
    content: Markup
    status: int = 200


@dataclass(frozen=True)
class _Form:
    subject: str = ""
    location: str = ""
    day: str = ""
    start: str = "09:00"
    end: str = "09:30"
    all_day: bool = False
    show_as: str = FreeBusy.BUSY.value
    notes: str = ""


class OwaCalendar:
    """The calendar pages of one Client Access server."""

    def __init__(self, store: MailStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------------ GET

    async def get(
        self, user: AppUser, query: Mapping[str, str], lookup: ScheduleLookup | None = None
    ) -> CalendarPage:
        if query.get("ae") == "Item" and query.get("a") == "Schedule":
            day = _day(query.get("d"), self._today())
            return CalendarPage(*await schedule_page(user, query, day, lookup))
        if query.get("ae") == "Item" and query.get("a") == "New":
            return self._form(user, _Form(day=_day(query.get("d"), self._today()).isoformat()))
        if query.get("ae") == "Item":
            return await self._appointment(user, _number(query.get("id")), query.get("i"))
        kind = "Day" if query.get("vt") == "Day" else "Week"
        return await self._view(user, _day(query.get("d"), self._today()), kind, query.get("n"))

    def _today(self) -> date:
        return self.clock.now().astimezone(UTC).date()

    async def _view(self, user: AppUser, day: date, kind: str, notice: str | None) -> CalendarPage:
        first = day if kind == "Day" else day - timedelta(days=(day.weekday() + 1) % 7)
        days = [first + timedelta(days=n) for n in range(1 if kind == "Day" else 7)]
        start = datetime.combine(first, time(), tzinfo=UTC)
        end = start + timedelta(days=len(days))
        shown: list[tuple[Occurrence, int, CalendarData]] = []
        for item in await self.store.calendar_items(user.alias, _CALENDAR, start, end):
            data = item.calendar
            if data is None:
                continue
            found, _ = expand(data, start, end, limit=MAX_SHOWN)
            shown += [(occ, item.id, data) for occ in found]
        shown.sort(key=lambda s: (s[0].start, s[1]))
        step = timedelta(days=len(days))
        nav = el(
            "div",
            {"class": "calnav"},
            _button("Previous", _view_link(kind, first - step)),
            _button("Today", _view_link(kind, self._today())),
            _button("Next", _view_link(kind, first + step)),
            _button("Day", _view_link("Day", day)),
            _button("Week", _view_link("Week", day)),
            _button("New Appointment", "?" + urlencode(_new_query(day)), primary=True),
        )
        columns = []
        for column_day in days:
            entries = [
                _entry(occ, master, data)
                for occ, master, data in shown[:MAX_SHOWN]
                if occ.start.date() <= column_day <= _last_day(occ)
            ]
            columns.append(
                el(
                    "td",
                    {"class": "day"},
                    el("ul", {"class": "appointments"}, entries) if entries else None,
                )
            )
        heads = [
            el("th", {}, el("a", {"href": _view_link("Day", d)}, f"{d:%A %m/%d}")) for d in days
        ]
        title = f"{first:%B %d, %Y}" if kind == "Day" else f"Week of {first:%B %d, %Y}"
        text = _NOTICES.get(notice or "")
        content = join(
            [
                el("div", {"class": "notice"}, text) if text else None,
                el("div", {"class": "listhead"}, el("h1", {}, f"Calendar: {title}")),
                nav,
                el(
                    "table",
                    {"class": f"calendar {kind.lower()}"},
                    el("thead", {}, el("tr", {}, heads)),
                    el("tbody", {}, el("tr", {}, columns)),
                ),
                el("p", {"class": "zone"}, "Times are shown in (UTC) Coordinated Universal Time."),
            ]
        )
        return CalendarPage(f"Calendar - {title}", content)

    async def _appointment(
        self, user: AppUser, item_id: int, index_text: str | None
    ) -> CalendarPage:
        item = await self.store.get_typed(user.alias, item_id)
        data = item.calendar
        if data is None:
            raise MessageNotFound("That item is not an appointment.")
        occ = None
        if index_text is not None:
            occ = occurrence_at(data, _number(index_text))
            if occ is None:
                raise MessageNotFound("That occurrence has been deleted from the series.")
        start, end = (occ.start, occ.end) if occ else (data.start, data.end)
        change = occ.modified if occ else None
        subject = change.subject if change and change.subject is not None else data.subject
        location = change.location if change and change.location is not None else data.location
        rows = [
            ("When:", _span(start, end, data.all_day)),
            ("Where:", location),
            (
                "Show as:",
                (change.free_busy if change and change.free_busy else data.free_busy).value,
            ),
            ("Organizer:", data.organizer.name or data.organizer.address if data.organizer else ""),
        ]
        if data.required:
            rows.append(("Required:", "; ".join(a.name or a.address for a in data.required)))
        if data.optional:
            rows.append(("Optional:", "; ".join(a.name or a.address for a in data.optional)))
        if data.recurrence is not None:
            rows.append(("Recurrence:", _recurrence_text(data)))
        delete = el(
            "form",
            {"method": "post", "action": "?ae=Item", "class": "inline"},
            el("input", {"type": "hidden", "name": CANARY_FIELD, "value": user.canary}),
            el("input", {"type": "hidden", "name": "a", "value": "DeleteAppt"}),
            el("input", {"type": "hidden", "name": "id", "value": item.id}),
            el("button", {"type": "submit", "class": "button danger"}, "Delete"),
        )
        content = join(
            [
                el(
                    "div",
                    {"class": "actions"},
                    _button("Calendar", _view_link("Week", start.date())),
                    delete,
                ),
                el("h1", {"class": "subject"}, subject or "(no subject)"),
                el(
                    "table",
                    {"class": "itemhead"},
                    [el("tr", {}, el("th", {}, k), el("td", {}, v)) for k, v in rows],
                ),
                el("div", {"class": "body text"}, text_to_html(data.body)) if data.body else None,
            ]
        )
        return CalendarPage(subject or "(no subject)", content)

    def _form(self, user: AppUser, form: _Form, *, error: str | None = None) -> CalendarPage:
        fields = el(
            "form",
            {"method": "post", "action": "?ae=Item", "class": "compose appointment"},
            el("input", {"type": "hidden", "name": "a", "value": "SaveAppt"}),
            el("input", {"type": "hidden", "name": CANARY_FIELD, "value": user.canary}),
            el("div", {"class": "error", "role": "alert"}, error) if error else None,
            _input("Subject:", "subject", form.subject, maxlength=MAX_TEXT),
            _input("Location:", "location", form.location, maxlength=MAX_TEXT),
            _input("Date:", "day", form.day, kind="date", required=True),
            _input("Start time:", "start", form.start, kind="time"),
            _input("End time:", "end", form.end, kind="time"),
            el(
                "label",
                {"class": "field"},
                el("span", {}, "All day event:"),
                el(
                    "input",
                    {"type": "checkbox", "name": "allday", "value": "1", "checked": form.all_day},
                ),
            ),
            el(
                "label",
                {"class": "field"},
                el("span", {}, "Show time as:"),
                el(
                    "select",
                    {"name": "showas"},
                    [
                        el(
                            "option",
                            {"value": s.value, "selected": s.value == form.show_as},
                            s.value,
                        )
                        for s in _SHOW_AS
                    ],
                ),
            ),
            el("textarea", {"name": "notes", "rows": 8, "aria-label": "Notes"}, form.notes),
            el(
                "div",
                {"class": "actions"},
                el("button", {"type": "submit", "class": "button primary"}, "Save and Close"),
                _button("Cancel", _view_link("Week", _day(form.day, self._today()))),
                _button("Scheduling Assistant", "?" + urlencode(_schedule_query(form.day))),
            ),
        )
        return CalendarPage(
            "Untitled Appointment" if not form.subject else form.subject,
            join([el("h1", {}, "Appointment"), fields]),
            400 if error else 200,
        )

    # ------------------------------------------------------------------ POST

    async def post(self, user: AppUser, form: Mapping[str, str]) -> web.Response | CalendarPage:
        """A SaveAppt or DeleteAppt form (the canary was checked reading it)."""
        if form.get("a") == "DeleteAppt":
            item = await self.store.get_typed(user.alias, _number(form.get("id")))
            if item.kind is not ItemKind.CALENDAR or item.calendar is None:
                raise BadForm("that item is not an appointment")
            await self.store.delete(user.alias, item.id)  # to Deleted Items, as OWA does
            return _see_other(_view_link("Week", item.calendar.start.date()) + "&n=deleted")
        entered = _Form(
            subject=form.get("subject", ""),
            location=form.get("location", ""),
            day=form.get("day", ""),
            start=form.get("start", ""),
            end=form.get("end", ""),
            all_day=form.get("allday") == "1",
            show_as=form.get("showas", FreeBusy.BUSY.value),
            notes=form.get("notes", ""),
        )
        try:
            record = self._record(user, entered)
        except ValueError as exc:
            return self._form(user, entered, error=str(exc))
        await self.store.create_typed(user.alias, _CALENDAR, ItemKind.CALENDAR, record)
        return _see_other(_view_link("Day", record.start.date()) + "&n=saved")

    def _record(self, user: AppUser, form: _Form) -> CalendarData:
        if len(form.subject) > MAX_TEXT or len(form.location) > MAX_TEXT:
            raise ValueError(f"The subject and location can be at most {MAX_TEXT} characters.")
        if len(form.notes) > MAX_BODY:
            raise ValueError(f"The notes can be at most {MAX_BODY} characters.")
        try:
            day = date.fromisoformat(form.day)
        except ValueError:
            raise ValueError("Enter the date as YYYY-MM-DD.") from None
        if form.all_day:
            start = datetime.combine(day, time(), tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            start = datetime.combine(day, _clock_time(form.start, "start"), tzinfo=UTC)
            end = datetime.combine(day, _clock_time(form.end, "end"), tzinfo=UTC)
            if end <= start:
                raise ValueError("The end time must be after the start time.")
        try:
            show_as = FreeBusy(form.show_as)
        except ValueError:
            raise ValueError("Choose how to show the time: Busy, Free, Tentative or OOF.") from None
        try:
            return CalendarData(
                subject=form.subject,
                location=form.location,
                body=form.notes,
                start=start,
                end=end,
                all_day=form.all_day,
                free_busy=show_as,
                organizer=Address(
                    name=user.mailbox.display_name, address=user.mailbox.primary_smtp_address
                ),
                uid=uuid.uuid4().hex.upper(),
            )
        except ValidationError as exc:
            raise ValueError(f"The appointment is not valid: {exc.errors()[0]['msg']}.") from None


# ---------------------------------------------------------------------- helpers


def _see_other(location: str) -> web.Response:
    """Post/Redirect/Get, to a relative location."""
    response = web.Response(status=303, headers={"Location": location})
    security_headers(response)
    return response


def _number(value: str | None) -> int:
    if value is None or not value.isdigit() or len(value) > 18:
        raise MessageNotFound("No appointment was named.")
    return int(value)


def _day(value: str | None, default: date) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return default


def _clock_time(value: str, what: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"Enter the {what} time as HH:MM.") from None


def _view_link(kind: str, day: date) -> str:
    return "?" + urlencode({"ae": "Folder", "t": CALENDAR_CLASS, "vt": kind, "d": day.isoformat()})


def _schedule_query(day: str) -> dict[str, str]:
    return {"ae": "Item", "t": APPOINTMENT_CLASS, "a": "Schedule", "d": day}


def _new_query(day: date) -> dict[str, str]:
    return {"ae": "Item", "t": APPOINTMENT_CLASS, "a": "New", "d": day.isoformat()}


def _button(label: str, href: str, *, primary: bool = False) -> Markup:
    return el("a", {"class": "button primary" if primary else "button", "href": href}, label)


def _input(
    label: str,
    name: str,
    value: str,
    *,
    kind: str = "text",
    maxlength: int | None = None,
    required: bool = False,
) -> Markup:
    return el(
        "label",
        {"class": "field"},
        el("span", {}, label),
        el(
            "input",
            {
                "type": kind,
                "name": name,
                "value": value,
                "maxlength": maxlength,
                "required": required,
            },
        ),
    )


def _last_day(occ: Occurrence) -> date:
    """The last day an occurrence covers (one ending at midnight ends the day before)."""
    end = occ.end if occ.end == occ.start else occ.end - timedelta(microseconds=1)
    return end.date()


def _entry(occ: Occurrence, master: int, data: CalendarData) -> Markup:
    change = occ.modified
    subject = change.subject if change and change.subject is not None else data.subject
    query = {"ae": "Item", "t": APPOINTMENT_CLASS, "id": str(master)}
    if data.recurrence is not None:
        query["i"] = str(occ.index)
    label = "All day" if data.all_day else f"{occ.start:%H:%M}-{occ.end:%H:%M}"
    busy = change.free_busy if change and change.free_busy else data.free_busy
    return el(
        "li",
        {"class": f"appointment {busy.value.lower()}"},
        el("span", {"class": "time"}, label),
        " ",
        el("a", {"href": "?" + urlencode(query)}, subject or "(no subject)"),
    )


def _span(start: datetime, end: datetime, all_day: bool) -> str:
    if all_day:
        return f"{start:%A, %B %d, %Y} (all day)"
    return f"{start:%A, %B %d, %Y %H:%M}-{end:%H:%M} (UTC)"


def _recurrence_text(data: CalendarData) -> str:
    rule = data.recurrence
    assert rule is not None
    pattern = rule.pattern.value.removesuffix("Recurrence")
    days = ", ".join(d.value for d in rule.days_of_week)
    text = f"{pattern}, every {rule.interval}" + (f" on {days}" if days else "")
    if rule.count is not None:
        return f"{text}, {rule.count} times from {rule.start_date:%m/%d/%Y}"
    if rule.end_date is not None:
        return f"{text}, from {rule.start_date:%m/%d/%Y} until {rule.end_date:%m/%d/%Y}"
    return f"{text}, from {rule.start_date:%m/%d/%Y}, no end date"
