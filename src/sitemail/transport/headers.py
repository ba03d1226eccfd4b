"""The header section of a message as the receive connector handles it.

The body streams to disk; only the header section (bounded by MaxHeaderSize)
is held in memory, long enough to:

- count ``Received:`` headers against MaxHopCount,
- apply the header firewall (spec 1.4): ``X-MS-Exchange-Organization-*`` kept
  only with Accept-Headers-Organization, ``X-MS-Exchange-Forest-*`` only with
  Accept-Headers-Forest, ``Received:``/``Resent-*`` only with
  Accept-Headers-Routing,
- read Message-ID and Subject (for the 250 reply and message tracking),
- prepend Exchange's own ``Received:`` and organization headers.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from pathlib import Path

from sitemail.transport.greeting import banner_date
from sitemail.transport.permissions import Right

EXCHANGE_BUILD = "14.3.123.4"


@dataclass
class Header:
    name: str
    raw: bytes  # the whole field, folded lines and CRLF included

    @property
    def value(self) -> str:
        text = self.raw.decode("utf-8", errors="replace")
        _, _, value = text.partition(":")
        return " ".join(value.split())


@dataclass
class HeaderSection:
    headers: list[Header] = field(default_factory=list)
    complete: bool = False  # the empty line (or the first non-header line) was seen

    def get(self, name: str) -> str | None:
        lname = name.lower()
        for h in self.headers:
            if h.name.lower() == lname:
                return h.value
        return None

    def count(self, name: str) -> int:
        lname = name.lower()
        return sum(1 for h in self.headers if h.name.lower() == lname)

    def to_bytes(self) -> bytes:
        return b"".join(h.raw for h in self.headers)


def parse_header_section(data: bytes) -> tuple[HeaderSection, bytes]:
    """Split ``data`` (the start of a message) into its header section and the rest.

    The rest keeps the empty line at its start, so ``section.to_bytes() + rest``
    is the message again.  ``complete`` is False when ``data`` ends inside the
    header section (the caller then needs more bytes, up to MaxHeaderSize).
    """
    section = HeaderSection()
    pos = 0
    n = len(data)
    current: bytearray | None = None
    current_name = ""
    while pos < n:
        end = data.find(b"\n", pos)
        if end < 0:
            break  # an unfinished line: not a complete section
        line = data[pos : end + 1]
        if line in (b"\r\n", b"\n"):
            if current is not None:
                section.headers.append(Header(current_name, bytes(current)))
            section.complete = True
            return section, data[pos:]
        if line[:1] in (b" ", b"\t") and current is not None:
            current += line  # folded continuation
        else:
            colon = line.find(b":")
            name = line[:colon].decode("latin-1") if colon > 0 else ""
            if colon <= 0 or not name.strip() or " " in name.strip():
                # Not a header line: the body starts here without a blank line.
                if current is not None:
                    section.headers.append(Header(current_name, bytes(current)))
                section.complete = True
                return section, data[pos:]
            if current is not None:
                section.headers.append(Header(current_name, bytes(current)))
            current, current_name = bytearray(line), name.strip()
        pos = end + 1
    if current is not None:
        section.headers.append(Header(current_name, bytes(current)))
    return section, data[pos:]


def apply_header_firewall(section: HeaderSection, rights: Right) -> int:
    """Remove the headers this session may not set; return how many were removed."""
    keep: list[Header] = []
    for h in section.headers:
        lname = h.name.lower()
        if lname.startswith("x-ms-exchange-organization-") and (
            Right.AcceptOrganizationHeaders not in rights
        ):
            continue
        if lname.startswith("x-ms-exchange-forest-") and Right.AcceptForestHeaders not in rights:
            continue
        if (lname == "received" or lname.startswith("resent-")) and (
            Right.AcceptRoutingHeaders not in rights
        ):
            continue
        keep.append(h)
    removed = len(section.headers) - len(keep)
    section.headers = keep
    return removed


#: Header fields that stay inside the organization (spec 1.4, the header firewall).
ORGANIZATION_PREFIXES = ("x-ms-exchange-organization-", "x-ms-exchange-forest-")
#: A header section longer than this is passed on untouched (no message has one; the
#: receive side bounds it far lower, MaxHeaderSize).
MAX_SCANNED_HEADER = 1024 * 1024


def without_organization_headers(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The message octets in ``chunks`` with the organization's own header fields removed:
    the header firewall on the way out of the organization.  Exchange's send connectors
    to the Internet hold no Send-Headers-Organization / -Forest permission, so these
    fields (AuthSource, AuthAs...) never reach another organization."""
    head = bytearray()
    source = iter(chunks)
    for chunk in source:
        head += chunk
        section, rest = parse_header_section(bytes(head))
        if section.complete or len(head) > MAX_SCANNED_HEADER:
            break
    else:
        section, rest = parse_header_section(bytes(head))
    if section.complete:
        section.headers = [
            h for h in section.headers if not h.name.lower().startswith(ORGANIZATION_PREFIXES)
        ]
        yield section.to_bytes() + rest
    else:
        yield bytes(head)
    yield from source


#: Octets read from a spool file to find its Date field.
_DATE_SCAN = 64 * 1024


def delivered_to_key(message_id: str, submit_time: str, address: str) -> str:
    """The mailbox's duplicate key for one recipient: what Exchange's store looks at, the
    Internet Message-ID and the client submit time (the Date field), per mailbox.  Two
    messages with one Message-ID but different Date fields are both delivered; a second
    delivery of one message (a redelivery after a crash, two paths through the
    organization) is discarded and tracked as DUPLICATEDELIVER.  The time is hashed so
    that the key stays within the store's bound (``mailbox.limits.MAX_DELIVERY_ID``)."""
    stamp = hashlib.sha256(submit_time.encode()).hexdigest()[:16]
    return f"{message_id}:{stamp}:{address.lower()}"


def client_submit_time(source: Path | bytes) -> str:
    """:func:`submit_time_of` the message in the spool file ``source`` (or in memory)."""
    if isinstance(source, bytes):
        return submit_time_of(source[:_DATE_SCAN])
    with open(source, "rb") as f:
        return submit_time_of(f.read(_DATE_SCAN))


def submit_time_of(head: bytes) -> str:
    """The Date field of a message (``head``: its first octets), as a UTC time when it
    parses (so that two writings of one time are one), else as written; "" if none."""
    section, _ = parse_header_section(head[:_DATE_SCAN])
    raw = section.get("Date")
    if raw is None:
        return ""
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return raw
    if when.tzinfo is None:
        return raw
    return when.astimezone(UTC).isoformat()


def decoded_subject(section: HeaderSection) -> str:
    raw = section.get("Subject")
    if raw is None:
        return ""
    try:
        return str(make_header(decode_header(raw)))
    except (UnicodeDecodeError, LookupError, ValueError):
        return raw


def new_message_id(fqdn: str) -> str:
    return f"<{uuid.uuid4()}@{fqdn}>"


# A Message-ID longer than this is not used as the message's id: the id becomes part
# of a mailbox delivery id, which the store bounds (mailbox.limits.MAX_DELIVERY_ID, 512).
MAX_MESSAGE_ID = 250
_MESSAGE_ID = re.compile(rf"<[^<>\s]{{1,{MAX_MESSAGE_ID - 2}}}>")


def message_id_of(value: str | None) -> str | None:
    """The ``<...>`` part of a Message-ID field, or None when it has none usable."""
    if not value:
        return None
    found = _MESSAGE_ID.search(value)
    return found.group(0) if found else None


def received_header(
    helo: str,
    client_ip: str,
    fqdn: str,
    server_ip: str,
    when: datetime,
    *,
    tls: bool,
) -> bytes:
    """Exchange 2010's Received field for a message it accepted over SMTP."""
    how = "Microsoft SMTP Server (TLS)" if tls else "Microsoft SMTP Server"
    text = (
        f"Received: from {helo or client_ip} ({client_ip}) by {fqdn} ({server_ip})\r\n"
        f" with {how} id {EXCHANGE_BUILD}; {banner_date(when)}\r\n"
    )
    return text.encode("ascii", errors="replace")


def organization_headers(fqdn: str, auth_as: str) -> bytes:
    """What the receiving hub stamps for the rest of the organization.

    ``auth_as`` is ``Anonymous``, ``Internal`` (an Exchange server) or
    ``Authenticated`` (a user), as Exchange's AuthAs header says.
    """
    return (
        f"X-MS-Exchange-Organization-AuthSource: {fqdn}\r\n"
        f"X-MS-Exchange-Organization-AuthAs: {auth_as}\r\n"
    ).encode("ascii")
