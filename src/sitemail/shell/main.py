"""The entry point the ``sitemail shell`` command calls."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from .host import StreamHost
from .registry import Registry
from .runtime import Runtime

C = TypeVar("C")

DEFAULT_HISTORY = Path.home() / ".sitemail" / "shell_history"


@dataclass(frozen=True)
class ShellOptions:
    """``command``: run it and exit (``-c``); ``file``: run a script file (``-`` is stdin);
    neither: interactive when stdin is a terminal, else the script read from stdin."""

    command: str | None = None
    file: str | None = None
    history_file: Path | None = None
    width: int | None = None
    json: bool = False  # each statement's objects as JSON instead of tables


def parse_options(argv: Sequence[str]) -> ShellOptions:
    parser = argparse.ArgumentParser(
        prog="sitemail shell", description="Exchange Management Shell subset."
    )
    parser.add_argument("-c", "--command", help="run these statements and exit")
    parser.add_argument("-f", "--file", help="run the statements in this file ('-' for stdin)")
    parser.add_argument("--history-file", type=Path, help=f"default {DEFAULT_HISTORY}")
    parser.add_argument("--width", type=int, help="console width for tables (default: terminal)")
    parser.add_argument("--json", action="store_true", help="write objects as JSON, not tables")
    args = parser.parse_args(list(argv))
    return ShellOptions(args.command, args.file, args.history_file, args.width, args.json)


def main(
    options: Sequence[str] | ShellOptions,
    services: C,
    registry: Registry[C] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the shell; 0 if every statement succeeded, 1 if any reported an error.

    Scripts (``-c``, ``-f``, piped stdin) write objects to ``stdout`` and
    errors to ``stderr``; the interactive shell writes both to the terminal.
    """
    if not isinstance(options, ShellOptions):
        options = parse_options(options)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    width = options.width or shutil.get_terminal_size((120, 24)).columns
    runtime = Runtime(
        registry if registry is not None else Registry[C](),
        services,
        StreamHost(stdout, stderr),
        width=width,
        json_output=options.json,
    )
    if options.command is not None:
        return 0 if runtime.run(options.command) else 1
    if options.file is not None:
        if options.file == "-":
            text = stdin.read()
        else:
            try:
                text = Path(options.file).read_text(encoding="utf-8-sig")
            except OSError as error:
                stderr.write(f"Cannot read the script {options.file}: {error.strerror}.\n")
                return 1
        return 0 if runtime.run(text) else 1
    if not stdin.isatty():
        return 0 if runtime.run(stdin.read()) else 1
    from .repl import interact  # late: prompt_toolkit is only needed interactively

    return interact(runtime, history_file=options.history_file or DEFAULT_HISTORY, output=stdout)
