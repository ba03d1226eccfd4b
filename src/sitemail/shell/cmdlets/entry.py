"""``sitemail shell [-c "..."] [--dir DIR]``: the Exchange Management Shell on a lab.

:func:`shell_main` is what the ``sitemail`` command calls with the words
after ``shell`` and the lab folder.  The shell needs the lab's directory;
the configuration cmdlets work while the lab is down, the runtime cmdlets
need its servers running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sitemail.org.directory import DirectoryError, open_directory
from sitemail.org.lab_state import lab_directory_url
from sitemail.org.model import Server
from sitemail.shell import ShellOptions, main

from . import exchange_registry
from .admin_client import AdminClient
from .services import ExchangeServices


def parse_arguments(argv: Sequence[str]) -> tuple[ShellOptions, str | None, Path | None]:
    parser = argparse.ArgumentParser(
        prog="sitemail shell",
        description="The Exchange Management Shell of a sitemail lab: Exchange 2010 cmdlets "
        "(Get-Command lists them, Get-Help explains one).",
    )
    parser.add_argument("-c", "--command", help="run these statements and exit")
    parser.add_argument("-f", "--file", help="run the statements in this file ('-' for stdin)")
    parser.add_argument(
        "--server",
        metavar="NAME",
        help="the server the shell runs on: Test-NetConnection connects from it, Get-Service "
        "asks it (default: the lab's first Exchange 2010 server)",
    )
    parser.add_argument("--dir", metavar="DIR", help="the lab folder")
    parser.add_argument("--history-file", type=Path, help="where the interactive history goes")
    parser.add_argument("--width", type=int, help="console width for tables (default: terminal)")
    parser.add_argument("--json", action="store_true", help="write objects as JSON, not tables")
    args = parser.parse_args(list(argv))
    options = ShellOptions(args.command, args.file, args.history_file, args.width, args.json)
    return options, args.server, Path(args.dir) if args.dir else None


def shell_main(
    argv: list[str],
    lab_dir: Path,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the shell on the lab in ``lab_dir``; 0 if every statement succeeded, else 1."""
    options, server, dir_option = parse_arguments(argv)
    lab_dir = (dir_option or lab_dir).resolve()
    err = stderr or sys.stderr
    url = lab_directory_url(lab_dir)
    if url is None:
        err.write(
            f"sitemail shell: no lab in {lab_dir} (no lab.json or directory.db); start one "
            "with `sitemail lab up` or pass --dir.\n"
        )
        return 1
    try:
        directory = open_directory(url)
    except DirectoryError as error:
        err.write(f"sitemail shell: {error}\n")
        return 1
    try:
        services = ExchangeServices(directory, lab_dir, AdminClient(lab_dir / "pki"), server)
        if server is not None and not any(
            s.name.casefold() == server.casefold() for s in directory.list(Server)
        ):
            names = ", ".join(s.name for s in directory.list(Server))
            err.write(
                f"sitemail shell: --server {server}: no such server; expected one of {names}.\n"
            )
            return 2
        interactive = options.command is None and options.file is None
        if interactive and (stdin or sys.stdin).isatty():
            out = stdout or sys.stdout
            local = services.local_server()
            out.write(
                f"sitemail Exchange Management Shell on {local.name} ({local.fqdn}), lab "
                f"{lab_dir}.\nGet-Command lists the cmdlets; Get-Help <cmdlet> -Detailed "
                "explains one; Tab completes names, parameters and values.\n\n"
            )
        return main(
            options, services, exchange_registry(), stdin=stdin, stdout=stdout, stderr=stderr
        )
    finally:
        directory.close()
