"""The directory contract: what every backend (SQLite, OpenLDAP) offers.

Objects are the models of :mod:`sitemail.org.model`, stored by their kind and
identity (identities compare case-insensitively, as in Active Directory).
Every write bumps a change counter; a running server polls
:meth:`Directory.changes_since` to see configuration changes without a
restart (spec 1.7).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sitemail.org.model import Model

M = TypeVar("M", bound=Model)


class DirectoryError(Exception):
    """A directory operation that cannot be done; the message says why and what to do."""


class ObjectExists(DirectoryError):
    pass


class ObjectNotFound(DirectoryError):
    pass


class DirectoryUnavailable(DirectoryError):
    """The directory server did not answer (down, unreachable, too slow), even after retries."""


class DirectoryMismatch(DirectoryError):
    """The directory is not one sitemail can use as named: wrong base DN, schema or organization."""


class DirectoryBusy(DirectoryError):
    """Another writer held the directory's write lock for longer than a writer waits."""


@dataclass(frozen=True)
class Change:
    counter: int
    kind: str
    identity: str
    op: str  # "put" | "delete"


class Directory(Protocol):
    def get(self, cls: type[M], identity: str) -> M | None:
        """The object of that kind and identity, or None."""
        ...

    def require(self, cls: type[M], identity: str) -> M:
        """Like get, but raise ObjectNotFound with a readable message."""
        ...

    def list(self, cls: type[M]) -> list[M]:
        """Every object of that kind, in identity order."""
        ...

    def create(self, obj: Model) -> None:
        """Add a new object; ObjectExists if the identity is taken."""
        ...

    def put(self, obj: Model) -> None:
        """Create or replace."""
        ...

    def delete(self, cls: type[Model], identity: str) -> None:
        """Remove; ObjectNotFound if absent."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all or none, one change-counter step per write."""
        ...

    def change_counter(self) -> int: ...

    def changes_since(self, counter: int) -> builtins.list[Change]: ...

    def close(self) -> None: ...


def open_directory(url: str) -> Directory:
    """``sqlite:///abs/path.db``, a plain path to a ``.db`` file, or ``ldap://HOST:PORT/BASE-DN``.

    The LDAP URL's settings and credentials are described in :mod:`.ldap_settings`.
    """
    if url.startswith(("ldap://", "ldaps://")):
        from sitemail.org.ldap_directory import LdapDirectory

        return LdapDirectory.open(url)
    path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
    from sitemail.org.sqlite_directory import SqliteDirectory

    return SqliteDirectory(path)


def iter_all(directory: Directory, kinds: list[type[Model]]) -> Iterator[Model]:
    for k in kinds:
        yield from directory.list(k)
