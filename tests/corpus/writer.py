"""Log files as Exchange writes them: headers, CRLF, daily/hourly names, size rotation,
folder layouts, and the org folder written plain, with each file gzipped, or as one zip.

Rows are collected per (server, log) as ``(time_ms, text)`` where ``text`` is
the row without its date-time; they are sorted by time (a stable sort: rows
of one session keep their order) so concurrent sessions interleave.
"""

from __future__ import annotations

import gzip
import shutil
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path

from tests.corpus.exchange import (
    FIELDS,
    RECEIVE_TYPE,
    SEND_TYPE,
    TRACKING_FIELDS_2007,
    TRACKING_FIELDS_2010,
    TRACKING_FIELDS_2013,
    TRACKING_TYPE,
)
from tests.corpus.org import Hub, Org

Row = tuple[int, str]
LAYOUTS = ("transportroles", "v14", "flat", "lower-logs")


def q(value: str) -> str:
    """A CSV field: quoted when it holds a comma, a quote or a line break."""
    if "," in value or '"' in value or "\n" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


class Logs:
    """Every log row of one organization, per (server name, log)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[Row]] = {}

    def of(self, hub: Hub, log: str) -> list[Row]:
        """``log``: ``recv``, ``recv-fe`` (2013+ front end), ``send`` or ``track``."""
        key = (hub.name, log)
        rows = self.rows.get(key)
        if rows is None:
            rows = self.rows[key] = []
        return rows


def stamper() -> Callable[[int], str]:
    cache: dict[int, str] = {}

    def stamp(t: int) -> str:
        minute, rest = divmod(t, 60000)
        prefix = cache.get(minute)
        if prefix is None:
            prefix = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
            cache[minute] = prefix
        sec, ms = divmod(rest, 1000)
        return f"{prefix}{sec:02d}.{ms:03d}Z"

    return stamp


def _folder(hub: Hub, log: str, layout: str) -> str:
    leaf = {
        "recv": "SmtpReceive",
        "recv-fe": "SmtpReceive",
        "send": "SmtpSend",
        "track": "MessageTracking",
    }[log]
    service = "FrontEnd" if log == "recv-fe" else "Hub"
    if layout == "lower-logs":
        sub = "/frontend" if log == "recv-fe" else ""
        return f"{hub.name.lower()}-logs{sub}"
    if layout == "flat":
        return (
            f"{hub.name}/{service}/{leaf}"
            if hub.modern and log != "track"
            else f"{hub.name}/{leaf}"
        )
    base = f"{hub.name}/TransportRoles/Logs"
    if layout == "v14":
        version = {"2007": "", "2010": "V14/"}.get(hub.release, "V15/")
        base = f"{hub.name}/Exchange Server/{version}TransportRoles/Logs"
    if log == "track":
        return f"{base}/MessageTracking"
    if hub.modern:
        return f"{base}/{service}/ProtocolLog/{leaf}"
    return f"{base}/ProtocolLog/{leaf}"


def _header(hub: Hub, log: str, first: str) -> str:
    kind = {
        "recv": RECEIVE_TYPE,
        "recv-fe": RECEIVE_TYPE,
        "send": SEND_TYPE,
        "track": TRACKING_TYPE,
    }[log]
    if log == "track":
        fields = {"2007": TRACKING_FIELDS_2007, "2010": TRACKING_FIELDS_2010}.get(
            hub.release, TRACKING_FIELDS_2013
        )
    else:
        fields = FIELDS
    label = "#Log-Type" if hub.modern else "#Log-type"
    return (
        f"#Software: Microsoft Exchange Server\r\n#Version: {hub.version}\r\n"
        f"{label}: {kind}\r\n#Date: {first}\r\n#Fields: {fields}\r\n"
    )


class Emitter:
    """Writes files of one org: plain, gzipped one by one, or into one zip."""

    def __init__(self, root: Path, name: str, mode: str | None, stamp_time: int) -> None:
        self.root = root
        self.name = name
        self.mode = mode
        self.zip: zipfile.ZipFile | None = None
        when = datetime.fromtimestamp(stamp_time / 1000, UTC)
        self.date_time = (when.year, when.month, when.day, when.hour, when.minute, when.second)
        if mode == "zip":
            self.path = root / f"{name}.zip"
            self.zip = zipfile.ZipFile(self.path, "w", zipfile.ZIP_DEFLATED)
        else:
            self.path = root / name
            self.path.mkdir(parents=True, exist_ok=True)
        self.made: set[str] = set()

    def write(self, rel: str, data: bytes) -> None:
        if self.zip is not None:
            info = zipfile.ZipInfo(f"{self.name}/{rel}", self.date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            self.zip.writestr(info, data, compresslevel=1)
            return
        path = self.path / rel
        folder = str(path.parent)
        if folder not in self.made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.made.add(folder)
        if self.mode == "gz":
            path.with_name(path.name + ".gz").write_bytes(
                gzip.compress(data, compresslevel=1, mtime=0)
            )
        else:
            path.write_bytes(data)

    def close(self) -> Path:
        if self.zip is not None:
            self.zip.close()
        return self.path


def write_org(org: Org, logs: Logs, root: Path, mode: str | None, rotate: int) -> Path:
    """Write every log of ``org`` under ``root``; return the path to give ``--logs``.

    An earlier generation of the same organization (folder or zip) is replaced.
    """
    shutil.rmtree(root / org.name, ignore_errors=True)
    (root / f"{org.name}.zip").unlink(missing_ok=True)
    emitter = Emitter(root, org.name, mode, org.t1)
    stamp = stamper()
    for hub in org.hubs:
        for log in ("recv", "recv-fe", "send", "track"):
            rows = logs.rows.get((hub.name, log))
            if not rows:
                continue
            rows.sort(key=itemgetter(0))
            _write_log(emitter, hub, log, rows, rotate, stamp)
    return emitter.close()


def _write_log(
    emitter: Emitter, hub: Hub, log: str, rows: list[Row], rotate: int, stamp: Callable[[int], str]
) -> None:
    folder = _folder(hub, log, hub.layout)
    prefix = {"recv": "RECV", "recv-fe": "RECV", "send": "SEND", "track": "MSGTRK"}[log]
    period_ms = 3600_000 if hub.modern else 86400_000
    fmt = "%Y%m%d%H" if hub.modern else "%Y%m%d"
    period = -1
    number = 0
    chunk: list[str] = []
    size = 0
    name = ""

    def flush() -> None:
        if chunk:
            emitter.write(f"{folder}/{name}", "".join(chunk).encode("utf-8"))

    for t, text in rows:
        p = t // period_ms
        if p != period or size >= rotate:
            flush()
            if p != period:
                period, number = p, 0
            number += 1
            day = datetime.fromtimestamp(p * period_ms / 1000, UTC).strftime(fmt)
            name = f"{prefix}{day}-{number}.LOG"
            header = _header(hub, log, stamp(max(t - 7, p * period_ms)))
            chunk = [header]
            size = len(header)
        line = f"{stamp(t)},{text}\r\n"
        chunk.append(line)
        size += len(line)
    flush()
