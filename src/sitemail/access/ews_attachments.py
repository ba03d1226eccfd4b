"""EWS attachments of messages: CreateAttachment, GetAttachment, DeleteAttachment, and the
``item:Attachments`` list of GetItem, as Exchange 2010 SP3 answers them.

An attachment of a stored message is one of its MIME parts: a file
attachment a leaf part with a file name (or ``Content-Disposition:
attachment``), an item attachment a ``message/rfc822`` part.  Attaching or
detaching re-renders the message's MIME (the item keeps its id, the store
gives the new bytes a new IMAP UID, the item a new ChangeKey, which the
answer gives back as ``RootItemChangeKey``).

An AttachmentId names the message and the attachment's place among the
message's attachments, with a digest of its name, type and size, so that an
id still finds its attachment after another one was detached before it, and
an id of a detached attachment is ``ErrorInvalidAttachmentId``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, getaddresses
from typing import TYPE_CHECKING, Any

from sitemail.access.ews_body import body_type, in_body_type
from sitemail.access.ews_ids import InvalidId, change_key, item_id, parse_id
from sitemail.access.ews_item_properties import PLAIN_PATHS, render_plain, set_plain
from sitemail.access.ews_message_fields import header_props, render_header_field
from sitemail.access.ews_responses import Refused, client_refusal, malformed, response_message
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.records import MessageDetail, MimePart

if TYPE_CHECKING:  # ews_mailbox renders attachment lists with this module's help
    from sitemail.access.ews_mailbox import EwsMailbox

__all__ = ["MAX_ATTACHMENT", "EwsAttachments", "attachment_parts", "render_attachments"]

#: Largest attachment one CreateAttachment may add (decoded); the store's message size
#: limit applies to the whole message besides.
MAX_ATTACHMENT = 10 * 1024 * 1024
#: Most attachments one request may name or add.
MAX_ATTACHMENTS = 100
#: Deepest attached message within attached messages that is attached or read.
MAX_DEPTH = 10
#: The header of an attached message that keeps what a stored item keeps beside its
#: content (:mod:`.ews_item_properties`): its reminder and IsResponseRequested, JSON.
#: sitemail's own; Exchange keeps them as MAPI properties of the embedded message.
PROPERTIES_HEADER = "X-Sitemail-Item-Properties"
MAX_PROPERTIES_HEADER = 1000
_PLAIN_BY_NAME = {t(path.split(":", 1)[1]): path for path in PLAIN_PATHS}

NOT_FOUND = "The attachment id is invalid or the attachment has been deleted."  # unverified
_OUTPUT = policy.SMTP.clone(max_line_length=None)


def _is_attachment(content_type: str, disposition: str | None, filename: str | None) -> bool:
    # The rule of message_body: what a reader does not show as the body.
    return (
        (disposition or "").lower() == "attachment"
        or bool(filename)
        or content_type == "message/rfc822"
    )


def attachment_parts(structure: MimePart) -> list[MimePart]:
    """A stored message's attachments, in the order of its MIME tree."""
    return [
        p
        for p in structure.walk()
        if not p.is_multipart and _is_attachment(p.content_type, p.disposition, p.filename)
    ]


def _digest(part: MimePart) -> str:
    text = f"{part.filename or ''}|{part.content_type}|{part.body_size}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def attachment_id(alias: str, message_id: int, index: int, part: MimePart) -> str:
    # The item id's encoding, with the attachment's place and digest after the message id.
    base = base64.b64decode(item_id(alias, message_id)).decode("utf-8")
    return base64.b64encode(f"{base}:{index}:{_digest(part)}".encode()).decode("ascii")


def _nested_id(top: str, place: int) -> str:
    """The id of the attachment at ``place`` in the message attached as ``top``: the top
    attachment's id with the places inside it after ``>``, so that GetAttachment finds an
    attachment of an attached message (of an attached message ...)."""
    raw = base64.b64decode(top).decode("utf-8")
    return base64.b64encode(f"{raw}>{place}".encode()).decode("ascii")


def _parse_attachment_id(value: str) -> tuple[str, int, int, str, list[int]]:
    """(mailbox, message id, index, digest, places inside) of an AttachmentId."""
    try:
        raw = base64.b64decode(value, validate=True).decode("utf-8")
        top, *inside = raw.split(">")
        base, index, digest = top.rsplit(":", 2)
        parsed = parse_id(base64.b64encode(base.encode()).decode("ascii"))
        if parsed.kind != "M" or len(digest) != 12 or len(inside) > MAX_DEPTH:
            raise InvalidId("not an attachment id")
        return parsed.mailbox, parsed.message_id, int(index), digest, [int(p) for p in inside]
    except (binascii.Error, UnicodeDecodeError, ValueError, InvalidId):
        raise malformed() from None


def _find(detail: MessageDetail, index: int, digest: str) -> int:
    """The place of an attachment among the message's (ErrorInvalidAttachmentId if gone)."""
    parts = attachment_parts(detail.structure)
    if 0 <= index < len(parts) and _digest(parts[index]) == digest:
        return index
    for place, part in enumerate(parts):
        if _digest(part) == digest:
            return place
    raise Refused("ErrorInvalidAttachmentId", NOT_FOUND)


def _approx_size(part: MimePart) -> int:
    if part.transfer_encoding.lower() == "base64":
        return max(part.body_size - 2 * part.body_lines, 0) * 3 // 4
    return part.body_size


def _name(part: MimePart) -> str:
    return part.filename or part.description or ""


def render_attachments(element: ET.Element, alias: str, detail: MessageDetail) -> None:
    """``<t:Attachments>`` of a ``<t:Message>`` (GetItem), without their content."""
    parts = attachment_parts(detail.structure)
    if not parts:
        return
    holder = sub(element, t("Attachments"))
    for index, part in enumerate(parts):
        item = part.content_type == "message/rfc822"
        entry = sub(holder, t("ItemAttachment" if item else "FileAttachment"))
        sub(entry, t("AttachmentId"), Id=attachment_id(alias, detail.id, index, part))
        sub(entry, t("Name"), _name(part))
        sub(entry, t("ContentType"), part.content_type)
        if part.content_id:
            sub(entry, t("ContentId"), part.content_id.strip("<>"))
        sub(entry, t("Size"), str(_approx_size(part)))
        sub(entry, t("IsInline"), "false")
        if not item:
            sub(entry, t("IsContactPhoto"), "false")


def _leaves(msg: EmailMessage) -> Iterator[tuple[EmailMessage, EmailMessage]]:
    """(parent, leaf) for each leaf part, in the order of the store's MIME tree."""
    for part in msg.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        if part.get_content_maintype() == "multipart":
            yield from _leaves(part)
        else:
            yield msg, part


def _mime_attachments(msg: EmailMessage) -> list[tuple[EmailMessage, EmailMessage]]:
    if msg.get_content_maintype() != "multipart":
        return []
    return [
        (parent, part)
        for parent, part in _leaves(msg)
        if _is_attachment(
            part.get_content_type(), part.get_content_disposition(), part.get_filename()
        )
    ]


class EwsAttachments:
    """The attachment operations for one signed-in user's messages."""

    def __init__(self, box: EwsMailbox, compose: Callable[[ET.Element], bytes]) -> None:
        self.box = box
        self.store = box.store
        self.alias = box.alias
        self._compose = compose  # an item attachment's message, as CreateItem makes it

    async def _message(self, message_id: int) -> MessageDetail:
        return await self.store.get_message(self.alias, message_id)

    # ------------------------------------------------------------ CreateAttachment

    async def create_attachment(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("CreateAttachmentResponse"))
        messages = sub(response, m("ResponseMessages"))
        holder = body.find(m("Attachments"))
        new = list(holder) if holder is not None else []
        if len(new) > MAX_ATTACHMENTS:
            raise SoapFault("ErrorInvalidRequest", f"At most {MAX_ATTACHMENTS} attachments.")
        try:
            ref = body.find(m("ParentItemId"))
            if ref is None:
                raise malformed()
            try:
                parsed = parse_id(ref.get("Id", ""))
            except InvalidId:
                raise malformed() from None
            if parsed.kind != "M":
                raise malformed()
            self.box.own(parsed.mailbox)
            message_id = parsed.message_id
            raw = await self.store.read_raw(self.alias, message_id)
            msg = BytesParser(policy=policy.default).parsebytes(raw)
            assert isinstance(msg, EmailMessage)
            before = len(_mime_attachments(msg))
            for attachment in new:
                self._attach(msg, attachment)
            placed = await self.store.replace(self.alias, message_id, msg.as_bytes(policy=_OUTPUT))
            detail = await self._message(message_id)
        except (Refused, StoreError) as exc:
            refusal = client_refusal(exc)
            if isinstance(exc, StoreError) and refusal.code == "ErrorMessageSizeExceeded":
                refusal = Refused("ErrorAttachmentSizeLimitExceeded", refusal.text)
            for _ in range(max(len(new), 1)):
                msg_el = response_message(messages, "CreateAttachment", refusal.code, refusal.text)
                sub(msg_el, m("Attachments"))
            return response
        parts = attachment_parts(detail.structure)
        for index in range(before, before + len(new)):
            answer = response_message(messages, "CreateAttachment")
            holder_el = sub(answer, m("Attachments"))
            if index >= len(parts):
                continue
            kind = "ItemAttachment" if parts[index].content_type == "message/rfc822" else None
            entry = sub(holder_el, t(kind or "FileAttachment"))
            sub(
                entry,
                t("AttachmentId"),
                Id=attachment_id(self.alias, message_id, index, parts[index]),
                RootItemId=item_id(self.alias, message_id, placed.folder_id),
                RootItemChangeKey=change_key(placed.modseq),
            )
        return response

    def _attach(self, msg: EmailMessage, attachment: ET.Element, depth: int = 0) -> None:
        name = attachment.findtext(t("Name")) or ""
        if attachment.tag == t("FileAttachment"):
            try:
                data = base64.b64decode((attachment.findtext(t("Content")) or "").strip())
            except (binascii.Error, ValueError):
                raise Refused(
                    "ErrorInvalidAttachmentSubfilter", "The attachment content is not base64."
                ) from None
            if len(data) > MAX_ATTACHMENT:
                raise Refused(
                    "ErrorAttachmentSizeLimitExceeded",
                    f"An attachment may be at most {MAX_ATTACHMENT} bytes.",
                )
            kind = (attachment.findtext(t("ContentType")) or "application/octet-stream").strip()
            main, _, subtype = kind.partition("/")
            if not subtype or main in ("multipart", "message"):
                main, subtype = "application", "octet-stream"
            cid = attachment.findtext(t("ContentId"))
            msg.add_attachment(
                data,
                maintype=main,
                subtype=subtype,
                filename=name,
                cid=f"<{cid.strip('<>')}>" if cid else None,
            )
            return
        if attachment.tag != t("ItemAttachment"):
            raise Refused("ErrorInvalidRequest", "An attachment is a file or an item.")
        inner = next((c for c in attachment if c.tag in (t("Message"), t("Item"))), None)
        if inner is None:
            raise Refused(
                "ErrorInvalidItemForOperationCreateItemAttachment",
                "sitemail attaches messages only.",
            )
        attached = BytesParser(policy=policy.default).parsebytes(self._compose(inner))
        assert isinstance(attached, EmailMessage)
        _keep_properties(attached, inner)
        # The attached item's own attachments go with it (an item within an item ...).
        nested = inner.find(t("Attachments"))
        if nested is not None and len(nested):
            if depth >= MAX_DEPTH:
                raise Refused(
                    "ErrorInvalidRequest",
                    f"Attached items may be nested at most {MAX_DEPTH} deep.",
                )
            for child in list(nested)[:MAX_ATTACHMENTS]:
                self._attach(attached, child, depth + 1)
        msg.add_attachment(attached, filename=name)

    # ------------------------------------------------------------ GetAttachment

    async def get_attachment(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("GetAttachmentResponse"))
        messages = sub(response, m("ResponseMessages"))
        shape = body.find(m("AttachmentShape"))
        mime = shape is not None and (shape.findtext(t("IncludeMimeContent")) or "") == "true"
        wanted = body_type(shape)
        holder = body.find(m("AttachmentIds"))
        refs = list(holder) if holder is not None else []
        for ref in refs[:MAX_ATTACHMENTS]:
            try:
                mailbox, message_id, index, digest, inside = _parse_attachment_id(ref.get("Id", ""))
                self.box.own(mailbox)
                detail = await self._message(message_id)
                place = _find(detail, index, digest)
                part = attachment_parts(detail.structure)[place]
                data = await self.store.read_part(self.alias, message_id, part.part_id)
                top = attachment_id(self.alias, message_id, place, part)
                name, kind, cid = _name(part), part.content_type, part.content_id
                for spot in inside:
                    name, kind, cid, data = _inner_part(data, spot)
                    top = _nested_id(top, spot)
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                if refusal.code == "ErrorItemNotFound":
                    refusal = Refused("ErrorInvalidAttachmentId", NOT_FOUND)
                answer = response_message(messages, "GetAttachment", refusal.code, refusal.text)
                sub(answer, m("Attachments"))
                continue
            answer = response_message(messages, "GetAttachment")
            attachments = sub(answer, m("Attachments"))
            item = kind == "message/rfc822"
            entry = sub(attachments, t("ItemAttachment" if item else "FileAttachment"))
            sub(entry, t("AttachmentId"), Id=top)
            sub(entry, t("Name"), name)
            sub(entry, t("ContentType"), kind)
            if cid:
                sub(entry, t("ContentId"), cid.strip("<>"))
            sub(entry, t("Size"), str(len(data)))
            sub(entry, t("IsInline"), "false")
            if item:
                _inner_message(entry, data, mime, self.box.is_known, wanted, top)
            else:
                sub(entry, t("IsContactPhoto"), "false")
                sub(entry, t("Content"), base64.b64encode(data).decode("ascii"))
        return response

    # ------------------------------------------------------------ DeleteAttachment

    async def delete_attachment(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("DeleteAttachmentResponse"))
        messages = sub(response, m("ResponseMessages"))
        holder = body.find(m("AttachmentIds"))
        refs = list(holder) if holder is not None else []
        for ref in refs[:MAX_ATTACHMENTS]:
            try:
                mailbox, message_id, index, digest, inside = _parse_attachment_id(ref.get("Id", ""))
                self.box.own(mailbox)
                if inside:
                    # An attached message is kept as it was attached (unverified whether
                    # Exchange 2010 deletes within one).
                    raise Refused(
                        "ErrorInvalidAttachmentId",
                        "An attachment of an attached message cannot be deleted; delete "
                        "the attached message.",
                    )
                detail = await self._message(message_id)
                place = _find(detail, index, digest)
                raw = await self.store.read_raw(self.alias, message_id)
                msg = BytesParser(policy=policy.default).parsebytes(raw)
                assert isinstance(msg, EmailMessage)
                found = _mime_attachments(msg)
                if place >= len(found):
                    raise Refused("ErrorInvalidAttachmentId", NOT_FOUND)
                parent, part = found[place]
                payload = parent.get_payload()
                assert isinstance(payload, list)
                payload.remove(part)
                placed = await self.store.replace(
                    self.alias, message_id, msg.as_bytes(policy=_OUTPUT)
                )
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                if refusal.code == "ErrorItemNotFound":
                    refusal = Refused("ErrorInvalidAttachmentId", NOT_FOUND)
                response_message(messages, "DeleteAttachment", refusal.code, refusal.text)
                continue
            answer = response_message(messages, "DeleteAttachment")
            sub(
                answer,
                m("RootItemId"),
                RootItemId=item_id(self.alias, message_id, placed.folder_id),
                RootItemChangeKey=change_key(placed.modseq),
            )
        return response


def _inner_message(
    entry: ET.Element,
    data: bytes,
    mime: bool,
    known: Callable[[str], bool],
    wanted: str,
    own_id: str,
) -> None:
    """The ``<t:Message>`` of an item attachment, from the attached message's MIME: what
    its header holds, in the schema's order, with the reminder and IsResponseRequested it
    was attached with (:data:`PROPERTIES_HEADER`)."""
    inner = BytesParser(policy=policy.default).parsebytes(data)
    props = header_props(data)
    bag = _kept_properties(inner)
    element = sub(entry, t("Message"))
    if mime:
        sub(element, t("MimeContent"), base64.b64encode(data).decode("ascii"), CharacterSet="UTF-8")
    sub(element, t("ItemClass"), "IPM.Note")
    sub(element, t("Subject"), str(inner.get("Subject", "")))
    render_header_field(element, "item:Sensitivity", props, known)
    if isinstance(inner, EmailMessage):
        body = inner.get_body(preferencelist=("html", "plain"))
        if body is not None:
            text = str(body.get_content()).replace("\r\n", "\n")
            html = body.get_content_type() == "text/html"
            if html and wanted == "Text":
                text, html = in_body_type(text, html, wanted)  # converted: its CRLFs kept
            else:
                text = text.removesuffix("\n")
            sub(element, t("Body"), text or None, BodyType="HTML" if html else "Text")
        _inner_attachments(element, inner, own_id)
    for path in ("item:Categories", "item:Importance", "item:InReplyTo"):
        render_header_field(element, path, props, known)
    for path in ("item:ReminderDueBy", "item:ReminderIsSet", "item:ReminderMinutesBeforeStart"):
        render_plain(element, path, bag)
    render_header_field(element, "item:Culture", props, known)
    for header, tag in (("To", "ToRecipients"), ("Cc", "CcRecipients")):
        _people(element, tag, inner.get_all(header) or [], known)
    for path in (
        "message:BccRecipients",
        "message:IsReadReceiptRequested",
        "message:IsDeliveryReceiptRequested",
    ):
        render_header_field(element, path, props, known)
    sender = getaddresses([str(v) for v in inner.get_all("From") or []])
    if sender:
        _people(element, "From", [formataddr(sender[0])], known)
    render_header_field(element, "message:InternetMessageId", props, known)
    render_plain(element, "message:IsResponseRequested", bag)
    render_header_field(element, "message:References", props, known)
    _people(element, "ReplyTo", inner.get_all("Reply-To") or [], known)


def _keep_properties(attached: EmailMessage, inner: ET.Element) -> None:
    """Write the reminder and IsResponseRequested an attached item was given into its MIME
    (:data:`PROPERTIES_HEADER`): an attached message has no properties beside it."""
    bag: dict[str, Any] = {}
    for child in inner:
        path = _PLAIN_BY_NAME.get(child.tag)
        if path is not None:
            set_plain(bag, path, child)
    del attached[PROPERTIES_HEADER]
    if bag:
        attached[PROPERTIES_HEADER] = json.dumps(bag, separators=(",", ":"), sort_keys=True)


def _kept_properties(inner: object) -> dict[str, Any]:
    value = inner.get(PROPERTIES_HEADER) if isinstance(inner, EmailMessage) else None
    if value is None:
        return {}
    try:
        data = json.loads(str(value)[:MAX_PROPERTIES_HEADER])
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(v) for k, v in data.items() if k in PLAIN_PATHS and isinstance(v, str)}


def _inner_attachments(element: ET.Element, inner: EmailMessage, own_id: str) -> None:
    """``<t:Attachments>`` of an attached message: ids that GetAttachment follows into it."""
    found = _mime_attachments(inner)
    if not found:
        return
    holder = sub(element, t("Attachments"))
    for place, (_, part) in enumerate(found):
        kind = part.get_content_type()
        entry = sub(holder, t("ItemAttachment" if kind == "message/rfc822" else "FileAttachment"))
        sub(entry, t("AttachmentId"), Id=_nested_id(own_id, place))
        sub(entry, t("Name"), _part_name(part))
        sub(entry, t("ContentType"), kind)
        cid = part.get("Content-ID")
        if cid:
            sub(entry, t("ContentId"), str(cid).strip("<>"))
        sub(entry, t("Size"), str(len(_content(part))))
        sub(entry, t("IsInline"), "false")
        if kind != "message/rfc822":
            sub(entry, t("IsContactPhoto"), "false")


def _part_name(part: EmailMessage) -> str:
    return str(part.get_filename() or part.get("Content-Description") or "")


def _content(part: EmailMessage) -> bytes:
    """A part's content: an attached message's MIME, a file's decoded bytes."""
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
            return payload[0].as_bytes(policy=_OUTPUT)
        return b""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _inner_part(data: bytes, place: int) -> tuple[str, str, str | None, bytes]:
    """(name, type, Content-ID, content) of the attachment at ``place`` of the attached
    message ``data``; ErrorInvalidAttachmentId if it has none there."""
    msg = BytesParser(policy=policy.default).parsebytes(data)
    found = _mime_attachments(msg) if isinstance(msg, EmailMessage) else []
    if not 0 <= place < len(found):
        raise Refused("ErrorInvalidAttachmentId", NOT_FOUND)
    part = found[place][1]
    cid = part.get("Content-ID")
    return _part_name(part), part.get_content_type(), str(cid) if cid else None, _content(part)


def _people(
    element: ET.Element, tag: str, values: list[object], known: Callable[[str], bool]
) -> None:
    people = [(n, a) for n, a in getaddresses([str(v) for v in values]) if a]
    if not people:
        return
    holder = sub(element, t(tag))
    for name, address in people:
        box = sub(holder, t("Mailbox"))
        sub(box, t("Name"), name or address)  # Exchange always names one
        sub(box, t("EmailAddress"), address)
        sub(box, t("RoutingType"), "SMTP")
        sub(box, t("MailboxType"), "Mailbox" if known(address) else "OneOff")
