"""Shared fixtures: a running lab, started and stopped by the tests themselves."""

from __future__ import annotations

import fcntl
import http.cookiejar
import json
import os
import re
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sitemail.lab.addressing import plan_lock_path
from sitemail.org.directory import Directory, open_directory
from sitemail.org.lab_state import lab_directory_url
from sitemail.org.pki import admin_cert_files, client_ssl_context

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def sitemail(
    *args: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `sitemail` command, as a user would (``env``: extra variables)."""
    env = dict(os.environ, COLUMNS="200", **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "sitemail", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"sitemail {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """The first true value of ``predicate``, asked every 0.1 s; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout:.0f} s: {what}")
        time.sleep(0.1)


def stays(predicate: Callable[[], object], what: str, seconds: float = 1.5) -> None:
    """``predicate`` holds at every look for ``seconds`` (a quiet period after an outcome,
    so that a late second one, such as a repeated delivery, is seen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), f"no longer true: {what}"
        time.sleep(0.1)
    assert predicate(), f"no longer true: {what}"


def delivered_once(
    lab: RunningLab, count: Callable[[], int], message_id: str, what: str, timeout: float = 30.0
) -> None:
    """ "Exactly once": ``count()`` (copies of the message where it should be) becomes 1,
    no queue of the lab holds the message any more, and it stays 1 for a quiet period."""
    wait_for(count, what, timeout)
    wait_for(lambda: not lab.queued(message_id), f"no queue holds {message_id}", timeout)
    stays(lambda: count() == 1, f"{what}, once")


def lab_processes(lab_dir: Path) -> list[int]:
    """PIDs of the live `sitemail serve` processes of this lab folder."""
    return _lab_pids(lab_dir, " serve ")


def lab_workers(lab_dir: Path, module: str | None = None) -> list[int]:
    """PIDs of the live worker processes of this lab's servers: the hubs' receive workers,
    or those of ``module`` (:data:`W3SVC_WORKER`).

    A worker says so on its command line (``--worker N``): a server process forks its
    first workers itself, and a zygote (started to replace one) forks the others.
    """
    return [pid for pid in _lab_pids(lab_dir, module or RECEIVE_WORKER) if _is_worker(pid)]


def lab_zygotes(lab_dir: Path, module: str | None = None) -> list[int]:
    """PIDs of the zygotes of those workers (started only to replace a worker)."""
    return [pid for pid in _lab_pids(lab_dir, module or RECEIVE_WORKER) if not _is_worker(pid)]


def _is_worker(pid: int) -> bool:
    try:
        return b" --worker " in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False


RECEIVE_WORKER = "sitemail.transport.receive_worker"
W3SVC_WORKER = "sitemail.access.web.worker"


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _lab_pids(lab_dir: Path, marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(lab_dir) in cmd and marker in cmd and state != "Z":
            pids.append(int(entry.name))
    return pids


def in_mailbox(lab: RunningLab, server: str, db: str, message_id: str) -> int:
    """How many copies of a message (by Message-ID) a mailbox database holds."""
    import sqlite3

    path = lab.dir / "servers" / server / "mailbox" / f"{db}.db"
    if not path.exists():
        return 0
    bare = message_id.strip("<>")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT count(*) FROM messages m JOIN contents c ON c.id = m.content_id "
            "WHERE c.internet_message_id IN (?, ?)",
            (bare, f"<{bare}>"),
        ).fetchone()
    except sqlite3.OperationalError:  # the database is being created
        return 0
    finally:
        conn.close()
    return int(row[0])


def find_message(lab: RunningLab, message_id: str) -> bytes | None:
    """The raw message with this Message-ID wherever the lab holds it: a mailbox database
    (delivered) or a server's queue (accepted, not yet delivered); None if nowhere."""
    import sqlite3

    bare = message_id.strip("<>")
    ids = (bare, f"<{bare}>")
    for db in sorted(lab.dir.glob("servers/*/mailbox/*.db")):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT data FROM contents WHERE internet_message_id IN (?, ?)", ids
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            conn.close()
        if row is not None:
            return bytes(row[0])
    for que in sorted(lab.dir.glob("servers/*/queue/mail.que")):
        conn = sqlite3.connect(f"file:{que}?mode=ro", uri=True)
        try:
            # A small body is in the queue database itself; a large one in its spool file.
            row = conn.execute(
                "SELECT m.body_file, b.data FROM messages m "
                "LEFT JOIN bodies b ON b.message_id = m.id "
                "WHERE m.internet_message_id IN (?, ?)",
                ids,
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            conn.close()
        if row is not None:
            if row[1] is not None:
                return bytes(row[1])
            path = que.parent / "spool" / Path(row[0]).name
            return path.read_bytes() if path.exists() else b""
    return None


def submit_as(
    user: str,
    rcpts: list[str],
    message_id: str,
    *,
    subject: str = "",
    server: str = "127.1.0.11",
    port: int = 587,
    domain: str = "contoso.com",
) -> None:
    """``user``@``domain`` submits a message on a hub's Client connector (STARTTLS, AUTH)."""
    with smtplib.SMTP(server, port, timeout=30) as s:
        s.ehlo("workstation.contoso.com")
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        s.starttls(context=tls)
        s.ehlo("workstation.contoso.com")
        s.login(user, "Pa55word!")
        refused = s.sendmail(
            f"{user}@{domain}",
            rcpts,
            f"Subject: {subject or message_id}\r\nMessage-ID: <{message_id}>\r\n\r\nHello\r\n",
        )
    assert refused == {}


def owa_page(address: str, user: str, password: str = "Pa55word!", port: int = 443) -> str:
    """Sign in to OWA at ``address`` (NY's external name, mail.contoso.com) with forms, as a
    browser does; the page shown after signing in."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context),
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    )
    host = {"Host": "mail.contoso.com"}
    base = f"https://{address}:{port}"
    with opener.open(urllib.request.Request(f"{base}/owa/", headers=host)) as page:
        logon = page.read().decode()
    match = re.search(r'name="hidcanary" value="([^"]+)"', logon)
    assert match is not None, logon
    form = {
        "destination": "/owa/",
        "flags": "4",
        "hidcanary": match[1],
        "trusted": "4",
        "username": user,
        "password": password,
    }
    request = urllib.request.Request(
        f"{base}/owa/auth.owa",
        data=urllib.parse.urlencode(form).encode(),
        headers={**host, "Origin": "https://mail.contoso.com"},
    )
    with opener.open(request, timeout=30) as signed_in:
        return str(signed_in.read().decode())


def lab_directory_args() -> list[str]:
    """``lab up``'s directory for the labs of the story tests: the embedded one, or with
    ``SITEMAIL_TEST_DIRECTORY=ldap`` a slapd of the lab's own (CI runs the stories both ways)."""
    kind = os.environ.get("SITEMAIL_TEST_DIRECTORY", "embedded")
    if kind not in ("embedded", "ldap"):
        raise pytest.UsageError(f"SITEMAIL_TEST_DIRECTORY={kind!r}: expected embedded or ldap")
    return ["--directory", kind]


class RunningLab:
    def __init__(self, lab_dir: Path) -> None:
        self.dir = lab_dir
        self._admin_urls: dict[str, str] | None = None

    def open_directory(self) -> Directory:
        """The lab's directory, whichever backend it runs on (the caller closes it)."""
        url = lab_directory_url(self.dir)
        assert url is not None, f"no lab in {self.dir}"
        return open_directory(url)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(
            # check=False: a lab with a process down says so with exit status 1.
            sitemail("lab", "status", "--json", "--dir", str(self.dir), check=False).stdout
        )
        return status

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sitemail(*args, "--dir", str(self.dir), check=check)

    def shell(self, line: str) -> list[dict[str, Any]]:
        """The objects a line of the Exchange Management Shell writes (``--json``)."""
        out = self.run("shell", "-c", line, "--json").stdout.strip()
        if not out:
            return []
        data = json.loads(out)
        return data if isinstance(data, list) else [data]

    def queued(self, message_id: str) -> bool:
        """Does a queue of any hub still hold the message (``Get-Message`` asks them all)?

        A shadow copy (shadow redundancy: kept by the hub that handed the message on,
        until the next hop says it is done) is not the message waiting for delivery.
        """
        bare = message_id.strip("<>")
        found = [m for m in self.shell("Get-Message") if m["InternetMessageId"] == f"<{bare}>"]
        if not found:
            return False
        shadows = {
            q["Identity"]
            for q in self.shell("Get-Queue")
            if q["DeliveryType"] == "ShadowRedundancy"
        }
        return any(m["Queue"] not in shadows for m in found)

    def admin(self, server: str, path: str) -> Any:
        """GET ``path`` of a server's admin API, with the lab's admin certificate."""
        pki = self.dir / "pki"
        ctx = client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))
        ctx.check_hostname = False  # reached by address; the chain is still checked
        url = self.admin_urls()[server] + path
        with urllib.request.urlopen(url, context=ctx, timeout=30) as resp:
            return json.loads(resp.read())

    def admin_urls(self) -> dict[str, str]:
        """Each Exchange server's admin API (asked once: a lab's addresses do not change)."""
        if self._admin_urls is None:
            self._admin_urls = {
                s["name"]: s["endpoints"]["admin"]
                for s in self.status()["servers"]
                if "admin" in s.get("endpoints", {})
            }
        return self._admin_urls

    def changes_live(self, timeout: float = 30.0) -> None:
        """Until every running Exchange server has applied the directory as it is now:
        what a Set-* cmdlet just changed is live (each server's ``/health`` names the
        directory change its services have all taken)."""
        directory = self.open_directory()  # whichever backend the lab runs on
        try:
            counter = directory.change_counter()
        finally:
            directory.close()
        for name in self.admin_urls():
            wait_for(
                lambda name=name: self.admin(name, "/health")["directory_change"] >= counter,
                f"{name} applies directory change {counter}",
                timeout,
            )


_slot_depth = 0  # how many lab_slot() blocks of this process are open (the lock is held once)


@contextmanager
def lab_slot() -> Iterator[None]:
    """Hold the machine's lab address plan: every lab uses the same loopback addresses, so
    test runs that start labs (several at once on a developer's machine) take turns.

    Re-entrant within this process: a test that already holds the slot (``exclusive_lab``,
    ``seed_lab``) and takes it again -- to start a second lab beside the first, say --
    goes on at once.  (A second ``flock`` on a new descriptor of the same file would wait
    for the first one, that is for itself, forever.)"""
    global _slot_depth
    if _slot_depth:
        _slot_depth += 1
        try:
            yield
        finally:
            _slot_depth -= 1
        return
    fd = os.open(plan_lock_path(), os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _slot_depth = 1
        try:
            yield
        finally:
            _slot_depth = 0
    finally:
        os.close(fd)


@pytest.fixture
def exclusive_lab() -> Iterator[None]:
    """For a test that starts and stops labs of its own."""
    with lab_slot():
        yield


@contextmanager
def example_lab(tmp_path_factory: pytest.TempPathFactory, example: str) -> Iterator[RunningLab]:
    """A lab of ``examples/<example>``, up for the block (a module's fixture holds it)."""
    lab_dir = tmp_path_factory.mktemp(example.removesuffix(".yaml") + "lab")
    with lab_slot():
        sitemail("lab", "up", str(EXAMPLES / example), *lab_directory_args(), "--dir", str(lab_dir))
        try:
            yield RunningLab(lab_dir)
        finally:
            sitemail("lab", "down", "--dir", str(lab_dir), check=False)


@contextmanager
def topology_lab(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    topology: str,
    env: dict[str, str] | None = None,
) -> Iterator[RunningLab]:
    """A lab of the topology text ``topology``, up for the block, with ``env`` in the
    environment of `lab up` (so of its processes); none of its processes outlive it."""
    folder = tmp_path_factory.mktemp(name)
    path = folder / f"{name}.yaml"
    path.write_text(topology)
    lab_dir = folder / "lab"
    with lab_slot():
        sitemail("lab", "up", str(path), "--dir", str(lab_dir), env=env)
        try:
            yield RunningLab(lab_dir)
        finally:
            sitemail("lab", "down", "--dir", str(lab_dir), check=False)
    for module in (RECEIVE_WORKER, W3SVC_WORKER):
        assert _lab_pids(lab_dir, module) == []
    assert lab_processes(lab_dir) == []


@pytest.fixture(scope="module")
def seed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with example_lab(tmp_path_factory, "seed.yaml") as lab:
        yield lab


NETNS_PYTHON = ROOT / "scripts" / "netns-python"


def private_loopback_works() -> bool:
    """Whether a process may have a network namespace of its own here (root, unshare)."""
    try:
        probe = subprocess.run(
            [str(NETNS_PYTHON), "true"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def pytest_configure(config: pytest.Config) -> None:
    """Parallel workers (``pytest -n N``, pytest-xdist) each run in a network namespace of
    their own: every lab binds the same loopback addresses, and in one namespace two
    workers' labs would take turns (lab_slot) or collide on the tests' own listeners."""
    tx = getattr(config.option, "tx", None)
    if not tx or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if not private_loopback_works():
        raise pytest.UsageError(
            "parallel test workers (-n) each need a network namespace of their own, and "
            f"{NETNS_PYTHON.name} could not make one here (it needs root, unshare and ip); "
            "run the tests without -n"
        )
    config.option.tx = [
        f"popen//python={NETNS_PYTHON} {sys.executable}" if spec == "popen" else spec for spec in tx
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing may pass by not running."""
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line(f"CI: {len(skipped)} skipped test(s) count as failures", red=True)
