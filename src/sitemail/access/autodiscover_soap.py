"""SOAP Autodiscover (``/autodiscover/autodiscover.svc``, MS-OXWSADISC): GetUserSettings.

Exchange 2010 answers Autodiscover in two forms: the plain-old-XML document
of :mod:`.autodiscover_pox` (Outlook 2007/2010, devices) and this SOAP
service, which the EWS Managed API, exchangelib 5 and later Outlooks ask
first.  A request names users and the settings it wants by name
(``UserDisplayName``, ``ExternalEwsUrl``, ``EwsSupportedSchemas`` ...); the
answer gives, per user, each setting the server has, a
``UserSettingError`` for each it has not (``SettingIsNotAvailable``) or
does not know (``InvalidSetting``), or ``InvalidUser`` for an address it
will not answer for.  The values are the ones the POX answer gives
(:class:`~.autodiscover_pox.Urls`).  Nothing here does I/O.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from sitemail.access.autodiscover_pox import Urls
from sitemail.access.ews_soap import SOAP_NS
from sitemail.org.model import ExchangeVersion
from sitemail.org.version_facts import facts_for

__all__ = [
    "AutodiscoverFault",
    "UserSettingsRequest",
    "fault_document",
    "parse_user_settings",
    "user_settings_document",
]

ANS = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACTIONS = f"{ANS}/Autodiscover/"
MAX_REQUEST = 64 * 1024
#: Most users one request may ask about (Exchange's limit for GetUserSettings).
MAX_USERS = 100
MAX_SETTINGS = 200

ET.register_namespace("a", WSA)
ET.register_namespace("i", XSI)


class AutodiscoverFault(ValueError):
    """The request is not a GetUserSettings request this service takes."""


@dataclass(frozen=True)
class UserSettingsRequest:
    users: list[str]
    settings: list[str]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_user_settings(data: bytes) -> UserSettingsRequest:
    if len(data) > MAX_REQUEST:
        raise AutodiscoverFault("The request is too large.")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise AutodiscoverFault("The request holds a document type declaration.")
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        raise AutodiscoverFault("The request is not XML.") from None
    body = (
        next((c for c in root if _local(c.tag) == "Body"), None)
        if _local(root.tag) == "Envelope"
        else None
    )
    message = next(iter(body), None) if body is not None else None
    if message is None or message.tag != f"{{{ANS}}}GetUserSettingsRequestMessage":
        name = _local(message.tag) if message is not None else "nothing"
        raise AutodiscoverFault(f"{name[:60]} is not an operation of this service.")
    request = message.find(f"{{{ANS}}}Request")
    users = [
        (m.text or "").strip()
        for m in request.iterfind(f"{{{ANS}}}Users/{{{ANS}}}User/{{{ANS}}}Mailbox")
    ] if request is not None else []  # fmt: skip
    settings = [
        (s.text or "").strip()
        for s in request.iterfind(f"{{{ANS}}}RequestedSettings/{{{ANS}}}Setting")
    ] if request is not None else []  # fmt: skip
    if not users or not settings:
        raise AutodiscoverFault("A GetUserSettings request names users and settings.")
    if len(users) > MAX_USERS or len(settings) > MAX_SETTINGS:
        raise AutodiscoverFault("The request names too many users or settings.")
    return UserSettingsRequest(users, settings)


def _web_client_urls(url: str | None) -> ET.Element | None:
    if url is None:
        return None
    urls = ET.Element(f"{{{ANS}}}WebClientUrls")
    entry = ET.SubElement(urls, f"{{{ANS}}}WebClientUrl")
    # Forms-based sign-in: the OWA virtual directory's default in 2010.
    ET.SubElement(entry, f"{{{ANS}}}AuthenticationMethods").text = "Fba"
    ET.SubElement(entry, f"{{{ANS}}}Url").text = url
    return urls


# SOAP Autodiscover came with Exchange 2010: its answers are 2010's.
_FACTS = facts_for(ExchangeVersion.E2010)
SERVER_VERSION = _FACTS.ews_version_attributes


def _values(urls: Urls, organization: str) -> dict[str, str | ET.Element | None]:
    """Each setting this server knows, with its value for the user (None: not available)."""
    version = SERVER_VERSION
    cas_version = "{}.{:02d}.{:04d}.{:03d}".format(
        int(version["MajorVersion"]),
        int(version["MinorVersion"]),
        int(version["MajorBuildNumber"]),
        int(version["MinorBuildNumber"]),
    )
    return {
        "UserDisplayName": urls.display_name,
        "UserDN": urls.legacy_dn,
        # A GUID of the organization's deployment, the same on every CAS.
        "UserDeploymentId": str(uuid.uuid5(uuid.NAMESPACE_DNS, organization.lower())),
        "AutoDiscoverSMTPAddress": urls.email,
        "InternalMailboxServer": urls.server,
        "InternalRpcClientServer": urls.server,
        "CasVersion": cas_version,
        "EwsSupportedSchemas": ", ".join(_FACTS.ews_schemas),
        "InternalEwsUrl": urls.ews_internal,
        "ExternalEwsUrl": urls.ews_external,
        "InternalEcpUrl": urls.ecp_internal,
        "ExternalEcpUrl": urls.ecp_external,
        "InternalOABUrl": urls.oab_internal,
        "ExternalOABUrl": urls.oab_external,
        "InternalWebClientUrls": _web_client_urls(urls.owa_internal),
        "ExternalWebClientUrls": _web_client_urls(urls.owa_external),
        "CrossOrganizationSharingEnabled": "False",
        "ShowGalAsDefaultView": "True",
        "ActiveDirectoryServer": None,
        "MailboxDN": None,
        "PublicFolderServer": None,
        "ExternalMailboxServer": None,
        "ExternalMailboxServerRequiresSSL": None,
        "ExternalMailboxServerAuthenticationMethods": None,
        "AlternateMailboxes": None,
        "InternalUMUrl": None,
        "ExternalUMUrl": None,
        "ExchangeRpcUrl": None,
    }


def _envelope(action: str) -> tuple[ET.Element, ET.Element]:
    envelope = ET.Element(f"{{{SOAP_NS}}}Envelope")
    header = ET.SubElement(envelope, f"{{{SOAP_NS}}}Header")
    act = ET.SubElement(header, f"{{{WSA}}}Action", {f"{{{SOAP_NS}}}mustUnderstand": "1"})
    act.text = ACTIONS + action
    info = ET.SubElement(header, f"{{{ANS}}}ServerVersionInfo")
    for name in ("MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber", "Version"):
        ET.SubElement(info, f"{{{ANS}}}{name}").text = SERVER_VERSION[name]
    return envelope, ET.SubElement(envelope, f"{{{SOAP_NS}}}Body")


def _text(parent: ET.Element, tag: str, text: str | None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ANS}}}{tag}")
    element.text = text
    return element


def user_settings_document(
    asked: UserSettingsRequest,
    answer: Callable[[str], Urls | str],
    organization: str,
) -> bytes:
    """The GetUserSettingsResponseMessage; ``answer(address)``: the user's URLs, or why not."""
    envelope, body = _envelope("GetUserSettingsResponse")
    message = ET.SubElement(body, f"{{{ANS}}}GetUserSettingsResponseMessage")
    response = ET.SubElement(message, f"{{{ANS}}}Response")
    _text(response, "ErrorCode", "NoError")
    _text(response, "ErrorMessage", None)
    users = ET.SubElement(response, f"{{{ANS}}}UserResponses")
    for address in asked.users:
        user = ET.SubElement(users, f"{{{ANS}}}UserResponse")
        found = answer(address)
        if isinstance(found, str):
            _text(user, "ErrorCode", "InvalidUser")
            _text(user, "ErrorMessage", found)
            ET.SubElement(user, f"{{{ANS}}}RedirectTarget", {f"{{{XSI}}}nil": "true"})
            ET.SubElement(user, f"{{{ANS}}}UserSettingErrors")
            ET.SubElement(user, f"{{{ANS}}}UserSettings")
            continue
        _text(user, "ErrorCode", "NoError")
        _text(user, "ErrorMessage", "No error.")
        ET.SubElement(user, f"{{{ANS}}}RedirectTarget", {f"{{{XSI}}}nil": "true"})
        errors = ET.SubElement(user, f"{{{ANS}}}UserSettingErrors")
        settings = ET.SubElement(user, f"{{{ANS}}}UserSettings")
        values = _values(found, organization)
        for name in dict.fromkeys(asked.settings):
            if name not in values or values[name] is None:
                error = ET.SubElement(errors, f"{{{ANS}}}UserSettingError")
                known = name in values
                _text(error, "ErrorCode", "SettingIsNotAvailable" if known else "InvalidSetting")
                _text(
                    error,
                    "ErrorMessage",
                    f"User setting '{name[:100]}' is not available. "
                    if known
                    else f"Setting '{name[:100]}' is invalid. ",
                )
                _text(error, "SettingName", name[:100])
                continue
            value = values[name]
            if isinstance(value, ET.Element):
                setting = ET.SubElement(
                    settings,
                    f"{{{ANS}}}UserSetting",
                    {f"{{{XSI}}}type": "WebClientUrlCollectionSetting"},
                )
                _text(setting, "Name", name)
                setting.append(value)
            else:
                setting = ET.SubElement(
                    settings, f"{{{ANS}}}UserSetting", {f"{{{XSI}}}type": "StringSetting"}
                )
                _text(setting, "Name", name)
                _text(setting, "Value", value)
    out: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return out


def fault_document(message: str) -> bytes:
    """A SOAP fault for a request this service cannot take."""
    envelope, body = _envelope("GetUserSettingsResponse")
    fault = ET.SubElement(body, f"{{{SOAP_NS}}}Fault")
    ET.SubElement(fault, "faultcode").text = "s:Client"
    ET.SubElement(fault, "faultstring").text = message
    out: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return out
