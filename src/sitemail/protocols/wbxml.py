"""The sans-I/O WBXML codec of Exchange ActiveSync (WBXML 1.3 with MS-ASWBXML's code pages).

An ActiveSync command body is a WBXML document: a four-byte header (version
1.3, public identifier 1 "unknown", charset 106 UTF-8, an empty string
table), then tags.  A tag byte is ``token | 0x40`` when the element has
content; code pages (namespaces) change with ``SWITCH_PAGE``; text is an
inline string (``STR_I``, NUL-terminated UTF-8); binary data is ``OPAQUE``
with a multi-byte length.  ActiveSync uses no attributes, entities,
string-table references or processing instructions, so neither does this
codec: a document that does is refused with :class:`WbxmlError`.

The tree is :class:`Element`: a namespace (the MS-ASWBXML code page name,
``"AirSync"``, ``"FolderHierarchy"`` ...), a tag name, and children that are
elements, text (``str``) or opaque data (``bytes``), in document order.
:func:`decode` and :func:`encode` are exact inverses on every tree whose
text has no NUL (hypothesis checks this); nothing here does I/O.

Only the code pages sitemail serves are tabled (AirSync, Email,
FolderHierarchy, Provision, AirSyncBase, Settings, ComposeMail); an element of another
page or an unknown token is refused with a message naming page and token,
which is how a device learns that the command is not supported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "CODE_PAGES",
    "MAX_DEPTH",
    "MAX_DOCUMENT",
    "Element",
    "Node",
    "WbxmlError",
    "decode",
    "el",
    "encode",
]

# Global tokens (WBXML 1.3 section 7.1) that ActiveSync uses.
SWITCH_PAGE = 0x00
END = 0x01
STR_I = 0x03
OPAQUE = 0xC3
WITH_CONTENT = 0x40
WITH_ATTRIBUTES = 0x80
_TOKEN_MASK = 0x3F

#: The header ActiveSync documents start with: WBXML 1.3, public id 1 (unknown),
#: charset 106 (UTF-8), string table of length 0.
HEADER = bytes((0x03, 0x01, 0x6A, 0x00))

#: Bounds on what a peer may make the decoder build.
MAX_DOCUMENT = 16 * 1024 * 1024
MAX_DEPTH = 64

# MS-ASWBXML section 2.1.2.1: code page number -> (namespace, {token: tag}).
_PAGES: dict[int, tuple[str, dict[int, str]]] = {
    0: (
        "AirSync",
        {
            0x05: "Sync",
            0x06: "Responses",
            0x07: "Add",
            0x08: "Change",
            0x09: "Delete",
            0x0A: "Fetch",
            0x0B: "SyncKey",
            0x0C: "ClientId",
            0x0D: "ServerId",
            0x0E: "Status",
            0x0F: "Collection",
            0x10: "Class",
            0x12: "CollectionId",
            0x13: "GetChanges",
            0x14: "MoreAvailable",
            0x15: "WindowSize",
            0x16: "Commands",
            0x17: "Options",
            0x18: "FilterType",
            0x19: "Truncation",
            0x1B: "Conflict",
            0x1C: "Collections",
            0x1D: "ApplicationData",
            0x1E: "DeletesAsMoves",
            0x20: "Supported",
            0x21: "SoftDelete",
            0x22: "MIMESupport",
            0x23: "MIMETruncation",
            0x24: "Wait",
            0x25: "Limit",
            0x26: "Partial",
            0x27: "ConversationMode",
            0x28: "MaxItems",
            0x29: "HeartbeatInterval",
        },
    ),
    2: (
        "Email",
        {
            0x0C: "Body",
            0x0D: "BodySize",
            0x0E: "BodyTruncated",
            0x0F: "DateReceived",
            0x10: "DisplayName",
            0x11: "DisplayTo",
            0x12: "Importance",
            0x13: "MessageClass",
            0x14: "Subject",
            0x15: "Read",
            0x16: "To",
            0x17: "Cc",
            0x18: "From",
            0x19: "ReplyTo",
            0x35: "ThreadTopic",
            0x36: "MIMEData",
            0x37: "MIMETruncated",
            0x38: "MIMESize",
            0x39: "InternetCPID",
            0x3A: "Flag",
            0x3B: "Status",
            0x3C: "ContentClass",
        },
    ),
    4: (
        "Calendar",
        {
            0x05: "TimeZone",
            0x06: "AllDayEvent",
            0x07: "Attendees",
            0x08: "Attendee",
            0x09: "Email",
            0x0A: "Name",
            0x0B: "Body",
            0x0C: "BodyTruncated",
            0x0D: "BusyStatus",
            0x0E: "Categories",
            0x0F: "Category",
            0x11: "DtStamp",
            0x12: "EndTime",
            0x13: "Exception",
            0x14: "Exceptions",
            0x15: "Deleted",
            0x16: "ExceptionStartTime",
            0x17: "Location",
            0x18: "MeetingStatus",
            0x19: "OrganizerEmail",
            0x1A: "OrganizerName",
            0x1B: "Recurrence",
            0x1C: "Type",
            0x1D: "Until",
            0x1E: "Occurrences",
            0x1F: "Interval",
            0x20: "DayOfWeek",
            0x21: "DayOfMonth",
            0x22: "WeekOfMonth",
            0x23: "MonthOfYear",
            0x24: "Reminder",
            0x25: "Sensitivity",
            0x26: "Subject",
            0x27: "StartTime",
            0x28: "UID",
            0x29: "AttendeeStatus",
            0x2A: "AttendeeType",
            0x33: "DisallowNewTimeProposal",
            0x34: "ResponseRequested",
            0x35: "AppointmentReplyTime",
            0x36: "ResponseType",
            0x37: "CalendarType",
            0x38: "IsLeapMonth",
            0x39: "FirstDayOfWeek",
        },
    ),
    7: (
        "FolderHierarchy",
        {
            0x07: "DisplayName",
            0x08: "ServerId",
            0x09: "ParentId",
            0x0A: "Type",
            0x0C: "Status",
            0x0E: "Changes",
            0x0F: "Add",
            0x10: "Delete",
            0x11: "Update",
            0x12: "SyncKey",
            0x13: "FolderCreate",
            0x14: "FolderDelete",
            0x15: "FolderUpdate",
            0x16: "FolderSync",
            0x17: "Count",
        },
    ),
    14: (
        "Provision",
        {
            0x05: "Provision",
            0x06: "Policies",
            0x07: "Policy",
            0x08: "PolicyType",
            0x09: "PolicyKey",
            0x0A: "Data",
            0x0B: "Status",
            0x0C: "RemoteWipe",
            0x0D: "EASProvisionDoc",
            0x0E: "DevicePasswordEnabled",
            0x0F: "AlphanumericDevicePasswordRequired",
            0x10: "RequireStorageCardEncryption",
            0x11: "PasswordRecoveryEnabled",
            0x13: "AttachmentsEnabled",
            0x14: "MinDevicePasswordLength",
            0x15: "MaxInactivityTimeDeviceLock",
            0x16: "MaxDevicePasswordFailedAttempts",
            0x17: "MaxAttachmentSize",
            0x18: "AllowSimpleDevicePassword",
            0x19: "DevicePasswordExpiration",
            0x1A: "DevicePasswordHistory",
        },
    ),
    17: (
        "AirSyncBase",
        {
            0x05: "BodyPreference",
            0x06: "Type",
            0x07: "TruncationSize",
            0x08: "AllOrNone",
            0x0A: "Body",
            0x0B: "Data",
            0x0C: "EstimatedDataSize",
            0x0D: "Truncated",
            0x0E: "Attachments",
            0x0F: "Attachment",
            0x10: "DisplayName",
            0x11: "FileReference",
            0x12: "Method",
            0x13: "ContentId",
            0x14: "ContentLocation",
            0x15: "IsInline",
            0x16: "NativeBodyType",
            0x17: "ContentType",
            0x18: "Preview",
        },
    ),
    18: (
        "Settings",
        {
            0x05: "Settings",
            0x06: "Status",
            0x07: "Get",
            0x08: "Set",
            0x16: "DeviceInformation",
            0x17: "Model",
            0x18: "IMEI",
            0x19: "FriendlyName",
            0x1A: "OS",
            0x1B: "OSLanguage",
            0x1C: "PhoneNumber",
            0x20: "UserAgent",
        },
    ),
    21: (
        "ComposeMail",
        {
            0x05: "SendMail",
            0x06: "SmartForward",
            0x07: "SmartReply",
            0x08: "SaveInSentItems",
            0x09: "ReplaceMime",
            0x0B: "Source",
            0x0C: "FolderId",
            0x0D: "ItemId",
            0x0E: "LongId",
            0x0F: "InstanceId",
            0x10: "Mime",
            0x11: "ClientId",
            0x12: "Status",
            0x13: "AccountId",
        },
    ),
}

#: namespace -> code page number.
CODE_PAGES: dict[str, int] = {ns: page for page, (ns, _) in _PAGES.items()}
# (namespace, tag) -> (page, token)
_TOKENS: dict[tuple[str, str], tuple[int, int]] = {
    (ns, tag): (page, token) for page, (ns, tags) in _PAGES.items() for token, tag in tags.items()
}


class WbxmlError(ValueError):
    """The bytes are not an ActiveSync WBXML document this codec reads, or a tree cannot be
    written (an unknown tag, NUL in text)."""


@dataclass(frozen=True)
class Element:
    """One element: ``namespace:tag`` and its children (elements, text, opaque bytes)."""

    namespace: str
    tag: str
    children: tuple[Element | str | bytes, ...] = field(default=())

    # ------------------------------------------------------------ reading helpers

    def elements(self, name: str | None = None) -> Iterator[Element]:
        """Child elements, all of them or those named ``name`` (``"Tag"`` or ``"Ns:Tag"``)."""
        for child in self.children:
            if isinstance(child, Element) and (name is None or child.is_named(name)):
                yield child

    def is_named(self, name: str) -> bool:
        ns, sep, tag = name.rpartition(":")
        return tag == self.tag and (not sep or ns == self.namespace)

    def find(self, path: str) -> Element | None:
        """The first element along ``path`` (``"Collections/Collection"``), or None."""
        node: Element | None = self
        for step in path.split("/"):
            if node is None:
                return None
            node = next(node.elements(step), None)
        return node

    def findall(self, path: str) -> list[Element]:
        head, _, last = path.rpartition("/")
        parent = self.find(head) if head else self
        return list(parent.elements(last)) if parent is not None else []

    def text(self) -> str:
        """The element's text (its string children joined); opaque data is decoded as UTF-8."""
        parts: list[str] = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif isinstance(child, bytes):
                parts.append(child.decode("utf-8", "replace"))
        return "".join(parts)

    def findtext(self, path: str, default: str | None = None) -> str | None:
        found = self.find(path)
        return found.text() if found is not None else default


Node: TypeAlias = Element | str | bytes
"""A child: an element, text, or opaque data."""


def el(name: str, *children: Element | str | bytes | int | Iterable[Element] | None) -> Element:
    """Build an element: ``el("AirSync:Sync", el("AirSync:SyncKey", "1"))``.

    Children given as None are left out, ints become their decimal text, and
    an iterable of elements is spliced in (so comprehensions read naturally).
    """
    ns, sep, tag = name.partition(":")
    if not sep:
        raise WbxmlError(f"element name {name!r} needs its namespace (Namespace:Tag)")
    out: list[Element | str | bytes] = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, Element | str | bytes):
            out.append(child)
        elif isinstance(child, int):
            out.append(str(child))
        else:
            out.extend(child)
    return Element(ns, tag, tuple(out))


# ---------------------------------------------------------------- encoding


def _mb_u_int32(value: int) -> bytes:
    """WBXML's multi-byte unsigned integer: 7 bits a byte, high bit = more follow."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def encode(root: Element) -> bytes:
    """The WBXML document of ``root`` (the header, then the tree, starting on page 0)."""
    out = bytearray(HEADER)
    page = 0
    # Iterative, so that depth is bounded by memory rather than Python's recursion
    # limit; END marks "close the element opened before".
    stack: list[Element | str | bytes | int] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, int):
            out.append(END)
        elif isinstance(item, str):
            data = item.encode("utf-8")
            if b"\x00" in data:
                raise WbxmlError("text with a NUL character cannot be written as WBXML STR_I")
            out.append(STR_I)
            out += data
            out.append(0)
        elif isinstance(item, bytes):
            out.append(OPAQUE)
            out += _mb_u_int32(len(item))
            out += item
        else:
            found = _TOKENS.get((item.namespace, item.tag))
            if found is None:
                raise WbxmlError(f"no ActiveSync token for {item.namespace}:{item.tag}")
            item_page, token = found
            if item_page != page:
                out += bytes((SWITCH_PAGE, item_page))
                page = item_page
            if not item.children:
                out.append(token)
                continue
            out.append(token | WITH_CONTENT)
            stack.append(END)
            stack.extend(reversed(item.children))
    return bytes(out)


# ---------------------------------------------------------------- decoding


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise WbxmlError(f"the document ends inside {what} (offset {self.pos})")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def mb_u_int32(self, what: str) -> int:
        value = 0
        for _ in range(5):
            b = self.byte(what)
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                if value > 0xFFFFFFFF:
                    break
                return value
        raise WbxmlError(f"{what} is not a valid multi-byte integer (offset {self.pos})")

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise WbxmlError(
                f"{what} claims {n} bytes but {len(self.data) - self.pos} remain "
                f"(offset {self.pos})"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise WbxmlError(f"an inline string is not terminated (offset {self.pos})")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WbxmlError(f"an inline string is not UTF-8 (offset {self.pos})") from None


def decode(data: bytes, *, max_depth: int = MAX_DEPTH) -> Element:
    """The tree of an ActiveSync WBXML document; :class:`WbxmlError` says what is wrong."""
    if len(data) > MAX_DOCUMENT:
        raise WbxmlError(f"the document is larger than {MAX_DOCUMENT} bytes")
    r = _Reader(data)
    version = r.byte("the header")
    if version not in (0x01, 0x02, 0x03):
        raise WbxmlError(f"WBXML version 0x{version:02X} is not 1.1-1.3")
    if r.mb_u_int32("the public identifier") == 0:
        raise WbxmlError("a public identifier from the string table is not supported")
    charset = r.mb_u_int32("the charset")
    if charset != 106:
        raise WbxmlError(f"charset {charset} is not UTF-8 (106)")
    # ActiveSync never references the string table; skip one if a client sends it.
    r.take(r.mb_u_int32("the string table length"), "the string table")

    page = 0
    # Open elements: (namespace, tag, children so far).
    open_: list[tuple[str, str, list[Element | str | bytes]]] = []
    root: Element | None = None
    while r.pos < len(data):
        token = r.byte("the body")
        if root is not None:
            raise WbxmlError(f"data after the end of the root element (offset {r.pos - 1})")
        if token == SWITCH_PAGE:
            page = r.byte("SWITCH_PAGE")
            if page not in _PAGES:
                raise WbxmlError(f"code page {page} is not one this server reads")
            continue
        if token == END:
            if not open_:
                raise WbxmlError(f"END without an open element (offset {r.pos - 1})")
            ns, tag, children = open_.pop()
            done = Element(ns, tag, tuple(children))
            if open_:
                open_[-1][2].append(done)
            else:
                root = done
            continue
        if token in (STR_I, OPAQUE):
            if not open_:
                raise WbxmlError(f"content outside an element (offset {r.pos - 1})")
            if token == STR_I:
                open_[-1][2].append(r.cstring())
            else:
                length = r.mb_u_int32("an OPAQUE length")
                open_[-1][2].append(r.take(length, "OPAQUE data"))
            continue
        if token & WITH_ATTRIBUTES or (token & _TOKEN_MASK) < 0x05:
            raise WbxmlError(
                f"token 0x{token:02X} (attributes, entities, extensions, string-table "
                "references or processing instructions) is not used by ActiveSync"
            )
        ns, tags = _PAGES[page]
        name = tags.get(token & _TOKEN_MASK)
        if name is None:
            raise WbxmlError(f"token 0x{token & _TOKEN_MASK:02X} is not known in code page {ns}")
        if token & WITH_CONTENT:
            if len(open_) >= max_depth:
                raise WbxmlError(f"elements are nested deeper than {max_depth}")
            open_.append((ns, name, []))
        else:
            leaf = Element(ns, name)
            if open_:
                open_[-1][2].append(leaf)
            else:
                root = leaf
    if open_:
        raise WbxmlError(f"the document ends with {len(open_)} element(s) still open")
    if root is None:
        raise WbxmlError("the document has no root element")
    return root
