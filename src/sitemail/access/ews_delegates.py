"""EWS delegates: GetDelegate, AddDelegate, UpdateDelegate and RemoveDelegate.

A delegate is a user of the directory with a permission level on each of
six default folders, whether it gets copies of meeting messages and sees
private items; the mailbox also says where meeting requests go
(DeliverMeetingRequests).  They are the mailbox's ``delegates`` document in
its store (:mod:`sitemail.mailbox.mailbox_settings`), changed by a checked
read-change-write (:func:`.ews_settings_store.update_setting`).

sitemail records delegates as Exchange does; it does not yet open the
mailbox's folders to them (no folder permissions) nor forward meeting
requests.  A user changes the delegates of their own mailbox only.
sitemail's directory has no security identifiers: a UserId by SID that is
not one is ErrorInvalidUserSid, one that is matches no user.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import Refused, response_message
from sitemail.access.ews_settings_store import update_setting
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.mailbox_settings import MAX_DELEGATES, Delegate, Delegates, SettingName
from sitemail.org.model import Mailbox

__all__ = ["DELEGATE_OPERATIONS", "delegate_operation"]

DELEGATE_OPERATIONS = ("GetDelegate", "AddDelegate", "UpdateDelegate", "RemoveDelegate")

#: The folders of DelegatePermissions, in the schema's order.
_FOLDERS = ("Calendar", "Tasks", "Inbox", "Contacts", "Notes", "Journal")
_LEVELS = ("None", "Reviewer", "Author", "Editor")
_DELIVERY = ("DelegatesOnly", "DelegatesAndMe", "DelegatesAndSendInformationToMe", "NoForward")
_SID = re.compile(r"S-1-\d{1,3}(-\d{1,10}){1,15}")
_NO_USER = "The delegate does not map to a user in the Active Directory."
_NOT_DELEGATE = "The specified user is not a delegate for the principal."


async def delegate_operation(operation: str, box: EwsMailbox, body: ET.Element) -> ET.Element:
    response = ET.Element(m(f"{operation}Response"))
    try:
        _check_mailbox(box, body)
    except Refused as refused:
        response.set("ResponseClass", "Error")
        sub(response, m("MessageText"), refused.text)
        sub(response, m("ResponseCode"), refused.code)
        sub(response, m("DescriptiveLinkKey"), "0")
        return response
    response.set("ResponseClass", "Success")
    sub(response, m("ResponseCode"), "NoError")
    if operation == "GetDelegate":
        document = await box.store.get_setting(box.alias, SettingName.DELEGATES)
        state = Delegates.model_validate(document or {})
        _get(response, box, body, state)
        sub(response, m("DeliverMeetingRequests"), state.deliver_meeting_requests)
        return response
    answers: list[Refused | Delegate | None] = []

    def change(document: dict[str, Any]) -> dict[str, Any]:
        answers.clear()
        state = Delegates.model_validate(document)
        return _change(operation, box, body, state, answers).model_dump(mode="json")

    await update_setting(box.store, box.alias, SettingName.DELEGATES, change)
    if answers:
        messages = sub(response, m("ResponseMessages"))
        for answer in answers:
            _answer(messages, answer, include=True)
    return response


def _get(response: ET.Element, box: EwsMailbox, body: ET.Element, state: Delegates) -> None:
    include = (body.get("IncludePermissions") or "").lower() == "true"
    ids = body.find(m("UserIds"))
    wanted: list[Refused | Delegate | None] = []
    if ids is None:
        wanted.extend(state.delegates)
    else:
        for user_id in ids:
            try:
                wanted.append(_delegate_of(state, _user(box, user_id)))
            except Refused as refused:
                wanted.append(refused)
    if wanted:
        messages = sub(response, m("ResponseMessages"))
        for answer in wanted:
            _answer(messages, answer, include=include)


def _change(
    operation: str,
    box: EwsMailbox,
    body: ET.Element,
    state: Delegates,
    answers: list[Refused | Delegate | None],
) -> Delegates:
    delegates = list(state.delegates)
    delivery = (body.findtext(m("DeliverMeetingRequests")) or "").strip()
    if delivery and delivery not in _DELIVERY:
        raise SoapFault(
            "ErrorSchemaValidation", f"DeliverMeetingRequests must be one of {_DELIVERY}."
        )
    if operation == "RemoveDelegate":
        ids = body.find(m("UserIds"))
        for user_id in ids if ids is not None else []:
            try:
                gone = _delegate_of(state, _user(box, user_id))
                delegates = [d for d in delegates if d.address != gone.address]
                answers.append(None)
            except Refused as refused:
                answers.append(refused)
    else:
        users = body.find(m("DelegateUsers"))
        for given in users if users is not None else []:
            try:
                answers.append(_set(operation, box, given, delegates))
            except Refused as refused:
                answers.append(refused)
        if len(delegates) > MAX_DELEGATES:
            raise SoapFault(
                "ErrorDelegateValidationFailed", f"A mailbox has at most {MAX_DELEGATES} delegates."
            )
    return Delegates(
        delegates=delegates, deliver_meeting_requests=delivery or state.deliver_meeting_requests
    )


def _set(operation: str, box: EwsMailbox, given: ET.Element, delegates: list[Delegate]) -> Delegate:
    """Add or update one DelegateUser in ``delegates``; the delegate as it now is."""
    user_id = given.find(t("UserId"))
    if user_id is None:
        raise Refused("ErrorDelegateMissingConfiguration", "A DelegateUser needs a UserId.")
    user = _user(box, user_id)
    if user.alias == box.alias:
        raise Refused("ErrorDelegateCannotAddOwner", "The owner cannot be added as a delegate.")
    index = next((i for i, d in enumerate(delegates) if d.address == user.primary_smtp_address), -1)
    if operation == "AddDelegate" and index >= 0:
        raise Refused("ErrorDelegateAlreadyExists", "The delegate already exists.")
    if operation == "UpdateDelegate" and index < 0:
        raise Refused("ErrorNotDelegate", _NOT_DELEGATE)
    old = delegates[index] if index >= 0 else None
    permissions: dict[str, str] = {str(k): v for k, v in old.permissions.items()} if old else {}
    levels = given.find(t("DelegatePermissions"))
    for folder in _FOLDERS:
        level = levels.findtext(t(f"{folder}FolderPermissionLevel")) if levels is not None else None
        if level is None:
            continue
        if level.strip() not in _LEVELS:
            raise Refused(
                "ErrorInvalidDelegatePermission",
                f"{folder}FolderPermissionLevel must be one of {', '.join(_LEVELS)}.",
            )
        permissions[folder] = level.strip()
    document: dict[str, Any] = {
        "address": user.primary_smtp_address,
        "display_name": user.display_name,
        "permissions": permissions,
    }
    for name, key in (
        ("ReceiveCopiesOfMeetingMessages", "receive_copies_of_meeting_messages"),
        ("ViewPrivateItems", "view_private_items"),
    ):
        # Left out of an update, a flag keeps its value.
        text = given.findtext(t(name))
        kept = bool(getattr(old, key)) if old else False
        document[key] = kept if text is None else text.strip().lower() == "true"
    delegate = Delegate.model_validate(document)
    if index >= 0:
        delegates[index] = delegate
    else:
        delegates.append(delegate)
    return delegate


def _user(box: EwsMailbox, user_id: ET.Element) -> Mailbox:
    """The directory's user a UserId names (by SID or primary SMTP address)."""
    sid = (user_id.findtext(t("SID")) or "").strip()
    address = (user_id.findtext(t("PrimarySmtpAddress")) or "").strip().lower()
    if sid and not _SID.fullmatch(sid):
        raise Refused("ErrorInvalidUserSid", "The user SID is invalid or does not map to a user.")
    if address:
        for user in box.directory:
            if address in user.all_addresses:
                return user
    raise Refused("ErrorDelegateNoUser", _NO_USER)


def _delegate_of(state: Delegates, user: Mailbox) -> Delegate:
    for delegate in state.delegates:
        if delegate.address == user.primary_smtp_address:
            return delegate
    raise Refused("ErrorNotDelegate", _NOT_DELEGATE)


def _answer(messages: ET.Element, answer: Refused | Delegate | None, *, include: bool) -> None:
    if isinstance(answer, Refused):
        msg = response_message(messages, "DelegateUser", answer.code, answer.text)
    else:
        msg = response_message(messages, "DelegateUser")
    msg.tag = m("DelegateUserResponseMessageType")
    if not isinstance(answer, Delegate):
        return
    user = sub(msg, m("DelegateUser"))
    user_id = sub(user, t("UserId"))
    sub(user_id, t("PrimarySmtpAddress"), answer.address)
    sub(user_id, t("DisplayName"), answer.display_name)
    if include:
        levels = sub(user, t("DelegatePermissions"))
        given = {str(k): v for k, v in answer.permissions.items()}
        for folder in _FOLDERS:
            sub(levels, t(f"{folder}FolderPermissionLevel"), given.get(folder, "None"))
    sub(user, t("ReceiveCopiesOfMeetingMessages"), _tf(answer.receive_copies_of_meeting_messages))
    sub(user, t("ViewPrivateItems"), _tf(answer.view_private_items))


def _check_mailbox(box: EwsMailbox, body: ET.Element) -> None:
    address = (body.findtext(f"{m('Mailbox')}/{t('EmailAddress')}") or "").strip().lower()
    if not address:
        raise SoapFault(
            "ErrorSchemaValidation", "The request needs a Mailbox with an EmailAddress."
        )
    if address not in box.mailbox.all_addresses:
        raise Refused(
            "ErrorAccessDenied", "A user may change the delegates of their own mailbox only."
        )


def _tf(value: bool) -> str:
    return "true" if value else "false"
