"""The cause families: each fault changes a connector, the path, or a server, from a
start time on, and says which subjects a correct report may name.

``make_fault`` returns a :class:`Fault`: the hooks the session engine asks,
the subjects, the hubs whose logs show it (``senders`` in their SmtpSend log,
``receivers`` in their SmtpReceive log) and any traffic of its own (the
spammers of an open relay, the Internet senders refused by a connector that
lost AnonymousUsers).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tests.corpus import exchange as ex
from tests.corpus import tracking
from tests.corpus.client_sessions import anon_mail
from tests.corpus.mailflow import internet_flow
from tests.corpus.middlebox import Middlebox
from tests.corpus.noise import _bot_name, entry, inbound, public_ip
from tests.corpus.org import ALL, CLIENT_AUTH, Connector, Hub, Org, add_relay, ip2int
from tests.corpus.smtp_sessions import FaultHooks, Message, World

HOUR = 3600_000


class Hooks(FaultHooks):
    def __init__(self, cause: str, start: int, t0: int) -> None:
        self.cause = cause
        self.start = start
        self.long_start = start if start < t0 else None
        self.pairs: set[tuple[str, str]] = set()
        self.box: Middlebox | None = None
        self.tls_broken: str | None = None
        self.cert_missing: str | None = None
        self.kerb: tuple[str, str] | None = None
        self.drop = "dropped"

    def affects(self, s: Hub, r: Hub) -> bool:
        return (s.name, r.name) in self.pairs

    def middlebox(self, s: Hub, r: Hub, t: int) -> Middlebox | None:
        if self.box is not None and t >= self.start and (s.name, r.name) in self.pairs:
            return self.box
        return None

    def sender_cert_missing(self, s: Hub, t: int) -> bool:
        return t >= self.start and s.name == self.cert_missing

    def receiver_tls_broken(self, r: Hub, t: int) -> bool:
        return t >= self.start and r.name == self.tls_broken

    def kerberos(self, s: Hub, r: Hub, t: int) -> str | None:
        if (
            self.kerb is not None
            and t >= self.start
            and r.name == self.kerb[0]
            and s.name != r.name
        ):
            return self.kerb[1]
        return None

    def drop_style(self) -> str:
        return self.drop


@dataclass
class Fault:
    hooks: FaultHooks
    subjects: tuple[str, ...] = ()
    senders: list[Hub] = field(default_factory=list)
    receivers: list[Hub] = field(default_factory=list)
    extra: Callable[[World], None] | None = None
    notes: list[str] = field(default_factory=list)


def needs(cause: str, variant: str) -> dict[str, object]:
    """What the organization must have for this fault (make_org arguments)."""
    if cause in ("esmtp-inspection", "port-25-unreachable", "connector-remote-ip-ranges"):
        out: dict[str, object] = {"min_sites": 2, "min_hubs": 2}
        if cause != "connector-remote-ip-ranges":
            # Hub-to-hub on port 25 (2013+ Transport services talk on 2525, which neither
            # the ASA's default inspection class nor a port 25 ACL touches).
            out["legacy"] = True
        if variant == "2007-failed":
            out["releases"] = ("2007",)
        return out
    if cause == "open-relay" or variant == "anonymous-internet":
        return {"min_hubs": 1}
    return {"min_hubs": 2}


def _start(rng: random.Random, org: Org, long_ok: bool) -> int:
    span = org.t1 - org.t0
    if long_ok and rng.random() < 0.2:
        return org.t0 - rng.randint(1, 60) * HOUR
    return org.t0 + int(span * rng.uniform(0.15, 0.5))


def _pairs(a: list[Hub], b: list[Hub]) -> set[tuple[str, str]]:
    return {(s.name, r.name) for s in a for r in b if s is not r}


def _subjects(pairs: set[tuple[str, str]], org: Org | None = None) -> tuple[str, ...]:
    """``SENDER -> RECEIVER``; with ``org``, also ``SENDER -> <receiver's address>`` for
    faults where the receiver never answers (nothing in the sender's log names it)."""
    out = [f"{s} -> {r}" for s, r in sorted(pairs)]
    if org is not None:
        out += [f"{s} -> {org.hub_named(r).ip}" for s, r in sorted(pairs)]
    return tuple(out)


def make_fault(w: World, cause: str | None, variant: str, rng: random.Random) -> Fault:
    org = w.org
    if cause is None:
        return Fault(FaultHooks())
    build = {
        "esmtp-inspection": _inspection,
        "port-25-unreachable": _inspection,
        "connector-auth-mechanism": _auth_mechanism,
        "connector-permission-groups": _permission_groups,
        "connector-captured": _captured,
        "connector-remote-ip-ranges": _remote_ranges,
        "open-relay": _open_relay,
        "certificate": _certificate,
    }[cause]
    long_ok = cause not in ("open-relay",) and variant != "anonymous-internet"
    hooks = Hooks(cause, _start(rng, org, long_ok), org.t0)
    return build(w, hooks, variant, rng)


def _inspection(w: World, hooks: Hooks, variant: str, rng: random.Random) -> Fault:
    org = w.org
    a, b = rng.sample(org.sites, 2)
    # One way only when something tells it from a sender that cannot load its certificate
    # (which fails towards every hub): the sender site has peers, or a third site exists.
    both = rng.random() < 0.7 or (len(org.sites) == 2 and len(a.hubs) == 1)
    pairs = _pairs(a.hubs, b.hubs) | (_pairs(b.hubs, a.hubs) if both else set())
    hooks.pairs = pairs
    if hooks.cause == "port-25-unreachable":
        hooks.box = Middlebox("acl", acl=variant)
    elif variant == "asa-default":
        hooks.box = Middlebox(
            "asa", suffix=rng.choice(("A", "A", "seq")), mask_params=rng.random() < 0.3
        )
    elif variant == "asa-clear-banner":
        hooks.box = Middlebox(
            "asa",
            mask_banner=False,
            suffix=rng.choice(("A", "seq")),
            mask_params=rng.random() < 0.3,
        )
    elif variant == "pix-mailguard":
        hooks.box = Middlebox("pix")
    else:
        extra = rng.choice((frozenset(), frozenset({"CHUNKING", "BINARYMIME"})))
        hooks.box = Middlebox(
            "strip", strip=frozenset({"STARTTLS", "X-ANONYMOUSTLS", "X-EXPS"}) | extra
        )
    senders = a.hubs + (b.hubs if both else [])
    receivers = b.hubs + (a.hubs if both else [])
    notes = [f"between {a.name} and {b.name}" + (" both ways" if both else f" into {b.name}")]
    unnamed = org if hooks.cause == "port-25-unreachable" else None
    return Fault(hooks, _subjects(pairs, unnamed), senders, receivers, notes=notes)


def _receiver(
    org: Org, rng: random.Random, legacy_first: bool = False, avoid_internet_default: bool = False
) -> Hub:
    hubs = list(org.hubs)
    if avoid_internet_default:
        hubs = [h for h in hubs if not h.internet_in] or hubs
    if legacy_first and any(not h.modern for h in hubs):
        hubs = [h for h in hubs if not h.modern]
    return rng.choice(hubs)


def _auth_mechanism(w: World, hooks: Hooks, variant: str, rng: random.Random) -> Fault:
    org = w.org
    r = _receiver(org, rng)
    auth = {
        "tls-integrated-basic": CLIENT_AUTH,
        "tls-only": frozenset({"Tls"}),
        "none": frozenset({"None"}),
    }[variant]
    r.default.change(hooks.start, auth=auth)
    senders = [h for h in org.hubs if h is not r]
    hooks.pairs = _pairs(senders, [r])
    return Fault(
        hooks,
        (r.default.identity,),
        senders,
        [r],
        notes=[f"AuthMechanism {', '.join(sorted(auth))}"],
    )


_REFUSALS = {
    "send-as": (frozenset({"ExchangeUsers"}), None, None),
    "submit": (frozenset({"ExchangeLegacyServers"}), None, None),
    "not-authenticated": (frozenset({"ExchangeUsers"}), ex.NOT_AUTHENTICATED, "None"),
    "not-authorized": (frozenset({"ExchangeUsers"}), "550 5.7.1 Not authorized", None),
}


def _permission_groups(w: World, hooks: Hooks, variant: str, rng: random.Random) -> Fault:
    org = w.org
    if variant == "anonymous-internet":
        r = rng.choice([h for h in org.hubs if h.internet_in] or org.hubs[:1])
        r.internet_in = True
        local, port = entry(r)
        picked = r.select(local, port, ip2int("198.18.0.1"), org.t0)
        assert picked is not None
        conn = picked[0]
        cfg = conn.at(org.t0)
        assert cfg is not None
        if "AnonymousUsers" not in cfg.groups:
            conn.versions[0] = (
                conn.versions[0][0],
                _with(cfg, groups=cfg.groups | {"AnonymousUsers"}),
            )
        cfg = conn.at(org.t0)
        assert cfg is not None
        conn.change(hooks.start, groups=cfg.groups - {"AnonymousUsers"})

        def more_mail(world: World) -> None:
            for _ in range(rng.randint(15, 40)):
                inbound(world, r, rng.randint(hooks.start, org.t1))
            for _ in range(rng.randint(5, 15)):
                inbound(world, r, rng.randint(org.t0, hooks.start))

        return Fault(
            hooks, (conn.identity,), [], [r], extra=more_mail, notes=["AnonymousUsers removed"]
        )
    r = _receiver(org, rng)
    groups, refusal, rights = _REFUSALS[variant]
    r.default.change(hooks.start, groups=groups, refusal=refusal, auth_rights=rights)
    senders = [h for h in org.hubs if h is not r]
    hooks.pairs = _pairs(senders, [r])
    hooks.long_start = None  # refused mail is returned at once, nothing waits in a queue
    return Fault(
        hooks,
        (r.default.identity,),
        senders,
        [r],
        notes=[f"PermissionGroups {', '.join(sorted(groups))}"],
    )


def _with(cfg: object, **changes: object) -> object:
    return replace(cfg, **changes)  # type: ignore[type-var]


def _captured(w: World, hooks: Hooks, variant: str, rng: random.Random) -> Fault:
    org = w.org
    r = _receiver(org, rng, legacy_first=True)
    others = [h for h in org.hubs if h is not r]
    if variant == "several-hubs":
        sites = [s for s in org.sites if any(h is not r for h in s.hubs)]
        site = rng.choice(sites)
        captured = [h for h in site.hubs if h is not r]
        lo, hi = site.range
        ranges = ((lo, hi),)
        if len(captured) < 2 and len(others) > len(captured):
            extra = rng.choice([h for h in others if h not in captured])
            captured.append(extra)
            ranges = (*ranges, (extra.ip_int, extra.ip_int))
    else:
        captured = [rng.choice(others)]
        ranges = ((captured[0].ip_int, captured[0].ip_int),)
    port = r.intra_port
    relay = None
    if variant == "device-relay":
        relay = next((c for c in r.connectors if c.kind == "relay" and c.port == port), None)
        if relay is None:
            relay = add_relay(rng, org, r, org.t0 - 30 * 86400_000, port=port)
        cfg = relay.at(hooks.start)
        assert cfg is not None
        relay.change(hooks.start, ranges=tuple(sorted({*cfg.ranges, *ranges})))
    else:
        relay = add_relay(rng, org, r, hooks.start, devices=False, port=port)
        relay.versions = [(hooks.start, _with(relay.versions[0][1], ranges=ranges))]  # type: ignore[list-item]
    hooks.pairs = _pairs(captured, [r])
    names = ", ".join(h.name for h in captured)
    return Fault(hooks, (relay.identity,), captured, [r], notes=[f"captures {names}"])


def _remote_ranges(w: World, hooks: Hooks, variant: str, rng: random.Random) -> Fault:
    org = w.org
    r = _receiver(org, rng, avoid_internet_default=True)
    kept = [r.site] + [s for s in org.sites if s is not r.site and rng.random() < 0.3]
    if len(kept) == len(org.sites):
        kept = [r.site]
    r.default.change(hooks.start, ranges=tuple(sorted(s.range for s in kept)))
    senders = [h for h in org.hubs if h is not r and h.site not in kept]
    hooks.pairs = _pairs(senders, [r])
    hooks.drop = variant
    subjects = (r.default.identity, *_subjects(hooks.pairs, org))
    return Fault(
        hooks, subjects, senders, [r], notes=["RemoteIPRanges " + ", ".join(s.name for s in kept)]
    )


def _open_relay(w: World, hooks: Hooks, variant: str, rng: random.Random) -> Fault:
    org = w.org
    facing = [h for h in org.hubs if h.internet_in] or org.hubs[:1]
    r = rng.choice(facing)
    r.internet_in = r.internet_out = True
    before = org.t0 - rng.randint(1, 90) * 86400_000
    local = r.ip
    conn: Connector
    if variant == "default-anonymous":
        conn = r.connector("frontend") or r.default
        cfg = conn.at(org.t0)
        assert cfg is not None
        conn.change(before, groups=cfg.groups | {"AnonymousUsers"}, anon_relay=True)
        for c in r.connectors:
            if c.kind == "internet":
                r.connectors.remove(c)
                break
    elif variant == "external-authoritative":
        conn_opt = r.connector("internet")
        if conn_opt is None:
            conn_opt = Connector(f"Internet {r.name}", r, 25, "internet", bind_ip=r.ip2)
            base = r.default.versions[0][1]
            conn_opt.versions.append((before, _with(base, size="SIZE 20971520")))  # type: ignore[arg-type]
            r.connectors.append(conn_opt)
        conn = conn_opt
        conn.change(
            before,
            auth=frozenset({"Tls", "ExternalAuthoritative"}),
            groups=frozenset({"ExchangeServers"}),
        )
        local = conn.bind_ip or r.ip
    else:
        conn = add_relay(rng, org, r, org.t0 - 200 * 86400_000)
        conn.bind_ip = r.site.host(19 if r.site.size == 32 else 145)
        conn.change(before, ranges=ALL)
        local = conn.bind_ip
    spammers = [public_ip(w) for _ in range(rng.randint(2, 5))]
    targets = (
        "gmail-like.example",
        "yahoo-like.example.net",
        "mail-ru.example",
        "freemail.test",
        "webmail.example.org",
    )

    def spam(world: World) -> None:
        relayed: list[tuple[int, Hub, Message]] = []
        budget = {"tiny": 20, "small": 80, "medium": 300, "large": 1200}[org.size]
        for _ in range(rng.randint(budget // 2, budget)):
            ip = rng.choice(spammers)
            t = rng.randint(hooks.start, org.t1)
            rcpts = [
                f"{rng.choice(('anna', 'li', 'max', 'kim', 'sam'))}{rng.randint(1, 9999)}@"
                f"{rng.choice(targets)}"
                for _ in range(rng.randint(3, 20))
            ]
            sender = f"{rng.choice(('promo', 'winner', 'support'))}@{rng.choice(targets)}"
            res = anon_mail(
                world,
                r,
                t,
                ip,
                _bot_name(world, ip),
                sender,
                rcpts,
                local_ip=local,
                port=25,
                gap=(5, 80),
            )
            if res.queued:
                msg = Message(res.msgid, sender, res.accepted, 4000, "Special offer", t, r)
                tracking.received(world, r, res.t, msg, (ip, ""), conn.identity, res.accepted)
                relayed.append((res.t + rng.randint(200, 5000), r, msg))
        internet_flow(world, 0, relayed)

    return Fault(
        hooks,
        (conn.identity,),
        [r],
        [r],
        extra=spam,
        notes=[f"anonymous relay on {conn.identity} from {len(spammers)} sources"],
    )


def _certificate(w: World, hooks: Hooks, variant: str, rng: random.Random) -> Fault:
    org = w.org
    hub = rng.choice(org.hubs)
    others = [h for h in org.hubs if h is not hub]
    if variant == "cannot-load":
        hooks.cert_missing = hub.name
        hooks.pairs = _pairs([hub], others)
        return Fault(hooks, (hub.name, *_subjects(hooks.pairs)), [hub], others)
    if variant == "unknown-credentials":
        hooks.tls_broken = hub.name
    else:
        hooks.kerb = (hub.name, "logon-denied" if variant == "logon-denied" else "454")
    hooks.pairs = _pairs(others, [hub])
    return Fault(hooks, (hub.name, *_subjects(hooks.pairs)), others, [hub])
