"""FindItem's ``QueryString``: the subset of Advanced Query Syntax (AQS) Exchange 2010 evaluates.

exchangelib's ``folder.filter('subject:plan')`` sends one.  Supported, as
the 2010 QueryString reference lists them:

- **words and phrases**: ``plan``, ``"quarterly plan"``; a word matches a word of
  the property that starts with it (Exchange's content index matches
  prefixes), a phrase matches those words in a row;
- **properties**: ``from:``, ``to:``, ``cc:``, ``bcc:`` (never matches: the
  store does not keep Bcc of received mail), ``participants:`` (to, cc),
  ``subject:``, ``body:``/``content:`` (the message text, through the store's
  search), and none (subject, sender, recipients or text);
  ``subject:(product development)`` groups terms under one property;
- **dates**: ``received:`` and ``sent:`` with a date (``2024-03-01`` or
  ``3/1/2024``), a comparison (``>``, ``>=``, ``<``, ``<=``), a range
  (``3/1/2024..3/5/2024``), or ``today``, ``yesterday``, ``this week``,
  ``last week``, ``this month``, ``last month``, ``this year``, ``last year``
  (UTC days);
- **kind:** ``email`` (every item here), and the other kinds (``meetings``,
  ``tasks``, ``notes``, ``contacts``, ``docs``, ``journals``, ``im``,
  ``voicemail``, ``faxes``, ``posts``, ``rssfeeds``), which match nothing in a
  store of mail;
- **operators**: ``AND`` (also between adjacent terms), ``OR``, ``NOT``, and
  parentheses, upper case as AQS wants them.

A word with a colon in it that names no AQS keyword (``12:30``,
``v1.2:beta``, ``:x``) is a word to look for, as AQS reads a keyword it
does not know; a term with nothing to look for (``-``) looks for nothing
and matches every item, as punctuation is not in the content index.

Refused with ``ErrorUnsupportedQueryFilter`` (unverified: the code 2010
answers a query string it cannot run): the AQS keywords this server does
not evaluate (``attachment:``, ``category:``, ``importance:``,
``hasattachment:``, ``isflagged:``, ``isread:``, ``size:``), a malformed
date, unbalanced parentheses or quotes, and a query of more than
:data:`MAX_QUERY` characters.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sitemail.access.ews_responses import Refused
from sitemail.mailbox.records import Address, MessageSummary

__all__ = ["MAX_QUERY", "Query", "Search", "parse_query"]

MAX_QUERY = 1000
#: Terms one query may hold (each may cost a store search).
MAX_TERMS = 32
REFUSAL = "ErrorUnsupportedQueryFilter"

_KINDS = {
    "email",
    "meetings",
    "tasks",
    "notes",
    "contacts",
    "docs",
    "journals",
    "im",
    "voicemail",
    "faxes",
    "posts",
    "rssfeeds",
}
_DATED = {"received", "sent"}
_WORD_PROPERTIES = {
    "from",
    "to",
    "cc",
    "bcc",
    "participants",
    "subject",
    "body",
    "content",
}
#: AQS keywords Exchange's QueryString knows that this server does not evaluate.
_UNSUPPORTED = {
    "attachment",
    "attachments",
    "category",
    "importance",
    "hasattachment",
    "hasattachments",
    "isflagged",
    "isread",
    "size",
}
_TOKEN = re.compile(r'\s*(?:(\()|(\))|("[^"]*")|([^\s()"]+(?:"[^"]*")?))')

Search = Callable[[str, frozenset[str]], Awaitable[set[int]]]
"""The store's search: the ids of the folder's messages whose fields contain a text."""


def _refuse(why: str) -> Refused:
    return Refused(REFUSAL, f"The query string can't be evaluated: {why}.")


@dataclass(frozen=True)
class _Term:
    prop: str | None  # None: any of subject, sender, recipients, text
    text: str  # a word or a phrase, case folded


@dataclass(frozen=True)
class _Dates:
    prop: str  # "received" or "sent"
    low: datetime | None
    high: datetime | None  # exclusive


@dataclass(frozen=True)
class _Kind:
    email: bool


@dataclass(frozen=True)
class _Every:
    """A term with no word to look for: it restricts nothing."""


@dataclass(frozen=True)
class _Op:
    op: str  # "AND", "OR", "NOT"
    parts: tuple[_Node, ...]


_Node = _Term | _Dates | _Kind | _Every | _Op


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise _refuse("unbalanced quotes")
        out.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str], today: date) -> None:
        self.tokens = tokens
        self.pos = 0
        self.today = today
        self.terms = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def query(self) -> _Node:
        parts = [self.conjunction()]
        while self.peek() == "OR":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else _Op("OR", tuple(parts))

    def conjunction(self) -> _Node:
        parts = [self.unary()]
        while (token := self.peek()) is not None and token not in ("OR", ")"):
            if token == "AND":
                self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else _Op("AND", tuple(parts))

    def unary(self) -> _Node:
        token = self.peek()
        if token is None:
            raise _refuse("an operator lacks its term")
        if token == "NOT":
            self.take()
            return _Op("NOT", (self.unary(),))
        if token == "(":
            self.take()
            inner = self.query()
            if self.peek() != ")":
                raise _refuse("unbalanced parentheses")
            self.take()
            return inner
        if token in (")", "AND", "OR"):
            raise _refuse(f"{token} out of place")
        return self.term(self.take())

    def term(self, token: str) -> _Node:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise _refuse(f"more than {MAX_TERMS} terms")
        prop, colon, value = token.partition(":")
        prop = prop.casefold()
        known = prop in _WORD_PROPERTIES or prop in _UNSUPPORTED or prop in _DATED
        if not colon or token.startswith('"') or not (known or prop == "kind"):
            # No keyword: the whole token is text (12:30 and v1.2:beta are words).
            return _word(None, token)
        if prop in _DATED:
            if value == "" and self.peek() is not None:
                value = self.take()
            if value.casefold() in ("this", "last") and self.peek() is not None:
                value = f"{value} {self.take()}"
            return self._dates(prop, value.strip('"').strip().casefold())
        if prop == "kind":
            kind = _unquote(value).casefold()
            if kind not in _KINDS:
                raise _refuse(f"kind:{kind} is not a kind of item")
            return _Kind(kind == "email")
        if prop in _UNSUPPORTED:
            raise _refuse(f"the property {prop}: is not supported")
        if value == "":
            # subject:(product development): each term under the property.
            if self.peek() != "(":
                raise _refuse(f"{prop}: has no value")
            self.take()
            words: list[_Node] = []
            while self.peek() not in (")", None):
                words.append(_word(prop, self.take()))
            if self.peek() != ")" or not words:
                raise _refuse("unbalanced parentheses")
            self.take()
            return words[0] if len(words) == 1 else _Op("AND", tuple(words))
        return _word(prop, value)

    def _dates(self, prop: str, value: str) -> _Dates:
        for op in (">=", "<=", ">", "<"):
            if value.startswith(op):
                low, high = self._day(value[len(op) :])
                return {
                    ">=": _Dates(prop, low, None),
                    ">": _Dates(prop, high, None),
                    "<=": _Dates(prop, None, high),
                    "<": _Dates(prop, None, low),
                }[op]
        if ".." in value:
            first, _, last = value.partition("..")
            return _Dates(prop, self._day(first)[0], self._day(last)[1])
        low, high = self._day(value)
        return _Dates(prop, low, high)

    def _day(self, text: str) -> tuple[datetime, datetime]:
        """The UTC span a date word or a date stands for (end exclusive)."""
        today = self.today
        spans = {
            "today": (today, today + timedelta(days=1)),
            "yesterday": (today - timedelta(days=1), today),
        }
        week = today - timedelta(days=today.weekday())
        spans["this week"] = (week, week + timedelta(days=7))
        spans["last week"] = (week - timedelta(days=7), week)
        month = today.replace(day=1)
        spans["this month"] = (month, (month + timedelta(days=32)).replace(day=1))
        spans["last month"] = ((month - timedelta(days=1)).replace(day=1), month)
        year = today.replace(month=1, day=1)
        spans["this year"] = (year, year.replace(year=year.year + 1))
        spans["last year"] = (year.replace(year=year.year - 1), year)
        if text in spans:
            low, high = spans[text]
        else:
            low = _parse_date(text)
            high = low + timedelta(days=1)
        return _midnight(low), _midnight(high)


def _parse_date(text: str) -> date:
    for form in ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y"):
        try:
            return datetime.strptime(text, form).date()
        except ValueError:
            continue
    raise _refuse(f"{text!r} is not a date")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _word(prop: str | None, text: str) -> _Term | _Every:
    """A term looking for ``text`` (a word or a quoted phrase) in ``prop``."""
    value = _unquote(text)
    return _Term(prop, value) if re.search(r"\w", value) else _Every()


def _unquote(text: str) -> str:
    return text.strip('"').strip().casefold()


class Query:
    """A parsed query string; :meth:`predicate` binds it to one folder's text searches."""

    def __init__(self, root: _Node) -> None:
        self.root = root

    async def predicate(self, search: Search) -> Callable[[MessageSummary], bool]:
        found: dict[_Term, set[int]] = {}
        for term in _terms(self.root):
            if term.prop in ("body", "content"):
                found[term] = await search(term.text, frozenset({"text"}))
            elif term.prop is None:
                found[term] = await search(term.text, frozenset({"subject", "from", "to", "text"}))

        def test(node: _Node, s: MessageSummary) -> bool:
            if isinstance(node, _Op):
                if node.op == "NOT":
                    return not test(node.parts[0], s)
                results = (test(p, s) for p in node.parts)
                return all(results) if node.op == "AND" else any(results)
            if isinstance(node, _Kind):
                return node.email
            if isinstance(node, _Every):
                return True
            if isinstance(node, _Dates):
                when = s.received_at if node.prop == "received" else s.sent_at
                if when is None:
                    return False
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                return (node.low is None or when >= node.low) and (
                    node.high is None or when < node.high
                )
            if node in found:
                if node.prop is None and _matches(node.text, _all_words(s)):
                    return True  # prefix of a word of the subject or an address
                return s.id in found[node]
            return _matches(node.text, _words(node.prop, s))

        return lambda s: test(self.root, s)


def _terms(node: _Node) -> list[_Term]:
    if isinstance(node, _Term):
        return [node]
    if isinstance(node, _Op):
        return [t for part in node.parts for t in _terms(part)]
    return []


def _people(addresses: list[Address]) -> str:
    return " ".join(f"{a.name} {a.address}" for a in addresses)


def _words(prop: str | None, s: MessageSummary) -> str:
    sender = [] if s.from_address is None else [s.from_address]
    return {
        "from": _people(sender),
        "to": _people(s.to),
        "cc": _people(s.cc),
        "bcc": "",
        "participants": _people(s.to + s.cc),
        "subject": s.subject,
    }.get(prop or "", "")


def _all_words(s: MessageSummary) -> str:
    return " ".join(_words(p, s) for p in ("subject", "from", "participants"))


def _matches(wanted: str, text: str) -> bool:
    """Whether ``wanted`` (a word or a phrase) starts words of ``text`` (any case): its
    words in a row, the last one a prefix.  Addresses split at their punctuation, so that
    ``from:adam`` and ``from:adam@contoso.com`` both match adam@contoso.com."""
    words = re.findall(r"\w+", text.casefold())
    terms = re.findall(r"\w+", wanted)
    if not terms:
        return False
    for start in range(len(words) - len(terms) + 1):
        window = words[start : start + len(terms)]
        if window[:-1] == terms[:-1] and window[-1].startswith(terms[-1]):
            return True
    return False


def parse_query(text: str, today: date) -> Query:
    """The query a QueryString holds (Refused with the reason when it can't be run)."""
    if len(text) > MAX_QUERY:
        raise _refuse(f"it is longer than {MAX_QUERY} characters")
    tokens = _tokens(text)
    if not tokens:
        raise _refuse("it is empty")
    parser = _Parser(tokens, today)
    root = parser.query()
    if parser.peek() is not None:
        raise _refuse("unbalanced parentheses")
    return Query(root)
