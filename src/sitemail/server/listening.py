"""A listening TCP socket of this process's own, bound before anything serves on it."""

from __future__ import annotations

import socket


def listening_socket(
    address: str, port: int, backlog: int, *, blocking: bool = True
) -> socket.socket:
    """``address``:``port`` (IPv4: the lab's and the connectors' bindings are), listening.

    SO_REUSEADDR: a server restarted at once binds again while the connections of its
    previous run linger in TIME_WAIT.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
        sock.setblocking(blocking)
    except BaseException:
        sock.close()
        raise
    return sock
