"""EWS ResolveNames over the directory and the signed-in user's Contacts folder.

The directory's mailboxes are :func:`directory_names`'
answer; this module adds the contacts of the user's Contacts folder whose
name or address starts with the text, as Exchange's default search scope
(``ActiveDirectoryContacts``) does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sitemail.access.ews_contacts import CONTACT_DEFAULT, contact_matches, render_contact
from sitemail.access.ews_ids import change_key, item_id
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import response_message
from sitemail.access.ews_soap import m, sub, t
from sitemail.mailbox.item_records import ItemKind, TypedItem
from sitemail.mailbox.records import WellKnownFolder
from sitemail.org.model import Mailbox

__all__ = ["resolve_names"]

#: Most contacts ResolveNames reads from the Contacts folder.
MAX_CONTACTS = 1000
#: Most resolutions one answer gives (Exchange gives 100; unverified for 2010 SP3).
MAX_RESOLUTIONS = 100


async def resolve_names(box: EwsMailbox, body: ET.Element) -> ET.Element:
    """ResolveNames over the directory (the mailbox's answer) and the user's Contacts folder.

    SearchScope ``ActiveDirectory`` leaves the contacts out, ``Contacts`` the
    directory; the two others search both, contacts first for
    ``ContactsActiveDirectory``.  Each contact resolves to its first e-mail
    address (MailboxType ``Contact``, with its ItemId), with the contact
    itself when ReturnFullContactData is true.
    """
    scope = body.get("SearchScope", "ActiveDirectoryContacts")
    text = (body.findtext(m("UnresolvedEntry")) or "").strip().removeprefix("smtp:")
    answer = directory_names(box, body)
    directory = [] if scope == "Contacts" else answer.findall(f".//{t('Resolution')}")
    found: list[TypedItem] = []
    if scope != "ActiveDirectory" and text:
        page = await box.store.list_typed(
            box.alias, WellKnownFolder.CONTACTS.value, kind=ItemKind.CONTACT, limit=MAX_CONTACTS
        )
        found = [i for i in page.items if i.contact and contact_matches(i.contact, text)]
    if scope == "Contacts" or found:
        full = (body.get("ReturnFullContactData") or "").lower() == "true"
        contacts: list[ET.Element] = []
        for item in found:
            data = item.contact
            assert data is not None
            resolution = ET.Element(t("Resolution"))
            entry = sub(resolution, t("Mailbox"))
            sub(entry, t("Name"), data.name)
            sub(entry, t("EmailAddress"), next(iter(data.emails.values()), ""))
            sub(entry, t("RoutingType"), "SMTP")
            sub(entry, t("MailboxType"), "Contact")
            sub(
                entry,
                t("ItemId"),
                Id=item_id(box.alias, item.id),
                ChangeKey=change_key(item.modseq),
            )
            if full:
                render_contact(resolution, item, CONTACT_DEFAULT, box.alias)
            contacts.append(resolution)
        first, second = (
            (contacts, directory) if scope == "ContactsActiveDirectory" else (directory, contacts)
        )
        answer = _resolutions(first + second)
    return answer


def _resolutions(found: list[ET.Element]) -> ET.Element:
    response = ET.Element(m("ResolveNamesResponse"))
    messages = sub(response, m("ResponseMessages"))
    if not found:
        response_message(
            messages, "ResolveNames", "ErrorNameResolutionNoResults", "No results were found."
        )
        return response
    single = len(found) == 1
    msg = sub(
        messages, m("ResolveNamesResponseMessage"), ResponseClass="Success" if single else "Warning"
    )
    if not single:
        sub(msg, m("MessageText"), "Multiple results were found.")
    sub(msg, m("ResponseCode"), "NoError" if single else "ErrorNameResolutionMultipleResults")
    if not single:
        sub(msg, m("DescriptiveLinkKey"), "0")
    shown = found[:MAX_RESOLUTIONS]
    container = sub(
        msg,
        m("ResolutionSet"),
        TotalItemsInView=str(len(found)),
        IncludesLastItemInRange=_tf(len(shown) == len(found)),
    )
    container.extend(shown)
    return response


def _tf(value: bool) -> str:
    return "true" if value else "false"


def directory_names(box: EwsMailbox, body: ET.Element) -> ET.Element:
    """Mailboxes of the directory whose alias, name or address starts with the text."""
    text = (body.findtext(m("UnresolvedEntry")) or "").strip().lower()
    text = text.removeprefix("smtp:")
    response = ET.Element(m("ResolveNamesResponse"))
    messages = sub(response, m("ResponseMessages"))
    found = [
        entry
        for entry in box.directory
        if text
        and (
            entry.alias.lower().startswith(text)
            or entry.display_name.lower().startswith(text)
            or entry.primary_smtp_address.lower().startswith(text)
        )
    ]
    if not found:
        response_message(
            messages, "ResolveNames", "ErrorNameResolutionNoResults", "No results were found."
        )
        return response
    code = "NoError" if len(found) == 1 else "ErrorNameResolutionMultipleResults"
    msg = sub(
        messages,
        m("ResolveNamesResponseMessage"),
        ResponseClass="Success" if code == "NoError" else "Warning",
    )
    if code != "NoError":
        sub(msg, m("MessageText"), "Multiple results were found.")
    sub(msg, m("ResponseCode"), code)
    if code != "NoError":
        sub(msg, m("DescriptiveLinkKey"), "0")
    resolutions = sub(
        msg,
        m("ResolutionSet"),
        TotalItemsInView=str(len(found)),
        IncludesLastItemInRange="true",
    )
    full = (body.get("ReturnFullContactData") or "").lower() == "true"
    for found_box in found[:100]:
        resolution = sub(resolutions, t("Resolution"))
        entry_element = sub(resolution, t("Mailbox"))
        sub(entry_element, t("Name"), found_box.display_name)
        sub(entry_element, t("EmailAddress"), found_box.primary_smtp_address)
        sub(entry_element, t("RoutingType"), "SMTP")
        sub(entry_element, t("MailboxType"), "Mailbox")
        if full:
            _directory_contact(resolution, found_box)
    return response


def _directory_contact(resolution: ET.Element, entry: Mailbox) -> None:
    """The directory entry as ReturnFullContactData gives it: a <t:Contact> of what the
    directory holds, its addresses as proxy addresses (SMTP: for the primary one)."""
    contact = sub(resolution, t("Contact"))
    sub(contact, t("DisplayName"), entry.display_name)
    addresses = sub(contact, t("EmailAddresses"))
    proxies = [f"SMTP:{entry.primary_smtp_address}"]
    proxies += [f"smtp:{a}" for a in entry.email_addresses if a != entry.primary_smtp_address]
    # EmailAddressKeyType has three keys: the first three proxy addresses.
    for n, proxy in enumerate(proxies[:3], start=1):
        sub(addresses, t("Entry"), proxy, Key=f"EmailAddress{n}")
    sub(contact, t("ContactSource"), "ActiveDirectory")
