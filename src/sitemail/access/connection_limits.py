"""How many POP3 or IMAP4 connections one service holds: in all, per client address, per user.

Exchange 2010's settings (Set-PopSettings / Set-ImapSettings, with their
defaults): ``MaxConnections`` (2000) counts every connection, signed in or
not; ``MaxConnectionFromSingleIP`` (2000) those of one client address;
``MaxConnectionsPerUser`` (16) the signed-in connections of one user.

With those defaults alone, one client from one address could hold every
connection the server has before signing in (2000 of 2000) and keep other
users out until its connections time out.  So sitemail also bounds the
connections of one address that have not signed in yet
(:data:`MAX_UNAUTHENTICATED_FROM_SINGLE_IP`, not an Exchange setting): a
legitimate client signs in within a second of connecting, so twenty of them
waiting at once from one address is already a busy office behind one NAT
address, while a client that wants more must sign in, where the per-user
limit holds it.  The organization's own servers (a Client Access server
proxying its users' sessions) are not held to that bound.

This module holds the counting only (no sockets): the service asks
:meth:`ConnectionTable.open` when a client connects and
:meth:`Slot.sign_in` when its password is right, and closes the slot when the
session ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sitemail.org.model import PopImapSettings

__all__ = [
    "MAX_UNAUTHENTICATED_FROM_SINGLE_IP",
    "ConnectionTable",
    "Limits",
    "Refusal",
    "Slot",
]

#: Connections of one client address that may wait before signing in (sitemail's bound,
#: the Exchange 2007 default of MaxConnectionFromSingleIP).
MAX_UNAUTHENTICATED_FROM_SINGLE_IP = 20


class Refusal(StrEnum):
    """Why a connection or a sign-in is refused (the service's log says which)."""

    SERVER = "MaxConnections"
    ADDRESS = "MaxConnectionFromSingleIP"
    UNAUTHENTICATED = "unauthenticated connections from a single IP"
    USER = "MaxConnectionsPerUser"


@dataclass(frozen=True)
class Limits:
    max_connections: int = 2000
    max_connection_from_single_ip: int = 2000
    max_connections_per_user: int = 16
    max_unauthenticated_from_single_ip: int = MAX_UNAUTHENTICATED_FROM_SINGLE_IP

    @classmethod
    def of(cls, settings: PopImapSettings) -> Limits:
        return cls(
            settings.max_connections,
            settings.max_connection_from_single_ip,
            settings.max_connections_per_user,
        )


class ConnectionTable:
    """The connections one POP3 or IMAP4 service holds now."""

    def __init__(self, limits: Limits, *, trusted: Callable[[str], bool] = lambda _: False):
        self.limits = limits
        self._trusted = trusted
        self.total = 0
        self._by_address: Counter[str] = Counter()
        self._waiting_by_address: Counter[str] = Counter()
        self._by_user: Counter[str] = Counter()

    def open(self, address: str) -> Slot | Refusal:
        """Admit a new connection from ``address``, or say which limit it would pass."""
        limits = self.limits
        if self.total >= limits.max_connections:
            return Refusal.SERVER
        if self._by_address[address] >= limits.max_connection_from_single_ip:
            return Refusal.ADDRESS
        if self._waiting_by_address[
            address
        ] >= limits.max_unauthenticated_from_single_ip and not self._trusted(address):
            return Refusal.UNAUTHENTICATED
        self.total += 1
        self._by_address[address] += 1
        self._waiting_by_address[address] += 1
        return Slot(self, address)

    def users(self, user: str) -> int:
        """Signed-in connections of ``user`` now."""
        return self._by_user[user.casefold()]

    def connections_from(self, address: str) -> int:
        return self._by_address[address]

    def _sign_in(self, slot: Slot, user: str) -> bool:
        key = user.casefold()
        if self._by_user[key] >= self.limits.max_connections_per_user:
            return False
        self._by_user[key] += 1
        _decrement(self._waiting_by_address, slot.address)
        return True

    def _close(self, slot: Slot) -> None:
        self.total -= 1
        _decrement(self._by_address, slot.address)
        if slot.user is None:
            _decrement(self._waiting_by_address, slot.address)
        else:
            _decrement(self._by_user, slot.user.casefold())


class Slot:
    """One admitted connection: its address, and its user once signed in."""

    __slots__ = ("_closed", "_table", "address", "user")

    def __init__(self, table: ConnectionTable, address: str) -> None:
        self._table = table
        self.address = address
        self.user: str | None = None
        self._closed = False

    def sign_in(self, user: str) -> bool:
        """Count the connection as ``user``'s; False when the user has too many already."""
        if self._closed or self.user is not None:
            return self.user is not None and self.user.casefold() == user.casefold()
        if not self._table._sign_in(self, user):
            return False
        self.user = user
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._table._close(self)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
