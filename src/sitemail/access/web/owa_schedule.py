"""OWA's Scheduling Assistant: the busy times of the people you would meet, on one day.

``?ae=Item&t=IPM.Appointment&a=Schedule&d=2030-01-07&to=adam@contoso.com;bob``
shows a row per attendee (the signed-in user first) and a column per half
hour of the working day, each cell free, tentative, busy or away, as OWA
2010's Scheduling Assistant does beside a new meeting.  The times come from
the availability service, asked through :data:`AvailabilityLookup` (the W3SVC
plugs EWS's in): an attendee in this site is read from the mailbox server,
one in another site from that site's Client Access server, as Outlook's own
availability requests are (spec 8.3).  A name the directory does not know,
or a site that does not answer, is shown on its row instead of times.

The page changes nothing, so it is a GET without the canary; it links to
the new appointment form of the same day.  Times are UTC, as OWA's calendar
(:mod:`.owa_calendar`) shows them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from sitemail.access.web.common import AppUser, RequestContext
from sitemail.access.web.html import Markup, el, join

__all__ = [
    "MAX_ATTENDEES",
    "AvailabilityLookup",
    "BusyBlock",
    "ScheduleLookup",
    "schedule_page",
]

#: Most attendees one page asks about (the availability service takes 100).
MAX_ATTENDEES = 20
#: The working day shown, in half hours (08:00 to 18:00 UTC).
_FIRST_SLOT = time(8, 0)
_SLOTS = 20
_SLOT = timedelta(minutes=30)
# Stronger wins when two appointments share a slot, as OWA shades them.
_RANK = {"Free": 0, "Tentative": 1, "Busy": 2, "OOF": 3}
_LABELS = {"Free": "free", "Tentative": "tentative", "Busy": "busy", "OOF": "away"}


@dataclass(frozen=True)
class BusyBlock:
    start: datetime  # UTC
    end: datetime
    busy: str  # Tentative, Busy or OOF (the availability service's BusyType)


#: (attendee addresses, window start, window end) -> address -> its blocks, or why none.
Answers = dict[str, list[BusyBlock] | str]
ScheduleLookup = Callable[[list[str], datetime, datetime], Awaitable[Answers]]
#: What the W3SVC gives OWA: the lookup for one request (its context and user).
AvailabilityLookup = Callable[[RequestContext, AppUser], ScheduleLookup]


def attendees_of(text: str, user: AppUser) -> list[str]:
    """The attendees a ``to`` field names (``;`` or ``,`` between them), the user first."""
    out = [user.mailbox.primary_smtp_address.lower()]
    for part in text.replace(",", ";").split(";"):
        name = part.strip().lower()
        if name and name not in out:
            out.append(name)
    return out[: MAX_ATTENDEES + 1]


async def schedule_page(
    user: AppUser, query: Mapping[str, str], day: date, lookup: ScheduleLookup | None
) -> tuple[str, Markup]:
    """The page's title and content."""
    names = attendees_of(query.get("to", ""), user)
    start = datetime.combine(day, _FIRST_SLOT, tzinfo=UTC)
    end = start + _SLOT * _SLOTS
    if lookup is None:
        answers: Answers = dict.fromkeys(
            names, "The availability service is not available on this server."
        )
    else:
        answers = await lookup(names, start, end)
    slots = [start + _SLOT * n for n in range(_SLOTS)]
    head = el(
        "tr",
        {},
        el("th", {"scope": "col"}, "Attendee"),
        [el("th", {"scope": "col", "class": "slot"}, f"{s:%H:%M}") for s in slots],
    )
    rows = [_row(name, answers.get(name, "No answer."), slots) for name in names]
    form = el(
        "form",
        {"method": "get", "action": "", "class": "schedule"},
        el("input", {"type": "hidden", "name": "ae", "value": "Item"}),
        el("input", {"type": "hidden", "name": "t", "value": "IPM.Appointment"}),
        el("input", {"type": "hidden", "name": "a", "value": "Schedule"}),
        el(
            "label",
            {"class": "field"},
            el("span", {}, "Attendees:"),
            el(
                "input",
                {
                    "type": "text",
                    "name": "to",
                    "value": "; ".join(names[1:]),
                    "size": 60,
                    "maxlength": 2000,
                },
            ),
        ),
        el(
            "label",
            {"class": "field"},
            el("span", {}, "Date:"),
            el("input", {"type": "date", "name": "d", "value": day.isoformat()}),
        ),
        el("button", {"type": "submit", "class": "button"}, "Show availability"),
    )
    new = "?" + urlencode({"ae": "Item", "t": "IPM.Appointment", "a": "New", "d": day.isoformat()})
    content = join(
        [
            el("h1", {}, f"Scheduling Assistant: {day:%A, %B %d, %Y}"),
            form,
            el("table", {"class": "schedule"}, el("thead", {}, head), el("tbody", {}, rows)),
            el("p", {"class": "legend"}, "Times are UTC. Busy, tentative and away times "
               "come from each attendee's calendar through the availability service."),
            el("div", {"class": "actions"}, el("a", {"class": "button", "href": new},
                                                 "New Appointment")),
        ]
    )  # fmt: skip
    return "Scheduling Assistant", content


def _row(name: str, answer: list[BusyBlock] | str, slots: list[datetime]) -> Markup:
    label = el("th", {"scope": "row"}, name)
    if isinstance(answer, str):
        return el("tr", {"class": "unknown"}, label, el("td", {"colspan": len(slots)}, answer))
    cells = []
    for slot in slots:
        kind = "Free"
        for block in answer:
            if (
                block.start < slot + _SLOT
                and block.end > slot
                and _RANK.get(block.busy, 2) > _RANK[kind]
            ):
                kind = block.busy
        word = _LABELS[kind]
        cells.append(el("td", {"class": f"slot {word}", "title": f"{slot:%H:%M} {word}"}, ""))
    return el("tr", {}, label, cells)
