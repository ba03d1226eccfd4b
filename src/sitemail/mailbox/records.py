"""The typed records the mailbox store gives and takes.

They are pydantic models so that one definition serves three places: the
database builds them from rows, the store API sends them as JSON, and the
store client validates what it receives back into the same classes.  Every
record is frozen: a record is a snapshot, never a handle on live state.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WellKnownFolder(StrEnum):
    """The default folders of every mailbox, keyed by their EWS DistinguishedFolderId."""

    INBOX = "inbox"
    DRAFTS = "drafts"
    SENT_ITEMS = "sentitems"
    DELETED_ITEMS = "deleteditems"
    JUNK_EMAIL = "junkemail"
    OUTBOX = "outbox"
    # The folders of the other item kinds, which Exchange 2010 creates in every mailbox too.
    CALENDAR = "calendar"
    CONTACTS = "contacts"
    JOURNAL = "journal"
    NOTES = "notes"
    TASKS = "tasks"

    @property
    def display_name(self) -> str:
        """The folder's name in an English Exchange 2010 mailbox."""
        return _DISPLAY_NAMES[self]

    @property
    def folder_class(self) -> str:
        """The folder's container class (PR_CONTAINER_CLASS), what EWS calls FolderClass."""
        return _FOLDER_CLASSES.get(self, "IPF.Note")


_DISPLAY_NAMES = {
    WellKnownFolder.INBOX: "Inbox",
    WellKnownFolder.DRAFTS: "Drafts",
    WellKnownFolder.SENT_ITEMS: "Sent Items",
    WellKnownFolder.DELETED_ITEMS: "Deleted Items",
    WellKnownFolder.JUNK_EMAIL: "Junk E-Mail",
    WellKnownFolder.OUTBOX: "Outbox",
    WellKnownFolder.CALENDAR: "Calendar",
    WellKnownFolder.CONTACTS: "Contacts",
    WellKnownFolder.JOURNAL: "Journal",
    WellKnownFolder.NOTES: "Notes",
    WellKnownFolder.TASKS: "Tasks",
}

# Mail folders are IPF.Note; the others hold what their class says.
_FOLDER_CLASSES = {
    WellKnownFolder.CALENDAR: "IPF.Appointment",
    WellKnownFolder.CONTACTS: "IPF.Contact",
    WellKnownFolder.JOURNAL: "IPF.Journal",
    WellKnownFolder.NOTES: "IPF.StickyNote",
    WellKnownFolder.TASKS: "IPF.Task",
}

#: The message flags the store keeps, named as in IMAP without the backslash.
FLAG_NAMES: tuple[str, ...] = ("seen", "answered", "flagged", "deleted", "draft")


class Address(Record):
    """One mailbox of an address header: display name (decoded) and address."""

    name: str = ""
    address: str = ""


class Flags(Record):
    """IMAP's system flags (\\Seen is Exchange's read state)."""

    seen: bool = False
    answered: bool = False
    flagged: bool = False
    deleted: bool = False
    draft: bool = False

    def names(self) -> list[str]:
        return [name for name in FLAG_NAMES if getattr(self, name)]

    @classmethod
    def of(cls, names: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> Flags:
        unknown = set(names) - set(FLAG_NAMES)
        if unknown:
            raise ValueError(
                f"unknown flag(s) {', '.join(sorted(unknown))}: expected {', '.join(FLAG_NAMES)}"
            )
        return cls(**dict.fromkeys(names, True))


class FlagUpdate(Record):
    """A change to some flags: ``None`` leaves a flag as it is."""

    seen: bool | None = None
    answered: bool | None = None
    flagged: bool | None = None
    deleted: bool | None = None
    draft: bool | None = None

    def apply(self, flags: Flags) -> Flags:
        changes = {name: value for name in FLAG_NAMES if (value := getattr(self, name)) is not None}
        return flags.model_copy(update=changes)


class Folder(Record):
    """A folder with its counts and IMAP state.

    ``path`` joins the names from the top of the mailbox with ``/`` (the
    hierarchy delimiter Exchange's IMAP4 service uses).  ``uidnext`` only
    grows, so a UID is never given twice in a folder of the same
    ``uidvalidity``; ``modseq`` is the highest modification sequence of
    anything that happened in the folder.  ``system`` names one of Exchange's
    own folders (:mod:`.system_folders`); ``ipm`` is false for those beside
    the Top of Information Store and what they hold.  ``folder_class`` is the
    container class (``""``: none was given); ``size`` the bytes of its messages.
    """

    id: int
    parent_id: int | None
    name: str
    path: str
    well_known: WellKnownFolder | None
    total: int
    unread: int
    uidvalidity: int
    uidnext: int
    modseq: int
    system: str | None = None
    folder_class: str = "IPF.Note"
    ipm: bool = True
    size: int = 0


class MimePart(Record):
    """One entity of a message's MIME tree, with where its bytes lie in the raw message.

    ``part_id`` is the IMAP part number: ``""`` for a multipart message
    itself, ``"1"`` for the body of a single-part message, ``"2.1"`` for the
    first child of the second child.  ``message/rfc822`` parts are leaves
    (the store does not number the entities inside an attached message).
    Offsets are byte offsets into the raw message: the part's MIME header
    block starts at ``header_offset``, its (still encoded) body occupies
    ``body_size`` bytes from ``body_offset``.
    """

    part_id: str
    content_type: str
    params: dict[str, str] = Field(default_factory=dict)
    charset: str | None = None
    disposition: str | None = None
    filename: str | None = None
    content_id: str | None = None
    description: str | None = None
    transfer_encoding: str = "7bit"
    header_offset: int
    body_offset: int
    body_size: int
    body_lines: int
    children: list[MimePart] = Field(default_factory=list)

    def walk(self) -> list[MimePart]:
        """This part and every part below it, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    def find(self, part_id: str) -> MimePart | None:
        for part in self.walk():
            if part.part_id == part_id:
                return part
        return None

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")


class MessageSummary(Record):
    """What a message list shows: one row of a folder view."""

    id: int
    folder_id: int
    uid: int
    modseq: int
    received_at: datetime
    size: int
    subject: str
    from_address: Address | None
    to: list[Address]
    cc: list[Address]
    sent_at: datetime | None
    internet_message_id: str | None
    has_attachments: bool
    preview: str
    flags: Flags


class MessageDetail(MessageSummary):
    """A message's summary plus everything parsed from it (not its bytes)."""

    bcc: list[Address]
    reply_to: list[Address]
    in_reply_to: str | None
    header_size: int
    structure: MimePart


class MessagePage(Record):
    """One page of a folder view or a search, newest first unless asked otherwise."""

    total: int
    offset: int
    items: list[MessageSummary]


class FolderView(Record):
    """What a folder view shows, read at once: the folder tree, the folder, one page of it."""

    folders: list[Folder]
    folder: Folder
    page: MessagePage


class Placement(Record):
    """Where a message is now: after delivery, append, move or copy."""

    message_id: int
    folder_id: int
    uid: int
    modseq: int


class ItemProperties(Record):
    """The properties a message has beside its content (EWS reminders, extended properties)."""

    properties: dict[str, Any]
    modseq: int


class DeliveryResult(Record):
    """The outcome of a delivery.

    ``duplicate`` is true when the delivery id was seen before: the message
    was not stored again (the hub logs DUPLICATEDELIVER instead of DELIVER).
    ``folder_id``/``uid`` say where the first copy is now, or are ``None`` if
    the user has since deleted it.
    """

    message_id: int
    folder_id: int | None
    uid: int | None
    duplicate: bool


class UidEntry(Record):
    uid: int
    message_id: int
    flags: Flags
    modseq: int


class FolderUids(Record):
    """The UIDs of a folder above ``since``, in UID order, with the folder's IMAP state."""

    folder_id: int
    uidvalidity: int
    uidnext: int
    modseq: int
    entries: list[UidEntry]
    more: bool


class FolderChanges(Record):
    """What changed in a folder since a modification sequence (IMAP CONDSTORE/QRESYNC style).

    ``changed`` are messages added or whose flags changed; ``vanished`` are
    UIDs that left the folder (moved, deleted, expunged).
    """

    folder_id: int
    uidvalidity: int
    uidnext: int
    modseq: int
    changed: list[UidEntry]
    vanished: list[int]


class ExpungeResult(Record):
    folder_id: int
    uids: list[int]
