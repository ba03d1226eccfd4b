"""The store's errors, shared by the database, the store API and its client.

Each error class has a stable ``code`` and an HTTP ``status``: the API turns
an error into ``{"error": code, "message": ...}`` with that status, and the
client turns it back into the same class, so a hub or a CAS catches
:class:`WrongServer` whether the database or the network said so.
"""

from __future__ import annotations

from typing import Any, ClassVar


class StoreError(Exception):
    """Something the store could not do; the message says what and what to do."""

    code: ClassVar[str] = "store_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


class InvalidRequest(StoreError):
    code = "invalid"
    status = 400


class MessageTooLarge(InvalidRequest):
    code = "too_large"
    status = 413


class AccessDenied(StoreError):
    code = "forbidden"
    status = 403


class NotFound(StoreError):
    code = "not_found"
    status = 404


class MailboxNotFound(NotFound):
    code = "mailbox_not_found"


class FolderNotFound(NotFound):
    code = "folder_not_found"


class MessageNotFound(NotFound):
    code = "message_not_found"


class PartNotFound(NotFound):
    code = "part_not_found"


class Conflict(StoreError):
    code = "conflict"
    status = 409


class FolderExists(Conflict):
    code = "folder_exists"


class FolderProtected(Conflict):
    """A well-known folder cannot be renamed, moved or deleted."""

    code = "folder_protected"


class WrongServer(Conflict):
    """The mailbox lives in a database of another server (or of none)."""

    code = "wrong_server"

    def __init__(
        self, message: str, *, mailbox: str, database: str | None, server: str | None
    ) -> None:
        super().__init__(message)
        self.mailbox = mailbox
        self.database = database
        self.server = server

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "mailbox": self.mailbox,
            "database": self.database,
            "server": self.server,
        }


class StoreUnavailable(StoreError):
    """The store cannot be reached or cannot answer now; try again later."""

    code = "unavailable"
    status = 503


ERRORS_BY_CODE: dict[str, type[StoreError]] = {
    cls.code: cls
    for cls in (
        StoreError,
        InvalidRequest,
        MessageTooLarge,
        AccessDenied,
        NotFound,
        MailboxNotFound,
        FolderNotFound,
        MessageNotFound,
        PartNotFound,
        Conflict,
        FolderExists,
        FolderProtected,
        StoreUnavailable,
    )
}


def error_from_json(status: int, body: dict[str, Any]) -> StoreError:
    """Rebuild the error an API response describes (client side)."""
    code = str(body.get("error", ""))
    message = str(body.get("message", f"store answered HTTP {status}"))
    if code == WrongServer.code:
        return WrongServer(
            message,
            mailbox=str(body.get("mailbox", "")),
            database=_opt_str(body.get("database")),
            server=_opt_str(body.get("server")),
        )
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = _by_status(status)
    return cls(message)


def _by_status(status: int) -> type[StoreError]:
    if status == 413:
        return MessageTooLarge
    if status == 403:
        return AccessDenied
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if 400 <= status < 500:
        return InvalidRequest
    if status in (502, 503, 504):
        return StoreUnavailable
    return StoreError


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
