"""What an EWS folder has beside its name: its permissions and its extended properties.

Both are kept in the store's ``folder_properties`` (a JSON object per folder:
``permissions`` and ``extended``, the latter shaped as an item's, see
:mod:`.ews_item_properties`).  A folder nobody gave permissions has
Exchange 2010's defaults: ``Default`` and ``Anonymous`` with no rights, and
on a calendar ``Default`` may see free/busy times (FreeBusyTimeOnly).

A permission is kept as its eight rights; its PermissionLevel is derived
from them as Exchange does (the named level whose rights they are, else
Custom), and a named level given in a request sets the rights it stands for.  The
user is named by PrimarySmtpAddress (a mailbox of the directory) or as
DistinguishedUser ``Default``/``Anonymous``; a set without them keeps them,
with no rights, as MAPI always has them.  A few MAPI properties of a folder
are computed rather than kept (PR_MESSAGE_SIZE, PR_CONTENT_COUNT,
PR_CONTENT_UNREAD, PR_FOLDER_CHILD_COUNT), as Exchange computes them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from sitemail.access.ews_item_properties import extended_key, read_extended, set_extended
from sitemail.access.ews_mapi_properties import is_folder_tag
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import sub, t
from sitemail.org.model import Mailbox

__all__ = [
    "change_properties",
    "created_properties",
    "parse_permission_set",
    "permissions_of",
    "render_permission_set",
]

#: Most entries a folder's permission set keeps.
MAX_PERMISSIONS = 100

# The rights of a permission, in the schema's order (BasePermissionType, then ReadItems).
_BOOLEANS = ("CanCreateItems", "CanCreateSubFolders", "IsFolderOwner", "IsFolderVisible")
_RIGHTS = (*_BOOLEANS, "IsFolderContact", "EditItems", "DeleteItems", "ReadItems")
_NONE = (False, False, False, False, False, "None", "None", "None")
# The named levels and their rights (Outlook's and Exchange's roles).
_LEVELS: dict[str, tuple[bool | str, ...]] = {
    "None": _NONE,
    "Owner": (True, True, True, True, True, "All", "All", "FullDetails"),
    "PublishingEditor": (True, True, False, True, False, "All", "All", "FullDetails"),
    "Editor": (True, False, False, True, False, "All", "All", "FullDetails"),
    "PublishingAuthor": (True, True, False, True, False, "Owned", "Owned", "FullDetails"),
    "Author": (True, False, False, True, False, "Owned", "Owned", "FullDetails"),
    "NoneditingAuthor": (True, False, False, True, False, "None", "Owned", "FullDetails"),
    "Reviewer": (False, False, False, True, False, "None", "None", "FullDetails"),
    "Contributor": (True, False, False, True, False, "None", "None", "None"),
}
# A calendar's levels add what free/busy readers see.
_CALENDAR_LEVELS: dict[str, tuple[bool | str, ...]] = {
    **_LEVELS,
    "FreeBusyTimeOnly": (False, False, False, False, False, "None", "None", "TimeOnly"),
    "FreeBusyTimeAndSubjectAndLocation": (
        False,
        False,
        False,
        False,
        False,
        "None",
        "None",
        "TimeAndSubjectAndLocation",
    ),
}
_ACTIONS = ("None", "Owned", "All")
_READS = ("None", "FullDetails")
_CALENDAR_READS = ("None", "TimeOnly", "TimeAndSubjectAndLocation", "FullDetails")
_DISTINGUISHED = ("Default", "Anonymous")


def permissions_of(bag: dict[str, Any], calendar: bool) -> list[dict[str, Any]]:
    """A folder's permission entries: what was set, else Exchange 2010's defaults."""
    kept = bag.get("permissions")
    if isinstance(kept, list):
        return kept
    default = "FreeBusyTimeOnly" if calendar else "None"
    return [_entry("Default", "", _CALENDAR_LEVELS[default]), _entry("Anonymous", "", _NONE)]


def _entry(user: str, name: str, rights: tuple[bool | str, ...]) -> dict[str, Any]:
    return {"user": user, "name": name, "rights": list(rights)}


def parse_permission_set(
    element: ET.Element, directory: list[Mailbox], calendar: bool
) -> list[dict[str, Any]]:
    """The entries of a ``<t:PermissionSet>`` a client sets (refused if not valid)."""
    prefix = "Calendar" if calendar else ""
    holder = element.find(t(f"{prefix}Permissions"))
    given = list(holder) if holder is not None else []
    if len(given) > MAX_PERMISSIONS:
        raise Refused(
            "ErrorInvalidPermissionSettings",
            f"A folder keeps at most {MAX_PERMISSIONS} permissions.",
        )
    entries: dict[str, dict[str, Any]] = {}
    for permission in given:
        user, name = _user(permission.find(t("UserId")), directory)
        if user.lower() in entries:
            raise Refused(
                "ErrorDuplicateUserIdsSpecified", f"{user} is given more than one permission."
            )
        entries[user.lower()] = _entry(user, name, _rights(permission, calendar))
    # MAPI always has the Default and Anonymous entries: left out, they have no rights.
    ordered = [entries.pop(d.lower(), _entry(d, "", _NONE)) for d in _DISTINGUISHED]
    return ordered + list(entries.values())


def _user(element: ET.Element | None, directory: list[Mailbox]) -> tuple[str, str]:
    if element is None:
        raise Refused("ErrorInvalidUserInfo", "A permission needs a UserId.")
    distinguished = (element.findtext(t("DistinguishedUser")) or "").strip()
    if distinguished:
        if distinguished not in _DISTINGUISHED:
            raise Refused(
                "ErrorInvalidUserInfo", f"DistinguishedUser {distinguished[:40]!r} is not valid."
            )
        return distinguished, ""
    address = (element.findtext(t("PrimarySmtpAddress")) or "").strip().lower()
    for box in directory:
        if address and box.primary_smtp_address.lower() == address:
            return box.primary_smtp_address, box.display_name
    raise Refused(
        "ErrorInvalidUserInfo",
        f"{address[:80] or 'The user'} is not a mailbox of the organization.",
    )


def _rights(permission: ET.Element, calendar: bool) -> tuple[bool | str, ...]:
    """The rights of a permission's named level, else the rights it names (none: none).

    A level other than Custom and None sets its rights whatever rights are
    given beside it; with None or Custom the rights given count.  Some
    clients send every right and a level (even a calendar's element) with
    each permission, None when unset (unverified what Exchange does with both)."""
    levels = _CALENDAR_LEVELS if calendar else _LEVELS
    level = (
        permission.findtext(t("CalendarPermissionLevel"))
        or permission.findtext(t("PermissionLevel"))
        or "Custom"
    ).strip()
    if level not in ("Custom", "None"):
        if level not in levels:
            raise Refused("ErrorInvalidPermissionSettings", f"{level[:40]!r} is not a level.")
        return levels[level]
    reads = _CALENDAR_READS if calendar else _READS
    rights: list[bool | str] = []
    for index, name in enumerate(_RIGHTS):
        text = permission.findtext(t(name))
        if text is None and name == "CanCreateSubFolders":
            text = permission.findtext(t("CanCreateSubfolders"))  # as some clients spell it
        text = (text or "").strip()
        if index < 5:
            rights.append(text.lower() in ("true", "1"))
            continue
        allowed = reads if name == "ReadItems" else _ACTIONS
        value = text or "None"
        if value not in allowed:
            raise Refused("ErrorInvalidPermissionSettings", f"{name} cannot be {value[:40]!r}.")
        rights.append(value)
    return tuple(rights)


def render_permission_set(
    parent: ET.Element, entries: list[dict[str, Any]], calendar: bool
) -> None:
    """A ``<t:PermissionSet>`` (a calendar's: CalendarPermissions) of a folder."""
    prefix = "Calendar" if calendar else ""
    levels = _CALENDAR_LEVELS if calendar else _LEVELS
    holder = sub(sub(parent, t("PermissionSet")), t(f"{prefix}Permissions"))
    for entry in entries:
        permission = sub(holder, t(f"{prefix}Permission"))
        user = sub(permission, t("UserId"))
        if entry["user"] in _DISTINGUISHED:
            sub(user, t("DistinguishedUser"), entry["user"])
        else:
            sub(user, t("PrimarySmtpAddress"), entry["user"])
            sub(user, t("DisplayName"), entry["name"])
        rights = tuple(entry["rights"])
        for name, value in zip(_RIGHTS, rights, strict=True):
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            sub(permission, t(name), text)
        level = next((n for n, r in levels.items() if r == rights), "Custom")
        sub(permission, t(f"{prefix}PermissionLevel"), level)


# The MAPI properties of a folder Exchange computes: tag -> (PropertyType, what).
def _malformed() -> Refused:
    return Refused(
        "ErrorIncorrectUpdatePropertyCount",
        "An object within a change description must contain one and only one property to modify.",
    )


def _keep_extended(bag: dict[str, Any], prop: ET.Element, key: str | None = None) -> None:
    given, stored = read_extended(prop)
    if key is not None and given != key:
        raise Refused(
            "ErrorInvalidPropertySet",
            "The ExtendedFieldURI of the change and of the property it sets differ.",
        )
    if is_folder_tag(given):
        raise Refused("ErrorInvalidPropertySet", "The store computes that property.")
    set_extended(bag, given, stored)


def change_properties(
    bag: dict[str, Any],
    kind: str,
    extended: ET.Element | None,
    value: ET.Element | None,
    directory: list[Mailbox],
    calendar: bool,
) -> None:
    """One Set/DeleteFolderField of an extended property (``extended``) or of the
    PermissionSet, on a folder's kept properties."""
    if kind == "AppendToFolderField":
        raise Refused("ErrorInvalidPropertyAppend", "The property cannot be appended to.")
    delete = kind == "DeleteFolderField"
    if extended is None:
        if delete:
            bag.pop("permissions", None)
            return
        found = value.find(t("PermissionSet")) if value is not None else None
        if found is None:
            raise _malformed()
        bag["permissions"] = parse_permission_set(found, directory, calendar)
        return
    key, _ = extended_key(extended)
    if delete:
        set_extended(bag, key, None)
        return
    prop = value.find(t("ExtendedProperty")) if value is not None else None
    if prop is None:
        raise _malformed()
    _keep_extended(bag, prop, key)


def created_properties(
    folder: ET.Element, directory: list[Mailbox], calendar: bool
) -> dict[str, Any]:
    """What a CreateFolder's folder sets beside its name and class."""
    bag: dict[str, Any] = {}
    for prop in folder.findall(t("ExtendedProperty")):
        _keep_extended(bag, prop)
    found = folder.find(t("PermissionSet"))
    if found is not None:
        bag["permissions"] = parse_permission_set(found, directory, calendar)
    return bag
