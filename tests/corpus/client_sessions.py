"""Sessions with one logged end: clients of a receive connector (Internet senders,
devices, users, bots) and the hub's own deliveries to the Internet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.corpus import exchange as ex
from tests.corpus.org import ConnCfg, Connector, Hub, ip2int
from tests.corpus.smtp_sessions import Side, World

TARPIT = 5000


def open_recv(
    w: World, r: Hub, t: int, client_ip: str, port: int = 25, local_ip: str | None = None
) -> tuple[Side, Connector, ConnCfg] | None:
    """Accept a connection: ``+``, the anonymous permissions and the banner."""
    local_ip = local_ip or r.ip
    picked = r.select(local_ip, port, ip2int(client_ip), t)
    if picked is None:
        return None
    conn, cfg = picked
    side = Side(
        w.recv_rows(r, conn),
        conn.identity,
        r.next_sid(t),
        f"{local_ip}:{port}",
        f"{client_ip}:{w.eph()}",
    )
    side.add(t, "+")
    side.add(t, "*", ex.rights_text(ex.anonymous_rights(cfg)), "Set Session Permissions")
    side.add(t, ">", ex.banner(r, r.fqdn, t))
    return side, conn, cfg


def reply_lines(side: Side, t: int, command: str, lines: list[str], delay: int = 0) -> int:
    side.add(t, "<", command)
    t += delay
    for line in lines:
        side.add(t, ">", line)
    return t


def close(side: Side, t: int, quit_: bool = True) -> int:
    if quit_:
        side.add(t, "<", "QUIT")
        side.add(t, ">", ex.CLOSING)
        t += 1
        side.add(t, "-", "", "Local")
    else:
        side.add(t, "-", "", "Remote")
    return t


def rcpt_reply(w: World, rights: frozenset[str], rcpt: str, filtering: bool) -> str:
    local, _, domain = rcpt.partition("@")
    if domain in w.org.domains:
        if local in w.org.users or local in ("postmaster", "info", "sales", "helpdesk"):
            return ex.RECIPIENT_OK
        return ex.USER_UNKNOWN if filtering else ex.RECIPIENT_OK
    return ex.RECIPIENT_OK if "SMTPAcceptAnyRecipient" in rights else ex.UNABLE_TO_RELAY


@dataclass
class Result:
    t: int
    accepted: list[str] = field(default_factory=list)
    rights: frozenset[str] = frozenset()
    connector: Connector | None = None
    queued: bool = False
    msgid: str = ""


def anon_mail(
    w: World,
    r: Hub,
    t: int,
    ip: str,
    helo: str,
    mail_from: str,
    rcpts: list[str],
    *,
    verb: str = "EHLO",
    starttls: bool = False,
    port: int = 25,
    local_ip: str | None = None,
    gap: tuple[int, int] = (20, 400),
    data: bool = True,
    size: int = 4000,
) -> Result:
    """An anonymous client sends one message (or tries to)."""
    rng = w.rng
    opened = open_recv(w, r, t, ip, port, local_ip)
    if opened is None:
        return Result(t)
    side, conn, cfg = opened
    res = Result(t, connector=conn)
    tarpit = conn.kind != "relay"
    t += rng.randint(*gap)
    lines = ex.ehlo_lines(r, port, cfg, ip, helo=verb == "HELO")
    t = reply_lines(side, t, f"{verb} {helo}", lines)
    if starttls and verb == "EHLO" and "STARTTLS" in ex.keywords(lines):
        t = reply_lines(side, t + rng.randint(*gap), "STARTTLS", [ex.TLS_READY])
        t += rng.randint(20, 120)
        side.add(t, "*", "", "Sending certificate")
        side.add(t, "*", f"CN=mail.{w.org.domain}", "Certificate subject")
        t = reply_lines(
            side, t + rng.randint(*gap), f"EHLO {helo}", ex.ehlo_lines(r, port, cfg, ip, "tls")
        )
    rights = ex.anonymous_rights(cfg)
    res.rights = rights
    t += rng.randint(*gap)
    side.add(t, "<", f"MAIL FROM:<{mail_from}> SIZE={size}")
    if "SMTPSubmit" not in rights:
        t += TARPIT if tarpit else 0
        side.add(t, ">", ex.NOT_AUTHENTICATED)
        res.t = close(side, t + rng.randint(5, 200), quit_=rng.random() < 0.5)
        return res
    side.add(t, ">", ex.SENDER_OK)
    filtering = conn.kind in ("internet", "frontend") or "AnonymousUsers" in cfg.groups
    for rcpt in rcpts:
        t += rng.randint(*gap)
        side.add(t, "<", f"RCPT TO:<{rcpt}>")
        reply = rcpt_reply(w, rights, rcpt, filtering)
        if reply[0] == "5" and tarpit:
            t += TARPIT
        side.add(t, ">", reply)
        if reply == ex.RECIPIENT_OK:
            res.accepted.append(rcpt)
    t += rng.randint(*gap)
    if res.accepted and data:
        t = reply_lines(side, t, "DATA", [ex.START_MAIL])
        t += size // rng.randint(200, 2000) + rng.randint(20, 300)
        res.msgid = f"<{rng.getrandbits(64):016x}@{helo.strip('[]')}>"
        side.add(t, ">", ex.queued(res.msgid, r.next_internal_id(rng), r))
        res.queued = True
        t += rng.randint(*gap)
    res.t = close(side, t)
    return res


def submission(
    w: World,
    r: Hub,
    t: int,
    ip: str,
    user: str,
    rcpts: list[str],
    *,
    bad_tries: int = 0,
    succeed: bool = True,
    size: int = 8000,
) -> Result:
    """A user's authenticated submission on the Client connector (587, AUTH LOGIN)."""
    rng = w.rng
    port = 587
    opened = open_recv(w, r, t, ip, port)
    if opened is None:
        return Result(t)
    side, conn, cfg = opened
    res = Result(t, connector=conn)
    name = f"[{ip}]" if rng.random() < 0.5 else f"DESKTOP-{rng.getrandbits(24):06X}"
    t = reply_lines(side, t + rng.randint(5, 60), f"EHLO {name}", ex.ehlo_lines(r, port, cfg, ip))
    t = reply_lines(side, t + rng.randint(5, 60), "STARTTLS", [ex.TLS_READY])
    t += rng.randint(20, 90)
    side.add(t, "*", "", "Sending certificate")
    t = reply_lines(
        side, t + rng.randint(5, 60), f"EHLO {name}", ex.ehlo_lines(r, port, cfg, ip, "tls")
    )
    for attempt in range(bad_tries + (1 if succeed else 0)):
        t = reply_lines(
            side, t + rng.randint(5, 400), "AUTH LOGIN", ["334 <authentication information>"]
        )
        side.add(t + rng.randint(5, 90), ">", "334 <authentication information>")
        t += rng.randint(100, 300)
        if attempt < bad_tries:
            t += TARPIT
            side.add(t, ">", ex.AUTH_BAD)
            side.add(t, "*", "", "Inbound AUTH LOGIN failed")
            continue
        side.add(t, "*", ex.rights_text(ex.USERS), "Set Session Permissions")
        side.add(t, "*", f"{w.org.netbios}\\{user}", "authenticated")
        side.add(t, ">", ex.AUTH_USER_OK)
        res.rights = ex.USERS
    if not succeed:
        res.t = close(side, t + rng.randint(5, 200), quit_=rng.random() < 0.4)
        return res
    t = reply_lines(
        side,
        t + rng.randint(5, 60),
        f"MAIL FROM:<{user}@{w.org.domain}> SIZE={size}",
        [ex.SENDER_OK],
    )
    for rcpt in rcpts:
        t = reply_lines(side, t + rng.randint(1, 30), f"RCPT TO:<{rcpt}>", [ex.RECIPIENT_OK])
        res.accepted.append(rcpt)
    t = reply_lines(side, t + rng.randint(5, 60), "DATA", [ex.START_MAIL])
    t += size // rng.randint(500, 3000) + 20
    res.msgid = f"<{rng.getrandbits(96):024x}@{name.strip('[]')}>"
    side.add(t, ">", ex.queued(res.msgid, r.next_internal_id(rng), r))
    res.queued = True
    res.t = close(side, t + rng.randint(5, 60))
    return res


_MX_BANNERS = (
    "220 {mx} ESMTP Postfix",
    "220 {mx} ESMTP Postfix (Debian/GNU)",
    "220 {mx} ESMTP Exim 4.94.2 {date}",
    "220 {mx} ESMTP ready",
    "220 {mx} Microsoft ESMTP MAIL Service ready at {date}",
    "220-{mx} ESMTP Sendmail 8.15.2/8.15.2; {date}",
)
_MX_EHLO = (
    (
        "PIPELINING",
        "SIZE 52428800",
        "ETRN",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
    ),
    (
        "SIZE 36700160",
        "PIPELINING",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "8BITMIME",
        "BINARYMIME",
        "CHUNKING",
    ),
    ("SIZE 26214400", "8BITMIME", "PIPELINING", "PIPE_CONNECT", "STARTTLS", "HELP"),
)


def outbound(
    w: World,
    s: Hub,
    t: int,
    mx: str,
    mx_ip: str,
    sender: str,
    rcpts: list[str],
    size: int,
    style: int,
) -> tuple[int, list[tuple[str, str]]]:
    """The hub delivers one message over the Internet send connector; (end, per rcpt)."""
    rng = w.rng
    lport = w.eph()
    side = Side(
        w.send_rows(s, intra=False),
        w.org.send_connector,
        s.next_sid(t),
        f"{s.ip}:{lport}",
        f"{mx_ip}:25",
    )
    side.add_ep(t, "", f"{mx_ip}:25", "*", "", "attempting to connect")
    rtt = rng.randint(20, 180)
    t += rtt
    side.add(t, "+")
    date = datetime.fromtimestamp(t / 1000, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    side.add(t, "<", _MX_BANNERS[style % len(_MX_BANNERS)].format(mx=mx, date=date))
    if style % len(_MX_BANNERS) == 5:
        side.add(t, "<", "220 ESMTP")
    kws = _MX_EHLO[style % len(_MX_EHLO)]
    ehlo = [f"250-{mx}"] + [f"250-{k}" for k in kws[:-1]] + [f"250 {kws[-1]}"]
    side.add(t, ">", f"EHLO {s.fqdn}")
    t += rtt
    for line in ehlo:
        side.add(t, "<", line)
    if style % 3 != 2 or rng.random() < 0.5:
        side.add(t, ">", "STARTTLS")
        t += rtt
        side.add(t, "<", "220 2.0.0 Ready to start TLS")
        t += rtt * 2
        side.add(t, "*", "", "Received certificate")
        side.add(t, ">", f"EHLO {s.fqdn}")
        t += rtt
        for line in [ln for ln in ehlo if "STARTTLS" not in ln]:
            side.add(t, "<", line)
    side.add(t, ">", f"MAIL FROM:<{sender}> SIZE={size}")
    for rcpt in rcpts:
        side.add(t, ">", f"RCPT TO:<{rcpt}>")
    t += rtt
    side.add(t, "<", "250 2.1.0 Ok")
    results = []
    for rcpt in rcpts:
        roll = rng.random()
        if roll < 0.06:
            rep = f"450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted for 300 seconds"
        elif roll < 0.12:
            rep = (
                f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual "
                "mailbox table"
            )
        else:
            rep = "250 2.1.5 Ok"
        side.add(t, "<", rep)
        results.append((rcpt, rep))
    if any(rep.startswith("250") for _, rep in results):
        side.add(t, ">", "DATA")
        t += rtt
        side.add(t, "<", "354 End data with <CR><LF>.<CR><LF>")
        t += size // rng.randint(300, 3000) + rtt
        side.add(t, "<", f"250 2.0.0 Ok: queued as {rng.getrandbits(40):010X}")
    side.add(t, ">", "QUIT")
    t += rtt
    side.add(t, "<", "221 2.0.0 Bye")
    side.add(t, "-", "", "Local")
    return t, results
