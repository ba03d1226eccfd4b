"""A recursive-descent parser for the shell language.

PowerShell tokenizes differently in *argument mode* (after a command name:
``Set-X -Name EX-NY1\\Default 10MB``, where most text is a string) and in
*expression mode* (inside parentheses and script blocks:
``$_.MessageCount -gt 10``). The parser reads characters directly and picks
the mode from where it is, as PowerShell's own parser does.
"""

from __future__ import annotations

from .errors import ParseError
from .lexer import (
    ARGUMENT_ENDS,
    BACKTICK_ESCAPES,
    DOUBLE_QUOTES,
    NEWLINES,
    SINGLE_QUOTES,
    is_dash,
    is_name_char,
    is_space,
    number_prefix,
    parse_number,
)
from .syntax import (
    ArrayExpression,
    ArrayLiteral,
    Assignment,
    BareWord,
    Binary,
    Command,
    CommandElement,
    DoubleQuoted,
    Expr,
    ExpressionElement,
    HashEntry,
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

LOGICAL_OPERATORS = ("and", "or", "xor")
COMPARISON_OPERATORS = (
    "eq",
    "ne",
    "gt",
    "ge",
    "lt",
    "le",
    "like",
    "notlike",
    "match",
    "notmatch",
    "contains",
    "notcontains",
    "in",
    "notin",
)
# -ieq is -eq; -ceq is the case-sensitive -eq. The parser keeps the c prefix.
_CASE_PREFIXED = {prefix + op for op in COMPARISON_OPERATORS for prefix in ("i", "c")}
_PIPELINE_ENDS = frozenset(";|)}" + NEWLINES)
_SCOPES = ("env", "global", "script", "local", "private")


def parse(text: str) -> Script:
    """Parse a script (statements separated by ``;`` or newlines)."""
    parser = _Parser(text)
    statements = parser.statement_list(closer="")
    return Script(statements)


def parse_filter(text: str) -> Expr:
    """Parse an OPATH-style filter such as ``Status -eq "Retry"``.

    Bare words are property names; braces around the whole filter are
    optional, so a script block's text and a string both work.
    """
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        stripped = stripped[1:-1]
    parser = _Parser(stripped, filter_mode=True)
    parser.skip_space(newlines=True)
    expr = parser.expression()
    parser.skip_space(newlines=True)
    if not parser.at_end():
        parser.unexpected()
    return expr


class _Parser:
    def __init__(self, text: str, *, filter_mode: bool = False) -> None:
        self.text = text
        self.pos = 0
        self.filter_mode = filter_mode

    # ------------------------------------------------------------ low level

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def at(self, chars: str, ahead: int = 0) -> bool:
        """True if the character ``ahead`` is one of ``chars`` (never at the end)."""
        ch = self.peek(ahead)
        return ch != "" and ch in chars

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def error(
        self, message: str, offset: int | None = None, *, incomplete: bool = False
    ) -> ParseError:
        return ParseError(
            message, self.text, self.pos if offset is None else offset, incomplete=incomplete
        )

    def unexpected(self) -> ParseError:
        end = self.pos
        while (
            end < len(self.text) and not is_space(self.text[end]) and self.text[end] not in NEWLINES
        ):
            end += 1
        token = self.text[self.pos : max(end, self.pos + 1)]
        raise self.error(f"Unexpected token '{token}' in expression or statement.")

    def skip_space(self, *, newlines: bool) -> None:
        """Skip blanks, comments and line continuations (and newlines if asked)."""
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if is_space(ch) or (newlines and ch in NEWLINES):
                self.pos += 1
            elif ch == "`" and self.at(NEWLINES, 1):
                self.pos += 2
                if self.text[self.pos - 1] == "\r" and self.peek() == "\n":
                    self.pos += 1
            elif ch == "#":
                while self.pos < len(self.text) and self.text[self.pos] not in NEWLINES:
                    self.pos += 1
            elif ch == "<" and self.peek(1) == "#":
                end = self.text.find("#>", self.pos + 2)
                if end < 0:
                    raise self.error(
                        "Missing closing '#>' in comment block.", len(self.text), incomplete=True
                    )
                self.pos = end + 2
            else:
                return

    def skip_separators(self) -> None:
        while True:
            self.skip_space(newlines=True)
            if self.peek() == ";":
                self.pos += 1
            else:
                return

    # ----------------------------------------------------------- statements

    def statement_list(self, closer: str) -> tuple[Statement, ...]:
        """Statements up to ``closer`` (not consumed) or the end of the text."""
        statements: list[Statement] = []
        while True:
            self.skip_separators()
            ch = self.peek()
            if ch == "":
                if closer:
                    raise self.error(_missing_closer(closer), incomplete=True)
                return tuple(statements)
            if ch == closer:
                return tuple(statements)
            if ch in ")}":
                self.unexpected()
            statements.append(self.statement())
            self.skip_space(newlines=False)
            ch = self.peek()
            if ch not in ("", ";", closer) and ch not in NEWLINES:
                self.unexpected()

    def statement(self) -> Statement:
        start = self.pos
        if self.peek() == "$":
            saved = self.pos
            variable = self.variable()
            self.skip_space(newlines=False)
            if self.peek() == "=" and isinstance(variable, Variable):
                self.pos += 1
                self.skip_space(newlines=True)
                if self.at_end():
                    raise self.error(
                        "You must provide a value expression on the right-hand side of the "
                        "'=' operator.",
                        incomplete=True,
                    )
                return Assignment(variable.name, self.pipeline(), offset=start)
            self.pos = saved
        return self.pipeline()

    def pipeline(self) -> Pipeline:
        start = self.pos
        elements: list[Command | ExpressionElement] = [self.first_element()]
        while True:
            self.skip_space(newlines=False)
            if self.peek() != "|":
                return Pipeline(tuple(elements), offset=start)
            self.pos += 1
            self.skip_space(newlines=True)
            ch = self.peek()
            if ch == "":
                raise self.error("An empty pipe element is not allowed.", incomplete=True)
            if ch in _PIPELINE_ENDS:
                raise self.error("An empty pipe element is not allowed.")
            if self.starts_expression():
                raise self.error("Expressions are only allowed as the first element of a pipeline.")
            elements.append(self.command())

    def starts_expression(self) -> bool:
        ch = self.peek()
        if ch == "" or ch in "$(@{!" or ch in SINGLE_QUOTES or ch in DOUBLE_QUOTES or ch == "[":
            return True
        if is_dash(ch) or ch == "+":
            # -5, - $x, -not ..., +(...): an expression; -Name would be a command's parameter.
            nxt = self.peek(1)
            word = self.text[self.pos + 1 : self.pos + 4].lower()
            return (
                nxt == ""
                or nxt.isdigit()
                or nxt in ".$(!'\"{@"
                or nxt in SINGLE_QUOTES
                or nxt in DOUBLE_QUOTES
                or is_space(nxt)
                or is_dash(nxt)
                or nxt == "+"
                or (word == "not" and not is_name_char(self.peek(4)))
            )
        if ch.isdigit() or ch == ".":
            end = self.pos
            while end < len(self.text) and not _ends_argument(self.text[end]):
                end += 1
            return parse_number(self.text[self.pos : end]) is not None
        return False

    def first_element(self) -> Command | ExpressionElement:
        start = self.pos
        if self.filter_mode or self.starts_expression():
            if self.peek() == "[":
                raise self.error("Type literals such as [int] are not supported.")
            return ExpressionElement(self.expression(), offset=start)
        return self.command()

    def command(self) -> Command:
        start = self.pos
        name = self.generic_token()
        if name == "":
            self.unexpected()
        elements: list[CommandElement] = []
        while True:
            self.skip_space(newlines=False)
            ch = self.peek()
            if ch == "" or ch in _PIPELINE_ENDS:
                return Command(name, tuple(elements), offset=start)
            if is_dash(ch) and (
                (is_name_char(self.peek(1)) and not self.peek(1).isdigit()) or self.peek(1) == "?"
            ):
                elements.append(self.parameter())
            else:
                elements.append(self.argument_list())

    def parameter(self) -> Parameter:
        start = self.pos
        dash = self.peek()
        self.pos += 1
        name_start = self.pos
        while is_name_char(self.peek()) or self.at("?-"):
            self.pos += 1
        name = self.text[name_start : self.pos]
        if self.peek() == ":":
            self.pos += 1
            self.skip_space(newlines=False)
            ch = self.peek()
            if ch == "" or ch in _PIPELINE_ENDS:
                raise self.error(
                    f"Missing an argument for parameter '{name}'. Specify a value after the colon."
                )
            return Parameter(name, dash, self.argument_list(), offset=start)
        return Parameter(name, dash, None, offset=start)

    # -------------------------------------------------------- argument mode

    def argument_list(self) -> Expr:
        """One argument, or a comma list of them (``a,b, c``)."""
        start = self.pos
        items = [self.argument()]
        while True:
            saved = self.pos
            self.skip_space(newlines=False)
            if self.peek() != ",":
                self.pos = saved
                break
            self.pos += 1
            self.skip_space(newlines=True)
            ch = self.peek()
            if ch == "" or ch in _PIPELINE_ENDS or ch == ",":
                raise self.error("Missing argument in parameter list.", incomplete=ch == "")
            items.append(self.argument())
        return items[0] if len(items) == 1 else ArrayLiteral(tuple(items), offset=start)

    def argument(self) -> Expr:
        ch = self.peek()
        if ch in SINGLE_QUOTES:
            expr: Expr = self.single_quoted()
        elif ch in DOUBLE_QUOTES:
            expr = self.double_quoted()
        elif ch == "$" and (self.at("({?^$", 1) or is_name_char(self.peek(1))):
            expr = self.postfix(self.variable())
        elif ch == "(":
            expr = self.postfix(self.paren())
        elif ch == "@" and self.at("({", 1):
            expr = self.postfix(self.at_expression())
        elif ch == "{":
            expr = self.script_block()
        else:
            start = self.pos
            word = self.generic_token()
            if word == "":
                self.unexpected()
            # A backtick anywhere makes it a word: `10MB is the text "10MB".
            if parse_number(word) is not None and "`" not in self.text[start : self.pos]:
                return NumberLiteral(word, offset=start)
            return BareWord(word, offset=start)
        return expr

    def generic_token(self) -> str:
        """An unquoted word; a backtick takes the next character literally."""
        chars: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "`":
                nxt = self.peek(1)
                if nxt == "":
                    raise self.error(
                        "Missing character after the escape character '`'.", incomplete=True
                    )
                if nxt in NEWLINES:
                    break
                chars.append(BACKTICK_ESCAPES.get(nxt, nxt))
                self.pos += 2
                continue
            if is_space(ch) or ch in ARGUMENT_ENDS:
                break
            chars.append(ch)
            self.pos += 1
        return "".join(chars)

    # ------------------------------------------------------ expression mode

    def expression(self) -> Expr:
        left = self.comparison()
        while True:
            op = self.operator(LOGICAL_OPERATORS)
            if op is None:
                return left
            start = self.pos
            self.skip_space(newlines=True)
            self.require_operand(op)
            left = Binary(op, left, self.comparison(), offset=start)

    def comparison(self) -> Expr:
        left = self.additive()
        while True:
            op = self.operator(COMPARISON_OPERATORS)
            if op is None:
                return left
            start = self.pos
            self.skip_space(newlines=True)
            self.require_operand(op)
            left = Binary(op, left, self.additive(), offset=start)

    def additive(self) -> Expr:
        left = self.multiplicative()
        while True:
            saved = self.pos
            self.skip_space(newlines=False)
            ch = self.peek()
            if ch == "+" or (is_dash(ch) and not is_name_char(self.peek(1))):
                self.pos += 1
                self.skip_space(newlines=True)
                op = "+" if ch == "+" else "-"
                self.require_operand(op)
                left = Binary(op, left, self.multiplicative(), offset=saved)
            else:
                self.pos = saved
                return left

    def multiplicative(self) -> Expr:
        left = self.unary()
        while True:
            saved = self.pos
            self.skip_space(newlines=False)
            ch = self.peek()
            if ch in ("*", "/", "%") and ch != "":
                self.pos += 1
                self.skip_space(newlines=True)
                self.require_operand(ch)
                left = Binary(ch, left, self.unary(), offset=saved)
            else:
                self.pos = saved
                return left

    def operator(self, names: tuple[str, ...]) -> str | None:
        """Consume ``-name`` if it is one of ``names`` (after blanks); else consume nothing."""
        saved = self.pos
        self.skip_space(newlines=False)
        if not is_dash(self.peek()) or not self.peek(1).isalpha():
            self.pos = saved
            return None
        end = self.pos + 1
        while end < len(self.text) and self.text[end].isalpha():
            end += 1
        word = self.text[self.pos + 1 : end].lower()
        if word in names or (word in _CASE_PREFIXED and word[1:] in names):
            self.pos = end
            return word[1:] if word.startswith("i") and word in _CASE_PREFIXED else word
        known = (*LOGICAL_OPERATORS, *COMPARISON_OPERATORS, "not")
        if word not in known and word not in _CASE_PREFIXED:
            raise self.error(f"Unexpected token '-{word}' in expression or statement.")
        self.pos = saved
        return None

    def require_operand(self, op: str) -> None:
        ch = self.peek()
        if ch == "" or ch in _PIPELINE_ENDS or ch == ",":
            shown = op if op in "+-*/%" else "-" + op
            raise self.error(
                f"You must provide a value expression following the '{shown}' operator.",
                incomplete=ch == "",
            )

    def unary(self) -> Expr:
        start = self.pos
        ch = self.peek()
        if ch == "!":
            self.pos += 1
            self.skip_space(newlines=False)
            self.require_operand("!")
            return Unary("!", self.unary(), offset=start)
        if (
            is_dash(ch)
            and self.text[self.pos + 1 : self.pos + 4].lower() == "not"
            and not (is_name_char(self.peek(4)))
        ):
            self.pos += 4
            self.skip_space(newlines=True)
            self.require_operand("not")
            return Unary("not", self.unary(), offset=start)
        if (ch == "+" or is_dash(ch)) and not (self.peek(1).isdigit() or self.peek(1) == "."):
            self.pos += 1
            self.skip_space(newlines=True)
            self.require_operand(ch if ch == "+" else "-")
            return Unary("+" if ch == "+" else "-", self.unary(), offset=start)
        return self.array()

    def array(self) -> Expr:
        start = self.pos
        items = [self.postfix(self.primary())]
        while True:
            saved = self.pos
            self.skip_space(newlines=False)
            if self.peek() != ",":
                self.pos = saved
                break
            self.pos += 1
            self.skip_space(newlines=True)
            if self.at_end():
                raise self.error("Missing expression after ','.", incomplete=True)
            items.append(self.postfix(self.primary()))
        return items[0] if len(items) == 1 else ArrayLiteral(tuple(items), offset=start)

    def primary(self) -> Expr:
        start = self.pos
        ch = self.peek()
        if ch == "":
            raise self.error("Missing expression.", incomplete=True)
        if ch in SINGLE_QUOTES:
            return self.single_quoted()
        if ch in DOUBLE_QUOTES:
            return self.double_quoted()
        if ch == "$":
            return self.variable()
        if ch == "(":
            return self.paren()
        if ch == "@" and self.at("({", 1):
            return self.at_expression()
        if ch == "{":
            return self.script_block()
        length = number_prefix(self.text, self.pos)
        if length and (ch.isdigit() or ch == "." or is_dash(ch) or ch == "+"):
            end = self.pos + length
            if end < len(self.text) and is_name_char(self.text[end]):
                self.unexpected()
            self.pos = end
            return NumberLiteral(self.text[start:end], offset=start)
        if self.filter_mode and is_name_char(ch):
            while is_name_char(self.peek()):
                self.pos += 1
            return PropertyRef(self.text[start : self.pos], offset=start)
        self.unexpected()
        raise AssertionError("unreachable")

    def postfix(self, expr: Expr) -> Expr:
        """``.Member``, ``.Method(args)`` and ``[index]`` directly after an operand."""
        while True:
            start = self.pos
            ch = self.peek()
            if ch == "." and not self.peek(1).isdigit():
                self.pos += 1
                name_start = self.pos
                while is_name_char(self.peek()):
                    self.pos += 1
                if self.pos == name_start:
                    raise self.error(
                        "Missing property name after reference operator.", incomplete=self.at_end()
                    )
                name = self.text[name_start : self.pos]
                if self.peek() == "(":
                    expr = MethodCall(expr, name, self.method_arguments(), offset=start)
                else:
                    expr = MemberAccess(expr, name, offset=start)
            elif ch == "[":
                self.pos += 1
                self.skip_space(newlines=True)
                if self.peek() == "]":
                    raise self.error("Array index expression is missing or not valid.")
                index = self.expression()
                self.skip_space(newlines=True)
                if self.peek() != "]":
                    if self.at_end():
                        raise self.error(
                            "Missing ']' after array index expression.", incomplete=True
                        )
                    self.unexpected()
                self.pos += 1
                expr = Index(expr, index, offset=start)
            else:
                return expr

    def method_arguments(self) -> tuple[Expr, ...]:
        self.pos += 1  # (
        self.skip_space(newlines=True)
        if self.peek() == ")":
            self.pos += 1
            return ()
        argument = self.expression()
        self.skip_space(newlines=True)
        if self.peek() != ")":
            if self.at_end():
                raise self.error("Missing closing ')' in method call.", incomplete=True)
            self.unexpected()
        self.pos += 1
        if isinstance(argument, ArrayLiteral):
            return argument.items
        return (argument,)

    # ------------------------------------------------------------- operands

    def variable(self) -> Variable | SubExpression:
        start = self.pos
        self.pos += 1  # $
        ch = self.peek()
        if ch == "(":
            self.pos += 1
            statements = self.statement_list(closer=")")
            self.pos += 1
            return SubExpression(statements, offset=start)
        if ch == "{":
            self.pos += 1
            chars: list[str] = []
            while True:
                ch = self.peek()
                if ch == "":
                    raise self.error("Missing '}' after variable name.", incomplete=True)
                if ch == "}":
                    self.pos += 1
                    break
                if ch == "`" and self.peek(1) != "":
                    ch = self.peek(1)
                    self.pos += 1
                chars.append(ch)
                self.pos += 1
            name = "".join(chars)
            if name == "":
                raise self.error("Empty ${} variable name.", start)
            return Variable(name, offset=start)
        if ch in "?^$" and ch != "":
            self.pos += 1
            return Variable(ch, offset=start)
        name_start = self.pos
        while is_name_char(self.peek()):
            self.pos += 1
        name = self.text[name_start : self.pos]
        if name.lower() in _SCOPES and self.peek() == ":" and is_name_char(self.peek(1)):
            self.pos += 1
            while is_name_char(self.peek()):
                self.pos += 1
            name = self.text[name_start : self.pos]
        if name == "":
            raise self.error(
                "Variable reference is not valid. '$' was not followed by a valid "
                "variable name character.",
                start,
            )
        return Variable(name, offset=start)

    def paren(self) -> Paren:
        start = self.pos
        self.pos += 1
        self.skip_space(newlines=True)
        if self.peek() == ")":
            raise self.error("An expression was expected after '('.")
        if self.at_end():
            raise self.error("Missing closing ')' in expression.", incomplete=True)
        statement = self.statement()
        self.skip_space(newlines=True)
        if self.peek() != ")":
            if self.at_end():
                raise self.error("Missing closing ')' in expression.", incomplete=True)
            self.unexpected()
        self.pos += 1
        return Paren(statement, offset=start)

    def at_expression(self) -> ArrayExpression | HashLiteral:
        start = self.pos
        if self.peek(1) == "(":
            self.pos += 2
            statements = self.statement_list(closer=")")
            self.pos += 1
            return ArrayExpression(statements, offset=start)
        self.pos += 2
        entries: list[HashEntry] = []
        while True:
            self.skip_separators()
            ch = self.peek()
            if ch == "":
                raise self.error("Missing closing '}' in hash literal.", incomplete=True)
            if ch == "}":
                self.pos += 1
                return HashLiteral(tuple(entries), offset=start)
            key = self.hash_key()
            self.skip_space(newlines=False)
            if self.peek() != "=":
                raise self.error(
                    "Missing '=' operator after key in hash literal.", incomplete=self.at_end()
                )
            self.pos += 1
            self.skip_space(newlines=True)
            ch = self.peek()
            if ch == "" or ch in ";}":
                raise self.error(
                    "Missing statement after '=' in hash literal.", incomplete=ch == ""
                )
            entries.append(HashEntry(key, self.statement()))
            self.skip_space(newlines=False)
            ch = self.peek()
            if ch not in ("", ";", "}") and ch not in NEWLINES:
                self.unexpected()

    def hash_key(self) -> BareWord | SingleQuoted | DoubleQuoted | NumberLiteral:
        start = self.pos
        ch = self.peek()
        if ch in SINGLE_QUOTES:
            return self.single_quoted()
        if ch in DOUBLE_QUOTES:
            return self.double_quoted()
        while is_name_char(self.peek()) or is_dash(self.peek()):
            self.pos += 1
        word = self.text[start : self.pos]
        if word == "":
            raise self.error("Missing key before '=' in hash literal.")
        if parse_number(word) is not None:
            return NumberLiteral(word, offset=start)
        return BareWord(word, offset=start)

    def script_block(self) -> ScriptBlock:
        start = self.pos
        self.pos += 1
        statements = self.statement_list(closer="}")
        self.pos += 1
        return ScriptBlock(statements, offset=start)

    def single_quoted(self) -> SingleQuoted:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while True:
            ch = self.peek()
            if ch == "":
                raise self.error("The string is missing the terminator: '.", start, incomplete=True)
            if ch in SINGLE_QUOTES:
                if self.at(SINGLE_QUOTES, 1):
                    chars.append(ch)
                    self.pos += 2
                    continue
                self.pos += 1
                return SingleQuoted("".join(chars), offset=start)
            chars.append(ch)
            self.pos += 1

    def double_quoted(self) -> DoubleQuoted:
        start = self.pos
        self.pos += 1
        parts: list[str | Variable | SubExpression] = []
        chars: list[str] = []

        def flush() -> None:
            if chars:
                parts.append("".join(chars))
                chars.clear()

        while True:
            ch = self.peek()
            if ch == "":
                raise self.error('The string is missing the terminator: ".', start, incomplete=True)
            if ch in DOUBLE_QUOTES:
                if self.at(DOUBLE_QUOTES, 1):
                    chars.append(ch)
                    self.pos += 2
                    continue
                self.pos += 1
                flush()
                return DoubleQuoted(tuple(parts), offset=start)
            if ch == "`":
                nxt = self.peek(1)
                if nxt == "":
                    raise self.error(
                        'The string is missing the terminator: ".', start, incomplete=True
                    )
                chars.append(BACKTICK_ESCAPES.get(nxt, nxt))
                self.pos += 2
                continue
            nxt = self.peek(1)
            if ch == "$" and nxt != "" and (nxt in "({?^$" or is_name_char(nxt)):
                flush()
                parts.append(self.variable())
                continue
            chars.append(ch)
            self.pos += 1


def _missing_closer(closer: str) -> str:
    if closer == "}":
        return "Missing closing '}' in statement block or type definition."
    return "Missing closing ')' in subexpression."


def _ends_argument(ch: str) -> bool:
    return is_space(ch) or ch in ARGUMENT_ENDS
