"""Script blocks as values (``{ $_.Status -eq "Retry" }``) and filters made from them."""

from __future__ import annotations

from collections.abc import Callable

from .records import Record
from .syntax import Expr, ScriptBlock
from .unparse import format_statements


class ScriptBlockValue:
    """A script block that can be run with ``$_`` set to an object.

    The runtime that created it runs it: ``invoke`` evaluates the whole block
    and returns every object it wrote.
    """

    type_name = "System.Management.Automation.ScriptBlock"

    def __init__(self, node: ScriptBlock, invoker: Callable[[ScriptBlock, object], list[object]]):
        self.node = node
        self._invoker = invoker

    def invoke(self, dollar_under: object = None) -> list[object]:
        return self._invoker(self.node, dollar_under)

    @property
    def text(self) -> str:
        """The block's body, as PowerShell's ScriptBlock.ToString() gives it."""
        return format_statements(self.node.statements)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"ScriptBlockValue({{ {self.text} }})"


class RecordFilter:
    """An OPATH-style filter (``-Filter {Status -eq "Retry"}``) for cmdlets to apply.

    Bare words in it are property names of the record being tested.
    """

    def __init__(self, text: str, expression: Expr) -> None:
        self.text = text
        self.expression = expression

    def matches(self, record: Record) -> bool:
        from .runtime import evaluate_filter  # late: the runtime imports the parameter types

        return evaluate_filter(self.expression, record)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"RecordFilter({self.text!r})"
