"""The embedded directory: one SQLite file, shared by every process of a lab.

WAL mode lets readers run beside one writer; ``busy_timeout`` makes a writer
wait for another process instead of failing.  Each write also appends to a
change log, whose row id is the change counter.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sitemail.org.directory import Change, DirectoryError, M, ObjectExists, ObjectNotFound
from sitemail.org.model import Model

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    identity TEXT NOT NULL COLLATE NOCASE,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, identity)
);
CREATE TABLE IF NOT EXISTS changes (
    counter INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    identity TEXT NOT NULL,
    op TEXT NOT NULL
);
"""


class SqliteDirectory:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise DirectoryError(
                f"directory file {self.path}: folder {self.path.parent} does not exist"
            )
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = sqlite3.connect(
            str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        with self.transaction():
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)

    # ------------------------------------------------------------------ reads

    def get(self, cls: type[M], identity: str) -> M | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM objects WHERE kind=? AND identity=?", (cls.kind, identity)
            ).fetchone()
        return None if row is None else cls.model_validate_json(row[0])

    def require(self, cls: type[M], identity: str) -> M:
        obj = self.get(cls, identity)
        if obj is None:
            raise ObjectNotFound(
                f"The operation couldn't be performed because object '{identity}' "
                f"couldn't be found ({cls.kind})."
            )
        return obj

    def list(self, cls: type[M]) -> list[M]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT data FROM objects WHERE kind=? ORDER BY identity", (cls.kind,)
            ).fetchall()
        return [cls.model_validate_json(r[0]) for r in rows]

    def change_counter(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COALESCE(MAX(counter), 0) FROM changes").fetchone()
        return int(row[0])

    def changes_since(self, counter: int) -> builtins.list[Change]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT counter, kind, identity, op FROM changes WHERE counter>? ORDER BY counter",
                (counter,),
            ).fetchall()
        return [Change(int(c), str(k), str(i), str(o)) for c, k, i, o in rows]

    # ----------------------------------------------------------------- writes

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                # IMMEDIATE takes the write lock now, so two processes never
                # both read-then-write the same object.
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    def _write(self, obj: Model) -> None:
        self._conn.execute(
            "INSERT INTO objects(kind, identity, data) VALUES(?,?,?) "
            "ON CONFLICT(kind, identity) DO UPDATE SET data=excluded.data",
            (obj.kind, obj.identity, obj.model_dump_json()),
        )
        self._log(obj.kind, obj.identity, "put")

    def _log(self, kind: str, identity: str, op: str) -> None:
        self._conn.execute(
            "INSERT INTO changes(kind, identity, op) VALUES(?,?,?)", (kind, identity, op)
        )

    def create(self, obj: Model) -> None:
        with self.transaction():
            if self.get(type(obj), obj.identity) is not None:
                raise ObjectExists(
                    f"The object '{obj.identity}' already exists ({obj.kind}); "
                    "choose another name or change the existing one with Set-"
                )
            self._write(obj)

    def put(self, obj: Model) -> None:
        with self.transaction():
            self._write(obj)

    def delete(self, cls: type[Model], identity: str) -> None:
        with self.transaction():
            cur = self._conn.execute(
                "DELETE FROM objects WHERE kind=? AND identity=?", (cls.kind, identity)
            )
            if cur.rowcount == 0:
                raise ObjectNotFound(
                    f"The operation couldn't be performed because object '{identity}' "
                    f"couldn't be found ({cls.kind})."
                )
            self._log(cls.kind, identity, "delete")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
