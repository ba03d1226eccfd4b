"""Tab completion: cmdlet names, parameter names after any dash, values after a parameter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from .binding import all_parameters
from .errors import BindingError
from .lexer import DOUBLE_QUOTES, SINGLE_QUOTES, is_dash
from .registry import Registry

C = TypeVar("C")

_CONSTANT_VARIABLES = ("true", "false", "null", "_")


@dataclass(frozen=True)
class Candidate:
    """Replace the last ``replace`` characters before the cursor with ``text``."""

    text: str
    replace: int
    meta: str = ""


def _current_segment(text: str) -> tuple[str, bool]:
    """The text of the innermost command being typed, and whether a quote is open."""
    starts = [0]
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in SINGLE_QUOTES or ch in DOUBLE_QUOTES:
            quotes = SINGLE_QUOTES if ch in SINGLE_QUOTES else DOUBLE_QUOTES
            end = i + 1
            while end < len(text) and text[end] not in quotes:
                end += 1
            if end >= len(text):
                return text[starts[-1] :], True
            i = end + 1
            continue
        if ch in "({":
            starts.append(i + 1)
        elif ch in ")}":
            if len(starts) > 1:
                starts.pop()
        elif ch in "|;\n":
            starts[-1] = i + 1
        i += 1
    return text[starts[-1] :], False


def _words(segment: str) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for ch in segment:
        if quote is not None:
            current.append(ch)
            if ch in quote:
                quote = None
        elif ch in SINGLE_QUOTES or ch in DOUBLE_QUOTES:
            quote = SINGLE_QUOTES if ch in SINGLE_QUOTES else DOUBLE_QUOTES
            current.append(ch)
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
    words.append("".join(current))  # the word under the cursor ("" after a space)
    return words


def _matching(prefix: str, names: Iterable[str]) -> list[str]:
    key = prefix.casefold()
    return [n for n in names if n.casefold().startswith(key)]


def complete(text: str, registry: Registry[C], variables: Iterable[str] = ()) -> list[Candidate]:
    """Completions for the text before the cursor."""
    segment, open_quote = _current_segment(text)
    if open_quote:
        return []
    words = _words(segment.lstrip())
    word = words[-1]
    if word.startswith("$"):
        names = sorted({*variables, *_CONSTANT_VARIABLES}, key=str.casefold)
        return [Candidate("$" + n, len(word), "variable") for n in _matching(word[1:], names)]
    if len(words) == 1:
        return [
            Candidate(n, len(word), "cmdlet") for n in _matching(word, registry.command_names())
        ]
    definition = registry.find(words[0])
    if definition is None:
        return []
    info = definition.info
    if word and is_dash(word[0]) and ":" not in word:
        # Aliases too: the seed types -IntraOrgProtocolLoggingLevel, an alias of
        # IntraOrgConnectorProtocolLoggingLevel.
        names = [n for p in all_parameters(info) for n in p.names()]
        return [Candidate(word[0] + n, len(word), "parameter") for n in _matching(word[1:], names)]
    parameter_word = None
    value = word
    if word and is_dash(word[0]) and ":" in word:
        parameter_word, value = word.split(":", 1)
    elif len(words) >= 3 and words[-2] and is_dash(words[-2][0]):
        parameter_word = words[-2]
    if parameter_word is None:
        return []
    from .binding import resolve_parameter

    try:
        parameter = resolve_parameter(info, parameter_word[1:])
    except BindingError:
        return []
    if parameter.type.is_switch and ":" not in word:
        return []
    choices = parameter.type.completions() or (
        ("$true", "$false") if parameter.type.is_switch else ()
    )
    part = value.rsplit(",", 1)[-1]  # complete the last item of a comma list
    return [Candidate(c, len(part), "value") for c in _matching(part, choices)]
