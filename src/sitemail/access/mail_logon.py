"""Who a POP3/IMAP4 client signs in as: the logon name's forms, and the password check.

Exchange 2010's POP3 and IMAP4 services take the name in the forms users
type: the alias (``adam``), the user principal name or any SMTP address of
the mailbox (``adam@contoso.com``), or the down-level ``DOMAIN\\alias``
(``CONTOSO\\adam``).  sitemail's directory has no NetBIOS domain name: the
domain part of ``DOMAIN\\alias`` must be the organization's name or the first
label of one of its accepted domains.  Passwords are checked against the
directory's hash by the service (:meth:`.pop_imap_service.FrontEnd.logon`).
"""

from __future__ import annotations

from sitemail.org.directory import Directory
from sitemail.org.model import Mailbox, Organization

#: Longest logon name or password looked at (anything longer fails).
MAX_CREDENTIAL = 1024


def find_mailbox(directory: Directory, name: str) -> Mailbox | None:
    """The mailbox a logon name denotes, or None."""
    name = name.strip()
    if not name or len(name) > MAX_CREDENTIAL:
        return None
    if "\\" in name:
        domain, _, alias = name.partition("\\")
        if not _is_own_domain(directory, domain) or not alias or "\\" in alias:
            return None
        return directory.get(Mailbox, alias)
    if "@" not in name:
        return directory.get(Mailbox, name)
    wanted = name.casefold()
    for mailbox in directory.list(Mailbox):
        addresses = {a.casefold().removeprefix("smtp:") for a in mailbox.all_addresses}
        if wanted in addresses:
            return mailbox
    return None


def _is_own_domain(directory: Directory, domain: str) -> bool:
    wanted = domain.strip().casefold()
    if not wanted:
        return False
    for org in directory.list(Organization):
        if org.name.casefold() == wanted:
            return True
        if any(d.domain_name.split(".")[0].casefold() == wanted for d in org.accepted_domains):
            return True
    return False
