"""Command trees of the ASA CLI and the matcher that walks them.

A mode's commands form a tree of keywords.  Like the ASA, the matcher takes
any unambiguous prefix of a keyword (``conf t``, ``wr me``, ``sh run pol``),
and when a word fits nowhere it reports where, so the CLI can put its ``^``
under that word.  The trees say only what is typed; what a command does is in
:mod:`sitemail.firewall.asa_cli`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

ARG = "*"  # the path element recorded for a free word


@dataclass
class Node:
    """One point in a command: the keywords that may follow, or a free word."""

    words: dict[str, Node] = field(default_factory=dict)  # display spelling -> next
    arg: Node | None = None  # a free word (a name, a number) may follow
    rest: bool = False  # this free word takes the rest of the line
    end: bool = False  # the command may stop here
    stub: bool = False  # a real ASA command this emulator does not do; takes any words


def node(
    words: dict[str, Node] | None = None, *, arg: Node | None = None, end: bool = False
) -> Node:
    return Node(dict(words or {}), arg=arg, end=end)


def leaf() -> Node:
    return Node(end=True)


def word(then: Node | None = None) -> Node:
    """A free word, then ``then`` (or the end of the command)."""
    return Node(arg=then or leaf())


def text() -> Node:
    """Free text to the end of the line (a description, a list of names)."""
    return Node(arg=Node(rest=True, end=True))


def stub() -> Node:
    """A real ASA command that is not emulated: matched, whatever follows."""
    return Node(end=True, stub=True)


def stubs(*names: str) -> dict[str, Node]:
    return {name: stub() for name in names}


def optional_word() -> Node:
    """The command may stop here or take one more free word."""
    return Node(arg=leaf(), end=True)


@dataclass(frozen=True)
class Matched:
    """A line that fits the tree: canonical keywords (``*`` for free words) and the words."""

    path: tuple[str, ...]
    args: tuple[str, ...]
    columns: tuple[int, ...]  # column of each path element in the line
    stub: bool = False  # a real ASA command the emulator does not carry out


@dataclass(frozen=True)
class Problem:
    """A line that does not fit, and the column to put the ``^`` under."""

    kind: Literal["invalid", "incomplete", "ambiguous"]
    column: int
    word: str = ""


_WORD = re.compile(r"\S+")


def match_line(tree: Node, line: str) -> Matched | Problem:
    """Walk ``tree`` with the words of ``line``."""
    tokens = [(m.start(), m.group()) for m in _WORD.finditer(line)]
    here = tree
    path: list[str] = []
    args: list[str] = []
    columns: list[int] = []
    i = 0
    while i < len(tokens):
        column, token = tokens[i]
        key = _keyword(here, token)
        if isinstance(key, Problem):
            return key
        if key is not None:
            path.append(key)
            columns.append(column)
            here = here.words[key]
            i += 1
            if here.stub:
                break
            continue
        if here.arg is None:
            return Problem("invalid", column, token)
        here = here.arg
        path.append(ARG)
        columns.append(column)
        if here.rest:
            args.append(line[column:].strip())
            break
        args.append(token)
        i += 1
    if not here.end:
        return Problem("incomplete", len(line))
    return Matched(tuple(path), tuple(args), tuple(columns), here.stub)


def _keyword(here: Node, token: str) -> str | Problem | None:
    low = token.lower()
    for key in here.words:
        if key.lower() == low:
            return key
    found = [key for key in here.words if key.lower().startswith(low)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1 and here.arg is None:
        return Problem("ambiguous", 0, token)
    return None
