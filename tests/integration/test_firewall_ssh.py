"""Story 1's firewall faults found over SSH with OpenSSH: ACL hits, packet-tracer, a capture.

One firewall alone in front of a small SMTP server (the fixtures of
test_firewall_acl.py).  Management access is typed on the console as on an
ASA (``username``, ``enable password``, ``ssh A M IF``) and saved; then the
administrator signs in with the real ``ssh`` client (``sshpass`` types the
password), enables, captures the outside interface, and after the mail went
through reads the access list's hit counts, traces the refused flow with
packet-tracer and copies the capture out, in which tcpdump shows the banner
the inspection masked.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

from tests.integration import asa_ssh
from tests.integration.test_firewall_acl import (
    ALLOWED,
    BIND,
    DENIED,
    DENY,
    OFFSET,
    PERMIT,
    SERVER,
    FirewallProcess,
    MailServer,
    asa,
    firewall,
    mail_server,
    refused,
    send,
)
from tests.integration.test_firewall_capture import tcpdump

from sitemail.firewall.ssh_server import HOST_KEY_FILE

__all__ = ["firewall", "mail_server"]  # pytest fixtures, imported to be used here

MANAGEMENT = "127.94.0.1"  # the firewall's own address (its Firewall record)
ADMIN_PASSWORD = "Adm1n-Pa55"
ENABLE_PASSWORD = "En4ble-Pa55"
ACCESS = (
    f"username admin password {ADMIN_PASSWORD} privilege 15",
    f"enable password {ENABLE_PASSWORD}",
    "ssh 127.94.3.0 255.255.255.0 inside",
    "ssh timeout 10",
)


def ssh(
    source: str, *lines: str, password: str = ADMIN_PASSWORD
) -> subprocess.CompletedProcess[str]:
    """``ssh admin@ASA -p PORT`` from ``source`` with the lines on stdin, as a script would."""
    return asa_ssh.ssh(MANAGEMENT, 22 + OFFSET, *lines, source=source, password=password)


def test_an_administrator_finds_both_faults_over_ssh(
    firewall: FirewallProcess, mail_server: MailServer
) -> None:
    asa(firewall, "conf t", *ACCESS, DENY, PERMIT, BIND, "end", "wr me")
    saved = (firewall.home / "startup-config").read_text()
    assert re.search(r"\nusername admin password \$sha512\$5000\$\S+ pbkdf2 privilege 15\n", saved)
    assert re.search(r"\nenable password \$sha512\$5000\$\S+ pbkdf2\n", saved)
    assert "ssh 127.94.3.0 255.255.255.0 inside\nssh timeout 10\n" in saved
    assert ADMIN_PASSWORD not in saved and ENABLE_PASSWORD not in saved

    capture = f"capture CAPO interface outside match tcp host {ALLOWED} host {SERVER} eq smtp"
    first = ssh(ALLOWED, "enable", ENABLE_PASSWORD, capture, "exit")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Type help or '?' for a list of available commands.\nASA-T> ")
    assert "Password: ASA-T# ASA-T# \nLogoff\n" in first.stdout, first.stdout

    assert refused(DENIED)  # port 25 unreachable for one sender...
    send(ALLOWED)  # ...and masked for the other
    assert mail_server.messages == 1

    tracer = f"packet-tracer input outside tcp {DENIED} 1025 {SERVER} 25"
    second = ssh(
        ALLOWED,
        "enable",
        ENABLE_PASSWORD,
        "show access-list outside_access_in",
        tracer,
        "show capture CAPO",
        "show service-policy inspect esmtp",
        "copy /pcap capture:CAPO disk0:/capo.pcap",
        "exit",
    )
    out = second.stdout
    assert second.returncode == 0, second.stderr
    assert re.search(
        rf"access-list outside_access_in line 1 extended deny tcp host {DENIED} host {SERVER} "
        r"eq smtp \(hitcnt=1\) 0x[0-9a-f]{8}\n",
        out,
    ), out
    assert "Action: drop\nDrop-reason: (acl-drop) Flow is denied by configured rule\n" in out
    assert re.search(rf"\d+ packets captured\n\n   1: \S+ {re.escape(ALLOWED)}\.\d+ > ", out)
    assert "        mask-banner, count 1\n" in out
    assert "packets copied in" in out
    assert "220 ******" in tcpdump(str(firewall.home / "disk0" / "capo.pcap"))

    syslog = (firewall.home / "syslog.log").read_text()
    assert f"%ASA-6-605005: Login permitted from {ALLOWED}/" in syslog
    assert f'to inside:{MANAGEMENT}/ssh for user "admin"' in syslog


def test_ssh_refuses_other_addresses_and_wrong_passwords(
    firewall: FirewallProcess, mail_server: MailServer
) -> None:
    # A factory box has no ssh line: nobody gets in.
    assert ssh(ALLOWED, "exit").returncode == 255
    asa(firewall, "conf t", *ACCESS, "end")
    assert ssh("127.94.9.9", "exit").returncode == 255  # not in 127.94.3.0/24
    wrong = ssh(ALLOWED, "exit", password="not-it")
    assert wrong.returncode != 0 and "Logoff" not in wrong.stdout
    assert ssh(ALLOWED, "exit").returncode == 0
    # A wrong enable password: user mode stays.
    out = ssh(ALLOWED, "enable", "nope", "", "", "show conn", "exit").stdout
    assert "Invalid password\n" in out and "ERROR" in out
    syslog = (firewall.home / "syslog.log").read_text()
    assert "%ASA-3-710003: TCP access denied by ACL from 127.94.9.9/" in syslog
    assert "%ASA-6-605004: Login denied from " in syslog


def _mapped(pid: int, package: str) -> bool:
    """Whether process ``pid`` has a file of the Python package ``package`` mapped."""
    return f"/{package}/" in Path(f"/proc/{pid}/maps").read_text()


def test_the_ssh_port_is_open_from_boot_and_the_ssh_server_loads_on_its_first_client(
    firewall: FirewallProcess, mail_server: MailServer
) -> None:
    # A box nobody connects to over SSH does not carry asyncssh and its cryptography
    # (half a second of start-up and some 10 MB a firewall)...
    assert firewall.proc is not None
    pid = firewall.proc.pid
    assert not _mapped(pid, "cryptography")
    assert not (firewall.home / HOST_KEY_FILE).exists()
    # ...but its port is open: a factory box takes the connection and refuses it as an
    # ASA does, before the key exchange (no ssh line covers the client).
    with socket.create_connection((MANAGEMENT, 22 + OFFSET), timeout=10) as client:
        client.settimeout(10)
        assert client.recv(256) == b""
    syslog = (firewall.home / "syslog.log").read_text()
    assert "%ASA-3-710003: TCP access denied by ACL from 127.0.0.1/" in syslog
    assert _mapped(pid, "cryptography")
    # Then OpenSSH signs in through the same port, with the key made for the first client.
    asa(firewall, "conf t", *ACCESS, "end")
    assert ssh(ALLOWED, "exit").returncode == 0
    key = (firewall.home / HOST_KEY_FILE).read_bytes()
    assert ssh(ALLOWED, "exit").returncode == 0
    assert (firewall.home / HOST_KEY_FILE).read_bytes() == key
