"""Windows time zones as Exchange Web Services write them.

The ``TimeZoneContext`` SOAP header names the zone a request's times
without an offset are in (:func:`request_zone`; UTC without it, as Exchange
2010 reads them); an unknown zone is ErrorTimeZone.

``GetServerTimeZones`` answers the zones the server knows
(:mod:`sitemail.mailbox.windows_zones`): with ``ReturnFullTimeZoneData``
(true unless it says false; unverified: the schema leaves the default to
the server) each comes as a TimeZoneDefinition with its periods (Standard,
and Daylight when the zone keeps it), one transitions group holding the
year's rule as RecurringDayTransitions (or a lone Transition to Standard),
and the Transitions that start the group; without it, the Id and Name only.
Ids asked for filter the answer, and one the server lacks is ErrorTimeZone
naming it.  Exchange also lists a zone's earlier rules as further groups
from AbsoluteDateTransitions; sitemail gives the rule of the year asked
about (the server's current year), which is what clients turn into the
SerializableTimeZone of their requests.

:func:`time_zone_definition` writes the same definition as a calendar item's
StartTimeZone and EndTimeZone, as Exchange 2010 gives them in full (clients
such as the EWS Managed API refuse a definition without periods and
transitions).  :func:`serializable_time_zone` writes that older form (``t:TimeZone``:
Bias, StandardTime, DaylightTime, minutes west of UTC), which availability
answers carry in WorkingHours.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from contextvars import ContextVar
from datetime import timedelta

from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.windows_zones import (
    WINDOWS_ZONES,
    DayRule,
    ZoneRule,
    display_name,
    known,
    year_rule,
)

__all__ = [
    "get_server_time_zones",
    "request_zone",
    "serializable_time_zone",
    "time_zone_definition",
    "use_request_zone",
]

#: The request's TimeZoneContext (a Windows id): the zone of the times it gives without
#: an offset and of the calendar items it creates without a StartTimeZone.  Each request
#: is served in its own task, so the value is the request's own.
_REQUEST_ZONE: ContextVar[str] = ContextVar("ews_request_zone", default="UTC")


def use_request_zone(windows_id: str | None) -> None:
    """Take the TimeZoneContext header's zone for this request; an unknown one is refused."""
    if windows_id is None:
        _REQUEST_ZONE.set("UTC")
        return
    if not known(windows_id):
        raise SoapFault(
            "ErrorTimeZone", f"The time zone {windows_id[:100]!r} of TimeZoneContext is not known."
        )
    _REQUEST_ZONE.set(windows_id)


def request_zone() -> str:
    """The Windows id of this request's TimeZoneContext (UTC without one)."""
    return _REQUEST_ZONE.get()


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _duration(minutes: int | float) -> str:
    """An xs:duration of whole minutes as Exchange writes biases and offsets ("-PT5H30M")."""
    whole = int(minutes)
    sign = "-" if whole < 0 else ""
    hours, rest = divmod(abs(whole), 60)
    if rest:
        return f"{sign}PT{hours}H{rest}M" if hours else f"{sign}PT{rest}M"
    return f"{sign}PT{hours}H"


def _period_id(windows_id: str, year: int, name: str) -> str:
    # Exchange's form, the registry's rule and its first year (unverified beyond UTC's).
    return f"trule:Microsoft/Registry/{windows_id}/{year}-{name}"


def time_zone_definition(
    parent: ET.Element, tag: str, windows_id: str, year: int, *, full: bool = True
) -> None:
    """A TimeZoneDefinitionType element ``tag`` (TimeZoneDefinition, or a calendar item's
    StartTimeZone and EndTimeZone) of ``windows_id`` with the rule of ``year``."""
    if not known(windows_id):
        # A zone a client named that the server lacks: its id as given, no rule to tell.
        sub(parent, t(tag), Id=windows_id)
        return
    definition = sub(parent, t(tag), Id=windows_id, Name=display_name(windows_id, year))
    if not full:
        return
    rule = year_rule(windows_id, year)
    standard = _period_id(windows_id, year, "Standard")
    daylight = _period_id(windows_id, year, "Daylight")
    periods = sub(definition, t("Periods"))
    # A period's Bias is UTC minus local time, as in Windows' registry.
    sub(periods, t("Period"), Bias=_duration(-rule.standard), Name="Standard", Id=standard)
    if rule.daylight_starts is not None:
        sub(
            periods,
            t("Period"),
            Bias=_duration(-(rule.standard + rule.daylight)),
            Name="Daylight",
            Id=daylight,
        )
    group = sub(sub(definition, t("TransitionsGroups")), t("TransitionsGroup"), Id="0")
    if rule.daylight_starts is None or rule.standard_starts is None:
        sub(sub(group, t("Transition")), t("To"), standard, Kind="Period")
    else:
        _recurring(group, daylight, rule.daylight_starts)
        _recurring(group, standard, rule.standard_starts)
    transitions = sub(definition, t("Transitions"))
    sub(sub(transitions, t("Transition")), t("To"), "0", Kind="Group")


def _recurring(group: ET.Element, period: str, day: DayRule) -> None:
    transition = sub(group, t("RecurringDayTransition"))
    sub(transition, t("To"), period, Kind="Period")
    sub(transition, t("TimeOffset"), _duration(day.time / timedelta(minutes=1)))
    sub(transition, t("Month"), str(day.month))
    sub(transition, t("DayOfWeek"), _DAYS[day.weekday])
    sub(transition, t("Occurrence"), str(day.occurrence))


def get_server_time_zones(body: ET.Element, year: int) -> ET.Element:
    """The GetServerTimeZonesResponse for ``body``, with the rules of ``year``."""
    full = body.get("ReturnFullTimeZoneData", "true").strip().lower() not in ("false", "0")
    ids = [(e.text or "").strip() for e in body.iter(t("Id"))]
    response = ET.Element(m("GetServerTimeZonesResponse"))
    messages = sub(response, m("ResponseMessages"))
    unknown = [i for i in ids if i not in WINDOWS_ZONES]
    msg = sub(
        messages,
        m("GetServerTimeZonesResponseMessage"),
        ResponseClass="Error" if unknown else "Success",
    )
    if unknown:
        sub(msg, m("MessageText"), f"The time zone {unknown[0][:100]!r} is not known.")
        sub(msg, m("ResponseCode"), "ErrorTimeZone")
        sub(msg, m("DescriptiveLinkKey"), "0")
        return response
    sub(msg, m("ResponseCode"), "NoError")
    definitions = sub(msg, m("TimeZoneDefinitions"))
    for windows_id in dict.fromkeys(ids) if ids else WINDOWS_ZONES:
        time_zone_definition(definitions, "TimeZoneDefinition", windows_id, year, full=full)
    return response


def _serializable_change(parent: ET.Element, tag: str, bias: int, day: DayRule | None) -> None:
    element = sub(parent, t(tag))
    sub(element, t("Bias"), str(bias))
    if day is None:
        # A zone without daylight time: no change date (unverified: Exchange's zeros).
        sub(element, t("Time"), "00:00:00")
        sub(element, t("DayOrder"), "0")
        sub(element, t("Month"), "0")
        sub(element, t("DayOfWeek"), "Sunday")
        return
    minutes = int(day.time / timedelta(minutes=1))
    sub(element, t("Time"), f"{minutes // 60:02d}:{minutes % 60:02d}:00")
    # SerializableTimeZone counts the last weekday of a month as 5, not -1.
    sub(element, t("DayOrder"), str(5 if day.occurrence < 0 else day.occurrence))
    sub(element, t("Month"), str(day.month))
    sub(element, t("DayOfWeek"), _DAYS[day.weekday])


def serializable_time_zone(parent: ET.Element, windows_id: str, year: int) -> ZoneRule:
    """A <t:TimeZone> (SerializableTimeZone) of ``windows_id`` in ``year``; its rule."""
    rule = year_rule(windows_id, year)
    zone = sub(parent, t("TimeZone"))
    sub(zone, t("Bias"), str(-rule.standard))
    _serializable_change(zone, "StandardTime", 0, rule.standard_starts)
    _serializable_change(zone, "DaylightTime", -rule.daylight, rule.daylight_starts)
    return rule
