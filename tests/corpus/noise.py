"""Background traffic every organization has, healthy or not, none of it a fault:
Internet mail in, users submitting, devices relaying through internal relay
connectors (to outside domains too: that is what they are for), and Internet
noise: unknown recipients, dictionary attacks, refused relay attempts, password
guessing, scanners, connection limits, bots, idle clients, anonymous senders on
a hub that does not take Internet mail.
"""

from __future__ import annotations

from tests.corpus import exchange as ex
from tests.corpus import tracking
from tests.corpus.client_sessions import anon_mail, close, open_recv, reply_lines, submission
from tests.corpus.mailflow import SUBJECTS, internet_flow
from tests.corpus.org import SIZES, Hub, Site, int2ip, ip2int
from tests.corpus.smtp_sessions import Message, World

_PRIVATE = (
    (0x0A000000, 0x0AFFFFFF),
    (0xAC100000, 0xAC1FFFFF),
    (0xC0A80000, 0xC0A8FFFF),
    (0x7F000000, 0x7FFFFFFF),
    (0xA9FE0000, 0xA9FEFFFF),
    (0x64400000, 0x647FFFFF),
)
_BOTS = ("User", "ylmf-pc", "WIN-{h}", "localhost", "[{ip}]", "mail.{d}", "EHLO", "test")
_SPOOF = ("info@{d}", "admin@{d}", "no-reply@{p}", "paypal@service-{p}", "{u}@{p}")
_GARBAGE = (
    "GET / HTTP/1.1",
    "XXXX",
    "AUTH LOGIN",
    "\\x16\\x03\\x01",
    "HELP",
    "NICK bot",
    "OPTIONS / HTTP/1.0",
)


def public_ip(w: World) -> str:
    rng = w.rng
    while True:
        n = (rng.randint(1, 223) << 24) | rng.getrandbits(24)
        if any(lo <= n <= hi for lo, hi in _PRIVATE) or w.org.is_internal(n):
            continue
        if n & 0xFF in (0, 255):
            continue
        return int2ip(n)


def internal_ip(w: World, site: Site) -> str:
    rng = w.rng
    if site.size == 32:
        return site.host(rng.randint(25, 30))
    return site.host(rng.randint(41, 99))


def entry(hub: Hub) -> tuple[str, int]:
    """Where the Internet reaches a hub: its Internet connector's address, else port 25."""
    inet = hub.connector("internet")
    if inet is not None and inet.bind_ip:
        return inet.bind_ip, 25
    return hub.ip, 25


def _bot_name(w: World, ip: str) -> str:
    rng = w.rng
    return rng.choice(_BOTS).format(
        h=f"{rng.getrandbits(32):08X}", ip=ip, d=rng.choice(w.org.partners)
    )


def background(w: World) -> None:
    org = w.org
    rng = w.rng
    _, _, other, _ = SIZES[org.size]
    facing = [h for h in org.hubs if h.internet_in] or org.hubs[:1]
    inside = [h for h in org.hubs if not h.internet_in and not h.modern]
    with_devices = [h for h in org.hubs if h.devices]
    table = [
        (0.25, lambda t: inbound(w, rng.choice(facing), t)),
        (0.05, lambda t: inbound(w, rng.choice(facing), t, unknown=True)),
        (0.05, lambda t: relay_attempt(w, rng.choice(facing), t)),
        (0.13, lambda t: scanner(w, rng.choice(facing), t)),
        (0.03, lambda t: too_many(w, rng.choice(facing), t)),
        (0.04, lambda t: bot(w, rng.choice(facing), t)),
        (0.03, lambda t: idle(w, rng.choice(facing), t)),
        (0.12, lambda t: user_submission(w, rng.choice(org.hubs), t)),
    ]
    if with_devices:
        table.append((0.12, lambda t: device(w, rng.choice(with_devices), t)))
    if inside:
        table.append((0.03, lambda t: not_authenticated(w, rng.choice(inside), t)))
    for share, make in table:
        for _ in range(max(1, int(other * share * rng.uniform(0.7, 1.3)))):
            make(rng.randint(org.t0, org.t1))
    for _ in range(rng.randint(1, 3)):
        dictionary_attack(w, rng.choice(facing), rng.randint(org.t0, org.t1))
    for _ in range(rng.randint(1, 2)):
        brute_force(w, rng.choice(facing), rng.randint(org.t0, org.t1))
    internet_flow(w, max(2, int(other * 0.08)))


def inbound(w: World, r: Hub, t: int, unknown: bool = False) -> None:
    """A partner's MTA delivers to users (``unknown``: one address that does not exist)."""
    rng = w.rng
    org = w.org
    partner = rng.choice(org.partners)
    ip = public_ip(w)
    rcpts = [
        f"{rng.choice(org.users)}@{rng.choice(org.domains)}" for _ in range(rng.choice((1, 1, 2)))
    ]
    if unknown:
        rcpts.append(f"{rng.choice(('j.doe', 'former.employee', 'sales2', 'acct'))}@{org.domain}")
    local, port = entry(r)
    res = anon_mail(
        w,
        r,
        t,
        ip,
        f"{rng.choice(('mail', 'mx', 'smtp-out'))}.{partner}",
        f"{rng.choice(org.users).split('.')[0]}@{partner}",
        rcpts,
        starttls=rng.random() < 0.6,
        local_ip=local,
        port=port,
    )
    if res.queued:
        msg = Message(res.msgid, f"someone@{partner}", res.accepted, 5000, "Hello", t, r)
        tracking.received(
            w,
            r,
            res.t,
            msg,
            (ip, f"mail.{partner}"),
            res.connector.identity if res.connector else "",
            res.accepted,
        )
        tracking.delivered(w, r, res.t + rng.randint(50, 2000), msg)
    w.count("inbound")


def relay_attempt(w: World, r: Hub, t: int) -> None:
    rng = w.rng
    ip = public_ip(w)
    local, port = entry(r)
    victims = [f"{rng.choice(('test', 'info', 'x'))}{rng.randint(1, 99)}@relay-test.example.net"]
    sender = f"spam{rng.randint(1, 999)}@{rng.choice(w.org.partners)}"
    anon_mail(w, r, t, ip, _bot_name(w, ip), sender, victims, local_ip=local, port=port)
    w.count("relay-attempt")


def dictionary_attack(w: World, r: Hub, t: int) -> None:
    rng = w.rng
    org = w.org
    ip = public_ip(w)
    local, port = entry(r)
    for _ in range(rng.randint(2, 5)):
        words = ("admin", "sales", "info", "test", "user", "john", "mary", "web")
        guesses = [
            f"{rng.choice(words)}{rng.randint(1, 999)}@{org.domain}"
            for _ in range(rng.randint(15, 60))
        ]
        res = anon_mail(
            w,
            r,
            t,
            ip,
            _bot_name(w, ip),
            f"x@{rng.choice(org.partners)}",
            guesses,
            local_ip=local,
            port=port,
            gap=(5, 60),
            data=False,
        )
        t = res.t + rng.randint(1000, 60_000)
    w.count("dictionary")


def brute_force(w: World, r: Hub, t: int) -> None:
    rng = w.rng
    ip = public_ip(w)
    for _ in range(rng.randint(3, 10)):
        res = submission(
            w, r, t, ip, "administrator", [], bad_tries=rng.randint(1, 3), succeed=False
        )
        t = res.t + rng.randint(500, 20_000)
    w.count("brute-force")


def scanner(w: World, r: Hub, t: int) -> None:
    rng = w.rng
    ip = public_ip(w)
    local, port = entry(r)
    opened = open_recv(w, r, t, ip, port, local)
    if opened is None:
        return
    side, _, cfg = opened
    if rng.random() < 0.5:
        t = reply_lines(
            side,
            t + rng.randint(50, 2000),
            f"EHLO {_bot_name(w, ip)}",
            ex.ehlo_lines(r, port, cfg, ip),
        )
        close(side, t + rng.randint(20, 500))
    else:
        close(side, t + rng.randint(1, 800), quit_=False)
    w.count("scanner")


def too_many(w: World, r: Hub, t: int) -> None:
    """A source past MaxInboundConnectionPerSource: 421 instead of the banner."""
    rng = w.rng
    ip = public_ip(w)
    local, port = entry(r)
    picked = r.select(local, port, ip2int(ip), t)
    if picked is None:
        return
    conn, _ = picked
    from tests.corpus.smtp_sessions import Side

    for _ in range(rng.randint(2, 6)):
        side = Side(
            w.recv_rows(r, conn), conn.identity, r.next_sid(t), f"{local}:{port}", f"{ip}:{w.eph()}"
        )
        side.add(t, "+")
        side.add(t, ">", ex.TOO_MANY)
        side.add(t + 1, "-", "", "Local")
        t += rng.randint(5, 400)
    w.count("421")


def bot(w: World, r: Hub, t: int) -> None:
    rng = w.rng
    ip = public_ip(w)
    local, port = entry(r)
    opened = open_recv(w, r, t, ip, port, local)
    if opened is None:
        return
    side, _, _ = opened
    for _ in range(rng.randint(1, 4)):
        t = reply_lines(side, t + rng.randint(10, 900), rng.choice(_GARBAGE), [ex.UNRECOGNIZED])
    close(side, t + rng.randint(5, 300), quit_=False)
    w.count("bot")


def idle(w: World, r: Hub, t: int) -> None:
    rng = w.rng
    ip = public_ip(w)
    local, port = entry(r)
    opened = open_recv(w, r, t, ip, port, local)
    if opened is None:
        return
    side, _, cfg = opened
    if rng.random() < 0.5:
        t = reply_lines(
            side,
            t + rng.randint(10, 900),
            f"EHLO {_bot_name(w, ip)}",
            ex.ehlo_lines(r, port, cfg, ip),
        )
    t += 300_000 if not r.modern else 60_000
    side.add(t, ">", ex.TIMEOUT)
    side.add(t + 1, "-", "", "Local")
    w.count("timeout")


def not_authenticated(w: World, r: Hub, t: int) -> None:
    """An application server, or a stray Internet sender, tries a hub's Default connector."""
    rng = w.rng
    org = w.org
    ip = internal_ip(w, r.site) if rng.random() < 0.7 else public_ip(w)
    rcpt = f"{rng.choice(org.users)}@{org.domain}"
    anon_mail(
        w,
        r,
        t,
        ip,
        rng.choice(("app-crm01", "erp-batch", f"[{ip}]", "backup01")),
        f"alerts@{org.domain}",
        [rcpt],
        local_ip=r.ip,
        port=25,
    )
    w.count("530")


def user_submission(w: World, r: Hub, t: int) -> None:
    rng = w.rng
    org = w.org
    user = rng.choice(org.users)
    rcpts = [f"{rng.choice(org.users)}@{org.domain}"]
    if rng.random() < 0.4:
        rcpts.append(f"{rng.choice(org.users).split('.')[0]}@{rng.choice(org.partners)}")
    res = submission(w, r, t, internal_ip(w, r.site), user, rcpts)
    if res.queued:
        msg = Message(
            res.msgid, f"{user}@{org.domain}", res.accepted, 8000, rng.choice(SUBJECTS), t, r
        )
        tracking.onward(w, r, res.t + 20, msg)
        tracking.received(
            w, r, res.t, msg, (r.ip, r.fqdn), res.connector.identity if res.connector else ""
        )
    w.count("submission")


def device(w: World, r: Hub, t: int) -> None:
    """A scanner or an application relays anonymously through its relay connector."""
    rng = w.rng
    org = w.org
    dev = rng.choice(r.devices)
    relay = next((c for c in r.connectors if c.name == dev.relay), None)
    local = relay.bind_ip if relay is not None and relay.bind_ip else r.ip
    port = relay.port if relay is not None else 25
    rcpts = [f"{rng.choice(org.users)}@{org.domain}"]
    if rng.random() < 0.5:
        rcpts = [f"{rng.choice(('orders', 'ap', 'dispatch', 'alerts'))}@{rng.choice(org.partners)}"]
    res = anon_mail(
        w,
        r,
        t,
        dev.ip,
        dev.name if dev.helo == "EHLO" else dev.name.lower(),
        dev.sender,
        rcpts,
        verb=dev.helo,
        local_ip=local,
        port=port,
        starttls=dev.kind == "app" and rng.random() < 0.5,
        size=rng.randint(20_000, 900_000) if dev.kind == "mfp" else 3000,
    )
    if res.queued:
        msg = Message(res.msgid, dev.sender, res.accepted, 9000, "Scanned document", t, r)
        tracking.received(
            w, r, res.t, msg, (dev.ip, dev.name), res.connector.identity if res.connector else ""
        )
        tracking.onward(w, r, res.t + 20, msg)
    w.count("device")
