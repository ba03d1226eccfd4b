"""The wires between the transport process and its receive workers.

Two socket pairs per worker, both created by the transport process and
inherited by the worker (never reachable by anyone else):

- the hand-off channel (``SOCK_SEQPACKET``): the transport process sends
  each admitted client connection as a descriptor (``SCM_RIGHTS``) with a
  small message naming its connector, and configuration changes; one
  message per packet, so every descriptor travels with its own message;
- the RPC channel (``SOCK_STREAM``, asyncio streams): the worker asks the
  queue to accept a message it spooled and says when a session ended; the
  transport process answers each acceptance.

Messages are pickled tuples.  Pickle is safe here only because both ends are
the same program and the sockets are an inherited private pair; frames are
still bounded.
"""

from __future__ import annotations

import asyncio
import pickle
from datetime import datetime
from typing import Any

from sitemail.mailflow.envelope import Envelope, EnvelopeRecipient
from sitemail.server.fd_passing import MAX_HANDOFF, IpcError, receive_handoff, send_handoff

__all__ = [
    "MAX_FRAME",
    "MAX_HANDOFF",
    "IpcError",
    "envelope_from_wire",
    "envelope_to_wire",
    "frame",
    "read_frame",
    "receive_handoff",
    "send_handoff",
]

# Bounds: an envelope with thousands of recipients fits; nothing unbounded does.
MAX_FRAME = 16 * 1024 * 1024
_LENGTH = 4


def frame(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > MAX_FRAME:
        raise IpcError(f"a message of {len(data)} bytes exceeds the {MAX_FRAME}-byte frame")
    return len(data).to_bytes(_LENGTH, "big") + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream."""
    try:
        head = await reader.readexactly(_LENGTH)
        size = int.from_bytes(head, "big")
        if size > MAX_FRAME:
            raise IpcError(f"a frame of {size} bytes exceeds {MAX_FRAME}")
        data = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    message = pickle.loads(data)  # our own child, over a private socket pair
    if not isinstance(message, tuple) or not message:
        raise IpcError(f"not a message: {message!r}")
    return message


# Envelopes travel as tuples of plain values: unpickling a dataclass graph costs
# several times more, and the transport process reads one per accepted message.
_ENVELOPE_FIELDS = (
    "mail_from",
    "internet_message_id",
    "client_ip",
    "client_hostname",
    "connector_id",
    "auth_as",
    "body_type",
    "ret",
    "envid",
    "subject",
    "source",
)


def envelope_to_wire(envelope: Envelope) -> tuple[Any, ...]:
    return (
        tuple(getattr(envelope, name) for name in _ENVELOPE_FIELDS),
        tuple((r.address, r.notify, r.orcpt) for r in envelope.recipients),
        envelope.received_at.isoformat(),
        envelope.headers or None,
    )


def envelope_from_wire(wire: Any) -> Envelope:
    """The envelope back; :class:`IpcError` for anything that is not one."""
    try:
        values, recipients, received_at, headers = wire
        fields = dict(zip(_ENVELOPE_FIELDS, values, strict=True))
        return Envelope(
            recipients=tuple(EnvelopeRecipient(a, n, o) for a, n, o in recipients),
            received_at=datetime.fromisoformat(received_at),
            headers=dict(headers or {}),
            **fields,
        )
    except (TypeError, ValueError) as exc:
        raise IpcError(f"not an envelope: {exc}") from None
