"""Which receive connector takes a connection, and which connector sets may coexist (spec 1.6).

1. Candidates: enabled connectors with a binding on the local port whose
   address is the local address or ``0.0.0.0``.
2. Among them the one whose RemoteIPRanges entry matching the client is the
   smallest (most specific) wins.
3. A specific-address binding beats ``0.0.0.0`` at equal specificity (spec 1.6
   item 5 leaves this undocumented; this is sitemail's documented choice).
4. No candidate covers the client: no connector, and the server closes the
   connection without a banner.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from sitemail.org.model import IPRange, ReceiveConnector, parse_binding

ANY = "0.0.0.0"


# Every connection is admitted against every connector: parse each distinct
# RemoteIPRanges / Bindings list once, not once per connection.
@functools.lru_cache(maxsize=1024)
def _ranges(texts: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((r.first, r.last) for r in map(IPRange.parse, texts))


@functools.lru_cache(maxsize=1024)
def _ports(bindings: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple(map(parse_binding, bindings))


def _best_size(connector: ReceiveConnector, remote: int) -> int | None:
    """Size of the smallest RemoteIPRanges entry that holds the client, if any."""
    sizes = [
        last - first + 1
        for first, last in _ranges(tuple(connector.remote_ip_ranges))
        if first <= remote <= last
    ]
    return min(sizes) if sizes else None


def select_connector(
    connectors: Iterable[ReceiveConnector], local_ip: str, local_port: int, remote_ip: str
) -> ReceiveConnector | None:
    remote = int(ipaddress.IPv4Address(remote_ip))
    best: tuple[int, int, str] | None = None
    chosen: ReceiveConnector | None = None
    for c in connectors:
        if not c.enabled:
            continue
        binding_rank = None
        for host, port in _ports(tuple(c.bindings)):
            if port != local_port:
                continue
            if host == local_ip:
                binding_rank = 0
            elif host == ANY and binding_rank is None:
                binding_rank = 1
        if binding_rank is None:
            continue
        size = _best_size(c, remote)
        if size is None:
            continue
        key = (size, binding_rank, c.name.lower())
        if best is None or key < best:
            best, chosen = key, c
    return chosen


def listening_endpoints(connectors: Iterable[ReceiveConnector]) -> set[tuple[str, int]]:
    """Every (address, port) the enabled connectors bind, ``0.0.0.0`` kept as is."""
    out: set[tuple[str, int]] = set()
    for c in connectors:
        if c.enabled:
            out.update(c.ports)
    return out


def conflict(
    existing: Iterable[ReceiveConnector], candidate: ReceiveConnector
) -> ReceiveConnector | None:
    """The connector of the same server that ``candidate`` may not coexist with, if any.

    Two connectors that share a binding must not have identical remote ranges,
    and ranges that overlap must be nested (spec 1.2, 1.6 item 3).
    """
    cand_bindings = {parse_binding(b) for b in candidate.bindings}
    for other in existing:
        if other.server.lower() != candidate.server.lower():
            continue
        if other.name.lower() == candidate.name.lower():
            continue
        shared = cand_bindings & {parse_binding(b) for b in other.bindings}
        if not shared:
            continue
        for a in candidate.ranges:
            for b in other.ranges:
                if (a.first, a.last) == (b.first, b.last):
                    return other
                if a.overlaps(b) and not (a.nested_in(b) or b.nested_in(a)):
                    return other
    return None


def conflict_message(candidate: ReceiveConnector, other: ReceiveConnector) -> str:
    # Wording is sitemail's (the spec gives no Exchange text for this error).
    return (
        "The values that you specified for the Bindings and RemoteIPRanges parameters "
        f'conflict with the settings on Receive connector "{other.identity}". '
        "Connectors that share a binding must have RemoteIPRanges that are different "
        "and either disjoint or nested; change the bindings or the ranges."
    )
