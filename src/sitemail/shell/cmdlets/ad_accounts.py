"""Search-ADAccount -LockedOut and Unlock-ADAccount: the account lockout, as the AD module shows it.

Every protocol's wrong passwords count against one lockout per user in the
directory (:mod:`sitemail.org.lockout`), as they do against Active
Directory for Exchange.  An administrator helping a user who is locked out
of OWA, IMAP4 or ActiveSync uses the Active Directory module's cmdlets in
the same shell; these are the two of them that matter for that.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sitemail.org.lockout import AccountLockout, AccountLockouts
from sitemail.org.model import Mailbox
from sitemail.shell import (
    BY_PROPERTY_NAME,
    STRING,
    SWITCH,
    BoundParameters,
    CmdletError,
    Parameter,
    Record,
    TableView,
    cmdlet,
)

from .common import Inv, nonterminating
from .mailboxes import find_mailbox

TYPE = "Microsoft.ActiveDirectory.Management.ADUser"
VIEW = TableView.of(TYPE, "Name", "SamAccountName", "LockedOut", "BadLogonCount", "LockoutTime")


def _record(inv: Inv, lockouts: AccountLockouts, entry: AccountLockout) -> Record:
    mailbox = inv.services.directory.get(Mailbox, entry.user)
    locked = lockouts.locked_for(entry.user) > 0
    return Record(
        TYPE,
        [
            ("Name", mailbox.display_name if mailbox is not None else entry.user),
            ("SamAccountName", entry.user),
            ("LockedOut", locked),
            ("BadLogonCount", entry.bad_pwd_count),
            ("LastBadPasswordAttempt", _time(entry.bad_password_time)),
            ("LockoutTime", _time(entry.lockout_time) if locked else None),
            ("Enabled", True),
        ],
    )


def _time(stamp: float) -> datetime | None:
    return datetime.fromtimestamp(stamp, UTC).astimezone() if stamp else None


@cmdlet(
    "Search-ADAccount",
    Parameter("LockedOut", SWITCH, help="The accounts locked out now (wrong passwords)."),
    synopsis="Lists the user accounts that are locked out after too many wrong passwords.",
    examples=("Search-ADAccount -LockedOut", "Search-ADAccount -LockedOut | Unlock-ADAccount"),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def search_ad_account(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    if not params.switch("LockedOut"):
        raise CmdletError("Search-ADAccount: give -LockedOut (the only search sitemail has).")
    lockouts = AccountLockouts(inv.services.directory)
    entries = inv.services.directory.list(AccountLockout)
    return [_record(inv, lockouts, e) for e in entries if lockouts.locked_for(e.user) > 0]


@cmdlet(
    "Unlock-ADAccount",
    Parameter(
        "Identity",
        STRING,
        position=0,
        pipeline=BY_PROPERTY_NAME,
        aliases=("SamAccountName",),
        help="The user (alias, name or e-mail address); Search-ADAccount can pipe it.",
    ),
    synopsis="Unlocks a user locked out after too many wrong passwords, on every protocol.",
    examples=("Unlock-ADAccount adam", "Search-ADAccount -LockedOut | Unlock-ADAccount"),
    supports_should_process=True,
)
@nonterminating
def unlock_ad_account(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    identity = params.typed("Identity", str)
    if not identity:
        raise CmdletError("Unlock-ADAccount: give the user's -Identity.")
    directory = inv.services.directory
    known = directory.get(AccountLockout, identity)
    alias = known.user if known is not None else find_mailbox(inv, identity).alias
    if inv.should_process(alias, "Unlock-ADAccount"):
        AccountLockouts(directory).unlock(alias)
    return []


DEFINITIONS = (search_ad_account, unlock_ad_account)
