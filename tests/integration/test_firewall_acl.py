"""Access lists on a running firewall process, typed with `sitemail asa` and met by smtplib.

One firewall alone (`sitemail serve ASA-T` from a hand-made lab folder on
127.94.x.y, port offset 31000) in front of a small SMTP server of the test's
own.  An administrator types the access list as on the box; a mail client
from the denied address is refused before any greeting and the server never
hears of it, another one sends its message; the box shows the hit counts,
logs 106023, traces the flow with packet-tracer, keeps the list over a power
cycle once saved, and lets mail through again once the line is gone.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.test_firewall_process import NAME, FirewallProcess

from sitemail.org.directory import open_directory
from sitemail.org.model import Firewall, LabSettings

OFFSET = 31000
DENIED = "127.94.3.5"  # a client the access list refuses
ALLOWED = "127.94.3.6"
LISTEN = "127.94.1.1"  # the firewall's relay address
SERVER = "127.94.2.1"  # the mail server behind it
SMTP = 25 + OFFSET

DENY = f"access-list outside_access_in extended deny tcp host {DENIED} host {SERVER} eq smtp"
PERMIT = "access-list outside_access_in extended permit ip any any"
BIND = "access-group outside_access_in in interface outside"


class _Session(socketserver.StreamRequestHandler):
    server: MailServer

    def handle(self) -> None:
        self.server.peers.append(self.client_address[0])
        self.wfile.write(b"220 ex-t1.contoso.com Microsoft ESMTP MAIL Service ready\r\n")
        data = False
        for line in self.rfile:
            if data:
                if line == b".\r\n":
                    data = False
                    self.server.messages += 1
                    self.wfile.write(b"250 2.6.0 Queued mail for delivery\r\n")
                continue
            verb = line.split()[0].upper() if line.split() else b""
            if verb == b"EHLO":
                self.wfile.write(b"250-ex-t1.contoso.com Hello\r\n250 SIZE 10485760\r\n")
            elif verb in (b"MAIL", b"RCPT", b"NOOP", b"RSET"):
                self.wfile.write(b"250 2.1.0 OK\r\n")
            elif verb == b"DATA":
                data = True
                self.wfile.write(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 2.0.0 Closing connection\r\n")
                return
            else:
                self.wfile.write(b"500 5.3.3 Unrecognized command\r\n")
            self.wfile.flush()


class MailServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__((SERVER, SMTP), _Session)
        self.peers: list[str] = []
        self.messages = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def firewall(tmp_path: Path, mail_server: MailServer) -> Iterator[FirewallProcess]:
    lab = tmp_path / "lab"
    home = lab / "firewalls" / NAME
    home.mkdir(parents=True)
    directory = open_directory(str(lab / "directory.db"))
    with directory.transaction():
        directory.put(Firewall(name=NAME, site="T", address="127.94.0.1"))
        directory.put(LabSettings(port_offset=OFFSET, lab_dir=str(lab)))
    directory.close()
    listeners = [
        {"listen": LISTEN, "forward": SERVER, "from_site": "X", "to_host": "EX-T1"}
        | {"direction": "inbound"}
    ]
    (home / "listeners.json").write_text(json.dumps(listeners))
    fw = FirewallProcess(lab)
    fw.start()
    yield fw
    fw.stop()


def asa(fw: FirewallProcess, *lines: str) -> str:
    """`sitemail asa ASA-T -c LINES --dir LAB`, as typed in a shell; its transcript."""
    command = ["asa", NAME, "-c", "\n".join(lines), "--dir", str(fw.lab)]
    done = subprocess.run(
        [sys.executable, "-m", "sitemail", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def send(source: str) -> None:
    with smtplib.SMTP(LISTEN, SMTP, source_address=(source, 0), timeout=10) as client:
        client.sendmail("alice@contoso.com", ["adam@contoso.com"], "Subject: hi\r\n\r\nHello\r\n")


def refused(source: str) -> bool:
    try:
        send(source)
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        return True
    return False


def test_an_access_list_typed_on_the_console_refuses_smtp_and_says_so(
    firewall: FirewallProcess, mail_server: MailServer
) -> None:
    out = asa(firewall, "conf t", DENY, PERMIT, BIND, "end", "wr me")
    assert f"ASA-T(config)# {DENY}\nASA-T(config)# {PERMIT}\nASA-T(config)# {BIND}\n" in out
    assert out.endswith("[OK]\nASA-T# \n")

    assert refused(DENIED)
    send(ALLOWED)
    assert mail_server.peers == [ALLOWED] and mail_server.messages == 1

    shown = asa(firewall, "show access-list outside_access_in")
    assert re.search(
        rf"access-list outside_access_in line 1 extended deny tcp host {DENIED} host {SERVER} "
        r"eq smtp \(hitcnt=1\) 0x[0-9a-f]{8}\n"
        r"access-list outside_access_in line 2 extended permit ip any any \(hitcnt=1\) "
        r"0x[0-9a-f]{8}\n",
        shown,
    ), shown
    syslog = (firewall.home / "syslog.log").read_text()
    assert re.search(
        r"[A-Z][a-z]{2} \d\d \d{4} \d\d:\d\d:\d\d: %ASA-4-106023: Deny tcp src "
        rf"outside:{DENIED}/\d+ dst inside:{SERVER}/25 by access-group "
        r'"outside_access_in" \[0x[0-9a-f]{8}, 0x0\]\n',
        syslog,
    ), syslog

    traced = asa(firewall, f"packet-tracer input outside tcp {DENIED} 1025 {SERVER} smtp")
    assert (
        f"Result: DROP\nConfig:\n{BIND}\n{DENY}\nAdditional Information:\n" in traced
        and "output-interface: inside\n" in traced
        and traced.endswith(
            "Action: drop\nDrop-reason: (acl-drop) Flow is denied by configured rule\nASA-T# \n"
        )
    ), traced
    allowed = asa(firewall, f"packet-tracer input outside tcp {ALLOWED} 1025 {SERVER} 25")
    assert "Type: INSPECT\nSubtype: inspect-smtp\n" in allowed and "Action: allow\n" in allowed

    # Saved: a power cycle keeps the list (and starts the counters again).
    firewall.power_cycle()
    assert refused(DENIED)
    assert "(hitcnt=1)" in asa(firewall, "show access-list")

    # The line removed, as the troubleshooter's fix says: mail flows again.
    asa(firewall, "conf t", f"no {DENY}", "end")
    send(DENIED)
    assert mail_server.peers == [ALLOWED, DENIED] and mail_server.messages == 2
