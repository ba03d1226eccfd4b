"""Autodiscover's plain-old-XML (POX) documents: the request; the outlook and mobilesync answers.

A client posts its e-mail address and the response schema it accepts; the
answer names the URLs of the services for that mailbox
(:func:`~sitemail.access.autodiscover_urls.autodiscover_urls`):

- ``outlook`` (responseschema/2006a): an ``EXCH`` protocol with the
  Internal URLs (EWS, availability, OOF, ECP, OAB), an ``EXPR`` protocol
  with the External ones, and a ``WEB`` protocol with OWA's;
- ``mobilesync`` (responseschema/2006): the ActiveSync URL a device uses
  from outside (the External one, else the Internal one).

Errors use the common schema's ``<Error>`` with Exchange's codes (500 for
an unknown address, 600 for an invalid request, 601 for a schema not
offered).  Nothing here does I/O.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "MOBILESYNC_RESPONSE",
    "OUTLOOK_RESPONSE",
    "AutodiscoverRequest",
    "BadAutodiscoverRequest",
    "Urls",
    "error_document",
    "mobilesync_document",
    "outlook_document",
    "parse_request",
]

MAX_REQUEST = 64 * 1024
COMMON = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTLOOK_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MOBILESYNC_REQUEST = (
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
)
MOBILESYNC_RESPONSE = (
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
)
SCHEMAS = (OUTLOOK_RESPONSE, MOBILESYNC_RESPONSE)


class BadAutodiscoverRequest(ValueError):
    """The request is not an Autodiscover POX request (Exchange's error 600 or 601)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AutodiscoverRequest:
    email: str
    schema: str


def parse_request(data: bytes) -> AutodiscoverRequest:
    if len(data) > MAX_REQUEST:
        raise BadAutodiscoverRequest(600, "Invalid Request")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadAutodiscoverRequest(600, "Invalid Request") from None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise BadAutodiscoverRequest(600, "Invalid Request")
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise BadAutodiscoverRequest(600, "Invalid Request") from None
    ns = root.tag.partition("}")[0].lstrip("{")
    if root.tag.partition("}")[2] != "Autodiscover" or ns not in (
        OUTLOOK_REQUEST,
        MOBILESYNC_REQUEST,
    ):
        raise BadAutodiscoverRequest(600, "Invalid Request")
    request = root.find(f"{{{ns}}}Request")
    email = request.findtext(f"{{{ns}}}EMailAddress") if request is not None else None
    schema = request.findtext(f"{{{ns}}}AcceptableResponseSchema") if request is not None else None
    if not email or not email.strip():
        raise BadAutodiscoverRequest(600, "Invalid Request")
    schema = (schema or "").strip()
    if schema not in SCHEMAS:
        raise BadAutodiscoverRequest(601, "Provider is not available for the requested schema.")
    return AutodiscoverRequest(email=email.strip(), schema=schema)


@dataclass(frozen=True)
class Urls:
    """Internal and External URLs of the virtual directories the answer names."""

    display_name: str
    email: str
    legacy_dn: str
    ews_internal: str | None = None
    ews_external: str | None = None
    ecp_internal: str | None = None
    ecp_external: str | None = None
    oab_internal: str | None = None
    oab_external: str | None = None
    owa_internal: str | None = None
    owa_external: str | None = None
    eas_internal: str | None = None
    eas_external: str | None = None
    server: str | None = None  # the FQDN the EXCH protocol names


def _sub(parent: ET.Element, ns: str, tag: str, text: str | None = None) -> ET.Element:
    # Children inherit the default namespace their Response element declares (as
    # Exchange writes them): ``ns`` documents which one that is.
    del ns
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def _serialize(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>' + body


def _protocol(
    parent: ET.Element,
    kind: str,
    server: str | None,
    ews: str | None,
    ecp: str | None,
    oab: str | None,
) -> None:
    ns = OUTLOOK_RESPONSE
    protocol = _sub(parent, ns, "Protocol")
    _sub(protocol, ns, "Type", kind)
    if server:
        _sub(protocol, ns, "Server", server)
    if ews:
        _sub(protocol, ns, "ASUrl", ews)
        _sub(protocol, ns, "OOFUrl", ews)
    if oab:
        _sub(protocol, ns, "OABUrl", oab.rstrip("/") + "/")
    if ews:
        _sub(protocol, ns, "EwsUrl", ews)
    if ecp:
        _sub(protocol, ns, "EcpUrl", ecp.rstrip("/") + "/")


def outlook_document(urls: Urls) -> bytes:
    ns = OUTLOOK_RESPONSE
    root = ET.Element("Autodiscover", xmlns=COMMON)
    response = ET.SubElement(root, "Response", xmlns=ns)
    user = _sub(response, ns, "User")
    _sub(user, ns, "DisplayName", urls.display_name)
    _sub(user, ns, "LegacyDN", urls.legacy_dn)
    _sub(user, ns, "AutoDiscoverSMTPAddress", urls.email)
    account = _sub(response, ns, "Account")
    _sub(account, ns, "AccountType", "email")
    _sub(account, ns, "Action", "settings")
    _protocol(account, "EXCH", urls.server, urls.ews_internal, urls.ecp_internal, urls.oab_internal)
    if urls.ews_external or urls.ecp_external:
        host = (urls.ews_external or urls.ecp_external or "").split("/")[2]
        _protocol(account, "EXPR", host, urls.ews_external, urls.ecp_external, urls.oab_external)
    if urls.owa_internal or urls.owa_external:
        web = _sub(account, ns, "Protocol")
        _sub(web, ns, "Type", "WEB")
        for where, url in (("Internal", urls.owa_internal), ("External", urls.owa_external)):
            if url:
                side = _sub(web, ns, where)
                owa = _sub(side, ns, "OWAUrl", url.rstrip("/") + "/")
                owa.set("AuthenticationMethod", "Basic, Fba")
    return _serialize(root)


def mobilesync_document(urls: Urls) -> bytes:
    ns = MOBILESYNC_RESPONSE
    root = ET.Element("Autodiscover", xmlns=COMMON)
    response = ET.SubElement(root, "Response", xmlns=ns)
    _sub(response, ns, "Culture", "en:us")
    user = _sub(response, ns, "User")
    _sub(user, ns, "DisplayName", urls.display_name)
    _sub(user, ns, "EMailAddress", urls.email)
    action = _sub(response, ns, "Action")
    settings = _sub(action, ns, "Settings")
    url = urls.eas_external or urls.eas_internal
    if url:
        server = _sub(settings, ns, "Server")
        _sub(server, ns, "Type", "MobileSync")
        _sub(server, ns, "Url", url)
        _sub(server, ns, "Name", url)
    return _serialize(root)


def error_document(code: int, message: str, *, now: datetime, schema: str | None = None) -> bytes:
    """The ``<Error>`` answer (in the requested schema's namespace, else the common one)."""
    ns = schema or COMMON
    root = ET.Element("Autodiscover", xmlns=COMMON)
    response = ET.SubElement(root, "Response", xmlns=ns)
    error = _sub(response, ns, "Error")
    error.set("Time", now.strftime("%H:%M:%S.%f")[:-3])
    error.set("Id", "0")
    _sub(error, ns, "ErrorCode", str(code))
    _sub(error, ns, "Message", message)
    _sub(error, ns, "DebugData")
    return _serialize(root)
