"""What a mailbox keeps beside its messages: automatic replies, Inbox rules, delegates.

Each is one JSON document per mailbox (``mailbox_settings``, :mod:`.schema`),
validated here before the database sees it, whoever wrote it (EWS today,
OWA's options or the shell tomorrow).  The documents use Exchange's own
vocabulary (EWS element names for rule conditions and actions, EWS's
permission levels), so that the one who reads them needs no second table.
Every list and text has a bound (sitemail's; Exchange's own are looser or
unpublished).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sitemail.mailbox.errors import InvalidRequest

__all__ = [
    "MAX_DELEGATES",
    "MAX_RULES",
    "Delegate",
    "Delegates",
    "InboxRule",
    "InboxRules",
    "OofHistory",
    "OofOwner",
    "OofSettings",
    "SettingName",
    "parse_setting",
    "setting_name",
]

#: Longest automatic reply, in characters (both replies, as UTF-8 JSON, stay well inside
#: the store API's 256 KB body).
MAX_REPLY = 16_000
#: Most Inbox rules a mailbox keeps (Exchange 2010's bound is the rules' 64 KB quota).
MAX_RULES = 256
#: Most delegates a mailbox has.
MAX_DELEGATES = 64
#: Most senders remembered as answered (past it, the oldest are forgotten and may be
#: answered again).
MAX_OOF_SENDERS = 10_000
#: Most values in one rule condition or action (addresses, strings).
MAX_RULE_VALUES = 256
_TEXT = 4096


class SettingName(StrEnum):
    OOF = "oof"
    OOF_HISTORY = "oof_history"  # the senders answered since the settings last changed
    INBOX_RULES = "inbox_rules"
    DELEGATES = "delegates"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OofOwner(_Strict):
    """Who answers: the mailbox's primary address and name, all its addresses, and the
    organization's accepted domains (internal senders), from the directory when the
    settings were written, since the store has no directory of its own."""

    address: str = Field(max_length=320)
    name: str = Field(default="", max_length=_TEXT)
    addresses: list[Annotated[str, Field(max_length=320)]] = Field(max_length=64)
    internal_domains: list[Annotated[str, Field(max_length=255)]] = Field(max_length=256)


class OofSettings(_Strict):
    """Automatic replies (Set-MailboxAutoReplyConfiguration; EWS UserOofSettings)."""

    state: Literal["Disabled", "Enabled", "Scheduled"] = "Disabled"
    external_audience: Literal["None", "Known", "All"] = "All"
    start: datetime | None = None
    end: datetime | None = None
    internal_reply: str = Field(default="", max_length=MAX_REPLY)
    external_reply: str = Field(default="", max_length=MAX_REPLY)
    owner: OofOwner | None = None  # without it, delivery sends no automatic replies

    def active(self, now: datetime) -> bool:
        """Whether replies go out at ``now``."""
        if self.state == "Enabled":
            return True
        if self.state == "Scheduled" and self.start is not None and self.end is not None:
            return self.start <= now < self.end
        return False


#: A rule predicate's value: a flag, a word (importance, sensitivity), strings or
#: addresses, or a small record (a folder, a date or size range).
_Text = Annotated[str, Field(max_length=_TEXT)]
RuleValue = (
    bool
    | _Text
    | Annotated[list[_Text], Field(max_length=MAX_RULE_VALUES)]
    | Annotated[dict[str, _Text], Field(max_length=8)]
)


class InboxRule(_Strict):
    """One Inbox rule; conditions, exceptions and actions are keyed by their EWS element."""

    rule_id: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=_TEXT)
    priority: int = Field(ge=1)
    is_enabled: bool = True
    conditions: dict[str, RuleValue] = Field(default_factory=dict, max_length=64)
    exceptions: dict[str, RuleValue] = Field(default_factory=dict, max_length=64)
    actions: dict[str, RuleValue] = Field(default_factory=dict, max_length=32)


class InboxRules(_Strict):
    """A mailbox's rules in priority order (1 first), and the next rule id to give.

    ``owner_addresses`` are the mailbox's own addresses, from the directory when the
    rules were written: conditions such as SentToMe need them at delivery.
    """

    rules: list[InboxRule] = Field(default_factory=list, max_length=MAX_RULES)
    next_id: int = Field(default=1, ge=1)
    owner_addresses: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=64
    )


PermissionLevel = Literal["None", "Reviewer", "Author", "Editor", "Custom"]


class Delegate(_Strict):
    """A delegate: a user of the directory and the levels it has on six default folders."""

    address: str = Field(min_length=3, max_length=320)
    display_name: str = Field(default="", max_length=_TEXT)
    permissions: dict[
        Literal["Calendar", "Tasks", "Inbox", "Contacts", "Notes", "Journal"], PermissionLevel
    ] = Field(default_factory=dict)
    receive_copies_of_meeting_messages: bool = False
    view_private_items: bool = False


class Delegates(_Strict):
    delegates: list[Delegate] = Field(default_factory=list, max_length=MAX_DELEGATES)
    # Exchange's default when a mailbox first gets delegates.
    deliver_meeting_requests: Literal[
        "DelegatesOnly", "DelegatesAndMe", "DelegatesAndSendInformationToMe", "NoForward"
    ] = "DelegatesAndSendInformationToMe"


class OofHistory(_Strict):
    senders: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=MAX_OOF_SENDERS
    )


_MODELS: dict[
    SettingName, type[OofSettings] | type[OofHistory] | type[InboxRules] | type[Delegates]
] = {
    SettingName.OOF: OofSettings,
    SettingName.OOF_HISTORY: OofHistory,
    SettingName.INBOX_RULES: InboxRules,
    SettingName.DELEGATES: Delegates,
}


def setting_name(text: str) -> SettingName:
    try:
        return SettingName(text)
    except ValueError:
        names = ", ".join(n.value for n in SettingName)
        raise InvalidRequest(f"no mailbox setting {text[:40]!r}: one of {names}") from None


def parse_setting(
    name: SettingName, value: Any
) -> OofSettings | OofHistory | InboxRules | Delegates:
    """The document ``value`` as the model of ``name``; InvalidRequest says what is wrong."""
    try:
        return _MODELS[name].model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or name.value
        raise InvalidRequest(f"mailbox setting {name.value}: {where}: {first['msg']}") from None
