"""The interactive shell, driven through a pseudo-terminal as a person would type."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pexpect
import pytest

PROMPT = "[PS] C:\\Windows\\system32>"

# The child registers two fake cmdlets on an in-memory list and starts the shell.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from sitemail.shell import (BY_PROPERTY_NAME, EnumType, Parameter, Record, Registry,
                                cmdlet, main)

    LEVEL = EnumType("Microsoft.Exchange.Data.ProtocolLoggingLevel", ["None", "Verbose"])
    servers = {"EX-NY1": "None", "EX-FL1": "None"}

    @cmdlet("Get-TransportServer")
    def get_ts(item, params, inv):
        return [Record("TransportServer", [("Identity", n), ("IntraOrgProtocolLoggingLevel", v)])
                for n, v in servers.items()]

    @cmdlet("Set-TransportServer",
            Parameter("Identity", position=0, mandatory=True, pipeline=BY_PROPERTY_NAME),
            Parameter("IntraOrgProtocolLoggingLevel", LEVEL))
    def set_ts(item, params, inv):
        servers[params["Identity"]] = params["IntraOrgProtocolLoggingLevel"]

    registry = Registry()
    registry.extend([get_ts, set_ts])
    sys.exit(main(["--history-file", sys.argv[1]], None, registry))
    """
)


@pytest.fixture
def shell(tmp_path: Path) -> pexpect.spawn:
    child_script = tmp_path / "child.py"
    child_script.write_text(CHILD, encoding="utf-8")
    env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
    child = pexpect.spawn(
        sys.executable,
        [str(child_script), str(tmp_path / "history")],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(24, 200),
    )
    child.expect_exact(PROMPT)
    yield child
    if child.isalive():
        child.terminate(force=True)


def test_runs_the_seed_line_and_shows_tables(shell: pexpect.spawn, tmp_path: Path) -> None:
    shell.sendline(
        "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose"
    )
    shell.expect_exact(PROMPT)
    shell.sendline("Get-TransportServer")
    shell.expect(r"Identity\s+IntraOrgProtocolLoggingLevel")
    shell.expect(r"EX-NY1\s+Verbose")
    shell.expect(r"EX-FL1\s+Verbose")
    shell.expect_exact(PROMPT)
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0
    history = (tmp_path / "history").read_text(encoding="utf-8")
    assert "Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose" in history


def test_tab_completes_cmdlets_parameters_and_values(shell: pexpect.spawn) -> None:
    # The terminal may draw what was typed and what completion inserted in separate
    # pieces, so each step waits for the inserted part only; the result is checked by
    # running the completed line.
    shell.send("Get-Transp\t")
    shell.expect_exact("ortServer")
    shell.send(" | Set-T\t")
    shell.expect_exact("ransportServer")
    shell.send(" –IntraOrgP\t")
    shell.expect_exact("rotocolLoggingLevel")
    shell.send(" Verb\t")
    shell.expect_exact("ose")
    shell.send("\r")
    shell.expect_exact(PROMPT)
    shell.sendline("Get-TransportServer | % IntraOrgProtocolLoggingLevel")
    shell.expect(r"Verbose\s+Verbose")
    shell.expect_exact(PROMPT)


def test_errors_continuation_lines_and_end_of_input(shell: pexpect.spawn) -> None:
    shell.sendline("Set-TransportServer EX-NY1 -IntraOrgProtocolLoggingLevel Loud")
    shell.expect_exact("Unable to match the identifier name Loud")
    shell.expect_exact(PROMPT)
    shell.sendline("Get-TransportServer | Where-Object {")
    shell.expect_exact(">>")
    shell.sendline("$_.Identity -like '*FL*' }")
    shell.expect_exact(">>")
    shell.sendline("")
    shell.expect(r"EX-FL1\s+None")
    shell.expect_exact(PROMPT)
    shell.sendeof()
    if shell.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=5) == 1:
        shell.sendeof()  # a Ctrl-D that raced the prompt's redraw: press it again
        shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0
