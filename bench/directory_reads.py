"""Hot-path directory reads: the LDAP backend beside the embedded one (issue 15).

What a running server reads most: one mailbox by alias (a sign-in, a
categorized recipient), and every Server and VirtualDirectory (a CAS's proxy
or redirect decision over a directory snapshot).  All three sides hold the
same organization, the seed topology plus ``mailboxes`` more mailboxes, and
read it from this process, one read after another:

- sitemail: :class:`~sitemail.org.ldap_directory.LdapDirectory` against a
  private slapd (sitemail's schema, back-mdb, indexes as docs/directory.md
  says) on a free loopback port, bound as its root DN;
- embedded: the SQLite directory file (WAL), the default backend;
- ldap3: the floor under the LDAP backend, the same base-scope searches for
  each mailbox's ``sitemailObject`` with ldap3 and nothing parsed, so the gap
  between it and sitemail is the backend's own work (JSON and pydantic).

Each trial starts its own slapd (or file), loads it, then measures ``gets``
gets of random mailboxes, ``lists`` lists of Server and of VirtualDirectory.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import PROJECT_ROOT, Benchmark, Metric, TrialResult, Workload

EXAMPLES = PROJECT_ROOT / "examples"
ADMIN, PASSWORD, SUFFIX = "CN=admin,DC=contoso,DC=com", "bench-Pa55", "DC=contoso,DC=com"


@contextmanager
def _slapd(folder: Path) -> Iterator[str]:
    """A private slapd with sitemail's schema; yields the directory URL."""
    import sitemail.org

    if not shutil.which("slapd"):
        raise RuntimeError("slapd is not installed: bash scripts/install.sh test")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (folder / "data").mkdir()
    (folder / "password").write_text(PASSWORD)
    schemas = ["core", "cosine", "nis", "inetorgperson"]
    conf = folder / "slapd.conf"
    conf.write_text(
        "".join(f"include /etc/ldap/schema/{n}.schema\n" for n in schemas)
        + f"include {Path(sitemail.org.__file__).parent / 'sitemail.schema'}\n"
        + "modulepath /usr/lib/ldap\nmoduleload back_mdb\ndatabase mdb\n"
        + f'suffix "{SUFFIX}"\nrootdn "{ADMIN}"\nrootpw {PASSWORD}\n'
        + f"directory {folder / 'data'}\nmaxsize 1073741824\n"
        + "index objectClass,sitemailKind,sitemailChangeNumber eq\n"
    )
    proc = subprocess.Popen(
        ["slapd", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(conf), "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("slapd did not start") from None
                time.sleep(0.02)
        yield (
            f"ldap://127.0.0.1:{port}/{SUFFIX}?bind={ADMIN}"
            f"&password_file={folder / 'password'}&org=Contoso"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _load(url: str, mailboxes: int) -> list[str]:
    """Seed a directory; the aliases of its mailboxes."""
    from sitemail.org.directory import open_directory
    from sitemail.org.model import Mailbox
    from sitemail.org.topology import Topology

    d = open_directory(url)
    with d.transaction():
        for obj in Topology.load(EXAMPLES / "seed.yaml").objects(hash_passwords=False):
            d.put(obj)
        for i in range(mailboxes):
            d.put(
                Mailbox(
                    alias=f"user{i}",
                    display_name=f"User {i}",
                    primary_smtp_address=f"user{i}@contoso.com",
                    database="NY-DB1" if i % 2 else "FL-DB1",
                )
            )
    aliases = [m.alias for m in d.list(Mailbox)]
    d.close()
    return aliases


def _measure(
    get: Callable[[str], object],
    list_servers: Callable[[], object],
    list_vdirs: Callable[[], object],
    aliases: list[str],
    params: Mapping[str, Any],
) -> TrialResult:
    rng = random.Random(15)
    picks = [rng.choice(aliases) for _ in range(int(params["gets"]))]
    latencies = []
    began = time.perf_counter()
    for alias in picks:
        t0 = time.perf_counter_ns()
        if get(alias) is None:
            raise RuntimeError(f"mailbox {alias} not found")
        latencies.append(time.perf_counter_ns() - t0)
    gets = len(picks) / (time.perf_counter() - began)
    rates = []
    for reader in (list_servers, list_vdirs):
        began = time.perf_counter()
        for _ in range(int(params["lists"])):
            reader()
        rates.append(int(params["lists"]) / (time.perf_counter() - began))
    return TrialResult(
        {
            "get_mailbox_per_s": gets,
            "get_mailbox_p50_us": statistics.median(latencies) / 1000,
            "list_servers_per_s": rates[0],
            "list_vdirs_per_s": rates[1],
        }
    )


def _directory_trial(url: str, params: Mapping[str, Any]) -> TrialResult:
    from sitemail.org.directory import open_directory
    from sitemail.org.model import Mailbox, Server, VirtualDirectory

    aliases = _load(url, int(params["mailboxes"]))
    d = open_directory(url)
    try:
        return _measure(
            lambda a: d.get(Mailbox, a),
            lambda: d.list(Server),
            lambda: d.list(VirtualDirectory),
            aliases,
            params,
        )
    finally:
        d.close()


def ldap_trial(params: Mapping[str, Any]) -> TrialResult:
    with tempfile.TemporaryDirectory() as tmp, _slapd(Path(tmp)) as url:
        return _directory_trial(url, params)


def embedded_trial(params: Mapping[str, Any]) -> TrialResult:
    with tempfile.TemporaryDirectory() as tmp:
        return _directory_trial(os.path.join(tmp, "directory.db"), params)


def ldap3_trial(params: Mapping[str, Any]) -> TrialResult:
    from ldap3 import BASE, LEVEL, SUBTREE, Connection, Server

    from sitemail.org.directory import open_directory

    with tempfile.TemporaryDirectory() as tmp, _slapd(Path(tmp)) as url:
        aliases = _load(url, int(params["mailboxes"]))
        d = open_directory(url)
        layout = d.layout  # type: ignore[attr-defined]
        d.close()
        port = int(url.split(":")[2].split("/")[0])
        conn = Connection(
            Server("127.0.0.1", port=port, get_info="NO_INFO"), ADMIN, PASSWORD, auto_bind=True
        )

        def get(alias: str) -> object:
            conn.search(
                layout.dn("Mailbox", alias),
                "(sitemailKind=Mailbox)",
                BASE,
                attributes=["sitemailObject"],
            )
            return conn.response[0]["raw_attributes"]["sitemailObject"][0]

        def lister(kind: str, scope: Any) -> Callable[[], object]:
            def read() -> object:
                conn.search(
                    layout.list_base(kind),
                    f"(sitemailKind={kind})",
                    scope,
                    attributes=["sitemailObject"],
                )
                return conn.response

            return read

        try:
            return _measure(
                get, lister("Server", LEVEL), lister("VirtualDirectory", SUBTREE), aliases, params
            )
        finally:
            conn.unbind()


def _slapd_version() -> str | None:
    try:
        out = subprocess.run(["slapd", "-VV"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    line = (out.stderr or out.stdout).splitlines()[0:1]
    return line[0].split("$")[1].strip() if line and "$" in line[0] else None


def _ldap3_version() -> str:
    import ldap3

    return f"ldap3 {ldap3.__version__}"


BENCHMARK = Benchmark(
    name="directory_reads",
    description="hot-path directory reads: LDAP backend (slapd) vs the embedded SQLite one",
    sitemail=Workload(
        "sitemail",
        ldap_trial,
        version=lambda: f"{_slapd_version()}, {_ldap3_version()}",
        description="LdapDirectory against a private slapd on loopback",
    ),
    peers=[
        Workload(
            "embedded",
            embedded_trial,
            version="SQLite (WAL)",
            description="SqliteDirectory on a directory.db file",
        ),
        Workload(
            "ldap3",
            ldap3_trial,
            version=_ldap3_version,
            description="the same searches with ldap3 alone, nothing parsed",
        ),
    ],
    parameters={"mailboxes": 200, "gets": 2000, "lists": 200},
    metrics={
        "get_mailbox_per_s": Metric("op/s", higher_is_better=True),
        "get_mailbox_p50_us": Metric("us", higher_is_better=False),
        "list_servers_per_s": Metric("op/s", higher_is_better=True),
        "list_vdirs_per_s": Metric("op/s", higher_is_better=True),
    },
)
