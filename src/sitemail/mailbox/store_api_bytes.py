"""The store API's short reads of a message's bytes, answered in one piece.

``GET .../messages/{id}/raw?start&length`` streams a message from a reader
with its own connection and read transaction (a message may be megabytes).
EWS asks for the first kilobytes of each message of a FindItem page (its
header: importance, sensitivity ...) and IMAP for headers and small
ranges: for those, opening a connection cost more than the read, so a range
up to SHORT_RANGE is read at once on the database's own connection.
"""

from __future__ import annotations

from aiohttp import web

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.store_backend import StoreBackend

__all__ = ["SHORT_RANGE", "short_range"]

#: The longest range read at once (a header is rarely a tenth of it).
SHORT_RANGE = 64 * 1024


async def short_range(
    backend: StoreBackend, db: StoreDatabase, mailbox: str, message_id: int, start: int, length: int
) -> web.Response:
    """The range as the streamed answer gives it: the bytes, their type, the message's size."""
    total, data = await backend.run(lambda: db.read_range(mailbox, message_id, start, length))
    return web.Response(
        body=data, headers={"Content-Type": "message/rfc822", "X-Message-Size": str(total)}
    )
