"""Captures, the conn table and the buffered log of a running firewall, read with real tcpdump.

One firewall alone in front of a small SMTP server (the fixtures of
test_firewall_acl.py).  The administrator captures both interfaces, sends
mail through, and finds the ESMTP inspection at work: the banner and the
EHLO reply are masked in the capture of the outside interface and not in the
one of the inside; the pcap written with ``copy /pcap`` is what tcpdump reads.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

from tests.integration.test_firewall_acl import (
    ALLOWED,
    LISTEN,
    SERVER,
    SMTP,
    FirewallProcess,
    MailServer,
    asa,
    firewall,
    mail_server,
    send,
)

__all__ = ["firewall", "mail_server"]  # pytest fixtures, imported to be used here

CAPTURES = (
    f"capture CAPO interface outside match tcp host {ALLOWED} host {SERVER} eq smtp",
    "capture CAPI type raw-data interface inside match ip any any",
)


def tcpdump(path: str) -> str:
    tool = shutil.which("tcpdump")
    assert tool, "tcpdump is not installed (bash scripts/install.sh test installs it)"
    done = subprocess.run(
        [tool, "-r", path, "-nn", "-A"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_captures_show_the_masking_on_one_side_only_and_tcpdump_reads_them(
    firewall: FirewallProcess, mail_server: MailServer
) -> None:
    asa(firewall, *CAPTURES)
    send(ALLOWED)
    assert mail_server.messages == 1

    listed = asa(firewall, "show capture")
    assert re.search(
        r"capture CAPO type raw-data interface outside \[Capturing - \d+ bytes\]", listed
    )
    outside = asa(firewall, "show capture CAPO")
    assert re.search(
        rf"   1: \d\d:\d\d:\d\d\.\d{{6}} {re.escape(ALLOWED)}\.\d+ > {SERVER}\.25: S \d+:\d+\(0\) "
        r"win 29200 <mss 1460>\n",
        outside,
    ), outside
    assert re.search(
        rf"{SERVER}\.25 > {re.escape(ALLOWED)}\.\d+: P \d+:\d+\(\d+\) ack \d+", outside
    )

    out = asa(
        firewall, "copy /pcap capture:CAPO disk0:/capo.pcap", "copy /pcap capture:CAPI capi.pcap"
    )
    assert "packets copied in" in out
    seen_outside = tcpdump(str(firewall.home / "disk0" / "capo.pcap"))
    seen_inside = tcpdump(str(firewall.home / "disk0" / "capi.pcap"))
    # The client's side: the masked banner; the server's side: the real one.
    assert "220 ************" in seen_outside and "Microsoft ESMTP" not in seen_outside
    assert "220 ex-t1.contoso.com Microsoft ESMTP MAIL Service ready" in seen_inside
    assert f"IP {ALLOWED}." in seen_inside and f" > {SERVER}.25: Flags [S]" in seen_inside
    assert "Flags [F.]" in seen_inside  # the session ended with FINs

    asa(firewall, "no capture CAPO", "no capture CAPI")
    assert asa(firewall, "show capture") == "ASA-T# show capture\nASA-T# \n"


def test_show_conn_logging_and_clear_conn(
    firewall: FirewallProcess, mail_server: MailServer
) -> None:
    asa(firewall, "clear logging buffer")
    with socket.create_connection((LISTEN, SMTP), timeout=5, source_address=(ALLOWED, 0)) as s:
        banner = s.makefile("rb").readline()
        assert banner.startswith(b"220 ")
        conn = asa(firewall, "show conn")
        assert re.search(
            rf"1 in use, \d+ most used\nTCP outside {re.escape(ALLOWED)}:\d+ inside {SERVER}:25, "
            r"idle 0:00:0\d, bytes \d+, flags UOB\n",
            conn,
        ), conn
        asa(firewall, "clear conn")
        s.settimeout(5)
        try:
            rest = s.recv(100)
        except ConnectionResetError:
            rest = b""
        assert rest == b""
    logged = asa(firewall, "show logging")
    assert re.search(
        rf": %ASA-6-302013: Built inbound TCP connection \d+ for outside:{re.escape(ALLOWED)}/\d+ ",
        logged,
    ), logged
    assert re.search(
        r"%ASA-6-302014: Teardown TCP connection \d+ for outside:\S+ to inside:"
        rf"{SERVER}/25 duration 0:00:0\d bytes \d+ ",
        logged,
    ), logged
    assert "0 in use" in asa(firewall, "show conn")
    text = (firewall.home / "syslog.log").read_text()
    assert "%ASA-6-302014: Teardown TCP connection" in text
