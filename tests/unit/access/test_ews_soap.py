"""EWS SOAP envelopes, ids and availability answers, and Autodiscover POX documents (no HTTP)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitemail.access.autodiscover_pox import (
    BadAutodiscoverRequest,
    Urls,
    error_document,
    mobilesync_document,
    outlook_document,
    parse_request,
)
from sitemail.access.ews_availability import get_user_availability
from sitemail.access.ews_ids import InvalidId, folder_id, item_id, parse_id
from sitemail.access.ews_soap import (
    MESSAGES_NS,
    SOAP_NS,
    TYPES_NS,
    SoapFault,
    check_schema,
    envelope,
    fault_envelope,
    m,
    t,
)
from sitemail.access.ews_soap import (
    parse_request as parse_soap,
)
from sitemail.access.ews_time_zones import get_server_time_zones
from sitemail.org.model import Mailbox

ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<s:Envelope xmlns:s="{SOAP_NS}" xmlns:t="{TYPES_NS}" xmlns:m="{MESSAGES_NS}">'
    '<s:Header><t:RequestServerVersion Version="{version}"/></s:Header>'
    "<s:Body>{body}</s:Body></s:Envelope>"
)


def soap(body: str, version: str = "Exchange2010_SP2") -> bytes:
    return ENVELOPE.replace("{version}", version).replace("{body}", body).encode()


def test_a_request_names_its_operation_and_schema() -> None:
    parsed = parse_soap(soap("<m:GetFolder><m:FolderIds/></m:GetFolder>", "Exchange2010"))
    assert parsed.operation == "GetFolder" and parsed.schema == "Exchange2010"
    check_schema(parsed.schema)
    with pytest.raises(SoapFault) as refused:
        check_schema("Exchange2013")
    assert refused.value.response_code == "ErrorInvalidServerVersion"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"not xml", "well-formed"),
        (b"<a/>", "not a SOAP 1.1 envelope"),
        (soap("<t:Folder/>"), "no Exchange Web Services operation"),
        (
            b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + soap("<m:GetFolder/>"),
            "document type declaration",
        ),
        (b"\xff\xfe<", "UTF-8"),
        (b" " * (1024 * 1024 + 1), "larger"),
    ],
)
def test_requests_that_are_not_ews_are_faults(data: bytes, words: str) -> None:
    with pytest.raises(SoapFault, match=words):
        parse_soap(data)


def test_responses_carry_server_version_info_and_faults_the_ews_code() -> None:
    root = ET.fromstring(envelope(ET.Element(m("GetFolderResponse"))))
    info = root.find(f"{{{SOAP_NS}}}Header/{t('ServerVersionInfo')}")
    assert info is not None and info.get("MajorVersion") == "14" and info.get("MinorVersion") == "3"
    assert root.find(f"{{{SOAP_NS}}}Body/{m('GetFolderResponse')}") is not None
    fault = ET.fromstring(fault_envelope(SoapFault("ErrorInvalidServerVersion", "No.")))
    detail = fault.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault/detail")
    assert detail is not None
    code = detail.findtext(
        "{http://schemas.microsoft.com/exchange/services/2006/errors}ResponseCode"
    )
    assert code == "ErrorInvalidServerVersion"


@given(st.text(min_size=1, max_size=40), st.integers(min_value=0, max_value=2**40))
def test_ids_round_trip_and_name_their_mailbox(alias: str, number: int) -> None:
    parsed = parse_id(item_id(alias, number))
    assert (parsed.kind, parsed.mailbox, parsed.value) == ("M", alias.casefold(), str(number))
    folder = parse_id(folder_id(alias, "inbox"))
    assert (folder.kind, folder.value) == ("F", "inbox")


@pytest.mark.parametrize("value", ["", "!!!", "aGVsbG8=", "x" * 2000])
def test_ids_this_server_did_not_give_are_refused(value: str) -> None:
    with pytest.raises(InvalidId):
        parse_id(value)


def _mailboxes() -> list[Mailbox]:
    return [
        Mailbox(
            alias="adam",
            display_name="Adam Fl",
            primary_smtp_address="adam@contoso.com",
            database="FL-DB1",
        )
    ]


def _availability(view: str, *addresses: str) -> ET.Element:
    data = "".join(
        f"<t:MailboxData><t:Email><t:Address>{a}</t:Address></t:Email>"
        "<t:AttendeeType>Required</t:AttendeeType></t:MailboxData>"
        for a in addresses
    )
    body = (
        "<m:GetUserAvailabilityRequest><m:MailboxDataArray>"
        f"{data}</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow>"
        "<t:StartTime>2030-01-07T08:00:00</t:StartTime><t:EndTime>2030-01-07T10:00:00</t:EndTime>"
        "</t:TimeWindow><t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes>"
        f"<t:RequestedView>{view}</t:RequestedView></t:FreeBusyViewOptions>"
        "</m:GetUserAvailabilityRequest>"
    )
    # Without a store to read calendars from, every mailbox is free.
    return asyncio.run(get_user_availability(parse_soap(soap(body)).body, _mailboxes()))


def test_availability_is_free_for_known_mailboxes_and_an_error_for_others() -> None:
    answer = _availability("FreeBusyMerged", "adam@contoso.com", "nobody@contoso.com")
    known, unknown = answer.findall(f"{m('FreeBusyResponseArray')}/{m('FreeBusyResponse')}")
    assert known.findtext(f"{m('ResponseMessage')}/{m('ResponseCode')}") == "NoError"
    view = known.find(m("FreeBusyView"))
    assert view is not None
    assert view.findtext(t("MergedFreeBusy")) == "0000"
    assert view.find(t("CalendarEventArray")) is not None
    code = unknown.findtext(f"{m('ResponseMessage')}/{m('ResponseCode')}")
    assert code == "ErrorMailRecipientNotFound"


def test_time_zones_offered_and_refused() -> None:
    body = parse_soap(
        soap("<m:GetServerTimeZones><m:Ids><t:Id>UTC</t:Id></m:Ids></m:GetServerTimeZones>")
    )
    answer = get_server_time_zones(body.body, 2026)
    assert answer.find(f".//{t('TimeZoneDefinition')}") is not None
    body = parse_soap(
        soap(
            "<m:GetServerTimeZones><m:Ids><t:Id>Mars Standard Time</t:Id></m:Ids>"
            "</m:GetServerTimeZones>"
        )
    )
    code = get_server_time_zones(body.body, 2026).findtext(f".//{m('ResponseCode')}")
    assert code == "ErrorTimeZone"


# ------------------------------------------------------------------ Autodiscover

OUTLOOK_REQ = (
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
    'requestschema/2006"><Request><EMailAddress>adam@contoso.com</EMailAddress>'
    "<AcceptableResponseSchema>{schema}</AcceptableResponseSchema></Request></Autodiscover>"
)
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

URLS = Urls(
    display_name="Adam Fl",
    email="adam@contoso.com",
    legacy_dn="/o=Contoso/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=adam",
    ews_internal="https://ex-fl1.contoso.com/EWS/Exchange.asmx",
    ews_external="https://mail.contoso.com/EWS/Exchange.asmx",
    owa_internal="https://ex-fl1.contoso.com/owa",
    eas_internal="https://ex-fl1.contoso.com/Microsoft-Server-ActiveSync",
    eas_external="https://mail.contoso.com/Microsoft-Server-ActiveSync",
    server="ex-fl1.contoso.com",
)


def test_autodiscover_requests() -> None:
    asked = parse_request(OUTLOOK_REQ.replace("{schema}", OUTLOOK_SCHEMA).encode())
    assert asked.email == "adam@contoso.com" and asked.schema == OUTLOOK_SCHEMA
    with pytest.raises(BadAutodiscoverRequest) as bad:
        parse_request(OUTLOOK_REQ.replace("{schema}", "urn:nope").encode())
    assert bad.value.code == 601
    with pytest.raises(BadAutodiscoverRequest) as bad:
        parse_request(b"<x/>")
    assert bad.value.code == 600


def test_autodiscover_answers() -> None:
    outlook = outlook_document(URLS).decode()
    assert '<Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/' in outlook
    exch, expr = outlook.split("<Type>EXCH</Type>")[1].split("<Type>EXPR</Type>")
    assert "<EwsUrl>https://ex-fl1.contoso.com/EWS/Exchange.asmx</EwsUrl>" in exch
    assert "<EwsUrl>https://mail.contoso.com/EWS/Exchange.asmx</EwsUrl>" in expr
    mobile = mobilesync_document(URLS).decode()
    assert "<Url>https://mail.contoso.com/Microsoft-Server-ActiveSync</Url>" in mobile
    error = error_document(500, "The email address can't be found.", now=datetime.now(UTC))
    assert "<ErrorCode>500</ErrorCode>" in error.decode()
