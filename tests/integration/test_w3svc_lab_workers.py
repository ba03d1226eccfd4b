"""A lab's W3SVC workers: forked by their Client Access server's own process, replaced by a zygote.

The server process imports the web site and forks its W3SVC workers before its
event loop starts (``access/web/worker.py`` ``prefork``), so no zygote runs
beside them; a worker that dies is replaced by one a zygote forks, which the
server process starts for that.  Either way OWA answers, over real TLS, with
the worker's arguments (the server, its folders, its settings) handed over
with the spawn request.
"""

from __future__ import annotations

import os
import signal
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.conftest import RunningLab, lab_slot, parent_of, sitemail

from sitemail.org.model import VirtualDirectory, VirtualDirectoryKind

pytestmark = [pytest.mark.lab]

SERVER = "EX-C1"
WEB_WORKER = "sitemail.access.web.worker"
TOPOLOGY = """\
organization:
  name: Web
  accepted_domains: [web.test]
sites:
  - name: W
servers:
  - name: EX-C1
    site: W
    version: 2010 SP3
    roles: [Mailbox, ClientAccess, HubTransport]
    databases: [W-DB1]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    folder = tmp_path_factory.mktemp("w3svc")
    topology = folder / "web.yaml"
    topology.write_text(TOPOLOGY)
    lab_dir = folder / "lab"
    env = {"SITEMAIL_W3SVC_PROCESSES": "2"}
    with lab_slot():
        sitemail("lab", "up", str(topology), "--dir", str(lab_dir), env=env)
        try:
            yield RunningLab(lab_dir)
        finally:
            sitemail("lab", "down", "--dir", str(lab_dir), check=False)
    assert _web_processes(lab_dir) == {}


def _web_processes(lab_dir: Path) -> dict[int, str]:
    """The lab's live W3SVC workers and zygotes: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
        if WEB_WORKER in cmd and state != "Z" and (str(lab_dir) in cmd or "--parent" in cmd):
            found[int(entry.name)] = cmd
    return found


def _server_pid(lab: RunningLab) -> int:
    [server] = [s for s in lab.status()["servers"] if s["name"] == SERVER]
    return int(server["pid"])


def _workers_and_zygotes(lab: RunningLab) -> tuple[set[int], set[int]]:
    server = _server_pid(lab)
    mine = {
        pid: cmd
        for pid, cmd in _web_processes(lab.dir).items()
        if parent_of(pid) == server or parent_of(parent_of(pid) or 0) == server
    }
    workers = {pid for pid, cmd in mine.items() if " --worker " in cmd}
    return workers, set(mine) - workers


def _sign_in_page(lab: RunningLab) -> str:
    status = lab.status()
    [server] = [s for s in status["servers"] if s["name"] == SERVER]
    port = 443 + int(status["port_offset"])
    directory = lab.open_directory()
    try:
        [owa] = [
            v
            for v in directory.list(VirtualDirectory)
            if v.server == SERVER and v.type is VirtualDirectoryKind.OWA
        ]
    finally:
        directory.close()
    host = urlsplit(owa.internal_url).hostname
    ctx = ssl.create_default_context(cafile=str(lab.dir / "pki" / "ca.pem"))
    ctx.check_hostname = False  # by address, with the name the site answers to as Host
    request = urllib.request.Request(
        f"https://{server['address']}:{port}/owa/", headers={"Host": str(host)}
    )
    with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
        return str(resp.read().decode(errors="replace"))


def _wait(lab: RunningLab, done: Callable[[set[int], set[int]], bool]) -> tuple[set[int], set[int]]:
    """(workers, zygotes) once ``done`` says so, within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        workers, zygotes = _workers_and_zygotes(lab)
        if done(workers, zygotes) or time.monotonic() > deadline:
            return workers, zygotes
        time.sleep(0.2)


def test_the_server_process_forks_its_w3svc_workers_and_a_zygote_replaces_one(
    lab: RunningLab,
) -> None:
    server = _server_pid(lab)
    workers, zygotes = _workers_and_zygotes(lab)
    assert len(workers) == 2 and zygotes == set()
    assert {parent_of(pid) for pid in workers} == {server}
    assert "password" in _sign_in_page(lab).lower()

    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    workers, zygotes = _wait(lab, lambda w, z: len(w) == 2 and victim not in w and len(z) == 1)
    assert len(workers) == 2 and victim not in workers
    [zygote] = zygotes
    assert parent_of(zygote) == server
    # The one the zygote forked, with the arguments that came with the request.
    assert len({pid for pid in workers if parent_of(pid) == zygote}) == 1
    # Every worker serves (a connection may reach either).
    for _ in range(6):
        assert "password" in _sign_in_page(lab).lower()
