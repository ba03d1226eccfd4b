"""Who a POP3/IMAP4 client signs in as: the logon name's forms.

Exchange 2010's POP3 and IMAP4 services take the names its web services
take: the alias (``adam``), the user principal name or an SMTP address of
the mailbox (``adam@contoso.com``), or the down-level ``DOMAIN\\alias``
(``CONTOSO\\adam``).  One grammar serves every protocol
(:func:`sitemail.access.web.logon.find_mailbox`); this module adds the
bound on what a line protocol reads.  Passwords are checked against the
directory's hash by the service (:meth:`.pop_imap_service.FrontEnd.logon`).
"""

from __future__ import annotations

from sitemail.access.web.logon import find_mailbox as _find_signed_in
from sitemail.org.directory import Directory
from sitemail.org.model import Mailbox

__all__ = ["MAX_CREDENTIAL", "find_mailbox"]

#: Longest logon name or password looked at (anything longer fails).
MAX_CREDENTIAL = 1024


def find_mailbox(directory: Directory, name: str) -> Mailbox | None:
    """The mailbox a logon name denotes, or None."""
    if len(name) > MAX_CREDENTIAL:
        return None
    return _find_signed_in(directory, name)
