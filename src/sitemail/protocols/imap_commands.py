"""IMAP command text to typed events: the lexer and one builder per command.

:func:`lex` splits a command's segments (lines and the literals between
them) into atoms, strings and parentheses, :func:`nest_values` nests the
lists, and :data:`BUILDERS` turns the arguments of each command name into its
event (:mod:`.imap_events`), raising :class:`CommandSyntaxError` for
arguments the grammar refuses.  The framing (lines, literals, states) is
:class:`~sitemail.protocols.imap.ImapServer`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sitemail.protocols.imap_events import (
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Expunge,
    Fetch,
    Idle,
    ListMailboxes,
    Login,
    Logout,
    Namespace,
    Noop,
    Rename,
    Search,
    Select,
    StartTls,
    Status,
    Store,
    Subscribe,
)
from sitemail.protocols.imap_syntax import (
    FETCH_MACROS,
    MAX_DEPTH,
    Atom,
    FetchAttribute,
    SequenceSet,
    Value,
    decode_mailbox,
    parse_fetch_attribute,
    parse_search_keys,
)


@dataclass(frozen=True, slots=True)
class LiteralSegment:
    data: bytes


_ATOM_STOP = frozenset(b' ()"{}\r\n')


class CommandSyntaxError(Exception):
    pass


def lex(segments: Sequence[bytes | LiteralSegment]) -> list[object]:
    """Tokens: Atom, bytes (strings), "(" and ")"."""
    tokens: list[object] = []
    for segment in segments:
        if isinstance(segment, LiteralSegment):
            tokens.append(segment.data)
            continue
        i, n = 0, len(segment)
        while i < n:
            c = segment[i]
            if c == 0x20:
                i += 1
            elif c in (0x28, 0x29):
                tokens.append("(" if c == 0x28 else ")")
                i += 1
            elif c == 0x22:
                out = bytearray()
                i += 1
                while True:
                    if i >= n:
                        raise CommandSyntaxError("unterminated quoted string")
                    c = segment[i]
                    if c == 0x5C and i + 1 < n:
                        out.append(segment[i + 1])
                        i += 2
                    elif c == 0x22:
                        i += 1
                        break
                    else:
                        out.append(c)
                        i += 1
                tokens.append(bytes(out))
            elif c in (0x7B, 0x7D, 0x0D, 0x0A):
                raise CommandSyntaxError("unexpected character")
            else:
                start = i
                while i < n and segment[i] not in _ATOM_STOP:
                    if segment[i] == 0x5B:  # "[": a section, which may hold spaces and parens
                        close = segment.find(b"]", i)
                        if close < 0:
                            raise CommandSyntaxError("unterminated section")
                        i = close + 1
                    else:
                        i += 1
                tokens.append(Atom(segment[start:i].decode("utf-8", errors="surrogateescape")))
    return tokens


def nest_values(tokens: list[object]) -> list[Value]:
    stack: list[list[Value]] = [[]]
    for token in tokens:
        if token == "(":
            if len(stack) > MAX_DEPTH:
                raise CommandSyntaxError("lists nested too deep")
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                raise CommandSyntaxError("unbalanced parenthesis")
            inner = stack.pop()
            stack[-1].append(inner)
        else:
            assert isinstance(token, Atom | bytes)
            stack[-1].append(token)
    if len(stack) != 1:
        raise CommandSyntaxError("unbalanced parenthesis")
    return stack[0]


# ============================================================== command builders

_BuilderFn = Callable[[str, str, list[Value]], Command]


def astring(value: Value) -> str | None:
    """An atom's or a string's text (``astring``, RFC 3501 section 9); None for a list."""
    if isinstance(value, Atom):
        return value.text
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return None


def _need(args: list[Value], count: int) -> None:
    if len(args) != count:
        raise CommandSyntaxError(f"expected {count} arguments")


def _string_arg(value: Value) -> str:
    text = astring(value)
    if text is None:
        raise CommandSyntaxError("expected a string")
    return text


def _mailbox_arg(value: Value) -> str:
    return decode_mailbox(_string_arg(value))


def flags_of(value: Value) -> tuple[str, ...] | None:
    """A flag or a parenthesized list of flags as names; None when an item is no atom."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, Atom) or not item.text:
            return None
        out.append(item.text)
    return tuple(out)


def _sequence(value: Value) -> SequenceSet:
    seq = SequenceSet.parse(value.text) if isinstance(value, Atom) else None
    if seq is None:
        raise CommandSyntaxError("bad sequence set")
    return seq


def _no_args(cls: type[Command]) -> _BuilderFn:
    def build(tag: str, name: str, args: list[Value]) -> Command:
        _need(args, 0)
        return cls(tag=tag, name=name)

    return build


def _build_login(tag: str, name: str, args: list[Value]) -> Command:
    _need(args, 2)
    return Login(tag=tag, name=name, user=_string_arg(args[0]), password=_string_arg(args[1]))


def _build_authenticate(tag: str, name: str, args: list[Value]) -> Command:
    if len(args) not in (1, 2) or not isinstance(args[0], Atom):
        raise CommandSyntaxError("AUTHENTICATE mechanism [initial-response]")
    initial = None
    if len(args) == 2:
        value = args[1]
        if isinstance(value, Atom):
            initial = value.text.encode("ascii", errors="replace")
        elif isinstance(value, bytes):
            initial = value
        else:
            raise CommandSyntaxError("bad initial response")
    return Authenticate(tag=tag, name=name, mechanism=args[0].text.upper(), initial=initial)


def _build_select(tag: str, name: str, args: list[Value]) -> Command:
    _need(args, 1)
    return Select(tag=tag, name=name, mailbox=_mailbox_arg(args[0]), readonly=name == "EXAMINE")


def _one_mailbox(cls: type[Create] | type[Delete] | type[Subscribe]) -> _BuilderFn:
    def build(tag: str, name: str, args: list[Value]) -> Command:
        _need(args, 1)
        return cls(tag=tag, name=name, mailbox=_mailbox_arg(args[0]))

    return build


def _build_rename(tag: str, name: str, args: list[Value]) -> Command:
    _need(args, 2)
    return Rename(tag=tag, name=name, mailbox=_mailbox_arg(args[0]), new_name=_mailbox_arg(args[1]))


def _build_list(tag: str, name: str, args: list[Value]) -> Command:
    _need(args, 2)
    return ListMailboxes(
        tag=tag, name=name, reference=_mailbox_arg(args[0]), pattern=_mailbox_arg(args[1])
    )


_STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"})


def _build_status(tag: str, name: str, args: list[Value]) -> Command:
    _need(args, 2)
    items = args[1]
    if not isinstance(items, list) or not items:
        raise CommandSyntaxError("STATUS mailbox (items)")
    names = []
    for item in items:
        if not isinstance(item, Atom) or item.text.upper() not in _STATUS_ITEMS:
            raise CommandSyntaxError("unknown STATUS item")
        names.append(item.text.upper())
    return Status(tag=tag, name=name, mailbox=_mailbox_arg(args[0]), items=tuple(names))


def _build_append(tag: str, name: str, args: list[Value]) -> Command:
    # APPEND's message always comes as a literal (handled while reading): a
    # complete APPEND line without one is malformed.
    raise CommandSyntaxError("APPEND needs a message literal")


def _build_expunge(tag: str, name: str, args: list[Value]) -> Command:
    _need(args, 0)
    return Expunge(tag=tag, name=name)


def _build_search(tag: str, name: str, args: list[Value], uid: bool = False) -> Command:
    charset = None
    if len(args) >= 2 and isinstance(args[0], Atom) and args[0].text.upper() == "CHARSET":
        charset = _string_arg(args[1])
        args = args[2:]
    if not args:
        raise CommandSyntaxError("SEARCH needs a key")
    keys = parse_search_keys(args)
    if not keys:
        raise CommandSyntaxError("bad search key")
    return Search(tag=tag, name=name, uid=uid, charset=charset, criteria=tuple(keys))


def _build_fetch(tag: str, name: str, args: list[Value], uid: bool = False) -> Command:
    _need(args, 2)
    sequence = _sequence(args[0])
    spec = args[1]
    items = spec if isinstance(spec, list) else [spec]
    attributes: list[FetchAttribute] = []
    for item in items:
        if not isinstance(item, Atom):
            raise CommandSyntaxError("bad FETCH item")
        macro = FETCH_MACROS.get(item.text.upper())
        if macro is not None and not isinstance(spec, list):
            attributes.extend(FetchAttribute(n) for n in macro)
            continue
        attribute = parse_fetch_attribute(item.text)
        if attribute is None:
            raise CommandSyntaxError("bad FETCH item")
        attributes.append(attribute)
    if not attributes:
        raise CommandSyntaxError("FETCH needs an item")
    if uid and not any(a.name == "UID" for a in attributes):
        attributes.insert(0, FetchAttribute("UID"))  # RFC 3501 6.4.8: UID FETCH always says it
    return Fetch(tag=tag, name=name, uid=uid, sequence=sequence, attributes=tuple(attributes))


_STORE_ITEM = re.compile(r"(?i)^([+-]?)FLAGS(\.SILENT)?$")


def _build_store(tag: str, name: str, args: list[Value], uid: bool = False) -> Command:
    if len(args) < 3 or not isinstance(args[1], Atom):
        raise CommandSyntaxError("STORE sequence item flags")
    m = _STORE_ITEM.match(args[1].text)
    if m is None:
        raise CommandSyntaxError("STORE item must be [+|-]FLAGS[.SILENT]")
    rest = args[2:]
    flags = flags_of(rest[0]) if len(rest) == 1 else flags_of(list(rest))
    if flags is None:
        raise CommandSyntaxError("bad flag list")
    return Store(
        tag=tag,
        name=name,
        uid=uid,
        sequence=_sequence(args[0]),
        mode=m.group(1),
        silent=m.group(2) is not None,
        flags=flags,
    )


def _build_copy(tag: str, name: str, args: list[Value], uid: bool = False) -> Command:
    _need(args, 2)
    return Copy(
        tag=tag, name=name, uid=uid, sequence=_sequence(args[0]), mailbox=_mailbox_arg(args[1])
    )


def _build_uid(tag: str, name: str, args: list[Value]) -> Command:
    if not args or not isinstance(args[0], Atom):
        raise CommandSyntaxError("UID command")
    sub = args[0].text.upper()
    rest = args[1:]
    if sub == "FETCH":
        return _build_fetch(tag, "UID FETCH", rest, uid=True)
    if sub == "STORE":
        return _build_store(tag, "UID STORE", rest, uid=True)
    if sub == "COPY":
        return _build_copy(tag, "UID COPY", rest, uid=True)
    if sub == "SEARCH":
        return _build_search(tag, "UID SEARCH", rest, uid=True)
    if sub == "EXPUNGE":
        _need(rest, 1)
        return Expunge(tag=tag, name="UID EXPUNGE", uids=_sequence(rest[0]))
    raise CommandSyntaxError("unknown UID command")


BUILDERS: dict[str, _BuilderFn] = {}


def _register() -> None:
    table = {
        "CAPABILITY": _no_args(Capability),
        "NOOP": _no_args(Noop),
        "LOGOUT": _no_args(Logout),
        "STARTTLS": _no_args(StartTls),
        "LOGIN": _build_login,
        "AUTHENTICATE": _build_authenticate,
        "NAMESPACE": _no_args(Namespace),
        "SELECT": _build_select,
        "EXAMINE": _build_select,
        "CREATE": _one_mailbox(Create),
        "DELETE": _one_mailbox(Delete),
        "RENAME": _build_rename,
        "SUBSCRIBE": _one_mailbox(Subscribe),
        "UNSUBSCRIBE": _one_mailbox(Subscribe),
        "LIST": _build_list,
        "LSUB": _build_list,
        "STATUS": _build_status,
        "APPEND": _build_append,
        "CHECK": _no_args(Check),
        "CLOSE": _no_args(Close),
        "UNSELECT": _no_args(Close),
        "EXPUNGE": _build_expunge,
        "SEARCH": _build_search,
        "FETCH": _build_fetch,
        "STORE": _build_store,
        "COPY": _build_copy,
        "UID": _build_uid,
        "IDLE": _no_args(Idle),
    }
    BUILDERS.update(table)


_register()
