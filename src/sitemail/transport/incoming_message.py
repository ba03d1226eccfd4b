"""A message an SMTP server is receiving: the header section in memory, the rest on the spool.

Shared by every SMTP server of sitemail (the hub's receive session and the
plain MTAs of :mod:`sitemail.mta`): the body streams to a
:class:`~sitemail.mailflow.envelope.SpoolWriter` in bounded memory; only the header
section is held until it is complete (or too long), because the server
stamps it (Received, Message-ID...) before it goes to the spool.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sitemail.mailflow.envelope import SpoolWriter
from sitemail.transport.headers import (
    HeaderSection,
    decoded_subject,
    message_id_of,
    new_message_id,
    parse_header_section,
)

#: The header section, complete (or cut at the limit), and the octets after it.
Head = tuple[HeaderSection, bytes]


@dataclass
class IncomingMessage:
    spool: SpoolWriter
    head: bytearray = field(default_factory=bytearray)  # until the header section is complete
    head_done: bool = False  # the header section went to the spool
    message_id: str = ""
    subject: str = ""
    hops: int = 0
    received: int = 0  # octets of the client's message (not counting what we add)
    discarding: bool = False  # over the size limit: read on, keep nothing

    def take(self, data: bytes, *, limit: int | None, max_header_size: int) -> Head | None:
        """Add octets of the message; the header section once it is there to be stamped.

        Over ``limit`` the message is read on to its end (the 552 comes then)
        and nothing more is kept.
        """
        if self.discarding:
            return None
        self.received += len(data)
        if limit is not None and self.received > limit:
            self.discarding = True
            return None
        if self.head_done:
            self.spool.write(data)
            return None
        self.head += data
        section, rest = parse_header_section(bytes(self.head))
        if section.complete or len(self.head) > max_header_size:
            return section, rest
        return None

    def unfinished_head(self) -> Head | None:
        """At end of data, a header section that never ended (no body), to stamp now."""
        if self.head_done or self.discarding:
            return None
        return parse_header_section(bytes(self.head))

    def stamp_head(self, section: HeaderSection, rest: bytes, *, stamp: bytes, fqdn: str) -> None:
        """The header section is complete: note its hops, subject and Message-ID, and spool
        ``stamp`` (the server's Received and other fields) and the section ahead of the body.

        The id names the message in the queue and in mailbox delivery ids: a field
        without a usable ``<...>`` id keeps its text, and the message is named anew
        (a second Message-ID field would break RFC 5322); a missing one is added.
        """
        self.hops = section.count("Received")
        header = section.get("Message-ID")
        message_id = message_id_of(header)
        added = b""
        if message_id is None:
            message_id = new_message_id(fqdn)
            if header is None:
                added = f"Message-ID: {message_id}\r\n".encode()
        self.message_id, self.subject = message_id, decoded_subject(section)
        self.spool_head(stamp + section.to_bytes() + added + rest)

    def spool_head(self, stamped: bytes) -> None:
        """The stamped header section (and what followed it) goes to the spool first."""
        self.spool.write(stamped)
        self.head = bytearray()
        self.head_done = True
