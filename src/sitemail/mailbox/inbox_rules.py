"""What a mailbox's Inbox rules do with a message delivered to it: a pure decision.

Exchange 2010 runs the server-side rules when the store driver delivers a
message; sitemail does the same in the delivery's transaction
(:mod:`.database_settings`), so a client never sees a message in the Inbox
that a rule moves away.  The rules are taken in priority order; a rule
applies when all its conditions hold (a list condition holds when any of
its values does) and none of its exceptions does; actions of every rule
that applies are gathered until one says StopProcessingRules.  A disabled
rule is skipped.

What the store acts on: MoveToFolder (the first one that applies), Delete
(to Deleted Items), PermanentDelete (the message is not kept),
CopyToFolder, MarkAsRead, AssignCategories and MarkImportance
(:mod:`.rule_marks`), ForwardToRecipients and ForwardAsAttachmentToRecipients
(:mod:`.rule_forward`).  Conditions evaluated: FromAddresses,
SentToAddresses, ContainsSenderStrings, ContainsRecipientStrings,
ContainsSubjectStrings, ContainsBodyStrings, ContainsSubjectOrBodyStrings,
HasAttachments, WithinSizeRange (kilobytes), WithinDateRange (the time
received), and SentToMe, SentCcMe, SentOnlyToMe, NotSentToMe and
SentToOrCcMe (by the mailbox's addresses the rules were written with).  A
rule with a condition or exception sitemail cannot evaluate here
(categories, flags, message classes, which need more than the message)
does not apply: a rule must never act on mail its owner
did not mean.  Redirecting is recorded on the rule but not acted on at
delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sitemail.mailbox.mailbox_settings import InboxRule, InboxRules

__all__ = ["Disposition", "RuleMessage", "disposition"]


@dataclass(frozen=True)
class RuleMessage:
    """What rules look at in a delivered message (addresses lower-case)."""

    sender: str
    sender_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    recipient_names: tuple[str, ...]
    subject: str
    body: str
    has_attachments: bool
    size: int
    received: datetime
    me: tuple[str, ...] = ()  # the mailbox's own addresses (none known: "me" is not told)


@dataclass(frozen=True)
class Disposition:
    """Where a delivery goes and how: the store folder ids and flags the rules give."""

    move_to: int | None = None
    delete: bool = False
    permanent_delete: bool = False
    copy_to: tuple[int, ...] = ()
    mark_as_read: bool = False
    forward_to: tuple[str, ...] = ()
    forward_as_attachment_to: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    importance: str | None = None
    applied: tuple[str, ...] = field(default=())  # the RuleIds that applied


def disposition(rules: InboxRules, message: RuleMessage) -> Disposition:
    move_to: int | None = None
    delete = permanent = read = False
    copies: list[int] = []
    forwards: dict[str, list[str]] = {
        "ForwardToRecipients": [],
        "ForwardAsAttachmentToRecipients": [],
    }
    categories: list[str] = []
    importance: str | None = None
    applied: list[str] = []
    for rule in sorted(rules.rules, key=lambda r: r.priority):
        if not rule.is_enabled or not _applies(rule, message):
            continue
        applied.append(rule.rule_id)
        actions = rule.actions
        if actions.get("PermanentDelete") is True:
            permanent = True
        if actions.get("Delete") is True:
            delete = True
        if actions.get("MarkAsRead") is True:
            read = True
        move = _folder(actions.get("MoveToFolder"))
        if move is not None and move_to is None:
            move_to = move
        copy = _folder(actions.get("CopyToFolder"))
        if copy is not None and copy not in copies:
            copies.append(copy)
        categories.extend(
            c for c in _strings(actions.get("AssignCategories")) if c not in categories
        )
        marked = actions.get("MarkImportance")
        if isinstance(marked, str):
            importance = marked
        for action, gathered in forwards.items():
            gathered.extend(a for a in _lower(actions.get(action)) if a not in gathered)
        if actions.get("StopProcessingRules") is True:
            break
    return Disposition(
        move_to=move_to,
        delete=delete,
        permanent_delete=permanent,
        copy_to=tuple(copies),
        mark_as_read=read,
        forward_to=tuple(forwards["ForwardToRecipients"]),
        forward_as_attachment_to=tuple(forwards["ForwardAsAttachmentToRecipients"]),
        categories=tuple(categories),
        importance=importance,
        applied=tuple(applied),
    )


def _applies(rule: InboxRule, message: RuleMessage) -> bool:
    conditions = [_holds(name, value, message) for name, value in rule.conditions.items()]
    if not all(c is True for c in conditions):
        return False
    exceptions = [_holds(name, value, message) for name, value in rule.exceptions.items()]
    # An exception that cannot be told counts as holding: the rule then stays its hand.
    return not any(e is not False for e in exceptions)


def _holds(name: str, value: Any, message: RuleMessage) -> bool | None:
    """Whether one predicate holds; None when it cannot be evaluated here."""
    texts: tuple[str, ...] | None = None
    match name:
        case "FromAddresses":
            return message.sender in _lower(value)
        case "SentToAddresses":
            return bool(set(_lower(value)) & set(message.to + message.cc))
        case "ContainsSenderStrings":
            texts = (message.sender, message.sender_name)
        case "ContainsRecipientStrings":
            texts = message.to + message.cc + message.recipient_names
        case "ContainsSubjectStrings":
            texts = (message.subject,)
        case "ContainsBodyStrings":
            texts = (message.body,)
        case "ContainsSubjectOrBodyStrings":
            texts = (message.subject, message.body)
        case "HasAttachments":
            return message.has_attachments is value
        case "SentToMe" | "SentCcMe" | "SentOnlyToMe" | "NotSentToMe" | "SentToOrCcMe":
            return _to_me(name, value, message)
        case "WithinSizeRange" if isinstance(value, dict):
            kilobytes = message.size // 1024
            return int(value["MinimumSize"]) <= kilobytes <= int(value["MaximumSize"])
        case "WithinDateRange" if isinstance(value, dict):
            start = datetime.fromisoformat(value["StartDateTime"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(value["EndDateTime"].replace("Z", "+00:00"))
            return start <= message.received < end
    if texts is None or not isinstance(value, list):
        return None
    wanted = _lower(value)
    return any(w in text.lower() for w in wanted for text in texts)


def _to_me(name: str, value: Any, message: RuleMessage) -> bool | None:
    """The "sent to me" conditions (a false one asks nothing)."""
    if value is not True:
        return True
    if not message.me:
        return None
    me = set(message.me)
    to, cc = set(message.to) & me, set(message.cc) & me
    match name:
        case "SentToMe":
            return bool(to)
        case "SentCcMe":
            return bool(cc)
        case "SentOnlyToMe":
            return bool(to) and len(message.to) == 1 and not message.cc
        case "NotSentToMe":
            return not to
    return bool(to or cc)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _lower(value: Any) -> list[str]:
    return [str(v).lower() for v in value] if isinstance(value, list) else []


def _folder(value: Any) -> int | None:
    if isinstance(value, dict) and str(value.get("folder", "")).isdigit():
        return int(value["folder"])
    return None
