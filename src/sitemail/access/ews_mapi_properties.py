"""MAPI properties an EWS client may name by tag, computed from what the store keeps.

Exchange keeps every property of an item or folder as a MAPI property, so a
client may ask for one by ``ExtendedFieldURI PropertyTag`` that EWS also
names otherwise, or not at all: the size, the delivery time, the read and
draft bits of ``PR_MESSAGE_FLAGS``, the IMAP UID (``PR_INTERNET_ARTICLE_NUMBER``)
of an item; the counts, class and next UID of a folder.  Gateways work this
way (DavMail reads a mailbox for its IMAP and CalDAV clients through these
tags, and lists folders with a restriction on ``PR_CONTAINER_CLASS``).

sitemail's store keeps those facts in its own columns; this module gives
each tag's value from them, for GetItem/FindItem/GetFolder/FindFolder
``AdditionalProperties``, restrictions and sort orders.  A value a client set
on an item itself (``message_properties``) comes first, as Exchange gives
back what was written; the rest are read-only facts.  Tags and meanings are
MS-OXPROPS'; a tag not in these tables is an ordinary extended property.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sitemail.mailbox.item_records import TypedItem
from sitemail.mailbox.records import MessageSummary

__all__ = [
    "MapiFolder",
    "folder_value",
    "is_folder_tag",
    "item_value",
    "rendered",
    "typed_rendered",
    "typed_value",
]

# PR_MESSAGE_FLAGS bits (MS-OXCMSG 2.2.1.6).
_MSGFLAG_READ = 0x1
_MSGFLAG_UNSENT = 0x8
_MSGFLAG_HASATTACH = 0x10
# PR_FLAG_STATUS: followupFlagged; PR_LAST_VERB_EXECUTED: NOTEIVERB_REPLYTOSENDER.
_FLAGGED = 2
_REPLIED = 102
# PidLidImapDeleted (PSETID_Common 0x8570): the IMAP \Deleted flag of a message.
_IMAP_DELETED = "set:common:id:34160"


@dataclass(frozen=True)
class MapiFolder:
    """The facts of one folder a tag may name (the Top of Information Store too)."""

    name: str
    folder_class: str
    total: int
    unread: int
    children: int
    uidnext: int
    size: int = 0


def _when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message_flags(s: MessageSummary) -> int:
    bits = _MSGFLAG_READ if s.flags.seen else 0
    bits |= _MSGFLAG_UNSENT if s.flags.draft else 0
    return bits | (_MSGFLAG_HASATTACH if s.has_attachments else 0)


# key (as ews_item_properties.extended_key gives it) -> its PropertyType and its reader.
_ITEM: dict[str, tuple[str, Callable[[MessageSummary], Any]]] = {
    "tag:e23": ("Integer", lambda s: s.uid),  # PR_INTERNET_ARTICLE_NUMBER: the IMAP UID
    "tag:e08": ("Integer", lambda s: s.size),  # PR_MESSAGE_SIZE
    "tag:e06": ("SystemTime", lambda s: _when(s.received_at)),  # PR_MESSAGE_DELIVERY_TIME
    "tag:39": ("SystemTime", lambda s: _when(s.sent_at)),  # PR_CLIENT_SUBMIT_TIME
    "tag:e07": ("Integer", _message_flags),  # PR_MESSAGE_FLAGS
    "tag:e1b": ("Boolean", lambda s: s.has_attachments),  # PR_HASATTACH
    "tag:37": ("String", lambda s: s.subject),  # PR_SUBJECT
    "tag:1035": ("String", lambda s: s.internet_message_id),  # PR_INTERNET_MESSAGE_ID
    "tag:1090": ("Integer", lambda s: _FLAGGED if s.flags.flagged else None),  # PR_FLAG_STATUS
    # PR_LAST_VERB_EXECUTED
    "tag:1081": ("Integer", lambda s: _REPLIED if s.flags.answered else None),
    # PR_RECORD_KEY: a binary key unique in the store; the message id's eight bytes.
    "tag:ff9": ("Binary", lambda s: base64.b64encode(s.id.to_bytes(8, "big")).decode("ascii")),
    _IMAP_DELETED: ("Integer", lambda s: 1 if s.flags.deleted else None),
}


def _typed_subject(item: TypedItem) -> str:
    data = item.record
    return str(getattr(data, "subject", "") or getattr(data, "display_name", "") or "")


# A calendar item's, contact's or task's (a message of its folder with its record).
_TYPED: dict[str, tuple[str, Callable[[TypedItem], Any]]] = {
    "tag:e23": ("Integer", lambda i: i.uid),  # PR_INTERNET_ARTICLE_NUMBER
    "tag:ff9": ("Binary", lambda i: base64.b64encode(i.id.to_bytes(8, "big")).decode("ascii")),
    "tag:37": ("String", _typed_subject),  # PR_SUBJECT
    "tag:e06": ("SystemTime", lambda i: _when(i.created_at)),  # PR_MESSAGE_DELIVERY_TIME
}

_FOLDER: dict[str, tuple[str, Callable[[MapiFolder], Any]]] = {
    "tag:3001": ("String", lambda f: f.name),  # PR_DISPLAY_NAME
    "tag:e08": ("Long", lambda f: f.size),  # PR_MESSAGE_SIZE: what the folder holds
    "tag:6638": ("Integer", lambda f: f.children),  # PR_FOLDER_CHILD_COUNT
    "tag:3613": ("String", lambda f: f.folder_class),  # PR_CONTAINER_CLASS
    "tag:3602": ("Integer", lambda f: f.total),  # PR_CONTENT_COUNT
    "tag:3603": ("Integer", lambda f: f.unread),  # PR_CONTENT_UNREAD
    "tag:360a": ("Boolean", lambda f: f.children > 0),  # PR_SUBFOLDERS
    "tag:10f3": ("String", lambda f: f.name),  # PR_URL_COMP_NAME: a folder's is its name
    "tag:6751": ("Integer", lambda f: f.uidnext),  # PR_ARTICLE_NUM_NEXT
    "tag:6752": ("Integer", lambda f: max(f.uidnext - 1, 0)),  # PR_IMAP_LAST_ARTICLE_ID
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def item_value(key: str, item: MessageSummary) -> str | None:
    """The text of the property ``key`` of ``item`` the store's facts give, if it is one."""
    found = _ITEM.get(key)
    return None if found is None else _text(found[1](item))


def typed_value(key: str, item: TypedItem) -> str | None:
    """The text of the property ``key`` of a typed item the store's facts give, if it is one."""
    found = _TYPED.get(key)
    return None if found is None else _text(found[1](item))


def typed_rendered(keys: list[str], item: TypedItem) -> dict[str, Any]:
    """The computed properties among ``keys`` of a typed item, as set ones are kept."""
    out: dict[str, Any] = {}
    for key in keys:
        text = typed_value(key, item) if key in _TYPED else None
        if text is not None:
            out[key] = {"uri": _uri(key, _TYPED[key][0]), "value": text}
    return out


def is_folder_tag(key: str) -> bool:
    return key in _FOLDER


def folder_value(key: str, folder: MapiFolder) -> str | None:
    found = _FOLDER.get(key)
    return None if found is None else _text(found[1](folder))


def _uri(key: str, kind: str) -> dict[str, str]:
    if key == _IMAP_DELETED:
        return {"DistinguishedPropertySetId": "Common", "PropertyId": "34160", "PropertyType": kind}
    return {"PropertyTag": "0x" + key.removeprefix("tag:"), "PropertyType": kind}


def rendered(
    keys: list[str], value: Callable[[str], str | None], *, folder: bool = False
) -> dict[str, Any]:
    """The computed properties among ``keys`` (of a folder or an item), as set ones are kept."""
    table: dict[str, Any] = _FOLDER if folder else _ITEM
    out: dict[str, Any] = {}
    for key in keys:
        text = value(key) if key in table else None
        if text is not None:
            out[key] = {"uri": _uri(key, table[key][0]), "value": text}
    return out
