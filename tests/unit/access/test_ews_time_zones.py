"""Windows time zones through EWS, driven by exchangelib: GetServerTimeZones, availability
asked in a zone with daylight time, and calendar items kept in a zone other than UTC.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s two in-process
Client Access servers (EX-NY1 with alice's mailbox, EX-FL1 with adam's).
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import requests
from bench.lab_names import LabNamesAdapter
from exchangelib import Account, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.properties import TimeZone
from tests.unit.access.test_ews_exchangelib import FL_EWS, ews_account, lab_names, servers, url
from tests.unit.access.test_web_front import PASSWORD, Lab

from sitemail.access.ews_soap import MESSAGES_NS, SOAP_NS, TYPES_NS
from sitemail.mailbox.windows_zones import WINDOWS_ZONES

__all__ = ["lab_names", "servers"]

COPENHAGEN = EWSTimeZone("Europe/Copenhagen")  # Windows: "Romance Standard Time"


def _adam(lab: Lab) -> Account:
    lab.set_vdir(FL_EWS, basic_authentication=True)
    return ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")


def test_the_server_offers_the_windows_time_zones_with_their_rules(servers: Lab) -> None:
    protocol = _adam(servers).protocol
    names = list(protocol.get_timezones())
    assert len(names) == len(WINDOWS_ZONES) > 130
    assert all(d.periods is None for d in names)  # Ids and names only, unless asked
    full = {d.id: d for d in protocol.get_timezones(return_full_timezone_data=True)}
    assert set(full) == {d.id for d in names}
    for definition in full.values():
        # Every zone turns into the SerializableTimeZone a client sends back.
        zone = TimeZone.from_server_timezone(tz_definition=definition, for_year=2026)
        assert zone.to_server_timezone(list(full.values()), 2026) is not None
    paris = TimeZone.from_server_timezone(
        tz_definition=full["Romance Standard Time"], for_year=2026
    )
    assert paris.bias == -60 and paris.daylight_time.bias == -60
    # The last Sunday of March at 02:00 and of October at 03:00 (5: the last, in this form).
    daylight, standard = paris.daylight_time, paris.standard_time
    assert (daylight.iso_month, daylight.occurrence, daylight.weekday) == (3, 5, 7)
    assert (standard.iso_month, standard.occurrence, standard.weekday) == (10, 5, 7)
    assert (daylight.time, standard.time) == (dt.time(2), dt.time(3))
    eastern = TimeZone.from_server_timezone(
        tz_definition=full["Eastern Standard Time"], for_year=2026
    )
    assert eastern.bias == 300 and (
        eastern.daylight_time.iso_month,
        eastern.daylight_time.occurrence,
    ) == (3, 2)
    india = TimeZone.from_server_timezone(tz_definition=full["India Standard Time"], for_year=2026)
    assert india.bias == -330 and india.daylight_time.bias == 0
    # Ids asked for filter the answer.
    (only,) = protocol.get_timezones(timezones=[COPENHAGEN], return_full_timezone_data=True)
    assert only.id == "Romance Standard Time" and only.name.startswith("(UTC+01:00)")


def test_availability_is_asked_and_answered_in_a_zone_with_daylight_time(servers: Lab) -> None:
    adam = _adam(servers)
    # 10:00 in Copenhagen on a summer day is 08:00 UTC.
    start = EWSDateTime(2030, 7, 1, 10, tzinfo=COPENHAGEN)
    CalendarItem(
        account=adam,
        folder=adam.calendar,
        subject="Summer",
        start=start,
        end=start + timedelta(hours=1),
    ).save(send_meeting_invitations="SendToNone")
    zones = list(adam.protocol.get_timezones(return_full_timezone_data=True))
    (view,) = adam.protocol.get_free_busy_info(
        accounts=[(adam, "Organizer", False)],
        start=start - timedelta(hours=1),
        end=start + timedelta(hours=2),
        merged_free_busy_interval=60,
        requested_view="DetailedMerged",
    )
    assert view.merged == "020"
    (event,) = view.calendar_events
    assert event.start.astimezone(COPENHAGEN).hour == 10 and event.details.subject == "Summer"
    # The mailbox's working hours come with the zone they are kept in.
    assert isinstance(view.working_hours_timezone, TimeZone)
    assert view.working_hours_timezone.to_server_timezone(zones, 2030) in WINDOWS_ZONES
    assert [(p.start, p.end) for p in view.working_hours] == [(dt.time(8), dt.time(17))]


def test_an_all_day_event_keeps_its_dates_in_its_own_time_zone(servers: Lab) -> None:
    adam = _adam(servers)
    # An all-day item's times become midnights in its time zone: the start's day's, and the
    # one after the end's day.
    start = EWSDateTime(1999, 5, 2, 0, 30, tzinfo=COPENHAGEN)
    end = EWSDateTime(1999, 5, 4, 23, 50, tzinfo=COPENHAGEN)
    item = CalendarItem(
        account=adam, folder=adam.calendar, start=start, end=end, is_all_day=True
    ).save(send_meeting_invitations="SendToNone")
    got = adam.calendar.all().only("is_all_day", "start", "end").get(id=item.id)
    assert (got.start, got.end) == (dt.date(1999, 5, 2), dt.date(1999, 5, 4))
    # What the store holds: Copenhagen's midnights (summer time, UTC+2), in UTC.
    (stored,) = servers.stores["EX-FL1"].list_typed("adam", "calendar").items
    assert stored.calendar is not None and stored.calendar.time_zone == "Romance Standard Time"
    assert (stored.calendar.start, stored.calendar.end) == (
        datetime(1999, 5, 1, 22, tzinfo=UTC),
        datetime(1999, 5, 4, 22, tzinfo=UTC),
    )
    # Plain dates, as clients write all-day items.
    item = CalendarItem(
        account=adam,
        folder=adam.calendar,
        start=dt.date(2030, 12, 24),
        end=dt.date(2030, 12, 26),
        is_all_day=True,
    ).save(send_meeting_invitations="SendToNone")
    got = adam.calendar.all().only("is_all_day", "start", "end").get(id=item.id)
    assert (got.start, got.end) == (dt.date(2030, 12, 24), dt.date(2030, 12, 26))
    got.save()  # an update keeps them
    got = adam.calendar.all().only("is_all_day", "start", "end").get(id=item.id)
    assert (got.start, got.end) == (dt.date(2030, 12, 24), dt.date(2030, 12, 26))


def _post(lab: Lab, zone: str | None, operation: str) -> ET.Element:
    """A raw EWS request with ``zone`` as its TimeZoneContext; the answer's first
    ResponseMessage."""
    lab.set_vdir(FL_EWS, basic_authentication=True)
    session = requests.Session()
    session.mount("https://", LabNamesAdapter())
    context = (
        f'<t:TimeZoneContext><t:TimeZoneDefinition Id="{zone}"/></t:TimeZoneContext>'
        if zone
        else ""
    )
    answer = session.post(
        url(lab, "ex-fl1.contoso.com"),
        data=(
            f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}" '
            f'xmlns:t="{TYPES_NS}" xmlns:m="{MESSAGES_NS}"><s:Header><t:RequestServerVersion '
            f'Version="Exchange2010_SP2"/>{context}</s:Header><s:Body>{operation}</s:Body>'
            "</s:Envelope>"
        ).encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=("contoso\\adam", PASSWORD),
        timeout=30,
    )
    root = ET.fromstring(answer.content)
    fault = root.find(f".//{{{SOAP_NS}}}Fault")
    if fault is not None:
        return fault
    found = root.find(f".//{{{MESSAGES_NS}}}ResponseMessages")
    assert found is not None, answer.text
    return found[0]


def test_times_without_an_offset_are_in_the_requests_time_zone_context(servers: Lab) -> None:
    create = (
        '<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>'
        "<t:Subject>Naive</t:Subject><t:Start>2030-07-01T10:00:00</t:Start>"
        "<t:End>2030-07-01T11:00:00</t:End></t:CalendarItem></m:Items></m:CreateItem>"
    )
    answer = _post(servers, "Romance Standard Time", create)
    assert answer.findtext(f"{{{MESSAGES_NS}}}ResponseCode") == "NoError"
    (stored,) = servers.stores["EX-FL1"].list_typed("adam", "calendar").items
    assert stored.calendar is not None
    # 10:00 in Paris in July is 08:00 UTC; the item is kept in the context's zone.
    assert stored.calendar.start == datetime(2030, 7, 1, 8, tzinfo=UTC)
    assert stored.calendar.time_zone == "Romance Standard Time"
    # The item's zone comes back in full, as the EWS Managed API needs it (periods,
    # transitions), and is the zone a client reads its times in.
    got = _adam(servers).calendar.get(subject="Naive")
    assert got._start_timezone == EWSTimeZone("Europe/Paris") and got._end_timezone is not None
    assert got.start.astimezone(COPENHAGEN).hour == 10
    raw = _post(
        servers,
        None,
        "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>"
        '<t:FieldURI FieldURI="calendar:StartTimeZone"/></t:AdditionalProperties></m:ItemShape>'
        f'<m:ItemIds><t:ItemId Id="{got.id}"/></m:ItemIds></m:GetItem>',
    )
    zone = raw.find(f".//{{{TYPES_NS}}}StartTimeZone")
    assert zone is not None and zone.get("Id") == "Romance Standard Time"
    periods = zone.findall(f"{{{TYPES_NS}}}Periods/{{{TYPES_NS}}}Period")
    assert [p.get("Bias") for p in periods] == ["-PT1H", "-PT2H"]
    assert len(zone.findall(f".//{{{TYPES_NS}}}RecurringDayTransition")) == 2
    # Without a context, such times are UTC.
    _post(servers, None, create.replace("Naive", "Plain"))
    plain = [
        i.calendar
        for i in servers.stores["EX-FL1"].list_typed("adam", "calendar").items
        if i.calendar is not None and i.calendar.subject == "Plain"
    ]
    assert [(c.start.hour, c.time_zone) for c in plain] == [(10, "UTC")]
    # A zone the server does not know is refused.
    refused = _post(servers, "Mars Standard Time", create)
    assert "ErrorTimeZone" in ET.tostring(refused, encoding="unicode")
