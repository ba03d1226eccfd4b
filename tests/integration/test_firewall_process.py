"""The firewall process (`sitemail serve ASA-...`): relays with inspection, config on flash.

Most tests start one firewall alone, from a hand-made lab folder on
127.91.x.y with a port offset, in front of a small SMTP-ish server of the
test's own; one test crosses both firewalls of the seed lab, from NY to
the lab's own EX-FL1, as story 1 step 4 does with telnet.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sitemail.firewall.console_cli import main as asa_main
from sitemail.org.directory import open_directory
from sitemail.org.model import Firewall, LabSettings
from sitemail.server.console import ConsoleClient, ConsoleError

NAME = "ASA-T"
OFFSET = 30000
CLIENT = "127.91.3.5"
LISTEN = "127.91.1.1"  # the firewall's relay address
SERVER = "127.91.2.1"  # where it leads
SMTP, HTTPS = 25 + OFFSET, 443 + OFFSET

BANNER = (
    b"220 EX-T1.contoso.com Microsoft ESMTP MAIL Service ready at Tue, 20 Oct 2020 10:02:03\r\n"
)
EHLO_REPLY = (
    b"250-EX-T1.contoso.com Hello\r\n250-SIZE 10485760\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
)
SEED_LINES = (
    "config t\npolicy-map global_policy\nclass inspection_default\nno inspect esmtp\n"
    "exit\nexit\nexit\nwr me"
)


# --- a small SMTP-ish server --------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    server: FakeSmtp

    def handle(self) -> None:
        self.server.peers.append(self.client_address[0])
        self.wfile.write(BANNER)
        for line in self.rfile:
            self.server.received.append(line)
            verb = line.split()[0].upper() if line.split() else b""
            if verb == b"EHLO":
                self.wfile.write(EHLO_REPLY)
            elif verb == b"QUIT":
                self.wfile.write(b"221 2.0.0 Bye\r\n")
                return
            else:
                self.wfile.write(b'500 5.5.1 Command unrecognized: "' + line.strip() + b'"\r\n')


class FakeSmtp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.peers: list[str] = []
        self.received: list[bytes] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def read_reply(f: Any) -> list[bytes]:
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed while waiting for a reply"
        lines.append(line)
        if line[3:4] != b"-":
            return lines


def smtp_session(address: str, port: int, source: str) -> tuple[bytes, list[bytes]]:
    """Connect from ``source``, read the banner, say EHLO; (banner, EHLO reply lines)."""
    with socket.create_connection((address, port), timeout=5, source_address=(source, 0)) as s:
        f = s.makefile("rwb")
        banner = f.readline()
        f.write(b"EHLO client.example\r\n")
        f.flush()
        lines = read_reply(f)
        f.write(b"QUIT\r\n")
        f.flush()
        return banner, lines


def is_masked(banner: bytes) -> bool:
    """The ASA's mask-banner: the code, then only '*', '2', '0' and blanks, mostly '*'."""
    text = banner[4:].rstrip(b"\r\n")
    return banner[:4] == b"220 " and set(text) <= set(b"*20 ") and text.count(b"*") >= 4


# --- one firewall alone -------------------------------------------------------------------


class FirewallProcess:
    def __init__(self, lab: Path) -> None:
        self.lab = lab
        self.home = lab / "firewalls" / NAME
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        directory = str(self.lab / "directory.db")
        command = [sys.executable, "-m", "sitemail", "serve", NAME, "--directory", directory]
        with open(self.home / "process.log", "ab") as log:
            self.proc = subprocess.Popen(
                [*command, "--lab-dir", str(self.lab)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.home / "process.log").read_text()
            try:
                if self.console("health").get("status") == "ok":
                    return
            except (ConsoleError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError("the firewall did not come up")

    def power_cycle(self) -> None:
        """What `sitemail lab restart` does: kill -9, start again."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def console(self, cmd: str, **args: Any) -> dict[str, Any]:
        with ConsoleClient(self.home / "console.sock", timeout=5) as client:
            return client.call(cmd, **args)

    def asa(self, *blocks: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        code = asa_main(NAME, list(blocks), self.lab)
        return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[FakeSmtp]:
    servers = [FakeSmtp((SERVER, SMTP)), FakeSmtp((SERVER, HTTPS))]
    yield servers[0]
    for s in servers:
        s.stop()


@pytest.fixture
def firewall(tmp_path: Path, smtp_server: FakeSmtp) -> Iterator[FirewallProcess]:
    lab = tmp_path / "lab"
    home = lab / "firewalls" / NAME
    home.mkdir(parents=True)
    directory = open_directory(str(lab / "directory.db"))
    with directory.transaction():
        directory.put(Firewall(name=NAME, site="T", address="127.91.0.1"))
        directory.put(LabSettings(port_offset=OFFSET, lab_dir=str(lab)))
    directory.close()
    listeners = [
        {
            "listen": LISTEN,
            "forward": SERVER,
            "from_site": "X",
            "to_host": "EX-T1",
            "direction": "inbound",
        }
    ]
    (home / "listeners.json").write_text(json.dumps(listeners))
    fw = FirewallProcess(lab)
    fw.start()
    yield fw
    fw.stop()


def test_smtp_through_the_process_is_masked_other_ports_are_not(
    firewall: FirewallProcess, smtp_server: FakeSmtp
) -> None:
    banner, lines = smtp_session(LISTEN, SMTP, CLIENT)
    assert is_masked(banner) and len(banner) == len(BANNER)
    assert lines[-1] == b"250 XXXXXXXA\r\n"
    assert smtp_server.peers[-1] == CLIENT  # the source address survives the relay
    banner, lines = smtp_session(LISTEN, HTTPS, CLIENT)
    assert banner == BANNER
    assert lines[-1] == b"250 STARTTLS\r\n"
    health = firewall.console("health")
    assert health["hostname"] == NAME
    assert health["esmtp_inspection"] == {
        "inside": "_default_esmtp_map",
        "outside": "_default_esmtp_map",
    }
    assert firewall.console("counters")["inspect"]["esmtp"]["packet"] >= 3


def test_the_seed_lines_survive_a_power_cycle_and_unsaved_changes_do_not(
    firewall: FirewallProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    startup = firewall.home / "startup-config"
    # First start: the factory configuration was saved, with inspection on.
    assert "hostname ASA-T\n" in startup.read_text()
    assert "  inspect esmtp \n" in startup.read_text()

    code, out = firewall.asa(SEED_LINES, capsys=capsys)
    assert code == 0, out
    assert out.startswith("ASA-T# config t\nASA-T(config)# policy-map global_policy\n")
    assert "[OK]\nASA-T# \n" in out
    assert "inspect esmtp" not in startup.read_text()
    banner, lines = smtp_session(LISTEN, SMTP, CLIENT)
    assert banner == BANNER and lines[-1] == b"250 STARTTLS\r\n"

    firewall.power_cycle()
    assert firewall.console("health")["esmtp_inspection"]["outside"] is None
    assert smtp_session(LISTEN, SMTP, CLIENT)[0] == BANNER

    # Turned back on but not saved: on now, gone after the next power cycle.
    turn_on = "conf t\npolicy-map global_policy\nclass inspection_default\ninspect esmtp\nend"
    assert firewall.asa(turn_on, capsys=capsys)[0] == 0
    assert is_masked(smtp_session(LISTEN, SMTP, CLIENT)[0])
    firewall.power_cycle()
    assert smtp_session(LISTEN, SMTP, CLIENT)[0] == BANNER
    code, out = firewall.asa("show running-config policy-map", capsys=capsys)
    assert code == 0 and "policy-map global_policy\n" in out and "inspect esmtp" not in out


def test_a_connection_open_before_the_change_keeps_its_inspection(
    firewall: FirewallProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection((LISTEN, SMTP), timeout=5, source_address=(CLIENT, 0)) as s:
        f = s.makefile("rwb")
        assert is_masked(f.readline())
        assert firewall.asa(SEED_LINES, capsys=capsys)[0] == 0
        assert smtp_session(LISTEN, SMTP, CLIENT)[0] == BANNER
        f.write(b"EHLO client.example\r\n")
        f.flush()
        assert read_reply(f)[-1] == b"250 XXXXXXXA\r\n"


def test_an_over_long_command_is_dropped_and_logged(firewall: FirewallProcess) -> None:
    with socket.create_connection((LISTEN, SMTP), timeout=5, source_address=(CLIENT, 0)) as s:
        f = s.makefile("rwb")
        f.readline()
        f.write(b"NOOP " + b"a" * 600 + b"\r\n")
        f.flush()
        assert f.read() == b""  # closed with no SMTP reply
    text = (firewall.home / "syslog.log").read_text()
    stamp = r"[A-Z][a-z]{2} \d\d \d{4} \d\d:\d\d:\d\d"
    assert re.search(
        stamp + r": %ASA-4-108004: ESMTP Classification: Dropped connection for ESMTP "
        rf"Request from outside:{re.escape(CLIENT)}/\d+ to inside:{re.escape(SERVER)}/25; "
        r"matched Class 1: cmd line length gt 512\n",
        text,
    ), text
    assert re.search(stamp + r": %ASA-4-507003: tcp flow from outside:", text), text
    assert firewall.console("counters")["inspect"]["esmtp"]["drop"] == 1


def test_several_console_sessions_share_one_running_config(firewall: FirewallProcess) -> None:
    with ConsoleClient(firewall.home / "console.sock") as client:
        a = client.call("cli", op="open")
        b = client.call("cli", op="open")
        assert a["session"] != b["session"] and a["prompt"] == "ASA-T# "
        for line in ("conf t", "policy-map global_policy", "class inspection_default"):
            client.call("cli", op="feed", session=a["session"], line=line)
        reply = client.call("cli", op="feed", session=b["session"], line="conf t")
        assert reply["prompt"] == "ASA-T(config)# "
        client.call("cli", op="feed", session=a["session"], line="no inspect esmtp")
        shown = client.call("cli", op="feed", session=b["session"], line="show run policy-map")
        assert "inspect ftp" in shown["output"] and "inspect esmtp" not in shown["output"]
        words = client.call("cli", op="complete", session=a["session"], text="ins")
        assert words == {"words": ["inspect"]}
        # Disable, then enable with the factory's empty password.
        client.call("cli", op="feed", session=b["session"], line="end")
        client.call("cli", op="feed", session=b["session"], line="disable")
        reply = client.call("cli", op="feed", session=b["session"], line="enable")
        assert reply["prompt"] == "Password: " and reply["secret"]
        reply = client.call("cli", op="feed", session=b["session"], line="")
        assert reply["prompt"] == "ASA-T# "


# --- the seed lab: NY to EX-FL1 across both firewalls ------------------------------------


def _connections(folder: str) -> int:
    with ConsoleClient(Path(folder) / "console.sock") as client:
        return int(client.call("health")["connections"])


@pytest.mark.lab
def test_from_ny_port_25_reaches_ex_fl1_through_both_firewalls_masked(seed_lab: Any) -> None:
    status = seed_lab.status()
    path = status["paths"]["NY"]["EX-FL1"]
    offset = status["port_offset"]
    before = {f["name"]: _connections(f["folder"]) for f in status["firewalls"]}
    banner, lines = smtp_session(path["address"], 25 + offset, path["source"])
    # EX-FL1's own banner and EHLO reply, masked on the way.
    assert is_masked(banner), banner
    assert b"STARTTLS" not in b"".join(lines)
    assert any(line[4:].rstrip() == b"XXXXXXXA" for line in lines), lines
    # EX-FL1 names the client it sees: NY's own address, through both firewalls.
    assert lines[0] == f"250-ex-fl1.contoso.com Hello [{path['source']}]\r\n".encode()
    after = {f["name"]: _connections(f["folder"]) for f in status["firewalls"]}
    assert after["ASA-NY"] > before["ASA-NY"] and after["ASA-FL"] > before["ASA-FL"]
