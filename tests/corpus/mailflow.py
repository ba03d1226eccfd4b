"""Hub-to-hub mail flow with queues: failover between the destination site's hubs,
the 2010 retry ladder, delay DSNs at 4 hours, expiry at 2 days (spec 5.3), and
the tracking rows of each message; plus deliveries to the Internet.
"""

from __future__ import annotations

from tests.corpus import exchange as ex
from tests.corpus import tracking
from tests.corpus.client_sessions import outbound
from tests.corpus.org import SIZES, Hub
from tests.corpus.smtp_sessions import Message, World, hub_session

DELAY_DSN = 4 * 3600_000
EXPIRY = 2 * 86400_000
BATCH = 20
SUBJECTS = (
    "Quarterly report",
    "Re: meeting tomorrow",
    "Invoice 4471, March",
    "Budget 2024 draft",
    "FW: travel plans",
    "Lunch?",
    "Project Falcon status",
    "Re: Re: contract review",
    "Weekly sync notes",
    "Shipping confirmation",
    "Holiday schedule",
    "New starter: welcome",
    "Server maintenance window",
    'Re: "urgent" question',
    "Sales figures, week 12",
)


def new_message(w: World, origin: Hub, t: int, rcpt_domain: str | None = None) -> Message:
    rng = w.rng
    org = w.org
    domain = rcpt_domain or org.domain
    count = rng.choice((1, 1, 1, 2, 3))
    rcpts = sorted({f"{rng.choice(org.users)}@{domain}" for _ in range(count)})
    size = int(rng.lognormvariate(9.2, 1.1)) + 1500
    return Message(
        msgid=f"<{rng.getrandbits(128):032X}@{origin.fqdn}>",
        sender=f"{rng.choice(org.users)}@{org.domain}",
        rcpts=rcpts,
        size=size,
        subject=rng.choice(SUBJECTS),
        submitted=t,
        origin=origin,
    )


def _ladder(n: int) -> int:
    if n <= 4:
        return 60_000
    if n <= 10:
        return 300_000
    return 600_000


def hub_flow(w: World) -> None:
    """Background hub-to-hub traffic between (and within) every site, through the queues."""
    org = w.org
    rng = w.rng
    _, total, _, _ = SIZES[org.size]
    pairs = [(s, [h for h in site.hubs if h is not s]) for s in org.hubs for site in org.sites]
    pairs = [(s, targets) for s, targets in pairs if targets]
    if not pairs:
        return
    per_pair = total / len(pairs)
    for s, targets in pairs:
        count = max(1, int(rng.uniform(0.5, 1.5) * per_pair))
        times = [rng.randint(org.t0, org.t1) for _ in range(count)]
        begin = w.hooks.start
        if begin is not None and any(w.hooks.affects(s, r) for r in targets):
            # Mail keeps coming while the fault lasts, so its failures show.
            begin = max(begin, org.t0)
            times += [
                rng.randint(begin, max(begin, org.t1 - 600_000)) for _ in range(rng.randint(2, 5))
            ]
        for _ in range(count // 8):  # a few bursts: several messages in one session
            at = rng.randint(org.t0, org.t1)
            times += [at + rng.randint(0, 900) for _ in range(rng.randint(1, 3))]
        times.sort()
        arrivals = [new_message(w, s, t) for t in times]
        pending: list[Message] = []
        start = w.hooks.long_start
        if start is not None and start < org.t0 and all(w.hooks.affects(s, r) for r in targets):
            for _ in range(rng.randint(3, 12)):
                sub = rng.randint(max(start, org.t0 - EXPIRY - 6 * 3600_000), org.t0)
                msg = new_message(w, s, sub)
                msg.delayed = org.t0 - sub > DELAY_DSN
                pending.append(msg)
            pending.sort(key=lambda m: m.submitted)
        _run_queue(w, s, targets, arrivals, pending)


def _run_queue(
    w: World, s: Hub, targets: list[Hub], arrivals: list[Message], pending: list[Message]
) -> None:
    org = w.org
    rng = w.rng
    state = {"retry": 0, "next": None if not pending else org.t0 + rng.randint(0, 300_000)}
    i = 0
    while True:
        arrival = arrivals[i].submitted if i < len(arrivals) else None
        nxt = state["next"]
        if nxt is not None and (arrival is None or nxt <= arrival):
            state["next"] = None
            if nxt > org.t1:
                break
            _attempt(w, s, targets, nxt, pending, state)
        elif arrival is not None:
            # Messages submitted together leave in one session.
            while i < len(arrivals) and arrivals[i].submitted <= arrival + 1500:
                msg = arrivals[i]
                i += 1
                tracking.submitted(w, s, msg.submitted, msg)
                pending.append(msg)
            if state["retry"] == 0 and state["next"] is None:
                _attempt(w, s, targets, arrival + rng.randint(20, 900), pending, state)
        else:
            break


def _attempt(
    w: World,
    s: Hub,
    targets: list[Hub],
    t: int,
    pending: list[Message],
    state: dict[str, int | None],
) -> None:
    rng = w.rng
    start = rng.randrange(len(targets))
    order = targets[start:] + targets[:start]
    hooks = w.hooks
    if hooks.start is not None and t >= hooks.start:
        hit = [r for r in order if hooks.affects(s, r)]
        # The hub picks a target at random; now and then (and at least once after the
        # fault began) that is one the fault stops, before it fails over to the others.
        if hit and (not state.get("shown") or rng.random() < 0.35):
            state["shown"] = 1
            order = [hit[0]] + [r for r in order if r is not hit[0]]
    for r in order:
        ok = False
        while pending:
            batch = pending[:BATCH]
            out = hub_session(w, s, r, t, batch)
            t = out.t + rng.randint(1, 30)
            if out.status == "fail":
                break
            ok = True
            for msg in out.accepted:
                tracking.sent(w, s, r, t, msg, ex.INTRA_ORG, ex.RECIPIENT_OK)
                tracking.received(w, r, t + 5, msg, (s.ip, s.fqdn), f"{r.name}\\Default {r.name}")
                tracking.delivered(w, r, t + rng.randint(50, 900), msg)
            for msg, reply in out.refused:
                tracking.failed(w, s, t, msg, reply)
                tracking.dsn(w, s, t + 2, msg, delay=False)
            done = {id(m) for m in out.accepted} | {id(m) for m, _ in out.refused}
            pending[:] = [m for m in pending if id(m) not in done]
        if ok:
            state["retry"] = 0
            return
    retry = int(state["retry"] or 0) + 1
    state["retry"] = retry
    keep = []
    for msg in pending:
        age = t - msg.submitted
        if age >= EXPIRY:
            tracking.failed(w, s, t, msg, ex.EXPIRED, source="QUEUE")
            tracking.dsn(w, s, t + 3, msg, delay=False)
            w.count("expired")
            continue
        if age >= DELAY_DSN and not msg.delayed:
            msg.delayed = True
            tracking.dsn(w, s, t + 1, msg, delay=True)
            w.count("delay-dsn")
        keep.append(msg)
    pending[:] = keep
    state["next"] = t + _ladder(retry) + rng.randint(0, 3000)


def internet_flow(w: World, count: int, spam: list[tuple[int, Hub, Message]] | None = None) -> None:
    """Deliveries to the Internet from the hubs that are the send connector's sources.

    ``spam``: messages (time, hub, message) relayed through an open connector.
    """
    org = w.org
    rng = w.rng
    sources = [h for h in org.hubs if h.internet_out] or org.hubs[:1]
    jobs: list[tuple[int, Hub, Message]] = []
    for _ in range(count):
        s = rng.choice(sources)
        t = rng.randint(org.t0, org.t1)
        msg = new_message(w, s, t, rng.choice(org.partners))
        tracking.submitted(w, s, t, msg)
        jobs.append((t, s, msg))
    for t, s, msg in jobs + list(spam or []):
        partner = msg.rcpts[0].split("@")[1]
        mx = f"{rng.choice(('mx', 'mx1', 'mail', 'smtp'))}.{partner}"
        first = rng.choice((64, 66, 74, 81, 85, 93, 104, 188, 212, 217))
        ip = f"{first}.{rng.randint(1, 254)}.{rng.randint(0, 254)}.{rng.randint(1, 254)}"
        start = t + rng.randint(100, 3000)
        end, results = outbound(
            w, s, start, mx, ip, msg.sender, msg.rcpts, msg.size, sum(map(ord, partner))
        )
        ok = [r for r, rep in results if rep.startswith("250")]
        if ok:
            tracking.sent_out(w, s, end, msg, ok, (ip, mx))
        for rcpt, rep in results:
            if rep.startswith("5"):
                tracking.failed(w, s, end, msg, rep, rcpts=[rcpt])
                tracking.dsn(w, s, end + 2, msg, delay=False)
