"""``sitemail asa NAME [-c LINES] [--dir DIR]``: the console of one emulated ASA.

It finds the firewall's console socket in the lab folder
(``firewalls/<NAME>/console.sock``), opens a console session there and either

* runs the given lines (``-c``, several ``-c``, or ``-c -`` / a pipe for
  lines from stdin) and prints what a console shows: prompt, typed line,
  answer; the exit code is 1 when the ASA answered any line with an
  ``ERROR:`` (the ``% Invalid input detected at '^' marker`` kind), or
* runs an interactive console on a terminal (prompt_toolkit): the ASA's
  prompt, history, Tab completion of the current mode's keywords and ``?``
  for the words that may come next, as on the ASA.

The session starts at ``<hostname>#``, where the seed's lines begin.  The
CLI itself runs in the firewall process (:mod:`sitemail.firewall.process`),
so ``write memory`` there writes the firewall's own startup-config.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sitemail.org.lab_state import LabState, is_ours
from sitemail.server.console import ConsoleClient, ConsoleError

if TYPE_CHECKING:
    from prompt_toolkit.history import History
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

__all__ = [
    "AsaCommandError",
    "AsaConsole",
    "add_arguments",
    "find_console",
    "interactive",
    "main",
    "run_lines",
]

#: How the ASA starts every error it prints; a line answered with one fails ``-c``.
ERROR_MARK = "ERROR: "


class AsaCommandError(Exception):
    """Why ``sitemail asa`` cannot reach the firewall, in one line."""


# --- finding the firewall -----------------------------------------------------------------


def find_console(name: str, lab_dir: Path) -> tuple[str, Path]:
    """(the firewall's name as the lab spells it, its console socket)."""
    lab_dir = lab_dir.resolve()
    if not lab_dir.is_dir():
        raise AsaCommandError(
            f"no lab in {lab_dir}; start one with `sitemail lab up` or pass --dir"
        )
    state = LabState.load(lab_dir)
    if state is None:
        # A folder laid out like a lab but not started by `lab up` (a firewall
        # run alone with `sitemail serve`): go by the folder names.
        folders = lab_dir / "firewalls"
        known = sorted(p.name for p in folders.iterdir() if p.is_dir()) if folders.is_dir() else []
        found = next((n for n in known if n.lower() == name.lower()), None)
        if found is None:
            if not known:
                raise AsaCommandError(
                    f"no lab in {lab_dir}; start one with `sitemail lab up` or pass --dir"
                )
            raise AsaCommandError(
                f"{name!r} is not a firewall in {lab_dir}; expected one of {', '.join(known)}"
            )
        return found, folders / found / "console.sock"
    firewalls = [r for r in state.processes if r.kind == "firewall"]
    rec = next((r for r in firewalls if r.name.lower() == name.lower()), None)
    if rec is None:
        other = next((r for r in state.processes if r.name.lower() == name.lower()), None)
        names = ", ".join(r.name for r in firewalls) or "none"
        if other is not None:
            raise AsaCommandError(
                f"{other.name} is not a firewall but an Exchange server or the Internet host; "
                f"its firewalls are: {names} (use `sitemail shell` for Exchange servers)"
            )
        raise AsaCommandError(
            f"{name!r} is not a firewall of the lab in {lab_dir}; expected one of {names}"
        )
    if not is_ours(rec, lab_dir):
        raise AsaCommandError(
            f"{rec.name} is not running; start the lab with `sitemail lab up` "
            f"or the firewall with `sitemail lab restart {rec.name}`"
        )
    return rec.name, Path(rec.home) / "console.sock"


# --- a console session --------------------------------------------------------------------


class AsaConsole:
    """One console session on the firewall, over its console socket."""

    def __init__(self, client: ConsoleClient, name: str) -> None:
        self.client = client
        self.name = name
        reply = self._call(op="open")
        self.session = str(reply["session"])
        self.prompt = str(reply["prompt"])
        self.secret = False
        self.closed = False

    def _call(self, **args: Any) -> dict[str, Any]:
        reply = self.client.call("cli", **args)
        if "error" in reply:
            raise AsaCommandError(f"{self.name}: {reply['error']}")
        return reply

    def feed(self, line: str) -> tuple[str, str]:
        """Type one line; (how it echoes, the ASA's answer).  ``prompt`` moves on."""
        reply = self._call(op="feed", session=self.session, line=line)
        self.prompt = str(reply["prompt"])
        self.secret = bool(reply.get("secret"))
        self.closed = bool(reply.get("closed"))
        return str(reply["echo"]), str(reply["output"])

    def complete(self, text: str) -> list[str]:
        return [str(w) for w in self._call(op="complete", session=self.session, text=text)["words"]]

    def close(self) -> None:
        if not self.closed:
            # If the firewall went away there is nothing left to close.
            with contextlib.suppress(ConsoleError, OSError):
                self.client.call("cli", op="close", session=self.session)
        self.closed = True


def run_lines(console: AsaConsole, lines: Iterable[str], out: TextIO) -> int:
    """Type ``lines`` and print the transcript; 1 if any answer was an ASA error."""
    failed = False
    for line in lines:
        prompt = console.prompt
        echo, output = console.feed(line)
        out.write(f"{prompt}{echo}\n{output}")
        if any(row.startswith(ERROR_MARK) for row in output.splitlines()):
            failed = True
        if console.closed:
            break
    if not console.closed:
        out.write(f"{console.prompt}\n")
    out.flush()
    return 1 if failed else 0


def _split(commands: Sequence[str], stdin: TextIO) -> Iterator[str]:
    # The ASA has no command separator, so only line ends split: one -c may
    # hold several lines, several -c follow each other, "-" reads stdin.
    for block in commands:
        if block == "-":
            for line in stdin:
                yield line.rstrip("\r\n")
        else:
            yield from block.splitlines()


# --- the interactive console --------------------------------------------------------------


def _history_file() -> Path | None:
    folder = Path.home() / ".sitemail"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / "asa_history"


def interactive(
    console: AsaConsole,
    out: TextIO,
    *,
    pt_input: Input | None = None,
    pt_output: Output | None = None,
    history: History | None = None,
) -> int:
    """The console on a terminal; ``pt_input``/``pt_output`` let tests drive it."""
    # Imported here so that ``-c`` runs do not pay for prompt_toolkit's start-up.
    from prompt_toolkit import PromptSession
    from prompt_toolkit.application import run_in_terminal
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

    class AsaCompleter(Completer):
        def get_completions(
            self, document: Document, complete_event: CompleteEvent
        ) -> Iterator[Completion]:
            if console.secret:
                return
            text = document.text_before_cursor
            partial = "" if not text or text[-1].isspace() else text.split()[-1]
            for word in console.complete(text):
                yield Completion(word + " ", start_position=-len(partial), display=word)

    bindings = KeyBindings()

    @bindings.add("?")
    def _help(event: KeyPressEvent) -> None:
        # ASA context help: "?" lists what may come next and keeps the line.
        text = event.app.current_buffer.document.text_before_cursor
        words = console.complete(text) if not console.secret else []
        shown = f"{console.prompt}{text}?\n" + "".join(f"  {w}\n" for w in words or ["<cr>"])

        def show() -> None:
            out.write(shown)
            out.flush()

        run_in_terminal(show)

    if history is None:
        path = _history_file()
        history = FileHistory(str(path)) if path else InMemoryHistory()
    session: PromptSession[str] = PromptSession(
        history=history,
        completer=AsaCompleter(),
        key_bindings=bindings,
        # As on the ASA, words are completed on Tab only, not while typing.
        complete_while_typing=False,
        input=pt_input,
        output=pt_output,
    )
    out.write("Type help or '?' for a list of available commands.\n")
    while not console.closed:
        try:
            line = session.prompt(console.prompt, is_password=console.secret)
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        _, output = console.feed(line)
        out.write(output)
        out.flush()
    return 0


# --- the command --------------------------------------------------------------------------


def main(
    name: str,
    commands: str | Sequence[str] | None,
    lab_dir: Path,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``sitemail asa NAME [-c LINES]... [--dir DIR]``; returns the exit code.

    0: every line was accepted; 1: the ASA answered a line with an error;
    2: the firewall could not be reached.
    """
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if isinstance(commands, str):
        commands = [commands]
    try:
        found, sock = find_console(name, lab_dir)
        try:
            client = ConsoleClient(sock)
        except ConsoleError:
            raise AsaCommandError(
                f"{found} does not answer on its console {sock}; is it running? "
                f"(`sitemail lab status`, `sitemail lab restart {found}`)"
            ) from None
        with client:
            console = AsaConsole(client, found)
            try:
                if commands:
                    return run_lines(console, _split(commands, stdin), out)
                if not stdin.isatty():
                    return run_lines(console, _split(["-"], stdin), out)
                return interactive(console, out)
            finally:
                console.close()
    except AsaCommandError as exc:
        err.write(f"sitemail asa: {exc}\n")
        return 2
    except ConsoleError as exc:
        err.write(f"sitemail asa: {name}: {exc}\n")
        return 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``sitemail asa`` (``--dir`` is added by the caller, like the others)."""
    parser.add_argument("name", metavar="FIREWALL", help="the firewall, e.g. ASA-NY")
    parser.add_argument(
        "-c",
        dest="commands",
        action="append",
        metavar="LINES",
        help="run these console lines (one per line; repeatable; '-' reads stdin) "
        "instead of an interactive console",
    )
