"""The mailbox-level operations of EWS, beside items and folders: one dispatch for the handler.

Automatic replies (:mod:`.ews_oof`), mail tips (:mod:`.ews_mailtips`),
room lists and rooms (:mod:`.ews_rooms`), delegates (:mod:`.ews_delegates`),
Inbox rules (:mod:`.ews_rules`).  Each reads and writes the mailbox's settings in its store
(:mod:`sitemail.mailbox.mailbox_settings`) or the directory.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sitemail.access.ews_delegates import DELEGATE_OPERATIONS, delegate_operation
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_mailtips import get_mail_tips
from sitemail.access.ews_oof import get_user_oof_settings, set_user_oof_settings
from sitemail.access.ews_rooms import get_room_lists, get_rooms
from sitemail.access.ews_rules import get_inbox_rules, update_inbox_rules
from sitemail.clock import Clock
from sitemail.org.directory import Directory
from sitemail.org.model import Organization

__all__ = ["ACCOUNT_OPERATIONS", "account_operation"]

#: The operations served here, as the handler's refusal of any other names them.
ACCOUNT_OPERATIONS = (
    "GetUserOofSettings",
    "SetUserOofSettings",
    "GetMailTips",
    "GetRoomLists",
    "GetRooms",
    *DELEGATE_OPERATIONS,
    "GetInboxRules",
    "UpdateInboxRules",
)


async def account_operation(
    operation: str, body: ET.Element, box: EwsMailbox, directory: Directory, clock: Clock
) -> ET.Element | None:
    """The answer to ``operation`` if it is one of these, else None."""
    match operation:
        case "GetUserOofSettingsRequest":
            return await get_user_oof_settings(box, body, clock.now())
        case "SetUserOofSettingsRequest":
            return await set_user_oof_settings(box, body, _organization(directory))
        case "GetMailTips":
            return await get_mail_tips(box, body, _organization(directory), clock.now())
        case "GetRoomLists":
            return get_room_lists(body)
        case "GetRooms":
            return get_rooms(body)
        case "GetDelegate" | "AddDelegate" | "UpdateDelegate" | "RemoveDelegate":
            return await delegate_operation(operation, box, body)
        case "GetInboxRules":
            return await get_inbox_rules(box, body)
        case "UpdateInboxRules":
            return await update_inbox_rules(box, body)
    return None


def _organization(directory: Directory) -> Organization | None:
    found = directory.list(Organization)
    return found[0] if found else None
