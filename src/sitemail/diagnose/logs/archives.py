"""Logs as administrators send them: a ``.zip`` of the log folders, or ``.gz`` files.

:func:`unpacked` gives plain files to read: folders and ``.log`` files as
they are, the members of a zip and the contents of ``.gz`` files (also
inside folders and zips) decompressed into a private temporary folder that
is removed afterwards.  Members are read in bounded chunks; a member whose
name would leave the folder (``../``, an absolute path) is refused, and so
is an archive that would unpack to more than :data:`MAX_UNPACKED` bytes.
:meth:`Unpacked.label` turns a temporary path back into the name the user
knows (``logs.zip!EX01/SmtpSend/SEND20240101-1.LOG``).
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

#: Most bytes unpacked from the archives of one run (a guard against zip bombs).
MAX_UNPACKED = 64 * 1024**3
_CHUNK = 1024 * 1024


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ArchiveError(ValueError):
    """An archive that cannot be read safely; the message says which and why."""


@dataclass(slots=True)
class Unpacked:
    paths: list[Path]
    """What to read: the user's folders and files, and the unpacked copies."""
    labels: dict[str, str] = field(default_factory=dict)
    """Temporary folder prefix -> the name the user gave (``logs.zip!``)."""
    total: int = 0

    def label(self, text: str) -> str:
        """A path (or ``path:line``) under a temporary folder, as the user knows it."""
        for prefix, name in self.labels.items():
            if text.startswith(prefix):
                return name + text[len(prefix) :].lstrip("/")
        return text


def _copy(source: _Readable, target: Path, budget: list[int], what: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ArchiveError(
                    f"{what}: unpacks to more than {MAX_UNPACKED // 1024**3} GiB; unpack it "
                    "yourself and pass the folder"
                )
            out.write(chunk)


def _safe_member(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ArchiveError(f"{archive}: member {name!r} would be written outside the folder")
    return path


def _gunzip_name(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def _unzip(archive: Path, into: Path, budget: list[int]) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.is_dir():
                    continue
                member = _safe_member(info.filename, str(archive))
                target = into / member
                with z.open(info) as source:
                    if member.name.lower().endswith(".gz"):
                        with gzip.open(source) as inner:
                            _copy(inner, into / _gunzip_name(str(member)), budget, str(archive))
                    else:
                        _copy(source, target, budget, str(archive))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveError(f"{archive}: not a readable zip file ({exc})") from exc


def _gunzip(path: Path, target: Path, budget: list[int]) -> None:
    try:
        with gzip.open(path) as source:
            _copy(source, target, budget, str(path))
    except (OSError, EOFError) as exc:
        raise ArchiveError(f"{path}: not a readable gzip file ({exc})") from exc


def _gz_in(folder: Path) -> Iterator[Path]:
    for directory, _subdirs, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(".gz"):
                yield Path(directory, name)


@contextmanager
def unpacked(paths: Iterable[Path | str]) -> Iterator[Unpacked]:
    """Plain files and folders for ``paths``; temporary copies are removed on exit."""
    tmp: Path | None = None
    out = Unpacked([])
    budget = [MAX_UNPACKED]

    def scratch(name: str) -> Path:
        nonlocal tmp
        if tmp is None:
            tmp = Path(tempfile.mkdtemp(prefix="sitemail-logs-"))
        folder = tmp / str(len(out.labels))
        folder.mkdir()
        out.labels[str(folder) + "/"] = name
        return folder

    try:
        for given in paths:
            path = Path(given)
            if path.is_file() and zipfile.is_zipfile(path):
                folder = scratch(f"{path}!")
                _unzip(path, folder, budget)
                out.paths.append(folder)
            elif path.is_file() and path.name.lower().endswith(".gz"):
                folder = scratch(f"{path.parent}/")
                _gunzip(path, folder / _gunzip_name(path.name), budget)
                out.paths.append(folder)
            else:
                out.paths.append(path)
                if path.is_dir():
                    packed = list(_gz_in(path))
                    if packed:
                        folder = scratch(f"{path}/")
                        for gz in packed:
                            rel = gz.relative_to(path)
                            _gunzip(gz, folder / _gunzip_name(str(rel)), budget)
                        out.paths.append(folder)
        out.total = MAX_UNPACKED - budget[0]
        yield out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
