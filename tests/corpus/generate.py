"""One organization's logs with its ground truth, and corpora of many."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

from tests.corpus.faults import Fault, make_fault, needs
from tests.corpus.mailflow import hub_flow
from tests.corpus.noise import background
from tests.corpus.org import SIZES, Hub, Org, make_org
from tests.corpus.smtp_sessions import FaultHooks, World
from tests.corpus.truth import CAUSES, VARIANTS, VISIBILITY, Truth, all_variants
from tests.corpus.writer import LAYOUTS, Logs, write_org


def _assign_logs(rng: random.Random, org: Org, fault: Fault, visibility: str) -> None:
    """Which servers' logs were collected (50-100 % of hubs), keeping the fault visible."""
    coverage = rng.uniform(0.5, 1.0)
    layout = rng.choice(LAYOUTS)
    for hub in org.hubs:
        has = rng.random() < coverage
        hub.log_recv = has and rng.random() < 0.9
        hub.log_send = has and rng.random() < 0.85
        hub.log_intra = hub.log_send and rng.random() < 0.8
        hub.tracking = has and rng.random() < 0.45
        hub.layout = layout if rng.random() < 0.85 else rng.choice(LAYOUTS)
    if not any(h.log_recv or h.log_send for h in org.hubs):
        org.hubs[0].log_recv = True
    if visibility in ("send", "both") and fault.senders:
        s = rng.choice(fault.senders)
        s.log_send = s.log_intra = True
    if visibility == "send":
        for r in fault.receivers:
            r.log_recv = False
    if visibility in ("recv", "both") and fault.receivers:
        rng.choice(fault.receivers).log_recv = True
    if visibility == "recv":
        for s in fault.senders:
            if fault.hooks.cause == "open-relay":
                s.log_send = False
            s.log_intra = False


def _pick(rng: random.Random, cause: str | None, variant: int | None) -> tuple[str | None, str]:
    if cause == "random":
        cause = rng.choice((None, None, *CAUSES))
    if cause is None:
        return None, "healthy"
    if cause not in VARIANTS:
        raise ValueError(f"unknown cause {cause!r}: one of {', '.join(CAUSES)}")
    names = VARIANTS[cause]
    index = rng.randrange(len(names)) if variant is None else variant % len(names)
    return cause, names[index]


def generate_org(
    root: Path,
    seed: int,
    cause: str | None = "random",
    variant: int | None = None,
    *,
    size: str = "small",
    zipped: str | None = None,
    visibility: str | None = None,
) -> Truth:
    """Write one organization's logs under ``root`` and its truth beside them.

    ``cause``: a cause id, None for a healthy control, ``"random"`` for either.
    ``variant``: index into the family's variants (None: random).  ``zipped``:
    None, ``"zip"`` (one .zip of the org folder) or ``"gz"`` (each file gzipped).
    ``visibility``: ``send``, ``recv`` or ``both`` (None: random among the variant's).
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    if zipped not in (None, "zip", "gz"):
        raise ValueError("zipped must be None, 'zip' or 'gz'")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    cause_id, label = _pick(rng, cause, variant)
    req = needs(cause_id, label) if cause_id else {}
    org = make_org(
        rng,
        seed,
        size,
        min_sites=int(req.get("min_sites", 1)),  # type: ignore[call-overload]
        min_hubs=int(req.get("min_hubs", 1)),  # type: ignore[call-overload]
        releases=req.get("releases"),
        legacy=bool(req.get("legacy")),
    )  # type: ignore[arg-type]
    world = World(org, rng, Logs(), FaultHooks())
    fault = make_fault(world, cause_id, label, rng)
    world.hooks = fault.hooks
    vis = ""
    if cause_id is not None:
        allowed = VISIBILITY[(cause_id, label)]
        vis = visibility if visibility in allowed else rng.choice(allowed)
    _assign_logs(rng, org, fault, vis)
    hub_flow(world)
    background(world)
    if fault.extra is not None:
        fault.extra(world)
    path = write_org(org, world.logs, root, zipped, SIZES[size][3])
    start = getattr(fault.hooks, "start", None)
    truth = Truth(
        name=org.name,
        path=path,
        healthy=cause_id is None,
        cause=cause_id,
        variant=label,
        subjects=fault.subjects,
        servers=tuple(h.name for h in org.hubs),
        release="+".join(org.releases),
        seed=seed,
        visible_in=vis,
        zipped=zipped,
        fault_start=None
        if start is None
        else datetime.fromtimestamp(start / 1000, UTC).isoformat(timespec="seconds"),
        notes=tuple(fault.notes)
        + _log_notes(org.hubs)
        + ("counts " + json.dumps(world.counts, sort_keys=True),),
    )
    (root / f"{org.name}.truth.json").write_text(
        json.dumps(truth.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    return truth


def _log_notes(hubs: list[Hub]) -> tuple[str, ...]:
    out = []
    for h in hubs:
        logs = [
            x
            for x, on in (
                ("recv", h.log_recv),
                ("send", h.log_send),
                ("intra", h.log_send and h.log_intra),
                ("track", h.tracking),
            )
            if on
        ]
        out.append(f"{h.name} {h.release} {h.ip} {h.site.name}: {' '.join(logs) or 'no logs'}")
    return tuple(out)


def generate_corpus(
    root: Path, count: int, seed: int, healthy: int, *, size: str = "small"
) -> list[Truth]:
    """``count`` organizations: ``healthy`` controls, every (cause, variant) round-robin,
    the rest random; a few zipped or gzipped."""
    if healthy > count:
        raise ValueError("more healthy controls than organizations")
    rng = random.Random(seed)
    plan: list[tuple[str | None, int | None]] = [(None, None)] * healthy
    faulty = count - healthy
    every = all_variants()
    for i in range(faulty):
        if i < len(every):
            cause, name = every[i]
            plan.append((cause, VARIANTS[cause].index(name)))
        else:
            plan.append(("random", None))
    rng.shuffle(plan)
    visibility_turn: dict[tuple[str, str], int] = {}
    truths = []
    for i, (cause, variant) in enumerate(plan):
        roll = rng.random()
        zipped = "zip" if roll < 0.1 else "gz" if roll < 0.2 else None
        vis = None
        if cause not in (None, "random") and variant is not None:
            key = (cause, VARIANTS[cause][variant])
            turn = visibility_turn.get(key, rng.randrange(3))
            visibility_turn[key] = turn + 1
            allowed = VISIBILITY[key]
            vis = allowed[turn % len(allowed)]
        truths.append(
            generate_org(
                root, seed * 1000 + i, cause, variant, size=size, zipped=zipped, visibility=vis
            )
        )
    return truths
