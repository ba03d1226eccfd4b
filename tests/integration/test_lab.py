"""The lab as a user drives it: `sitemail lab up|status|restart|down` on the seed topology."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request

import pytest
from tests.conftest import RunningLab

from sitemail.org.pki import admin_cert_files, client_ssl_context, server_cert_files

pytestmark = pytest.mark.lab


def test_status_lists_every_server_and_firewall_running_with_its_address(
    seed_lab: RunningLab,
) -> None:
    status = seed_lab.status()
    servers = {s["name"]: s for s in status["servers"]}
    firewalls = {f["name"]: f for f in status["firewalls"]}
    assert set(servers) == {"EX-NY1", "EX2003", "EX-FL1", "INTERNET"}
    assert set(firewalls) == {"ASA-NY", "ASA-FL"}
    for entry in [*servers.values(), *firewalls.values()]:
        assert entry["state"] == "running", entry
        assert entry["pid"] > 0
        assert entry["address"].startswith("127.")
    assert servers["EX-FL1"]["site"] == "FL"
    assert servers["EX-FL1"]["roles"] == ["Mailbox", "ClientAccess", "HubTransport"]
    assert servers["EX-FL1"]["version"] == "2010"
    assert servers["EX2003"]["version"] == "2003"
    assert servers["INTERNET"]["site"] == "Internet"
    assert "SmtpSend" in servers["EX-NY1"]["logs"]
    # A person in NY reaches EX-FL1 through the firewalls, from a NY address.
    ny_to_fl = status["paths"]["NY"]["EX-FL1"]
    assert ny_to_fl["source"] == servers["EX-NY1"]["address"]
    assert ny_to_fl["address"] != servers["EX-FL1"]["address"]
    users = {u["name"]: u for u in status["users"]}
    assert users["adam"]["site"] == "FL" and users["adam"]["server"] == "EX-FL1"
    assert users["adam"]["address"] == "adam@contoso.com"
    assert users["adam"]["password"] == "Pa55word!"
    assert users["carol"]["site"] == "Internet"


def test_lab_folder_is_laid_out_like_the_servers_it_models(seed_lab: RunningLab) -> None:
    d = seed_lab.dir
    assert (d / "directory.db").is_file()
    assert (d / "pki" / "ca.pem").is_file()
    assert (d / "pki" / "EX-FL1.pem").is_file()
    assert (d / "servers" / "EX-NY1").is_dir()
    assert (d / "firewalls" / "ASA-NY" / "listeners.json").is_file()
    assert (d / "pki" / "ca.key").stat().st_mode & 0o077 == 0


def _get(url: str, ctx: ssl.SSLContext) -> int:
    with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
        return int(resp.status)


def test_admin_api_answers_only_the_admin_certificate(seed_lab: RunningLab) -> None:
    status = seed_lab.status()
    ny = next(s for s in status["servers"] if s["name"] == "EX-NY1")
    url = ny["endpoints"]["admin"] + "/services"
    pki = seed_lab.dir / "pki"
    admin = client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))
    admin.check_hostname = False
    assert _get(url, admin) == 200
    # Another server's certificate is of the organization, but it is not the admin's.
    as_server = client_ssl_context(pki / "ca.pem", files=server_cert_files(pki, "EX-FL1"))
    as_server.check_hostname = False
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(url, as_server)
    assert info.value.code == 403
    # Without any client certificate the TLS handshake itself is refused.
    anonymous = client_ssl_context(pki / "ca.pem")
    anonymous.check_hostname = False
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        _get(url, anonymous)


def test_cross_site_paths_reach_the_hubs_through_inspecting_firewalls(
    seed_lab: RunningLab,
) -> None:
    status = seed_lab.status()
    offset = status["port_offset"]
    hubs = {"EX-NY1", "EX-FL1"}
    seen = 0
    for _site, targets in status["paths"].items():
        for server, path in targets.items():
            if server not in hubs:
                continue
            with socket.create_connection(
                (path["address"], 25 + offset), timeout=5, source_address=(path["source"], 0)
            ) as sock:
                banner = sock.makefile("rb").readline()
            # The factory ASA masks the banner: "220 " then only '*', '2', '0' and spaces.
            assert banner.startswith(b"220 ") and banner.endswith(b"\r\n"), banner
            assert set(banner[4:-2]) <= set(b"*20 "), banner
            seen += 1
    assert seen == 4  # NY->EX-FL1, FL->EX-NY1, Internet->EX-NY1, Internet->EX-FL1


def test_up_on_a_running_lab_says_so_and_changes_nothing(seed_lab: RunningLab) -> None:
    before = {s["name"]: s["pid"] for s in seed_lab.status()["servers"]}
    proc = seed_lab.run("lab", "up")
    assert "already running" in proc.stderr + proc.stdout
    after = {s["name"]: s["pid"] for s in seed_lab.status()["servers"]}
    assert before == after


def test_restart_power_cycles_one_server(seed_lab: RunningLab) -> None:
    before = {s["name"]: s["pid"] for s in seed_lab.status()["servers"]}
    seed_lab.run("lab", "restart", "EX-FL1")
    after = {s["name"]: s for s in seed_lab.status()["servers"]}
    assert after["EX-FL1"]["state"] == "running"
    assert after["EX-FL1"]["pid"] != before["EX-FL1"]
    assert after["EX-NY1"]["pid"] == before["EX-NY1"]
    bad = seed_lab.run("lab", "restart", "EX-XX9", check=False)
    assert bad.returncode == 1 and "expected one of" in bad.stderr
