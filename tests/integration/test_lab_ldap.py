"""A lab whose directory is OpenLDAP: a slapd of the lab's own, or one the user runs.

`lab up --directory ldap` (or `directory: {backend: ldap}` in the topology) starts
slapd as one of the lab's supervised processes; every server is started against
it; `lab down`, `lab up` and `lab status` treat it like the others.  With
`--directory ldap://...` the lab uses a server the user runs, and what is wrong
with that server is named at `lab up`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES, lab_processes, sitemail, wait_for
from tests.slapd import Slapd

from sitemail.org.lab_state import command_line

pytestmark = pytest.mark.lab


def _status(lab_dir: Path) -> tuple[int, dict[str, object]]:
    proc = sitemail("lab", "status", "--json", "--dir", str(lab_dir), check=False)
    return proc.returncode, json.loads(proc.stdout)


def _slapd_alive(pid: int) -> bool:
    cmd = command_line(pid)
    return bool(cmd) and Path(cmd[0]).name == "slapd"


def _every_command_line() -> str:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            lines.append(" ".join(command_line(int(entry.name))))
    return "\n".join(lines)


@pytest.mark.usefixtures("exclusive_lab")
def test_the_labs_own_slapd_is_supervised_like_every_other_process(tmp_path: Path) -> None:
    topology = tmp_path / "us-eu-ldap.yaml"
    topology.write_text((EXAMPLES / "us-eu.yaml").read_text() + "\ndirectory: {backend: ldap}\n")
    lab_dir = tmp_path / "lab"
    sitemail("lab", "up", str(topology), "--dir", str(lab_dir))
    try:
        code, status = _status(lab_dir)
        assert code == 0, status
        slapd = status["directory_server"]
        assert isinstance(slapd, dict) and slapd["state"] == "running"
        assert slapd["endpoints"] == {"ldap": f"127.0.0.1:{389 + int(status['port_offset'])}"}  # type: ignore[call-overload]
        url = str(status["directory"])
        assert status["directory_backend"] == "ldap"
        assert url.startswith("ldap://127.0.0.1:") and "/DC=exchangelaboratory,DC=com?" in url
        # Every server runs against it; the admin's password is in a file only root reads,
        # and on no command line (slapd.conf holds only its salted hash).
        password_file = lab_dir / "ldap" / "password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        password = password_file.read_text().strip()
        assert len(password) >= 24
        for pid in lab_processes(lab_dir):
            assert f"--directory {url}" in " ".join(command_line(pid))
        assert password not in _every_command_line()
        conf = (lab_dir / "ldap" / "slapd.conf").read_text()
        assert password not in conf and "rootpw {SSHA}" in conf and "sitemail.schema" in conf
        # The folder keeps its kind of directory.
        other = sitemail("lab", "up", "--directory", "embedded", "--dir", str(lab_dir), check=False)
        assert other.returncode == 2
        assert "keeps its organization in a slapd of its own, not the embedded" in other.stderr
        # The directory holds the organization, as an administrator reads it with ldapsearch.
        found = subprocess.run(
            [
                "ldapsearch",
                "-x",
                "-LLL",
                "-H",
                url.split("/DC=")[0],
                "-b",
                "DC=exchangelaboratory,DC=com",
                "(objectClass=msExchExchangeServer)",
                "cn",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "cn: CASHUB1" in found and "cn: CASHUB2" in found

        # slapd dies: status says so; `lab up` starts it again and nothing else.
        servers_before = {s["name"]: s["pid"] for s in status["servers"]}  # type: ignore[attr-defined]
        os.kill(int(slapd["pid"]), signal.SIGKILL)
        wait_for(lambda: _status(lab_dir)[0] == 1, "status exits 1 with slapd killed")
        _, status = _status(lab_dir)
        assert status["directory_server"]["state"] == "stopped"  # type: ignore[index]
        up = sitemail("lab", "up", str(topology), "--dir", str(lab_dir))
        assert "without slapd: started again" in up.stderr
        code, status = _status(lab_dir)
        assert code == 0 and status["directory_server"]["state"] == "running"  # type: ignore[index]
        assert {s["name"]: s["pid"] for s in status["servers"]} == servers_before  # type: ignore[attr-defined]
        # The servers read the directory again: a change made with the shell reaches them.
        sitemail(
            "shell",
            "-c",
            "Set-ReceiveConnector 'CASHUB2\\Default CASHUB2' -Banner '220 again'",
            "--dir",
            str(lab_dir),
        )
    finally:
        down = sitemail("lab", "down", "--dir", str(lab_dir)).stdout
    assert "slapd" in down.split(":")[-1]
    assert not _slapd_alive(int(status["directory_server"]["pid"]))  # type: ignore[index]
    code, status = _status(lab_dir)
    assert code == 1 and status["directory_server"]["state"] == "stopped"  # type: ignore[index]
    assert "directory_error" in status  # slapd is stopped: the rest cannot be read
    # Up again: the same organization, from the same slapd folder (not seeded again).
    sitemail("lab", "up", str(topology), "--dir", str(lab_dir))
    try:
        shown = sitemail(
            "shell",
            "-c",
            "Get-ReceiveConnector 'CASHUB2\\Default CASHUB2' | Format-List Banner",
            "--dir",
            str(lab_dir),
        ).stdout
        assert "220 again" in shown
    finally:
        sitemail("lab", "down", "--dir", str(lab_dir))


def test_what_is_wrong_with_a_users_ldap_server_is_named_at_lab_up(tmp_path: Path) -> None:
    """No server process starts: nothing here needs the lab slot."""
    seed = str(EXAMPLES / "seed.yaml")
    for name in ("bare", "good"):
        (tmp_path / name).mkdir()
    bare = Slapd(tmp_path / "bare", "DC=contoso,DC=com", schema=None)
    good = Slapd(tmp_path / "good", "DC=contoso,DC=com")
    bare.start()
    good.start()
    try:
        # No sitemail schema in the server: which file to load.
        proc = sitemail(
            "lab", "up", seed, "--directory", bare.url(), "--dir", str(tmp_path / "a"), check=False
        )
        assert proc.returncode == 2
        assert "has no sitemail schema" in proc.stderr and "sitemail.schema" in proc.stderr
        # A base DN the server does not hold: the naming contexts it does hold.
        wrong = good.url("DC=contoso,DC=org")
        proc = sitemail(
            "lab", "up", seed, "--directory", wrong, "--dir", str(tmp_path / "b"), check=False
        )
        assert proc.returncode == 2
        assert "'DC=contoso,DC=org' is not on this server" in proc.stderr
        assert "dc=contoso,dc=com" in proc.stderr.lower()
        # Another organization than the topology's (the directory was set up for it).
        other = good.url(org="Fabrikam")
        from sitemail.org.directory import open_directory

        open_directory(other).close()
        proc = sitemail(
            "lab", "up", seed, "--directory", good.url(), "--dir", str(tmp_path / "c"), check=False
        )
        assert proc.returncode == 2
        assert "holds Exchange organization 'Fabrikam', not 'Contoso'" in proc.stderr
        # An unknown site and an unknown directory kind are refused before anything starts.
        proc = sitemail(
            "lab", "up", seed, "--only-site", "ASIA", "--dir", str(tmp_path / "d"), check=False
        )
        assert (
            proc.returncode == 2 and "no such site; expected one of NY, FL, Internet" in proc.stderr
        )
        proc = sitemail(
            "lab", "up", seed, "--directory", "x500", "--dir", str(tmp_path / "e"), check=False
        )
        assert proc.returncode == 2 and "expected embedded, ldap" in proc.stderr
    finally:
        bare.stop()
        good.stop()
    for name in "abcde":
        assert lab_processes(tmp_path / name) == []
