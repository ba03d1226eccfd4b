"""Packets with descriptors over a private SOCK_SEQPACKET pair between a server process
and its own children (a zygote, a receive worker): one pickled message per packet, each
descriptor travelling with its message (``SCM_RIGHTS``).

Pickle is safe here only because both ends are the same program and the sockets are an
inherited private pair; packets are still bounded.
"""

from __future__ import annotations

import pickle
import socket
from typing import Any

MAX_HANDOFF = 64 * 1024


class IpcError(Exception):
    """The other side sent something that is not a message of this protocol."""


def send_handoff(sock: socket.socket, message: tuple[Any, ...], *fds: int) -> None:
    """One packet, with descriptors, on a hand-off channel (raises BlockingIOError when full)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > MAX_HANDOFF:
        raise IpcError(f"a hand-off message of {len(data)} bytes exceeds {MAX_HANDOFF}")
    socket.send_fds(sock, [data], list(fds))


def receive_handoff(sock: socket.socket) -> tuple[tuple[Any, ...], list[int]] | None:
    """The next packet and the descriptors it carried; None when the sender is gone.

    Raises BlockingIOError when no packet is waiting.
    """
    data, fds, flags, _ = socket.recv_fds(sock, MAX_HANDOFF, 4)
    if not data and not fds:
        return None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            socket.close(fd)
        raise IpcError("a hand-off packet was truncated")
    message = pickle.loads(data)  # our own parent, over a private socket pair
    if not isinstance(message, tuple) or not message:
        for fd in fds:
            socket.close(fd)
        raise IpcError(f"not a message: {message!r}")
    return message, fds
