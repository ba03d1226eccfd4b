"""One organization, two supervisors: the seed's sites run from two lab folders, one slapd.

Folder NY runs the directory (a slapd of its own), NY's servers, ASA-NY and the
Internet host (`lab up --directory ldap --only-site NY,Internet`); folder FL runs
EX-FL1 and ASA-FL against the same directory (`lab up --directory ldap://...
--only-site FL`), with the organization's PKI copied over, as a second machine
would.  Mail from alice (NY) reaches adam (FL) once the seed's ASA lines are typed
on both firewalls, each through its own folder, and adam signing in at NY's OWA
is proxied to FL.  Each folder stops only what it started.

Then as on two machines: the second story's sites, each server at an address of its own
(the topology's ``address:``), no firewalls, one folder per site on an LDAP server the
user runs; mail from the US reaches the EU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import (
    EXAMPLES,
    RunningLab,
    in_mailbox,
    lab_processes,
    owa_page,
    sitemail,
    stays,
    submit_as,
    wait_for,
)
from tests.slapd import Slapd

from sitemail.diagnose.commands import ASA_NO_INSPECT_ESMTP
from sitemail.org.lab_state import command_line

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("exclusive_lab")]

SEED = str(EXAMPLES / "seed.yaml")
NY1 = "127.1.0.11"
NO_INSPECT_ESMTP = "\n".join(ASA_NO_INSPECT_ESMTP)


def _status(lab_dir: Path) -> dict[str, Any]:
    out = sitemail("lab", "status", "--json", "--dir", str(lab_dir), check=False).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def _names(status: dict[str, Any]) -> set[str]:
    return {p["name"] for p in [*status["servers"], *status["firewalls"]]}


def test_one_organization_runs_from_two_lab_folders_sharing_one_slapd(tmp_path: Path) -> None:
    ny, fl = tmp_path / "ny", tmp_path / "fl"
    sitemail(
        "lab", "up", SEED, "--directory", "ldap", "--only-site", "NY,Internet", "--dir", str(ny)
    )
    try:
        ny_status = _status(ny)
        assert ny_status["port_offset"] == 0  # the tests run as root: LDAP on 389
        assert _names(ny_status) == {"EX-NY1", "EX2003", "INTERNET", "ASA-NY"}
        assert ny_status["directory_server"]["state"] == "running"
        # What the second machine's administrator is given: the directory's URL, the
        # admin's password in a file of their own, and the organization's PKI.
        fl.mkdir()
        secret = fl / "ldap-password"
        shutil.copyfile(ny / "ldap" / "password", secret)
        secret.chmod(0o600)
        url = ny_status["directory"].replace(str(ny / "ldap" / "password"), str(secret))
        up = ["lab", "up", SEED, "--directory", url, "--only-site", "FL", "--dir", str(fl)]
        refused = sitemail(*up, check=False)
        assert refused.returncode == 2
        assert f"copy that folder's pki/ to {fl / 'pki'}" in refused.stderr
        shutil.copytree(ny / "pki", fl / "pki")
        sitemail(*up)
        try:
            fl_status = _status(fl)
            assert _names(fl_status) == {"EX-FL1", "ASA-FL"}
            assert fl_status["directory_server"] is None  # NY's folder runs the slapd
            for status in (ny_status, fl_status):
                assert all(p["state"] == "running" for p in [*status["servers"]])
            # Each server runs from its own folder, against the one directory.
            for folder in (ny, fl):
                for pid in lab_processes(folder):
                    cmd = command_line(pid)
                    assert cmd[cmd.index("--lab-dir") + 1] == str(folder)
                    assert cmd[cmd.index("--directory") + 1].startswith("ldap://127.0.0.1:389/")
            assert "EX-FL1" in {s["name"] for s in fl_status["servers"]}
            assert not (ny / "servers" / "EX-FL1").exists()

            # Story 1 across the two supervisors: each ASA through its own folder.
            assert (
                "[OK]" in sitemail("asa", "ASA-NY", "-c", NO_INSPECT_ESMTP, "--dir", str(ny)).stdout
            )
            assert (
                "[OK]" in sitemail("asa", "ASA-FL", "-c", NO_INSPECT_ESMTP, "--dir", str(fl)).stdout
            )
            submit_as("alice", ["adam@contoso.com"], "ny-to-fl@two-folders", subject="two folders")
            in_fl = RunningLab(fl)
            wait_for(
                lambda: in_mailbox(in_fl, "EX-FL1", "FL-DB1", "ny-to-fl@two-folders"),
                "alice's message in adam's mailbox on EX-FL1 (folder FL)",
                60,
            )
            stays(
                lambda: in_mailbox(in_fl, "EX-FL1", "FL-DB1", "ny-to-fl@two-folders") == 1,
                "delivered once",
            )
            # adam signs in at NY's Client Access server and reads his mail, proxied to FL's.
            page = owa_page(NY1, "adam")
            assert "Inbox" in page and "two folders" in page
            decisions = (ny / "servers" / "EX-NY1" / "Logging" / "ClientAccess").rglob("*")
            logged = "".join(p.read_text() for p in decisions if p.is_file())
            assert "EX-FL1" in logged and "adam" in logged.lower()

            # FL's folder stops what it started, and nothing of NY's.
            fl_pids = lab_processes(fl)
            stopped = sitemail("lab", "down", "--dir", str(fl)).stdout
            assert "Stopped 2 processes" in stopped
            assert lab_processes(fl) == [] and all(not command_line(p) for p in fl_pids)
            ny_after = _status(ny)
            assert all(p["state"] == "running" for p in ny_after["servers"])
            assert ny_after["directory_server"]["state"] == "running"
        finally:
            sitemail("lab", "down", "--dir", str(fl), check=False)
    finally:
        sitemail("lab", "down", "--dir", str(ny), check=False)
    assert lab_processes(ny) == []


def test_sites_with_addresses_of_their_own_share_a_users_ldap_server(tmp_path: Path) -> None:
    """The second story's organization without firewalls, each server at an address of its own
    (as on two machines), one folder per site, on an LDAP server the user runs."""
    (tmp_path / "slapd").mkdir()
    slapd = Slapd(tmp_path / "slapd", "DC=exchangelaboratory,DC=com")
    topology = tmp_path / "us-eu.yaml"
    text = (EXAMPLES / "us-eu.yaml").read_text()
    text = text.replace("    site: US\n", "    site: US\n    address: 127.40.0.5\n")
    text = text.replace("    site: EU\n", "    site: EU\n    address: 127.41.0.6\n")
    topology.write_text(text)
    us, eu = tmp_path / "us", tmp_path / "eu"
    slapd.start()
    try:
        up = ["lab", "up", str(topology), "--directory", slapd.url()]
        sitemail(*up, "--only-site", "US", "--dir", str(us))
        try:
            shutil.copytree(us / "pki", eu / "pki")
            sitemail(*up, "--only-site", "EU", "--dir", str(eu))
            try:
                (cashub1,) = _status(us)["servers"]
                (cashub2,) = _status(eu)["servers"]
                assert (cashub1["name"], cashub1["address"]) == ("CASHUB1", "127.40.0.5")
                assert (cashub2["name"], cashub2["address"]) == ("CASHUB2", "127.41.0.6")
                assert cashub2["state"] == "running"
                submit_as(
                    "nina",
                    ["adam@exchangelaboratory.com"],
                    "us-to-eu@own-addresses",
                    server="127.40.0.5",
                    domain="exchangelaboratory.com",
                )
                in_eu = RunningLab(eu)
                wait_for(
                    lambda: in_mailbox(in_eu, "CASHUB2", "EU-DB1", "us-to-eu@own-addresses"),
                    "nina's message in adam's mailbox on CASHUB2 (folder EU)",
                    60,
                )
            finally:
                sitemail("lab", "down", "--dir", str(eu), check=False)
        finally:
            sitemail("lab", "down", "--dir", str(us), check=False)
    finally:
        slapd.stop()
