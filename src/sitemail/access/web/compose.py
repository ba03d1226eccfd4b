"""Turning OWA's compose form into an RFC 5322 message, and replies into their starting text.

The message is what OWA saves in Drafts and then submits: From is the
signed-in mailbox (never a form field), recipients come from To/Cc/Bcc, and
Bcc stays in the draft as a header so that the Mail Submission service can
address it (a hub removes it before delivery, as Exchange does).  Replies
carry In-Reply-To and References, a "RE: " subject and the quoted original.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses

from sitemail.mailbox.records import Address, MessageDetail
from sitemail.org.model import Mailbox

__all__ = [
    "MAX_BODY",
    "MAX_RECIPIENTS",
    "MAX_SUBJECT",
    "ComposeError",
    "Draft",
    "build_message",
    "parse_recipients",
    "reply_draft",
]

MAX_RECIPIENTS = 500
MAX_SUBJECT = 255
MAX_BODY = 1024 * 1024

# An addr-spec without quoting or comments: what a person types in OWA's To box.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}")


class ComposeError(ValueError):
    """The form cannot become a message; the text says what to fix."""


@dataclass(frozen=True)
class Draft:
    """What the compose form shows or received."""

    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: int | None = None  # the message id (in the store) being answered


def parse_recipients(text: str) -> list[tuple[str, str]]:
    """``"Adam <adam@contoso.com>; bob@contoso.com"`` -> [(name, address), ...]."""
    # OWA separates recipients with ";"; email.utils understands ",".
    entries = getaddresses([text.replace(";", ",")])
    out: list[tuple[str, str]] = []
    for name, address in entries:
        if not name and not address:
            continue
        if not _ADDRESS.fullmatch(address):
            shown = address or name
            raise ComposeError(f"{shown[:100]!r} is not an e-mail address (name@domain).")
        out.append((_one_line(name), address.lower()))
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _header_addresses(pairs: list[tuple[str, str]]) -> list[HeaderAddress]:
    return [HeaderAddress(display_name=name, addr_spec=address) for name, address in pairs]


def build_message(
    sender: Mailbox,
    draft: Draft,
    *,
    now: datetime,
    references: list[str] | None = None,
    in_reply_to: str | None = None,
    html: bool = False,
    mailer: str = "sitemail Outlook Web App",
    unsent: bool = False,
) -> bytes:
    """The message bytes for ``draft``, from ``sender``; ComposeError when it cannot be sent.

    ``html`` says the body is HTML (EWS clients write either); ``unsent``
    builds a draft that is only saved, which may have no recipient yet.
    """
    to = parse_recipients(draft.to)
    cc = parse_recipients(draft.cc)
    bcc = parse_recipients(draft.bcc)
    if not (to or cc or bcc or unsent):
        raise ComposeError("Add at least one recipient in To, Cc or Bcc.")
    if len(to) + len(cc) + len(bcc) > MAX_RECIPIENTS:
        raise ComposeError(f"A message can have at most {MAX_RECIPIENTS} recipients.")
    subject = _one_line(draft.subject)
    if len(subject) > MAX_SUBJECT:
        raise ComposeError(f"The subject is longer than {MAX_SUBJECT} characters.")
    if len(draft.body) > MAX_BODY:
        raise ComposeError("The message text is too long.")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = HeaderAddress(
        display_name=sender.display_name, addr_spec=sender.primary_smtp_address
    )
    if to:
        msg["To"] = _header_addresses(to)
    if cc:
        msg["Cc"] = _header_addresses(cc)
    if bcc:
        msg["Bcc"] = _header_addresses(bcc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    domain = sender.primary_smtp_address.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{domain}>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = " ".join([*(references or []), in_reply_to][-20:])
    msg["X-Mailer"] = mailer
    body = draft.body.replace("\r\n", "\n").replace("\r", "\n")
    # Quoted-printable keeps non-ASCII text intact through any SMTP hop (no 8BITMIME needed).
    cte = (
        "7bit"
        if body.isascii() and all(len(x) <= 998 for x in body.split("\n"))
        else "quoted-printable"
    )
    msg.set_content(body, subtype="html" if html else "plain", charset="utf-8", cte=cte)
    return msg.as_bytes()


def _who(address: Address | None) -> str:
    if address is None:
        return ""
    return f"{address.name} <{address.address}>" if address.name else address.address


def _list(addresses: list[Address]) -> str:
    return "; ".join(_who(a) for a in addresses)


def reply_draft(
    original: MessageDetail,
    original_text: str,
    *,
    me: Mailbox,
    mode: str,
    signature: str = "",
) -> Draft:
    """The starting compose form for Reply, ReplyAll or Forward of ``original``."""
    subject = original.subject or ""
    prefix = "FW: " if mode == "Forward" else "RE: "
    if not subject.upper().startswith(prefix.strip().upper()):
        subject = prefix + subject
    sent = original.sent_at or original.received_at
    header = [
        "",
        "",
        signature,
        "________________________________________",
        f"From: {_who(original.from_address)}",
        f"Sent: {sent:%A, %B %d, %Y %H:%M}",
        f"To: {_list(original.to)}",
    ]
    if original.cc:
        header.append(f"Cc: {_list(original.cc)}")
    header += [f"Subject: {original.subject}", "", original_text]
    body = "\n".join(header)
    if mode == "Forward":
        return Draft(subject=subject, body=body)
    reply_to = original.reply_to or ([original.from_address] if original.from_address else [])
    to = _list(reply_to)
    cc = ""
    if mode == "ReplyAll":
        mine = {a.casefold() for a in me.all_addresses}
        seen = {a.address.casefold() for a in reply_to} | mine
        others = [a for a in [*original.to, *original.cc] if a.address.casefold() not in seen]
        cc = _list(others)
    return Draft(to=to, cc=cc, subject=subject, body=body, in_reply_to=original.id)
