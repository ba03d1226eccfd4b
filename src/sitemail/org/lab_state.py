"""The lab's state file (``lab.json``): which process runs each host of the organization.

``sitemail lab up`` (:mod:`sitemail.lab.supervisor`) writes it; the tools that
find a running host by name (``sitemail asa``, the live troubleshooter) read
it here, so that they need not import the supervisor above them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "lab.json"
EMBEDDED_DIRECTORY = "directory.db"


def default_lab_dir() -> Path:
    env = os.environ.get("SITEMAIL_LAB")
    return Path(env) if env else Path.home() / ".sitemail" / "lab"


@dataclass
class ProcessRecord:
    name: str
    kind: str  # server | firewall | internet | directory (the lab's own slapd)
    site: str
    address: str
    pid: int = 0
    home: str = ""
    started: str = ""


@dataclass
class LabState:
    lab_dir: str
    topology: str
    port_offset: int
    processes: list[ProcessRecord] = field(default_factory=list)
    # The directory URL the lab's processes are started with; "" for the embedded
    # directory.db in the lab folder (and in a lab.json written before there was a choice).
    directory: str = ""
    # The sites whose servers and firewalls this folder supervises (`lab up --only-site`);
    # None: every one of the topology.
    only_sites: list[str] | None = None

    def directory_url(self) -> str:
        return self.directory or str(Path(self.lab_dir) / EMBEDDED_DIRECTORY)

    @classmethod
    def load(cls, lab_dir: Path) -> LabState | None:
        path = lab_dir / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        procs = [ProcessRecord(**p) for p in data.pop("processes", [])]
        return cls(**data, processes=procs)

    def save(self) -> None:
        path = Path(self.lab_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)


def lab_directory_url(lab_dir: Path) -> str | None:
    """The directory of the lab in ``lab_dir`` as ``open_directory`` takes it; None: no lab."""
    state = LabState.load(lab_dir)
    if state is not None and state.directory:
        return state.directory
    database = lab_dir / EMBEDDED_DIRECTORY
    return str(database) if database.exists() else None


def command_line(pid: int) -> list[str]:
    """The arguments process ``pid`` was started with ([] when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def is_ours(rec: ProcessRecord, lab_dir: Path) -> bool:
    """True if ``rec.pid`` is still the ``sitemail serve`` process this lab started."""
    if rec.pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{rec.pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False  # a zombie is dead; only its parent has not reaped it yet
    cmd = command_line(rec.pid)
    if rec.kind == "directory":
        # The lab's slapd, started with the slapd.conf of its own folder in the lab.
        conf = str(Path(rec.home) / "slapd.conf")
        return bool(cmd) and Path(cmd[0]).name == "slapd" and conf in cmd
    return "serve" in cmd and rec.name in cmd and str(lab_dir) in cmd
