"""``shell_main``: what ``sitemail shell`` does with its arguments and the lab folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sitemail.org.directory import open_directory
from sitemail.org.topology import Topology
from sitemail.shell.cmdlets.entry import shell_main

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed.yaml"


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    directory = open_directory(str(tmp_path / "directory.db"))
    with directory.transaction():
        for obj in Topology.load(SEED).objects(hash_passwords=False):
            directory.put(obj)
    directory.close()
    return tmp_path


def run(argv: list[str], lab_dir: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = shell_main(argv, lab_dir, stdin=io.StringIO(""), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_without_a_lab_it_says_how_to_start_one(tmp_path: Path) -> None:
    code, _, err = run(["-c", "Get-AdSite"], tmp_path)
    assert code == 1
    assert f"no lab in {tmp_path.resolve()}" in err and "sitemail lab up" in err
    assert not (tmp_path / "directory.db").exists()  # never creates an empty directory


def test_runs_a_script_and_reports_failure_in_the_exit_status(lab_dir: Path) -> None:
    code, out, err = run(["-c", "Get-AdSite | Select-Object -ExpandProperty Name"], lab_dir)
    assert (code, out.split(), err) == (0, ["FL", "NY"], "")
    code, _, err = run(["-c", "Get-Mailbox nobody"], lab_dir)
    assert code == 1
    assert "Get-Mailbox : The operation couldn't be performed because object 'nobody'" in err


def test_server_option_and_json(lab_dir: Path) -> None:
    code, out, _ = run(["--server", "EX-FL1", "--json", "-c", "Get-PopSettings"], lab_dir)
    assert code == 0
    assert json.loads(out)["Server"] == "EX-FL1"
    code, _, err = run(["--server", "EX-XX9", "-c", "Get-AdSite"], lab_dir)
    assert code == 2
    assert "no such server; expected one of" in err


def test_dir_option_overrides_the_default_folder(lab_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run(["--dir", str(lab_dir), "-c", "Get-AdSiteLink"], tmp_path / "elsewhere")
    assert code == 0 and "NY-FL" in out
