"""Runs parsed scripts: statements, pipelines that stream objects, expressions.

A :class:`Runtime` holds the session's variables, its registry and
services, and a host for its text. Each top-level statement's objects go
through Out-Default (``formatting.format_default``) to the host's output;
errors go to its error stream, worded like PowerShell's, and the statement
after an error still runs, as in PowerShell.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from . import syntax as ast
from .binding import (
    Argument,
    NamedArgument,
    PositionalArgument,
    bind_arguments,
    bind_pipeline_object,
    missing_mandatory,
    missing_message,
)
from .cmdlet import BoundParameters, Cmdlet, CmdletInfo, Invocation, ProcessResult
from .errors import (
    BindingError,
    CmdletError,
    CommandNotFoundError,
    ParseError,
    RuntimeShellError,
    ShellError,
)
from .formatting import FormattedText, format_default
from .help_text import help_lines
from .host import Host, NullHost, Stream, decorate
from .json_text import to_json
from .operators import arithmetic, call_method, compare, get_member, negate
from .parser import parse
from .records import Record
from .registry import Registry
from .scriptblock import ScriptBlockValue
from .values import to_bool, to_string
from .views import ViewRegistry

C = TypeVar("C")

_CONSTANTS: dict[str, object] = {"true": True, "false": False, "null": None}


class CommandFailure(ShellError):
    """A terminating error inside a command, already prefixed with the command's name."""


class Runtime(Generic[C]):
    def __init__(
        self,
        registry: Registry[C],
        services: C,
        host: Host | None = None,
        *,
        width: int = 120,
        json_output: bool = False,
    ) -> None:
        self.registry = registry
        self.json_output = json_output
        self.services = services
        self.host: Host = host or NullHost()
        self._width = width
        self.variables: dict[str, tuple[str, object]] = {}
        self.had_error = False

    # --------------------------------------------------- CommandInfoSource

    @property
    def views(self) -> ViewRegistry:
        return self.registry.views

    @property
    def width(self) -> int:
        return self._width

    @width.setter
    def width(self, value: int) -> None:
        self._width = max(value, 20)

    def command_infos(self) -> list[CmdletInfo]:
        return [d.info for d in self.registry.definitions()]

    def find_command(self, name: str) -> CmdletInfo | None:
        found = self.registry.find(name)
        return None if found is None else found.info

    # ------------------------------------------------------------ variables

    def get_variable(self, name: str) -> object:
        key = name.casefold()
        if key in _CONSTANTS:
            return _CONSTANTS[key]
        if key.startswith("env:"):
            return os.environ.get(name[4:])
        if key == "?":
            return not self.had_error
        entry = self.variables.get(key)
        return None if entry is None else entry[1]

    def set_variable(self, name: str, value: object) -> None:
        key = name.casefold()
        if key in _CONSTANTS or key == "?":
            raise RuntimeShellError(
                f"Cannot overwrite variable {name} because it is read-only or constant."
            )
        self.variables[key] = (name, value)

    def variable_names(self) -> list[str]:
        return [name for name, _ in self.variables.values()]

    # ------------------------------------------------------------- running

    def write(self, stream: Stream, text: str) -> None:
        if stream == "error":
            self.had_error = True
        self.host.write(stream, decorate(stream, text))

    def run(self, text: str) -> bool:
        """Parse and run ``text``; True if no error was reported."""
        self.had_error = False
        try:
            script = parse(text)
        except ParseError as error:
            self.write("error", str(error))
            return False
        for statement in script.statements:
            self.run_top_statement(statement)
        return not self.had_error

    def run_top_statement(self, statement: ast.Statement) -> None:
        objects: list[object] = []
        failure: str | None = None
        try:
            for obj in self.statement_output(statement):
                objects.append(obj)
        except ShellError as error:
            failure = str(error)
        except RecursionError:
            failure = "The script nests too deeply to run."
        except Exception as error:  # a bug must not end the session; say what happened
            failure = f"Internal error ({type(error).__name__}): {error}"
        if objects and self.json_output:
            shown = [str(o) if isinstance(o, FormattedText) else o for o in objects]
            self.write("output", to_json(shown))
        elif objects:
            lines = format_default(objects, self.views, self.width)
            if lines:
                self.write("output", "\n".join(lines))
        if failure is not None:
            self.write("error", failure)

    def collect(self, statements: Iterable[ast.Statement]) -> list[object]:
        out: list[object] = []
        for statement in statements:
            out.extend(self.statement_output(statement))
        return out

    def statement_output(self, statement: ast.Statement) -> Iterator[object]:
        if isinstance(statement, ast.Assignment):
            value = _unwrap(list(self.pipeline_output(statement.value)))
            self.set_variable(statement.variable, value)
            return iter(())
        return self.pipeline_output(statement)

    def pipeline_output(self, pipeline: ast.Pipeline) -> Iterator[object]:
        stream: Iterator[object] | None = None
        for element in pipeline.elements:
            if isinstance(element, ast.ExpressionElement):
                stream = iter(enumerate_value(self.evaluate(element.expression)))
            else:
                stream = self.run_command(element, stream)
        return stream if stream is not None else iter(())

    def invoke_block(self, block: ast.ScriptBlock, dollar_under: object) -> list[object]:
        """Run a script block with ``$_`` set; every object it writes, at once."""
        saved = self.variables.get("_")
        self.variables["_"] = ("_", dollar_under)
        try:
            return self.collect(block.statements)
        finally:
            if saved is None:
                self.variables.pop("_", None)
            else:
                self.variables["_"] = saved

    # ------------------------------------------------------------ commands

    def run_command(
        self, command: ast.Command, upstream: Iterator[object] | None
    ) -> Iterator[object]:
        definition = self.registry.find(command.name)
        if definition is None:
            raise CommandNotFoundError(command.name, self.registry.suggest(command.name))
        return self._command_stream(definition.info, definition.factory, command, upstream)

    def _command_stream(
        self,
        info: CmdletInfo,
        factory: Callable[[], Cmdlet[C]],
        command: ast.Command,
        upstream: Iterator[object] | None,
    ) -> Iterator[object]:
        name = info.name
        try:
            binding = bind_arguments(info, self._arguments(command))
        except CommandFailure:
            raise
        except ShellError as problem:
            raise CommandFailure(f"{name} : {problem}") from None
        if binding.help_requested:
            yield FormattedText(tuple(help_lines(info)))
            return
        error_action = binding.common.get("ErrorAction") or "Continue"
        warning_action = binding.common.get("WarningAction") or "Continue"
        verbose = binding.common.get("Verbose") is True

        def error(message: str) -> None:
            if error_action == "Stop":
                raise CmdletError(message)
            if error_action not in ("SilentlyContinue", "Ignore"):
                self.write("error", f"{name} : {message}")

        def warning(message: str) -> None:
            if warning_action == "Stop":
                raise CmdletError(message)
            if warning_action not in ("SilentlyContinue", "Ignore"):
                self.write("warning", message)

        def verbose_out(message: str) -> None:
            if verbose:
                self.write("verbose", message)

        invocation: Invocation[C] = Invocation(
            self.services,
            self,
            name,
            error=error,
            warning=warning,
            verbose=verbose_out,
            host=lambda text: self.write("host", text),
            what_if=binding.common.get("WhatIf") is True,
        )
        cmdlet = factory()
        static = binding.values
        try:
            missing = missing_mandatory(info, static, pipeline=upstream is not None)
            if missing:
                raise BindingError(missing_message(missing))
            params = BoundParameters(static)
            yield from _results(cmdlet.begin(params, invocation))
            if upstream is None:
                yield from _results(cmdlet.process(None, params, invocation))
            else:
                for item in upstream:
                    try:
                        extra = bind_pipeline_object(info, static, item)
                        missing = missing_mandatory(info, {**static, **extra}, pipeline=False)
                        if missing:
                            raise BindingError(missing_message(missing))
                    except BindingError as failure:
                        error(failure.message)
                        continue
                    merged = BoundParameters({**static, **extra})
                    yield from _results(cmdlet.process(item, merged, invocation))
            yield from _results(cmdlet.end(params, invocation))
        except CommandFailure:
            raise
        except ShellError as failure:
            raise CommandFailure(f"{name} : {failure}") from None
        except Exception as failure:  # a bug in a cmdlet must not end the shell session
            raise CommandFailure(
                f"{name} : Internal error ({type(failure).__name__}): {failure}"
            ) from failure

    def _arguments(self, command: ast.Command) -> list[Argument]:
        arguments: list[Argument] = []
        for element in command.elements:
            if isinstance(element, ast.Parameter):
                if element.argument is None:
                    arguments.append(NamedArgument(element.name, None, has_value=False))
                else:
                    value = self.evaluate(element.argument)
                    arguments.append(NamedArgument(element.name, value, has_value=True))
            else:
                arguments.append(PositionalArgument(self.evaluate(element)))
        return arguments

    # --------------------------------------------------------- expressions

    def evaluate(self, expr: ast.Expr) -> object:
        if isinstance(expr, ast.BareWord | ast.SingleQuoted):
            return expr.value
        if isinstance(expr, ast.NumberLiteral):
            return expr.value
        if isinstance(expr, ast.DoubleQuoted):
            return "".join(self._expand(part) for part in expr.parts)
        if isinstance(expr, ast.Variable):
            return self.get_variable(expr.name)
        if isinstance(expr, ast.PropertyRef):
            current = self.get_variable("_")
            if isinstance(current, Record) and current.has(expr.name):
                return current.get(expr.name)
            return expr.name  # an OPATH filter's unquoted value: Status -eq Retry
        if isinstance(expr, ast.MemberAccess):
            return get_member(self.evaluate(expr.target), expr.member)
        if isinstance(expr, ast.MethodCall):
            target = self.evaluate(expr.target)
            return call_method(target, expr.method, [self.evaluate(a) for a in expr.arguments])
        if isinstance(expr, ast.Index):
            return _index(self.evaluate(expr.target), self.evaluate(expr.index))
        if isinstance(expr, ast.ArrayLiteral):
            return [self.evaluate(item) for item in expr.items]
        if isinstance(expr, ast.Paren):
            statement = expr.pipeline
            if isinstance(statement, ast.Assignment):
                list(self.statement_output(statement))
                return self.get_variable(statement.variable)
            return _unwrap(list(self.pipeline_output(statement)))
        if isinstance(expr, ast.SubExpression):
            return _unwrap(self.collect(expr.statements))
        if isinstance(expr, ast.ArrayExpression):
            return self.collect(expr.statements)
        if isinstance(expr, ast.HashLiteral):
            return self._hashtable(expr)
        if isinstance(expr, ast.ScriptBlock):
            return ScriptBlockValue(expr, self.invoke_block)
        if isinstance(expr, ast.Unary):
            operand = self.evaluate(expr.operand)
            if expr.operator in ("not", "!"):
                return not to_bool(operand)
            if expr.operator == "-":
                return negate(operand)
            return arithmetic("+", 0, operand)
        if isinstance(expr, ast.Binary):
            return self._binary(expr)
        raise TypeError(f"not an expression node: {expr!r}")

    def _expand(self, part: str | ast.Variable | ast.SubExpression) -> str:
        if isinstance(part, str):
            return part
        return to_string(self.evaluate(part))

    def _hashtable(self, expr: ast.HashLiteral) -> dict[object, object]:
        table: dict[object, object] = {}
        seen: set[object] = set()
        for entry in expr.entries:
            key = self.evaluate(entry.key)
            marker = key.casefold() if isinstance(key, str) else key
            if marker in seen:
                raise RuntimeShellError(
                    f"Duplicate keys '{to_string(key)}' are not allowed in hash literals."
                )
            seen.add(marker)
            value = entry.value
            if isinstance(value, ast.Assignment):
                list(self.statement_output(value))
                table[key] = self.get_variable(value.variable)
            else:
                table[key] = _unwrap(list(self.pipeline_output(value)))
        return table

    def _binary(self, expr: ast.Binary) -> object:
        op = expr.operator
        if op == "and":
            return to_bool(self.evaluate(expr.left)) and to_bool(self.evaluate(expr.right))
        if op == "or":
            return to_bool(self.evaluate(expr.left)) or to_bool(self.evaluate(expr.right))
        left = self.evaluate(expr.left)
        right = self.evaluate(expr.right)
        if op == "xor":
            return to_bool(left) != to_bool(right)
        if op in ("+", "-", "*", "/", "%"):
            return arithmetic(op, left, right)
        return compare(op, left, right)


def enumerate_value(value: object) -> list[object]:
    """What an expression writes to the pipeline: a list's items, nothing for $null."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _unwrap(objects: list[object]) -> object:
    """A pipeline's result as a value: nothing is $null, one object is itself."""
    if not objects:
        return None
    return objects[0] if len(objects) == 1 else objects


def _results(result: ProcessResult) -> Iterable[object]:
    return () if result is None else result


def _index(target: object, index: object) -> object:
    if isinstance(target, Mapping):
        for key, value in target.items():
            if key == index or (
                isinstance(key, str)
                and isinstance(index, str)
                and key.casefold() == index.casefold()
            ):
                return value
        return None
    if isinstance(index, list):
        return [_index(target, i) for i in index]
    if isinstance(target, list | tuple | str):
        if not isinstance(index, int) or isinstance(index, bool):
            raise RuntimeShellError(
                f'Cannot convert value "{to_string(index)}" to type "System.Int32".'
            )
        try:
            return target[index]
        except IndexError:
            return None
    if target is None:
        raise RuntimeShellError("Cannot index into a null array.")
    if index == 0:
        return target  # PowerShell lets a single object be indexed as a one-item list
    return None


_filter_runtime: Runtime[None] | None = None


def evaluate_filter(expression: ast.Expr, record: Record) -> bool:
    """Whether ``record`` passes an OPATH-style filter expression."""
    global _filter_runtime
    if _filter_runtime is None:
        _filter_runtime = Runtime(Registry(builtins=False), None)
    runtime = _filter_runtime
    runtime.variables["_"] = ("_", record)
    try:
        return to_bool(runtime.evaluate(expression))
    finally:
        runtime.variables.pop("_", None)
