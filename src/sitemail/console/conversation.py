"""One SMTP conversation from both ends: what the sending hub logged beside what the
receiving hub logged, line against line, with the firewall's rewrite marked.

The sending hub's SmtpSend log has what it sent (``>``) and what it read
(``<``); the receiving hub's SmtpReceive log has what it read (``<``) and what
it sent (``>``).  Without anything between them, each line one hub sent is the
line the other read.  So the lines of each direction are matched (difflib on
the line sequences: equal lines pair, a replaced run pairs line by line), and
a pair whose texts differ is what the firewall rewrote: the ASA's ESMTP
inspection masks the banner with ``*`` and a keyword it does not know with
``X``... ending in ``A`` (``STARTTLS`` -> ``XXXXXXXA``).  A line one end sent
that the other never read is marked as such (the firewall stripped it, or the
connection ended first).  The characters that differ are marked on both sides.
Pure: the console asks the hubs for the two sessions (:mod:`.backend`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

Row = Mapping[str, Any]
#: (text, changed) runs of one line: changed runs are the firewall's rewrite.
Runs = list[tuple[str, bool]]

TO_RECEIVER = "to receiver"
TO_SENDER = "to sender"
NOTE = "note"


@dataclass
class Step:
    """One line of the conversation: the sender's row, the receiver's row, or both."""

    direction: str  # TO_RECEIVER, TO_SENDER or NOTE
    sender: Row | None = None
    receiver: Row | None = None
    sender_runs: Runs = field(default_factory=list)
    receiver_runs: Runs = field(default_factory=list)

    @property
    def rewritten(self) -> bool:
        return any(changed for _, changed in self.sender_runs + self.receiver_runs)

    @property
    def firewall(self) -> str:
        """What the firewall did with this line, as the two logs show it."""
        if self.direction == NOTE:
            return ""
        if self.sender is not None and self.receiver is not None:
            return "rewritten" if self.rewritten else "passed"
        if self.direction == TO_SENDER and self.receiver is not None:
            return "not read by the sending hub"
        if self.direction == TO_RECEIVER and self.sender is not None:
            return "not read by the receiving hub"
        return "not sent by the other hub"


def _runs(mine: str, theirs: str) -> Runs:
    """``mine`` cut into runs, those not in ``theirs`` marked changed.

    The ASA's inspection keeps a line's length, so two lines of one length are
    compared place by place (``STARTTLS``/``XXXXXXXA`` differ everywhere, though
    both hold an ``A``); other lines by difflib."""
    if len(mine) == len(theirs):
        flags = [a != b for a, b in zip(mine, theirs, strict=True)]
    else:
        flags = [True] * len(mine)
        matcher = SequenceMatcher(None, mine, theirs, autojunk=False)
        for tag, a1, a2, _, _ in matcher.get_opcodes():
            if tag == "equal":
                flags[a1:a2] = [False] * (a2 - a1)
    runs: Runs = []
    for char, changed in zip(mine, flags, strict=True):
        if runs and runs[-1][1] == changed:
            runs[-1] = (runs[-1][0] + char, changed)
        else:
            runs.append((char, changed))
    return runs


def _pairs(
    said: Sequence[tuple[int, Row]], heard: Sequence[tuple[int, Row]]
) -> list[tuple[tuple[int, Row] | None, tuple[int, Row] | None]]:
    """Match the lines one end said with those the other heard, in order."""
    texts_a = [str(r["data"]) for _, r in said]
    texts_b = [str(r["data"]) for _, r in heard]
    out: list[tuple[tuple[int, Row] | None, tuple[int, Row] | None]] = []
    matcher = SequenceMatcher(None, texts_a, texts_b, autojunk=False)
    for _, a1, a2, b1, b2 in matcher.get_opcodes():
        for k in range(max(a2 - a1, b2 - b1)):
            a = said[a1 + k] if a1 + k < a2 else None
            b = heard[b1 + k] if b1 + k < b2 else None
            out.append((a, b))
    return out


def align(sender_rows: Sequence[Row], receiver_rows: Sequence[Row]) -> list[Step]:
    """The conversation's steps in order: the sender's log order, with the receiver's rows
    placed just before the first step that needs them (both logs keep their own order)."""
    s_out = [(i, r) for i, r in enumerate(sender_rows) if r.get("event") == ">"]
    s_in = [(i, r) for i, r in enumerate(sender_rows) if r.get("event") == "<"]
    r_out = [(i, r) for i, r in enumerate(receiver_rows) if r.get("event") == ">"]
    r_in = [(i, r) for i, r in enumerate(receiver_rows) if r.get("event") == "<"]
    by_sender: dict[int, Step] = {}
    by_receiver: dict[int, Step] = {}
    for direction, said, heard in ((TO_RECEIVER, s_out, r_in), (TO_SENDER, r_out, s_in)):
        for a, b in _pairs(said, heard):
            sender_side, receiver_side = (a, b) if direction == TO_RECEIVER else (b, a)
            step = Step(
                direction,
                sender_side[1] if sender_side else None,
                receiver_side[1] if receiver_side else None,
            )
            if sender_side and receiver_side:
                s_text, r_text = str(sender_side[1]["data"]), str(receiver_side[1]["data"])
                step.sender_runs = _runs(s_text, r_text)
                step.receiver_runs = _runs(r_text, s_text)
            else:
                only = sender_side or receiver_side
                assert only is not None
                runs = [(str(only[1]["data"]), False)]
                step.sender_runs, step.receiver_runs = (runs, []) if sender_side else ([], runs)
            if sender_side:
                by_sender[sender_side[0]] = step
            if receiver_side:
                by_receiver[receiver_side[0]] = step
    steps: list[Step] = []
    placed: set[int] = set()
    next_receiver = 0

    def receiver_until(index: int) -> None:
        nonlocal next_receiver
        while next_receiver < index:
            if next_receiver not in placed:
                placed.add(next_receiver)
                row = receiver_rows[next_receiver]
                step = by_receiver.get(next_receiver)
                if step is None:
                    steps.append(Step(NOTE, None, row, [], [(str(row.get("data", "")), False)]))
                elif step.sender is None:
                    steps.append(step)
            next_receiver += 1

    for i, row in enumerate(sender_rows):
        paired = by_sender.get(i)
        if paired is None:
            steps.append(Step(NOTE, row, None, [(str(row.get("data", "")), False)], []))
            continue
        mate = next((k for k, s in by_receiver.items() if s is paired), None)
        if mate is not None:
            receiver_until(mate)
            placed.add(mate)
        steps.append(paired)
    receiver_until(len(receiver_rows))
    return steps


def marked_against(lines: Sequence[str], reference: Sequence[str]) -> list[Runs]:
    """Each of ``lines`` (what crossed one firewall interface) cut into runs, marked where it
    differs from the line of ``reference`` (what a hub logged) it pairs with."""
    said = [(i, {"data": t}) for i, t in enumerate(lines)]
    heard = [(i, {"data": t}) for i, t in enumerate(reference)]
    out: list[Runs] = [[(t, False)] for t in lines]
    for a, b in _pairs(said, heard):
        if a is not None:
            mine = str(a[1]["data"])
            out[a[0]] = _runs(mine, str(b[1]["data"])) if b is not None else [(mine, True)]
    return out


def rewrites(steps: Sequence[Step]) -> int:
    return sum(1 for s in steps if s.rewritten)


__all__ = ["NOTE", "TO_RECEIVER", "TO_SENDER", "Step", "align", "marked_against", "rewrites"]
