"""Exchange's own folders of a mailbox, beyond the default folders clients name.

An Exchange 2010 mailbox's root holds, beside the Top of Information Store
(the folders a user sees), folders that Exchange and Outlook keep for
themselves: views, the search folders' home (Finder), free/busy data, the
dumpster (Recoverable Items with Deletions, Purges and Versions), reminders'
and spooler's work.  No protocol but EWS shows them (IMAP4 shows the IPM
subtree only); EWS lists them under ``root`` and names some by a
DistinguishedFolderId.  Their class (PR_CONTAINER_CLASS) is unset.

Exchange provisions more default folders inside the Top of Information
Store, which every protocol shows as it shows the user's folders:
Conversation Action Settings (IPF.Configuration), RSS Feeds, and Sync Issues
with Conflicts, Local Failures and Server Failures.  Quick Step Settings and
Suggested Contacts are Outlook 2010's, made when it first opens the mailbox
(unverified), so a mailbox no Outlook opened has neither.

The names are those of an English 2010 SP3 mailbox (unverified: the set
Exchange provisions depends on the service pack and on what clients have
since created; Outlook adds more on first logon).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DUMPSTER", "SYSTEM_FOLDERS", "TOP", "SystemFolder", "distinguished", "system_folder"]

#: A system folder's ``parent`` when it sits in the Top of Information Store.
TOP = "msgfolderroot"
#: Where a soft delete puts an item: Recoverable Items\Deletions.
DUMPSTER = "recoverableitemsdeletions"


@dataclass(frozen=True)
class SystemFolder:
    """One of Exchange's own folders: its key in the store, name and place."""

    key: str
    """The store's name for it; EWS's DistinguishedFolderId when ``distinguished``."""
    name: str
    parent: str | None
    """The key of the system folder it sits in; ``None``: the root of the mailbox;
    :data:`TOP`: the Top of Information Store."""
    distinguished: bool = False
    folder_class: str = ""


_CONFIG = "IPF.Configuration"

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
    # In the Top of Information Store, beside the default folders clients name.
    SystemFolder("conversationactions", "Conversation Action Settings", TOP, False, _CONFIG),
    SystemFolder("rssfeeds", "RSS Feeds", TOP, False, "IPF.Note.OutlookHomepage"),
    SystemFolder("syncissues", "Sync Issues", TOP, False, "IPF.Note"),
    SystemFolder("conflicts", "Conflicts", "syncissues", False, "IPF.Note"),
    SystemFolder("localfailures", "Local Failures", "syncissues", False, "IPF.Note"),
    SystemFolder("serverfailures", "Server Failures", "syncissues", False, "IPF.Note"),
)

_BY_KEY = {folder.key: folder for folder in SYSTEM_FOLDERS}


def system_folder(key: str) -> SystemFolder | None:
    """The system folder of that key (any case), if there is one."""
    return _BY_KEY.get(key.lower())


def distinguished(name: str) -> SystemFolder | None:
    """The system folder an EWS DistinguishedFolderId names, if it names one."""
    found = system_folder(name)
    return found if found is not None and found.distinguished else None
