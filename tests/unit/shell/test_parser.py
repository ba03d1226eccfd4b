"""The shell language's parser: the seed's lines, the AST it builds, its errors, round trips."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitemail.shell.errors import ParseError
from sitemail.shell.lexer import BACKTICK_ESCAPES, DASHES, parse_number
from sitemail.shell.parser import parse, parse_filter
from sitemail.shell.syntax import (
    ArrayExpression,
    ArrayLiteral,
    Assignment,
    BareWord,
    Binary,
    Command,
    DoubleQuoted,
    Expr,
    ExpressionElement,
    HashEntry,
    HashLiteral,
    MemberAccess,
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
from sitemail.shell.unparse import format_script

# Every shell line in SCENARIOS.md and the specs it points to, typed as written there.
SEED_LINES = [
    "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose",
    "Set-TransportServer –IntraOrgProtocolLoggingLevel None",
    "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel None",
    'Get-Queue | Where-Object {$_.Status -eq "Retry"} | Retry-Queue',
    "Get-ReceiveConnector",
    "Test-NetConnection ex-fl1 -Port 25",
    "Retry-Queue",
    "Retry-Queue -Identity EX-NY1\\Unreachable -Resubmit $true",
    'Set-ReceiveConnector "Default EX01" -PermissionGroups '
    "ExchangeUsers,ExchangeServers,ExchangeLegacyServers,AnonymousUsers",
    "Set-OWAVirtualDirectory -FormsAuthentication:$True -ExternalURL "
    "https://euemail.exchangelaboratory.com/owa -CrossSiteRedirectType Silent "
    "-ExternalAuthenticationMethods fba",
    "Set-ActiveSyncVirtualDirectory -Identity 'CASHUB2\\Microsoft-Server-ActiveSync (Default Web "
    "Site)' -ExternalUrl https://euemail.exchangelaboratory.com/Microsoft-Server-ActiveSync",
    "Set-OwaVirtualDirectory -CrossSiteRedirectType Manual",
    '$remotesite = (Get-Queue | where {$_.LastError -like "451 4.4.0*"}).NextHopDomain',
    'Get-Queue -Filter {Status -eq "Retry"}',
    "Get-Queue -Filter {MessageCount -gt 100}",
    "Set-AdSiteLink NY-FL -ExchangeCost $null",
    "Set-AdSite FL -HubSiteEnabled $true",
    "Remove-Message -WithNDR $false",
    "Set-PopSettings -LoginType PlainTextLogin",
    "Set-TransportServer EX-NY1 -IntraOrgConnectorProtocolLoggingLevel Verbose",
    "Set-ReceiveConnector 'Default EX-FL1' -RemoteIPRanges @{Add=\"10.1.0.0/16\"}",
    "Set-ReceiveConnector 'Default EX-FL1' -AuthMechanism 'Tls, Integrated, BasicAuth, "
    "BasicAuthRequireTLS, ExchangeServer'",
    "Set-ReceiveConnector 'Default EX-FL1' -MaxMessageSize 10MB -ConnectionTimeout 00:10:00",
    "Set-TransportServer EX-NY1 -MessageExpirationTimeout 2.00:00:00",
    "Get-ReceiveConnector | fl Identity,Bindings,RemoteIPRanges,AuthMechanism,PermissionGroups",
    "Get-Queue | ft -AutoSize",
]


@pytest.mark.parametrize("line", SEED_LINES)
def test_every_scenario_line_parses_and_prints_back(line: str) -> None:
    script = parse(line)
    assert len(script.statements) == 1
    assert parse(format_script(script)) == script


def test_en_dash_parameter_of_the_seed_is_a_parameter_with_that_dash() -> None:
    script = parse(
        "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose"
    )
    (pipeline,) = script.statements
    assert isinstance(pipeline, Pipeline)
    first, second = pipeline.elements
    assert first == Command("Get-TransportServer", ())
    assert second == Command(
        "Set-TransportServer",
        (Parameter("IntraOrgProtocolLoggingLevel", "–"), BareWord("Verbose")),
    )


@pytest.mark.parametrize("dash", list(DASHES))
def test_every_dash_kind_starts_a_parameter(dash: str) -> None:
    command = parse(f"Set-X {dash}Name value").statements[0]
    assert isinstance(command, Pipeline)
    assert command.elements[0] == Command("Set-X", (Parameter("Name", dash), BareWord("value")))


def test_colon_form_binds_the_value_to_the_parameter() -> None:
    (pipeline,) = parse("Set-X -Enabled:$false -Force").statements
    assert isinstance(pipeline, Pipeline)
    assert pipeline.elements[0] == Command(
        "Set-X", (Parameter("Enabled", "-", Variable("false")), Parameter("Force"))
    )


def test_argument_mode_words_numbers_and_lists() -> None:
    (pipeline,) = parse("Set-X EX-NY1\\Default 0.0.0.0:25 10MB -1 a,b , 'c d'").statements
    assert isinstance(pipeline, Pipeline)
    command = pipeline.elements[0]
    assert isinstance(command, Command)
    assert command.elements == (
        BareWord("EX-NY1\\Default"),
        BareWord("0.0.0.0:25"),
        NumberLiteral("10MB"),
        NumberLiteral("-1"),
        ArrayLiteral((BareWord("a"), BareWord("b"), SingleQuoted("c d"))),
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("25", 25),
        ("10MB", 10 * 1024 * 1024),
        ("1KB", 1024),
        ("1.5GB", 1610612736),
        ("0x1F", 31),
        ("–5", -5),
        ("2.5", 2.5),
        ("1e3", 1000),
    ],
)
def test_number_literals_use_binary_multipliers(text: str, value: float) -> None:
    assert parse_number(text) == value


def test_hashtable_for_multivalued_properties() -> None:
    (pipeline,) = parse(
        'Set-X -RemoteIPRanges @{Add="10.0.0.1","10.0.0.2"; Remove=\'1.1.1.1\'}'
    ).statements
    assert isinstance(pipeline, Pipeline)
    command = pipeline.elements[0]
    assert isinstance(command, Command)
    hashtable = command.elements[1]
    assert isinstance(hashtable, HashLiteral)
    assert [entry.key for entry in hashtable.entries] == [BareWord("Add"), BareWord("Remove")]
    add_value = hashtable.entries[0].value
    assert add_value == Pipeline(
        (
            ExpressionElement(
                ArrayLiteral((DoubleQuoted(("10.0.0.1",)), DoubleQuoted(("10.0.0.2",))))
            ),
        )
    )


def test_script_block_comparison_precedence() -> None:
    (pipeline,) = parse("? { -not $_.Enabled -and $_.MessageCount -gt 1 + 2 }").statements
    assert isinstance(pipeline, Pipeline)
    command = pipeline.elements[0]
    assert isinstance(command, Command)
    block = command.elements[0]
    assert isinstance(block, ScriptBlock)
    (inner,) = block.statements
    assert isinstance(inner, Pipeline)
    element = inner.elements[0]
    assert isinstance(element, ExpressionElement)
    dollar = Variable("_")
    assert element.expression == Binary(
        "and",
        Unary("not", MemberAccess(dollar, "Enabled")),
        Binary(
            "gt",
            MemberAccess(dollar, "MessageCount"),
            Binary("+", NumberLiteral("1"), NumberLiteral("2")),
        ),
    )


def test_statements_split_on_semicolons_newlines_and_comments() -> None:
    script = parse("Get-A; Get-B # a comment\n\n  Get-C `\n  -Force\n<# block #> Get-D")
    names = [
        s.elements[0].name
        for s in script.statements
        if isinstance(s, Pipeline) and isinstance(s.elements[0], Command)
    ]
    assert names == ["Get-A", "Get-B", "Get-C", "Get-D"]
    third = script.statements[2]
    assert isinstance(third, Pipeline)
    assert third.elements[0] == Command("Get-C", (Parameter("Force"),))


def test_double_quoted_strings_expand_variables_and_subexpressions() -> None:
    (pipeline,) = parse(
        '"Queue $name has $($q.MessageCount) messages, `$5 and ""quotes"""'
    ).statements
    assert isinstance(pipeline, Pipeline)
    element = pipeline.elements[0]
    assert isinstance(element, ExpressionElement)
    assert element.expression == DoubleQuoted(
        (
            "Queue ",
            Variable("name"),
            " has ",
            SubExpression(
                (Pipeline((ExpressionElement(MemberAccess(Variable("q"), "MessageCount")),)),)
            ),
            ' messages, $5 and "quotes"',
        )
    )


def test_typographic_quotes_are_quotes() -> None:
    (pipeline,) = parse("Set-X “Default EX01” ‘it’’s’").statements
    assert isinstance(pipeline, Pipeline)
    assert pipeline.elements[0] == Command(
        "Set-X", (DoubleQuoted(("Default EX01",)), SingleQuoted("it’s"))
    )


def test_assignment_of_a_parenthesized_pipeline_member() -> None:
    (statement,) = parse('$x = (Get-Queue | ? {$_.Status -eq "Retry"}).NextHopDomain').statements
    assert isinstance(statement, Assignment)
    assert statement.variable == "x"
    element = statement.value.elements[0]
    assert isinstance(element, ExpressionElement)
    assert isinstance(element.expression, MemberAccess)
    assert isinstance(element.expression.target, Paren)


def test_filter_mode_reads_bare_words_as_properties() -> None:
    assert parse_filter('{Status -eq "Retry"}') == Binary(
        "eq", PropertyRef("Status"), DoubleQuoted(("Retry",))
    )
    assert parse_filter("MessageCount -gt 10 -and Status -ne 'Ready'") == Binary(
        "and",
        Binary("gt", PropertyRef("MessageCount"), NumberLiteral("10")),
        Binary("ne", PropertyRef("Status"), SingleQuoted("Ready")),
    )


@pytest.mark.parametrize(
    ("text", "message", "incomplete"),
    [
        ("Get-Queue | ? {$_.Status -eq 'Retry'", "Missing closing '}'", True),
        ("Get-Queue |", "An empty pipe element is not allowed.", True),
        ("Get-Queue | | fl", "An empty pipe element is not allowed.", False),
        ("Set-X 'abc", "The string is missing the terminator: '.", True),
        ('Set-X "abc', 'The string is missing the terminator: ".', True),
        ("Get-X | $y", "Expressions are only allowed as the first element of a pipeline.", False),
        ("($a -eq )", "You must provide a value expression following the '-eq' operator.", False),
        ("$a -foo 1", "Unexpected token '-foo' in expression or statement.", False),
        ("Set-X -Name:", "Missing an argument for parameter 'Name'", False),
        ("Set-X a,", "Missing argument in parameter list.", True),
        ("Set-X @{a}", "Missing '=' operator after key in hash literal.", False),
        ("Get-X)", "Unexpected token ')'", False),
    ],
)
def test_errors_say_what_was_wrong(text: str, message: str, incomplete: bool) -> None:
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith("At line:1 char:")
    assert caught.value.incomplete is incomplete


def test_error_position_is_line_and_column() -> None:
    with pytest.raises(ParseError) as caught:
        parse("Get-A\nGet-B | | x")
    assert (caught.value.line, caught.value.column) == (2, 9)


# ----------------------------------------------------------------- properties

_identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,6}", fullmatch=True)
_command_names = st.one_of(
    st.builds(
        "{}-{}".format, st.sampled_from(["Get", "Set", "Retry", "Test", "New"]), _identifiers
    ),
    st.sampled_from(["fl", "ft", "where", "?", "%", "select", "sort"]),
)
_numbers = st.from_regex(r"-?(0|[1-9][0-9]{0,4})(\.[0-9]{1,2})?(KB|MB|GB|kb)?", fullmatch=True)
_variables = st.builds(Variable, st.one_of(_identifiers, st.sampled_from(["_", "true", "null"])))


def _word_reads_back(value: str) -> bool:
    # A word made only of characters a backtick would turn into escapes (such as "0")
    # has no unquoted spelling that is not a number; the formatter quotes it instead.
    return not (parse_number(value) is not None and all(c in BACKTICK_ESCAPES for c in value))


_bare_words = st.text(min_size=1, max_size=8).filter(_word_reads_back).map(BareWord)
_single = st.text(max_size=8).map(SingleQuoted)


def _normalize_parts(parts: list[str | Variable | SubExpression]) -> DoubleQuoted:
    merged: list[str | Variable | SubExpression] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if merged and isinstance(merged[-1], str):
                merged[-1] = merged[-1] + part
                continue
        merged.append(part)
    return DoubleQuoted(tuple(merged))


def _expressions(statements: st.SearchStrategy[Statement]) -> st.SearchStrategy[Expr]:
    doubles = st.lists(
        st.one_of(
            st.text(max_size=6),
            _variables,
            st.builds(SubExpression, st.lists(statements, max_size=2).map(tuple)),
        ),
        max_size=4,
    ).map(_normalize_parts)
    hashes = st.lists(
        st.builds(HashEntry, st.one_of(_identifiers.map(BareWord), _single), statements),
        max_size=2,
    ).map(lambda entries: HashLiteral(tuple(entries)))
    blocks = st.lists(statements, max_size=2).map(lambda s: ScriptBlock(tuple(s)))
    parens = st.builds(Paren, statements)
    targets = st.one_of(_variables, parens)
    members = st.builds(MemberAccess, targets, _identifiers)
    primary: st.SearchStrategy[Expr] = st.one_of(
        _numbers.map(NumberLiteral),
        _single,
        doubles,
        _variables,
        members,
        parens,
        hashes,
        blocks,
        st.builds(ArrayExpression, st.lists(statements, max_size=2).map(tuple)),
    )
    array = st.one_of(
        primary,
        st.lists(primary, min_size=2, max_size=3).map(lambda items: ArrayLiteral(tuple(items))),
    )
    unary = st.one_of(array, st.builds(Unary, st.sampled_from(["not", "!", "-"]), array))

    def level(operand: st.SearchStrategy[Expr], ops: list[str]) -> st.SearchStrategy[Expr]:
        def fold(first: Expr, rest: list[tuple[str, Expr]]) -> Expr:
            for op, right in rest:
                first = Binary(op, first, right)
            return first

        return st.builds(
            fold, operand, st.lists(st.tuples(st.sampled_from(ops), operand), max_size=2)
        )

    mult = level(unary, ["*", "/", "%"])
    add = level(mult, ["+", "-"])
    cmp = level(add, ["eq", "ne", "like", "gt", "ceq", "notcontains"])
    return level(cmp, ["and", "or", "xor"])


def _arguments(statements: st.SearchStrategy[Statement]) -> st.SearchStrategy[Expr]:
    item = st.one_of(
        _bare_words,
        _single,
        _numbers.map(NumberLiteral),
        _variables,
        st.builds(MemberAccess, _variables, _identifiers),
        st.builds(Paren, statements),
        st.lists(statements, max_size=2).map(lambda s: ScriptBlock(tuple(s))),
    )
    return st.one_of(
        item, st.lists(item, min_size=2, max_size=3).map(lambda items: ArrayLiteral(tuple(items)))
    )


def _statements() -> st.SearchStrategy[Statement]:
    def extend(inner: st.SearchStrategy[Statement]) -> st.SearchStrategy[Statement]:
        arguments = _arguments(inner)
        parameters = st.builds(
            Parameter,
            _identifiers,
            st.sampled_from(list(DASHES)),
            st.one_of(st.none(), arguments),
        )
        commands = st.builds(
            Command,
            _command_names,
            st.lists(st.one_of(parameters, arguments), max_size=3).map(tuple),
        )
        first = st.one_of(commands, st.builds(ExpressionElement, _expressions(inner)))
        pipelines = st.builds(
            lambda head, rest: Pipeline((head, *rest)), first, st.lists(commands, max_size=2)
        )
        return st.one_of(pipelines, st.builds(Assignment, _identifiers, pipelines))

    leaf: st.SearchStrategy[Statement] = st.builds(
        lambda name: Pipeline((Command(name, ()),)), _command_names
    )
    return st.recursive(leaf, extend, max_leaves=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_statements(), min_size=1, max_size=3))
def test_what_the_formatter_prints_parses_back(statements: list[Statement]) -> None:
    script = Script(tuple(statements))
    text = format_script(script)
    assert parse(text) == script, text


_shellish = st.text(
    alphabet=st.sampled_from(list("$-–—{}()@;|,'\"`#<>.:=!+*/%?[] \n\tabcXYZ_019émkKMB")),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_shellish, st.text(max_size=30)))
def test_no_input_crashes_the_parser_and_what_parses_round_trips(text: str) -> None:
    try:
        script = parse(text)
    except ParseError:
        return
    assert parse(format_script(script)) == script
