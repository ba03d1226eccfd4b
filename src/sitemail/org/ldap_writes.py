"""Writing an LDAP directory's entries: every step can be done twice with the same result.

A committed change set (see :mod:`.ldap_directory`) is written by its own
writer, and again by the next writer if the first one stopped halfway; so a
put is a modify that replaces every attribute (or an add when the entry is
missing, its parents created first as placeholders), and a delete of an entry
that is gone is done.  An entry that still holds others (a server with its
receive connectors) is not deleted but emptied back to a placeholder.
"""

from __future__ import annotations

import logging
from typing import cast

from ldap3 import MODIFY_REPLACE, Connection
from ldap3.core import exceptions as lx

from sitemail.org.directory import DirectoryError
from sitemail.org.ldap_connection import LdapConnection, LdapRefused, refused_as
from sitemail.org.ldap_layout import Entry, Layout, parent_dn, same_dn

log = logging.getLogger("sitemail.directory")

Modifications = dict[str, list[tuple[str, list[str]]]]


class EntryWriter:
    def __init__(self, ldap: LdapConnection, layout: Layout) -> None:
        self.ldap = ldap
        self.layout = layout
        self.url = ldap.settings.url

    def apply(self, changes: list[dict[str, object]]) -> None:
        """Write the entries of committed changes (as a change set holds them), in order."""
        refused = []
        for change in changes:
            try:
                if change["op"] == "put":
                    entries = entries_of(change)
                    self.upsert(entries[0])
                    if change.get("view"):
                        self.sync_children(str(change["view"]), entries[1:])
                else:
                    if change.get("view"):
                        self.sync_children(str(change["view"]), [])
                    self.remove(str(change["dn"]))
            except LdapRefused as exc:
                # The server refuses this entry for good; stopping here would stop every
                # later writer too, so the rest goes on and the refusal is reported.
                log.error("directory %s: the server refused %s: %s", self.url, change, exc)
                refused.append(f"{change['kind']} {change['identity']!r}: {exc.result.message}")
        if refused:
            raise DirectoryError(f"directory {self.url}: the server refused {'; '.join(refused)}")

    def upsert(self, entry: Entry, *, again: bool = True) -> None:
        """Make the entry exactly this: every attribute replaced, created if missing."""
        changes: Modifications = {k: [(MODIFY_REPLACE, v)] for k, v in entry.attrs.items()}
        changes["objectClass"] = [(MODIFY_REPLACE, [*entry.classes, "top"])]

        def op(c: Connection) -> str:
            try:
                c.modify(entry.dn, changes)
            except lx.LDAPNoSuchObjectResult:
                return "add"
            except lx.LDAPObjectClassModsProhibitedResult:
                return "replace"  # another structural class (a virtual directory's type changed)
            return "done"

        outcome = self.ldap.call(f"writing {entry.dn}", op)
        if outcome == "done":
            return
        if outcome == "replace":
            self.remove(entry.dn)
        try:
            self.add(entry)
        except LdapRefused as exc:
            if not (again and refused_as(exc, lx.LDAPEntryAlreadyExistsResult)):
                raise
            # An earlier attempt of ours added it and its answer was lost (once only: an
            # entry that can neither change class nor go is the server's to refuse).
            self.upsert(entry, again=False)

    def add(self, entry: Entry, *, parents: bool = True) -> None:
        """Add an entry, creating missing parents as placeholders first."""
        attrs = {k: v for k, v in entry.attrs.items() if v}

        def op(c: Connection) -> bool:
            try:
                c.add(entry.dn, entry.classes, attrs)
            except lx.LDAPNoSuchObjectResult:
                if not parents:
                    raise
                return False
            return True

        if self.ldap.call(f"adding {entry.dn}", op):
            return
        parent = parent_dn(entry.dn)
        try:
            self.add(Entry(parent, self.layout.placeholder_classes(parent)))
        except LdapRefused as exc:
            if not refused_as(exc, lx.LDAPEntryAlreadyExistsResult):
                raise  # (already there: another writer's placeholder)
        self.add(entry, parents=False)

    def remove(self, dn: str) -> None:
        """Delete an entry; one that holds others is emptied back to a placeholder."""

        def op(c: Connection) -> str:
            try:
                c.delete(dn)
            except lx.LDAPNoSuchObjectResult:
                return "gone"
            except lx.LDAPNotAllowedOnNotLeafResult:
                return "keep"
            return "gone"

        if self.ldap.call(f"deleting {dn}", op) == "keep":
            attrs = self.ldap.read(f"reading {dn}", dn, "(objectClass=*)", ["*"]) or {}
            keep = {"objectclass", dn.split("=", 1)[0].strip().lower()}  # and the RDN's type
            cleared: Modifications = {
                k: [(MODIFY_REPLACE, [])] for k in attrs if k.lower() not in keep
            }
            if cleared:
                self.ldap.call(f"clearing {dn}", lambda c: c.modify(dn, cleared))

    def sync_children(self, folder: str, wanted: list[Entry]) -> None:
        """Make the entries right below ``folder`` exactly ``wanted``."""
        present = self.ldap.search(
            f"listing {folder}", folder, "(objectClass=*)", ["1.1"], one_level=True
        )
        for dn, _ in present:
            if not any(same_dn(dn, e.dn) for e in wanted):
                self.remove(dn)
        for e in wanted:
            self.upsert(e)


def entries_of(change: dict[str, object]) -> list[Entry]:
    """The entries a put of a change set writes (as JSON left them: lists)."""
    rows = cast(list[tuple[str, list[str], dict[str, list[str]]]], change["entries"])
    return [Entry(dn, list(classes), dict(attrs)) for dn, classes, attrs in rows]
