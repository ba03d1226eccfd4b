"""Bounds on everything a caller hands the store, and the checks that enforce them.

Every value here reaches the store from the network (through the store
API), so each has a limit and a one-line error that names it.
"""

from __future__ import annotations

from sitemail.mailbox.errors import InvalidRequest

MB = 1024 * 1024
#: The largest message the store takes.  Above every transport limit of a
#: default organization (10 MB, spec 1.1) with room for the headers and
#: encoding that transport adds, so the store never refuses what transport
#: accepted; transport enforces the real limits.
DEFAULT_MAX_MESSAGE_SIZE = 32 * MB
MAX_PAGE_SIZE = 1000
MAX_UID_PAGE = 10_000
MAX_CHANGES = 50_000
MAX_FOLDERS = 2000
MAX_FOLDER_NAME = 255
MAX_MAILBOX_NAME = 320
MAX_DELIVERY_ID = 512
MAX_QUERY = 256
#: A folder tree deeper than this is refused (IMAP clients walk it recursively).
MAX_FOLDER_DEPTH = 32


def mailbox_key(mailbox: str) -> str:
    """The key of a mailbox in its database: its alias, lower-cased."""
    key = mailbox.strip().lower()
    if not key or len(key) > MAX_MAILBOX_NAME or not key.isprintable():
        raise InvalidRequest(
            f"mailbox name {mailbox[:80]!r} is not valid: expected 1-{MAX_MAILBOX_NAME} "
            "printable characters (the mailbox alias)"
        )
    return key


def folder_name(name: str) -> str:
    """Check a folder name: 1-255 printable characters, no ``/`` (the IMAP hierarchy delimiter)."""
    if (
        not name.strip()
        or len(name) > MAX_FOLDER_NAME
        or "/" in name
        or not name.isprintable()
        or name != name.strip()
    ):
        raise InvalidRequest(
            f"folder name {name[:80]!r} is not valid: expected 1-{MAX_FOLDER_NAME} printable "
            "characters without '/' and without leading or trailing spaces"
        )
    return name


def folder_class_name(value: str) -> str:
    """Check a folder's container class: ``""`` (none) or up to 255 printable characters."""
    if len(value) > MAX_FOLDER_NAME or not value.isprintable() or value != value.strip():
        raise InvalidRequest(
            f"folder class {value[:80]!r} is not valid: expected at most {MAX_FOLDER_NAME} "
            "printable characters without leading or trailing spaces (e.g. IPF.Note)"
        )
    return value


def path_key(path: str) -> str:
    """A folder path in the form two equal paths share (case-folded, no outer slashes)."""
    return "/".join(p.casefold() for p in path.strip("/").split("/"))


def delivery_key(delivery_id: str) -> str:
    if not delivery_id or len(delivery_id) > MAX_DELIVERY_ID or not delivery_id.isprintable():
        raise InvalidRequest(
            f"delivery id must be 1-{MAX_DELIVERY_ID} printable characters "
            "(the hub's internal message id and the recipient)"
        )
    return delivery_id


def check_page(offset: int, limit: int, maximum: int, *, what: str = "offset") -> None:
    if offset < 0:
        raise InvalidRequest(f"{what} must not be negative")
    if not 1 <= limit <= maximum:
        raise InvalidRequest(f"limit must be between 1 and {maximum}")
