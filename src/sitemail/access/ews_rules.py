"""EWS Inbox rules: GetInboxRules and UpdateInboxRules (Exchange 2010 and later schemas).

A mailbox's rules are its ``inbox_rules`` document (:mod:`sitemail.mailbox.mailbox_settings`):
each rule has its RuleId (given here, in order), a DisplayName, a Priority,
IsEnabled, and conditions, exceptions and actions keyed by their EWS
element names.  Priorities stay 1..n as Exchange keeps them: a rule created
or set at priority p goes before the rule that had it (after the last when
p is past the end), and the others move down.

An UpdateInboxRules applies all its operations or none: any operation that
fails validation makes the answer ErrorInboxRulesValidationError with a
RuleOperationError per failing operation (its index and the fields at
fault, RuleValidationErrorCodeType's codes), and the rules are unchanged.
Text-message alerts (SendSMSAlertToRecipients) are UnsupportedRule:
sitemail sends no text messages, and Exchange 2010 refuses them without a
text messaging set-up.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from sitemail.access.ews_calendar import parse_time, when
from sitemail.access.ews_ids import change_key, folder_id
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_settings_store import update_setting
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.errors import InvalidRequest
from sitemail.mailbox.mailbox_settings import MAX_RULE_VALUES, MAX_RULES, InboxRules, SettingName

__all__ = ["get_inbox_rules", "update_inbox_rules"]

_STRINGS = "strings"
_ADDRESSES = "addresses"
_BOOL = "bool"
_FOLDER = "folder"
_DATES = "dates"
_SIZES = "sizes"
_FLAGS: tuple[str, ...] = ("Any", "Call", "DoNotForward", "FollowUp", "FYI", "Forward")
_FLAGS += ("NoResponseNecessary", "Read", "Reply", "ReplyToAll", "Review")
_IMPORTANCE = ("Low", "Normal", "High")
_SENSITIVITY = ("Normal", "Personal", "Private", "Confidential")

#: RulePredicatesType (conditions and exceptions), in the schema's order.
PREDICATES: dict[str, str | tuple[str, ...]] = {
    "Categories": _STRINGS,
    "ContainsBodyStrings": _STRINGS,
    "ContainsHeaderStrings": _STRINGS,
    "ContainsRecipientStrings": _STRINGS,
    "ContainsSenderStrings": _STRINGS,
    "ContainsSubjectOrBodyStrings": _STRINGS,
    "ContainsSubjectStrings": _STRINGS,
    "FlaggedForAction": _FLAGS,
    "FromAddresses": _ADDRESSES,
    "FromConnectedAccounts": _STRINGS,
    "HasAttachments": _BOOL,
    "Importance": _IMPORTANCE,
    "IsApprovalRequest": _BOOL,
    "IsAutomaticForward": _BOOL,
    "IsAutomaticReply": _BOOL,
    "IsEncrypted": _BOOL,
    "IsMeetingRequest": _BOOL,
    "IsMeetingResponse": _BOOL,
    "IsNDR": _BOOL,
    "IsPermissionControlled": _BOOL,
    "IsReadReceipt": _BOOL,
    "IsSigned": _BOOL,
    "IsVoicemail": _BOOL,
    "ItemClasses": _STRINGS,
    "MessageClassifications": _STRINGS,
    "NotSentToMe": _BOOL,
    "SentCcMe": _BOOL,
    "SentOnlyToMe": _BOOL,
    "SentToAddresses": _ADDRESSES,
    "SentToMe": _BOOL,
    "SentToOrCcMe": _BOOL,
    "Sensitivity": _SENSITIVITY,
    "WithinDateRange": _DATES,
    "WithinSizeRange": _SIZES,
}
#: RuleActionsType, in the schema's order.
ACTIONS: dict[str, str | tuple[str, ...]] = {
    "AssignCategories": _STRINGS,
    "CopyToFolder": _FOLDER,
    "Delete": _BOOL,
    "ForwardAsAttachmentToRecipients": _ADDRESSES,
    "ForwardToRecipients": _ADDRESSES,
    "MarkImportance": _IMPORTANCE,
    "MarkAsRead": _BOOL,
    "MoveToFolder": _FOLDER,
    "PermanentDelete": _BOOL,
    "RedirectToRecipients": _ADDRESSES,
    "SendSMSAlertToRecipients": _ADDRESSES,
    "ServerReplyWithMessage": "item",
    "StopProcessingRules": _BOOL,
}
_RANGES = {_DATES: ("StartDateTime", "EndDateTime"), _SIZES: ("MinimumSize", "MaximumSize")}
_VALIDATION = "A validation error occurred while executing the rule operation."


class _Invalid(Exception):
    """One field of a rule operation fails validation (RuleValidationErrorCodeType)."""

    def __init__(self, field: str, code: str, message: str, value: str = "") -> None:
        super().__init__(message)
        self.field, self.code, self.message, self.value = field, code, message, value


async def get_inbox_rules(box: EwsMailbox, body: ET.Element) -> ET.Element:
    _check_mailbox(box, body)
    document = await box.store.get_setting(box.alias, SettingName.INBOX_RULES)
    state = InboxRules.model_validate(document or {})
    response = ET.Element(m("GetInboxRulesResponse"), ResponseClass="Success")
    sub(response, m("ResponseCode"), "NoError")
    sub(response, m("OutlookRuleBlobExists"), "false")
    rules = sub(response, m("InboxRules"))
    for rule in state.rules:
        element = sub(rules, t("Rule"))
        sub(element, t("RuleId"), rule.rule_id)
        sub(element, t("DisplayName"), rule.display_name)
        sub(element, t("Priority"), str(rule.priority))
        sub(element, t("IsEnabled"), _tf(rule.is_enabled))
        sub(element, t("IsNotSupported"), "false")
        sub(element, t("IsInError"), "false")
        for name, values, table in (
            ("Conditions", rule.conditions, PREDICATES),
            ("Exceptions", rule.exceptions, PREDICATES),
            ("Actions", rule.actions, ACTIONS),
        ):
            if values or name == "Actions":
                _render(sub(element, t(name)), values, table, box.alias)
    return response


async def update_inbox_rules(box: EwsMailbox, body: ET.Element) -> ET.Element:
    _check_mailbox(box, body)
    operations = body.find(m("Operations"))
    if operations is None or len(operations) == 0:
        raise SoapFault("ErrorSchemaValidation", "UpdateInboxRules needs Operations.")
    if len(operations) > MAX_RULES:
        raise SoapFault("ErrorInvalidArgument", f"At most {MAX_RULES} rule operations a request.")
    parsed: list[tuple[str, str | None, dict[str, Any] | None] | _Invalid] = []
    for operation in operations:
        try:
            parsed.append(await _parse_operation(box, operation))
        except _Invalid as invalid:
            parsed.append(invalid)
    errors: list[tuple[int, _Invalid]] = []

    def change(document: dict[str, Any]) -> dict[str, Any]:
        errors.clear()
        state = InboxRules.model_validate(document)
        rules = [r.model_dump(mode="json") for r in state.rules]
        next_id = state.next_id
        for index, step in enumerate(parsed):
            if isinstance(step, _Invalid):
                errors.append((index, step))
                continue
            kind, rule_id, given = step
            try:
                next_id = _apply(rules, kind, rule_id, given, next_id)
            except _Invalid as invalid:
                errors.append((index, invalid))
        if errors:
            return document  # none of the operations is applied
        if len(rules) > MAX_RULES:
            raise SoapFault("ErrorRulesOverQuota", f"A mailbox keeps at most {MAX_RULES} rules.")
        # The mailbox's addresses go with the rules, for "sent to me" at delivery.
        owner = box.mailbox.all_addresses
        kept = {"rules": rules, "next_id": next_id, "owner_addresses": owner}
        return InboxRules.model_validate(kept).model_dump(mode="json")

    try:
        await update_setting(box.store, box.alias, SettingName.INBOX_RULES, change)
    except InvalidRequest as exc:
        # The rules would outgrow what the store keeps for them (Exchange's rules quota).
        raise SoapFault("ErrorRulesOverQuota", f"The rules are over their quota: {exc}") from None
    response = ET.Element(m("UpdateInboxRulesResponse"))
    if not errors:
        response.set("ResponseClass", "Success")
        sub(response, m("ResponseCode"), "NoError")
        return response
    response.set("ResponseClass", "Error")
    sub(response, m("MessageText"), _VALIDATION)
    sub(response, m("ResponseCode"), "ErrorInboxRulesValidationError")
    sub(response, m("DescriptiveLinkKey"), "0")
    container = sub(response, m("RuleOperationErrors"))
    for index, wrong in errors:
        error_element = sub(container, t("RuleOperationError"))
        sub(error_element, t("OperationIndex"), str(index))
        found = sub(sub(error_element, t("ValidationErrors")), t("Error"))
        sub(found, t("FieldURI"), wrong.field)
        sub(found, t("ErrorCode"), wrong.code)
        sub(found, t("ErrorMessage"), wrong.message)
        sub(found, t("FieldValue"), wrong.value)
    return response


def _apply(
    rules: list[dict[str, Any]],
    kind: str,
    rule_id: str | None,
    given: dict[str, Any] | None,
    next_id: int,
) -> int:
    """Apply one operation to ``rules`` (kept in priority order); the next id to give."""
    index = next((i for i, r in enumerate(rules) if r["rule_id"] == rule_id), -1)
    if kind != "CreateRuleOperation" and index < 0:
        raise _Invalid("RuleId", "RuleNotFound", "The rule was not found.", rule_id or "")
    if kind == "DeleteRuleOperation":
        del rules[index]
    else:
        assert given is not None
        if kind == "CreateRuleOperation":
            rule_id, next_id = str(next_id), next_id + 1
        else:
            del rules[index]
        position = min(int(given["priority"]), len(rules) + 1) - 1
        rules.insert(position, {**given, "rule_id": rule_id})
    for number, rule in enumerate(rules, start=1):
        rule["priority"] = number
    return next_id


async def _parse_operation(
    box: EwsMailbox, operation: ET.Element
) -> tuple[str, str | None, dict[str, Any] | None]:
    kind = operation.tag.rpartition("}")[2]
    if kind == "DeleteRuleOperation":
        gone = (operation.findtext(t("RuleId")) or "").strip()
        if not gone:
            raise _Invalid("RuleId", "MissingParameter", "A rule to delete needs its RuleId.")
        return kind, gone, None
    if kind not in ("CreateRuleOperation", "SetRuleOperation"):
        raise SoapFault("ErrorSchemaValidation", f"{kind[:60]} is not a rule operation.")
    rule = operation.find(t("Rule"))
    if rule is None:
        raise SoapFault("ErrorSchemaValidation", f"A {kind} needs a Rule.")
    rule_id = (rule.findtext(t("RuleId")) or "").strip() or None
    if kind == "CreateRuleOperation" and rule_id:
        raise _Invalid("RuleId", "CreateWithRuleId", "A new rule cannot have a RuleId.", rule_id)
    if kind == "SetRuleOperation" and not rule_id:
        raise _Invalid("RuleId", "MissingParameter", "A rule to set needs its RuleId.")
    name = (rule.findtext(t("DisplayName")) or "").strip()
    if not name:
        raise _Invalid("DisplayName", "EmptyValueFound", "The rule needs a display name.")
    if len(name) > 4096:
        raise _Invalid("DisplayName", "StringValueTooBig", "The display name is too long.")
    priority_text = (rule.findtext(t("Priority")) or "").strip()
    if not priority_text.isdigit() or int(priority_text) < 1:
        raise _Invalid("Priority", "InvalidValue", "Priority must be 1 or more.", priority_text)
    enabled = (rule.findtext(t("IsEnabled")) or "true").strip().lower() in ("true", "1")
    given: dict[str, Any] = {
        "display_name": name,
        "priority": min(int(priority_text[:12]), 2**31 - 1),
        "is_enabled": enabled,
    }
    for part, prefix, table, key in (
        ("Conditions", "Condition", PREDICATES, "conditions"),
        ("Exceptions", "Exception", PREDICATES, "exceptions"),
        ("Actions", "Action", ACTIONS, "actions"),
    ):
        element = rule.find(t(part))
        given[key] = {} if element is None else await _predicates(box, element, prefix, table)
    if not given["actions"]:
        raise _Invalid("Actions", "MissingAction", "The rule has no action.")
    return kind, rule_id, given


async def _predicates(
    box: EwsMailbox, element: ET.Element, prefix: str, table: dict[str, str | tuple[str, ...]]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for child in element:
        name = child.tag.rpartition("}")[2]
        field = f"{prefix}:{name}"
        kind = table.get(name)
        if kind is None:
            raise SoapFault("ErrorSchemaValidation", f"{name[:60]} is not among the {prefix}s.")
        if name == "SendSMSAlertToRecipients":
            raise _Invalid(
                field, "UnsupportedRule", "The operation on this unsupported rule is not allowed."
            )
        if name == "ServerReplyWithMessage":
            # Exchange answers this for any ItemId a client gives (observed; unverified).
            raise _Invalid(field, "InvalidValue", "Id must be non-empty.")
        found[name] = await _value(box, child, field, kind)
    return found


async def _value(
    box: EwsMailbox, child: ET.Element, field: str, kind: str | tuple[str, ...]
) -> Any:
    text = (child.text or "").strip()
    if isinstance(kind, tuple):
        if text not in kind:
            raise _Invalid(field, "InvalidValue", f"The value must be one of {kind}.", text[:100])
        return text
    if kind == _BOOL:
        return text.lower() in ("true", "1")
    if kind in (_STRINGS, _ADDRESSES):
        tag = t("String") if kind == _STRINGS else t("Address")
        values = [
            (v.text if kind == _STRINGS else v.findtext(t("EmailAddress"))) or ""
            for v in child.iter(tag)
        ]
        values = [v.strip() for v in values]
        if not values or len(values) > MAX_RULE_VALUES:
            raise _Invalid(field, "InvalidValue", f"Give 1 to {MAX_RULE_VALUES} values.")
        if any(not v for v in values):
            code = "InvalidAddress" if kind == _ADDRESSES else "EmptyValueFound"
            raise _Invalid(field, code, "A value is empty.")
        if kind == _ADDRESSES and any("@" not in v for v in values):
            raise _Invalid(field, "InvalidAddress", "An address is not an SMTP address.")
        return values
    if kind == _FOLDER:
        return {"folder": str(await _folder(box, child, field))}
    low, high = _RANGES[kind]
    # The schema puts the bounds in the element; some clients wrap them once more.
    holder = child[0] if len(child) == 1 and child[0].find(t(low)) is not None else child
    first, last = holder.findtext(t(low)), holder.findtext(t(high))
    if kind == _SIZES:
        if not (first or "").strip().isdigit() or not (last or "").strip().isdigit():
            raise _Invalid(field, "InvalidSizeRange", "The sizes must be whole numbers.")
        if int(first or 0) > int(last or 0):
            raise _Invalid(field, "InvalidSizeRange", "The minimum is above the maximum.")
        return {low: str(int(first or 0)), high: str(int(last or 0))}
    try:
        start, end = parse_time(first, low), parse_time(last, high)
    except Refused:
        raise _Invalid(field, "InvalidDateRange", "The dates are not dates and times.") from None
    if start >= end:
        raise _Invalid(field, "InvalidDateRange", "The range ends before it starts.")
    return {low: when(start), high: when(end)}


async def _folder(box: EwsMailbox, child: ET.Element, field: str) -> int:
    ref = next(iter(child), None)
    if ref is None:
        raise _Invalid(field, "InvalidFolderId", "The action needs a folder.")
    try:
        wanted = await box.resolve_folder(ref)
    except Refused as refused:
        code = "FolderDoesNotExist" if refused.code == "ErrorFolderNotFound" else "InvalidFolderId"
        raise _Invalid(field, code, refused.text) from None
    for folder in await box.folders():
        if folder.id == wanted or (folder.well_known and folder.well_known.value == wanted):
            return folder.id
    raise _Invalid(field, "FolderDoesNotExist", "The folder does not exist.")


def _render(
    parent: ET.Element, values: dict[str, Any], table: dict[str, str | tuple[str, ...]], alias: str
) -> None:
    for name, kind in table.items():
        if name not in values:
            continue
        value = values[name]
        element = sub(parent, t(name))
        if kind in (_STRINGS, _ADDRESSES):
            for item in value:
                if kind == _STRINGS:
                    sub(element, t("String"), item)
                else:
                    address = sub(element, t("Address"))
                    sub(address, t("EmailAddress"), item)
                    sub(address, t("RoutingType"), "SMTP")
        elif kind == _FOLDER:
            sub(
                element,
                t("FolderId"),
                Id=folder_id(alias, int(value["folder"])),
                ChangeKey=change_key(0),
            )
        elif kind in _RANGES:
            for bound in _RANGES[str(kind)]:
                sub(element, t(bound), value[bound])
        elif kind == _BOOL:
            element.text = _tf(bool(value))
        else:
            element.text = str(value)


def _check_mailbox(box: EwsMailbox, body: ET.Element) -> None:
    address = (body.findtext(m("MailboxSmtpAddress")) or "").strip().lower()
    if address and address not in box.mailbox.all_addresses:
        raise SoapFault("ErrorAccessDenied", "A user reads and changes their own Inbox rules only.")


def _tf(value: bool) -> str:
    return "true" if value else "false"
