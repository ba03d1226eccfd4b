"""EWS automatic replies: GetUserOofSettings and SetUserOofSettings (the availability service's).

The settings are a document of the mailbox's store (:mod:`sitemail.mailbox.mailbox_settings`),
so whichever Client Access server a request reaches (NY proxying to FL, or
FL itself) reads and writes the same one, and the mailbox's own server
answers mail with them at delivery (:mod:`sitemail.mailbox.oof_reply`); for
that, the settings carry who the mailbox is (its addresses, the accepted
domains that make a sender internal), from the directory.  A user reads
and sets the automatic replies of their own mailbox; another mailbox's are
refused (delegated access to them is not served).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

from sitemail.access.ews_calendar import parse_time, when
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.mailbox_settings import OofSettings, SettingName, parse_setting
from sitemail.org.model import Organization

__all__ = ["get_user_oof_settings", "read_oof", "set_user_oof_settings"]

_STATES = ("Disabled", "Enabled", "Scheduled")
_AUDIENCES = ("None", "Known", "All")


async def read_oof(box: EwsMailbox, alias: str) -> OofSettings:
    """The automatic replies of mailbox ``alias`` (the defaults when never set)."""
    document = await box.store.get_setting(alias, SettingName.OOF)
    settings = parse_setting(SettingName.OOF, document or {})
    assert isinstance(settings, OofSettings)
    return settings


async def get_user_oof_settings(box: EwsMailbox, body: ET.Element, now: datetime) -> ET.Element:
    response = ET.Element(m("GetUserOofSettingsResponse"))
    try:
        _check_mailbox(box, body)
    except Refused as refused:
        _message(response, refused.code, refused.text)
        return response
    settings = await read_oof(box, box.alias)
    _message(response)
    element = sub(response, t("OofSettings"))
    sub(element, t("OofState"), settings.state)
    sub(element, t("ExternalAudience"), settings.external_audience)
    # Exchange always gives a Duration; never scheduled, it is the coming day.
    start = settings.start or now.replace(minute=0, second=0, microsecond=0)
    end = settings.end or start + timedelta(days=1)
    duration = sub(element, t("Duration"))
    sub(duration, t("StartTime"), when(start))
    sub(duration, t("EndTime"), when(end))
    sub(sub(element, t("InternalReply")), t("Message"), settings.internal_reply)
    sub(sub(element, t("ExternalReply")), t("Message"), settings.external_reply)
    # Set-Mailbox -ExternalOofOptions: External, sitemail's only value (Exchange's default).
    sub(response, m("AllowExternalOof"), "All")
    return response


async def set_user_oof_settings(
    box: EwsMailbox, body: ET.Element, organization: Organization | None
) -> ET.Element:
    response = ET.Element(m("SetUserOofSettingsResponse"))
    try:
        _check_mailbox(box, body)
        given = body.find(t("UserOofSettings"))
        if given is None:
            raise SoapFault("ErrorSchemaValidation", "SetUserOofSettings needs UserOofSettings.")
        current = await read_oof(box, box.alias)
        settings = _parse(given, current, _owner(box, organization))
    except Refused as refused:
        _message(response, refused.code, refused.text)
        return response
    await box.store.put_setting(box.alias, SettingName.OOF, settings.model_dump(mode="json"))
    _message(response)
    return response


def _owner(box: EwsMailbox, organization: Organization | None) -> dict[str, Any]:
    """Who the replies come from, for the mailbox's server to answer at delivery."""
    domains = [d.domain_name for d in organization.accepted_domains] if organization else []
    mailbox = box.mailbox
    return {
        "address": mailbox.primary_smtp_address,
        "name": mailbox.display_name,
        "addresses": mailbox.all_addresses,
        "internal_domains": domains,
    }


def _parse(given: ET.Element, current: OofSettings, owner: dict[str, Any]) -> OofSettings:
    state = (given.findtext(t("OofState")) or "").strip()
    audience = (given.findtext(t("ExternalAudience")) or current.external_audience).strip()
    if state not in _STATES or audience not in _AUDIENCES:
        raise SoapFault(
            "ErrorSchemaValidation",
            "OofState must be Disabled, Enabled or Scheduled, and ExternalAudience None, "
            "Known or All.",
        )
    start, end = current.start, current.end
    duration = given.find(t("Duration"))
    if duration is not None:
        start = parse_time(duration.findtext(t("StartTime")), "StartTime")
        end = parse_time(duration.findtext(t("EndTime")), "EndTime")
        if start >= end:
            raise Refused(
                "ErrorInvalidScheduledOofDuration", "The scheduled end time is before its start."
            )
    elif state == "Scheduled" and (start is None or end is None):
        raise Refused(
            "ErrorInvalidScheduledOofDuration", "A scheduled automatic reply needs a Duration."
        )
    replies = {}
    for name in ("InternalReply", "ExternalReply"):
        reply = given.find(t(name))
        text = reply.findtext(t("Message")) if reply is not None else None
        key = "internal_reply" if name == "InternalReply" else "external_reply"
        replies[key] = getattr(current, key) if text is None else text
    document = {
        "state": state,
        "external_audience": audience,
        "start": start,
        "end": end,
        "owner": owner,
    }
    try:
        return OofSettings.model_validate({**document, **replies})
    except ValueError:
        raise Refused(
            "ErrorInvalidParameter", "An automatic reply is longer than sitemail keeps."
        ) from None


def _check_mailbox(box: EwsMailbox, body: ET.Element) -> None:
    """Refuse a Mailbox that is not the signed-in user's."""
    address = (body.findtext(f"{t('Mailbox')}/{t('Address')}") or "").strip().lower()
    if not address:
        raise SoapFault("ErrorSchemaValidation", "The request needs a Mailbox with an Address.")
    if address in box.mailbox.all_addresses:
        return
    if any(address in other.all_addresses for other in box.directory):
        raise Refused("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    raise Refused("ErrorMailRecipientNotFound", f"No mailbox has the address {address[:320]}.")


def _message(parent: ET.Element, code: str = "NoError", text: str | None = None) -> None:
    """The operation's one ``<m:ResponseMessage>`` (the availability service's shape)."""
    msg = sub(
        parent, m("ResponseMessage"), ResponseClass="Success" if code == "NoError" else "Error"
    )
    if text is not None:
        sub(msg, m("MessageText"), text)
    sub(msg, m("ResponseCode"), code)
    if code != "NoError":
        sub(msg, m("DescriptiveLinkKey"), "0")
