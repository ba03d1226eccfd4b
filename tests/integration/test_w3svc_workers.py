"""W3SVC in worker processes: one listening socket, every worker the whole web site.

The test runs the service with two workers (the test's own children) and
speaks HTTPS to it over persistent connections (``http.client``), so that it
can tell from ``/proc`` which worker holds each connection: the kernel's
table of TCP sockets gives the server-side socket of a connection, and a
worker's open descriptors say whether it is that worker's.  With that it
shows what a user depends on: signed in once, every worker knows the
session; signed out in one worker, no worker does; the IIS log of both is
one file of whole lines; a killed worker is replaced, and so are the workers of a
killed zygote; stopping the service stops every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

from tests.conftest import parent_of
from tests.unit.access.test_web_service import PASSWORD, _context, _org

from sitemail.access.web.logs import W3C_FIELDS
from sitemail.access.web.service import W3svcService
from sitemail.mailbox.service import InformationStoreService
from sitemail.org.pki import OrganizationPki
from sitemail.org.ports import STORE_PORT

HOST = "mail.contoso.com"


class Connection(http.client.HTTPSConnection):
    """One persistent HTTPS connection to the service on 127.0.0.1, by the lab name."""

    requests = 0  # made by every connection, for the IIS log

    def __init__(self, pki: OrganizationPki, port: int) -> None:
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        super().__init__(HOST, port, context=context, timeout=30)
        self.cookies: dict[str, str] = {}
        self.connect()

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]

    @property
    def local_port(self) -> int:
        assert self.sock is not None
        return int(self.sock.getsockname()[1])

    def call(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, str]:
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.request(method, path, body=body, headers=headers)
        Connection.requests += 1
        response = self.getresponse()
        text = response.read().decode("utf-8", "replace")
        assert not response.will_close, "the connection must stay open for the test"
        return response.status, response.headers, text


def _owner(workers: list[int], server_port: int, client_port: int) -> int | None:
    """The worker whose descriptors hold the server side of the connection from ``client_port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    if inode is None:
        return None
    for pid in workers:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:
                continue
    return None


def _signed_in(conn: Connection) -> bool:
    status, headers, text = conn.call("GET", "/owa/")
    if status == 302 and "/owa/auth/logon.aspx" in headers.get("Location", ""):
        return False
    assert status == 200 and "Alice User" in text, (status, text)
    return True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _sign_in_use_and_sign_out(
    pki: OrganizationPki, port: int, workers: list[int], home: Path
) -> None:
    first = Connection(pki, port)
    status, headers, _ = first.call(
        "POST",
        "/owa/auth.owa",
        {"destination": f"https://{HOST}/owa/", "username": "alice", "password": PASSWORD},
    )
    assert status == 302, status
    for cookie in headers.get_all("Set-Cookie") or []:
        name, _, rest = cookie.partition("=")
        first.cookies[name] = rest.split(";", 1)[0]
    assert {"sessionid", "cadata"} <= set(first.cookies)

    # A connection held by each worker (the others stopped while it is taken, so that the
    # kernel cannot give every connection to the same one): each is signed in there.
    connections: dict[Connection, int | None] = {}
    for pid in workers:
        with _only(pid, workers):
            conn = Connection(pki, port)
            conn.cookies = dict(first.cookies)
            assert _signed_in(conn)
        connections[conn] = _owner(workers, port, conn.local_port)
    owners = set(connections.values())
    assert owners == set(workers), owners
    assert all(_signed_in(conn) for conn in connections)

    # Sign out through one worker: the other no longer knows the session.
    by_worker = {pid: conn for conn, pid in connections.items()}
    one, other = by_worker[workers[0]], by_worker[workers[1]]
    _, _, page = one.call("GET", "/owa/logoff.owa")
    [canary] = re.findall(r'name="hidcanary" value="([^"]*)"', page)
    status, _, text = one.call("POST", "/owa/logoff.owa", {"hidcanary": canary})
    assert status == 200 and "successfully signed out" in text
    assert not _signed_in(other)
    assert not _signed_in(one)

    # Both workers wrote the one IIS log: whole lines, one header.
    [log] = (home / "inetpub" / "logs" / "LogFiles" / "W3SVC1").glob("u_ex*.log")
    lines = log.read_text().splitlines()
    assert lines[0] == "#Software: Microsoft Internet Information Services 7.5"
    assert sum(line.startswith("#Fields:") for line in lines) == 1
    rows = [line for line in lines if not line.startswith("#")]
    assert len(rows) == Connection.requests
    assert all(len(row.split(" ")) == len(W3C_FIELDS.split()) for row in rows)
    for conn in connections:
        conn.close()


def test_sessions_hold_in_every_worker_and_sign_out_ends_them_in_all(tmp_path: Path) -> None:
    directory, pki, _ = _org(tmp_path)
    ctx = _context(tmp_path, directory)

    async def scenario() -> None:
        # The mailbox store of the server, in this process: OWA reads alice's Inbox from it.
        store = InformationStoreService.from_context(ctx, ctx.port(STORE_PORT))
        await store.start()
        service = W3svcService(ctx, port=0, workers=2)
        await service.start()
        assert service.pool is not None
        workers = service.pool.pids
        try:
            assert len(workers) == 2 and os.getpid() not in workers
            # Both forked from one zygote, this process's child, that imported the site once.
            [zygote] = {parent_of(pid) for pid in workers}
            assert zygote is not None and parent_of(zygote) == os.getpid()
            port = service.port
            # The clients block: in a thread, so that the store in this process answers.
            await asyncio.to_thread(_sign_in_use_and_sign_out, pki, port, workers, ctx.home)

            # A killed worker is replaced; the web site answers meanwhile and after.
            os.kill(workers[0], signal.SIGKILL)
            deadline = time.monotonic() + 30
            while len(service.pool.pids) < 2 or workers[0] in service.pool.pids:
                assert time.monotonic() < deadline, "the killed worker was not replaced"
                await asyncio.sleep(0.1)
            status, _, text = await asyncio.to_thread(
                lambda: Connection(pki, port).call("GET", "/owa/auth/logon.aspx")
            )
            assert status == 200 and "Sign in" in text
            # A killed zygote takes its workers with it; a new one forks them again.
            survivor = service.pool.pids
            os.kill(zygote, signal.SIGKILL)
            while set(service.pool.pids) & set(survivor) or len(service.pool.pids) < 2:
                assert time.monotonic() < deadline + 30, "the workers were not started again"
                await asyncio.sleep(0.1)
            replaced = service.pool.pids
            assert {parent_of(pid) for pid in replaced} != {zygote}
            status, _, text = await asyncio.to_thread(
                lambda: Connection(pki, port).call("GET", "/owa/auth/logon.aspx")
            )
            assert status == 200 and "Sign in" in text
        finally:
            pool = service.pool
            every = pool.pids if pool is not None else []
            await service.stop()
            await store.stop()
        # Stopping the service stops every worker.
        assert every and not any(_alive(pid) for pid in every + workers)
        assert set(replaced) == set(every)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def _hold(pki: OrganizationPki, port: int, source: str, count: int) -> list[ssl.SSLSocket]:
    """Open ``count`` TLS connections from ``source``; those the service keeps open."""
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    opened = []
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        try:
            opened.append(context.wrap_socket(raw, server_hostname=HOST))
        except (ssl.SSLError, OSError):
            raw.close()  # refused during the handshake
    time.sleep(1.0)  # the refusals arrive
    kept = []
    for conn in opened:
        conn.setblocking(False)
        try:
            gone = conn.recv(1) == b""
        except (ssl.SSLWantReadError, BlockingIOError):
            gone = False  # open, waiting for a request
        except (ssl.SSLError, OSError):
            gone = True
        if gone:
            conn.close()
        else:
            kept.append(conn)
    return kept


@contextlib.contextmanager
def _only(serving: int, workers: list[int]) -> Iterator[None]:
    """Only ``serving`` takes new connections: the other workers are stopped (SIGSTOP)."""
    others = [pid for pid in workers if pid != serving]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def test_the_connections_of_one_address_are_counted_for_the_server(tmp_path: Path) -> None:
    directory, pki, _ = _org(tmp_path)
    ctx = _context(tmp_path, directory)
    source = "127.0.0.9"  # not an address of the organization's servers

    async def scenario() -> None:
        service = W3svcService(ctx, port=0, workers=2, max_connections_per_address=6)
        await service.start()
        assert service.pool is not None
        one, other = workers = service.pool.pids
        port = service.port
        try:
            with _only(one, workers):
                first = await asyncio.to_thread(_hold, pki, port, source, 4)
            with _only(other, workers):
                # The other worker knows of the first one's four: two more, not six.
                second = await asyncio.to_thread(_hold, pki, port, source, 6)
            assert (len(first), len(second)) == (4, 2)
            assert {_owner(workers, port, c.getsockname()[1]) for c in first} == {one}
            assert {_owner(workers, port, c.getsockname()[1]) for c in second} == {other}
            # Closed ones no longer count, whichever worker held them.
            for conn in first[:2]:
                conn.close()
            await asyncio.sleep(0.5)
            with _only(other, workers):
                third = await asyncio.to_thread(_hold, pki, port, source, 5)
            assert len(third) == 2
            # Nor do those of a worker that died (the first's last two), once it is replaced.
            os.kill(one, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while len(service.pool.pids) < 2 or one in service.pool.pids:
                assert time.monotonic() < deadline, "the killed worker was not replaced"
                await asyncio.sleep(0.1)
            again = await asyncio.to_thread(_hold, pki, port, source, 5)
            assert len(again) == 2
            for conn in first + second + third + again:
                conn.close()
        finally:
            await service.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))
