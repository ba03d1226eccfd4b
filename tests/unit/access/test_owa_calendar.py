"""OWA's calendar pages on the in-process Client Access servers: views, the form, escaping, CSRF.

alice's mailbox is on EX-NY1; she signs in at mail.contoso.com (NY) as a
browser would.  Pages are parsed as HTML; what the form creates is checked
in the mailbox database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
from tests.unit.access.test_web_front import Lab, browser, run, running, sign_in

from sitemail.mailbox.item_records import CalendarData, FreeBusy, Pattern, Recurrence, Weekday

HOSTILE = '<script>alert("x")</script> & Co'


class _Page(HTMLParser):
    """The forms (inputs with their values), links and text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, str]] = []
        self.links: list[str] = []
        self.chunks: list[str] = []
        self.scripts = 0
        self.feed(text)
        self.text = "".join(self.chunks)  # what a reader sees, entities decoded

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"@action": values.get("action", "")})
        elif tag in ("input", "select", "textarea") and self.forms and "name" in values:
            if values.get("type") != "checkbox" or "checked" in values:
                self.forms[-1][values["name"]] = values.get("value", "")
        elif tag == "a" and "href" in values:
            self.links.append(values["href"])
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    def form(self, action: str) -> dict[str, str]:
        return next(f for f in self.forms if f.get("a") == action)


def _url(lab: Lab, query: str) -> str:
    return lab.url("mail.contoso.com", "/owa/" + query)


async def _get(lab: Lab, s: aiohttp.ClientSession, query: str) -> tuple[int, _Page, str]:
    r = await s.get(_url(lab, query))
    text = await r.text()
    return r.status, _Page(text), text


def test_the_calendar_shows_weeks_and_days_and_the_form_makes_appointments(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            db = lab.stores["EX-NY1"]
            # A series made elsewhere (EWS, say): Mondays at 08:00, four times.
            series = CalendarData(
                subject="Standup",
                start=datetime(2030, 1, 7, 8, tzinfo=UTC),
                end=datetime(2030, 1, 7, 8, 15, tzinfo=UTC),
                recurrence=Recurrence(
                    pattern=Pattern.WEEKLY,
                    days_of_week=[Weekday.MONDAY],
                    start_date=date(2030, 1, 7),
                    count=4,
                ),
                deleted=[datetime(2030, 1, 14, 8, tzinfo=UTC)],
            )
            db.create_typed("alice", "calendar", series)
            await sign_in(lab, s, "alice")
            # The mail pages link to the calendar.
            status, page, _ = await _get(lab, s, "")
            assert status == 200 and "?ae=Folder&t=IPF.Appointment" in page.links
            # The week of 9 January 2030 starts on Sunday the 6th and holds one standup.
            status, page, _ = await _get(
                lab, s, "?ae=Folder&t=IPF.Appointment&vt=Week&d=2030-01-09"
            )
            assert status == 200 and "Calendar: Week of January 06, 2030" in page.text
            assert "08:00-08:15" in page.text and page.text.count("Standup") == 1
            # The deleted occurrence of the 14th is not in the next week.
            status, page, _ = await _get(
                lab, s, "?ae=Folder&t=IPF.Appointment&vt=Week&d=2030-01-14"
            )
            assert "Standup" not in page.text
            # The form, with the session's canary.
            status, page, _ = await _get(lab, s, "?ae=Item&t=IPM.Appointment&a=New&d=2030-01-08")
            form = page.form("SaveAppt")
            assert status == 200 and form["day"] == "2030-01-08" and form["hidcanary"]
            form.update(
                subject=HOSTILE,
                location="Room <b>7</b>",
                start="13:30",
                end="15:00",
                showas="Tentative",
                notes="Bring <the> numbers",
            )
            action = form.pop("@action")
            # Without the canary nothing is saved.
            r = await s.post(
                _url(lab, action), data={**form, "hidcanary": "forged"}, allow_redirects=False
            )
            assert r.status == 403 and db.list_typed("alice", "calendar").total == 1
            # An end before the start is refused with the form again, escaped.
            r = await s.post(_url(lab, action), data={**form, "end": "12:00"})
            text = await r.text()
            assert r.status == 400 and "The end time must be after the start time." in text
            assert "&lt;script&gt;" in text and '<script>alert("x")' not in text
            assert db.list_typed("alice", "calendar").total == 1
            r = await s.post(_url(lab, action), data=form, allow_redirects=False)
            assert r.status == 303
            location = r.headers["Location"]
            assert location.startswith("?ae=Folder&t=IPF.Appointment&vt=Day&d=2030-01-08")
            made = [i for i in db.list_typed("alice", "calendar").items if i.id != 1]
            (item,) = made
            data = item.calendar
            assert data is not None and data.subject == HOSTILE
            assert (data.start, data.end) == (
                datetime(2030, 1, 8, 13, 30, tzinfo=UTC),
                datetime(2030, 1, 8, 15, tzinfo=UTC),
            )
            assert data.free_busy is FreeBusy.TENTATIVE and data.location == "Room <b>7</b>"
            assert data.organizer is not None and data.organizer.address == "alice@contoso.com"
            # The day view shows it, escaped; there is no script on any calendar page.
            status, page, text = await _get(lab, s, location)
            assert status == 200 and "The appointment was saved." in page.text
            assert HOSTILE in page.text and "&lt;script&gt;" in text and page.scripts == 0
            link = next(h for h in page.links if h.endswith(f"t=IPM.Appointment&id={item.id}"))
            status, page, text = await _get(lab, s, link)
            assert status == 200 and "Room <b>7</b>" in page.text and "<b>7</b>" not in text
            assert "Bring <the> numbers" in page.text and page.scripts == 0
            # Delete: to Deleted Items, gone from the calendar.
            delete = page.form("DeleteAppt")
            r = await s.post(_url(lab, delete.pop("@action")), data=delete, allow_redirects=False)
            assert r.status == 303
            assert [i.id for i in db.list_typed("alice", "calendar").items] == [1]
            assert [i.id for i in db.list_typed("alice", "deleteditems").items] == [item.id]
            # A day view the day after shows nothing of it.
            when = (data.start + timedelta(days=1)).date().isoformat()
            status, page, _ = await _get(lab, s, f"?ae=Folder&t=IPF.Appointment&vt=Day&d={when}")
            assert status == 200 and HOSTILE not in page.text

    run(scenario())


def test_the_scheduling_assistant_shows_busy_times_of_attendees_in_both_sites(
    tmp_path: Path,
) -> None:
    # alice (NY) plans a meeting with adam (FL): OWA asks the availability service of
    # mail.contoso.com, which reads alice's calendar in NY and asks FL's CAS for adam's.
    from tests.unit.access.test_ews_exchangelib import EwsTestStore, plug_ews

    from sitemail.access.owa_availability import OwaAvailability

    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            plug_ews(lab)
            for name, door in lab.doors.items():
                store = EwsTestStore(lab.stores[name])
                door.owa.availability = OwaAvailability(lambda d=door: d, lambda s=store: s)
            lab.stores["EX-FL1"].create_typed(
                "adam",
                "calendar",
                CalendarData(
                    subject="Budget review",
                    start=datetime(2030, 1, 7, 14, tzinfo=UTC),
                    end=datetime(2030, 1, 7, 15, 30, tzinfo=UTC),
                ),
            )
            lab.stores["EX-NY1"].create_typed(
                "alice",
                "calendar",
                CalendarData(
                    subject="Dentist",
                    start=datetime(2030, 1, 7, 9, tzinfo=UTC),
                    end=datetime(2030, 1, 7, 9, 30, tzinfo=UTC),
                    free_busy=FreeBusy.TENTATIVE,
                ),
            )
            await sign_in(lab, s, "alice")
            # The appointment form links to it for its day.
            _, page, _ = await _get(lab, s, "?ae=Item&t=IPM.Appointment&a=New&d=2030-01-07")
            assert "?ae=Item&t=IPM.Appointment&a=Schedule&d=2030-01-07" in page.links
            query = "?ae=Item&t=IPM.Appointment&a=Schedule&d=2030-01-07&to=adam;nobody@contoso.com"
            status, page, text = await _get(lab, s, query)
            assert status == 200 and "Scheduling Assistant: Monday, January 07, 2030" in page.text
            rows = {
                row.split("</th>", 1)[0].rsplit(">", 1)[-1]: row for row in text.split("<tr")[1:]
            }
            adam, alice = rows["adam"], rows["alice@contoso.com"]
            busy = [t for t in ("13:30", "14:00", "14:30", "15:00", "15:30") if
                    f'title="{t} busy"' in adam]  # fmt: skip
            assert busy == ["14:00", "14:30", "15:00"]
            assert 'title="09:00 tentative"' in alice and "busy" not in alice.split("</th>")[1]
            assert "Not found in the address book." in rows["nobody@contoso.com"]
            assert "Budget review" not in text  # free/busy only: no details of others

    run(scenario())
