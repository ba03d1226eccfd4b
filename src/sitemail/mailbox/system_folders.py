"""Exchange's own folders of a mailbox: the ones beside the Top of Information Store.

An Exchange 2010 mailbox's root holds, beside the Top of Information Store
(the folders a user sees), folders that Exchange and Outlook keep for
themselves: views, the search folders' home (Finder), free/busy data, the
dumpster (Recoverable Items with Deletions, Purges and Versions), reminders'
and spooler's work.  Clients never list them among the mail folders (IMAP4
shows the IPM subtree only), but EWS shows them under ``root`` and names some
by a DistinguishedFolderId.  Their class (PR_CONTAINER_CLASS) is unset.

The names are those of an English 2010 SP3 mailbox as MFCMAPI lists a new one
(unverified: the set Exchange provisions depends on the service pack and on
what clients have since created; Outlook adds more on first logon).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SYSTEM_FOLDERS", "SystemFolder", "distinguished", "system_folder"]


@dataclass(frozen=True)
class SystemFolder:
    """One of Exchange's own folders: its key in the store, name and place."""

    key: str
    """The store's name for it; EWS's DistinguishedFolderId when ``distinguished``."""
    name: str
    parent: str | None
    """The key of the system folder it sits in; ``None``: the root of the mailbox."""
    distinguished: bool = False


#: Parents before children, as they are created.
SYSTEM_FOLDERS: tuple[SystemFolder, ...] = (
    SystemFolder("commonviews", "Common Views", None),
    SystemFolder("deferredaction", "Deferred Action", None),
    SystemFolder("exchangesyncdata", "ExchangeSyncData", None),
    SystemFolder("searchfolders", "Finder", None, distinguished=True),
    SystemFolder("freebusydata", "Freebusy Data", None),
    # The dumpster (EWS's names since Exchange 2010 SP1): what a soft delete keeps.
    SystemFolder("recoverableitemsroot", "Recoverable Items", None, distinguished=True),
    SystemFolder("recoverableitemsdeletions", "Deletions", "recoverableitemsroot", True),
    SystemFolder("recoverableitemspurges", "Purges", "recoverableitemsroot", True),
    SystemFolder("recoverableitemsversions", "Versions", "recoverableitemsroot", True),
    SystemFolder("schedule", "Schedule", None),
    SystemFolder("shortcuts", "Shortcuts", None),
    SystemFolder("spoolerqueue", "Spooler Queue", None),
    SystemFolder("system", "System", None),
    SystemFolder("views", "Views", None),
)

_BY_KEY = {folder.key: folder for folder in SYSTEM_FOLDERS}


def system_folder(key: str) -> SystemFolder | None:
    """The system folder of that key (any case), if there is one."""
    return _BY_KEY.get(key.lower())


def distinguished(name: str) -> SystemFolder | None:
    """The system folder an EWS DistinguishedFolderId names, if it names one."""
    found = system_folder(name)
    return found if found is not None and found.distinguished else None
