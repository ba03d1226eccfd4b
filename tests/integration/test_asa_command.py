"""`sitemail asa NAME -c LINES`: story 1 step 7 on the seed lab, typed as the seed shows it.

The command runs as a user runs it, ``python -m sitemail asa``, in its own process,
against the lab's own firewalls and servers.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SEED_LINES = [
    "config t",
    "policy-map global_policy",
    "class inspection_default",
    "no inspect esmtp",
    "exit",
    "exit",
    "exit",
    "wr me",
]


def asa(lab: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``sitemail asa ARGS --dir LAB``, exactly as typed in a shell."""
    return subprocess.run(
        [sys.executable, "-m", "sitemail", "asa", *args, "--dir", str(lab.dir)],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),
    )


def policy_map(lab: Any, name: str) -> str:
    done = asa(lab, name, "-c", "show running-config policy-map")
    assert done.returncode == 0, done.stderr
    assert f"{name}# show running-config policy-map\n" in done.stdout
    assert "policy-map global_policy\n class inspection_default\n" in done.stdout
    return done.stdout


def restart(lab: Any, name: str) -> None:
    lab.run("lab", "restart", name)


@pytest.mark.lab
def test_the_seed_lines_turn_inspection_off_and_it_stays_off(seed_lab: Any) -> None:
    done = asa(seed_lab, "ASA-NY", "-c", "\n".join(SEED_LINES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(
        r"ASA-NY# config t\n"
        r"ASA-NY\(config\)# policy-map global_policy\n"
        r"ASA-NY\(config-pmap\)# class inspection_default\n"
        r"ASA-NY\(config-pmap-c\)# no inspect esmtp\n"
        r"ASA-NY\(config-pmap-c\)# exit\n"
        r"ASA-NY\(config-pmap\)# exit\n"
        r"ASA-NY\(config\)# exit\n"
        r"ASA-NY# wr me\n"
        r"Building configuration\.\.\.\n"
        r"Cryptochecksum: [0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{8} \n"
        r"\n"
        r"(\d+) bytes copied in 1\.20 secs \(\1 bytes/sec\)\n"
        r"\[OK\]\n"
        r"ASA-NY# \n",
        done.stdout,
    ), done.stdout
    assert "inspect esmtp" not in policy_map(seed_lab, "ASA-NY")
    assert "inspect ftp" in policy_map(seed_lab, "ASA-NY")
    startup = Path(seed_lab.dir) / "firewalls" / "ASA-NY" / "startup-config"
    assert "inspect esmtp" not in startup.read_text()

    restart(seed_lab, "ASA-NY")
    assert "inspect esmtp" not in policy_map(seed_lab, "ASA-NY")


@pytest.mark.lab
def test_unsaved_changes_are_lost_when_the_firewall_restarts(seed_lab: Any) -> None:
    # Lines from stdin ("-c -"), as a script piped in.
    done = asa(
        seed_lab,
        "ASA-FL",
        "-c",
        "-",
        stdin="configure terminal\npolicy-map global_policy\nclass inspection_default\n"
        "no inspect esmtp\nend\n",
    )
    assert done.returncode == 0, done.stdout
    assert done.stdout.endswith("ASA-FL(config-pmap-c)# end\nASA-FL# \n")
    assert "inspect esmtp" not in policy_map(seed_lab, "ASA-FL")
    restart(seed_lab, "ASA-FL")
    assert "  inspect esmtp \n" in policy_map(seed_lab, "ASA-FL")


@pytest.mark.lab
def test_errors_fail_the_command_and_name_what_was_wrong(seed_lab: Any) -> None:
    done = asa(seed_lab, "ASA-NY", "-c", "show running-config", "-c", "policy-map global_policy")
    assert done.returncode == 1
    assert "ERROR: % Invalid input detected at '^' marker.\n" in done.stdout
    assert done.stdout.startswith("ASA-NY# show running-config\n")

    done = asa(seed_lab, "ASA-XX", "-c", "show version")
    assert done.returncode == 2
    assert "'ASA-XX' is not a firewall" in done.stderr and "ASA-NY, ASA-FL" in done.stderr
    done = asa(seed_lab, "EX-NY1", "-c", "show version")
    assert done.returncode == 2 and "EX-NY1 is not a firewall" in done.stderr
    # Names are matched as the ASA console matches them: without regard to case.
    assert asa(seed_lab, "asa-ny", "-c", "show running-config hostname").stdout.startswith(
        "ASA-NY# show running-config hostname\nhostname ASA-NY\n"
    )


def test_an_unknown_lab_is_named(tmp_path: Path) -> None:
    class Nowhere:
        dir = tmp_path / "no-lab-here"

    done = asa(Nowhere(), "ASA-NY", "-c", "show version")
    assert done.returncode == 2
    assert f"no lab in {Nowhere.dir}" in done.stderr


@pytest.mark.lab
def test_with_inspection_off_on_both_firewalls_smtp_is_no_longer_masked(seed_lab: Any) -> None:
    for name in ("ASA-NY", "ASA-FL"):
        assert asa(seed_lab, name, "-c", "\n".join(SEED_LINES)).returncode == 0
    status = seed_lab.status()
    path = status["paths"]["NY"]["EX-FL1"]
    port = 25 + status["port_offset"]
    with socket.create_connection(
        (path["address"], port), timeout=10, source_address=(path["source"], 0)
    ) as client:
        f = client.makefile("rwb")
        banner = f.readline()
        f.write(b"EHLO ex-ny1.contoso.com\r\n")
        f.flush()
        lines = [f.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(f.readline())
    # EX-FL1 itself answers, unmasked, and sees NY's own address through both firewalls.
    assert banner.startswith(b"220 ex-fl1.contoso.com Microsoft ESMTP MAIL Service ready at ")
    assert lines[0] == f"250-ex-fl1.contoso.com Hello [{path['source']}]\r\n".encode()
    assert any(line[4:].rstrip() == b"STARTTLS" for line in lines), lines
    assert not any(b"XXXXXXXA" in line for line in lines)


# --- the interactive console --------------------------------------------------------------


class InProcessConsole:
    """A ConsoleClient stand-in that answers with the firewall's own console handlers."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        self.handlers = handlers
        self.typed: list[str] = []
        self.completions = 0

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        if cmd == "cli" and args.get("op") == "feed":
            self.typed.append(args["line"])
        if cmd == "cli" and args.get("op") == "complete":
            self.completions += 1
        # The handlers never wait for anything: one step runs them to the end.
        coroutine = self.handlers[cmd]({"cmd": cmd, **args})
        try:
            coroutine.send(None)
        except StopIteration as finished:
            return dict(finished.value)
        raise AssertionError(f"console handler {cmd} did not finish")


def wait_for(condition: Callable[[], bool]) -> None:
    # No assert here: it would die in the typing thread and leave the console
    # waiting; typing on lets the test's own assertions say what went wrong.
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the prompt applies the result after asking for it


def test_the_interactive_console_completes_words_and_shows_help(tmp_path: Path) -> None:
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from sitemail.firewall.asa_config import esmtp_policy_for
    from sitemail.firewall.console_cli import AsaConsole, interactive
    from sitemail.firewall.process import AsaDevice, console_handlers
    from sitemail.firewall.relay import Relay

    device = AsaDevice(tmp_path, "CiscoASA")
    device.boot()
    client = InProcessConsole(console_handlers(device, Relay([]), "ASA-NY"))
    console = AsaConsole(client, "ASA-NY")  # type: ignore[arg-type]
    out = io.StringIO()
    with create_pipe_input() as keys:

        def type_keys() -> None:
            # Completion and help run in the background of the prompt: wait for
            # each to be asked for (and a little more) before typing on.
            keys.send_text("conf\t")  # Tab completes "configure "
            wait_for(lambda: client.completions >= 1)
            keys.send_text("t\rpolicy-map global_policy\rclass inspection_default\rno insp\t")
            wait_for(lambda: client.completions >= 2)
            keys.send_text("esmtp\rexit\rexit\rexit\rwr me\r")
            keys.send_text("show running-config pol?")  # context help keeps the line
            wait_for(lambda: "pol?" in out.getvalue())
            keys.send_text("\x15\x04")  # Ctrl-U clears it, Ctrl-D on an empty line ends

        typist = threading.Thread(target=type_keys)
        typist.start()
        code = interactive(
            console, out, pt_input=keys, pt_output=DummyOutput(), history=InMemoryHistory()
        )
        typist.join()
    assert code == 0
    assert client.typed[0] == "configure t"
    assert client.typed[3] == "no inspect esmtp"
    assert client.typed[-1] == "wr me"
    assert "Building configuration...\n" in out.getvalue()
    assert "CiscoASA# show running-config pol?\n  policy-map\n" in out.getvalue()
    assert esmtp_policy_for(device.running) is None
    assert "inspect esmtp" not in (tmp_path / "startup-config").read_text()
