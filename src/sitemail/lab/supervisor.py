"""``sitemail lab up|down|status|restart``: a whole organization on one machine.

``up`` seeds the directory from a topology file, issues the certificates,
gives every host its own loopback address, writes the firewalls' relay
plans, starts one process per server, firewall and Internet host, and waits
until each answers.  The processes run in their own sessions and outlive
the command; ``lab.json`` in the lab folder remembers them, and ``down``
stops exactly those (it checks each PID's command line before signalling).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sitemail.firewall.console_cli import AsaCommandError
from sitemail.lab.addressing import (
    AddressPlan,
    HostSpec,
    plan_addresses,
)
from sitemail.lab.asa_admin import give_admin_account
from sitemail.lab.slapd import ManagedSlapd, SlapdError, slapd_command, url_with
from sitemail.lab.status import admin_context, lab_status, no_lab, probe
from sitemail.org.directory import Directory, DirectoryError, open_directory
from sitemail.org.lab_state import (
    EMBEDDED_DIRECTORY,
    LabState,
    ProcessRecord,
    command_line,
    is_ours,
)
from sitemail.org.model import (
    Firewall,
    InternetHost,
    LabSettings,
    Model,
    NetworkPath,
    Organization,
    Server,
    VirtualDirectory,
)
from sitemail.org.pki import PkiError, ServerCertSpec, ensure_organization_pki
from sitemail.org.topology import Topology, TopologyError
from sitemail.server.console import ConsoleError

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[3] / "examples" / "seed.yaml"
READY_TIMEOUT = 60.0


class LabError(Exception):
    pass


def default_topology() -> Path:
    """examples/seed.yaml from a source checkout, or the copy installed with the package."""
    if DEFAULT_TOPOLOGY.exists():
        return DEFAULT_TOPOLOGY
    return Path(__file__).resolve().parents[1] / "data" / "seed.yaml"


def choose_port_offset() -> int:
    """0 when this user may bind port 25, else 10000 (25 -> 10025, 443 -> 10443)."""
    if os.geteuid() == 0:
        return 0
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        start = 1024
    return 0 if start <= 25 else 10000


# ----------------------------------------------------------------- processes


RUNNING = "running"


def _child_state(pid: int) -> str | int | None:
    """Whether ``pid``, a child of this process, still runs (:data:`RUNNING`) or its exit
    code (negative: the signal that ended it); None if it is not a child of ours.

    For a child the kernel's answer settles it: /proc shows a process between fork and
    exec, or in the middle of exec, with a command line that is neither its parent's nor
    its own, and a lab was once reported failed with an empty log while its slapd ran.
    """
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done == 0:
        return RUNNING
    return os.waitstatus_to_exitcode(status)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f" (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f" (killed by signal {-code})"
    return f" (exit status {code})"


def _starting_or_ours(rec: ProcessRecord, lab_dir: Path) -> bool:
    """Like is_ours, but also true between fork and exec: /proc then shows no command line,
    or this process's own (the child is still a copy of it; on a busy machine the window is
    long enough to be seen, and the lab was reported as failed with an empty log)."""
    if is_ours(rec, lab_dir):
        return True
    try:
        stat = Path(f"/proc/{rec.pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    cmd = command_line(rec.pid)
    return not cmd or (int(fields[1]) == os.getpid() and cmd == command_line(os.getpid()))


def _command(rec: ProcessRecord, st: LabState) -> list[str]:
    if rec.kind == "directory":
        return slapd_command(rec, st.port_offset)
    return [
        sys.executable,
        "-m",
        "sitemail",
        "serve",
        rec.name,
        "--directory",
        st.directory_url(),
        "--lab-dir",
        st.lab_dir,
    ]


def _start(rec: ProcessRecord, st: LabState) -> None:
    home = Path(rec.home)
    home.mkdir(parents=True, exist_ok=True)
    command = _command(rec, st)
    with open(home / "process.log", "ab") as logf:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    rec.pid = proc.pid
    rec.started = datetime.now(UTC).isoformat(timespec="seconds")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _wait_ready(
    recs: list[ProcessRecord], lab_dir: Path, port_offset: int, timeout: float
) -> list[str]:
    """Wait for every process; return one line per process that did not come up."""
    deadline = time.monotonic() + timeout
    pending = {r.name: r for r in recs}
    failures: list[str] = []
    # One context for every probe: building one per probe (ten a second per server)
    # took CPU from the servers starting beside this process.
    context = admin_context(lab_dir) if any(r.kind == "server" for r in recs) else None
    while pending and time.monotonic() < deadline:
        for name, rec in list(pending.items()):
            state = _child_state(rec.pid)
            if isinstance(state, int) or (state is None and not _starting_or_ours(rec, lab_dir)):
                how = _exit_text(state) if isinstance(state, int) else ""
                failures.append(
                    f"{name}: exited during start-up{how}: {_tail(Path(rec.home) / 'process.log')}"
                )
                del pending[name]
            elif probe(rec, lab_dir, port_offset, timeout=1.0, context=context):
                del pending[name]
        if pending:
            time.sleep(0.1)
    for name, rec in pending.items():
        failures.append(
            f"{name}: not ready after {timeout:.0f} s: {_tail(Path(rec.home) / 'process.log')}"
        )
    return failures


def _stop(rec: ProcessRecord, lab_dir: Path, grace: float = 10.0) -> None:
    if not is_ours(rec, lab_dir):
        return
    try:
        os.kill(rec.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and is_ours(rec, lab_dir):
        _reap(rec.pid)
        time.sleep(0.05)
    if is_ours(rec, lab_dir):
        try:
            os.kill(rec.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while is_ours(rec, lab_dir):
            _reap(rec.pid)
            time.sleep(0.02)
    _reap(rec.pid)


def _reap(pid: int) -> None:
    """Collect a child's exit status if it is ours (lab up run in-process, e.g. by tests)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# ----------------------------------------------------------------- the lab


def plan_for(topo: Topology) -> AddressPlan:
    spec = topo.spec
    hosts = [HostSpec(s.name, s.site, "server", s.address) for s in spec.servers]
    if spec.internet is not None:
        hosts.append(HostSpec(spec.internet.name, "Internet", "internet"))
    firewalls = {f.site: f.name for f in spec.firewalls}
    return plan_addresses([s.name for s in spec.sites], hosts, firewalls)


def _seed_directory(
    directory: Directory, topo: Topology, plan: AddressPlan, lab_dir: Path, offset: int
) -> None:
    objects: list[Model] = []
    for obj in topo.objects():
        if isinstance(obj, Server):
            obj.addresses = [plan.host_addresses[obj.name]]
        elif isinstance(obj, InternetHost):
            obj.address = plan.host_addresses[obj.name]
        elif isinstance(obj, Firewall):
            obj.address = plan.firewall_addresses[obj.name]
        objects.append(obj)
    objects.extend(
        NetworkPath(from_site=p.from_site, server=p.host, address=p.address, source=p.source)
        for p in plan.paths
    )
    settings = LabSettings(port_offset=offset, lab_dir=str(lab_dir))
    interval = topo.spec.lab.system_attendant_interval
    if interval is not None:
        settings.system_attendant_interval = timedelta(seconds=interval)
    objects.append(settings)
    with directory.transaction():
        for obj in objects:
            directory.put(obj)


def _cert_specs(directory: Directory) -> list[ServerCertSpec]:
    vdirs = directory.list(VirtualDirectory)
    specs = []
    for server in directory.list(Server):
        urls = [
            u for v in vdirs if v.server == server.name for u in (v.internal_url, v.external_url)
        ]
        specs.append(
            ServerCertSpec(
                name=server.name, fqdn=server.fqdn, addresses=server.addresses, urls=urls
            )
        )
    return specs


def _issue_certificates(lab_dir: Path, organization: str, directory: Directory) -> None:
    ensure_organization_pki(lab_dir / "pki", organization, _cert_specs(directory))
    # The Internet host is not part of the organization: its certificate comes from a CA
    # of its own, so it can never pass for an Exchange server (X-EXPS) or the admin.
    for host in directory.list(InternetHost):
        ensure_organization_pki(
            lab_dir / "pki" / "internet",
            f"{host.domains[0]} (Internet)",
            [ServerCertSpec(name=host.name, fqdn=host.fqdn, addresses=[host.address or ""])],
            admin=False,
        )


def _records(topo: Topology, plan: AddressPlan, lab_dir: Path) -> list[ProcessRecord]:
    spec = topo.spec
    recs = [
        ProcessRecord(
            f.name,
            "firewall",
            f.site,
            plan.firewall_addresses[f.name],
            home=str(lab_dir / "firewalls" / f.name),
        )
        for f in spec.firewalls
    ]
    if spec.internet is not None:
        name = spec.internet.name
        recs.append(
            ProcessRecord(
                name,
                "internet",
                "Internet",
                plan.host_addresses[name],
                home=str(lab_dir / "servers" / name),
            )
        )
    recs.extend(
        ProcessRecord(
            s.name,
            "server",
            s.site,
            plan.host_addresses[s.name],
            home=str(lab_dir / "servers" / s.name),
        )
        for s in spec.servers
    )
    return recs


def _write_firewall_plans(plan: AddressPlan, lab_dir: Path, names: set[str]) -> None:
    for fw, listeners in plan.listeners.items():
        if fw not in names:
            continue
        home = lab_dir / "firewalls" / fw
        home.mkdir(parents=True, exist_ok=True)
        (home / "listeners.json").write_text(
            json.dumps([asdict(x) for x in listeners], indent=2) + "\n"
        )


# ----------------------------------------------------------------- the directory


@dataclass(frozen=True)
class DirectoryChoice:
    """Where a lab keeps its directory: the embedded file, a slapd of its own, or a URL."""

    backend: str  # "embedded" | "ldap"
    url: str | None = None  # an LDAP server the user runs; None with "ldap": the lab's own

    @classmethod
    def parse(cls, text: str) -> DirectoryChoice:
        if text in ("embedded", "ldap"):
            return cls(text)
        if text.startswith(("ldap://", "ldaps://")):
            return cls("ldap", text)
        raise LabError(
            f"--directory {text!r}: expected embedded, ldap (a slapd of the lab's own) "
            "or ldap://HOST:PORT/BASE-DN (an LDAP server you run)"
        )

    @classmethod
    def of_state(cls, st: LabState) -> DirectoryChoice:
        if not st.directory:
            return cls("embedded")
        if any(r.kind == "directory" for r in st.processes):
            return cls("ldap")
        return cls("ldap", st.directory)

    def describe(self) -> str:
        if self.backend == "embedded":
            return f"the embedded directory ({EMBEDDED_DIRECTORY})"
        return f"the LDAP server {self.url}" if self.url else "a slapd of its own"


def _choose_directory(
    topo: Topology, option: str | None, previous: LabState | None
) -> DirectoryChoice:
    """``--directory``, else the topology's ``directory:``; a lab folder keeps its kind."""
    spec = topo.spec.directory
    if option is not None:
        wanted = DirectoryChoice.parse(option)
    else:
        wanted = DirectoryChoice(spec.backend, spec.url if spec.backend == "ldap" else None)
    if previous is None:
        return wanted
    _check_kept(option, previous)
    # An LDAP URL given again may name a new password file or timeout: it replaces the old.
    return wanted if option is not None else DirectoryChoice.of_state(previous)


def _check_kept(option: str | None, previous: LabState) -> None:
    """A lab folder keeps the kind of directory it was started with."""
    if option is None:
        return
    wanted, had = DirectoryChoice.parse(option), DirectoryChoice.of_state(previous)
    if (wanted.backend, wanted.url is None) != (had.backend, had.url is None):
        raise LabError(
            f"this lab folder keeps its organization in {had.describe()}, not "
            f"{wanted.describe()}; run `sitemail lab down` and remove the folder, or pass "
            "another --dir"
        )


def _choose_sites(
    topo: Topology, option: list[str] | None, previous: LabState | None
) -> list[str] | None:
    """The sites this folder supervises (``--only-site``; None: all), in the topology's names."""
    if not option:
        return previous.only_sites if previous else None
    known = {s.name.lower(): s.name for s in topo.spec.sites}
    if topo.spec.internet is not None:
        known["internet"] = "Internet"
    chosen: list[str] = []
    for item in option:
        for name in filter(None, (n.strip() for n in item.split(","))):
            if name.lower() not in known:
                raise LabError(
                    f"--only-site {name}: no such site; expected one of "
                    + ", ".join(known.values())
                )
            chosen.append(known[name.lower()])
    return chosen


def _with_organization(url: str, organization: str) -> str:
    """An external LDAP URL that names the organization (so a fresh directory is set up as
    the topology's, and one holding another organization is refused)."""
    query = url.split("?", 1)[1] if "?" in url else ""
    has_org = any(part.split("=", 1)[0] == "org" for part in query.split("&"))
    return url if has_org else url_with(url, org=organization)


def _differs(topo: Topology, directory: Directory) -> str | None:
    """Why the organization a directory holds is not the topology's; None when it is."""
    orgs = directory.list(Organization)
    have = orgs[0].name if orgs else "none"
    want = topo.spec.organization.name
    if have.lower() != want.lower():
        return f"the directory holds organization {have!r}, {topo.source} describes {want!r}"
    there = sorted(s.name for s in directory.list(Server))
    here = sorted(s.name for s in topo.spec.servers)
    if [n.lower() for n in there] != [n.lower() for n in here]:
        return (
            f"the directory's servers ({', '.join(there)}) are not those of {topo.source} "
            f"({', '.join(here)})"
        )
    return None


class Lab:
    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir.resolve()

    @property
    def directory_path(self) -> Path:
        """The embedded directory's file (a lab with an LDAP directory has none)."""
        return self.dir / EMBEDDED_DIRECTORY

    def state(self) -> LabState | None:
        return LabState.load(self.dir)

    def running(self) -> list[ProcessRecord]:
        st = self.state()
        return [r for r in st.processes if is_ours(r, self.dir)] if st else []

    # ------------------------------------------------------------------ up

    def up(
        self,
        topology: Path,
        *,
        port_offset: int | None = None,
        directory: str | None = None,
        only_sites: list[str] | None = None,
        timeout: float = READY_TIMEOUT,
        say: Any = print,
    ) -> int:
        alive = self.running()
        if alive:
            st = self.state()
            assert st is not None  # its processes run: lab.json names them
            try:
                _check_kept(directory, st)
            except LabError as exc:
                say(f"sitemail lab up: {exc}")
                return 2
            return self._resume(alive, timeout, say)
        try:
            topo = Topology.load(topology)
        except TopologyError as exc:
            say(f"sitemail lab up: {exc}")
            return 2
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        saved = self.dir / "topology.yaml"
        previous = self.state()
        has_lab = previous is not None or self.directory_path.exists()
        if has_lab and saved.exists() and saved.read_bytes() != topology.read_bytes():
            say(
                f"sitemail lab up: {self.dir} holds a lab of another topology; "
                "run `sitemail lab down` and remove the folder, or pass another --dir"
            )
            return 2
        try:
            choice = _choose_directory(topo, directory, previous)
            sites = _choose_sites(topo, only_sites, previous)
        except LabError as exc:
            say(f"sitemail lab up: {exc}")
            return 2
        if previous is not None:
            offset = previous.port_offset
        else:
            offset = choose_port_offset() if port_offset is None else port_offset
        st = LabState(str(self.dir), str(saved), offset, only_sites=sites)
        if choice.url is not None:
            st.directory = _with_organization(choice.url, topo.spec.organization.name)
        elif choice.backend == "ldap":
            code = self._start_slapd(topo, st, timeout, say)
            if code:
                return code
        code = self._seed_or_join(topo, topology, st, say)
        if code:
            self._stop_all(st)
            return code
        plan = plan_for(topo)
        recs = [r for r in _records(topo, plan, self.dir) if sites is None or r.site in sites]
        _write_firewall_plans(plan, self.dir, {r.name for r in recs if r.kind == "firewall"})
        st.processes.extend(recs)
        if not self._start_group(recs, st, timeout, say, "the lab did not start"):
            self._stop_all(st)
            return 1
        for rec in (r for r in recs if r.kind == "firewall"):
            try:
                problem = give_admin_account(self.dir, rec.name, rec.address)
            except (AsaCommandError, ConsoleError, OSError) as exc:
                problem = f"{rec.name}: {exc}"
            if problem is not None:
                # The box relays mail all the same; only SSH sign-in is missing.
                say(
                    f"sitemail lab up: the firewall has no admin account for SSH ({problem}); "
                    "give it one on its console (sitemail asa, docs/cli.md)"
                )
        self.last_up_seconds = time.monotonic() - started
        return 0

    def _start_slapd(self, topo: Topology, st: LabState, timeout: float, say: Any) -> int:
        """Start the lab's own slapd (before anything reads the directory) and wait for it."""
        slapd = ManagedSlapd(self.dir, topo.base_dn(), topo.spec.organization.name, st.port_offset)
        rec = slapd.record()
        try:
            slapd.prepare()
            _start(rec, st)
        except SlapdError as exc:
            say(f"sitemail lab up: {exc}")
            return 2
        st.directory = slapd.url()
        st.processes.append(rec)
        st.save()
        failures = _wait_ready([rec], self.dir, st.port_offset, timeout)
        if failures:
            say(f"sitemail lab up: the lab's slapd did not start: {failures[0]}")
            _stop(rec, self.dir)
            return 1
        return 0

    def _seed_or_join(self, topo: Topology, topology: Path, st: LabState, say: Any) -> int:
        """Seed a directory that holds no lab yet; else check it holds this topology's."""
        saved = Path(st.topology)
        try:
            directory = open_directory(st.directory_url())
        except DirectoryError as exc:
            say(f"sitemail lab up: {exc}")
            return 2
        try:
            settings = directory.get(LabSettings, "lab")
            if settings is None:
                shutil.copyfile(topology, saved)
                _seed_directory(directory, topo, plan_for(topo), self.dir, st.port_offset)
            else:
                problem = _differs(topo, directory)
                managed = any(r.kind == "directory" for r in st.processes)
                if problem is None and managed and settings.port_offset != st.port_offset:
                    problem = f"its lab was set up with --port-offset {settings.port_offset}"
                if problem is not None:
                    say(f"sitemail lab up: {problem}; use another --dir or directory")
                    return 2
                st.port_offset = settings.port_offset
                joining = Path(settings.lab_dir) != self.dir
                if joining and not (self.dir / "pki" / "ca.pem").exists():
                    say(
                        f"sitemail lab up: the directory already holds organization "
                        f"{topo.spec.organization.name}, set up from the lab folder "
                        f"{settings.lab_dir}; copy that folder's pki/ to {self.dir / 'pki'} "
                        "first (its CA is the organization's)"
                    )
                    return 2
                if not saved.exists():
                    shutil.copyfile(topology, saved)
            _issue_certificates(self.dir, topo.spec.organization.name, directory)
        except (DirectoryError, PkiError) as exc:
            say(f"sitemail lab up: {exc}")
            return 2
        finally:
            directory.close()
        return 0

    def _start_group(
        self, recs: list[ProcessRecord], st: LabState, timeout: float, say: Any, failed: str
    ) -> bool:
        """Start ``recs`` and wait until each answers; say which did not (after ``failed``)."""
        for rec in recs:
            _start(rec, st)
        st.save()
        failures = _wait_ready(recs, self.dir, st.port_offset, timeout)
        if failures:
            say(f"sitemail lab up: {failed}:")
            for line in failures:
                say(f"  {line}")
        return not failures

    def _stop_all(self, st: LabState) -> None:
        for rec in reversed(st.processes):
            _stop(rec, self.dir)

    def _resume(self, alive: list[ProcessRecord], timeout: float, say: Any) -> int:
        """Part of the lab runs (a process crashed or was killed): start the rest."""
        st = self.state()
        assert st is not None
        running = {r.name for r in alive}
        missing = [r for r in st.processes if r.name not in running]
        if not missing:
            say(
                f"The lab in {self.dir} is already running ({len(alive)} processes); "
                "nothing changed. Use `sitemail lab status` or `sitemail lab down`."
            )
            return 0
        started = time.monotonic()
        say(
            f"The lab in {self.dir} was running without "
            f"{', '.join(r.name for r in missing)}: started again."
        )
        # The directory first: the servers read it as they start.
        first = [r for r in missing if r.kind == "directory"]
        for group in (first, [r for r in missing if r.kind != "directory"]):
            if group and not self._start_group(group, st, timeout, say, "these did not start"):
                return 1
        self.last_up_seconds = time.monotonic() - started
        return 0

    # ---------------------------------------------------------------- down

    def down(self) -> list[str]:
        st = self.state()
        if st is None:
            return []
        stopped = []
        # In reverse order of starting: the servers, then the directory they read.
        for rec in reversed(st.processes):
            if is_ours(rec, self.dir):
                _stop(rec, self.dir)
                stopped.append(rec.name)
            rec.pid = 0
        st.save()
        return stopped

    # ------------------------------------------------------------- restart

    def restart(self, name: str, timeout: float = READY_TIMEOUT) -> str | None:
        """Power-cycle one process: kill -9, start again, wait until it answers.

        Returns None on success, else a line saying why it failed.
        """
        st = self.state()
        if st is None:
            return f"no lab in {self.dir}; start one with `sitemail lab up`"
        rec = next((r for r in st.processes if r.name.lower() == name.lower()), None)
        if rec is None:
            names = ", ".join(r.name for r in st.processes)
            return f"{name!r} is not a process of this lab; expected one of {names}"
        if is_ours(rec, self.dir):
            os.kill(rec.pid, signal.SIGKILL)
            while is_ours(rec, self.dir):
                _reap(rec.pid)
                time.sleep(0.02)
        _start(rec, st)
        st.save()
        failures = _wait_ready([rec], self.dir, st.port_offset, timeout)
        return failures[0] if failures else None

    # -------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        st = self.state()
        return no_lab(self.dir) if st is None else lab_status(self.dir, st)
