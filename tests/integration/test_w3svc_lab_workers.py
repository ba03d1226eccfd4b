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
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from tests.conftest import (
    W3SVC_WORKER,
    RunningLab,
    lab_workers,
    lab_zygotes,
    parent_of,
    topology_lab,
    wait_for,
)

from sitemail.org.model import VirtualDirectory, VirtualDirectoryKind

pytestmark = [pytest.mark.lab]

SERVER = "EX-C1"
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
    env = {"SITEMAIL_W3SVC_PROCESSES": "2"}
    with topology_lab(tmp_path_factory, "w3svc", TOPOLOGY, env) as running:
        yield running


def _server_pid(lab: RunningLab) -> int:
    [server] = [s for s in lab.status()["servers"] if s["name"] == SERVER]
    return int(server["pid"])


def _sign_in_page(lab: RunningLab) -> str:
    """OWA's answer to GET /owa/ at the server's address, with the name it answers to."""
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
    ctx = ssl.create_default_context(cafile=str(lab.dir / "pki" / "ca.pem"))
    ctx.check_hostname = False  # by address, with the name the site answers to as Host
    request = urllib.request.Request(
        f"https://{server['address']}:{port}/owa/",
        headers={"Host": str(urlsplit(owa.internal_url).hostname)},
    )
    with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
        return str(resp.read().decode(errors="replace"))


def test_the_server_process_forks_its_w3svc_workers_and_a_zygote_replaces_one(
    lab: RunningLab,
) -> None:
    server = _server_pid(lab)
    workers = set(lab_workers(lab.dir, W3SVC_WORKER))
    assert len(workers) == 2 and lab_zygotes(lab.dir, W3SVC_WORKER) == []
    assert {parent_of(pid) for pid in workers} == {server}
    assert "password" in _sign_in_page(lab).lower()

    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: (
            len(lab_zygotes(lab.dir, W3SVC_WORKER)) == 1
            and len(now := lab_workers(lab.dir, W3SVC_WORKER)) == 2
            and victim not in now
        ),
        "a zygote and the W3SVC worker it forked in place of the killed one",
    )
    [zygote] = lab_zygotes(lab.dir, W3SVC_WORKER)
    assert parent_of(zygote) == server
    # The one the zygote forked, with the arguments that came with the request.
    replaced = set(lab_workers(lab.dir, W3SVC_WORKER)) - workers
    assert {parent_of(pid) for pid in replaced} == {zygote}
    for _ in range(6):  # a connection may reach either worker: both serve
        assert "password" in _sign_in_page(lab).lower()
