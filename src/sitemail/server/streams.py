"""Small things every stream server of sitemail does the same way."""

from __future__ import annotations

import asyncio
from typing import cast


def stop_reading(writer: asyncio.StreamWriter) -> None:
    """Read nothing more in plaintext: call just before saying "go ahead with TLS".

    The client starts its TLS handshake as soon as it reads that reply.  If
    the stream kept reading, the handshake's first bytes could land in the
    stream's buffer instead of the TLS layer (where ``start_tls`` does not
    look), and the handshake would stall; anything in the buffer now was
    sent before the reply and is dropped as plaintext (RFC 3207 4.2).
    """
    # A socket stream's transport reads too (asyncio's and uvloop's alike), though
    # StreamWriter types it as a write transport.
    cast(asyncio.ReadTransport, writer.transport).pause_reading()
