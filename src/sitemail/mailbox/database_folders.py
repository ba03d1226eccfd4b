"""The folder operations of a mailbox database: list, find, create, rename, move, delete,
and the properties a folder has beside its name (``folder_properties``)."""

from __future__ import annotations

import json
from typing import Any

from sitemail.mailbox import folder_tree as tree
from sitemail.mailbox.database_core import DatabaseCore
from sitemail.mailbox.errors import Conflict, FolderNotFound, InvalidRequest
from sitemail.mailbox.folder_tree import FolderRef
from sitemail.mailbox.limits import (
    MAX_FOLDER_DEPTH,
    MAX_FOLDERS,
    folder_class_name,
    folder_name,
    mailbox_key,
    path_key,
)
from sitemail.mailbox.records import Folder, ItemProperties

#: Largest JSON of a folder's properties (permissions, extended properties, user
#: configurations with their XML and binary data).
MAX_FOLDER_PROPERTIES = 1024 * 1024


class FolderOperations(DatabaseCore):
    """A mailbox's folder tree (the tree rules themselves are :mod:`.folder_tree`'s)."""

    # ------------------------------------------------------- folders

    def list_folders(self, mailbox: str, *, everything: bool = False) -> list[Folder]:
        """The folders of the Top of Information Store, parents before children;
        ``everything``: and Exchange's own beside it (what only EWS shows)."""
        box = self._mailbox(mailbox)
        with self._lock:
            return tree.all_folders(self._conn, box, everything=everything)

    def get_folder(self, mailbox: str, folder: FolderRef) -> Folder:
        box = self._mailbox(mailbox)
        with self._lock:
            return tree.folder_record(self._conn, tree.folder_row(self._conn, box, folder))

    def find_folder(self, mailbox: str, path: str) -> Folder:
        """The folder at ``path`` (names joined by ``/``, compared case-insensitively)."""
        wanted = path_key(path)
        for found in self.list_folders(mailbox):
            if path_key(found.path) == wanted:
                return found
        raise FolderNotFound(f"mailbox {mailbox_key(mailbox)} has no folder {path[:300]!r}")

    def create_folder(
        self,
        mailbox: str,
        name: str,
        parent: FolderRef | None = None,
        folder_class: str = "IPF.Note",
    ) -> Folder:
        """A new folder; ``folder_class`` ``""`` for one without a class (an EWS Folder)."""
        name = folder_name(name)
        folder_class = folder_class_name(folder_class)
        box = self._mailbox(mailbox)
        with self._write() as conn:
            count = int(
                conn.execute(
                    "SELECT COUNT(*) FROM folders WHERE mailbox_id=?", (box.id,)
                ).fetchone()[0]
            )
            if count >= MAX_FOLDERS:
                raise Conflict(
                    f"mailbox {box.name} already has {count} folders (at most {MAX_FOLDERS}): "
                    "delete some first"
                )
            parent_id = None
            if parent is not None:
                parent_id = tree.folder_id(conn, box, parent)
                if len(tree.ancestors(conn, parent_id)) + 2 > MAX_FOLDER_DEPTH:
                    raise InvalidRequest(
                        f"folder {name!r} would be nested deeper than {MAX_FOLDER_DEPTH} levels"
                    )
            new_id = self._insert_folder(
                conn, box, parent_id, name, None, folder_class=folder_class
            )
            self._bump(conn, box, {new_id})
            return tree.folder_record(conn, tree.folder_row(conn, box, new_id))

    def rename_folder(self, mailbox: str, folder: FolderRef, name: str) -> Folder:
        name = folder_name(name)
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = tree.folder_row(conn, box, folder)
            tree.check_user_folder(row, "renamed")
            this = int(row["id"])
            tree.check_free(conn, box, row["parent_id"], name, exclude=this)
            conn.execute(
                "UPDATE folders SET name=?, name_key=? WHERE id=?", (name, name.casefold(), this)
            )
            self._bump(conn, box, {this})
            return tree.folder_record(conn, tree.folder_row(conn, box, this))

    def move_folder(self, mailbox: str, folder: FolderRef, parent: FolderRef | None) -> Folder:
        """Put a folder (and what it holds) under ``parent``, or at the top if ``None``."""
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = tree.folder_row(conn, box, folder)
            tree.check_user_folder(row, "moved")
            this = int(row["id"])
            parent_id = None
            if parent is not None:
                parent_id = tree.folder_id(conn, box, parent)
                chain = tree.ancestors(conn, parent_id)
                if parent_id == this or this in chain:
                    raise InvalidRequest(
                        f"folder {row['name']!r} cannot be moved into itself or its subfolders"
                    )
                if len(chain) + 1 + tree.subtree_height(conn, this) > MAX_FOLDER_DEPTH:
                    raise InvalidRequest(
                        f"folder {row['name']!r} would be nested deeper than "
                        f"{MAX_FOLDER_DEPTH} levels"
                    )
            tree.check_free(conn, box, parent_id, str(row["name"]), exclude=this)
            conn.execute(
                "UPDATE folders SET parent_id=?, parent_key=? WHERE id=?",
                (parent_id, parent_id or 0, this),
            )
            self._bump(conn, box, {this})
            return tree.folder_record(conn, tree.folder_row(conn, box, this))

    def delete_folder(self, mailbox: str, folder: FolderRef) -> list[int]:
        """Delete a user folder with its subfolders and their messages, for good.

        Returns the ids of the folders removed.  (OWA moves a folder to Deleted
        Items with :meth:`move_folder` instead.)
        """
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = tree.folder_row(conn, box, folder)
            tree.check_user_folder(row, "deleted")
            doomed = tree.subtree(conn, int(row["id"]))
            for doomed_id in doomed:
                content_ids = [
                    int(r[0])
                    for r in conn.execute(
                        "SELECT DISTINCT content_id FROM messages WHERE folder_id=?", (doomed_id,)
                    )
                ]
                conn.execute("DELETE FROM messages WHERE folder_id=?", (doomed_id,))
                conn.execute("DELETE FROM folder_properties WHERE folder_id=?", (doomed_id,))
                conn.execute("DELETE FROM expunged WHERE folder_id=?", (doomed_id,))
                self._collect(conn, content_ids)
            # Children first, so no row ever points at a missing parent.
            for doomed_id in reversed(doomed):
                conn.execute("DELETE FROM folders WHERE id=?", (doomed_id,))
            self._bump(conn, box, set())
            return doomed

    def get_folder_properties(self, mailbox: str, folder: FolderRef) -> ItemProperties:
        """What a client set on a folder beside its name ({} when nothing), with its modseq."""
        box = self._mailbox(mailbox)
        with self._lock:
            row = tree.folder_row(self._conn, box, folder)
            found = self._conn.execute(
                "SELECT data FROM folder_properties WHERE folder_id=?", (row["id"],)
            ).fetchone()
        data = json.loads(found[0]) if found is not None else {}
        return ItemProperties(properties=data, modseq=int(row["modseq"]))

    def set_folder_properties(
        self, mailbox: str, folder: FolderRef, properties: dict[str, Any]
    ) -> ItemProperties:
        """Replace a folder's properties ({} removes them); the folder's modseq moves."""
        text = json.dumps(properties, ensure_ascii=False, separators=(",", ":"))
        if len(text) > MAX_FOLDER_PROPERTIES:
            raise InvalidRequest(
                f"folder properties of {len(text)} bytes are more than the store keeps "
                f"({MAX_FOLDER_PROPERTIES}): remove some first"
            )
        box = self._mailbox(mailbox)
        with self._write() as conn:
            this = int(tree.folder_row(conn, box, folder)["id"])
            modseq = self._bump(conn, box, {this})
            if properties:
                conn.execute(
                    "INSERT OR REPLACE INTO folder_properties(folder_id, data) VALUES (?,?)",
                    (this, text),
                )
            else:
                conn.execute("DELETE FROM folder_properties WHERE folder_id=?", (this,))
            return ItemProperties(properties=properties, modseq=modseq)
