"""The messages an Inbox rule's ForwardToRecipients and ForwardAsAttachmentToRecipients send.

A forward is a new message from the mailbox to the rule's recipients
(``FW:`` and the original's subject), sent through the Outbox by Mail
Submission like any message the user sends.  ForwardAsAttachmentToRecipients
attaches the original whole (``message/rfc822``); ForwardToRecipients puts a
short header of the original (From, Sent, To, Subject) above its text when
the original is plain text, and attaches it otherwise (sitemail does not
re-render HTML bodies inline).

Every forward carries ``X-MS-Exchange-Inbox-Rules-Loop`` with the mailbox's
address, as Exchange's do; a delivered message that already carries the
mailbox's own address there is not forwarded again, so two mailboxes
forwarding to each other do not loop.  RedirectToRecipients (the original
re-sent as it is, with its own sender) is not acted on: Mail Submission
sends only in the mailbox's name.
"""

from __future__ import annotations

import email.policy
import uuid
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime

__all__ = ["LOOP_HEADER", "MAX_FORWARDED", "forward_message", "forwarded_before"]

LOOP_HEADER = "X-MS-Exchange-Inbox-Rules-Loop"
#: The largest message a rule forwards (the organization's default MaxSendSize, 10 MB).
MAX_FORWARDED = 10 * 1024 * 1024


def forwarded_before(header: Message, owner_addresses: tuple[str, ...]) -> bool:
    """Whether a rule of this mailbox forwarded this message already."""
    seen = {v.strip().lower() for v in header.get_all(LOOP_HEADER) or []}
    return bool(seen & {a.lower() for a in owner_addresses})


def forward_message(
    original: bytes, owner: str, recipients: list[str], *, as_attachment: bool, now: datetime
) -> bytes:
    """The forward of ``original`` from ``owner`` to ``recipients``."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(original)
    forward = EmailMessage(policy=email.policy.SMTP)
    forward["From"] = owner
    forward["To"] = ", ".join(recipients)
    subject = " ".join(str(parsed.get("Subject") or "").split())
    forward["Subject"] = f"FW: {subject}"[:998]
    forward["Date"] = format_datetime(now)
    forward["Message-ID"] = f"<{uuid.uuid4().hex}@{owner.rpartition('@')[2] or 'localhost'}>"
    for earlier in parsed.get_all(LOOP_HEADER) or []:
        forward[LOOP_HEADER] = str(earlier)
    forward[LOOP_HEADER] = owner
    plain = parsed.get_content_type() == "text/plain" and not parsed.is_multipart()
    if as_attachment or not plain:
        forward.set_content("")
        forward.add_attachment(parsed)  # message/rfc822
        return forward.as_bytes()
    lines = [
        "-----Original Message-----",
        f"From: {parsed.get('From', '')}",
        f"Sent: {parsed.get('Date', '')}",
        f"To: {parsed.get('To', '')}",
        f"Subject: {subject}",
        "",
    ]
    try:
        text = str(parsed.get_content())
    except (LookupError, ValueError):
        text = ""
    forward.set_content("\n".join(lines) + "\n" + text)
    return forward.as_bytes()
