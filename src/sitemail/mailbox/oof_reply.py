"""Automatic replies at delivery: whether a delivered message gets one, and the reply itself.

Exchange 2010's store answers a message delivered while its mailbox's
automatic replies are on: once per sender for as long as the settings stay
as they are, with the internal reply to senders of the organization's
domains and the external one to others (ExternalAudience: None answers no
one outside, Known only the senders in the mailbox's Contacts, All
everyone).  RFC 3834's rules keep it from answering machines and lists:
no reply to a message without a sender, to one marked Auto-Submitted, to
bulk, list or junk mail (Precedence, List-Id, List-Unsubscribe), to a
delivery or read report (multipart/report), to postmaster, MAILER-DAEMON and
list addresses (owner-*, *-request), nor to the mailbox itself.

The delivery's header is read from the message's bytes: the store's
summary has no Auto-Submitted or Precedence.  The reply is marked
``Auto-Submitted: auto-replied`` (RFC 3834) and ``X-Auto-Response-Suppress``
(Exchange's), so that no responder answers it back.
"""

from __future__ import annotations

import email.policy
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import format_datetime, formataddr

from sitemail.mailbox.mailbox_settings import OofSettings

__all__ = [
    "MAX_HEADER_READ",
    "OofContext",
    "oof_audience",
    "oof_reply_message",
    "parse_header",
    "reply_wanted",
]

#: Most header bytes read to decide (a header larger than this is not answered).
MAX_HEADER_READ = 64 * 1024
_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post", "Mailing-List")
_MACHINES = ("postmaster", "mailer-daemon", "majordomo", "listserv", "noreply", "no-reply")


@dataclass(frozen=True)
class OofContext:
    """Who the mailbox is: its primary address, display name, and every address it has."""

    address: str
    name: str
    addresses: tuple[str, ...]
    internal_domains: tuple[str, ...]


def parse_header(data: bytes) -> Message:
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)


def reply_wanted(header: Message, sender: str, owner: OofContext) -> bool:
    """RFC 3834 section 2: whether a responder may answer this message at all."""
    sender = sender.strip().lower()
    local, _, domain = sender.rpartition("@")
    if not local or not domain or sender in owner.addresses:
        return False
    if local in _MACHINES or local.startswith("owner-") or local.endswith("-request"):
        return False
    if (header.get("Auto-Submitted") or "no").strip().lower() != "no":
        return False
    if (header.get("Precedence") or "").strip().lower() in ("bulk", "list", "junk"):
        return False
    if any(header.get(name) is not None for name in _LIST_HEADERS):
        return False
    suppress = (header.get("X-Auto-Response-Suppress") or "").lower()
    if "oof" in suppress or "all" in suppress.split(","):
        return False
    content_type = (header.get("Content-Type") or "").strip().lower()
    return not content_type.startswith("multipart/report")


def oof_audience(
    settings: OofSettings, sender: str, owner: OofContext, *, known: bool
) -> str | None:
    """The reply text this sender gets (None: none), by internal or external audience."""
    domain = sender.rpartition("@")[2].lower()
    if domain in owner.internal_domains:
        text = settings.internal_reply
    elif settings.external_audience == "All" or (settings.external_audience == "Known" and known):
        text = settings.external_reply
    else:
        return None
    return text if text.strip() else None


def oof_reply_message(
    header: Message, sender: str, owner: OofContext, text: str, now: datetime
) -> bytes:
    """The automatic reply to the message whose header is ``header``."""
    reply = EmailMessage(policy=email.policy.SMTP)
    reply["From"] = formataddr((owner.name, owner.address))
    reply["To"] = sender
    subject = " ".join((header.get("Subject") or "").split())
    reply["Subject"] = f"Automatic reply: {subject}"[:998]
    reply["Date"] = format_datetime(now)
    domain = owner.address.rpartition("@")[2] or "localhost"
    reply["Message-ID"] = f"<{uuid.uuid4().hex}@{domain}>"
    original = (header.get("Message-ID") or "").strip()
    if original.startswith("<") and original.endswith(">") and len(original) < 998:
        reply["In-Reply-To"] = original
        reply["References"] = original
    reply["Auto-Submitted"] = "auto-replied"
    reply["X-Auto-Response-Suppress"] = "All"
    reply.set_content(text)
    return reply.as_bytes()
