"""The directory on an LDAP server (OpenLDAP with sitemail's schema), through ldap3.

Where objects live and what they show is :mod:`.ldap_layout`; the URL and
credentials are :mod:`.ldap_settings`; the retrying connection is
:mod:`.ldap_connection`; writing entries so that every step can be repeated
is :mod:`.ldap_writes`.  This module keeps the directory contract's promises
on a server that has no multi-entry transactions:

**Writers take turns through a lock entry.**  ``CN=Counter,CN=Change Log,...``
holds ``sitemailLockOwner``: ``free`` or a writer's token.  A writer takes it
with one modify that deletes the value ``free`` and adds its token; LDAP
applies a modify to one entry atomically and fails it with noSuchAttribute
when ``free`` is not there, so exactly one writer wins (compare-and-swap).
Like SQLite's ``BEGIN IMMEDIATE``, the lock is taken when a transaction
starts, so a read-modify-write (an account's wrong passwords) never loses an
update.  A writer that dies keeps the lock: another writer that sees the same
token for ``lease`` seconds of its own clock (no clocks are compared across
machines) takes it over with the same compare-and-swap on that token.

**A change set is the commit point.**  A transaction's writes wait in memory
(reads inside it see them) until it ends; then the writer adds one entry,
``CN=<first change number>`` under the change log, holding every change and
every entry to write.  One add is atomic, so a transaction is either in the
log whole or not at all.  The writer then writes the objects' entries and, in
the same modify that gives the lock back, moves ``sitemailChangeCounter`` to
the set's last number.  A writer that dies between the two leaves a set
numbered past the counter; the next writer, on taking the lock, finds it
(``CN=<counter + 1>``), writes its entries again (every step can be repeated)
and moves the counter: the change is completed, never left half-written.  A
transaction that fails before the set is added writes nothing.

**Change notification reads the counter.**  ``changes_since(n)`` is one read
of the counter entry when nothing changed, and one search of the change sets
numbered past ``n`` when something did: a server learns of a change within
its poll interval without reading any object.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars

from sitemail.org.directory import (
    Change,
    DirectoryBusy,
    DirectoryError,
    DirectoryMismatch,
    DirectoryUnavailable,
    M,
    ObjectExists,
    ObjectNotFound,
)
from sitemail.org.ldap_connection import LdapConnection, LdapRefused, first, refused_as, values
from sitemail.org.ldap_layout import Entry, Layout, is_under, same_dn
from sitemail.org.ldap_settings import DEFAULT_ORGANIZATION, LdapSettings, parse_ldap_url
from sitemail.org.ldap_writes import EntryWriter
from sitemail.org.model import Model

log = logging.getLogger("sitemail.directory")

#: The schema version this code needs (the DESC of sitemailChangeCounter in sitemail.schema).
SCHEMA_VERSION = 1
FREE = "free"
_DELETED = object()


@dataclass
class _Txn:
    token: str
    counter: int  # the committed counter when the transaction began
    overlay: dict[tuple[str, str], object] = field(default_factory=dict)  # Model or _DELETED
    changes: list[dict[str, object]] = field(default_factory=list)


class LdapDirectory:
    """The :class:`~sitemail.org.directory.Directory` contract on an LDAP server."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self.url = settings.url
        self._ldap = LdapConnection(settings)
        self._lock = threading.RLock()
        self._depth = 0
        self._txn: _Txn | None = None
        # A lock value of ours that we could not give back (the server went away): ours to
        # take back at once, where another writer waits for the lease.
        self._abandoned: str | None = None
        try:
            self.layout = self._open()
        except BaseException:
            self._ldap.close()
            raise
        self.writer = EntryWriter(self._ldap, self.layout)

    @classmethod
    def open(cls, url: str) -> LdapDirectory:
        return cls(parse_ldap_url(url))

    # ---------------------------------------------------------------- opening

    def _open(self) -> Layout:
        """Check that the server holds the base DN and sitemail's schema; set up the change log."""
        root = self._ldap.read(
            "reading the root DSE", "", "(objectClass=*)", ["namingContexts", "subschemaSubentry"]
        )
        contexts = values(root or {}, "namingContexts")
        base = self.settings.base
        context = next((c for c in contexts if is_under(base, c)), None)
        if context is None:
            raise DirectoryMismatch(
                f"directory {self.url}: base DN {base!r} is not on this server, which holds "
                f"{', '.join(contexts) or 'no naming context'}; fix the base DN in the URL"
            )
        if self._ldap.read("reading the base DN", base, "(objectClass=*)", ["1.1"]) is None:
            if not same_dn(base, context):
                raise DirectoryMismatch(
                    f"directory {self.url}: base DN {base!r} does not exist (the server holds "
                    f"{context}); create it or fix the base DN in the URL"
                )
            self._create_suffix(base)
        self._check_schema(first(root, "subschemaSubentry"))
        layout = Layout(base, self.settings.organization or DEFAULT_ORGANIZATION)
        counter = self._ldap.read(
            "reading the change counter",
            layout.counter,
            "(objectClass=sitemailChangeCounter)",
            ["sitemailSchemaVersion", "sitemailOrganization"],
        )
        if counter is None:
            self._set_up(layout)
            return layout
        version = first(counter, "sitemailSchemaVersion")
        if version != str(SCHEMA_VERSION):
            raise DirectoryMismatch(
                f"directory {self.url}: it was set up with sitemail schema version {version}, "
                f"this sitemail needs version {SCHEMA_VERSION}"
            )
        org = first(counter, "sitemailOrganization") or DEFAULT_ORGANIZATION
        wanted = self.settings.organization
        if wanted and wanted.lower() != org.lower():
            raise DirectoryMismatch(
                f"directory {self.url}: it holds Exchange organization {org!r}, "
                f"not {wanted!r}; use ?org={org} or another base DN"
            )
        return Layout(base, org)

    def _create_suffix(self, base: str) -> None:
        """Create the server's empty suffix entry (a fresh server), as its top RDN wants."""
        attr, _, value = base.split(",")[0].partition("=")
        classes = {
            "dc": ["domain"],
            "o": ["organization"],
            "ou": ["organizationalUnit"],
            "cn": ["container"],
        }.get(attr.strip().lower(), ["container"])
        EntryWriter(self._ldap, Layout(base, DEFAULT_ORGANIZATION)).add(
            Entry(base, classes, {attr.strip(): [value.strip()]}), parents=False
        )

    def _check_schema(self, subschema: str | None) -> None:
        if not subschema:
            return  # the server does not publish its schema: setting up will tell
        try:
            schema = self._ldap.read(
                "reading the schema", subschema, "(objectClass=subschema)", ["objectClasses"]
            )
        except LdapRefused:
            return  # not readable by this account: setting up will tell
        found = [v for v in values(schema or {}, "objectClasses") if "'sitemailChangeCounter'" in v]
        if not found:
            raise DirectoryMismatch(
                f"directory {self.url}: the server has no sitemail schema; load "
                f"{_schema_path()} into slapd (include it in slapd.conf) and restart it"
            )
        m = re.search(r"sitemail schema version (\d+)", found[0])
        if not m or int(m.group(1)) != SCHEMA_VERSION:
            have = m.group(1) if m else "unknown"
            raise DirectoryMismatch(
                f"directory {self.url}: the server has sitemail schema version {have}, this "
                f"sitemail needs version {SCHEMA_VERSION}; load {_schema_path()} into slapd"
            )

    def _set_up(self, layout: Layout) -> None:
        entry = Entry(
            layout.counter,
            ["sitemailChangeCounter"],
            {
                "sitemailChangeCounter": ["0"],
                "sitemailLockOwner": [FREE],
                "sitemailSchemaVersion": [str(SCHEMA_VERSION)],
                "sitemailOrganization": [layout.organization],
            },
        )
        try:
            EntryWriter(self._ldap, layout).add(entry)
        except LdapRefused as exc:
            if refused_as(exc, lx.LDAPEntryAlreadyExistsResult):
                return  # another process set it up at the same moment
            schema_errors = (lx.LDAPUndefinedAttributeTypeResult, lx.LDAPObjectClassViolationResult)
            if refused_as(exc, *schema_errors):
                raise DirectoryMismatch(
                    f"directory {self.url}: the server refused sitemail's entries "
                    f"({exc.result.message}); load {_schema_path()} into slapd"
                ) from None
            if refused_as(exc, lx.LDAPInsufficientAccessRightsResult):
                raise DirectoryError(
                    f"directory {self.url}: {self.settings.bind_dn or 'an anonymous bind'} may "
                    f"not write under {layout.config}; bind as an account that may"
                ) from None
            raise

    # ------------------------------------------------------------------ reads

    def get(self, cls: type[M], identity: str) -> M | None:
        with self._lock:
            if self._txn is not None:
                staged = self._txn.overlay.get((cls.kind, identity.lower()))
                if staged is _DELETED:
                    return None
                if isinstance(staged, cls):
                    return staged.model_copy(deep=True)
            dn = self.layout.dn(cls.kind, identity)
            if dn is None:
                return None
            attrs = self._ldap.read(
                f"reading {cls.kind} {identity!r}", dn, _kind_filter(cls.kind), ["sitemailObject"]
            )
        data = first(attrs, "sitemailObject")
        return None if data is None else cls.model_validate_json(data)

    def require(self, cls: type[M], identity: str) -> M:
        obj = self.get(cls, identity)
        if obj is None:
            raise ObjectNotFound(
                f"The operation couldn't be performed because object '{identity}' "
                f"couldn't be found ({cls.kind})."
            )
        return obj

    def list(self, cls: type[M]) -> builtins.list[M]:
        with self._lock:
            found = self._ldap.search(
                f"listing {cls.kind}",
                self.layout.list_base(cls.kind),
                _kind_filter(cls.kind),
                ["sitemailObject"],
                one_level=self.layout.list_one_level(cls.kind),
            )
            objects: dict[str, M] = {}
            for _dn, attrs in found:
                data = first(attrs, "sitemailObject")
                if data is not None:
                    obj = cls.model_validate_json(data)
                    objects[obj.identity.lower()] = obj
            if self._txn is not None:
                for (kind, key), staged in self._txn.overlay.items():
                    if kind != cls.kind:
                        continue
                    if isinstance(staged, cls):
                        objects[key] = staged.model_copy(deep=True)
                    else:
                        objects.pop(key, None)
        return [objects[k] for k in sorted(objects)]

    def change_counter(self) -> int:
        with self._lock:
            if self._txn is not None:
                return self._txn.counter + len(self._txn.changes)
            return self._read_counter()

    def _read_counter(self) -> int:
        attrs = self._ldap.read(
            "reading the change counter",
            self.layout.counter,
            "(objectClass=*)",
            ["sitemailChangeCounter"],
        )
        value = first(attrs, "sitemailChangeCounter")
        if value is None:
            raise DirectoryMismatch(
                f"directory {self.url}: its change counter {self.layout.counter} is gone; "
                "was the tree deleted while sitemail ran?"
            )
        return int(value)

    def changes_since(self, counter: int) -> builtins.list[Change]:
        with self._lock:
            now = self._read_counter()
            if now <= counter:
                return []
            found = self._ldap.search(
                "reading the change log",
                self.layout.change_log,
                f"(&(objectClass=sitemailChangeSet)(sitemailChangeNumber>={counter + 1}))",
                ["sitemailChangeNumber", "sitemailChange"],
                one_level=True,
            )
        changes = []
        for _dn, attrs in found:
            if int(first(attrs, "sitemailChangeNumber") or 0) > now:
                continue  # committed but not yet complete: its writer (or the next) finishes it
            for text in values(attrs, "sitemailChange"):
                c = json.loads(text)
                if c["n"] > counter:
                    changes.append(Change(int(c["n"]), str(c["kind"]), str(c["identity"]), c["op"]))
        return sorted(changes, key=lambda c: c.counter)

    # ----------------------------------------------------------------- writes

    def create(self, obj: Model) -> None:
        with self.transaction():
            if self.get(type(obj), obj.identity) is not None:
                raise ObjectExists(
                    f"The object '{obj.identity}' already exists ({obj.kind}); "
                    "choose another name or change the existing one with Set-"
                )
            self._stage_put(obj)

    def put(self, obj: Model) -> None:
        with self.transaction():
            self._stage_put(obj)

    def delete(self, cls: type[Model], identity: str) -> None:
        with self.transaction():
            if self.get(cls, identity) is None:
                raise ObjectNotFound(
                    f"The operation couldn't be performed because object '{identity}' "
                    f"couldn't be found ({cls.kind})."
                )
            txn = self._active()
            dn = self.layout.dn(cls.kind, identity)
            txn.overlay[(cls.kind, identity.lower())] = _DELETED
            txn.changes.append(
                {
                    "kind": cls.kind,
                    "identity": identity,
                    "op": "delete",
                    "dn": dn,
                    "view": self.layout.view_container(cls.kind, identity),
                }
            )

    def _stage_put(self, obj: Model) -> None:
        txn = self._active()
        # Built now, inside the lock, so a change set holds everything needed to redo it.
        entries = self.layout.entries(obj, self.get)
        txn.overlay[(obj.kind, obj.identity.lower())] = obj.model_copy(deep=True)
        txn.changes.append(
            {
                "kind": obj.kind,
                "identity": obj.identity,
                "op": "put",
                "entries": [[e.dn, e.classes, e.attrs] for e in entries],
                "view": self.layout.view_container(obj.kind, obj.identity),
            }
        )

    def _active(self) -> _Txn:
        assert self._txn is not None, "writes run inside transaction()"
        return self._txn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._txn = self._begin()
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    txn, self._txn = self._txn, None
                    assert txn is not None
                    self._release_quietly(txn.token)
                raise
            self._depth -= 1
            if outer:
                txn, self._txn = self._txn, None
                assert txn is not None
                self._commit(txn)

    # ----------------------------------------------------- lock and change log

    def _begin(self) -> _Txn:
        token = f"{uuid.uuid4().hex} {socket.gethostname()} {os.getpid()}"
        self._acquire(token)
        try:
            counter = self._complete_pending(token)
        except BaseException:
            self._release_quietly(token)
            raise
        return _Txn(token, counter)

    def _acquire(self, token: str) -> None:
        lease = self.settings.lease
        deadline = time.monotonic() + max(30.0, lease + 5.0)
        seen, seen_since = "", 0.0
        delay = 0.002
        while True:
            if self._swap_lock(FREE, token):
                return
            owner = self._lock_owner()
            if owner == token:
                return  # our own earlier attempt took it, its answer was lost
            if owner == self._abandoned and self._swap_lock(owner, token):
                self._abandoned = None
                return
            now = time.monotonic()
            if owner != seen:
                seen, seen_since = owner, now
            elif owner != FREE and now - seen_since >= lease and self._swap_lock(owner, token):
                log.warning(
                    "directory %s: took over the write lock from %s, which held it "
                    "for more than %g s",
                    self.url,
                    owner,
                    lease,
                )
                return
            if now > deadline:
                raise DirectoryBusy(
                    f"directory {self.url}: another writer ({seen}) held the write lock "
                    f"for {now - seen_since:.0f} s; try again"
                )
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.025)

    def _swap_lock(
        self, old: str, new: str, counter: int | None = None, *, retry: bool = True
    ) -> bool:
        """Swap the lock from ``old`` to ``new`` if it is still ``old`` (and set the counter)."""
        changes: dict[str, list[tuple[str, list[str]]]] = {
            "sitemailLockOwner": [(MODIFY_DELETE, [old]), (MODIFY_ADD, [new])]
        }
        if counter is not None:
            changes["sitemailChangeCounter"] = [(MODIFY_REPLACE, [str(counter)])]

        def op(c: Connection) -> bool:
            try:
                c.modify(self.layout.counter, changes)
            except lx.LDAPNoSuchAttributeResult:
                return False
            except lx.LDAPAttributeOrValueExistsResult:
                return old == new
            return True

        return self._ldap.call("taking the write lock", op, retry=retry)

    def _lock_owner(self) -> str:
        attrs = self._ldap.read(
            "reading the write lock", self.layout.counter, "(objectClass=*)", ["sitemailLockOwner"]
        )
        return first(attrs, "sitemailLockOwner") or FREE

    def _release_quietly(self, token: str) -> None:
        try:
            self._swap_lock(token, FREE, retry=False)
        except DirectoryError as exc:
            # The lock stays taken until its lease runs out (or this handle takes it back).
            self._abandoned = token
            log.warning("directory %s: could not give the write lock back: %s", self.url, exc)

    def _complete_pending(self, token: str) -> int:
        """The committed counter, after completing change sets a writer left half-done."""
        counter = self._read_counter()
        while True:
            pending = self._ldap.read(
                "reading the change log",
                f"CN={counter + 1},{self.layout.change_log}",
                "(objectClass=sitemailChangeSet)",
                ["sitemailChangeNumber", "sitemailChangeData", "sitemailWriter"],
            )
            if pending is None:
                return counter
            last = int(first(pending, "sitemailChangeNumber") or counter + 1)
            log.warning(
                "directory %s: completing changes %d-%d that writer %s left unfinished",
                self.url,
                counter + 1,
                last,
                first(pending, "sitemailWriter"),
            )
            data: builtins.list[dict[str, object]] = [
                json.loads(v) for v in values(pending, "sitemailChangeData")
            ]
            try:
                self.writer.apply(sorted(data, key=lambda d: int(str(d["n"]))))
            except DirectoryUnavailable:
                raise
            except DirectoryError as exc:
                # What the server refuses for good stays refused: the counter moves on, or
                # no writer could ever write again.
                log.error("directory %s: changes %d-%d: %s", self.url, counter + 1, last, exc)
            if not self._swap_lock(token, token, counter=last):
                raise DirectoryBusy(f"directory {self.url}: lost the write lock; try again")
            counter = last

    def _commit(self, txn: _Txn) -> None:
        if not txn.changes:
            self._release_quietly(txn.token)
            return
        first_n = txn.counter + 1
        last_n = txn.counter + len(txn.changes)
        numbered = [{**c, "n": first_n + i} for i, c in enumerate(txn.changes)]
        # Refresh the lock: proves it is still ours just before the commit point.
        refreshed = f"{txn.token} {last_n}"
        if not self._swap_lock(txn.token, refreshed):
            raise DirectoryBusy(
                f"directory {self.url}: the write lock was taken over (this transaction took "
                f"longer than the lease of {self.settings.lease:g} s); nothing was written"
            )
        change_set = Entry(
            f"CN={first_n},{self.layout.change_log}",
            ["sitemailChangeSet"],
            {
                "sitemailChangeFirst": [str(first_n)],
                "sitemailChangeNumber": [str(last_n)],
                "sitemailWriter": [refreshed],
                "sitemailChange": [
                    json.dumps({k: c[k] for k in ("n", "kind", "identity", "op")}) for c in numbered
                ],
                "sitemailChangeData": [json.dumps(c) for c in numbered],
            },
        )
        try:
            self.writer.add(change_set, parents=False)
        except LdapRefused as exc:
            if not refused_as(exc, lx.LDAPEntryAlreadyExistsResult):
                self._release_quietly(refreshed)
                raise
            writer = first(
                self._ldap.read(
                    "reading the change log", change_set.dn, "(objectClass=*)", ["sitemailWriter"]
                ),
                "sitemailWriter",
            )
            if writer != refreshed:  # not our own add whose answer was lost
                self._release_quietly(refreshed)
                raise DirectoryBusy(
                    f"directory {self.url}: another writer committed change {first_n} while "
                    "this one held the write lock; nothing was written, try again"
                ) from None
        except DirectoryUnavailable as exc:
            self._release_quietly(refreshed)
            raise DirectoryUnavailable(
                f"{exc}; if the server recorded the change before it stopped answering, the "
                "next write completes it, else nothing was written"
            ) from None
        except BaseException:
            self._release_quietly(refreshed)
            raise
        # Committed.  If the server goes away from here on, the next writer completes it.
        refused: DirectoryError | None = None
        try:
            self.writer.apply(numbered)
            released = self._swap_lock(refreshed, FREE, counter=last_n)
        except DirectoryUnavailable as exc:
            self._abandoned = refreshed
            raise DirectoryUnavailable(
                f"{exc}; the change is saved in the directory's change log and the next "
                "write completes it"
            ) from None
        except DirectoryError as exc:
            refused = exc
            released = self._swap_lock(refreshed, FREE, counter=last_n)
        if not released:
            log.warning(
                "directory %s: the write lock was taken over during the commit; the writer "
                "that took it completes changes %d-%d",
                self.url,
                first_n,
                last_n,
            )
        if refused is not None:
            raise refused

    def close(self) -> None:
        with self._lock:
            self._ldap.close()


def _kind_filter(kind: str) -> str:
    return f"(sitemailKind={escape_filter_chars(kind)})"


def _schema_path() -> str:
    return os.path.join(os.path.dirname(__file__), "sitemail.schema")
