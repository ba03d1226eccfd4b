"""The syntax tree of the shell language.

Nodes are frozen dataclasses that compare by content; source offsets are
kept for error messages but left out of comparisons, so that a tree parsed
from formatted text equals the tree it was formatted from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .lexer import parse_number

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class BareWord:
    """An unquoted argument such as ``Verbose`` or ``EX-NY1\\Submission``."""

    value: str
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SingleQuoted:
    value: str
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class DoubleQuoted:
    """A double-quoted string: literal text and ``$var``/``$(...)`` parts."""

    parts: tuple[str | Variable | SubExpression, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class NumberLiteral:
    """A number as written (``25``, ``0x1F``, ``10MB``); the text is kept so it prints back."""

    text: str
    offset: int = field(default=0, compare=False)

    @property
    def value(self) -> int | float:
        number = parse_number(self.text)
        if number is None:  # only the parser builds these, from text it checked
            raise ValueError(f"not a number literal: {self.text!r}")
        return number


@dataclass(frozen=True)
class Variable:
    """``$name``; ``$_`` has the name ``_``."""

    name: str
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class PropertyRef:
    """A bare property name in an OPATH-style filter (``{Status -eq "Retry"}``)."""

    name: str
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class MemberAccess:
    target: Expr
    member: str
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class MethodCall:
    target: Expr
    method: str
    arguments: tuple[Expr, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Index:
    target: Expr
    index: Expr
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ArrayLiteral:
    """``a, b, c`` (comma list)."""

    items: tuple[Expr, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Paren:
    """``( pipeline )``."""

    pipeline: Statement
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SubExpression:
    """``$( statements )``."""

    statements: tuple[Statement, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ArrayExpression:
    """``@( statements )``: always an array."""

    statements: tuple[Statement, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class HashEntry:
    key: BareWord | SingleQuoted | DoubleQuoted | NumberLiteral
    value: Statement


@dataclass(frozen=True)
class HashLiteral:
    """``@{Add="a"; Remove="b"}``."""

    entries: tuple[HashEntry, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ScriptBlock:
    """``{ statements }``."""

    statements: tuple[Statement, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary:
    """``-not x``, ``!x``, ``- x``, ``+ x``."""

    operator: str
    operand: Expr
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binary:
    """``left -op right``; ``operator`` is lower case without the dash (``eq``, ``and``, ``+``)."""

    operator: str
    left: Expr
    right: Expr
    offset: int = field(default=0, compare=False)


Expr = (
    BareWord
    | SingleQuoted
    | DoubleQuoted
    | NumberLiteral
    | Variable
    | PropertyRef
    | MemberAccess
    | MethodCall
    | Index
    | ArrayLiteral
    | Paren
    | SubExpression
    | ArrayExpression
    | HashLiteral
    | ScriptBlock
    | Unary
    | Binary
)

# ------------------------------------------------------------------ commands


@dataclass(frozen=True)
class Parameter:
    """``-Name``, ``–Name`` or ``-Name:value``.

    ``dash`` is the dash the user typed (hyphen, en dash, em dash or
    horizontal bar). ``argument`` is set only for the ``-Name:value`` form;
    ``-Name value`` is a parameter followed by a positional element, paired
    by the binder, which knows whether the parameter is a switch.
    """

    name: str
    dash: str = "-"
    argument: Expr | None = None
    offset: int = field(default=0, compare=False)


CommandElement = Parameter | Expr


@dataclass(frozen=True)
class Command:
    name: str
    elements: tuple[CommandElement, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ExpressionElement:
    """An expression as the first element of a pipeline (``$x | fl``)."""

    expression: Expr
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Pipeline:
    elements: tuple[Command | ExpressionElement, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Assignment:
    """``$name = pipeline``."""

    variable: str
    value: Pipeline
    offset: int = field(default=0, compare=False)


Statement = Pipeline | Assignment


@dataclass(frozen=True)
class Script:
    statements: tuple[Statement, ...]
