"""EWS as gateways call it (DavMail's CalDAV): raw SOAP on the in-process servers.

DavMail turns a CalDAV PUT into: GetUserConfiguration of OWA.UserOptions in the
root (not found: it goes on with a default zone), a temporary CalendarFolder, a
CreateItem whose MimeContent is the client's VCALENDAR with PR_URL_COMP_NAME and
PidLidAppointmentStateFlags as extended properties, then a FindItem restricted
on that name and sorted by the IMAP UID (PR_INTERNET_ARTICLE_NUMBER), and a
GetItem with IncludeMimeContent whose VTIMEZONE it reads.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import requests
from tests.unit.access.test_ews_exchangelib import (
    FL_EWS,
    LabNamesAdapter,
    lab_names,
    servers,
    url,
)
from tests.unit.access.test_web_front import PASSWORD, Lab

from sitemail.access.ews_soap import MESSAGES_NS, SOAP_NS, TYPES_NS

__all__ = ["lab_names", "servers"]

T, M = f"{{{TYPES_NS}}}", f"{{{MESSAGES_NS}}}"
NAME = '<t:ExtendedFieldURI PropertyTag="0x10f3" PropertyType="String"/>'
UID = '<t:ExtendedFieldURI PropertyTag="0xe23" PropertyType="Integer"/>'
STATE = (
    '<t:ExtendedFieldURI DistinguishedPropertySetId="Appointment" PropertyId="33303" '
    'PropertyType="Integer"/>'
)
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
    "UID:gateway-1@contoso.com\r\nDTSTART;TZID=W. Europe Standard Time:20300107T100000\r\n"
    "DTEND;TZID=W. Europe Standard Time:20300107T113000\r\nSUMMARY:Through a gateway\r\n"
    "LOCATION:Room 7\r\nTRANSP:OPAQUE\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _call(lab: Lab, body: str, header: str = "") -> ET.Element:
    session = requests.Session()
    session.mount("https://", LabNamesAdapter())
    answer = session.post(
        url(lab, "ex-fl1.contoso.com"),
        data=(
            f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}" '
            f'xmlns:t="{TYPES_NS}" xmlns:m="{MESSAGES_NS}"><s:Header><t:RequestServerVersion '
            f'Version="Exchange2010_SP1"/>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>'
        ).encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=("contoso\\adam", PASSWORD),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return ET.fromstring(answer.content)


def _code(root: ET.Element) -> str:
    return root.findtext(f".//{M}ResponseCode") or ""


def _extended(item: ET.Element) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for prop in item.iter(f"{T}ExtendedProperty"):
        uri = prop.find(f"{T}ExtendedFieldURI")
        assert uri is not None
        out[uri.get("PropertyTag") or uri.get("PropertyId") or "?"] = prop.findtext(f"{T}Value")
    return out


def test_a_caldav_gateway_creates_finds_and_reads_an_appointment(servers: Lab) -> None:
    lab = servers
    lab.set_vdir(FL_EWS, basic_authentication=True)
    root = _call(
        lab,
        '<m:GetUserConfiguration><m:UserConfigurationName Name="OWA.UserOptions">'
        '<t:DistinguishedFolderId Id="root"/></m:UserConfigurationName>'
        "<m:UserConfigurationProperties>All</m:UserConfigurationProperties>"
        "</m:GetUserConfiguration>",
    )
    assert _code(root) == "ErrorItemNotFound"  # which DavMail takes as "no regional settings"
    # A calendar folder a client makes holds calendar items.
    root = _call(
        lab,
        '<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="msgfolderroot"/>'
        "</m:ParentFolderId><m:Folders><t:Folder><t:FolderClass>IPF.Appointment</t:FolderClass>"
        "<t:DisplayName>gatewaytemp</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>",
    )
    assert _code(root) == "NoError"
    folder = root.find(f".//{T}FolderId")
    assert folder is not None
    mime = base64.b64encode(EVENT.encode()).decode()
    root = _call(
        lab,
        '<m:CreateItem SendMeetingInvitations="SendToNone" MessageDisposition="SaveOnly">'
        '<m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId>'
        f"<m:Items><t:CalendarItem><t:MimeContent>{mime}</t:MimeContent>"
        f"<t:ExtendedProperty>{NAME}<t:Value>gateway-1.ics</t:Value></t:ExtendedProperty>"
        f"<t:ExtendedProperty>{STATE}<t:Value>0</t:Value></t:ExtendedProperty>"
        "<t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus></t:CalendarItem></m:Items>"
        "</m:CreateItem>",
        '<t:TimeZoneContext><t:TimeZoneDefinition Id="GMT Standard Time"/></t:TimeZoneContext>',
    )
    assert _code(root) == "NoError", ET.tostring(root)
    (made,) = [
        i for i in lab.stores["EX-FL1"].list_typed("adam", "calendar").items
        if i.calendar is not None and i.calendar.uid == "gateway-1@contoso.com"
    ]  # fmt: skip
    data = made.calendar
    assert data is not None and data.subject == "Through a gateway"
    assert (data.start, data.end) == (
        datetime(2030, 1, 7, 9, tzinfo=UTC),  # 10:00 in Berlin's winter
        datetime(2030, 1, 7, 10, 30, tzinfo=UTC),
    )
    assert data.location == "Room 7" and data.time_zone == "W. Europe Standard Time"
    # Found again by its name, with the store's IMAP UID, sorted by it.
    root = _call(
        lab,
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        f"<t:AdditionalProperties>{NAME}{UID}{STATE}</t:AdditionalProperties></m:ItemShape>"
        f"<m:Restriction><t:IsEqualTo>{NAME}<t:FieldURIOrConstant><t:Constant "
        'Value="gateway-1.ics"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>'
        f'<m:SortOrder><t:FieldOrder Order="Ascending">{UID}</t:FieldOrder></m:SortOrder>'
        '<m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds>'
        "</m:FindItem>",
    )
    (found,) = root.iter(f"{T}CalendarItem")
    assert _extended(found) == {"0x10f3": "gateway-1.ics", "0xe23": str(made.uid), "33303": "0"}
    item_id = found.find(f"{T}ItemId")
    assert item_id is not None
    # Its MimeContent is the appointment as iCalendar, with its zone's VTIMEZONE.
    root = _call(
        lab,
        "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>"
        "<t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape><m:ItemIds>"
        f'<t:ItemId Id="{item_id.get("Id")}"/></m:ItemIds></m:GetItem>',
    )
    text = base64.b64decode(root.findtext(f".//{T}MimeContent") or "").decode()
    assert "BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\n" in text
    assert "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3" in text  # summer time starts
    assert "SUMMARY:Through a gateway" in text and "UID:gateway-1@contoso.com" in text
    # The name changes and goes with SetItemField and DeleteItemField.
    root = _call(
        lab,
        '<m:UpdateItem ConflictResolution="AlwaysOverwrite" '
        'SendMeetingInvitationsOrCancellations="SendToNone"><m:ItemChanges><t:ItemChange>'
        f'<t:ItemId Id="{item_id.get("Id")}"/><t:Updates><t:SetItemField>{NAME}'
        f"<t:CalendarItem><t:ExtendedProperty>{NAME}<t:Value>renamed.ics</t:Value>"
        "</t:ExtendedProperty></t:CalendarItem></t:SetItemField>"
        f"<t:DeleteItemField>{STATE}</t:DeleteItemField></t:Updates></t:ItemChange>"
        "</m:ItemChanges></m:UpdateItem>",
    )
    assert _code(root) == "NoError", ET.tostring(root)
    root = _call(
        lab,
        "<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>"
        f"{NAME}{STATE}</t:AdditionalProperties></m:ItemShape><m:ItemIds>"
        f'<t:ItemId Id="{item_id.get("Id")}"/></m:ItemIds></m:GetItem>',
    )
    (item,) = root.iter(f"{T}CalendarItem")
    assert _extended(item) == {"0x10f3": "renamed.ics"}
    # A MimeContent that is no iCalendar object is refused as Exchange refuses it.
    junk = base64.b64encode(b"not a calendar").decode()
    root = _call(
        lab,
        '<m:CreateItem SendMeetingInvitations="SendToNone" MessageDisposition="SaveOnly">'
        f"<m:Items><t:CalendarItem><t:MimeContent>{junk}</t:MimeContent></t:CalendarItem>"
        "</m:Items></m:CreateItem>",
    )
    assert _code(root) == "ErrorMimeContentConversionFailed"
