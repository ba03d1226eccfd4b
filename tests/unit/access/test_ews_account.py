"""EWS mailbox-level operations through exchangelib: automatic replies, mail tips, rooms.

The settings live in the mailbox's own store: the test store sends each
mailbox's settings to the database of its home server, as the store client
does, so that adam (FL) signing in at NY reads what FL keeps.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from exchangelib import Account, OofSettings
from exchangelib.errors import (
    ErrorDelegateNoUser,
    ErrorInboxRulesValidationError,
    ErrorInvalidUserSid,
    ErrorNameResolutionNoResults,
    ErrorNotDelegate,
)
from exchangelib.properties import (
    Actions,
    Address,
    Conditions,
    Exceptions,
    RoomList,
    Rule,
    UserId,
)
from exchangelib.services import GetDelegate, GetRooms
from tests.unit.access.test_ews_exchangelib import (
    FL_EWS,
    NY_EWS,
    EwsTestStore,
    LabNamesAdapter,
    ews_account,
    lab_names,
    mime,
    servers,
    url,
)
from tests.unit.access.test_web_front import PASSWORD, Lab

from sitemail.access.ews_handler import EwsHandler
from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.mailbox_settings import SettingName
from sitemail.mailbox.store_client_settings import UNCHECKED
from sitemail.org.model import Mailbox as DirectoryMailbox
from sitemail.org.model import MailboxDatabase, VirtualDirectoryKind

__all__ = ["lab_names", "servers"]


class AccountTestStore(EwsTestStore):
    """The EWS test store, with each mailbox's settings in its home server's database."""

    def __init__(self, db: StoreDatabase, lab: Lab) -> None:
        super().__init__(db)
        self.lab = lab

    def _home(self, mailbox: str) -> StoreDatabase:
        box = next(b for b in self.lab.directory.list(DirectoryMailbox) if b.alias == mailbox)
        database = self.lab.directory.require(MailboxDatabase, box.database)
        return self.lab.stores[database.server]

    async def get_setting(self, mailbox: str, name: SettingName) -> dict[str, Any] | None:
        return self._home(mailbox).get_setting(mailbox, name)

    async def put_setting(
        self, mailbox: str, name: SettingName, value: dict[str, Any], *, expected: Any = UNCHECKED
    ) -> dict[str, Any]:
        home = self._home(mailbox)
        if expected is UNCHECKED:
            return home.put_setting(mailbox, name, value)
        return home.put_setting(mailbox, name, value, expected=expected, check=True)


@pytest.fixture
def lab(servers: Lab) -> Lab:
    for name in ("EX-NY1", "EX-FL1"):
        store = AccountTestStore(servers.stores[name], servers)
        door = servers.doors[name]
        door.register(VirtualDirectoryKind.EWS, EwsHandler(lambda d=door: d, lambda s=store: s))
    servers.set_vdir(FL_EWS, basic_authentication=True)
    servers.set_vdir(
        NY_EWS,
        basic_authentication=True,
        external_url="https://mail.contoso.com/EWS/Exchange.asmx",
    )
    return servers


def adam_at_ny(lab: Lab) -> Account:
    return ews_account(url(lab, "mail.contoso.com"), "contoso\\adam", "adam@contoso.com")


def alice(lab: Lab) -> Account:
    return ews_account(url(lab, "mail.contoso.com"), "contoso\\alice", "alice@contoso.com")


def soap(lab: Lab, user: str, body: str, host: str = "mail.contoso.com") -> ET.Element:
    """A raw SOAP request; the answer's body element."""
    envelope = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">'
        '<s:Header><t:RequestServerVersion Version="Exchange2010_SP2"/></s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    )
    session = requests.Session()
    session.mount("https://", LabNamesAdapter())
    answer = session.post(
        url(lab, host),
        data=envelope.encode(),
        auth=(f"contoso\\{user}", PASSWORD),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=30,
    )
    root = ET.fromstring(answer.content)
    return root[1][0]


M = "{http://schemas.microsoft.com/exchange/services/2006/messages}"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"


def test_automatic_replies_are_kept_in_the_mailbox_store_and_read_through_any_cas(
    lab: Lab,
) -> None:
    account = adam_at_ny(lab)
    assert account.oof_settings.state == OofSettings.DISABLED
    enabled = OofSettings(
        state=OofSettings.ENABLED,
        external_audience="Known",
        internal_reply="Back on Monday",
        external_reply="Out of the office",
    )
    account.oof_settings = enabled
    assert account.oof_settings == enabled
    # FL's store holds them, and FL's own CAS reads the same.
    assert lab.stores["EX-FL1"].get_setting("adam", SettingName.OOF)["state"] == "Enabled"
    assert lab.stores["EX-NY1"].get_setting("adam", SettingName.OOF) is None
    direct = ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")
    assert direct.oof_settings == enabled
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    scheduled = OofSettings(
        state=OofSettings.SCHEDULED,
        external_audience="All",
        internal_reply="Conference",
        external_reply="Conference (external)",
        start=start,
        end=start + timedelta(days=3),
    )
    account.oof_settings = scheduled
    assert account.oof_settings == scheduled
    account.oof_settings = OofSettings(state=OofSettings.DISABLED)
    got = account.oof_settings
    # What the request left out (the Duration) is kept; the replies it gave empty are emptied.
    assert got.state == OofSettings.DISABLED and got.start == start and not got.internal_reply


def test_oof_of_another_mailbox_and_a_backwards_schedule_are_refused(lab: Lab) -> None:
    ask = (
        "<m:GetUserOofSettingsRequest><t:Mailbox><t:Address>{}</t:Address></t:Mailbox>"
        "</m:GetUserOofSettingsRequest>"
    )
    answer = soap(lab, "adam", ask.format("alice@contoso.com"))
    assert answer.findtext(f"{M}ResponseMessage/{M}ResponseCode") == "ErrorAccessDenied"
    answer = soap(lab, "adam", ask.format("nobody@contoso.com"))
    assert answer.findtext(f"{M}ResponseMessage/{M}ResponseCode") == "ErrorMailRecipientNotFound"
    answer = soap(lab, "adam", ask.format("ADAM@contoso.com"))
    assert answer.findtext(f"{T}OofSettings/{T}OofState") == "Disabled"
    assert answer.findtext(f"{M}AllowExternalOof") == "All"
    backwards = (
        "<m:SetUserOofSettingsRequest><t:Mailbox><t:Address>adam@contoso.com</t:Address>"
        "</t:Mailbox><t:UserOofSettings><t:OofState>Scheduled</t:OofState>"
        "<t:ExternalAudience>All</t:ExternalAudience><t:Duration>"
        "<t:StartTime>2030-01-02T00:00:00Z</t:StartTime><t:EndTime>2030-01-01T00:00:00Z"
        "</t:EndTime></t:Duration><t:InternalReply><t:Message>x</t:Message></t:InternalReply>"
        "<t:ExternalReply><t:Message>y</t:Message></t:ExternalReply></t:UserOofSettings>"
        "</m:SetUserOofSettingsRequest>"
    )
    answer = soap(lab, "adam", backwards)
    code = answer.findtext(f"{M}ResponseMessage/{M}ResponseCode")
    assert code == "ErrorInvalidScheduledOofDuration"
    assert lab.stores["EX-FL1"].get_setting("adam", SettingName.OOF) is None


def test_mail_tips_tell_of_automatic_replies_size_limits_and_unknown_recipients(
    lab: Lab,
) -> None:
    away = OofSettings(state=OofSettings.ENABLED, internal_reply="In Tampa", external_reply="Away")
    adam_at_ny(lab).oof_settings = away
    account = alice(lab)  # alice is in NY; adam's settings are in FL's store.
    assert account.mail_tips.recipient_address.email_address == "alice@contoso.com"
    recipients = "".join(
        f"<t:Mailbox><t:EmailAddress>{a}</t:EmailAddress></t:Mailbox>"
        for a in ("adam@contoso.com", "ghost@contoso.com", "someone@fabrikam.com")
    )
    answer = soap(
        lab,
        "alice",
        "<m:GetMailTips><m:SendingAs><t:EmailAddress>alice@contoso.com</t:EmailAddress>"
        f"</m:SendingAs><m:Recipients>{recipients}</m:Recipients>"
        "<m:MailTipsRequested>All</m:MailTipsRequested></m:GetMailTips>",
    )
    adam, ghost, outside = answer.iter(f"{M}MailTips")
    assert adam.findtext(f"{T}OutOfOffice/{T}ReplyBody/{T}Message") == "In Tampa"
    assert adam.findtext(f"{T}MailboxFull") == "false"
    assert adam.findtext(f"{T}MaxMessageSize") == str(10 * 1024 * 1024)
    assert adam.findtext(f"{T}TotalMemberCount") == "1"
    assert adam.findtext(f"{T}ExternalMemberCount") == "0"
    assert adam.findtext(f"{T}InvalidRecipient") == "false"
    assert ghost.findtext(f"{T}InvalidRecipient") == "true"
    assert ghost.find(f"{T}OutOfOffice") is None
    assert outside.findtext(f"{T}ExternalMemberCount") == "1"
    assert outside.findtext(f"{T}InvalidRecipient") == "false"
    only = soap(
        lab,
        "alice",
        "<m:GetMailTips><m:SendingAs><t:EmailAddress>alice@contoso.com</t:EmailAddress>"
        f"</m:SendingAs><m:Recipients>{recipients}</m:Recipients>"
        "<m:MailTipsRequested>OutOfOfficeMessage</m:MailTipsRequested></m:GetMailTips>",
    )
    first = next(only.iter(f"{M}MailTips"))
    assert [e.tag.split("}")[1] for e in first] == ["RecipientAddress", "OutOfOffice"]


def test_room_lists_and_rooms_answer_as_exchange_does_with_none(lab: Lab) -> None:
    account = adam_at_ny(lab)
    assert list(account.protocol.get_roomlists()) == []
    with pytest.raises(ErrorNameResolutionNoResults):
        list(GetRooms(account.protocol).call(room_list=RoomList(email_address="rooms@contoso.com")))


_INCLUDE = ' IncludePermissions="true"'


def _delegates(lab: Lab, operation: str, inner: str, user: str = "adam") -> ET.Element:
    return soap(
        lab,
        user,
        f"<m:{operation}{_INCLUDE if operation == 'GetDelegate' else ''}>"
        "<m:Mailbox><t:EmailAddress>adam@contoso.com</t:EmailAddress></m:Mailbox>"
        f"{inner}</m:{operation}>",
    )


def _codes(answer: ET.Element) -> list[str | None]:
    return [
        msg.findtext(f"{M}ResponseCode")
        for msg in answer.iter(f"{M}DelegateUserResponseMessageType")
    ]


ALICE_AS_EDITOR = (
    "<m:DelegateUsers><t:DelegateUser><t:UserId><t:PrimarySmtpAddress>alice@contoso.com"
    "</t:PrimarySmtpAddress></t:UserId><t:DelegatePermissions><t:CalendarFolderPermissionLevel>"
    "Editor</t:CalendarFolderPermissionLevel><t:InboxFolderPermissionLevel>Reviewer"
    "</t:InboxFolderPermissionLevel></t:DelegatePermissions><t:ReceiveCopiesOfMeetingMessages>"
    "true</t:ReceiveCopiesOfMeetingMessages><t:ViewPrivateItems>false</t:ViewPrivateItems>"
    "</t:DelegateUser></m:DelegateUsers><m:DeliverMeetingRequests>DelegatesAndMe"
    "</m:DeliverMeetingRequests>"
)


def test_delegates_are_added_read_updated_and_removed(lab: Lab) -> None:
    account = adam_at_ny(lab)
    assert account.delegates == []
    with pytest.raises(ErrorInvalidUserSid):
        list(
            GetDelegate(account=account).call(
                user_ids=[UserId(sid="XXX")], include_permissions=True
            )
        )
    with pytest.raises(ErrorDelegateNoUser):
        list(
            GetDelegate(account=account).call(
                user_ids=["foo@example.com"], include_permissions=True
            )
        )
    with pytest.raises(ErrorNotDelegate):
        list(
            GetDelegate(account=account).call(
                user_ids=["adam@contoso.com"], include_permissions=True
            )
        )

    assert _codes(_delegates(lab, "AddDelegate", ALICE_AS_EDITOR)) == ["NoError"]
    assert _codes(_delegates(lab, "AddDelegate", ALICE_AS_EDITOR)) == ["ErrorDelegateAlreadyExists"]
    (alice_delegate,) = account.delegates
    assert alice_delegate.user_id.primary_smtp_address == "alice@contoso.com"
    levels = alice_delegate.delegate_permissions
    assert (levels.calendar_folder_permission_level, levels.inbox_folder_permission_level) == (
        "Editor",
        "Reviewer",
    )
    assert levels.tasks_folder_permission_level == "None"
    assert alice_delegate.receive_copies_of_meeting_messages is True
    got = _delegates(lab, "GetDelegate", "")
    assert got.findtext(f"{M}DeliverMeetingRequests") == "DelegatesAndMe"
    # FL's store keeps them.
    kept = lab.stores["EX-FL1"].get_setting("adam", SettingName.DELEGATES)
    assert kept is not None and kept["delegates"][0]["address"] == "alice@contoso.com"

    update = (
        "<m:DelegateUsers><t:DelegateUser><t:UserId><t:PrimarySmtpAddress>alice@contoso.com"
        "</t:PrimarySmtpAddress></t:UserId><t:DelegatePermissions><t:TasksFolderPermissionLevel>"
        "Author</t:TasksFolderPermissionLevel></t:DelegatePermissions></t:DelegateUser>"
        "</m:DelegateUsers>"
    )
    assert _codes(_delegates(lab, "UpdateDelegate", update)) == ["NoError"]
    (alice_delegate,) = account.delegates
    levels = alice_delegate.delegate_permissions
    assert levels.tasks_folder_permission_level == "Author"
    assert levels.calendar_folder_permission_level == "Editor"
    assert alice_delegate.receive_copies_of_meeting_messages is True

    owner = ALICE_AS_EDITOR.replace("alice@", "adam@")
    assert _codes(_delegates(lab, "AddDelegate", owner)) == ["ErrorDelegateCannotAddOwner"]
    remove = (
        "<m:UserIds><t:UserId><t:PrimarySmtpAddress>alice@contoso.com</t:PrimarySmtpAddress>"
        "</t:UserId></m:UserIds>"
    )
    assert _codes(_delegates(lab, "RemoveDelegate", remove)) == ["NoError"]
    assert _codes(_delegates(lab, "RemoveDelegate", remove)) == ["ErrorNotDelegate"]
    assert account.delegates == []
    # Alice cannot change adam's delegates.
    refused = _delegates(lab, "AddDelegate", ALICE_AS_EDITOR, user="alice")
    assert refused.findtext(f"{M}ResponseCode") == "ErrorAccessDenied"


def test_inbox_rules_are_created_set_reordered_and_deleted(lab: Lab) -> None:
    account = adam_at_ny(lab)
    assert account.rules == []
    first = Rule(
        account=account,
        display_name="From bob",
        priority=1,
        is_enabled=True,
        conditions=Conditions(
            from_addresses=[Address(email_address="bob@contoso.com")],
            contains_subject_strings=["report", "numbers"],
            importance="High",
        ),
        exceptions=Exceptions(has_attachments=True),
        actions=Actions(move_to_folder=account.trash, mark_as_read=True),
    ).save()
    assert first.id is not None
    second = Rule(
        account=account,
        display_name="Lists",
        priority=10**6,
        is_enabled=False,
        actions=Actions(stop_processing_rules=True, assign_categories=["lists"]),
    ).save()
    rules = account.rules
    assert [(r.display_name, r.priority, r.is_enabled) for r in rules] == [
        ("From bob", 1, True),
        ("Lists", 2, False),
    ]
    got = rules[0]
    assert [a.email_address for a in got.conditions.from_addresses] == ["bob@contoso.com"]
    assert got.conditions.contains_subject_strings == ["report", "numbers"]
    assert got.conditions.importance == "High" and got.exceptions.has_attachments is True
    assert got.actions.mark_as_read is True
    assert got.actions.move_to_folder.folder_id.id == account.trash.id
    # A rule set to priority 1 goes first; the others move down.
    second.priority = 1
    second.display_name = "Mailing lists"
    second.save()
    assert [(r.display_name, r.priority) for r in account.rules] == [
        ("Mailing lists", 1),
        ("From bob", 2),
    ]
    # FL's store keeps them.
    kept = lab.stores["EX-FL1"].get_setting("adam", SettingName.INBOX_RULES)
    assert kept is not None and len(kept["rules"]) == 2
    assert kept["owner_addresses"] == ["adam@contoso.com"]  # for "sent to me" at delivery
    second.delete()
    first.delete()
    assert account.rules == []


def test_every_action_exchange_2010_takes_and_the_refused_ones(lab: Lab) -> None:
    account = adam_at_ny(lab)
    for action in (
        {"assign_categories": ["foo"]},
        {"copy_to_folder": account.trash},
        {"delete": True},
        {"forward_as_attachment_to_recipients": [Address(email_address="x@fabrikam.com")]},
        {"forward_to_recipients": [Address(email_address="alice@contoso.com")]},
        {"mark_importance": "Low"},
        {"permanent_delete": True},
        {"redirect_to_recipients": [Address(email_address="x@fabrikam.com")]},
    ):
        rule = Rule(account=account, display_name="r", priority=5, actions=Actions(**action))
        rule.save()
        rule.delete()
    with pytest.raises(ErrorInboxRulesValidationError) as refused:
        Rule(
            account=account,
            display_name="sms",
            priority=1,
            actions=Actions(send_sms_alert_to_recipients=[Address(email_address="x@fabrikam.com")]),
        ).save()
    assert "UnsupportedRule on field Action:SendSMSAlertToRecipients" in str(refused.value)
    assert account.rules == []
    # A failing operation leaves the rules as they were; a rule id that is not is RuleNotFound.
    unknown = (
        "<m:UpdateInboxRules><m:RemoveOutlookRuleBlob>true</m:RemoveOutlookRuleBlob>"
        "<m:Operations><t:DeleteRuleOperation><t:RuleId>404</t:RuleId></t:DeleteRuleOperation>"
        "</m:Operations></m:UpdateInboxRules>"
    )
    answer = soap(lab, "adam", unknown)
    assert answer.findtext(f"{M}ResponseCode") == "ErrorInboxRulesValidationError"
    error = answer.find(f"{M}RuleOperationErrors/{T}RuleOperationError")
    assert error is not None and error.findtext(f"{T}OperationIndex") == "0"
    assert error.findtext(f"{T}ValidationErrors/{T}Error/{T}ErrorCode") == "RuleNotFound"
    answer = soap(
        lab,
        "alice",
        "<m:GetInboxRules><m:MailboxSmtpAddress>adam@contoso.com"
        "</m:MailboxSmtpAddress></m:GetInboxRules>",
    )
    assert (
        answer.findtext(
            ".//{http://schemas.microsoft.com/exchange/services/2006/errors}ResponseCode"
        )
        == "ErrorAccessDenied"
    )


def test_what_a_client_sets_through_ny_acts_on_mail_delivered_in_fl(lab: Lab) -> None:
    account = adam_at_ny(lab)
    Rule(
        account=account,
        display_name="Reports to trash",
        priority=1,
        conditions=Conditions(contains_subject_strings=["report"]),
        actions=Actions(
            move_to_folder=account.trash,
            mark_as_read=True,
            assign_categories=["Reports"],
            mark_importance="High",
        ),
    ).save()
    account.oof_settings = OofSettings(
        state=OofSettings.ENABLED, internal_reply="In Tampa", external_reply="Away"
    )
    db = lab.stores["EX-FL1"]
    db.deliver("adam", "r1", mime("Weekly report", "numbers"))
    db.deliver("adam", "r2", mime("Lunch", "at noon"))
    assert [i.subject for i in account.trash.all()] == ["Weekly report"]
    (report,) = account.trash.all()
    assert (report.is_read, report.categories, report.importance) == (True, ["Reports"], "High")
    assert [i.subject for i in account.inbox.all()] == ["Lunch"]
    (reply,) = db.list_messages("adam", "outbox").items
    assert reply.subject == "Automatic reply: Weekly report"
    assert [a.address for a in reply.to] == ["bob@contoso.com"]


def test_rules_over_what_the_store_keeps_are_over_quota(lab: Lab) -> None:
    strings = "".join(f"<t:String>{i:04d}{'x' * 4000}</t:String>" for i in range(60))
    answer = soap(
        lab,
        "adam",
        "<m:UpdateInboxRules><m:RemoveOutlookRuleBlob>true</m:RemoveOutlookRuleBlob>"
        "<m:Operations><t:CreateRuleOperation><t:Rule><t:DisplayName>big</t:DisplayName>"
        f"<t:Priority>1</t:Priority><t:Conditions><t:ContainsBodyStrings>{strings}"
        "</t:ContainsBodyStrings></t:Conditions><t:Actions><t:Delete>true</t:Delete>"
        "</t:Actions></t:Rule></t:CreateRuleOperation></m:Operations></m:UpdateInboxRules>",
    )
    code = answer.findtext(
        ".//{http://schemas.microsoft.com/exchange/services/2006/errors}ResponseCode"
    )
    assert code == "ErrorRulesOverQuota"
    assert adam_at_ny(lab).rules == []
