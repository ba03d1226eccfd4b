"""Whatever happens, no recipient is lost or doubled, and the store stays consistent.

A random mix of accepts, routing, deliveries with every kind of outcome,
connection failures, admin cmdlets, clock jumps, sweeps and restarts.  After
each step every recipient that was ever accepted is in exactly one place:
delivered, failed (NDR'd or removed), or still in a queue.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tests.unit.queue.queue_testkit import MAILBOX, SERVER, SHANDONG, Env, open_store

from sitemail.clock import ManualClock
from sitemail.org.model import TransportSettings
from sitemail.transport.queue import (
    InvalidQueueOperationError,
    QueueEvent,
    QueueEventKind,
    RecipientOutcome,
    RouteDecision,
    UnreachableRoute,
)
from sitemail.transport.queue.model import FailRecipient

DECISIONS: list[RouteDecision] = [
    SHANDONG,
    MAILBOX,
    UnreachableRoute("no route"),
    FailRecipient("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"),
]


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="queue-prop-"))
        clock = ManualClock()
        events: list[QueueEvent] = []
        cfg = TransportSettings()
        self.env = Env(self.dir, clock, cfg, open_store(self.dir, clock, cfg, events), events)
        self.accepted: Counter[str] = Counter()
        self.next_rcpt = 0

    def teardown(self) -> None:
        self.env.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- rules --------------------------------------------------------------

    @rule(count=st.integers(1, 3), null_sender=st.booleans())
    def submit(self, count: int, null_sender: bool) -> None:
        rcpts = [f"r{self.next_rcpt + i}@fabrikam.com" for i in range(count)]
        self.next_rcpt += count
        self.env.submit(*rcpts, sender="" if null_sender else "s@contoso.com")
        self.accepted.update(rcpts)

    @rule(choices=st.lists(st.integers(0, 3), min_size=1, max_size=8))
    def categorize(self, choices: list[int]) -> None:
        for msg in self.env.store.take_for_categorization(limit=5):
            self.env.store.route(
                msg.item_id,
                {r.id: DECISIONS[choices[i % len(choices)]] for i, r in enumerate(msg.recipients)},
            )

    @rule(outcomes=st.lists(st.integers(0, 3), min_size=1, max_size=8), drop=st.booleans())
    def deliver(self, outcomes: list[int], drop: bool) -> None:
        store = self.env.store
        for ref in store.due_queues()[:2]:
            batch = store.take_batch(ref.queue_id, limit=3)
            if batch is None:
                continue
            try:
                if drop:
                    store.report_connection_failure(batch.lease, "421 4.2.1 Unable to connect")
                    continue
                store.mark_connected(batch.lease)
                for j, msg in enumerate(batch.messages):
                    results = []
                    for i, r in enumerate(msg.recipients):
                        kind = outcomes[(i + j) % len(outcomes)]
                        if kind == 0:
                            results.append(RecipientOutcome.delivered(r.id))
                        elif kind == 1:
                            results.append(RecipientOutcome.failed(r.id, "550 5.1.1 User unknown"))
                        elif kind == 2:
                            results.append(RecipientOutcome.deferred(r.id, "451 4.3.0 Later"))
                        # 3: no word about this recipient: it stays queued
                    store.report(batch.lease, msg.item_id, results)
            finally:
                store.finish(batch.lease)

    @rule(minutes=st.sampled_from([1, 5, 30, 240, 1440, 2900]))
    def advance_and_sweep(self, minutes: int) -> None:
        self.env.clock.advance(timedelta(minutes=minutes))
        self.env.store.sweep()

    @rule(pick=st.integers(0, 50), suspend=st.booleans())
    def toggle_queue(self, pick: int, suspend: bool) -> None:
        queues = [q for q in self.env.store.get_queues() if not q.identity.endswith("Poison")]
        queue = queues[pick % len(queues)]
        if suspend:
            self.env.store.suspend_queue(queue.identity)
        else:
            self.env.store.resume_queue(queue.identity)

    @rule(pick=st.integers(0, 50), action=st.sampled_from(["suspend", "resume", "ndr", "silent"]))
    def message_cmdlet(self, pick: int, action: str) -> None:
        messages = self.env.store.get_messages()
        if not messages:
            return
        identity = messages[pick % len(messages)].identity
        try:
            if action == "suspend":
                self.env.store.suspend_message(identity)
            elif action == "resume":
                self.env.store.resume_message(identity)
            else:
                self.env.store.remove_message(identity, with_ndr=action == "ndr")
        except InvalidQueueOperationError:
            pass  # Submission messages, resuming what is not suspended...

    @rule()
    def resubmit_unreachable(self) -> None:
        self.env.store.resubmit_unreachable()

    @precondition(lambda self: self.next_rcpt > 0)
    @rule()
    def restart(self) -> None:
        self.env.reopen()

    # --- invariants ---------------------------------------------------------

    @invariant()
    def every_recipient_is_in_exactly_one_place(self) -> None:
        done: Counter[str] = Counter()
        for e in self.env.events:
            if e.kind in (QueueEventKind.DELIVERED, QueueEventKind.FAILED, QueueEventKind.REMOVED):
                done.update(r for r in e.recipients if r.startswith("r"))
        queued: Counter[str] = Counter(
            r for m in self.env.store.get_messages() for r in m.recipients if r.startswith("r")
        )
        assert max(done.values(), default=1) == 1, "a recipient was finished twice"
        assert max(queued.values(), default=1) == 1, "a recipient is queued twice"
        assert not set(done) & set(queued), "a finished recipient is still queued"
        assert done + queued == self.accepted

    @invariant()
    def counts_and_files_agree(self) -> None:
        store = self.env.store
        messages = store.get_messages()
        for queue in store.get_queues():
            assert queue.message_count == len(store.get_messages(queue.identity))
        # Small bodies live in the database until a reader wants a file; no file is
        # ever without its message, and every message's body can be read.
        spool = list((self.dir / "queue" / "spool").iterdir())
        assert len(spool) <= len({m.internet_message_id for m in messages})
        for message in messages:
            assert b"Message-ID: " + message.internet_message_id.encode() in (
                store.export_message(message.identity)
            )
        assert store.get_queue(f"{SERVER}\\Submission") is not None


QueueMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueMachine = QueueMachine.TestCase
