"""exchangelib's own live test suite against a running lab: passed, failed and skipped per file.

Not a benchmark: it declares no ``BENCHMARK`` (the harness's ``_NOT_BENCHMARKS``
names it).  ``scripts/exchangelib-suite`` runs it; docs/architecture.md
(Exchange Web Services) says what the figures mean.

exchangelib's authors run ``tests/`` of their repository against a real
Exchange server named in ``settings.yml`` at the repository's root (the
suite reads it from ``Path(tests/common.py).parent.parent``).  This runs
that suite, from a checkout given by path, against a lab:

1. it reads the lab (``sitemail lab status --json``): the account's address
   and password, the server behind the EWS URL's host name, the port offset;
2. it turns on Basic on that EWS virtual directory (sitemail has no NTLM for
   clients), through the lab's shell, unless told not to;
3. it writes ``settings.yml`` in a temporary folder that mirrors the
   checkout by symlinks (the checkout itself is never written to), and
   runs pytest there with ``-p bench.lab_names`` (lab host names to lab
   addresses) and ``REQUESTS_CA_BUNDLE`` set to the lab's CA;
4. it reads pytest's JUnit XML and prints passed, failed and skipped per
   file and in total, with the share of the tests that ran that passed.

exchangelib's test modules need ``requests_mock`` and ``psutil`` (its
test-requirements), which sitemail's own tests do not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "DEFAULT_FILES",
    "FileCounts",
    "LabAccount",
    "lab_account",
    "main",
    "mirror_checkout",
    "read_junit",
    "render_summary",
    "settings_for",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: What the suite runs unless told otherwise: the live tests of items, folders, the
#: account, the protocol, Autodiscover, attachments and extended properties.
DEFAULT_FILES = (
    "tests/test_items",
    "tests/test_folder.py",
    "tests/test_account.py",
    "tests/test_protocol.py",
    "tests/test_autodiscover.py",
    "tests/test_attachments.py",
    "tests/test_extended_properties.py",
)
#: The modules exchangelib's tests import beyond exchangelib's own requirements.
TEST_REQUIREMENTS = {"requests_mock": "requests-mock", "psutil": "psutil"}
#: A test that takes longer than this is failed (the suite retries for up to ten minutes
#: on what it takes for a busy server).
TEST_TIMEOUT = 300


class SuiteError(Exception):
    """What keeps the suite from running, in one line."""


@dataclass
class FileCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def ran(self) -> int:
        return self.passed + self.failed

    def add(self, other: FileCounts) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped


@dataclass(frozen=True)
class LabAccount:
    """What the suite signs in with, read from the lab."""

    server: str  # host[:port] of the EWS URL
    autodiscover_server: str
    username: str
    password: str
    address: str
    ca_file: Path
    names: dict[str, str] = field(default_factory=dict)  # host name -> lab address
    vdir: str | None = None  # the EWS virtual directory behind the server name


# ------------------------------------------------------------------ the lab


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port or 443


def lab_account(status: dict[str, Any], lab_dir: Path, user: str, url: str) -> LabAccount:
    """The suite's settings for ``user`` at ``url``, from ``sitemail lab status --json``."""
    users = {u["name"]: u for u in status.get("users", [])}
    users.update({u["address"].lower(): u for u in status.get("users", [])})
    entry = users.get(user.lower())
    if entry is None:
        known = ", ".join(sorted(u["name"] for u in status.get("users", [])))
        raise SuiteError(f"the lab has no user {user!r} (it has {known})")
    offset = int(status.get("port_offset", 0))
    names: dict[str, str] = {}
    vdir: str | None = None
    host, port = _host_port(url)
    for server in status.get("servers", []):
        endpoints = server.get("endpoints") or {}
        if "https" not in endpoints:
            continue
        address = server["address"]
        names.setdefault(server["fqdn"].lower(), address)
        for kind, urls in (endpoints.get("urls") or {}).items():
            for each in urls.values():
                if not each:
                    continue
                name = _host_port(each)[0]
                names.setdefault(name, address)
                if kind == "EWS" and name == host and vdir is None:
                    vdir = f"{server['name']}\\EWS (Default Web Site)"
    if host not in names:
        raise SuiteError(f"no Client Access server of the lab answers for {host}")
    port += offset
    server_name = host if port == 443 else f"{host}:{port}"
    autodiscover = next((n for n in names if n.startswith("autodiscover.")), host)
    domain = entry["address"].split("@", 1)[1].split(".", 1)[0]
    return LabAccount(
        server=server_name,
        autodiscover_server=autodiscover,
        username=f"{domain}\\{entry['name']}",
        password=entry["password"],
        address=entry["address"],
        ca_file=lab_dir / "pki" / "ca.pem",
        names=names,
        vdir=vdir,
    )


def settings_for(account: LabAccount) -> dict[str, Any]:
    """The ``settings.yml`` of exchangelib's suite (its ``settings.yml.sample`` keys)."""
    return {
        "server": account.server,
        "autodiscover_server": account.autodiscover_server,
        "username": account.username,
        "password": account.password,
        "account": account.address,
        "alias": account.address,
        # The lab CA is trusted through REQUESTS_CA_BUNDLE: the certificates are checked.
        "verify_ssl": True,
    }


def mirror_checkout(checkout: Path, into: Path, settings: dict[str, Any]) -> None:
    """A folder that is the checkout by symlinks, plus a ``settings.yml`` of its own."""
    for entry in checkout.iterdir():
        if entry.name in ("settings.yml", ".pytest_cache"):
            continue
        (into / entry.name).symlink_to(entry.resolve())
    path = into / "settings.yml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)  # it holds a password


# ------------------------------------------------------------------ the results


def _file_of(classname: str, name: str, files: Sequence[str]) -> str:
    """The test file of a JUnit testcase (``tests.test_items.test_bulk.BulkTest``)."""
    parts = classname.split(".") if classname else name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if candidate in files:
            return candidate
    return "/".join(parts[:-1]) + ".py" if len(parts) > 1 else classname or name


def read_junit(xml: bytes, files: Sequence[str] = ()) -> dict[str, FileCounts]:
    """passed/failed/skipped per file from pytest's JUnit XML (errors count as failed)."""
    root = ET.fromstring(xml)
    outcome: dict[tuple[str, str], str] = {}
    for case in root.iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            result = "failed"
        elif "skipped" in kinds:
            result = "skipped"
        else:
            result = "passed"
        # A test reported twice (a teardown error after a pass) counts once, as failed.
        if outcome.get(key) != "failed":
            outcome[key] = result
    counts: dict[str, FileCounts] = {}
    for (classname, name), result in outcome.items():
        entry = counts.setdefault(_file_of(classname, name, files), FileCounts())
        setattr(entry, result, getattr(entry, result) + 1)
    return dict(sorted(counts.items()))


def render_summary(counts: dict[str, FileCounts]) -> str:
    """The table: one line per file, then the total and the share of tests that ran passing."""
    total = FileCounts()
    width = max([len(f) for f in counts] + [len("total")])
    lines = [f"{'file':<{width}}  {'passed':>6}  {'failed':>6}  {'skipped':>7}"]
    for name, each in counts.items():
        total.add(each)
        lines.append(f"{name:<{width}}  {each.passed:>6}  {each.failed:>6}  {each.skipped:>7}")
    lines.append(f"{'total':<{width}}  {total.passed:>6}  {total.failed:>6}  {total.skipped:>7}")
    share = 100.0 * total.passed / total.ran if total.ran else 0.0
    lines.append(f"{share:.1f}% of the {total.ran} tests that ran (not skipped) passed")
    return "\n".join(lines)


# ------------------------------------------------------------------ running


def _sitemail(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT / "src"), str(PROJECT_ROOT), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "sitemail", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def read_lab(lab_dir: Path) -> dict[str, Any]:
    done = _sitemail(["lab", "status", "--json", "--dir", str(lab_dir)])
    if done.returncode != 0:
        raise SuiteError(f"sitemail lab status failed: {done.stderr.strip() or done.stdout}")
    status: dict[str, Any] = json.loads(done.stdout)
    if not status.get("running"):
        raise SuiteError(f"the lab in {lab_dir} is not running (sitemail lab up --dir {lab_dir})")
    return status


def allow_basic(lab_dir: Path, vdir: str) -> None:
    command = f'Set-WebServicesVirtualDirectory "{vdir}" -BasicAuthentication $true'
    print(f"sitemail shell: {command}", file=sys.stderr)
    done = _sitemail(["shell", "--dir", str(lab_dir), "-c", command])
    if done.returncode != 0:
        raise SuiteError(f"the shell refused {command}: {done.stderr.strip() or done.stdout}")


def check_checkout(checkout: Path, files: Sequence[str]) -> None:
    if not (checkout / "tests" / "common.py").is_file() or not (checkout / "exchangelib").is_dir():
        raise SuiteError(f"{checkout} is not a checkout of exchangelib (no tests/common.py)")
    if checkout.resolve().is_relative_to(PROJECT_ROOT):
        raise SuiteError("the checkout must lie outside the project")
    for name in files:
        if not (checkout / name).exists():
            raise SuiteError(f"{checkout} has no {name}")
    missing = []
    for module, package in TEST_REQUIREMENTS.items():
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise SuiteError(
            f"exchangelib's tests need {', '.join(missing)}: "
            f"{sys.executable} -m pip install {' '.join(missing)}"
        )


def run_suite(
    checkout: Path,
    account: LabAccount,
    files: Sequence[str],
    extra: Sequence[str],
    keep_junit: Path | None = None,
) -> dict[str, FileCounts]:
    with tempfile.TemporaryDirectory(prefix="exchangelib-suite-") as tmp:
        mirror = Path(tmp) / "checkout"
        mirror.mkdir()
        mirror_checkout(checkout, mirror, settings_for(account))
        junit = Path(tmp) / "junit.xml"
        env = dict(os.environ)
        env.update(
            {
                # The mirror first: its tests/ and exchangelib/ are the checkout's.
                "PYTHONPATH": os.pathsep.join([str(mirror), str(PROJECT_ROOT)]),
                "PYTHONDONTWRITEBYTECODE": "1",  # nothing written into the checkout
                "REQUESTS_CA_BUNDLE": str(account.ca_file),
                "CURL_CA_BUNDLE": str(account.ca_file),
                "SITEMAIL_LAB_NAMES": json.dumps(account.names),
                # pytest's short summary cuts each reason at the terminal's width.
                "COLUMNS": env.get("COLUMNS", "200"),
            }
        )
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "bench.lab_names",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--timeout={TEST_TIMEOUT}",
            f"--junitxml={junit}",
            "-o",
            "junit_family=xunit2",
            *extra,
            *files,
        ]
        subprocess.run(command, cwd=mirror, env=env, check=False)
        if not junit.exists():
            raise SuiteError("pytest wrote no results")
        if keep_junit is not None:
            keep_junit.write_bytes(junit.read_bytes())
        return read_junit(junit.read_bytes(), files=_test_files(checkout, files))


def _test_files(checkout: Path, files: Sequence[str]) -> list[str]:
    found: list[str] = []
    for name in files:
        path = checkout / name
        if path.is_dir():
            found += sorted(str(p.relative_to(checkout)) for p in path.rglob("test_*.py"))
        else:
            found.append(name)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/exchangelib-suite",
        description="Run exchangelib's live test suite from a checkout against a running lab "
        "and print passed/failed/skipped per file.",
    )
    parser.add_argument("checkout", type=Path, help="a working tree of exchangelib's repository")
    parser.add_argument(
        "files", nargs="*", help=f"test files or folders of the checkout (default: {DEFAULT_FILES})"
    )
    parser.add_argument(
        "--lab-dir",
        type=Path,
        default=Path(os.environ.get("SITEMAIL_LAB", Path.home() / ".sitemail" / "lab")),
        help="the running lab's folder (default: $SITEMAIL_LAB or ~/.sitemail/lab)",
    )
    parser.add_argument("--user", default="adam", help="the lab user (alias or address)")
    parser.add_argument(
        "--url",
        default="https://mail.contoso.com/EWS/Exchange.asmx",
        help="the EWS URL the suite uses (default: EX-NY1's, proxied to FL for adam)",
    )
    parser.add_argument(
        "--no-basic",
        action="store_true",
        help="leave the EWS virtual directory's authentication as it is",
    )
    parser.add_argument(
        "--pytest-arg", action="append", default=[], help="one more argument for pytest"
    )
    parser.add_argument(
        "--junit", type=Path, help="keep pytest's JUnit XML (each failure's reason) in this file"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files = list(args.files) or list(DEFAULT_FILES)
    try:
        checkout = args.checkout.resolve()
        check_checkout(checkout, files)
        lab_dir = args.lab_dir.resolve()
        account = lab_account(read_lab(lab_dir), lab_dir, args.user, args.url)
        if not args.no_basic and account.vdir is not None:
            allow_basic(lab_dir, account.vdir)
        counts = run_suite(checkout, account, files, args.pytest_arg, args.junit)
    except (SuiteError, OSError, ValueError, subprocess.SubprocessError) as exc:
        print(f"exchangelib-suite: {exc}", file=sys.stderr)
        return 2
    print(render_summary(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
