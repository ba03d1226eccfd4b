"""What every EWS operation answers per item or folder: the response message and its refusals.

An EWS response holds one ``<m:{Operation}ResponseMessage>`` per id of the
request, each with its own ``ResponseClass`` and ``ResponseCode``: one
missing item does not fail the others.  :class:`Refused` carries the code
and text of one refusal; :func:`store_refusal` says how Exchange 2010 words
what the store refused (``ErrorItemNotFound`` for a message that is gone,
``ErrorFolderExists`` ...), so that every operation answers them alike.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sitemail.access.ews_ids import InvalidId
from sitemail.access.ews_soap import SoapFault, m, sub
from sitemail.mailbox.errors import (
    FolderExists,
    FolderNotFound,
    MessageNotFound,
    MessageTooLarge,
    NotFound,
    StoreError,
)

__all__ = [
    "FOLDER_NOT_FOUND",
    "ITEM_NOT_FOUND",
    "Refused",
    "client_refusal",
    "delete_type",
    "malformed",
    "response_message",
    "store_refusal",
]

# Exchange 2010's MessageText for the refusals clients meet most.
ITEM_NOT_FOUND = "The specified object was not found in the store."
FOLDER_NOT_FOUND = "The specified folder could not be found in the store."
FOLDER_EXISTS = "A folder with the specified name already exists."
ID_MALFORMED = "Id is malformed."


class Refused(Exception):
    """One id of a request is refused with an EWS response code; the others go on."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def malformed(exc: InvalidId | None = None) -> Refused:
    del exc  # Exchange says no more than this, whatever is wrong with the Id.
    return Refused("ErrorInvalidIdMalformed", ID_MALFORMED)


def store_refusal(exc: StoreError) -> Refused | None:
    """The refusal a store error is to the client, ``None`` if it is the server's own failure."""
    if isinstance(exc, MessageNotFound):
        return Refused("ErrorItemNotFound", ITEM_NOT_FOUND)
    if isinstance(exc, FolderNotFound):
        return Refused("ErrorFolderNotFound", FOLDER_NOT_FOUND)
    if isinstance(exc, NotFound):
        return Refused("ErrorItemNotFound", ITEM_NOT_FOUND)
    if isinstance(exc, FolderExists):
        return Refused("ErrorFolderExists", FOLDER_EXISTS)
    if isinstance(exc, MessageTooLarge):
        return Refused("ErrorMessageSizeExceeded", exc.message)
    return None


def client_refusal(exc: Refused | StoreError) -> Refused:
    """What one id's failure is to the client: its refusal as it is, a store error mapped
    by :func:`store_refusal`; the store's own failures fail the whole request (re-raised)."""
    if isinstance(exc, Refused):
        return exc
    refusal = store_refusal(exc)
    if refusal is None:
        raise exc
    return refusal


def response_message(
    parent: ET.Element, operation: str, code: str = "NoError", text: str | None = None
) -> ET.Element:
    """One ``<m:{operation}ResponseMessage>`` with its class and code."""
    cls = "Success" if code == "NoError" else "Error"
    msg = sub(parent, m(f"{operation}ResponseMessage"), ResponseClass=cls)
    if text is not None:
        sub(msg, m("MessageText"), text)
    sub(msg, m("ResponseCode"), code)
    if code != "NoError":
        sub(msg, m("DescriptiveLinkKey"), "0")
    return msg


def delete_type(body: ET.Element) -> str:
    """The DeleteType of a DeleteItem/DeleteFolder/EmptyFolder (the schema requires one)."""
    kind = body.get("DeleteType", "")
    if kind not in ("HardDelete", "SoftDelete", "MoveToDeletedItems"):
        raise SoapFault(
            "ErrorSchemaValidation",
            "The DeleteType attribute must be HardDelete, SoftDelete or MoveToDeletedItems.",
        )
    return kind
