"""EWS GetMailTips: what Outlook and OWA tell a sender before the message goes.

For each recipient, from the directory and the recipient's own store:

- a mailbox of the organization: its automatic reply when one is on (read
  from the recipient's mailbox store, wherever it is; the internal reply,
  since the sender is a user of the organization), MailboxFull (sitemail
  sets no quotas: false), one member, none external, the organization's
  MaxReceiveSize, no delivery restriction or moderation;
- an address of an accepted domain that no mailbox holds: InvalidRecipient;
- any other address: one external member (the "outside your organization"
  tip) and the organization's MaxSendSize.

Which tips are answered follows MailTipsRequested (``All`` or a list).
sitemail's directory has no distribution groups and no custom mail tips
(Set-Mailbox -MailTip), so CustomMailTip is never given.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from datetime import datetime

from sitemail.access.ews_calendar import when
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_oof import read_oof
from sitemail.access.ews_responses import response_message
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.errors import StoreError
from sitemail.org.model import Mailbox, Organization

__all__ = ["MAX_RECIPIENTS", "get_mail_tips"]

log = logging.getLogger("sitemail.w3svc.ews")

#: Most recipients one request asks about (Exchange's own bound is unpublished; unverified).
MAX_RECIPIENTS = 100
_TIPS = (
    "OutOfOfficeMessage",
    "MailboxFullStatus",
    "CustomMailTip",
    "ExternalMemberCount",
    "TotalMemberCount",
    "MaxMessageSize",
    "DeliveryRestriction",
    "ModerationStatus",
    "InvalidRecipient",
)


async def get_mail_tips(
    box: EwsMailbox, body: ET.Element, organization: Organization | None, now: datetime
) -> ET.Element:
    recipients = body.find(m("Recipients"))
    addresses = [
        (mailbox.findtext(t("EmailAddress")) or "").strip()
        for mailbox in (recipients if recipients is not None else [])
    ]
    if len(addresses) > MAX_RECIPIENTS:
        raise SoapFault(
            "ErrorInvalidArgument", f"GetMailTips takes at most {MAX_RECIPIENTS} recipients."
        )
    words = (body.findtext(m("MailTipsRequested")) or "").split()
    if any(w not in (*_TIPS, "All") for w in words):
        raise SoapFault("ErrorSchemaValidation", f"MailTipsRequested must be among All {_TIPS}.")
    wanted = set(_TIPS) if "All" in words else set(words)
    response = ET.Element(m("GetMailTipsResponse"), ResponseClass="Success")
    sub(response, m("ResponseCode"), "NoError")
    messages = sub(response, m("ResponseMessages"))
    for address in addresses:
        msg = response_message(messages, "MailTips")
        msg.tag = m("MailTipsResponseMessageType")
        await _tips(sub(msg, m("MailTips")), box, address, wanted, organization, now)
    return response


async def _tips(
    tips: ET.Element,
    box: EwsMailbox,
    address: str,
    wanted: set[str],
    organization: Organization | None,
    now: datetime,
) -> None:
    key = address.lower()
    found: Mailbox | None = next((b for b in box.directory if key in b.all_addresses), None)
    domain = key.rpartition("@")[2]
    internal = organization is not None and organization.is_accepted(domain)
    recipient = sub(tips, t("RecipientAddress"))
    if found is not None:
        sub(recipient, t("Name"), found.display_name)
    sub(recipient, t("EmailAddress"), address)
    sub(recipient, t("RoutingType"), "SMTP")
    if "OutOfOfficeMessage" in wanted and found is not None:
        await _out_of_office(tips, box, found, now)
    if "MailboxFullStatus" in wanted and found is not None:
        sub(tips, t("MailboxFull"), "false")
    if "TotalMemberCount" in wanted:
        sub(tips, t("TotalMemberCount"), "1")
    if "ExternalMemberCount" in wanted:
        sub(tips, t("ExternalMemberCount"), "0" if internal else "1")
    if "MaxMessageSize" in wanted and organization is not None:
        limit = organization.max_receive_size if internal else organization.max_send_size
        sub(tips, t("MaxMessageSize"), str(limit))
    if "DeliveryRestriction" in wanted:
        sub(tips, t("DeliveryRestricted"), "false")
    if "ModerationStatus" in wanted:
        sub(tips, t("IsModerated"), "false")
    if "InvalidRecipient" in wanted:
        sub(tips, t("InvalidRecipient"), "true" if internal and found is None else "false")


async def _out_of_office(tips: ET.Element, box: EwsMailbox, found: Mailbox, now: datetime) -> None:
    try:
        settings = await read_oof(box, found.alias)
    except StoreError as exc:
        # The recipient's store is out of reach: the tip is left out, the others stand.
        log.info("GetMailTips: no automatic reply of %s: %s", found.alias, exc)
        return
    element = sub(tips, t("OutOfOffice"))
    active = settings.active(now)
    sub(sub(element, t("ReplyBody")), t("Message"), settings.internal_reply if active else "")
    if active and settings.state == "Scheduled" and settings.start and settings.end:
        duration = sub(element, t("Duration"))
        sub(duration, t("StartTime"), when(settings.start))
        sub(duration, t("EndTime"), when(settings.end))
