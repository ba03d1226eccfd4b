"""Driving an emulated ASA over SSH with OpenSSH's own client, as an administrator's script does.

``sshpass`` types the password, taken from a file or from the environment
(``-f`` / ``-e``), never from the command line, where ``ps`` would show it.
The lines go on stdin (``ssh -T``), one console line each; the session's
transcript is what the ASA printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["answers", "frames", "ssh"]


def ssh(
    address: str,
    port: int,
    *lines: str,
    user: str = "admin",
    source: str | None = None,
    password: str | None = None,
    password_file: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``ssh user@address -p port`` (from ``source`` if given) with ``lines`` on stdin."""
    tools = [shutil.which("sshpass"), shutil.which("ssh")]
    assert all(tools), "sshpass and ssh are needed (bash scripts/install.sh test installs them)"
    assert (password is None) != (password_file is None), "a password or a password file"
    env = dict(os.environ)
    if password_file is not None:
        command = [str(tools[0]), "-f", str(password_file)]
    else:
        command = [str(tools[0]), "-e"]
        env["SSHPASS"] = str(password)
    command += [str(tools[1]), "-T", "-p", str(port), "-F", "/dev/null"]
    if source is not None:
        command += ["-b", source]
    for option in (
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "PubkeyAuthentication=no",
        "PreferredAuthentications=password",
        "ConnectTimeout=10",
        "LogLevel=ERROR",
    ):
        command += ["-o", option]
    return subprocess.run(
        [*command, f"{user}@{address}"],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def answers(transcript: str, hostname: str) -> list[str]:
    """What the ASA answered to each line typed at its privileged prompt, in order (the
    transcript of a session that signed in, typed ``enable`` and its password, then the
    lines, then ``exit``)."""
    _, _, privileged = transcript.partition(f"{hostname}> Password: {hostname}# ")
    assert privileged, f"no privileged prompt in: {transcript[:500]!r}"
    # Each answer ends at the next prompt: ASA-FL# or a configuration mode's ASA-FL(config)#.
    return re.split(rf"{re.escape(hostname)}(?:\([\w-]+\))?# ", privileged)


def frames(dump: str) -> list[bytes]:
    """The frames ``show capture NAME dump`` printed, each rebuilt from its hex rows."""
    out: list[bytearray] = []
    for line in dump.splitlines():
        if re.match(r"\s*\d+: \d\d:\d\d:\d\d\.\d+ ", line):
            out.append(bytearray())
        elif (row := re.match(r"0x[0-9a-f]{4}\t ((?:[0-9a-f]{2,4} ?)+)", line)) and out:
            out[-1] += bytes.fromhex(row[1].replace(" ", ""))
    return [bytes(f) for f in out]
