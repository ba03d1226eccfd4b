"""Rows of a mailbox database turned into records, and the encodings of stored values.

Times are stored as integer microseconds since the epoch (UTC), which sort
and compare in SQL; address lists as JSON ``[[name, address], ...]`` with
non-ASCII kept as is, so that a search finds "Jürgen" in them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sitemail.mailbox.records import (
    FLAG_NAMES,
    Address,
    Flags,
    Folder,
    MessageDetail,
    MessageSummary,
    MimePart,
    UidEntry,
    WellKnownFolder,
)

SUMMARY_COLUMNS = """
    m.id, m.folder_id, m.uid, m.modseq, m.received_at,
    m.seen, m.answered, m.flagged, m.deleted, m.draft,
    c.size, c.subject, c.from_json, c.to_json, c.cc_json, c.sent_at,
    c.internet_message_id, c.has_attachments, c.preview
"""
DETAIL_COLUMNS = (
    SUMMARY_COLUMNS + ", c.bcc_json, c.reply_to_json, c.in_reply_to, c.header_size, c.structure"
)


@dataclass(frozen=True)
class MailboxRow:
    id: int
    name: str


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


def addresses_json(addresses: Sequence[Address] | None) -> str | None:
    if addresses is None:
        return None
    return json.dumps([[a.name, a.address] for a in addresses], ensure_ascii=False)


def addresses(text: str | None) -> list[Address]:
    if not text:
        return []
    return [Address(name=name, address=address) for name, address in json.loads(text)]


def to_flags(row: sqlite3.Row) -> Flags:
    return Flags(**{name: bool(row[name]) for name in FLAG_NAMES})


def folder_counts(conn: sqlite3.Connection, box: MailboxRow) -> dict[int, tuple[int, int, int]]:
    """Each folder's messages, unread messages and their bytes."""
    rows = conn.execute(
        "SELECT m.folder_id, COUNT(*), SUM(m.seen = 0), SUM(c.size) FROM messages m "
        "JOIN contents c ON c.id = m.content_id WHERE m.mailbox_id=? GROUP BY m.folder_id",
        (box.id,),
    ).fetchall()
    return {int(r[0]): (int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows}


def to_folder(
    row: sqlite3.Row, path: str, counts: tuple[int, int, int], ipm: bool = True
) -> Folder:
    well_known = None if row["well_known"] is None else WellKnownFolder(row["well_known"])
    return Folder(
        id=int(row["id"]),
        parent_id=None if row["parent_id"] is None else int(row["parent_id"]),
        name=str(row["name"]),
        path=path,
        well_known=well_known,
        total=counts[0],
        unread=counts[1],
        size=counts[2],
        uidvalidity=int(row["uidvalidity"]),
        uidnext=int(row["uidnext"]),
        modseq=int(row["modseq"]),
        system=row["system"],
        folder_class=well_known.folder_class if well_known else str(row["folder_class"]),
        ipm=ipm,
    )


def _summary_fields(row: sqlite3.Row) -> dict[str, Any]:
    senders = addresses(row["from_json"])
    return {
        "id": int(row["id"]),
        "folder_id": int(row["folder_id"]),
        "uid": int(row["uid"]),
        "modseq": int(row["modseq"]),
        "received_at": from_us(int(row["received_at"])),
        "size": int(row["size"]),
        "subject": str(row["subject"]),
        "from_address": senders[0] if senders else None,
        "to": addresses(row["to_json"]),
        "cc": addresses(row["cc_json"]),
        "sent_at": None if row["sent_at"] is None else from_us(int(row["sent_at"])),
        "internet_message_id": row["internet_message_id"],
        "has_attachments": bool(row["has_attachments"]),
        "preview": str(row["preview"]),
        "flags": to_flags(row),
    }


def to_summary(row: sqlite3.Row) -> MessageSummary:
    return MessageSummary(**_summary_fields(row))


def to_detail(row: sqlite3.Row) -> MessageDetail:
    return MessageDetail(
        **_summary_fields(row),
        bcc=addresses(row["bcc_json"]),
        reply_to=addresses(row["reply_to_json"]),
        in_reply_to=row["in_reply_to"],
        header_size=int(row["header_size"]),
        structure=MimePart.model_validate_json(row["structure"]),
    )


def to_uid_entry(row: sqlite3.Row) -> UidEntry:
    return UidEntry(
        uid=int(row["uid"]),
        message_id=int(row["id"]),
        flags=to_flags(row),
        modseq=int(row["modseq"]),
    )


def rows_by_uid(conn: sqlite3.Connection, folder_id: int, uids: Sequence[int]) -> list[sqlite3.Row]:
    out: list[sqlite3.Row] = []
    for start in range(0, len(uids), 500):  # below SQLite's bound-parameter limit
        batch = list(uids[start : start + 500])
        marks = ",".join("?" * len(batch))
        out += conn.execute(
            f"SELECT * FROM messages WHERE folder_id=? AND uid IN ({marks}) ORDER BY uid",
            (folder_id, *batch),
        ).fetchall()
    return out
