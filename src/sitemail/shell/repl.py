"""The interactive shell: prompt, history, tab completion, continuation lines."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Generic, TextIO, TypeVar

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory

from .completion import complete
from .errors import ParseError
from .host import Stream
from .parser import parse
from .runtime import Runtime

C = TypeVar("C")

PROMPT = "[PS] C:\\Windows\\system32>"
CONTINUATION_PROMPT = ">> "
_COLORS = {"error": "\x1b[91m", "warning": "\x1b[93m", "verbose": "\x1b[93m"}


class ShellCompleter(Completer, Generic[C]):
    def __init__(self, runtime: Runtime[C]) -> None:
        self.runtime = runtime

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        for candidate in complete(
            document.text_before_cursor, self.runtime.registry, self.runtime.variable_names()
        ):
            yield Completion(
                candidate.text, start_position=-candidate.replace, display_meta=candidate.meta
            )


class ConsoleHost:
    """Everything to the terminal, errors in red and warnings in yellow as in PowerShell."""

    def __init__(self, out: TextIO, *, color: bool) -> None:
        self.out = out
        self.color = color

    def write(self, stream: Stream, text: str) -> None:
        color = _COLORS.get(stream) if self.color else None
        self.out.write(f"{color}{text}\x1b[0m\n" if color else text + "\n")
        self.out.flush()


def needs_more(text: str) -> bool:
    """True if ``text`` ended in the middle of something (an open brace, quote or pipe)."""
    try:
        parse(text)
    except ParseError as error:
        return error.incomplete
    return False


def interact(
    runtime: Runtime[C], *, history_file: Path | None = None, output: TextIO | None = None
) -> int:
    """Read, run and print until ``exit`` or end of input. Returns the exit status."""
    out = output or sys.stdout
    if history_file is not None:
        history_file.parent.mkdir(parents=True, exist_ok=True)
    history = FileHistory(str(history_file)) if history_file is not None else InMemoryHistory()
    session: PromptSession[str] = PromptSession(
        history=history, completer=ShellCompleter(runtime), complete_while_typing=False
    )
    runtime.host = ConsoleHost(out, color=out.isatty())
    while True:
        try:
            text = session.prompt(PROMPT)
            while needs_more(text):
                more = session.prompt(CONTINUATION_PROMPT)
                if more.strip() == "":
                    break
                text += "\n" + more
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        if text.strip().casefold() == "exit":
            return 0
        if not text.strip():
            continue
        runtime.width = shutil.get_terminal_size((120, 24)).columns
        runtime.run(text)
