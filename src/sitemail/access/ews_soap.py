"""SOAP 1.1 envelopes of Exchange Web Services: reading requests, writing responses and faults.

A request is a SOAP envelope whose body holds one operation element of the
EWS messages namespace (``<m:FindItem>``); its header may name the schema
version the client speaks (``<t:RequestServerVersion Version=...>``).  Every
response carries ``<h:ServerVersionInfo>`` in its header, which clients
(exchangelib among them) read to learn the server's version.

Reading is bounded and refuses document type declarations (SOAP 1.1 section
3 forbids them; refusing them also rules out entity expansion attacks).
Nothing here does I/O.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache

from sitemail.access.ews_xml_writer import write_xml
from sitemail.org.model import ExchangeVersion
from sitemail.org.version_facts import facts_for

__all__ = [
    "ERRORS_NS",
    "MAX_REQUEST",
    "MESSAGES_NS",
    "SERVER_VERSION",
    "SOAP_NS",
    "TYPES_NS",
    "EwsRequest",
    "SoapFault",
    "envelope",
    "fault_envelope",
    "m",
    "parse_request",
    "sub",
    "supported_schemas",
    "t",
]

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
TYPES_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
MESSAGES_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
ERRORS_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"

ET.register_namespace("s", SOAP_NS)
ET.register_namespace("t", TYPES_NS)
ET.register_namespace("m", MESSAGES_NS)
ET.register_namespace("e", ERRORS_NS)
_PREFIXES = {SOAP_NS: "s", TYPES_NS: "t", MESSAGES_NS: "m", ERRORS_NS: "e"}

#: Largest request body read (a GetItem for a few hundred ids is far below this).
MAX_REQUEST = 1024 * 1024

#: The version of the server answering this request: its ServerVersionInfo and the
#: schemas it accepts come from org/version_facts.py.  A context variable, so that the
#: many operations that build envelopes need not pass it on (each request is a task
#: of its own; the handler sets it for its server).
SERVER_VERSION: ContextVar[ExchangeVersion] = ContextVar(
    "ews_server_version", default=ExchangeVersion.E2010
)


def supported_schemas() -> tuple[str, ...]:
    """The RequestServerVersion values this server accepts."""
    return facts_for(SERVER_VERSION.get()).ews_schemas


def _server_version_info() -> dict[str, str]:
    return facts_for(SERVER_VERSION.get()).ews_version_attributes


@lru_cache(maxsize=4096)  # the schema's names, asked for every element written
def t(tag: str) -> str:
    """The qualified name of a types-namespace element."""
    return f"{{{TYPES_NS}}}{tag}"


@lru_cache(maxsize=4096)
def m(tag: str) -> str:
    """The qualified name of a messages-namespace element."""
    return f"{{{MESSAGES_NS}}}{tag}"


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    """Append a child element (``tag`` qualified) with optional text and attributes."""
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


class SoapFault(Exception):
    """A request that gets a SOAP fault instead of a response.

    ``response_code`` is the EWS error code (``ErrorSchemaValidation``,
    ``ErrorInvalidServerVersion`` ...) that clients map to their exceptions.
    """

    def __init__(self, response_code: str, message: str, *, fault_code: str = "s:Client") -> None:
        super().__init__(message)
        self.response_code = response_code
        self.message = message
        self.fault_code = fault_code


@dataclass(frozen=True)
class EwsRequest:
    operation: str  # the local name of the body's element, e.g. "FindItem"
    body: ET.Element  # that element
    schema: str | None  # RequestServerVersion, when given
    time_zone: str | None = None  # the TimeZoneContext header's TimeZoneDefinition Id


def parse_request(data: bytes) -> EwsRequest:
    """The operation of a SOAP request; :class:`SoapFault` when it is not one."""
    if len(data) > MAX_REQUEST:
        raise SoapFault("ErrorRequestTooLarge", f"The request is larger than {MAX_REQUEST} bytes.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SoapFault("ErrorSchemaValidation", "The request is not UTF-8 text.") from None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise SoapFault(
            "ErrorSchemaValidation", "A SOAP message must not contain a document type declaration."
        )
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SoapFault(
            "ErrorSchemaValidation", f"The request is not well-formed XML: {exc}."
        ) from None
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise SoapFault("ErrorSchemaValidation", "The request is not a SOAP 1.1 envelope.")
    body = root.find(f"{{{SOAP_NS}}}Body")
    operation = next(iter(body), None) if body is not None else None
    if operation is None or not operation.tag.startswith(f"{{{MESSAGES_NS}}}"):
        raise SoapFault(
            "ErrorSchemaValidation", "The SOAP body holds no Exchange Web Services operation."
        )
    header = root.find(f"{{{SOAP_NS}}}Header")
    version = header.find(t("RequestServerVersion")) if header is not None else None
    schema = version.get("Version") if version is not None else None
    context = (
        header.find(f"{t('TimeZoneContext')}/{t('TimeZoneDefinition')}")
        if header is not None
        else None
    )
    return EwsRequest(
        operation=operation.tag.split("}", 1)[1],
        body=operation,
        schema=schema,
        time_zone=context.get("Id") if context is not None else None,
    )


def check_schema(schema: str | None) -> None:
    """Refuse a RequestServerVersion this server does not speak, as Exchange does."""
    if schema is not None and schema not in supported_schemas():
        raise SoapFault(
            "ErrorInvalidServerVersion",
            "The specified server version is invalid.",
        )


def _serialize(root: ET.Element) -> bytes:
    body = write_xml(root, _PREFIXES)
    # A CR of a value is written as a character reference: a bare one would reach the
    # client as LF (XML parsers normalize line ends), and the CRLFs of a text body are the
    # client's to see, as Exchange's answers give them.  (ElementTree already writes a CR
    # of an attribute value so.)
    body = body.replace(b"\r", b"&#xD;")
    return b'<?xml version="1.0" encoding="utf-8"?>' + body


def envelope(response: ET.Element) -> bytes:
    """A response envelope around ``response`` (``<m:FindItemResponse>``)."""
    root = ET.Element(f"{{{SOAP_NS}}}Envelope")
    header = sub(root, f"{{{SOAP_NS}}}Header")
    sub(header, t("ServerVersionInfo"), **_server_version_info())
    body = sub(root, f"{{{SOAP_NS}}}Body")
    body.append(response)
    return _serialize(root)


def fault_envelope(fault: SoapFault) -> bytes:
    """A SOAP fault with the EWS response code in its detail, as Exchange writes them."""
    root = ET.Element(f"{{{SOAP_NS}}}Envelope")
    header = sub(root, f"{{{SOAP_NS}}}Header")
    sub(header, t("ServerVersionInfo"), **_server_version_info())
    body = sub(root, f"{{{SOAP_NS}}}Body")
    element = sub(body, f"{{{SOAP_NS}}}Fault")
    # SOAP 1.1 faultcode/faultstring/detail are unqualified elements.
    sub(element, "faultcode", fault.fault_code)
    sub(element, "faultstring", fault.message)
    detail = sub(element, "detail")
    sub(detail, f"{{{ERRORS_NS}}}ResponseCode", fault.response_code)
    sub(detail, f"{{{ERRORS_NS}}}Message", fault.message)
    return _serialize(root)
