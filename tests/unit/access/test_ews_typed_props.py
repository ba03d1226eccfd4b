"""The properties of calendar items, contacts and tasks beyond their records' own (categories,
sensitivity, a contact's birthday and addresses ...), through exchangelib against the
in-process Client Access servers: kept as set, given back, updated, deleted, restricted on."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta
from decimal import Decimal

import pytest
from exchangelib import (
    Account,
    CalendarItem,
    Contact,
    DistributionList,
    EWSDateTime,
    EWSTimeZone,
    Mailbox,
    Task,
)
from exchangelib.errors import ErrorNameResolutionNoResults, ErrorPropertyUpdate
from exchangelib.indexed_properties import EmailAddress, PhysicalAddress
from exchangelib.properties import DLMailbox, ItemId, Member
from exchangelib.recurrence import DailyPattern, Recurrence
from tests.unit.access.test_ews_exchangelib import FL_EWS, ews_account, lab_names, servers, url
from tests.unit.access.test_web_front import Lab

from sitemail.access.ews_calendar import zoned_date
from sitemail.access.ews_ids import parse_id
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import TYPES_NS
from sitemail.access.ews_typed_props import delete_prop, parse_props, set_props
from sitemail.mailbox.item_records import ItemKind

__all__ = ["lab_names", "servers"]

UTC_TZ = EWSTimeZone("UTC")


def _adam(lab: Lab) -> Account:
    lab.set_vdir(FL_EWS, basic_authentication=True)
    return ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")


def test_a_contact_keeps_every_property_and_is_found_by_them(
    servers: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = _adam(servers)
    home = PhysicalAddress(label="Home", street="1 Elm St", city="Springfield")
    contact = Contact(
        account=account,
        folder=account.contacts,
        display_name="Jane Doe",
        given_name="Jane",
        surname="Doe",
        categories=["props-test", "friends"],
        sensitivity="Private",
        importance="High",
        birthday=date(1990, 4, 2),
        children=["Ann", "Bob"],
        companies=["Contoso"],
        profession="Engineer",
        physical_addresses=[home],
        email_addresses=[EmailAddress(label="EmailAddress1", email="jane@example.com")],
    ).save()
    Contact(
        account=account, folder=account.contacts, display_name="John Roe", categories=["other"]
    ).save()
    fresh = account.contacts.get(id=contact.id)
    assert set(fresh.categories) == {"props-test", "friends"}
    assert (fresh.sensitivity, fresh.importance) == ("Private", "High")
    assert fresh.birthday == date(1990, 4, 2)
    assert fresh.children == ["Ann", "Bob"]
    assert fresh.profession == "Engineer"
    assert fresh.physical_addresses == [home]
    # Restrictions on the generic item properties, list properties and indexed entries.
    mine = account.contacts.filter(categories__contains=["props-test"])
    assert [c.display_name for c in mine] == ["Jane Doe"]
    assert mine.filter(sensitivity="Private").count() == 1
    assert mine.filter(children__in=["Bob"]).count() == 1
    assert mine.filter(profession__contains="gine").count() == 1
    assert mine.filter(email_addresses__EmailAddress1="jane@example.com").count() == 1
    assert mine.filter(physical_addresses__Home__city="Springfield").count() == 1
    assert mine.filter(physical_addresses__Home__city="Shelbyville").count() == 0
    # Exchange 2010 takes a restriction on ReminderDueBy and matches nothing (exchangelib
    # knows, and refuses to send one unless told otherwise).
    monkeypatch.setattr(Contact.get_field_by_fieldname("reminder_due_by"), "is_searchable", True)
    assert mine.filter(reminder_due_by__gt=EWSDateTime(2000, 1, 1, tzinfo=UTC_TZ)).count() == 0
    ordered = account.contacts.all().order_by("-physical_addresses__Home__street")
    assert next(c.display_name for c in ordered) == "Jane Doe"

    # An indexed property replaced entry by entry (exchangelib deletes the labels it drops),
    # a property emptied, another changed.
    business = PhysicalAddress(label="Business", street="2 Oak St", city="Ogdenville")
    contact.physical_addresses = [business]
    contact.children = None
    contact.sensitivity = "Normal"
    contact.save(update_fields=["physical_addresses", "children", "sensitivity"])
    contact.refresh()
    assert contact.physical_addresses == [business]
    assert contact.children is None
    assert contact.sensitivity == "Normal"
    assert contact.phone_numbers is None  # no phone number was touched by the address's delete
    # A subject set apart from the name is given back; deleted, it is gone (not the name).
    contact.subject = "Jane at work"
    contact.save(update_fields=["subject"])
    assert account.contacts.get(id=contact.id).subject == "Jane at work"
    contact.subject = None
    contact.save(update_fields=["subject"])
    assert account.contacts.get(id=contact.id).subject is None

    # Exchange refuses a name over 255 characters (exchangelib too, unless told otherwise).
    monkeypatch.setattr(Contact.get_field_by_fieldname("given_name"), "max_length", 4000)
    contact.given_name = "x" * 300
    with pytest.raises(ErrorPropertyUpdate):
        contact.save(update_fields=["given_name"])


def test_tasks_and_calendar_items_keep_categories_and_sensitivity(
    servers: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = _adam(servers)
    # Exchange keeps a subject's first 255 characters (exchangelib refuses more by itself).
    monkeypatch.setattr(Task.get_field_by_fieldname("subject"), "max_length", 4000)
    task = Task(
        account=account,
        folder=account.tasks,
        subject="t" * 400,
        categories=["props-task"],
        sensitivity="Private",
        billing_information="Project X",
        total_work=90,
        reminder_is_set=True,
        percent_complete=Decimal(0),
    ).save()
    fresh = account.tasks.get(id=task.id)
    assert len(fresh.subject) == 255
    assert (fresh.sensitivity, fresh.billing_information, fresh.total_work) == (
        "Private",
        "Project X",
        90,
    )
    assert fresh.reminder_is_set is True
    found = account.tasks.filter(categories__contains=["props-task"])
    assert found.filter(total_work__gte=60, billing_information="project x").count() == 1
    fresh.sensitivity = "Confidential"
    fresh.save(update_fields=["sensitivity"])
    assert account.tasks.get(id=task.id).sensitivity == "Confidential"

    start = EWSDateTime(2031, 6, 2, 9, tzinfo=UTC_TZ)
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Review",
        start=start,
        end=start + timedelta(hours=1),
        categories=["props-cal"],
        sensitivity="Personal",
        reminder_is_set=False,
        reminder_minutes_before_start=30,
    )
    item.save(send_meeting_invitations="SendToNone")
    got = account.calendar.get(categories__contains=["props-cal"])
    assert (got.subject, got.sensitivity, got.categories) == ("Review", "Personal", ["props-cal"])
    # The minutes a client gave are kept while the reminder is off, as Exchange keeps them.
    assert (got.reminder_is_set, got.reminder_minutes_before_start) == (False, 30)


def _contact(xml: str) -> ET.Element:
    return ET.fromstring(f'<t:Contact xmlns:t="{TYPES_NS}">{xml}</t:Contact>')


def test_kept_properties_merge_indexed_entries_and_check_types() -> None:
    props = parse_props(
        ItemKind.CONTACT,
        _contact(
            "<t:PhysicalAddresses><t:Entry Key='Home'><t:Street>A</t:Street>"
            "<t:City>B</t:City></t:Entry></t:PhysicalAddresses><t:Manager>M</t:Manager>"
        ),
    )
    assert set(props) == {"contacts:PhysicalAddresses", "contacts:Manager"}
    merged = set_props(
        ItemKind.CONTACT,
        props,
        _contact(
            "<t:PhysicalAddresses><t:Entry Key='Home'><t:City>C</t:City></t:Entry>"
            "</t:PhysicalAddresses>"
        ),
        indexed=True,
        append=False,
    )
    home = ET.fromstring(merged["contacts:PhysicalAddresses"])[0]
    assert [(e.tag.split("}")[1], e.text) for e in home] == [("Street", "A"), ("City", "C")]
    street_gone = delete_prop(ItemKind.CONTACT, merged, "contacts:PhysicalAddress:Street", "Home")
    city_gone = delete_prop(
        ItemKind.CONTACT, street_gone or {}, "contacts:PhysicalAddress:City", "Home"
    )
    assert set(city_gone or {}) == {"contacts:Manager"}  # the emptied entry and container go
    assert delete_prop(ItemKind.CONTACT, props, "contacts:DisplayName", None) is None
    # AppendToItemField adds to a multi-valued property; SetItemField replaces it.
    tagged = parse_props(
        ItemKind.CONTACT, _contact("<t:Categories><t:String>a</t:String></t:Categories>")
    )
    more = _contact("<t:Categories><t:String>b</t:String></t:Categories>")
    appended = set_props(ItemKind.CONTACT, tagged, more, indexed=False, append=True)
    replaced = set_props(ItemKind.CONTACT, tagged, more, indexed=False, append=False)
    assert [s.text for s in ET.fromstring(appended["item:Categories"])] == ["a", "b"]
    assert [s.text for s in ET.fromstring(replaced["item:Categories"])] == ["b"]
    # ChangeCount is the server's: a client's is not kept.
    assert parse_props(ItemKind.TASK, _contact("<t:ChangeCount>7</t:ChangeCount>")) == {}
    with pytest.raises(Refused) as bad:
        parse_props(ItemKind.CONTACT, _contact("<t:Birthday>someday</t:Birthday>"))
    assert bad.value.code == "ErrorInvalidValueForProperty"


def test_a_private_distribution_list_is_kept_listed_updated_and_expanded(servers: Lab) -> None:
    account = _adam(servers)
    dl = DistributionList(
        account=account, folder=account.contacts, display_name="Team", categories=["props-dl"]
    ).save()
    found = account.contacts.get(categories__contains=["props-dl"])
    assert isinstance(found, DistributionList)
    assert (found.display_name, found.members) == ("Team", None)
    stored = servers.stores["EX-FL1"].get_typed("adam", found_id(found))
    assert stored.kind is ItemKind.DISTRIBUTION_LIST and stored.distribution_list is not None
    dl.members = {
        Member(mailbox=Mailbox(email_address=f"m{n}@example.com", mailbox_type="OneOff"))
        for n in range(3)
    }
    dl.save()
    again = account.contacts.get(categories__contains=["props-dl"])
    assert {m.mailbox.email_address for m in again.members} == {
        "m0@example.com",
        "m1@example.com",
        "m2@example.com",
    }
    expanded = account.protocol.expand_dl(
        DLMailbox(item_id=ItemId(id=dl.id, changekey=dl.changekey), mailbox_type="PrivateDL")
    )
    assert sorted(m.email_address for m in expanded) == [
        "m0@example.com",
        "m1@example.com",
        "m2@example.com",
    ]
    # No directory group has the address (the directory holds none).
    with pytest.raises(ErrorNameResolutionNoResults):
        account.protocol.expand_dl("no-such-group@contoso.com")
    dl.delete()
    assert account.contacts.filter(categories__contains=["props-dl"]).count() == 0


def found_id(item: DistributionList) -> int:
    return parse_id(item.id).message_id


def test_resolve_names_gives_the_directory_entry_as_a_contact(servers: Lab) -> None:
    account = _adam(servers)
    mailbox, contact = account.protocol.resolve_names(
        names=["adam@contoso.com"], return_full_contact_data=True
    )[0]
    assert mailbox == Mailbox(email_address="adam@contoso.com")
    assert contact.display_name == mailbox.name
    assert contact.contact_source == "ActiveDirectory"
    assert [e.email for e in contact.email_addresses if e.label == "EmailAddress1"] == [
        "SMTP:adam@contoso.com"
    ]


def test_a_series_gives_its_dates_as_dates_with_its_zone(servers: Lab) -> None:
    # Exchange writes a recurrence's StartDate as an xs:date with the series' offset
    # (2031-03-03+01:00), which clients read as a date, not as a midnight.
    account = _adam(servers)
    copenhagen = EWSTimeZone("Europe/Copenhagen")
    start = EWSDateTime(2031, 3, 3, 9, tzinfo=copenhagen)
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Stand-up",
        start=start,
        end=start + timedelta(minutes=15),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=date(2031, 3, 3), number=3),
    )
    item.save(send_meeting_invitations="SendToNone")
    fresh = account.calendar.get(id=item.id)
    assert fresh.recurrence == item.recurrence
    assert type(fresh.recurrence.boundary.start) is not EWSDateTime
    assert zoned_date(date(2031, 7, 1), "Romance Standard Time") == "2031-07-01+02:00"
    assert zoned_date(date(2031, 7, 1), "Pacific Standard Time") == "2031-07-01-07:00"
    assert zoned_date(date(2031, 7, 1), "UTC") == "2031-07-01Z"
