"""Per-inspection counters, as `show service-policy` prints them.

The relay owns one :class:`InspectCounters` per inspected protocol and hands it
to every inspection engine it creates; the ASA CLI reads the same object when
someone types `show service-policy`.  Keeping the counters in a module of
their own lets the CLI show them without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def add(self, other: InspectCounters) -> None:
        """Fold another engine's figures into these (the relay sums per connection)."""
        self.packet += other.packet
        self.lock_fail += other.lock_fail
        self.drop += other.drop
        self.reset_drop += other.reset_drop
        self.v6_fail_close += other.v6_fail_close
        self.sctp_drop_override += other.sctp_drop_override

    def clear(self) -> None:
        """What `clear service-policy` does."""
        self.packet = self.lock_fail = self.drop = self.reset_drop = 0
        self.five_min_pkt_rate = self.v6_fail_close = self.sctp_drop_override = 0
