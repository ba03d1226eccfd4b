"""scripts/exchangelib-suite's own logic, without a checkout or a lab: the settings it writes,
the names it maps, and the summary it makes of pytest's results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from bench.exchangelib_suite import (
    FileCounts,
    SuiteError,
    lab_account,
    mirror_checkout,
    read_junit,
    render_summary,
    settings_for,
)

STATUS: dict[str, Any] = {
    "running": True,
    "port_offset": 10000,
    "users": [
        {"name": "adam", "address": "adam@contoso.com", "password": "Pa55word!"},
        {"name": "alice", "address": "alice@contoso.com", "password": "other"},
    ],
    "servers": [
        {"name": "INTERNET", "address": "127.99.0.11", "fqdn": "mail.fabrikam.com"},
        {
            "name": "EX-NY1",
            "address": "127.1.0.11",
            "fqdn": "ex-ny1.contoso.com",
            "endpoints": {
                "https": "127.1.0.11:10443",
                "urls": {
                    "EWS": {
                        "internal": "https://ex-ny1.contoso.com/EWS/Exchange.asmx",
                        "external": "https://mail.contoso.com/EWS/Exchange.asmx",
                    },
                    "Autodiscover": {
                        "internal": "https://ex-ny1.contoso.com/Autodiscover/Autodiscover.xml",
                        "external": "https://autodiscover.contoso.com/Autodiscover/Autodiscover.xml",
                    },
                    "OAB": {"internal": "https://ex-ny1.contoso.com/OAB", "external": None},
                },
            },
        },
        {
            "name": "EX-FL1",
            "address": "127.2.0.11",
            "fqdn": "ex-fl1.contoso.com",
            "endpoints": {
                "https": "127.2.0.11:10443",
                "urls": {"EWS": {"internal": "https://ex-fl1.contoso.com/EWS/Exchange.asmx"}},
            },
        },
    ],
}

URL = "https://mail.contoso.com/EWS/Exchange.asmx"


def test_the_account_names_and_settings_come_from_the_lab(tmp_path: Path) -> None:
    account = lab_account(STATUS, tmp_path, "adam", URL)
    assert account.server == "mail.contoso.com:10443"  # the lab's port offset
    assert account.vdir == "EX-NY1\\EWS (Default Web Site)"
    assert account.names == {
        "ex-ny1.contoso.com": "127.1.0.11",
        "mail.contoso.com": "127.1.0.11",
        "autodiscover.contoso.com": "127.1.0.11",
        "ex-fl1.contoso.com": "127.2.0.11",
    }
    assert account.ca_file == tmp_path / "pki" / "ca.pem"
    settings = settings_for(account)
    assert settings == {
        "server": "mail.contoso.com:10443",
        "autodiscover_server": "autodiscover.contoso.com",
        "username": "contoso\\adam",
        "password": "Pa55word!",
        "account": "adam@contoso.com",
        "alias": "adam@contoso.com",
        "verify_ssl": True,
    }
    # By address too; the FL server's own name when asked for.
    fl = lab_account(STATUS, tmp_path, "ADAM@contoso.com", "https://ex-fl1.contoso.com/EWS/x")
    assert fl.server == "ex-fl1.contoso.com:10443" and fl.vdir == "EX-FL1\\EWS (Default Web Site)"
    with pytest.raises(SuiteError, match="no user 'zed'"):
        lab_account(STATUS, tmp_path, "zed", URL)
    with pytest.raises(SuiteError, match=r"answers for www\.example\.com"):
        lab_account(STATUS, tmp_path, "adam", "https://www.example.com/EWS/Exchange.asmx")


def test_the_checkout_is_mirrored_and_never_written(tmp_path: Path) -> None:
    checkout = tmp_path / "exchangelib"
    (checkout / "tests").mkdir(parents=True)
    (checkout / "tests" / "common.py").write_text("# the suite\n")
    (checkout / "settings.yml").write_text("server: elsewhere\n")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    mirror_checkout(checkout, mirror, {"server": "mail.contoso.com", "password": "x"})
    assert (mirror / "tests").is_symlink() and (mirror / "tests" / "common.py").is_file()
    assert yaml.safe_load((mirror / "settings.yml").read_text()) == {
        "server": "mail.contoso.com",
        "password": "x",
    }
    assert (mirror / "settings.yml").stat().st_mode & 0o077 == 0
    assert (checkout / "settings.yml").read_text() == "server: elsewhere\n"


JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="7">
<testcase classname="tests.test_items.test_messages.MessagesTest" name="test_send" time="1"/>
<testcase classname="tests.test_items.test_messages.MessagesTest" name="test_reply" time="1">
  <failure message="ErrorInvalidOperation">...</failure></testcase>
<testcase classname="tests.test_items.test_messages.MessagesTest" name="test_reply" time="1">
  <error message="teardown">...</error></testcase>
<testcase classname="tests.test_folder.FolderTest" name="test_public" time="0">
  <skipped message="no public folders"/></testcase>
<testcase classname="tests.test_folder.FolderTest" name="test_create" time="1"/>
<testcase classname="tests.test_folder.FolderTest" name="test_create" time="1">
  <error message="teardown">...</error></testcase>
<testcase classname="" name="tests.test_autodiscover" time="0">
  <error message="collection failure">ImportError</error></testcase>
</testsuite></testsuites>
"""


def test_pytest_results_are_counted_per_file() -> None:
    files = [
        "tests/test_items/test_messages.py",
        "tests/test_folder.py",
        "tests/test_autodiscover.py",
    ]
    counts = read_junit(JUNIT, files)
    assert counts == {
        "tests/test_autodiscover.py": FileCounts(failed=1),
        "tests/test_folder.py": FileCounts(failed=1, skipped=1),
        "tests/test_items/test_messages.py": FileCounts(passed=1, failed=1),
    }
    summary = render_summary(counts).splitlines()
    assert summary[0].split() == ["file", "passed", "failed", "skipped"]
    assert summary[-2].split() == ["total", "1", "3", "1"]
    assert summary[-1] == "25.0% of the 4 tests that ran (not skipped) passed"
    assert render_summary({}).splitlines()[-1].startswith("0.0% of the 0 tests")
