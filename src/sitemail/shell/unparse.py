"""Turn a syntax tree back into text that parses to the same tree.

Used to show script blocks (``{ $_.Status -eq 'Retry' }``) and filters, and
by the round-trip property tests of the parser.
"""

from __future__ import annotations

from .lexer import (
    ARGUMENT_ENDS,
    BACKTICK_ESCAPES,
    DOUBLE_QUOTES,
    SINGLE_QUOTES,
    is_name_char,
    is_plain_argument,
    is_space,
    parse_number,
)
from .syntax import (
    ArrayExpression,
    ArrayLiteral,
    Assignment,
    BareWord,
    Binary,
    Command,
    DoubleQuoted,
    Expr,
    ExpressionElement,
    HashLiteral,
    Index,
    MemberAccess,
    MethodCall,
    NumberLiteral,
    Parameter,
    Paren,
    Pipeline,
    PropertyRef,
    Script,
    ScriptBlock,
    SingleQuoted,
    Statement,
    SubExpression,
    Unary,
    Variable,
)

_ESCAPES_OUT = {
    "\n": "`n",
    "\t": "`t",
    "\r": "`r",
    "\0": "`0",
    "\a": "`a",
    "\b": "`b",
    "\f": "`f",
    "\v": "`v",
    "\x1b": "`e",
}


def format_script(script: Script) -> str:
    return "\n".join(format_statement(s) for s in script.statements)


def format_statements(statements: tuple[Statement, ...]) -> str:
    return "; ".join(format_statement(s) for s in statements)


def format_statement(statement: Statement) -> str:
    if isinstance(statement, Assignment):
        return f"{format_variable_name(statement.variable)} = {format_pipeline(statement.value)}"
    return format_pipeline(statement)


def format_pipeline(pipeline: Pipeline) -> str:
    parts: list[str] = []
    for element in pipeline.elements:
        if isinstance(element, ExpressionElement):
            parts.append(format_expr(element.expression))
        else:
            parts.append(format_command(element))
    return " | ".join(parts)


def format_command(command: Command) -> str:
    words = [_escape_command_name(command.name)]
    for element in command.elements:
        if isinstance(element, Parameter):
            text = element.dash + element.name
            if element.argument is not None:
                text += ":" + format_argument(element.argument)
            words.append(text)
        else:
            words.append(format_argument(element))
    return " ".join(words)


def format_argument(expr: Expr) -> str:
    """An expression in argument mode (after a command name)."""
    if isinstance(expr, BareWord):
        return _escape_word(expr.value)
    if isinstance(expr, ArrayLiteral):
        return ",".join(format_argument(item) for item in expr.items)
    return format_expr(expr)


def format_expr(expr: Expr) -> str:
    if isinstance(expr, BareWord):
        return _escape_word(expr.value)
    if isinstance(expr, SingleQuoted):
        return quote_single(expr.value)
    if isinstance(expr, DoubleQuoted):
        return _format_double(expr)
    if isinstance(expr, NumberLiteral):
        return expr.text
    if isinstance(expr, Variable):
        return format_variable_name(expr.name)
    if isinstance(expr, PropertyRef):
        return expr.name
    if isinstance(expr, MemberAccess):
        return f"{format_expr(expr.target)}.{expr.member}"
    if isinstance(expr, MethodCall):
        arguments = ", ".join(format_expr(a) for a in expr.arguments)
        return f"{format_expr(expr.target)}.{expr.method}({arguments})"
    if isinstance(expr, Index):
        return f"{format_expr(expr.target)}[{format_expr(expr.index)}]"
    if isinstance(expr, ArrayLiteral):
        return ", ".join(format_expr(item) for item in expr.items)
    if isinstance(expr, Paren):
        return f"({format_statement(expr.pipeline)})"
    if isinstance(expr, SubExpression):
        return f"$({format_statements(expr.statements)})"
    if isinstance(expr, ArrayExpression):
        return f"@({format_statements(expr.statements)})"
    if isinstance(expr, HashLiteral):
        entries = "; ".join(
            f"{format_expr(entry.key)} = {format_statement(entry.value)}" for entry in expr.entries
        )
        return "@{" + entries + "}"
    if isinstance(expr, ScriptBlock):
        body = format_statements(expr.statements)
        return "{ " + body + " }" if body else "{}"
    if isinstance(expr, Unary):
        operand = format_expr(expr.operand)
        if expr.operator == "!":
            return "!" + operand
        if expr.operator == "not":
            return "-not " + operand
        return f"{expr.operator} {operand}"
    if isinstance(expr, Binary):
        op = expr.operator if expr.operator in ("+", "-", "*", "/", "%") else "-" + expr.operator
        return f"{format_expr(expr.left)} {op} {format_expr(expr.right)}"
    raise TypeError(f"not an expression node: {expr!r}")


def format_variable_name(name: str) -> str:
    simple = name in ("?", "^", "$") or (name != "" and all(is_name_char(c) for c in name))
    scoped = ":" in name and all(is_name_char(c) for c in name.replace(":", "", 1))
    if simple or (
        scoped and name.split(":", 1)[0].lower() in ("env", "global", "script", "local", "private")
    ):
        return "$" + name
    return "${" + name.replace("`", "``").replace("}", "`}") + "}"


def quote_single(value: str) -> str:
    """``value`` as a single-quoted string (quotes doubled)."""
    out = ["'"]
    for ch in value:
        out.append(ch + ch if ch in SINGLE_QUOTES else ch)
    out.append("'")
    return "".join(out)


def _format_double(expr: DoubleQuoted) -> str:
    out = ['"']
    parts = expr.parts
    for i, part in enumerate(parts):
        if isinstance(part, str):
            for ch in part:
                if ch in _ESCAPES_OUT:
                    out.append(_ESCAPES_OUT[ch])
                elif ch in DOUBLE_QUOTES or ch in "`$":
                    out.append("`" + ch)
                else:
                    out.append(ch)
        elif isinstance(part, Variable):
            text = format_variable_name(part.name)
            following = parts[i + 1] if i + 1 < len(parts) else None
            # "$a" then "b" must not read back as "$ab" (nor "$a:b" as a scope).
            if (
                isinstance(following, str)
                and following
                and (is_name_char(following[0]) or following[0] == ":")
                and not text.startswith("${")
            ):
                text = "${" + part.name + "}"
            out.append(text)
        else:
            out.append(format_expr(part))
    out.append('"')
    return "".join(out)


def _escape_command_name(name: str) -> str:
    """A command name, escaped so that it does not read as the start of an expression."""
    text = _escape_word(name)
    if text and text[0] in "+![$(@{" and not text.startswith("`"):
        text = "`" + text
    return text


def _escape_word(value: str) -> str:
    """A bare word, with backticks where a character would change its meaning."""
    if is_plain_argument(value):
        return value
    if value == "":
        return "''"
    out: list[str] = []
    for i, ch in enumerate(value):
        if ch in _ESCAPES_OUT:
            out.append(_ESCAPES_OUT[ch])
        elif is_space(ch) or ch in ARGUMENT_ENDS or (i == 0 and not is_plain_argument(ch + "x")):
            out.append("`" + ch)
        else:
            out.append(ch)
    text = "".join(out)
    if parse_number(value) is not None and "`" not in text:
        # "10MB" must stay a word: escape one character that a backtick leaves as it is.
        for i, ch in enumerate(text):
            if ch not in BACKTICK_ESCAPES:
                return text[:i] + "`" + text[i:]
        return quote_single(value)  # no such character ("0"): only a string can say it
    return text
