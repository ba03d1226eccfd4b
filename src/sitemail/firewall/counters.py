"""Counters the data plane keeps and the CLI shows.

The relay owns one :class:`InspectCounters` per inspected protocol and hands it
to every inspection engine it creates; the ASA CLI reads the same object when
someone types `show service-policy`.  :class:`AclHits` are the ``hitcnt`` of
`show access-list`, counted once per new connection an entry decides.
Keeping the counters in a module of their own lets the CLI show them without
importing the engine or the relay.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InspectCounters:
    """The figures on one `Inspect:` line of `show service-policy`."""

    packet: int = 0
    lock_fail: int = 0
    drop: int = 0
    reset_drop: int = 0
    five_min_pkt_rate: int = 0
    v6_fail_close: int = 0
    sctp_drop_override: int = 0
    #: Banners masked (``mask-banner``), and packets each match rule of the map matched,
    #: by its place in the map (``matched Class N``): the lines under the Inspect line.
    mask_banner: int = 0
    matched: dict[int, int] = field(default_factory=dict)

    def match(self, class_id: int) -> None:
        self.matched[class_id] = self.matched.get(class_id, 0) + 1

    def add(self, other: InspectCounters) -> None:
        """Fold another engine's figures into these (the relay sums per connection)."""
        self.packet += other.packet
        self.lock_fail += other.lock_fail
        self.drop += other.drop
        self.reset_drop += other.reset_drop
        self.v6_fail_close += other.v6_fail_close
        self.sctp_drop_override += other.sctp_drop_override
        self.mask_banner += other.mask_banner
        for class_id, count in other.matched.items():
            self.matched[class_id] = self.matched.get(class_id, 0) + count

    def clear(self) -> None:
        """What `clear service-policy` does."""
        self.packet = self.lock_fail = self.drop = self.reset_drop = 0
        self.five_min_pkt_rate = self.v6_fail_close = self.sctp_drop_override = 0
        self.mask_banner = 0
        self.matched.clear()


class AclHits:
    """``(hitcnt=N)`` per access-list entry, keyed by list name and the entry's hash."""

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], int] = {}

    def hit(self, acl: str, entry_hash: str) -> None:
        key = (acl, entry_hash)
        self._hits[key] = self._hits.get(key, 0) + 1

    def get(self, acl: str, entry_hash: str) -> int:
        return self._hits.get((acl, entry_hash), 0)

    def clear(self, acl: str | None = None) -> None:
        """``clear access-list [NAME] counters``."""
        for key in [k for k in self._hits if acl is None or k[0] == acl]:
            del self._hits[key]

    def forget(self, acl: str, entry_hash: str) -> None:
        """An entry removed and typed again starts from zero, as on the ASA."""
        self._hits.pop((acl, entry_hash), None)
