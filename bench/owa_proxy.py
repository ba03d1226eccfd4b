"""OWA message list through the CAS-to-CAS proxy, served locally, and behind nginx (issue 7).

Every side starts the lab of ``topologies/two_sites.yaml`` (NY and FL behind
their ASAs; adam's mailbox in FL-DB1 on EX-FL1, whose OWA has no
ExternalUrl), puts ``inbox_messages`` messages in adam's Inbox through the
store API, signs adam in with the OWA sign-in form, checks that the list
page is what the load will fetch ("Items 1 to 20 of N"), then runs ``wrk``
(``threads``, ``connections``, ``warmup_s`` unrecorded, then ``duration_s``)
on ``/owa/?ae=Folder&id=inbox`` with the session's cookies:

- sitemail: adam signed in at https://mail.contoso.com/owa (EX-NY1,
  127.1.0.11); EX-NY1 proxies every request to EX-FL1's InternalUrl through
  ASA-NY and ASA-FL (server-authenticated TLS, a pool of kept-alive
  connections);
- local: adam signed in at EX-FL1 itself (https://ex-fl1.contoso.com/owa,
  127.2.0.11), which serves the list with no proxy in between;
- nginx: a plain nginx reverse proxy on 127.77.2.1:443 (TLS with EX-NY1's
  certificate) sending everything to EX-FL1 along the same path as EX-NY1's
  proxy (from 127.1.0.11 to EX-FL1's address as NY sees it, through both
  ASAs), upstream keepalive, ``Host: ex-fl1.contoso.com``, with the
  session adam got at EX-FL1;
- aiohttp: the ceiling issue 21 measures against, one plain aiohttp process
  over TLS (127.77.2.2:443) answering every request with the bytes of the
  list page EX-FL1 served (the web framework's own cost, nothing behind it).

wrk does not verify certificates.  Metrics: requests/s and the p50/p99
latency wrk reports.  Peak memory: sitemail's is the peak summed VmRSS of
EX-NY1 (the proxying CAS) and its descendants (its W3SVC worker processes,
which serve the requests), sampled every 0.2 s; nginx's the same over its
master and workers; none for local (EX-FL1's VmHWM is in the notes of every
side).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from bench.harness import Benchmark, Metric, TrialResult, Workload
from bench.lab_util import (
    TOPOLOGIES,
    BenchSetupError,
    LabHandle,
    MemorySampler,
    NginxProcess,
    WrkRun,
    aiohttp_version,
    children_of,
    hwm_kib,
    nginx_reverse_proxy,
    nginx_version,
    plain_aiohttp,
    process_tree,
    running_lab,
    wrk,
)

TOPOLOGY = TOPOLOGIES / "two_sites.yaml"
PROXY_HOST, PROXY_SERVER = "mail.contoso.com", "EX-NY1"
LOCAL_HOST, LOCAL_SERVER = "ex-fl1.contoso.com", "EX-FL1"
USER, PASSWORD = "contoso\\adam", "Pa55word!"
LIST_PATH = "/owa/?ae=Folder&id=inbox"
NGINX_LISTEN = "127.77.2.1:443"
PLAIN_LISTEN = "127.77.2.2:443"
_FORM_FIELDS = r'name="(destination|flags|forcedownlevel|isUtf8|hidcanary)" value="([^"]*)"'


class _LabNames(AbstractResolver):
    """The lab's host names, as its DNS would answer them; any other name is refused."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"{host} is not a name of the lab")
        return [
            {
                "hostname": host,
                "host": self.names[host],
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


async def _fill_inbox(lab: LabHandle, count: int) -> None:
    from sitemail.mailbox.store_client import StoreClient
    from sitemail.org.directory import open_directory
    from sitemail.org.pki import server_cert_files
    from sitemail.org.ports import STORE_PORT

    addresses = {s["name"]: s["address"] for s in lab.status["servers"]}
    from sitemail.org.lab_state import lab_directory_url

    url = lab_directory_url(lab.dir)
    if url is None:
        raise BenchSetupError(f"no lab in {lab.dir}")
    directory = open_directory(url)
    pki = lab.dir / "pki"
    try:
        async with StoreClient(
            directory,
            lambda server: (addresses[server], STORE_PORT),
            ca_file=pki / "ca.pem",
            cert_files=server_cert_files(pki, LOCAL_SERVER),
        ) as store:
            for i in range(count):
                message = (
                    "From: Alice Ny <alice@contoso.com>\r\nTo: Adam Fl <adam@contoso.com>\r\n"
                    f"Subject: Bench note {i:03d}\r\nMessage-ID: <bench-note-{i}@contoso.com>\r\n"
                    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                    f"Text of note {i}, a line or two as in any mailbox.\r\n"
                ).encode()
                await store.deliver("adam", f"bench-owa:{i}", message)
    finally:
        directory.close()


async def _sign_in(lab: LabHandle, host: str, server: str) -> str:
    """Adam's session cookies after the OWA sign-in form at ``host`` (the ``Cookie`` value)."""
    ctx = ssl.create_default_context(cafile=str(lab.dir / "pki" / "ca.pem"))
    names = {host: lab.address(server)}
    connector = aiohttp.TCPConnector(ssl=ctx, resolver=_LabNames(names))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"https://{host}/owa") as r:
            page = await r.text()
        form = {**dict(re.findall(_FORM_FIELDS, page)), "username": USER, "password": PASSWORD}
        form["trusted"] = "4"  # "private computer"
        async with session.post(f"https://{host}/owa/auth.owa", data=form) as r:
            page = await r.text()
            if r.status != 200 or "Items 1 to" not in page:
                raise BenchSetupError(f"sign-in at {host} gave {r.status}, not the Inbox")
        cookies = {c.key: c.value for c in session.cookie_jar}
    if not {"sessionid", "cadata"} <= cookies.keys():
        raise BenchSetupError(f"sign-in at {host} set {sorted(cookies)}, not a session")
    return f"sessionid={cookies['sessionid']}; cadata={cookies['cadata']}"


def _check_list(address: str, host: str, cookie: str, inbox: int) -> None:
    """One request as wrk will make it: it must be the Inbox list, not a sign-in page."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # as wrk: the point is the page, not the certificate
    request = urllib.request.Request(
        f"https://{address}{LIST_PATH}", headers={"Host": host, "Cookie": cookie}
    )
    with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
        page = resp.read().decode(errors="replace")
    wanted = f"Items 1 to {min(20, inbox)} of {inbox}"
    if wanted not in page:
        raise BenchSetupError(f"{address} ({host}) did not serve the list: no {wanted!r}")


def _load(address: str, host: str, cookie: str, params: Mapping[str, Any]) -> WrkRun:
    headers = [f"Host: {host}", f"Cookie: {cookie}"]
    url = f"https://{address}{LIST_PATH}"
    threads, connections = int(params["threads"]), int(params["connections"])
    warmup = float(params["warmup_s"])
    if warmup > 0:
        wrk(url, threads=threads, connections=connections, seconds=warmup, headers=headers)
    run = wrk(
        url,
        threads=threads,
        connections=connections,
        seconds=float(params["duration_s"]),
        headers=headers,
    )
    if run.errors:
        raise BenchSetupError(f"wrk against {address} ({host}) met errors: {run.errors}")
    return run


@contextlib.contextmanager
def _prepared_lab(params: Mapping[str, Any], directory: str | None = None) -> Iterator[LabHandle]:
    with running_lab(TOPOLOGY, directory=directory) as lab:
        asyncio.run(_fill_inbox(lab, int(params["inbox_messages"])))
        yield lab


def _metrics(run: WrkRun) -> dict[str, float]:
    return {"requests_per_s": run.requests_per_s, "p50_ms": run.p50_ms, "p99_ms": run.p99_ms}


def _notes(lab: LabHandle, run: WrkRun) -> dict[str, Any]:
    return {
        "requests": run.requests,
        "vmhwm_kib": {s: hwm_kib(lab.pid(s)) for s in (PROXY_SERVER, LOCAL_SERVER)},
        "lab_lock_wait_s": round(lab.lock_wait_s, 3),
    }


def proxied_trial(params: Mapping[str, Any], directory: str | None = None) -> TrialResult:
    with _prepared_lab(params, directory) as lab:
        cookie = asyncio.run(_sign_in(lab, PROXY_HOST, PROXY_SERVER))
        address = lab.address(PROXY_SERVER)
        _check_list(address, PROXY_HOST, cookie, int(params["inbox_messages"]))
        with MemorySampler(lambda: process_tree(lab.pid(PROXY_SERVER))) as memory:
            run = _load(address, PROXY_HOST, cookie, params)
        notes = _notes(lab, run)
        notes["peak_pss_kib"] = memory.peak_pss_kib
        return TrialResult(_metrics(run), peak_rss_kib=memory.peak_kib, notes=notes)


def proxied_ldap_trial(params: Mapping[str, Any]) -> TrialResult:
    """The proxied side with the organization in the lab's own slapd (issue 15)."""
    return proxied_trial(params, directory="ldap")


def local_trial(params: Mapping[str, Any]) -> TrialResult:
    with _prepared_lab(params) as lab:
        cookie = asyncio.run(_sign_in(lab, LOCAL_HOST, LOCAL_SERVER))
        address = lab.address(LOCAL_SERVER)
        _check_list(address, LOCAL_HOST, cookie, int(params["inbox_messages"]))
        run = _load(address, LOCAL_HOST, cookie, params)
        return TrialResult(_metrics(run), notes=_notes(lab, run))


@contextlib.contextmanager
def nginx_in_front_of_fl(lab: LabHandle) -> Iterator[NginxProcess]:
    """nginx on NGINX_LISTEN with EX-NY1's certificate, proxying to EX-FL1 as NY reaches it:
    from EX-NY1's address through ASA-NY and ASA-FL, as EX-NY1's proxy goes."""
    from sitemail.org.pki import server_cert_files

    upstream = lab.status["paths"]["NY"][LOCAL_SERVER]["address"]
    files = server_cert_files(lab.dir / "pki", PROXY_SERVER)
    with nginx_reverse_proxy(
        NGINX_LISTEN,
        f"{upstream}:443",
        host=LOCAL_HOST,
        bind=lab.address(PROXY_SERVER),
        cert=files.cert,
        key=files.key,
    ) as nginx:
        yield nginx


def nginx_trial(params: Mapping[str, Any]) -> TrialResult:
    with _prepared_lab(params) as lab:
        cookie = asyncio.run(_sign_in(lab, LOCAL_HOST, LOCAL_SERVER))
        with nginx_in_front_of_fl(lab) as nginx:
            address = NGINX_LISTEN.removesuffix(":443")
            _check_list(address, LOCAL_HOST, cookie, int(params["inbox_messages"]))
            try:
                with MemorySampler(lambda: [nginx.pid, *children_of(nginx.pid)]) as memory:
                    run = _load(address, LOCAL_HOST, cookie, params)
            except BenchSetupError as exc:
                raise BenchSetupError(
                    f"{exc}; nginx statuses {nginx.statuses()}, error log: {nginx.error_tail()}"
                ) from exc
        notes = _notes(lab, run)
        notes["nginx_peak_pss_kib"] = memory.peak_pss_kib
        return TrialResult(_metrics(run), peak_rss_kib=memory.peak_kib, notes=notes)


def _page(address: str, host: str, cookie: str) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(
        f"https://{address}{LIST_PATH}", headers={"Host": host, "Cookie": cookie}
    )
    with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
        return bytes(resp.read())


def aiohttp_trial(params: Mapping[str, Any]) -> TrialResult:
    """The ceiling: one plain aiohttp process over TLS answering with the list page's bytes."""
    from sitemail.org.pki import server_cert_files

    with _prepared_lab(params) as lab:
        cookie = asyncio.run(_sign_in(lab, LOCAL_HOST, LOCAL_SERVER))
        page = _page(lab.address(LOCAL_SERVER), LOCAL_HOST, cookie)
        files = server_cert_files(lab.dir / "pki", LOCAL_SERVER)
        with plain_aiohttp(PLAIN_LISTEN, files.cert, files.key, [("/", "text/html", page)]):
            address = PLAIN_LISTEN.rsplit(":", 1)[0]
            _check_list(address, LOCAL_HOST, cookie, int(params["inbox_messages"]))
            run = _load(address, LOCAL_HOST, cookie, params)
        return TrialResult(_metrics(run), notes={"requests": run.requests, "page_bytes": len(page)})


def _sitemail_version() -> str:
    import sitemail

    return f"sitemail {sitemail.__version__}"


BENCHMARK = Benchmark(
    name="owa_proxy",
    description=(
        "OWA Inbox list (20 items) under wrk: proxied EX-NY1 -> ASA-NY -> ASA-FL -> EX-FL1, "
        "served by EX-FL1 itself, and through nginx as a plain reverse proxy on the same path"
    ),
    sitemail=Workload(
        "sitemail",
        proxied_trial,
        version=_sitemail_version,
        description="signed in at mail.contoso.com (EX-NY1), CAS-to-CAS proxy; EX-NY1's VmHWM",
    ),
    variants=[
        Workload(
            "ldap",
            proxied_ldap_trial,
            version=_sitemail_version,
            description="the same, the directory in the lab's own OpenLDAP (`--directory ldap`)",
        )
    ],
    peers=[
        Workload(
            "local",
            local_trial,
            version=_sitemail_version,
            description="signed in at ex-fl1.contoso.com, served by EX-FL1 with no proxy",
        ),
        Workload(
            "nginx",
            nginx_trial,
            version=nginx_version,
            description=(
                "nginx reverse proxy (upstream keepalive) to EX-FL1 through both ASAs; "
                "peak summed VmRSS of master+workers"
            ),
        ),
        Workload(
            "aiohttp",
            aiohttp_trial,
            version=aiohttp_version,
            description="the ceiling: one plain aiohttp process over TLS answering the page",
        ),
    ],
    parameters={
        "threads": 2,
        "connections": 50,
        "duration_s": 10.0,
        "warmup_s": 2.0,
        "inbox_messages": 25,
    },
    metrics={
        "requests_per_s": Metric("req/s", higher_is_better=True),
        "p50_ms": Metric("ms", higher_is_better=False),
        "p99_ms": Metric("ms", higher_is_better=False),
    },
)
