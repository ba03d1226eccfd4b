"""Meeting requests, cancellations and replies: iCalendar METHOD:REQUEST, CANCEL or REPLY
mailed through Mail Submission, as Exchange sends them when a meeting is saved with
``SendMeetingInvitations="SendOnlyToAll"`` or ``"SendToAllAndSaveCopy"`` (to the
attendees), deleted with cancellations, or answered (to the organizer,
:mod:`.ews_meeting_response`).

The message is ``multipart/alternative``: a text part for readers without
calendars, and ``text/calendar; method=REQUEST`` with the VEVENT
(:func:`~sitemail.mailbox.item_content.calendar_ical`), which calendar
clients act on.  It takes the way of every message sent from a mailbox:
saved in Drafts, then submitted (the Outbox), filed in Sent Items by Mail
Submission, or dropped there when no copy is wanted (IMAP's ``\\Deleted``
on the submitted message, as :mod:`.ews_items` does for ``SendOnly``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr

from sitemail.access.web.common import MailStore
from sitemail.mailbox.item_content import calendar_ical
from sitemail.mailbox.item_records import Attendee, CalendarData
from sitemail.mailbox.records import Flags, FlagUpdate
from sitemail.org.model import Mailbox

__all__ = ["meeting_message", "send_invitations"]


def meeting_message(
    organizer: Mailbox,
    item: CalendarData,
    *,
    now: datetime,
    method: str = "REQUEST",
    recipients: list[Attendee] | None = None,
) -> bytes:
    """The RFC 5322 meeting request (or cancellation) for ``item``'s attendees.

    ``organizer`` is the sender; ``recipients`` (a REPLY's organizer) replace the
    attendees as the message's recipients.
    """
    boundary = f"=_sitemail_{uuid.uuid4().hex}"
    people = item.required if recipients is None else recipients
    to = ", ".join(formataddr((a.name, a.address)) for a in people)
    cc = (
        ""
        if recipients is not None
        else ", ".join(formataddr((a.name, a.address)) for a in item.optional)
    )
    prefix = "Canceled: " if method == "CANCEL" else ""
    when = f"{item.start.astimezone(UTC):%A, %d %B %Y %H:%M}-{item.end.astimezone(UTC):%H:%M} UTC"
    text = (
        f"When: {when}\r\nWhere: {item.location}\r\n\r\n{item.body if not item.body_html else ''}"
    )
    headers = [
        f"From: {formataddr((organizer.display_name, organizer.primary_smtp_address))}",
        *([f"To: {to}"] if to else []),
        *([f"Cc: {cc}"] if cc else []),
        f"Subject: {prefix}{' '.join(item.subject.split())}",
        f"Date: {format_datetime(now.astimezone(UTC))}",
        f"Message-ID: <{uuid.uuid4().hex}@{organizer.primary_smtp_address.rpartition('@')[2]}>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    ical = calendar_ical(item, method=method, now=now)
    parts = [
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n",
        f"--{boundary}\r\nContent-Type: text/calendar; charset=utf-8; method={method}\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{ical}",
        f"--{boundary}--\r\n",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + "".join(parts)).encode("utf-8")


async def send_invitations(
    store: MailStore,
    organizer: Mailbox,
    item: CalendarData,
    *,
    now: datetime,
    save_copy: bool,
    method: str = "REQUEST",
) -> None:
    """Send ``item``'s meeting request (or cancellation) to its attendees."""
    if not item.is_meeting:
        return
    raw = meeting_message(organizer, item, now=now, method=method)
    placed = await store.append(organizer.alias, "drafts", raw, flags=Flags(draft=True, seen=True))
    if not save_copy:
        # Mail Submission drops a message flagged deleted instead of filing it.
        await store.set_flags(organizer.alias, placed.message_id, FlagUpdate(deleted=True))
    await store.submit(organizer.alias, placed.message_id)
