"""Access lists on the ASA console: typed lines into the model, the model into ``show access-list``.

A line is matched by the configuration-mode tree (:mod:`.asa_cli_trees`)
both when someone types it and when a saved startup-config is read back
(:mod:`.asa_parse`), so there is one grammar for ``access-list`` and
``access-group``.  :func:`entry_from_path` turns a matched path into an
entry; the functions after it change an :class:`~.asa_model.AsaConfig` the
way the ASA does and return what the console prints ("" for nothing).
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass

from sitemail.firewall import asa_cli_text as say
from sitemail.firewall.acl import (
    AccessGroup,
    AccessList,
    Ace,
    AddressSpec,
    Entry,
    Remark,
    ace_hash,
    port_number,
)
from sitemail.firewall.asa_cli_grammar import ARG, Matched
from sitemail.firewall.asa_model import AsaConfig
from sitemail.firewall.counters import AclHits

__all__ = [
    "AclWordError",
    "ParsedEntry",
    "access_list_report",
    "add_entry",
    "bind",
    "configure",
    "entry_from_path",
    "flow_filter_from_path",
    "remove_entry",
    "remove_list",
    "unbind",
]


class AclWordError(ValueError):
    """A word of an ``access-list`` line the ASA refuses: where (path index) and, if any, why."""

    def __init__(self, index: int, message: str = "") -> None:
        super().__init__(message or f"bad word at {index}")
        self.index = index
        self.message = message


@dataclass(frozen=True)
class ParsedEntry:
    """``access-list NAME [line N] ENTRY`` as typed; ``entry`` None for ``no access-list NAME``."""

    name: str
    entry: Entry | None
    line: int | None = None


class _Cursor:
    """Walks a matched path (keywords and ``*``) with its free words."""

    def __init__(self, found: Matched, start: int) -> None:
        self.path = found.path
        self.args = found.args
        self.i = start
        self.arg = found.path[:start].count(ARG)

    def peek(self) -> str | None:
        return self.path[self.i] if self.i < len(self.path) else None

    def keyword(self) -> str:
        self.i += 1
        return self.path[self.i - 1]

    def word(self) -> tuple[str, int]:
        """The next free word and its path index."""
        assert self.path[self.i] == ARG
        self.i += 1
        self.arg += 1
        return self.args[self.arg - 1], self.i - 1


def _ip(cursor: _Cursor) -> tuple[str, int]:
    value, index = cursor.word()
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise AclWordError(index) from None
    return value, index


def _address(cursor: _Cursor) -> AddressSpec:
    head = cursor.peek()
    if head in ("any", "any4"):
        cursor.keyword()
        return AddressSpec(head)  # type: ignore[arg-type]
    if head == "host":
        cursor.keyword()
        return AddressSpec("host", _ip(cursor)[0])
    address, at = _ip(cursor)
    mask, mask_at = _ip(cursor)
    try:
        network = ipaddress.IPv4Network(f"0.0.0.0/{mask}")
    except ValueError:
        raise AclWordError(mask_at) from None
    if int(ipaddress.IPv4Address(address)) & ~int(network.netmask) & 0xFFFFFFFF:
        raise AclWordError(at, say.address_mask_mismatch(address, mask))
    return AddressSpec.network(address, mask)


def _port(cursor: _Cursor) -> int:
    cursor.keyword()  # eq
    value, index = cursor.word()
    number = port_number(value)
    if number is None:
        raise AclWordError(index)
    return number


def entry_from_path(found: Matched, start: int) -> ParsedEntry:
    """The entry of a matched ``access-list`` line; ``path[start]`` is ``access-list``."""
    cursor = _Cursor(found, start + 1)
    name, _ = cursor.word()
    line: int | None = None
    if cursor.peek() is None:
        return ParsedEntry(name, None)
    if cursor.peek() == "line":
        cursor.keyword()
        value, index = cursor.word()
        if not value.isdigit() or int(value) < 1:
            raise AclWordError(index)
        line = int(value)
    if cursor.keyword() == "remark":
        return ParsedEntry(name, Remark(cursor.word()[0]), line)
    action = cursor.keyword()
    return ParsedEntry(name, _ace(cursor, action), line)


def _ace(cursor: _Cursor, action: str) -> Ace:
    protocol = cursor.keyword()
    source = _address(cursor)
    source_port = _port(cursor) if cursor.peek() == "eq" else None
    destination = _address(cursor)
    destination_port = _port(cursor) if cursor.peek() == "eq" else None
    log = cursor.peek() == "log"
    return Ace(
        action,  # type: ignore[arg-type]
        protocol,  # type: ignore[arg-type]
        source,
        destination,
        source_port,
        destination_port,
        log,
    )


def flow_filter_from_path(found: Matched, start: int) -> Ace:
    """``tcp|ip SRC [eq P] DST [eq P]`` from ``path[start]`` on (a capture's ``match``),
    as a permit entry.  Raises :class:`AclWordError` for a bad address or port."""
    return _ace(_Cursor(found, start), "permit")


# --- changing the configuration -------------------------------------------------------------


def configure(config: AsaConfig, found: Matched, hits: AclHits) -> str:
    """An ``access-list`` or ``access-group`` line of configuration mode, or its ``no``.

    Raises :class:`AclWordError` for a word the ASA refuses.
    """
    negate = found.path[0] == "no"
    body = found.path[1:] if negate else found.path
    if body[0] == "access-group":
        name, interface = found.args
        if negate:
            return unbind(config, name, interface)
        if interface not in config.nameifs():
            raise AclWordError(len(found.path) - 1)
        return bind(config, name, interface)
    parsed = entry_from_path(found, 1 if negate else 0)
    if not negate:
        return add_entry(config, parsed)
    if parsed.entry is None:
        return remove_list(config, parsed.name, hits)
    return remove_entry(config, parsed, hits)


def add_entry(config: AsaConfig, parsed: ParsedEntry) -> str:
    """``access-list NAME [line N] ENTRY``: append (or insert at line N) a new entry."""
    assert parsed.entry is not None
    acl = config.access_list(parsed.name)
    if acl is None:
        acl = AccessList(parsed.name)
        config.access_lists.append(acl)
    if isinstance(parsed.entry, Ace) and parsed.entry in acl.entries:
        return say.duplicate_ace(acl.name)
    if parsed.line is None or parsed.line > len(acl.entries):
        acl.entries.append(parsed.entry)
    else:
        acl.entries.insert(parsed.line - 1, parsed.entry)
    return ""


def remove_entry(config: AsaConfig, parsed: ParsedEntry, hits: AclHits) -> str:
    """``no access-list NAME ENTRY``: the entry goes; an emptied list goes unless it is bound."""
    assert parsed.entry is not None
    acl = config.access_list(parsed.name)
    if acl is None:
        return say.missing("access-list", parsed.name)
    if parsed.entry not in acl.entries:
        return say.NO_SUCH_ACE
    acl.entries.remove(parsed.entry)
    if isinstance(parsed.entry, Ace):
        hits.forget(acl.name, ace_hash(acl.name, parsed.entry))
    bound = any(g.acl == acl.name for g in config.access_groups)
    if not acl.entries and not bound:
        # [unv] an ASA list exists while it has lines; a bound one stays, denying everything.
        config.access_lists.remove(acl)
    return ""


def remove_list(config: AsaConfig, name: str, hits: AclHits) -> str:
    """``no access-list NAME``: every line of the list, unless an access group uses it."""
    acl = config.access_list(name)
    if acl is None:
        return say.missing("access-list", name)
    if any(g.acl == name for g in config.access_groups):
        return say.in_use("access-list", name)
    config.access_lists.remove(acl)
    hits.clear(name)
    return ""


def bind(config: AsaConfig, acl: str, interface: str) -> str:
    """``access-group ACL in interface IF``: replaces the interface's inbound group."""
    found = config.access_list(acl)
    if found is None:
        return say.missing("access-list", acl)
    if not found.aces:
        return say.empty_access_list(acl)
    current = config.access_group(interface)
    if current is not None:
        config.access_groups.remove(current)
    config.access_groups.append(AccessGroup(acl, interface))
    return ""


def unbind(config: AsaConfig, acl: str, interface: str) -> str:
    """``no access-group ACL in interface IF``."""
    current = config.access_group(interface)
    if current is not None and current.acl == acl:
        config.access_groups.remove(current)
    return ""


# --- show access-list -----------------------------------------------------------------------

# [obs] the two lines ``show access-list`` starts with (public 8.x/9.x output).
REPORT_HEAD = (
    "access-list cached ACL log flows: total 0, denied 0 (deny-flow-max 4096)\n"
    "            alert-interval 300\n"
)


def _name_hash(name: str) -> str:
    return f"0x{zlib.crc32(name.encode()):08x}"


def _entry_line(acl: AccessList, number: int, entry: Entry, hits: AclHits) -> str:
    head = f"access-list {acl.name} line {number} "
    if isinstance(entry, Remark):
        return f"{head}{entry.text()}\n"
    text = entry.text()
    if entry.log:
        # The ASA spells out the default level and interval of ``log`` here [obs].
        text = f"{text} informational interval 300"
    entry_hash = ace_hash(acl.name, entry)
    return f"{head}{text} (hitcnt={hits.get(acl.name, entry_hash)}) {entry_hash}\n"


def access_list_report(config: AsaConfig, hits: AclHits, name: str | None = None) -> str:
    """``show access-list [NAME]``: each list, its entries numbered, with hit counts."""
    lists = [a for a in config.access_lists if name is None or a.name == name]
    if name is not None and not lists:
        return say.missing("access-list", name)
    out = [REPORT_HEAD]
    for acl in lists:
        out.append(
            f"access-list {acl.name}; {len(acl.aces)} elements; name hash: {_name_hash(acl.name)}\n"
        )
        out += [_entry_line(acl, n, e, hits) for n, e in acl.numbered()]
    return "".join(out)
