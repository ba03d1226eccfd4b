"""Non-delivery reports and delay notifications (exchange-2010.md §5.5, RFC 3464).

Every report is a ``multipart/report; report-type=delivery-status`` message
with three parts:

1. ``text/plain`` in Exchange 2010's wording ("Delivery has failed to these
   recipients or groups:", "Diagnostic information for administrators:",
   "Generating server: ...", "Original message headers:"; or "Delivery is
   delayed to these recipients or groups:" for a delay DSN);
2. ``message/delivery-status`` (RFC 3464): Reporting-MTA, Arrival-Date, and
   per recipient Final-Recipient, Action (failed/delayed), Status,
   Diagnostic-Code;
3. ``text/rfc822-headers`` (RFC 6522): the headers of the original message.

The builders here are pure: the queue store gives them the original
message's facts and the clock's time, and submits the returned bytes as a
new message from the null sender ``<>``.  Whether a report may be sent at
all (never for a null-sender original; RFC 3461 NOTIFY) is
:func:`notify_allows`'s and the store's business.

The diagnostic line of each recipient follows the 2010 NDR: ``#<reply> ##``
for errors generated on this server (``#550 4.4.7 QUEUE.Expired; message
expired ##``) and ``Remote Server returned '<reply>'`` for a 5xx from the
next hop.  The one-line explanations for end users are sitemail's own
wording: the spec gives none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import quoprimime
from email.header import Header
from email.utils import format_datetime
from enum import StrEnum

CRLF = "\r\n"

# Exchange's own replies (spec §5.5; AckReason in the decompiled transport).
EXPIRED_REPLY = "550 4.4.7 QUEUE.Expired; message expired"
RECIPIENT_NOT_FOUND_REPLY = "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
DELAYED_REPLY = "400 4.4.7 Message delayed"
SUSPENDED_QUEUE_DELAY_REPLY = "400 4.0.0 Message delivery delayed due to a suspended delivery queue"
ADMIN_REMOVED_REPLY = "550 4.3.2 QUEUE.Admin; message deleted by administrative action"
POISON_ADMIN_REMOVED_REPLY = "550 4.3.2 QUEUE.PoisonAdmin; message deleted by administrative action"


def unreachable_expired_reply(reason: str) -> str:
    """Expiry of a message that waited in the Unreachable queue."""
    return (
        "550 4.4.7 QUEUE.Expired; message expired in unreachable destination queue. "
        f"Reason: {reason}"
    )


# The text for end users, by enhanced status code (sitemail's wording).
_EXPLANATIONS = {
    "5.1.1": "The e-mail address couldn't be found. Check the recipient's address "
    "and try sending the message again.",
    "4.4.7": "The message couldn't be delivered before it expired: the destination "
    "didn't accept it in time.",
    "4.3.2": "An administrator deleted the message before it could be delivered.",
}
_DEFAULT_EXPLANATION = "The message couldn't be delivered to this recipient."

_ENHANCED = re.compile(r"^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b")
_CODE = re.compile(r"^([245])\d\d\b")


class DsnAction(StrEnum):
    FAILED = "failed"
    DELAYED = "delayed"


def default_dsn_from(fqdn: str) -> str:
    """postmaster of the server's domain: ``EX01.contoso.com`` -> ``postmaster@contoso.com``."""
    _, _, domain = fqdn.partition(".")
    return f"postmaster@{domain or fqdn}"


def reply_status(reply: str) -> str:
    """The RFC 3463 status of a reply: its enhanced code, else one from its class.

    Exchange's own replies mix classes (``550 4.4.7``): the enhanced code wins,
    as in Exchange's delivery-status parts.
    """
    match = _ENHANCED.match(reply.strip())
    if match:
        return match.group(1)
    code = _CODE.match(reply.strip())
    return f"{code.group(1)}.0.0" if code else "5.0.0"


def notify_allows(notify: str | None, action: DsnAction) -> bool:
    """RFC 3461 NOTIFY: absent means failures and (at the MTA's choice) delays."""
    if notify is None or not notify.strip():
        return True
    words = {word.strip().upper() for word in notify.split(",")}
    if "NEVER" in words:
        return False
    return ("FAILURE" if action is DsnAction.FAILED else "DELAY") in words


@dataclass(frozen=True, slots=True)
class DsnRecipient:
    """One recipient in a report.

    ``reply`` is the status line (``550 4.4.7 QUEUE.Expired; message expired``);
    ``diagnostic`` the line under "Diagnostic information for administrators".
    ``original_recipient`` is the RFC 3461 ORCPT value as received
    (``rfc822;bob@contoso.com``).
    """

    address: str
    reply: str
    diagnostic: str
    original_recipient: str | None = None
    remote_mta: str | None = None

    @property
    def status(self) -> str:
        return reply_status(self.reply)


def local_failure(address: str, reply: str, *, orcpt: str | None = None) -> DsnRecipient:
    """A failure decided on this server: ``#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##``."""
    return DsnRecipient(address, reply, f"#{reply} ##", orcpt)


def remote_failure(
    address: str, reply: str, *, remote_mta: str | None = None, orcpt: str | None = None
) -> DsnRecipient:
    """A 5xx from the next hop: ``Remote Server returned '<reply>'``."""
    return DsnRecipient(address, reply, f"Remote Server returned '{reply}'", orcpt, remote_mta)


def delayed(address: str, reply: str = DELAYED_REPLY, *, orcpt: str | None = None) -> DsnRecipient:
    return DsnRecipient(address, reply, f"#{reply} ##", orcpt)


@dataclass(frozen=True, slots=True)
class OriginalMessage:
    """What a report says about the message it is about."""

    sender: str
    internet_message_id: str
    subject: str
    headers: bytes  # the original header block, as stored
    received_at: datetime
    envid: str | None = None


@dataclass(frozen=True, slots=True)
class ReportOrigin:
    """Who writes the report, and when."""

    generating_server: str  # FQDN: "Generating server:" and Reporting-MTA
    from_address: str  # the report's From: header
    date: datetime
    message_id: str  # "<...>" of the report itself


def build_ndr(
    original: OriginalMessage, recipients: Sequence[DsnRecipient], origin: ReportOrigin
) -> bytes:
    """A non-delivery report for ``recipients``."""
    if not recipients:
        raise ValueError("an NDR needs at least one failed recipient")
    lines = ["Delivery has failed to these recipients or groups:"]
    for i, rcpt in enumerate(recipients):
        if i:
            lines.append("")
        lines.append(rcpt.address)
        lines.append(_EXPLANATIONS.get(rcpt.status, _DEFAULT_EXPLANATION))
    lines.append("")
    lines.extend(_diagnostics(recipients, origin))
    return _report(
        original,
        recipients,
        origin,
        DsnAction.FAILED,
        subject=ndr_subject(original.subject),
        text_lines=lines,
        retry_until=None,
    )


def build_delay_dsn(
    original: OriginalMessage,
    recipients: Sequence[DsnRecipient],
    origin: ReportOrigin,
    *,
    retry_until: datetime,
) -> bytes:
    """A delay notification; ``retry_until`` is when the message will expire."""
    if not recipients:
        raise ValueError("a delay DSN needs at least one delayed recipient")
    lines = ["Delivery is delayed to these recipients or groups:"]
    lines.extend(f"{r.address} ({r.address})" for r in recipients)
    # One line: a decoded subject may hold a line end (and a boundary after it).
    lines.append(f"Subject: {_CONTROLS.sub(' ', original.subject)}")
    lines.append("This message hasn't been delivered yet. Delivery will continue to be attempted.")
    lines.append(
        "The server will keep trying to deliver this message for the next "
        f"{remaining_time_text(retry_until - origin.date)}. "
        "You'll be notified if the message can't be delivered by that time."
    )
    lines.append("")
    lines.extend(_diagnostics(recipients, origin))
    return _report(
        original,
        recipients,
        origin,
        DsnAction.DELAYED,
        subject=delay_subject(original.subject),
        text_lines=lines,
        retry_until=retry_until,
    )


def ndr_subject(subject: str) -> str:
    return f"Undeliverable: {subject}".rstrip()


def delay_subject(subject: str) -> str:
    # The 2010 samples have no space after the colon (§5.5).
    return f"Delivery delayed:{subject}"


def remaining_time_text(remaining: timedelta) -> str:
    """``1 days, 19 hours and 54 minutes`` (the 2010 delay DSN's own form)."""
    minutes = max(0, int(remaining.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days} days, {hours} hours and {mins} minutes"


def _diagnostics(recipients: Sequence[DsnRecipient], origin: ReportOrigin) -> list[str]:
    lines = [
        "Diagnostic information for administrators:",
        f"Generating server: {origin.generating_server}",
    ]
    for rcpt in recipients:
        lines.append(rcpt.address)
        lines.append(rcpt.diagnostic)
    lines.append("")
    lines.append("Original message headers:")
    return lines


def _report(
    original: OriginalMessage,
    recipients: Sequence[DsnRecipient],
    origin: ReportOrigin,
    action: DsnAction,
    *,
    subject: str,
    text_lines: list[str],
    retry_until: datetime | None,
) -> bytes:
    boundary = f"_000_{origin.message_id.strip('<>').split('@')[0]}_"
    original_headers = _crlf(original.headers).rstrip(b"\r\n") + b"\r\n"
    # The text part repeats the original headers after "Original message headers:".
    text = CRLF.join(text_lines) + CRLF + CRLF
    text_bytes = text.encode("utf-8") + original_headers
    head = [
        f"From: {origin.from_address}",
        f"To: {_angle(original.sender)}",
        f"Date: {format_datetime(origin.date)}",
        f"Subject: {_header_value(subject)}",
        f"Message-ID: {origin.message_id}",
    ]
    if original.internet_message_id:
        head.append(f"In-Reply-To: {original.internet_message_id}")
        head.append(f"References: {original.internet_message_id}")
    head += [
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
    ]
    parts = [
        _part("text/plain; charset=utf-8", text_bytes),
        _part(
            "message/delivery-status",
            _delivery_status(original, recipients, origin, action, retry_until),
        ),
        _part("text/rfc822-headers", original_headers),
    ]
    out = (CRLF.join(head) + CRLF + CRLF).encode("ascii")
    for part in parts:
        out += f"--{boundary}\r\n".encode("ascii") + part
    out += f"--{boundary}--\r\n".encode("ascii")
    return out


def _delivery_status(
    original: OriginalMessage,
    recipients: Sequence[DsnRecipient],
    origin: ReportOrigin,
    action: DsnAction,
    retry_until: datetime | None,
) -> bytes:
    fields = [f"Reporting-MTA: dns;{origin.generating_server}"]
    if original.envid:
        fields.append(f"Original-Envelope-Id: {original.envid}")
    fields.append(f"Arrival-Date: {format_datetime(original.received_at)}")
    blocks = [fields]
    for rcpt in recipients:
        block = []
        if rcpt.original_recipient:
            block.append(f"Original-Recipient: {rcpt.original_recipient}")
        block += [
            f"Final-Recipient: rfc822;{rcpt.address}",
            f"Action: {action.value}",
            f"Status: {rcpt.status}",
        ]
        if rcpt.remote_mta:
            block.append(f"Remote-MTA: dns;{rcpt.remote_mta}")
        block.append(f"Diagnostic-Code: smtp;{rcpt.reply}")
        if retry_until is not None:
            block.append(f"Will-Retry-Until: {format_datetime(retry_until)}")
        blocks.append(block)
    text = (CRLF + CRLF).join(CRLF.join(b) for b in blocks) + CRLF
    return text.encode("utf-8")


def _part(content_type: str, body: bytes) -> bytes:
    if body.isascii():
        encoding, payload = "7bit", body
    else:
        # Quoted-printable keeps the report 7-bit, so it relays through any hop.
        encoding = "quoted-printable"
        encoded = quoprimime.body_encode(body.decode("latin-1").replace("\r\n", "\n"), eol=CRLF)
        payload = encoded.encode("latin-1")
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
    return head.encode("ascii") + payload + b"\r\n"


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def _angle(address: str) -> str:
    return f"<{address}>"


# What str.splitlines() takes for a line end (email.header.Header splits on them: an
# original subject with a \x1e made the report's Subject two header lines), and the other
# control characters: each becomes a space.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def _header_value(value: str) -> str:
    # Header folds long values and encodes non-ASCII ones (RFC 2047).
    value = _CONTROLS.sub(" ", value)
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, header_name="Subject").encode(linesep=CRLF)
