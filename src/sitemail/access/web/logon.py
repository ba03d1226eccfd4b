"""Who is signing in: the user name forms Exchange 2010 accepts, and the password check.

OWA's sign-in page takes ``DOMAIN\\user`` (LogonFormat FullDomain, the
default), ``user@domain`` (the user principal name) and the bare user name
(LogonFormat UserName with a DefaultDomain).  sitemail's directory has no
Windows domain, so:

- ``DOMAIN\\user``: DOMAIN must be the organization's NetBIOS-style name
  (the organization name, or the first label of an accepted domain, e.g.
  ``CONTOSO``), and user a mailbox alias;
- ``user@domain``: domain must be an accepted domain; the mailbox is the one
  with that address, or the one whose alias is ``user``;
- ``user``: a mailbox alias.

The password is checked against the directory's hash (scrypt, slow on
purpose) off the event loop; an unknown user costs the same time as a wrong
password, so a response time does not tell which names exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass

from sitemail.org.directory import Directory
from sitemail.org.model import Mailbox, Organization
from sitemail.org.passwords import hash_password, verify_password

__all__ = [
    "MAX_PASSWORD",
    "MAX_USER_NAME",
    "basic_credentials",
    "check_password",
    "find_mailbox",
    "parse_user_name",
]

MAX_USER_NAME = 320
MAX_PASSWORD = 256

# A hash of a password nobody knows: an unknown user is checked against it,
# so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = hash_password("sitemail: no such user")


@dataclass(frozen=True)
class UserName:
    """A parsed sign-in name: exactly one of the three forms."""

    user: str
    domain: str | None  # NetBIOS domain (DOMAIN\\user) or DNS domain (user@domain)
    upn: bool  # True for user@domain


def parse_user_name(text: str) -> UserName | None:
    """The parts of a typed user name; None when it fits none of the forms."""
    name = text.strip()
    if not name or len(name) > MAX_USER_NAME or any(ord(c) < 0x20 for c in name):
        return None
    if "\\" in name:
        domain, _, user = name.partition("\\")
        if not domain or not user or "\\" in user or "@" in user:
            return None
        return UserName(user, domain, upn=False)
    if "@" in name:
        user, _, domain = name.rpartition("@")
        if not user or not domain or "@" in user:
            return None
        return UserName(user, domain, upn=True)
    return UserName(name, None, upn=False)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user name, password) of an ``Authorization: Basic`` header; None for any other."""
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def _netbios_names(org: Organization | None) -> set[str]:
    if org is None:
        return set()
    names = {org.name.casefold()}
    names |= {d.domain_name.split(".", 1)[0].casefold() for d in org.accepted_domains}
    return names


def find_mailbox(directory: Directory, text: str) -> Mailbox | None:
    """The mailbox a typed user name names, or None."""
    parsed = parse_user_name(text)
    if parsed is None:
        return None
    orgs = directory.list(Organization)
    org = orgs[0] if orgs else None
    if parsed.domain is not None and not parsed.upn:
        if parsed.domain.casefold() not in _netbios_names(org):
            return None
        return directory.get(Mailbox, parsed.user)
    if parsed.upn:
        assert parsed.domain is not None
        if org is None or not org.is_accepted(parsed.domain):
            return None
        address = f"{parsed.user}@{parsed.domain}".casefold()
        for mailbox in directory.list(Mailbox):
            if address in (a.casefold().removeprefix("smtp:") for a in mailbox.all_addresses):
                return mailbox
        return directory.get(Mailbox, parsed.user)
    return directory.get(Mailbox, parsed.user)


async def check_password(mailbox: Mailbox | None, password: str) -> bool:
    """True when ``password`` is ``mailbox``'s; always takes one scrypt's time."""
    stored = mailbox.password_hash if mailbox is not None else None
    if len(password) > MAX_PASSWORD:
        password = password[:MAX_PASSWORD]
    ok = await asyncio.to_thread(verify_password, password, stored or _DUMMY_HASH)
    return ok and mailbox is not None and bool(stored)
