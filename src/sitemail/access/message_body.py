"""A stored message's body as a mobile or web-services client is given it (EWS, ActiveSync).

The store keeps messages as MIME; clients that are not MIME readers get the
body part: the HTML part when there is one, else the plain-text part, never
an attachment.  Its bytes are decoded with the part's charset (UTF-8 when
the charset is missing or unknown).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Protocol

from sitemail.mailbox.records import MessageDetail, MimePart

__all__ = ["MAX_BODY", "Body", "PartReader", "body_part", "read_body"]

#: A body longer than this is cut (clients are told it was truncated).
MAX_BODY = 4 * 1024 * 1024


class PartReader(Protocol):
    async def read_part(self, mailbox: str, message_id: int, part_id: str) -> bytes: ...


@dataclass(frozen=True)
class Body:
    html: bool
    text: str
    truncated: bool = False


def _is_attachment(part: MimePart) -> bool:
    return (
        (part.disposition or "").lower() == "attachment"
        or bool(part.filename)
        or part.content_type == "message/rfc822"
    )


def body_part(structure: MimePart) -> MimePart | None:
    """The part a reader shows as the body: HTML first, then plain text."""
    leaves = [p for p in structure.walk() if not p.is_multipart and not _is_attachment(p)]
    for wanted in ("text/html", "text/plain"):
        for part in leaves:
            if part.content_type == wanted:
                return part
    return None


def _decode(data: bytes, charset: str | None) -> str:
    name = (charset or "utf-8").strip().lower()
    try:
        codecs.lookup(name)
    except LookupError:
        name = "utf-8"
    return data.decode(name, errors="replace")


async def read_body(store: PartReader, alias: str, detail: MessageDetail) -> Body:
    """The decoded body of ``detail`` (empty plain text when the message has none)."""
    part = body_part(detail.structure)
    if part is None:
        return Body(html=False, text="")
    data = await store.read_part(alias, detail.id, part.part_id)
    truncated = len(data) > MAX_BODY
    return Body(
        html=part.content_type == "text/html",
        text=_decode(data[:MAX_BODY], part.charset),
        truncated=truncated,
    )
