"""Runtime state from the servers' admin API: which servers to ask, and their answers as records.

The admin API already names properties as Exchange does (Identity,
DeliveryType, Status, ...); times come as ISO 8601 and are shown in local
time, as the EMS shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from sitemail.org.model import Server
from sitemail.shell import CmdletError, Record
from sitemail.shell.operators import has_wildcard, wildcard_match

from .admin_client import AdminError
from .common import Inv

_SPECIAL_QUEUES = frozenset({"submission", "unreachable", "poison"})
_TIME_KEYS = frozenset(
    {"lastretrytime", "nextretrytime", "datereceived", "expirationtime", "timestamp"}
)


def shown_time(value: object) -> object:
    """An ISO time from the API as a local time (``1/5/2024 3:04:05 PM`` when shown)."""
    if not isinstance(value, str) or not value:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone().replace(tzinfo=None)
    return moment


def api_record(type_name: str, data: Mapping[str, object]) -> Record:
    """A record of one API object: lists become tuples (shown in braces), times local."""
    props: list[tuple[str, object]] = []
    for key, value in data.items():
        if key.casefold() in _TIME_KEYS:
            value = shown_time(value)
        elif isinstance(value, list):
            value = tuple(value)
        props.append((key, value))
    return Record(type_name, props)


def server_part(identity: str) -> str | None:
    """``EX-NY1\\5`` -> ``EX-NY1``; None when the identity has no server part."""
    head, sep, _ = identity.partition("\\")
    if not sep or head.isdigit() or head.casefold() in _SPECIAL_QUEUES:
        return None
    return head


def identity_matches(pattern: str, identity: str) -> bool:
    """A queue or message identity against a pattern (any case, ``*`` wildcards)."""
    if has_wildcard(pattern):
        return wildcard_match(pattern, identity)
    return pattern.casefold() == identity.casefold()


def with_server(inv: Inv, identity: str) -> tuple[Server, str]:
    """The hub an identity lives on, and the identity with the server named.

    As in the EMS, an identity without a server part (``Submission``,
    ``5\\12``) means the server the shell runs on.
    """
    named = server_part(identity)
    if named is None:
        server = inv.services.local_server()
        return server, f"{server.name}\\{identity}"
    return _hub(inv, named), identity


def _hub(inv: Inv, name: str) -> Server:
    server = inv.services.server(name)
    if not server.is_hub:
        raise CmdletError(
            f"Server {server.name} doesn't have the Exchange 2010 Hub Transport role; it has no "
            "queues or message tracking logs."
        )
    return server


def chosen_hubs(inv: Inv, server: str | None) -> list[Server]:
    """``-Server`` if given, else every Exchange 2010 Hub Transport server."""
    return [_hub(inv, server)] if server else inv.services.hubs()


def gather(
    inv: Inv, servers: Iterable[Server], fetch: Callable[[Server], object]
) -> list[Mapping[str, object]]:
    """Every server's answer (a list of objects); a server that fails is reported, the
    others still answer (as Get-Queue does when one server is down)."""
    out: list[Mapping[str, object]] = []
    for server in servers:
        try:
            answer = fetch(server)
        except AdminError as error:
            inv.write_error(error.message)
            continue
        if isinstance(answer, list):
            out.extend(a for a in answer if isinstance(a, Mapping))
    return out
