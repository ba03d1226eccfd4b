"""EWS folder and item identifiers: opaque base64 strings that name a mailbox's folder or message.

An Exchange Id is an opaque base64 string; a client only hands it back.
sitemail's carry what the store needs (the mailbox alias, and a folder id,
a well-known folder name, or a message id), so that any Client Access
server of the mailbox's site can serve a request that names them.  The
mailbox in an id is checked against the signed-in user on every use: an id
is never a way into another mailbox.  ChangeKeys carry the modification
sequence, so that a client sees a new ChangeKey after a change.

An occurrence of a recurring calendar item has an Id of its own (kind
``O``): the master's message id and the occurrence's 1-based index in the
series, which is what EWS's OccurrenceItemId names too.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, unquote

__all__ = [
    "EwsId",
    "InvalidId",
    "change_key",
    "folder_id",
    "is_change_key",
    "item_id",
    "occurrence_id",
    "parse_id",
]

_MAGIC = "sm1"  # a version tag, so that a later format can tell old ids apart
#: Folders that exist in every mailbox's hierarchy above the store's folders.
ROOT = "root"
TOP = "msgfolderroot"


class InvalidId(ValueError):
    """The value is not an Id this server gave."""


@dataclass(frozen=True)
class EwsId:
    kind: Literal["F", "M", "O"]
    mailbox: str
    value: str  # a folder id, "root"/"msgfolderroot", a message id ("12" or, with the
    # folder it was given for, "12.3"), or an occurrence's "master.index"

    @property
    def message_id(self) -> int:
        """The message an item Id names (an occurrence's: its master)."""
        return int(self.value.partition(".")[0])

    @property
    def in_folder(self) -> int | None:
        """The folder an item id was given for: a moved item's old id no longer names it."""
        if self.kind != "M":
            return None
        folder = self.value.partition(".")[2]
        return int(folder) if folder else None

    def occurrence(self) -> tuple[int, int]:
        """The master's message id and the occurrence's index, of an ``O`` Id."""
        master, _, index = self.value.partition(".")
        return int(master), int(index)


# Ids are asked for every item of every answer, the same ones again and again
# (a client polling its Inbox): a bounded memo of the encoding.
@lru_cache(maxsize=8192)
def _encode(kind: str, mailbox: str, value: str) -> str:
    # Fields are percent-encoded, so that no alias can contain the separator.
    raw = ":".join(quote(x, safe="") for x in (_MAGIC, kind, mailbox, value)).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def folder_id(mailbox: str, folder: int | str) -> str:
    return _encode("F", mailbox.casefold(), str(folder))


def item_id(mailbox: str, message_id: int, folder: int | None = None) -> str:
    # With the folder, as Exchange's ItemIds change when an item moves (an id of the
    # item's old place is ErrorItemNotFound); an id without one names the item anywhere.
    value = str(int(message_id)) if folder is None else f"{int(message_id)}.{int(folder)}"
    return _encode("M", mailbox.casefold(), value)


def occurrence_id(mailbox: str, master_id: int, index: int) -> str:
    return _encode("O", mailbox.casefold(), f"{int(master_id)}.{int(index)}")


@lru_cache(maxsize=8192)
def change_key(modseq: int) -> str:
    return base64.b64encode(f"CK{modseq}".encode()).decode("ascii")


def is_change_key(value: str) -> bool:
    """Whether ``value`` is a ChangeKey this server gave (of any item, current or not)."""
    try:
        raw = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return raw.startswith("CK") and raw[2:].isdigit()


def parse_id(value: str) -> EwsId:
    if len(value) > 1024:
        raise InvalidId("the Id is too long")
    try:
        raw = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidId("the Id is not one this server gave") from None
    parts = [unquote(x) for x in raw.split(":")]
    if len(parts) != 4 or parts[0] != _MAGIC or parts[1] not in ("F", "M", "O"):
        raise InvalidId("the Id is not one this server gave")
    kind: Literal["F", "M", "O"] = "F" if parts[1] == "F" else "M" if parts[1] == "M" else "O"
    message, _, folder = parts[3].partition(".")
    if kind == "M" and not (message.isdigit() and (not folder or folder.isdigit())):
        raise InvalidId("the item Id is malformed")
    if kind == "O":
        master, dot, index = parts[3].partition(".")
        if not (dot and master.isdigit() and index.isdigit() and len(parts[3]) < 40):
            raise InvalidId("the occurrence Id is malformed")
    return EwsId(kind=kind, mailbox=parts[2], value=parts[3])
