"""An Inbox rule's AssignCategories and MarkImportance on a delivered message's header.

The store keeps what EWS shows as a message's categories and importance in
its MIME header, as sitemail's EWS writes them (``Keywords``, the categories
joined by commas; ``Importance: high|low``, Normal being none, with Outlook's
``X-Priority`` taken out): a rule that marks a message rewrites those fields
of the header section before the message is stored; the body is not touched.
"""

from __future__ import annotations

from email.header import Header

from sitemail.mailbox.submission_envelope import field_name, field_value, split_fields

__all__ = ["MAX_MARKED", "marked"]

#: The largest message whose header a rule rewrites (a larger one is stored as it came).
MAX_MARKED = 32 * 1024 * 1024
_IMPORTANCE = {"High": "high", "Low": "low"}


def marked(
    data: bytes, header_size: int, categories: tuple[str, ...], importance: str | None
) -> bytes:
    """``data`` with the rules' categories added and importance set."""
    fields = split_fields(data[:header_size])
    kept: list[bytes] = []
    existing: list[str] = []
    for field in fields:
        name = field_name(field).decode("ascii", errors="replace").casefold()
        if name == "keywords" and categories:
            existing += [k.strip() for k in field_value(field).split(",") if k.strip()]
            continue
        if name in ("importance", "x-priority") and importance is not None:
            continue
        kept.append(field if field.endswith(b"\n") else field + b"\r\n")
    if categories:
        merged = list(dict.fromkeys([*existing, *categories]))
        kept.append(_field("Keywords", ", ".join(merged)))
    if importance in _IMPORTANCE:
        kept.append(_field("Importance", _IMPORTANCE[importance]))
    return b"".join(kept) + b"\r\n" + data[header_size:]


def _field(name: str, value: str) -> bytes:
    # Categories are the user's words: anything but ASCII goes as an RFC 2047 word.
    text = Header(value, "utf-8").encode() if not value.isascii() else value
    return f"{name}: {text}\r\n".encode("ascii")
