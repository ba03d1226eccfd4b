"""What the Mail Submission service sends for a message in an Outbox, as pure functions.

A message a user composed carries its recipients in its header: the
envelope comes from To, Cc and Bcc, and the Bcc fields are taken out of the
bytes that leave the mailbox server (the Bcc recipients must not learn of
each other, nor the others of them).  The sender is the From address when
it is one of the owner's own addresses, else the owner's primary address:
a user cannot make the hub relay in someone else's name.

Headers only the organization may write (``X-MS-Exchange-Organization-*``,
``X-MS-Exchange-Forest-*``) are removed too: the service authenticates to
the hub as an Exchange server, and the hub's header firewall keeps such
headers from servers, so a user could otherwise forge them.  A missing
Message-ID (and Date) is added, as Exchange does on submission; the
Message-ID is derived from the message's identity in the store, so that a
submission repeated after a crash carries the same one.

Only the header section is rewritten: the body is sent as stored.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, getaddresses

#: The largest header section the service reads to find the recipients.
MAX_HEADER_SECTION = 256 * 1024

#: Fields that never leave the mailbox server as written by the user.
_DROPPED = re.compile(
    rb"(?i)(bcc|resent-bcc|x-ms-exchange-organization-[^:]*|x-ms-exchange-forest-[^:]*)$"
)
_RECIPIENT_FIELDS = ("to", "cc", "bcc")
# A namespace of sitemail's own for the Message-IDs it derives (any fixed UUID).
_MESSAGE_ID_NAMESPACE = uuid.UUID("5b0c3d5e-8d0a-4f0e-9a8e-3c1d2f6b7a91")


class SubmissionRefused(Exception):
    """The message cannot be submitted as it is (it is returned to its sender)."""


@dataclass(frozen=True, slots=True)
class PreparedSubmission:
    """The envelope and the header section to send, and where the stored body starts."""

    mail_from: str
    recipients: tuple[str, ...]
    message_id: str
    """``<...>``: the message's own, or the one added."""
    subject: str
    header: bytes
    """The header section to send, ending with its empty line."""
    body_offset: int
    """Offset in the stored message of the first octet after its header section."""


def _lines(data: bytes) -> list[bytes]:
    """Lines ended by LF (a bare CR is content, as in SMTP), each with its line end."""
    out, start = [], 0
    while start < len(data):
        lf = data.find(b"\n", start)
        stop = len(data) if lf < 0 else lf + 1
        out.append(data[start:stop])
        start = stop
    return out


def header_end(data: bytes) -> int | None:
    """Offset just past the empty line that ends the header section, or None if not in ``data``.

    A message that starts with an empty line has no header fields (offset
    of that line's end).
    """
    offset = 0
    for line in _lines(data):
        offset += len(line)
        if line in (b"\r\n", b"\n"):
            return offset
    return None


def split_fields(section: bytes) -> list[bytes]:
    """The fields of a header section, each with its continuation lines and line ends.

    The empty line at the end is not returned; text before the first field
    (a continuation line with nothing to continue) is kept as a field of its own.
    """
    fields: list[bytes] = []
    for line in _lines(section):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def field_name(field: bytes) -> bytes:
    name, colon, _ = field.partition(b":")
    return name.strip() if colon else b""


def field_value(field: bytes) -> str:
    """The unfolded value, decoded leniently (addresses are ASCII; the rest is kept)."""
    _, _, value = field.partition(b":")
    text = value.decode("utf-8", errors="replace")
    return re.sub(r"\r?\n(?=[ \t])", "", text).strip()


def derived_message_id(database: str, mailbox: str, store_id: int, created: str, fqdn: str) -> str:
    """A Message-ID that is the same every time the same stored message is submitted."""
    key = f"{database.casefold()}/{mailbox.casefold()}/{store_id}/{created}"
    return f"<{uuid.uuid5(_MESSAGE_ID_NAMESPACE, key).hex.upper()}@{fqdn}>"


def message_key(message_id: str) -> str:
    """How Message-IDs compare: without angle brackets or surrounding space, any case."""
    return message_id.strip().removeprefix("<").removesuffix(">").strip().casefold()


def prepare_submission(
    head: bytes,
    *,
    owner_addresses: Collection[str],
    owner_primary: str,
    fallback_message_id: str,
    now: datetime,
) -> PreparedSubmission:
    """The submission of a message whose stored bytes start with ``head``.

    ``head`` must hold the whole header section (at most
    :data:`MAX_HEADER_SECTION` octets are looked at).  Raises
    :class:`SubmissionRefused` when the header section is too large or
    names no recipient.
    """
    window = head[:MAX_HEADER_SECTION]
    end = header_end(window)
    if end is None:
        if len(head) >= MAX_HEADER_SECTION:
            raise SubmissionRefused(
                f"the message's header section is larger than {MAX_HEADER_SECTION} bytes"
            )
        # Headers only, without the empty line: the whole message is its header.
        end = len(head)
    fields = split_fields(head[:end])
    values: dict[str, list[str]] = {}
    kept: list[bytes] = []
    for f in fields:
        name = field_name(f)
        values.setdefault(name.decode("ascii", errors="replace").casefold(), []).append(
            field_value(f)
        )
        if not _DROPPED.match(name):
            kept.append(f if f.endswith(b"\n") else f + b"\r\n")
    recipients = _recipients(values)
    if not recipients:
        raise SubmissionRefused("the message has no recipient in To, Cc or Bcc")
    message_id = (values.get("message-id") or [""])[0].strip()
    if not message_id:
        message_id = fallback_message_id
        kept.append(f"Message-ID: {message_id}\r\n".encode("ascii"))
    if not values.get("date"):
        kept.append(f"Date: {format_datetime(now)}\r\n".encode("ascii"))
    return PreparedSubmission(
        mail_from=_sender(values, owner_addresses, owner_primary),
        recipients=recipients,
        message_id=message_id,
        subject=(values.get("subject") or [""])[0],
        header=b"".join(kept) + b"\r\n",
        body_offset=end,
    )


def _addresses(values: list[str]) -> list[str]:
    found = []
    for _, address in getaddresses(values):
        address = address.strip()
        local, at, domain = address.rpartition("@")
        if at and local and domain and not any(c.isspace() for c in address):
            found.append(address)
    return found


def _recipients(values: dict[str, list[str]]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for name in _RECIPIENT_FIELDS:
        for address in _addresses(values.get(name, [])):
            seen.setdefault(address.casefold(), address)
    return tuple(seen.values())


def _sender(values: dict[str, list[str]], owner: Collection[str], primary: str) -> str:
    own = {a.casefold().removeprefix("smtp:") for a in owner}
    for address in _addresses(values.get("from", [])):
        if address.casefold() in own:
            return address
    return primary
