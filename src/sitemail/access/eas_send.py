"""ActiveSync SendMail: a device sends a MIME message, which leaves through Mail Submission.

EAS 14.0 and 14.1 send a WBXML ``ComposeMail:SendMail`` holding the
``ClientId`` the device gave the message, ``SaveInSentItems`` (an empty
element: present means keep a copy) and the message itself in ``Mime``;
EAS 2.x and 12.x send the MIME as the request body (``message/rfc822``) with
``SaveInSent=T`` in the query (MS-ASCMD 2.2.1.17).  Either way the message
takes OWA's and EWS's way out (:mod:`.ews_items`): saved in Drafts, then
submitted (moved to the Outbox), and the Mail Submission service hands it
to a hub and files it in Sent Items, or drops it when the device asked for
no copy (flagged deleted, MAPI's delete-after-submit).

Success is HTTP 200 with an empty body.  A 14.x failure is a
``ComposeMail:SendMail`` with a ``Status`` of MS-ASCMD's common codes; an
older device, which has no such element, gets an HTTP error with a sentence.
A ``ClientId`` the device already sent is not sent twice (a device resends
when the answer to its first try was lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import Protocol

from sitemail.access.eas_state import SyncStates
from sitemail.mailbox.records import Flags, FlagUpdate, MessageSummary, Placement, WellKnownFolder
from sitemail.protocols.wbxml import Element, el

__all__ = [
    "MAX_MIME",
    "EasSendStore",
    "Outgoing",
    "SendRefused",
    "refusal",
    "send_mail",
    "send_mail_request",
]

#: The largest message a device may send (the size EWS's CreateItem accepts).
MAX_MIME = 32 * 1024 * 1024

# MS-ASCMD 2.2.2 common status codes (numbers and names as recalled from the page,
# which was not at hand to check: unverified).
STATUS_INVALID_XML = 103  # unverified
STATUS_INVALID_MIME = 107  # unverified
STATUS_PREVIOUSLY_SENT = 118  # unverified
STATUS_NO_RECIPIENT = 119  # unverified


class EasSendStore(Protocol):
    """The part of the store API SendMail uses."""

    async def append(
        self, mailbox: str, folder: int | str, message: bytes, *, flags: Flags | None = None
    ) -> Placement: ...

    async def set_flags(
        self, mailbox: str, message_id: int, update: FlagUpdate
    ) -> MessageSummary: ...

    async def submit(self, mailbox: str, message_id: int) -> Placement: ...


@dataclass(frozen=True)
class SendRefused(Exception):
    """The message is not sent: MS-ASCMD's status and a sentence for older devices."""

    status: int
    reason: str


@dataclass(frozen=True)
class Outgoing:
    client_id: str | None  # None for a pre-14.0 device, which sends none
    mime: bytes
    save_copy: bool


def send_mail_request(request: Element) -> Outgoing:
    """What a 14.x ``ComposeMail:SendMail`` asks for; SendRefused if it is not one."""
    if not request.is_named("ComposeMail:SendMail"):
        raise SendRefused(STATUS_INVALID_XML, "the request is not a ComposeMail SendMail")
    client_id = (request.findtext("ClientId") or "").strip()
    mime = request.find("Mime")
    if not client_id or mime is None:
        raise SendRefused(STATUS_INVALID_XML, "SendMail needs a ClientId and the Mime")
    # Devices send the MIME as OPAQUE (bytes) or as an inline string; keep bytes as sent.
    parts = [c for c in mime.children if not isinstance(c, Element)]
    data = b"".join(c if isinstance(c, bytes) else c.encode() for c in parts)
    save = request.find("SaveInSentItems") is not None
    return Outgoing(client_id=client_id, mime=data, save_copy=save)


def _check_mime(mime: bytes) -> None:
    if not mime.strip():
        raise SendRefused(STATUS_INVALID_MIME, "the message is empty")
    if len(mime) > MAX_MIME:
        raise SendRefused(STATUS_INVALID_MIME, f"the message is larger than {MAX_MIME} bytes")
    head = BytesHeaderParser(policy=default_policy).parsebytes(mime)
    fields = [str(v) for name in ("to", "cc", "bcc") for v in head.get_all(name) or []]
    if not any(address for _, address in getaddresses(fields)):
        raise SendRefused(STATUS_NO_RECIPIENT, "the message has no recipient in To, Cc or Bcc")


async def send_mail(
    outgoing: Outgoing, store: EasSendStore, states: SyncStates, alias: str, device_id: str
) -> None:
    """Save, then submit; SendRefused says why not (the store's own errors pass through)."""
    _check_mime(outgoing.mime)
    if outgoing.client_id is not None and states.was_sent(alias, device_id, outgoing.client_id):
        raise SendRefused(STATUS_PREVIOUSLY_SENT, "this ClientId was sent already")
    placed = await store.append(
        alias, WellKnownFolder.DRAFTS.value, outgoing.mime, flags=Flags(draft=True, seen=True)
    )
    if not outgoing.save_copy:
        # Mail Submission drops a message flagged deleted instead of filing it.
        await store.set_flags(alias, placed.message_id, FlagUpdate(deleted=True))
    await store.submit(alias, placed.message_id)
    if outgoing.client_id is not None:
        states.mark_sent(alias, device_id, outgoing.client_id)


def refusal(status: int) -> Element:
    """The 14.x answer to a SendMail that was not sent."""
    return el("ComposeMail:SendMail", el("ComposeMail:Status", status))
