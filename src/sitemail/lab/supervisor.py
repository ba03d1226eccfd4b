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
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitemail.lab.addressing import (
    AddressPlan,
    HostSpec,
    plan_addresses,
)
from sitemail.org.directory import Directory, open_directory
from sitemail.org.lab_state import (
    LabState,
    ProcessRecord,
    command_line,
    is_ours,
)
from sitemail.org.model import (
    ExchangeVersion,
    Firewall,
    InternetHost,
    LabSettings,
    Mailbox,
    MailboxDatabase,
    Model,
    NetworkPath,
    PopImapSettings,
    ReceiveConnector,
    Server,
    ServerRole,
    VirtualDirectory,
)
from sitemail.org.pki import (
    ServerCertSpec,
    admin_cert_files,
    client_ssl_context,
    ensure_organization_pki,
)
from sitemail.org.ports import ADMIN_PORT, STORE_PORT
from sitemail.org.topology import Topology, TopologyError
from sitemail.server.console import ConsoleClient, ConsoleError

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


def _starting_or_ours(rec: ProcessRecord, lab_dir: Path) -> bool:
    """Like is_ours, but also true in the instant after fork when /proc shows no command line."""
    if is_ours(rec, lab_dir):
        return True
    try:
        stat = Path(f"/proc/{rec.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and not command_line(rec.pid)


def _command(rec: ProcessRecord, lab_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sitemail",
        "serve",
        rec.name,
        "--directory",
        str(lab_dir / "directory.db"),
        "--lab-dir",
        str(lab_dir),
    ]


def _start(rec: ProcessRecord, lab_dir: Path) -> None:
    home = Path(rec.home)
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "process.log", "ab") as logf:
        proc = subprocess.Popen(
            _command(rec, lab_dir),
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


def _admin_context(lab_dir: Path) -> ssl.SSLContext:
    pki = lab_dir / "pki"
    return client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))


def probe(rec: ProcessRecord, lab_dir: Path, port_offset: int, timeout: float = 2.0) -> bool:
    """Does the process answer its health check (on its admin port, shifted by the lab)?"""
    try:
        if rec.kind == "server":
            ctx = _admin_context(lab_dir)
            ctx.check_hostname = False  # reached by address; the chain is still checked
            url = f"https://{rec.address}:{ADMIN_PORT + port_offset}/health"
            with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
                return bool(resp.status == 200)
        with ConsoleClient(Path(rec.home) / "console.sock", timeout=timeout) as console:
            return console.call("health").get("status") == "ok"
    except (OSError, ConsoleError, ssl.SSLError, ValueError):
        return False


def _wait_ready(
    recs: list[ProcessRecord], lab_dir: Path, port_offset: int, timeout: float
) -> list[str]:
    """Wait for every process; return one line per process that did not come up."""
    deadline = time.monotonic() + timeout
    pending = {r.name: r for r in recs}
    failures: list[str] = []
    while pending and time.monotonic() < deadline:
        for name, rec in list(pending.items()):
            if not _starting_or_ours(rec, lab_dir):
                failures.append(
                    f"{name}: exited during start-up: {_tail(Path(rec.home) / 'process.log')}"
                )
                del pending[name]
            elif probe(rec, lab_dir, port_offset, timeout=1.0):
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
    hosts = [HostSpec(s.name, s.site, "server") for s in spec.servers]
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
    objects.append(LabSettings(port_offset=offset, lab_dir=str(lab_dir)))
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


def _write_firewall_plans(plan: AddressPlan, lab_dir: Path) -> None:
    for fw, listeners in plan.listeners.items():
        home = lab_dir / "firewalls" / fw
        home.mkdir(parents=True, exist_ok=True)
        (home / "listeners.json").write_text(
            json.dumps([asdict(x) for x in listeners], indent=2) + "\n"
        )


class Lab:
    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir.resolve()

    @property
    def directory_path(self) -> Path:
        return self.dir / "directory.db"

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
        timeout: float = READY_TIMEOUT,
        say: Any = print,
    ) -> int:
        alive = self.running()
        if alive:
            return self._resume(alive, timeout, say)
        try:
            topo = Topology.load(topology)
        except TopologyError as exc:
            say(f"sitemail lab up: {exc}")
            return 2
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        saved = self.dir / "topology.yaml"
        fresh = not self.directory_path.exists()
        if not fresh and saved.exists() and saved.read_bytes() != topology.read_bytes():
            say(
                f"sitemail lab up: {self.dir} holds a lab of another topology; "
                "run `sitemail lab down` and remove the folder, or pass another --dir"
            )
            return 2
        offset = choose_port_offset() if port_offset is None else port_offset
        plan = plan_for(topo)
        directory = open_directory(str(self.directory_path))
        try:
            if fresh:
                shutil.copyfile(topology, saved)
                _seed_directory(directory, topo, plan, self.dir, offset)
            else:
                settings = directory.get(LabSettings, "lab")
                offset = settings.port_offset if settings else offset
            _issue_certificates(self.dir, topo.spec.organization.name, directory)
        finally:
            directory.close()
        _write_firewall_plans(plan, self.dir)
        recs = _records(topo, plan, self.dir)
        state = LabState(str(self.dir), str(saved), offset, recs)
        for rec in recs:
            _start(rec, self.dir)
        state.save()
        failures = _wait_ready(recs, self.dir, offset, timeout)
        if failures:
            say("sitemail lab up: the lab did not start:")
            for line in failures:
                say(f"  {line}")
            for rec in reversed(recs):
                _stop(rec, self.dir)
            return 1
        self.last_up_seconds = time.monotonic() - started
        return 0

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
        for rec in missing:
            _start(rec, self.dir)
        st.save()
        say(
            f"The lab in {self.dir} was running without "
            f"{', '.join(r.name for r in missing)}: started again."
        )
        failures = _wait_ready(missing, self.dir, st.port_offset, timeout)
        if failures:
            say("sitemail lab up: these did not start:")
            for line in failures:
                say(f"  {line}")
            return 1
        self.last_up_seconds = time.monotonic() - started
        return 0

    # ---------------------------------------------------------------- down

    def down(self) -> list[str]:
        st = self.state()
        if st is None:
            return []
        stopped = []
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
            return f"{name!r} is not a server or firewall of this lab; expected one of {names}"
        if is_ours(rec, self.dir):
            os.kill(rec.pid, signal.SIGKILL)
            while is_ours(rec, self.dir):
                _reap(rec.pid)
                time.sleep(0.02)
        _start(rec, self.dir)
        st.save()
        failures = _wait_ready([rec], self.dir, st.port_offset, timeout)
        return failures[0] if failures else None

    # -------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        st = self.state()
        if st is None or not self.directory_path.exists():
            return {
                "lab": str(self.dir),
                "running": False,
                "servers": [],
                "firewalls": [],
                "paths": {},
                "users": [],
            }
        directory = open_directory(str(self.directory_path))
        try:
            return self._status(st, directory)
        finally:
            directory.close()

    def _status(self, st: LabState, directory: Directory) -> dict[str, Any]:
        topo = Topology.load(st.topology)
        passwords = {u.alias.lower(): u.password for u in topo.spec.users}
        inet_passwords = (
            {u.address.lower(): u.password for u in topo.spec.internet.users}
            if topo.spec.internet
            else {}
        )
        servers_out: list[dict[str, Any]] = []
        firewalls_out: list[dict[str, Any]] = []
        any_running = False
        for rec in st.processes:
            alive = is_ours(rec, self.dir)
            state = "stopped"
            if alive:
                state = "running" if probe(rec, self.dir, st.port_offset) else "unresponsive"
                any_running = True
            entry: dict[str, Any] = {
                "name": rec.name,
                "site": rec.site,
                "state": state,
                "pid": rec.pid if alive else None,
                "address": rec.address,
            }
            if rec.kind == "firewall":
                entry["folder"] = rec.home
                firewalls_out.append(entry)
                continue
            entry.update(self._server_details(rec, directory, st.port_offset))
            servers_out.append(entry)
        paths: dict[str, dict[str, dict[str, str]]] = {}
        for p in directory.list(NetworkPath):
            paths.setdefault(p.from_site, {})[p.server] = {
                "address": p.address,
                "source": p.source,
            }
        users: list[dict[str, Any]] = []
        dbs = {d.name.lower(): d for d in directory.list(MailboxDatabase)}
        servers = {s.name.lower(): s for s in directory.list(Server)}
        for mbx in directory.list(Mailbox):
            db = dbs.get(mbx.database.lower())
            srv = servers.get(db.server.lower()) if db else None
            users.append(
                {
                    "name": mbx.alias,
                    "address": mbx.primary_smtp_address,
                    "site": srv.site if srv else None,
                    "server": srv.name if srv else None,
                    "version": srv.version.product if srv else None,
                    "password": passwords.get(mbx.alias.lower()),
                }
            )
        for host in directory.list(InternetHost):
            for addr, pw in inet_passwords.items():
                users.append(
                    {
                        "name": addr.split("@")[0],
                        "address": addr,
                        "site": host.site,
                        "server": host.name,
                        "version": None,
                        "password": pw,
                    }
                )
        return {
            "lab": str(self.dir),
            "running": any_running,
            "topology": st.topology,
            "port_offset": st.port_offset,
            "directory": str(self.directory_path),
            "servers": servers_out,
            "firewalls": firewalls_out,
            "paths": paths,
            "users": users,
        }

    def _server_details(
        self, rec: ProcessRecord, directory: Directory, offset: int
    ) -> dict[str, Any]:
        home = Path(rec.home)
        if rec.kind == "internet":
            host = directory.get(InternetHost, rec.name)
            return {
                "roles": ["Internet mail host"],
                "version": None,
                "engine": host.engine if host else None,
                "fqdn": host.fqdn if host else None,
                "domains": host.domains if host else [],
                "endpoints": {
                    "smtp": [f"{rec.address}:{25 + offset}", f"{rec.address}:{587 + offset}"]
                },
                "folder": rec.home,
            }
        server = directory.require(Server, rec.name)
        endpoints: dict[str, Any] = {"admin": f"https://{rec.address}:{ADMIN_PORT + offset}"}
        if ServerRole.MAILBOX in server.roles:
            endpoints["store"] = f"https://{rec.address}:{STORE_PORT + offset}"
        if server.version is ExchangeVersion.E2010 and ServerRole.HUB_TRANSPORT in server.roles:
            for rc in directory.list(ReceiveConnector):
                if rc.server.lower() == server.name.lower():
                    ports = sorted({p for _, p in rc.ports})
                    endpoints[f"smtp ({rc.name})"] = [f"{rec.address}:{p + offset}" for p in ports]
        if server.version is ExchangeVersion.E2003:
            endpoints["smtp (Default SMTP Virtual Server)"] = [f"{rec.address}:{25 + offset}"]
        if ServerRole.CLIENT_ACCESS in server.roles and server.version is ExchangeVersion.E2010:
            endpoints["https"] = f"{rec.address}:{443 + offset}"
            urls = {}
            for v in directory.list(VirtualDirectory):
                if v.server.lower() == server.name.lower():
                    urls[v.type.value] = {"internal": v.internal_url, "external": v.external_url}
            endpoints["urls"] = urls
            for s in directory.list(PopImapSettings):
                if s.server.lower() == server.name.lower():
                    key = s.protocol.lower()
                    bindings = s.unencrypted_or_tls_bindings + s.ssl_bindings
                    endpoints[key] = [
                        f"{rec.address}:{int(b.rsplit(':', 1)[1]) + offset}" for b in bindings
                    ]
        return {
            "roles": [r.value for r in server.roles],
            "version": server.version.product,
            "fqdn": server.fqdn,
            "endpoints": endpoints,
            "folder": rec.home,
            "logs": {
                "SmtpReceive": str(home / (server.transport.receive_protocol_log_path or "")),
                "SmtpSend": str(home / (server.transport.send_protocol_log_path or "")),
                "MessageTracking": str(home / (server.transport.message_tracking_log_path or "")),
            },
        }
