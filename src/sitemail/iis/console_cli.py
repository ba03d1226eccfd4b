"""``sitemail iis SERVER [APPCMD WORDS...] [--dir DIR]``: a server's IIS from the command line.

With words after the server it runs them as one appcmd command
(``sitemail iis EX2003 list vdir``) and exits 0, or 1 when appcmd would
have printed an ``ERROR``; without, it is an interactive console (on a
terminal with prompt_toolkit, as ``sitemail asa`` is; else one command a
line from stdin).  It works on the lab's directory and the server's folder,
so the server need not be running (as IIS Manager opens a stopped site).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sitemail.exchange2003.metabase import server_home
from sitemail.iis.appcmd import run_appcmd, usage
from sitemail.iis.server_view import IisServerView
from sitemail.org.directory import Directory, DirectoryError, open_directory
from sitemail.org.lab_state import lab_directory_url
from sitemail.org.model import Server

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

__all__ = ["Console", "ConsoleCommandError", "console_main", "iis_main", "lab_server", "repl"]

#: A line's answer and whether it succeeded.
LineRunner = Callable[[str], tuple[str, bool]]


class ConsoleCommandError(Exception):
    """Why the console cannot open the server, in one line."""


@contextmanager
def lab_server(name: str, lab_dir: Path) -> Iterator[tuple[Directory, Server, Path]]:
    """The lab's directory, server ``name`` in it and that server's folder."""
    lab_dir = lab_dir.resolve()
    url = lab_directory_url(lab_dir)
    if url is None:
        raise ConsoleCommandError(
            f"no lab in {lab_dir} (no lab.json or directory.db); start one with "
            "`sitemail lab up` or pass --dir"
        )
    try:
        directory = open_directory(url)
    except DirectoryError as exc:
        raise ConsoleCommandError(str(exc)) from None
    try:
        servers = directory.list(Server)
        server = next((s for s in servers if s.name.casefold() == name.casefold()), None)
        if server is None:
            names = ", ".join(s.name for s in servers) or "none"
            raise ConsoleCommandError(
                f"{name!r} is not an Exchange server of the lab in {lab_dir}; expected one "
                f"of {names}"
            )
        yield directory, server, server_home(lab_dir, server.name)
    finally:
        directory.close()


def repl(
    prompt: str,
    run_line: LineRunner,
    stdin: TextIO,
    out: TextIO,
    *,
    banner: str = "",
    pt_input: Input | None = None,
    pt_output: Output | None = None,
) -> int:
    """Lines until ``exit``/EOF: 0 if every line succeeded, else 1 (piped input), 0 (terminal)."""
    failed = False
    if pt_input is None and not stdin.isatty():
        for raw in stdin:
            line = raw.strip()
            if line.casefold() in ("exit", "quit"):
                break
            text, ok = run_line(line)
            out.write(f"{prompt}{line}\n{text}")
            failed = failed or not ok
        out.flush()
        return 1 if failed else 0
    # Imported here so that one-shot runs do not pay for prompt_toolkit's start-up.
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory

    session: PromptSession[str] = PromptSession(
        history=InMemoryHistory(), input=pt_input, output=pt_output
    )
    out.write(banner)
    while True:
        try:
            line = session.prompt(prompt).strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        if line.casefold() in ("exit", "quit"):
            break
        out.write(run_line(line)[0])
        out.flush()
    return 0


@dataclass(frozen=True)
class Console:
    """What a console of one server is: how it runs a line, its prompt and banner."""

    run_line: LineRunner
    prompt: str
    banner: str


def console_main(
    prog: str,
    description: str,
    words_help: str,
    make: Callable[[Directory, Server, Path], Console],
    argv: list[str],
    lab_dir: Path,
    streams: tuple[TextIO | None, TextIO | None, TextIO | None],
) -> int:
    """``sitemail PROG [--dir DIR] SERVER [WORDS...]``: one command, or an interactive
    console; 0, 1 (a command was refused) or 2 (no such lab or server)."""
    parser = argparse.ArgumentParser(prog=f"sitemail {prog}", description=description)
    parser.add_argument("--dir", metavar="DIR", help="the lab folder")
    parser.add_argument("server", metavar="SERVER", help="an Exchange server, e.g. EX2003")
    parser.add_argument("words", nargs=argparse.REMAINDER, help=words_help)
    args = parser.parse_args(argv)
    stdin, out, err = streams[0] or sys.stdin, streams[1] or sys.stdout, streams[2] or sys.stderr
    try:
        with lab_server(args.server, Path(args.dir) if args.dir else lab_dir) as found:
            console = make(*found)
            if args.words:
                # The shell split the line already; the console takes it back as one.
                text, ok = console.run_line(shlex.join(args.words))
                out.write(text)
                return 0 if ok else 1
            return repl(console.prompt, console.run_line, stdin, out, banner=console.banner)
    except ConsoleCommandError as exc:
        err.write(f"sitemail {prog}: {exc}\n")
        return 2


def _iis_console(directory: Directory, server: Server, home: Path) -> Console:
    view = IisServerView(directory, server, home)

    def run_line(line: str) -> tuple[str, bool]:
        result = run_appcmd(view, line)
        return result.output, result.ok

    prompt = f"{server.name} IIS 6 metabase> " if view.iis6 else r"C:\Windows\system32\inetsrv>"
    return Console(run_line, prompt, usage(view) + "\n")


def iis_main(
    argv: list[str],
    lab_dir: Path,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    return console_main(
        "iis",
        "A server's IIS in appcmd's syntax (Exchange 2003: the IIS Manager view of its IIS 6 "
        "metabase). Without a command: an interactive console.",
        'appcmd words, e.g. list config "Default Web Site/owa" -section:windowsAuthentication',
        _iis_console,
        argv,
        lab_dir,
        (stdin, stdout, stderr),
    )
