"""EWS FindItem and ActiveSync Sync under wrk: proxied, local, nginx, plain aiohttp (issue 21).

The lab and the mailbox are owa_proxy's (``topologies/two_sites.yaml``,
adam's Inbox in FL with ``inbox_messages`` messages); Basic authentication is
turned on for EWS on both servers (``Set-WebServicesVirtualDirectory``), as
wrk speaks no Windows authentication.  Two loads, each ``warmup_s``
unrecorded then ``duration_s``:

- **EWS**: ``FindItem`` on the Inbox (the first 20 items, default shape), one
  fixed SOAP body posted by ``threads`` threads over ``connections``;
- **ActiveSync**: ``Sync`` of the Inbox as a device polling it: each
  connection is its own wrk thread and device (``DeviceId`` BENCH<n>), sends
  the SyncKey of its last answer (the first from ``0``, the second gets the
  messages, the rest find nothing new, as most of a phone's Syncs do), so
  ``eas_connections`` threads.

Sides: sitemail at ex-ny1.contoso.com (EX-NY1 proxies both to EX-FL1
through ASA-NY and ASA-FL); local, EX-FL1 itself; nginx, a plain reverse
proxy to EX-FL1 on the proxy's path (owa_proxy's); aiohttp, one plain aiohttp
process over TLS answering each request with the bytes EX-FL1 answered (the
web framework's own cost, with nothing behind it).  Metrics: requests/s of
each load; p99 of each.
"""

from __future__ import annotations

import base64
import contextlib
import re
import ssl
import tempfile
import textwrap
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.harness import Benchmark, Metric, TrialResult, Workload
from bench.lab_util import (
    BenchSetupError,
    LabHandle,
    WrkRun,
    aiohttp_version,
    nginx_version,
    plain_aiohttp,
    sitemail_cli,
    wrk,
)
from bench.owa_proxy import (
    LOCAL_HOST,
    LOCAL_SERVER,
    NGINX_LISTEN,
    PASSWORD,
    PLAIN_LISTEN,
    PROXY_SERVER,
    _prepared_lab,
    _sitemail_version,
    nginx_in_front_of_fl,
)

PROXY_HOST = "ex-ny1.contoso.com"  # EX-NY1's InternalUrls: EWS and ActiveSync have no other
EWS_PATH = "/EWS/Exchange.asmx"
EAS_PATH = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=adam&DeviceType=Bench"
BASIC = "Authorization: Basic " + base64.b64encode(f"contoso\\adam:{PASSWORD}".encode()).decode()
FIND_ITEM = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" '
    'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">'
    '<soap:Header><t:RequestServerVersion Version="Exchange2010_SP2"/></soap:Header>'
    '<soap:Body><m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default'
    '</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="20" Offset="0" '
    'BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/>'
    "</m:ParentFolderIds></m:FindItem></soap:Body></soap:Envelope>"
)
_KEY = re.compile(rb"\{[0-9A-F-]{36}\}\d+")
_PLACEHOLDER = "SYNCKEY-PLACEHOLDER"


def _lua_bytes(data: bytes) -> str:
    return '"' + "".join(f"\\{b:03d}" for b in data) + '"'


def _ews_script(folder: Path) -> Path:
    script = folder / "ews.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "text/xml; charset=utf-8"\n'
        f"wrk.body = {_lua_bytes(FIND_ITEM.encode())}\n"
    )
    return script


def _sync_body(inbox: str, key: str) -> bytes:
    from sitemail.protocols.wbxml import el, encode

    collection = el(
        "AirSync:Collection", el("AirSync:SyncKey", key), el("AirSync:CollectionId", inbox)
    )
    return encode(el("AirSync:Sync", el("AirSync:Collections", collection)))


def _eas_script(folder: Path, inbox: str) -> Path:
    """Each thread a device that sends back the SyncKey of its last answer."""
    head, _, tail = _sync_body(inbox, _PLACEHOLDER).partition(_PLACEHOLDER.encode())
    script = folder / "eas.lua"
    script.write_text(
        textwrap.dedent(
            f"""\
            local head, tail = {_lua_bytes(head)}, {_lua_bytes(tail)}
            local devices = 0
            function setup(thread)
              devices = devices + 1
              thread:set("device", "BENCH" .. devices)
            end
            function init(args)
              key = "0"
              path = "{EAS_PATH}&DeviceId=" .. device
              -- wrk.format takes Host alone from wrk.headers: the others are copied.
              headers = {{}}
              for name, value in pairs(wrk.headers) do headers[name] = value end
              headers["Content-Type"] = "application/vnd.ms-sync.wbxml"
              headers["MS-ASProtocolVersion"] = "14.1"
            end
            function request()
              return wrk.format("POST", path, headers, head .. key .. tail)
            end
            function response(status, headers, body)
              key = string.match(body, "{{[%x%-]+}}%d+") or "0"
            end
            """
        )
    )
    return script


def _post(address: str, host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # as wrk: the point is the answer, not the certificate
    name, value = BASIC.split(": ", 1)
    request = urllib.request.Request(
        f"https://{address}{path}",
        data=body,
        headers={"Host": host, name: value, **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:
        return bytes(resp.read())


def _inbox_id(address: str, host: str) -> str:
    from sitemail.protocols.wbxml import decode, el, encode

    body = encode(el("FolderHierarchy:FolderSync", el("FolderHierarchy:SyncKey", "0")))
    answer = _post(
        address,
        host,
        "/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=adam&DeviceId=BENCHSETUP&DeviceType=x",
        body,
        {"Content-Type": "application/vnd.ms-sync.wbxml", "MS-ASProtocolVersion": "14.1"},
    )
    for add in decode(answer).findall("Changes/Add"):
        if add.findtext("DisplayName") == "Inbox":
            return add.findtext("ServerId") or ""
    raise BenchSetupError(f"{address} ({host}): no Inbox in FolderSync")


def _answers(address: str, host: str, inbox: str, messages: int) -> tuple[bytes, bytes]:
    """A FindItem answer and a steady Sync answer, checked as wrk will get them."""
    ews = _post(address, host, EWS_PATH, FIND_ITEM.encode(), {"Content-Type": "text/xml"})
    if b"NoError" not in ews or f'TotalItemsInView="{messages}"'.encode() not in ews:
        raise BenchSetupError(f"{address} ({host}): FindItem did not list the Inbox")
    eas_headers = {"Content-Type": "application/vnd.ms-sync.wbxml", "MS-ASProtocolVersion": "14.1"}
    key = "0"
    answer = b""
    for _ in range(3):  # the first key, the messages, then nothing new
        path = f"{EAS_PATH}&DeviceId=BENCHCHECK"
        answer = _post(address, host, path, _sync_body(inbox, key), eas_headers)
        found = _KEY.search(answer)
        if found is None:
            raise BenchSetupError(f"{address} ({host}): Sync gave no SyncKey")
        key = found.group().decode()
    return ews, answer


def _run(
    address: str, host: str, script: Path, threads: int, conns: int, p: Mapping[str, Any]
) -> WrkRun:
    url = f"https://{address}{EWS_PATH if script.name == 'ews.lua' else '/'}"
    headers = [f"Host: {host}", BASIC]
    warmup = float(p["warmup_s"])
    if warmup > 0:
        wrk(url, threads=threads, connections=conns, seconds=warmup, headers=headers, script=script)
    run = wrk(
        url,
        threads=threads,
        connections=conns,
        seconds=float(p["duration_s"]),
        headers=headers,
        script=script,
    )
    if run.errors:
        raise BenchSetupError(f"wrk against {address} ({host}) met errors: {run.errors}")
    return run


def _measure(address: str, host: str, inbox: str, p: Mapping[str, Any]) -> TrialResult:
    with tempfile.TemporaryDirectory(prefix="sitemail-bench-ca-") as tmp:
        folder = Path(tmp)
        ews = _run(address, host, _ews_script(folder), int(p["threads"]), int(p["connections"]), p)
        eas_conns = int(p["eas_connections"])
        eas = _run(address, host, _eas_script(folder, inbox), eas_conns, eas_conns, p)
    return TrialResult(
        {
            "ews_requests_per_s": ews.requests_per_s,
            "ews_p99_ms": ews.p99_ms,
            "eas_requests_per_s": eas.requests_per_s,
            "eas_p99_ms": eas.p99_ms,
        },
        notes={"ews_requests": ews.requests, "eas_requests": eas.requests},
    )


@contextlib.contextmanager
def _lab(p: Mapping[str, Any]) -> Iterator[tuple[LabHandle, str]]:
    with _prepared_lab(p) as lab:
        for server in (PROXY_SERVER, LOCAL_SERVER):
            sitemail_cli(
                "shell",
                "-c",
                f'Set-WebServicesVirtualDirectory "{server}\\EWS (Default Web Site)" '
                "-BasicAuthentication $true",
                "--dir",
                str(lab.dir),
            )
        address = lab.address(LOCAL_SERVER)
        inbox = _inbox_id(address, LOCAL_HOST)
        _answers(address, LOCAL_HOST, inbox, int(p["inbox_messages"]))
        yield lab, inbox


def proxied_trial(p: Mapping[str, Any]) -> TrialResult:
    with _lab(p) as (lab, inbox):
        address = lab.address(PROXY_SERVER)
        _answers(address, PROXY_HOST, inbox, int(p["inbox_messages"]))
        return _measure(address, PROXY_HOST, inbox, p)


def local_trial(p: Mapping[str, Any]) -> TrialResult:
    with _lab(p) as (lab, inbox):
        return _measure(lab.address(LOCAL_SERVER), LOCAL_HOST, inbox, p)


def nginx_trial(p: Mapping[str, Any]) -> TrialResult:
    with _lab(p) as (lab, inbox), nginx_in_front_of_fl(lab):
        address = NGINX_LISTEN.removesuffix(":443")
        _answers(address, LOCAL_HOST, inbox, int(p["inbox_messages"]))
        return _measure(address, LOCAL_HOST, inbox, p)


def aiohttp_trial(p: Mapping[str, Any]) -> TrialResult:
    from sitemail.org.pki import server_cert_files

    with _lab(p) as (lab, inbox):
        ews, eas = _answers(lab.address(LOCAL_SERVER), LOCAL_HOST, inbox, int(p["inbox_messages"]))
        files = server_cert_files(lab.dir / "pki", LOCAL_SERVER)
        answers = [("/ews/", "text/xml", ews), ("/", "application/vnd.ms-sync.wbxml", eas)]
        with plain_aiohttp(PLAIN_LISTEN, files.cert, files.key, answers):
            return _measure(PLAIN_LISTEN.rsplit(":", 1)[0], LOCAL_HOST, inbox, p)


BENCHMARK = Benchmark(
    name="client_access",
    description=(
        "EWS FindItem (Inbox, 20 items) and ActiveSync Sync (a device polling its Inbox) under "
        "wrk: proxied EX-NY1 -> ASA-NY -> ASA-FL -> EX-FL1, EX-FL1 itself, nginx in front of "
        "EX-FL1, and one plain aiohttp process giving EX-FL1's answers"
    ),
    sitemail=Workload(
        "sitemail",
        proxied_trial,
        version=_sitemail_version,
        description="at ex-ny1.contoso.com (EX-NY1), CAS-to-CAS proxy to EX-FL1",
    ),
    peers=[
        Workload(
            "local",
            local_trial,
            version=_sitemail_version,
            description="at ex-fl1.contoso.com, served by EX-FL1 with no proxy",
        ),
        Workload(
            "nginx",
            nginx_trial,
            version=nginx_version,
            description="nginx reverse proxy (upstream keepalive) to EX-FL1 through both ASAs",
        ),
        Workload(
            "aiohttp",
            aiohttp_trial,
            version=aiohttp_version,
            description="one plain aiohttp process over TLS answering with EX-FL1's bytes",
        ),
    ],
    parameters={
        "threads": 2,
        "connections": 50,
        "eas_connections": 16,
        "duration_s": 10.0,
        "warmup_s": 2.0,
        "inbox_messages": 25,
    },
    metrics={
        "ews_requests_per_s": Metric("req/s", higher_is_better=True),
        "ews_p99_ms": Metric("ms", higher_is_better=False),
        "eas_requests_per_s": Metric("req/s", higher_is_better=True),
        "eas_p99_ms": Metric("ms", higher_is_better=False),
    },
)
