"""Reading the store API's answers: bounded in size, parsed straight into records.

Shared by :class:`~sitemail.mailbox.store_client.StoreClient` and its call
mix-ins.  An answer is read whole up to a bound (a store that sends more is
a fault, not a reason to fill memory) and handed to pydantic's own JSON
reader, which builds the record without a dict tree first (on an OWA page
that decode was a tenth of a CAS worker's time).
"""

from __future__ import annotations

from typing import TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from sitemail.mailbox.errors import StoreUnavailable
from sitemail.mailbox.sources import CHUNK_SIZE

__all__ = ["MAX_JSON_RESPONSE", "read_capped", "validated"]

R = TypeVar("R", bound=BaseModel)

#: The largest JSON answer a client reads (a page of 1,000 summaries is far below).
MAX_JSON_RESPONSE = 64 * 1024 * 1024


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The answer's body, at most ``limit`` bytes (StoreUnavailable beyond, or if cut off)."""
    data = bytearray()
    try:
        async for chunk in response.content.iter_chunked(CHUNK_SIZE):
            data += chunk
            if len(data) > limit:
                raise StoreUnavailable(f"the store's answer is larger than {limit} bytes")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise StoreUnavailable(f"the store's answer was cut off: {exc}") from None
    return bytes(data)


def validated(cls: type[R], text: bytes) -> R:
    """``text`` as a ``cls`` record; StoreUnavailable naming what was wrong."""
    try:
        return cls.model_validate_json(text)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise StoreUnavailable(
                f"the store answered something that is not JSON: {exc}"
            ) from None
        raise StoreUnavailable(f"the store answered a malformed {cls.__name__}: {exc}") from None
