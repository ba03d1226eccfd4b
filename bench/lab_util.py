"""Shared parts of the lab benchmarks: a lab of a small topology, Postfix, smtp-source/sink.

Not a benchmark: it declares no ``BENCHMARK``.  (``python -m bench.run --list``
lists every module of bench/ until the harness's ``_NOT_BENCHMARKS`` names
this one too.)

Everything here starts processes as children of the benchmark process and
stops them by PID, waits for them, and removes the temporary folders, even
when a measurement fails.  Only 127.0.0.0/8 is ever contacted.

Addresses used by the benchmarks besides the lab's own plan (127.N.0.0/16 for
site N, 127.99.0.0/16 for the lab's Internet): 127.77.0.0/16 (Postfix and the
other peers), 127.78.0.0/16 (the firewall-alone benchmark).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import BENCH_DIR, PROJECT_ROOT, peak_rss_kib
from sitemail.internet.postfix import PostfixConfig, PostfixError, PostfixInstance
from sitemail.lab.addressing import plan_lock_path

TOPOLOGIES = BENCH_DIR / "topologies"
# The peers' own loopback addresses, outside every lab's plan.
POSTFIX_ADDRESS = "127.77.0.25"


class BenchSetupError(RuntimeError):
    """A side could not be set up or gave a result that cannot be right."""


# --- the lab lock and a lab of a small topology ------------------------------------------


@contextlib.contextmanager
def lab_slot() -> Iterator[float]:
    """Hold the machine's lab address plan; yields the seconds spent waiting for it."""
    # The lock every test and benchmark that starts a lab takes (tests/conftest.py:
    # lab_slot): labs share one fixed loopback address plan, so they take turns.
    fd = os.open(plan_lock_path(), os.O_CREAT | os.O_RDWR, 0o666)
    began = time.monotonic()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.monotonic() - began
    finally:
        os.close(fd)


@dataclass
class LabHandle:
    """A running lab: its folder and what its processes are."""

    dir: Path
    status: dict[str, Any]
    lock_wait_s: float
    up_s: float

    def server(self, name: str) -> dict[str, Any]:
        for entry in self.status["servers"]:
            if entry["name"].lower() == name.lower():
                return dict(entry)
        raise BenchSetupError(f"the lab in {self.dir} has no server {name!r}")

    def pid(self, name: str) -> int:
        for entry in [*self.status["servers"], *self.status["firewalls"]]:
            if entry["name"].lower() == name.lower() and entry.get("pid"):
                return int(entry["pid"])
        raise BenchSetupError(f"{name} of the lab in {self.dir} is not running")

    def address(self, name: str) -> str:
        return str(self.server(name)["address"])

    def admin_post(self, server: str, path: str, body: dict[str, Any]) -> Any:
        """POST to a server's admin API with the lab's admin certificate."""
        from sitemail.org.pki import admin_cert_files, client_ssl_context

        pki = self.dir / "pki"
        ctx = client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))
        # Reached by address: the chain is still checked against the lab CA.
        ctx.check_hostname = False
        request = urllib.request.Request(
            f"{self.server(server)['endpoints']['admin']}{path}",  # its port follows the offset
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, context=ctx, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise BenchSetupError(f"admin API {server} {path}: {exc}") from exc

    def suspend_queue(self, server: str, queue: str) -> None:
        info = self.admin_post(server, "/queues/suspend", {"identity": f"{server}\\{queue}"})
        if not isinstance(info, dict) or info.get("Status") != "Suspended":
            raise BenchSetupError(f"{server}\\{queue} did not suspend: {info!r}")

    def asa(self, firewall: str, lines: str) -> str:
        """Type ``lines`` at a firewall's console (``sitemail asa NAME -c``)."""
        return sitemail_cli("asa", firewall, "-c", lines, "--dir", str(self.dir))

    def queue_count(self, server: str) -> int:
        """Messages in a hub's queue database (read-only)."""
        path = self.dir / "servers" / server / "queue" / "mail.que"
        return sqlite_count(path, "SELECT count(*) FROM messages")


def sitemail_cli(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "sitemail", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env=dict(os.environ, COLUMNS="200"),
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise BenchSetupError(f"sitemail {' '.join(args[:2])} exited {proc.returncode}: {tail}")
    return proc.stdout


def sqlite_count(path: Path, query: str, args: Sequence[Any] = ()) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(query, tuple(args)).fetchone()
    finally:
        conn.close()
    return int(row[0])


@contextlib.contextmanager
def running_lab(topology: Path, *, directory: str | None = None) -> Iterator[LabHandle]:
    """``sitemail lab up`` of ``topology`` in a fresh temporary folder, holding the lab lock
    (``directory="ldap"``: the organization in the lab's own slapd, as ``--directory ldap``).

    The lab runs in-process (``Lab.up``), so its server processes are children
    of the benchmark; ``Lab.down`` stops them by PID and reaps them.  The
    folder is removed afterwards.
    """
    from sitemail.lab.supervisor import Lab

    folder = Path(tempfile.mkdtemp(prefix="sitemail-bench-lab-"))
    try:
        with lab_slot() as waited:
            lab = Lab(folder)
            said: list[str] = []
            began = time.monotonic()
            try:
                code = lab.up(topology, directory=directory, say=said.append)
                if code != 0:
                    raise BenchSetupError(f"lab up {topology.name} failed: {' | '.join(said)}")
                up_s = time.monotonic() - began
                yield LabHandle(folder, lab.status(), waited, up_s)
            finally:
                lab.down()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- processes ------------------------------------------------------------------------------


def stop_child(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM a child by its PID, wait, SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def children_of(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def process_name(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/comm")).read_text().strip()
    except OSError:
        return ""


def _status_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes that share them."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


class MemorySampler:
    """Samples the summed VmRSS and PSS of a changing set of processes; keeps the peaks.

    For a server made of many short-lived processes (Postfix forks smtpd and
    cleanup as load comes and ends them after ``max_use`` clients), VmHWM of
    the survivors misses the ones that exited, so the sum is sampled instead.
    RSS sums count each shared library page once per process; PSS divides
    shared pages among their sharers, so the summed PSS is the fair figure
    for many processes of one program.
    """

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.2) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self.peak_kib = 0
        self.peak_pss_kib = 0
        self.peak_processes = 0
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        pids = self._pids()
        self.peak_kib = max(self.peak_kib, sum(rss_kib(p) for p in pids))
        self.peak_pss_kib = max(self.peak_pss_kib, sum(pss_kib(p) for p in pids))
        self.peak_processes = max(self.peak_processes, len(pids))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()


def wait_for_port(address: str, port: int, timeout: float = 20.0, banner: bool = False) -> None:
    """Wait until something accepts connections on address:port (and says 220, if asked)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=2) as sock:
                if banner:
                    data = sock.recv(512)
                    if not data.startswith(b"220"):
                        raise BenchSetupError(f"{address}:{port} greeted with {data[:60]!r}")
                    sock.sendall(b"QUIT\r\n")
                return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise BenchSetupError(f"nothing listens on {address}:{port} after {timeout:.0f} s: {last}")


# --- smtp-source and smtp-sink --------------------------------------------------------------


@dataclass
class SourceRun:
    seconds: float
    stderr: str


def smtp_source(
    target: str,
    *,
    sessions: int,
    messages: int,
    size: int,
    keep_open: bool = False,
    sender: str = "a@bench.test",
    recipient: str = "b@bench.test",
    timeout: float = 900.0,
) -> SourceRun:
    """Run Postfix's smtp-source once against ``target`` (address:port); its wall time.

    Raises if it failed or complained: a run where messages were refused is
    no measurement of acceptance.
    """
    command = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size)]
    if keep_open:
        command.append("-d")
    command += ["-f", sender, "-t", recipient, target]
    began = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - began
    complaints = [
        line
        for line in proc.stderr.splitlines()
        if any(word in line for word in ("fatal", "error", "warning"))
    ]
    if proc.returncode != 0 or complaints:
        raise BenchSetupError(
            f"smtp-source to {target} exited {proc.returncode}: {complaints[:3] or proc.stderr}"
        )
    return SourceRun(seconds, proc.stderr)


@contextlib.contextmanager
def smtp_sink(address: str, port: int = 25, backlog: int = 1000) -> Iterator[int]:
    """Postfix's smtp-sink on address:port (discards everything); yields its PID."""
    # -u nobody is mandatory when run as root.
    proc = subprocess.Popen(
        ["smtp-sink", "-u", "nobody", f"{address}:{port}", str(backlog)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(address, port, banner=True)
        yield proc.pid
    finally:
        stop_child(proc)


# --- a private Postfix instance ---------------------------------------------------------------

# sitemail.internet.postfix writes and runs the instance (its own main.cf,
# master.cf, queue folder; no chroot), as for the lab's Internet host.  For
# the benchmark it accepts anything for bench.test and holds it.
_HOLDING = {
    # bench.test is local and every address in it is accepted at RCPT, as a 2010
    # hub does for its accepted domains (no recipient filtering).
    "mydestination": "bench.test",
    "mynetworks": "127.0.0.0/8",
    # Every message goes to the hold queue: accepted (written and fsynced by
    # cleanup, as always), never delivered, so only acceptance is measured.
    "smtpd_client_restrictions": "check_client_access static:HOLD",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
}


@dataclass
class PostfixPeer:
    """A running private Postfix: its instance and SMTP address."""

    instance: PostfixInstance
    address: str
    port: int

    def processes(self) -> list[int]:
        """Every process of this Postfix: master and all it runs (smtpd, cleanup, qmgr...)."""
        return self.instance.processes()

    def held(self) -> int:
        """Messages in the hold queue (files in hold/, any depth)."""
        return sum(len(files) for _, _, files in os.walk(self.instance.root / "queue" / "hold"))

    def log_tail(self, lines: int = 5) -> str:
        return self.instance.log_tail(lines)


@contextlib.contextmanager
def postfix_peer(address: str = POSTFIX_ADDRESS, port: int = 25) -> Iterator[PostfixPeer]:
    """A Postfix with its own config and queue folder, holding every message it accepts."""
    folder = Path(tempfile.mkdtemp(prefix="sitemail-bench-postfix-"))
    # Postfix's daemons run as the postfix user and must reach the queue.
    folder.chmod(0o755)
    config = PostfixConfig(
        hostname="postfix.bench.test", address=address, smtp_port=port, settings=_HOLDING
    )
    instance = PostfixInstance(folder, config)
    try:
        try:
            instance.start()
        except PostfixError as exc:
            raise BenchSetupError(str(exc)) from exc
        yield PostfixPeer(instance, address, port)
    finally:
        instance.remove()
        shutil.rmtree(folder, ignore_errors=True)


# --- misc -----------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (a hub, its receive worker zygote and the
    workers forked from it), whichever thread started them."""
    tree, todo = [pid], [pid]
    while todo:
        children = children_of(todo.pop())
        tree += children
        todo += children
    return tree


def hwm_kib(pid: int) -> int:
    """VmHWM of a live process (0 if gone)."""
    return peak_rss_kib(pid) or 0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))  # ceil
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


# --- one firewall process alone ---------------------------------------------------------------

NO_INSPECT_ESMTP = (
    "config t\npolicy-map global_policy\nclass inspection_default\nno inspect esmtp\nend"
)


@dataclass
class FirewallAlone:
    lab_dir: Path
    name: str
    listen: str
    proc: subprocess.Popen[bytes]

    def console(self, command: str) -> dict[str, Any]:
        from sitemail.server.console import ConsoleClient

        home = self.lab_dir / "firewalls" / self.name
        with ConsoleClient(home / "console.sock", timeout=5) as client:
            result: dict[str, Any] = client.call(command)
            return result

    def asa(self, lines: str) -> str:
        """Type ``lines`` at the firewall's console, as ``sitemail asa NAME -c`` does."""
        return sitemail_cli("asa", self.name, "-c", lines, "--dir", str(self.lab_dir))


@contextlib.contextmanager
def firewall_alone(
    name: str, listen: str, forward: str, *, address: str = "127.78.0.1"
) -> Iterator[FirewallAlone]:
    """One ``sitemail serve`` firewall process relaying ``listen`` to ``forward``.

    As tests/integration/test_firewall_process.py builds it: a hand-made lab
    folder whose directory holds only the firewall and the lab settings (port
    offset 0: the relayed ports are the real ones), and a ``listeners.json``
    with one inbound route.  It boots the factory configuration, so ESMTP
    inspection is on.
    """
    from sitemail.org.directory import open_directory
    from sitemail.org.model import Firewall, LabSettings

    lab = Path(tempfile.mkdtemp(prefix="sitemail-bench-fw-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        home = lab / "firewalls" / name
        home.mkdir(parents=True)
        directory = open_directory(str(lab / "directory.db"))
        try:
            with directory.transaction():
                directory.put(Firewall(name=name, site="BENCH", address=address))
                directory.put(LabSettings(port_offset=0, lab_dir=str(lab)))
        finally:
            directory.close()
        route = {
            "listen": listen,
            "forward": forward,
            "from_site": "Internet",
            "to_host": "SINK",
            "direction": "inbound",
        }
        (home / "listeners.json").write_text(json.dumps([route]))
        command = [sys.executable, "-m", "sitemail", "serve", name]
        command += ["--directory", str(lab / "directory.db"), "--lab-dir", str(lab)]
        with open(home / "process.log", "ab") as log:
            proc = subprocess.Popen(
                command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        fw = FirewallAlone(lab, name, listen, proc)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                tail = (home / "process.log").read_text(errors="replace")[-300:]
                raise BenchSetupError(f"firewall {name} exited {proc.returncode}: {tail}")
            with contextlib.suppress(Exception):
                if fw.console("health").get("status") == "ok":
                    break
            if time.monotonic() > deadline:
                raise BenchSetupError(f"firewall {name} did not answer in 30 s")
            time.sleep(0.05)
        yield fw
    finally:
        if proc is not None:
            stop_child(proc)
        shutil.rmtree(lab, ignore_errors=True)


@contextlib.contextmanager
def socat_relay(listen: str, port: int, forward: str) -> Iterator[int]:
    """A plain TCP relay (socat, one forked child per connection); yields its PID."""
    proc = subprocess.Popen(
        [
            "socat",
            f"TCP-LISTEN:{port},bind={listen},fork,reuseaddr,backlog=1000",
            f"TCP:{forward}:{port}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(listen, port, banner=True)
        yield proc.pid
    finally:
        # socat's forked children end with their connections; the listener is ours.
        stop_child(proc)


# --- nginx as a plain reverse proxy ------------------------------------------------------------

_NGINX_CONF = """\
# A plain HTTPS reverse proxy for the benchmark, in its own prefix folder.
worker_processes auto;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    # Idle upstream connections are kept, as sitemail's proxy keeps its pool.
    upstream backend {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen {listen} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass https://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {host};
            proxy_bind {bind};
            proxy_ssl_server_name on;
            proxy_ssl_name {host};
        }}
    }}
}}
"""


def nginx_version() -> str | None:
    try:
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stderr or out.stdout).strip()
    return text.split(": ", 1)[-1] if text else None


@dataclass
class NginxProcess:
    root: Path
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def statuses(self) -> dict[str, int]:
        """How many requests of the access log ended with each status."""
        counts: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in (self.root / "access.log").read_text(errors="replace").splitlines():
                parts = line.split('"')
                status = parts[2].split()[0] if len(parts) > 2 and parts[2].split() else "?"
                counts[status] = counts.get(status, 0) + 1
        return counts

    def error_tail(self, chars: int = 400) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "error.log").read_text(errors="replace")[-chars:]
        return ""


@contextlib.contextmanager
def nginx_reverse_proxy(
    listen: str, upstream: str, *, host: str, bind: str, cert: Path, key: Path
) -> Iterator[NginxProcess]:
    """nginx on ``listen`` (address:port, TLS) proxying everything to https://``upstream``.

    Requests leave from ``bind`` with ``Host: host`` (and that SNI name);
    yields the master process (its workers are its children) and its folder.
    """
    root = Path(tempfile.mkdtemp(prefix="sitemail-bench-nginx-"))
    root.chmod(0o755)
    proc: subprocess.Popen[bytes] | None = None
    try:
        conf = root / "nginx.conf"
        values = {"root": root, "upstream": upstream, "listen": listen, "host": host}
        conf.write_text(_NGINX_CONF.format(**values, cert=cert, key=key, bind=bind))
        command = ["nginx", "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]
        proc = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        address, port = listen.rsplit(":", 1)
        try:
            wait_for_port(address, int(port))
        except BenchSetupError:
            errors = (root / "error.log").read_text(errors="replace")[-300:]
            raise BenchSetupError(f"nginx did not start: {errors}") from None
        yield NginxProcess(root, proc)
    finally:
        if proc is not None:
            # TERM is nginx's fast shutdown: the master stops its workers and exits.
            stop_child(proc)
        shutil.rmtree(root, ignore_errors=True)


# --- wrk ------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: dict[str, int]


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    for unit in ("us", "ms", "s", "m"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * _UNITS_MS[unit]
    raise ValueError(f"not a wrk duration: {text!r}")


def parse_wrk(output: str) -> WrkRun:
    """Requests/s, p50 and p99 latency and the error counts of ``wrk --latency`` output."""
    rate = p50 = p99 = None
    requests = 0
    errors: dict[str, int] = {}
    for raw in output.splitlines():
        line = raw.strip()
        words = line.split()
        if line.startswith("Requests/sec:"):
            rate = float(words[1])
        elif line.startswith("50%"):
            p50 = _ms(words[1])
        elif line.startswith("99%"):
            p99 = _ms(words[1])
        elif "requests in" in line:
            requests = int(words[0])
        elif line.startswith("Non-2xx or 3xx responses:"):
            errors["non_2xx_3xx"] = int(words[-1])
        elif line.startswith("Socket errors:"):
            for part in line.split(":", 1)[1].split(","):
                name, count = part.split()
                errors[name] = int(count)
    if rate is None or p50 is None or p99 is None:
        raise ValueError(f"wrk printed no rate or latency: {output[-300:]!r}")
    return WrkRun(rate, p50, p99, requests, {k: v for k, v in errors.items() if v})


def wrk(
    url: str,
    *,
    threads: int,
    connections: int,
    seconds: float,
    headers: Sequence[str] = (),
    script: Path | None = None,
) -> WrkRun:
    """wrk's run; ``script``: a Lua file that makes the requests (a method, a body)."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    proc = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise BenchSetupError(f"wrk exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return parse_wrk(proc.stdout)


# One process, TLS, every request answered with fixed bytes chosen by the path's start:
# the web framework's own cost with nothing behind it (issue 21's ceiling).
_PLAIN_SERVER = """
import json, ssl, sys
from aiohttp import web
address, port, cert, key, table = sys.argv[1:]
answers = [(p, t, open(f, "rb").read()) for p, t, f in json.load(open(table))]
async def answer(request):
    await request.read()
    path = request.path.lower()
    for prefix, kind, body in answers:
        if path.startswith(prefix):
            return web.Response(body=body, content_type=kind)
    raise web.HTTPNotFound()
app = web.Application()
app.router.add_route("*", "/{tail:.*}", answer)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
web.run_app(app, host=address, port=int(port), ssl_context=tls, access_log=None, print=None)
"""


@contextlib.contextmanager
def plain_aiohttp(
    listen: str, cert: Path, key: Path, answers: Sequence[tuple[str, str, bytes]]
) -> Iterator[None]:
    """A plain aiohttp server on ``listen`` (address:port) over TLS answering any request
    whose lowercased path starts with a prefix with that row's (content type, bytes)."""
    address, port = listen.rsplit(":", 1)
    with tempfile.TemporaryDirectory(prefix="sitemail-bench-") as tmp:
        rows = []
        for n, (prefix, kind, body) in enumerate(answers):
            (Path(tmp) / str(n)).write_bytes(body)
            rows.append((prefix, kind, str(Path(tmp) / str(n))))
        table = Path(tmp) / "answers.json"
        table.write_text(json.dumps(rows))
        args = [address, port, str(cert), str(key), str(table)]
        proc = subprocess.Popen(
            [sys.executable, "-c", _PLAIN_SERVER, *args], stdin=subprocess.DEVNULL
        )
        try:
            wait_for_port(address, int(port))
            yield
        finally:
            stop_child(proc)


def aiohttp_version() -> str:
    import aiohttp

    return f"aiohttp {aiohttp.__version__}"
