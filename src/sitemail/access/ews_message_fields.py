"""Message properties that live in the item's MIME: reading them from the header, and
re-rendering the MIME when CreateItem or UpdateItem sets, appends to or deletes them.

The store keeps a message as RFC 5322 bytes, so what a client changes with
UpdateItem is written into those bytes, where IMAP, POP3 and OWA read it
too: the subject, the body, the recipients, From, Reply-To, Message-ID,
In-Reply-To and References are their own headers, and Exchange's MIME
conversion writes the properties that have no header of their own into
these (each name marked unverified where that mapping is not known for sure):

- ``item:Categories``: ``Keywords``, the categories joined by commas;
- ``item:Importance``: ``Importance`` (``high``/``low``; Normal: none);
- ``item:Sensitivity``: ``Sensitivity`` (``Personal``, ``Private``,
  ``Company-Confidential``; Normal: none);
- ``message:IsReadReceiptRequested``: ``Disposition-Notification-To``;
- ``message:IsDeliveryReceiptRequested``: ``Return-Receipt-To``;
- ``item:Culture``: ``Content-Language``.

Every other header and every attachment part is kept as it was; the new
bytes replace the old under the same item id (the store gives them a new
IMAP UID and the item a new ChangeKey).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses

from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import sub, t
from sitemail.lru import LruCache

__all__ = [
    "HEADER_PATHS",
    "MAX_HEAD",
    "SETTABLE",
    "FieldChange",
    "HeaderProps",
    "apply_changes",
    "header_props",
    "render_header_field",
    "without_categories",
]

#: Most bytes of a message read to find its header (a longer header is cut there).
MAX_HEAD = 64 * 1024
#: Most categories an item keeps.
MAX_CATEGORIES = 100
MAX_RECIPIENTS = 500
MAX_BODY = 4 * 1024 * 1024
#: Exchange keeps the first 255 characters of a subject set longer (it does not refuse it).
MAX_SUBJECT = 255
#: How the re-rendered message is written: CRLF, and header values unfolded, so that a long
#: value (a References list, a subject) comes back as it was set.
_OUTPUT = policy.SMTP.clone(max_line_length=None)

KEYWORDS = "Keywords"  # unverified: Exchange's MIME header for item:Categories
READ_RECEIPT = "Disposition-Notification-To"
DELIVERY_RECEIPT = "Return-Receipt-To"  # unverified: for message:IsDeliveryReceiptRequested
CULTURE = "Content-Language"  # unverified: for item:Culture

# EWS SensitivityChoicesType -> the Sensitivity header (RFC 2156), both ways.
_SENSITIVITY = {
    "Personal": "Personal",
    "Private": "Private",
    "Confidential": "Company-Confidential",
}
_SENSITIVITY_BACK = {v.lower(): k for k, v in _SENSITIVITY.items()}
_IMPORTANCE = {"High": "high", "Low": "low"}
_PRIORITY = {"1": "High", "2": "High", "4": "Low", "5": "Low"}  # X-Priority, as Outlook writes

#: The property paths read from a message's header (GetItem/FindItem, restrictions).
HEADER_PATHS = frozenset(
    {
        "item:Categories",
        "item:Importance",
        "item:Sensitivity",
        "item:Culture",
        "message:BccRecipients",
        "message:IsReadReceiptRequested",
        "message:IsDeliveryReceiptRequested",
        "message:References",
        "message:InternetMessageId",
        "item:InReplyTo",
    }
)


@dataclass(frozen=True)
class HeaderProps:
    """The properties of one message that its header holds beyond the store's summary."""

    categories: list[str] = field(default_factory=list)
    importance: str = "Normal"
    sensitivity: str = "Normal"
    culture: str | None = None
    bcc: list[tuple[str, str]] = field(default_factory=list)
    read_receipt: bool = False
    delivery_receipt: bool = False
    references: str | None = None
    in_reply_to: str | None = None
    message_id: str | None = None


def _head(raw: bytes) -> bytes:
    for end in (b"\r\n\r\n", b"\n\n"):
        cut = raw.find(end)
        if cut >= 0:
            return raw[: cut + len(end)]
    return raw


def _split_keywords(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()][:MAX_CATEGORIES]


def header_props(raw: bytes) -> HeaderProps:
    """The header properties of a message, from its first bytes (up to :data:`MAX_HEAD`)."""
    header = BytesHeaderParser(policy=policy.default).parsebytes(_head(raw[:MAX_HEAD]))

    def text(name: str) -> str | None:
        # Decoded (encoded-words) and unfolded, spaces inside the value kept.
        value = header.get(name)
        return None if value is None else str(value).replace("\r", "").replace("\n", "")

    categories: list[str] = []
    for value in header.get_all(KEYWORDS) or []:
        categories += _split_keywords(" ".join(str(value).split()))
    importance = (text("Importance") or "").capitalize()
    if importance not in ("High", "Low", "Normal"):
        importance = _PRIORITY.get((text("X-Priority") or " ")[0], "Normal")
    sensitivity = _SENSITIVITY_BACK.get((text("Sensitivity") or "").lower(), "Normal")
    bcc = [(n, a) for n, a in getaddresses([str(v) for v in header.get_all("Bcc") or []]) if a]
    return HeaderProps(
        categories=categories,
        importance=importance,
        sensitivity=sensitivity,
        culture=text(CULTURE),
        bcc=bcc,
        read_receipt=header.get(READ_RECEIPT) is not None,
        delivery_receipt=header.get(DELIVERY_RECEIPT) is not None,
        references=text("References"),
        in_reply_to=text("In-Reply-To"),
        message_id=text("Message-ID"),
    )


def _mailbox(parent: ET.Element, name: str, address: str, known: Callable[[str], bool]) -> None:
    box = sub(parent, t("Mailbox"))  # Exchange always names one: by its address if need be
    sub(box, t("Name"), name or address)
    sub(box, t("EmailAddress"), address)
    sub(box, t("RoutingType"), "SMTP")
    sub(box, t("MailboxType"), "Mailbox" if known(address) else "OneOff")


def render_header_field(
    element: ET.Element, path: str, props: HeaderProps, known: Callable[[str], bool]
) -> None:
    """Append the element of one of :data:`HEADER_PATHS` to a ``<t:Message>`` (``known``:
    whether an address is a mailbox of the organization, MailboxType Mailbox)."""
    if path == "item:Categories":
        if props.categories:
            holder = sub(element, t("Categories"))
            for category in props.categories:
                sub(holder, t("String"), category)
    elif path == "item:Importance":
        sub(element, t("Importance"), props.importance)
    elif path == "item:Sensitivity":
        sub(element, t("Sensitivity"), props.sensitivity)
    elif path == "item:Culture":
        if props.culture:
            sub(element, t("Culture"), props.culture)
    elif path == "message:BccRecipients":
        if props.bcc:
            holder = sub(element, t("BccRecipients"))
            for name, address in props.bcc:
                _mailbox(holder, name, address, known)
    elif path == "message:IsReadReceiptRequested":
        sub(element, t("IsReadReceiptRequested"), "true" if props.read_receipt else "false")
    elif path == "message:IsDeliveryReceiptRequested":
        sub(element, t("IsDeliveryReceiptRequested"), "true" if props.delivery_receipt else "false")
    elif path == "message:References" and props.references:
        sub(element, t("References"), props.references)
    elif path == "message:InternetMessageId" and props.message_id:
        sub(element, t("InternetMessageId"), props.message_id)
    elif path == "item:InReplyTo" and props.in_reply_to:
        sub(element, t("InReplyTo"), props.in_reply_to)


# ------------------------------------------------------------------ changing


@dataclass(frozen=True)
class FieldChange:
    """One SetItemField / AppendToItemField / DeleteItemField on a MIME-kept property."""

    kind: str  # "set" | "append" | "delete"
    uri: str
    value: ET.Element | None  # the property's element (``<t:Subject>``), None to delete


def _text(value: ET.Element | None) -> str:
    return "" if value is None else (value.text or "")


def _bool(value: ET.Element | None) -> bool:
    return _text(value).strip().lower() in ("true", "1")


def _people(value: ET.Element | None) -> list[HeaderAddress]:
    out: list[HeaderAddress] = []
    for person in value.iter(t("Mailbox")) if value is not None else []:
        address = (person.findtext(t("EmailAddress")) or "").strip()
        if not address:
            continue
        name = " ".join((person.findtext(t("Name")) or "").split())
        try:
            out.append(HeaderAddress(display_name=name, addr_spec=address))
        except (ValueError, IndexError):
            raise Refused(
                "ErrorInvalidRecipients", f"{address[:100]!r} is not an e-mail address."
            ) from None
    if len(out) > MAX_RECIPIENTS:
        raise Refused("ErrorInvalidRecipients", f"At most {MAX_RECIPIENTS} recipients.")
    return out


def _existing(msg: EmailMessage, name: str) -> list[HeaderAddress]:
    found: list[HeaderAddress] = []
    for value in msg.get_all(name) or []:
        found += list(getattr(value, "addresses", ()))
    return found


def _put(msg: EmailMessage, name: str, value: object | None) -> None:
    del msg[name]
    if value not in (None, "", []):
        msg[name] = value


def _set_body(msg: EmailMessage, value: ET.Element | None) -> None:
    text = _text(value).replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_BODY:
        raise Refused("ErrorInvalidPropertySet", "The body is too long.")
    html = value is not None and value.get("BodyType", "Text") == "HTML"
    holder = msg
    if msg.is_multipart() and msg.get_content_subtype() != "alternative":
        # The body is the first text or alternative part that is not an attachment.
        for part in msg.iter_parts():
            if not isinstance(part, EmailMessage) or part.is_attachment():
                continue
            if part.get_content_maintype() == "text" or part.get_content_subtype() in (
                "alternative",
                "related",
            ):
                holder = part
                break
    cte = "7bit" if text.isascii() and all(len(x) <= 998 for x in text.split("\n")) else None
    holder.set_content(
        text, subtype="html" if html else "plain", charset="utf-8", cte=cte or "quoted-printable"
    )


def _receipt(msg: EmailMessage, name: str, wanted: bool) -> None:
    del msg[name]
    if wanted:
        sender = _existing(msg, "From")
        msg[name] = str(sender[0]) if sender else "<>"


_Setter = Callable[[EmailMessage, FieldChange], None]


def _header_setter(name: str, limit: int = 998) -> _Setter:
    def apply(msg: EmailMessage, change: FieldChange) -> None:
        value = _text(change.value).replace("\r", " ").replace("\n", " ")[:limit]
        if change.kind == "append":
            raise Refused("ErrorInvalidPropertyAppend", f"{change.uri} cannot be appended to.")
        _put(msg, name, None if change.kind == "delete" else value)

    return apply


def _address_setter(name: str) -> _Setter:
    def apply(msg: EmailMessage, change: FieldChange) -> None:
        people = [] if change.kind == "delete" else _people(change.value)
        if change.kind == "append":
            people = _existing(msg, name) + people
        _put(msg, name, people or None)

    return apply


def _categories(msg: EmailMessage, change: FieldChange) -> None:
    values = [] if change.value is None else [_text(s).strip() for s in change.value]
    if change.kind == "append":
        current = _split_keywords(" ".join(str(v) for v in msg.get_all(KEYWORDS) or []))
        values = current + values
    values = [v for v in values if v]
    if len(values) > MAX_CATEGORIES or any("," in v for v in values):
        raise Refused(
            "ErrorInvalidPropertySet",
            f"An item keeps at most {MAX_CATEGORIES} categories, none with a comma.",
        )
    _put(msg, KEYWORDS, ", ".join(values) if change.kind != "delete" else None)


def _importance(msg: EmailMessage, change: FieldChange) -> None:
    value = _text(change.value).strip() if change.kind == "set" else "Normal"
    if value not in ("High", "Low", "Normal"):
        raise Refused("ErrorInvalidPropertySet", f"{value[:50]!r} is not an importance.")
    del msg["X-Priority"]
    _put(msg, "Importance", _IMPORTANCE.get(value))


def _sensitivity(msg: EmailMessage, change: FieldChange) -> None:
    value = _text(change.value).strip() if change.kind == "set" else "Normal"
    if value not in ("Normal", *_SENSITIVITY):
        raise Refused("ErrorInvalidPropertySet", f"{value[:50]!r} is not a sensitivity.")
    _put(msg, "Sensitivity", _SENSITIVITY.get(value))


def _body(msg: EmailMessage, change: FieldChange) -> None:
    if change.kind == "append":
        raise Refused("ErrorInvalidPropertyAppend", "item:Body cannot be appended to.")
    _set_body(msg, change.value if change.kind == "set" else None)


def _flag(name: str) -> _Setter:
    def apply(msg: EmailMessage, change: FieldChange) -> None:
        _receipt(msg, name, change.kind == "set" and _bool(change.value))

    return apply


#: The MIME-kept properties a client may set, append to or delete.
SETTABLE: dict[str, _Setter] = {
    "item:Subject": _header_setter("Subject", MAX_SUBJECT),
    "item:Body": _body,
    "item:Categories": _categories,
    "item:Importance": _importance,
    "item:Sensitivity": _sensitivity,
    "item:InReplyTo": _header_setter("In-Reply-To"),
    "item:Culture": _header_setter(CULTURE),
    "message:References": _header_setter("References"),
    "message:InternetMessageId": _header_setter("Message-ID"),
    "message:ToRecipients": _address_setter("To"),
    "message:CcRecipients": _address_setter("Cc"),
    "message:BccRecipients": _address_setter("Bcc"),
    "message:ReplyTo": _address_setter("Reply-To"),
    "message:From": _address_setter("From"),
    "message:IsReadReceiptRequested": _flag(READ_RECEIPT),
    "message:IsDeliveryReceiptRequested": _flag(DELIVERY_RECEIPT),
}


def without_categories(raw: bytes) -> bytes:
    """The message as it is sent: the same bytes, less the categories' header."""
    head = _head(raw[:MAX_HEAD])
    if KEYWORDS.lower().encode() + b":" not in head.lower():
        return raw
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    del msg[KEYWORDS]
    return msg.as_bytes(policy=_OUTPUT)


def apply_changes(raw: bytes, changes: list[FieldChange]) -> bytes:
    """The message bytes with ``changes`` made (other headers and parts kept)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    for change in changes:
        try:
            SETTABLE[change.uri](msg, change)
        except (ValueError, TypeError) as exc:
            raise Refused(
                "ErrorInvalidPropertySet", f"{change.uri} cannot take that value: {exc}"
            ) from None
    return msg.as_bytes(policy=_OUTPUT)


class KeptHeaders(LruCache[tuple[object, ...], HeaderProps]):
    """The header properties of the last ``limit`` messages one EWS worker read.

    A stored message's bytes never change, so what its header says is kept by
    the message's identity (mailbox, id, and its size, arrival and Message-ID,
    so that an id given again to another message is another entry).  A
    FindItem page of 20 then costs no read of 20 headers from the store.
    """

    def __init__(self, limit: int = 10_000) -> None:
        super().__init__(limit)
