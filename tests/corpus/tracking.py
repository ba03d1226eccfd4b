"""Message tracking rows (spec 6.3): RECEIVE, SEND, DELIVER, FAIL, DSN.

Only servers with ``tracking`` on get rows.  The columns follow each
release's ``#Fields`` line (2007 has no directionality..custom-data, 2013+
add network-message-id and three trailing fields).
"""

from __future__ import annotations

from tests.corpus.exchange import INTRA_ORG
from tests.corpus.org import Hub
from tests.corpus.smtp_sessions import Message, World
from tests.corpus.writer import q


def track(
    w: World,
    hub: Hub,
    t: int,
    event: str,
    source: str,
    msg: Message,
    rcpts: list[str] | None = None,
    *,
    status: str = "",
    client: tuple[str, str] = ("", ""),
    server: tuple[str, str] = ("", ""),
    connector: str = "",
    context: str = "",
    subject: str | None = None,
    reference: str = "",
    related: str = "",
    direction: str = "Originating",
) -> None:
    if not hub.tracking:
        return
    rcpts = msg.rcpts if rcpts is None else rcpts
    internal = str(w.rng.randint(1000, 9_999_999))
    statuses = ";".join(status for _ in rcpts) if status else ""
    head = [
        client[0],
        client[1],
        server[0],
        server[1],
        q(context),
        q(connector),
        source,
        event,
        internal,
        q(msg.msgid),
    ]
    if hub.modern:
        head.append(f"{w.rng.getrandbits(128):032x}")
    head += [
        q(";".join(rcpts)),
        q(statuses),
        str(msg.size),
        str(len(rcpts)),
        q(related),
        q(reference),
        q(msg.subject if subject is None else subject),
        q(msg.sender),
        q(msg.sender),
        "",
    ]
    if hub.release != "2007":
        head += [direction, "", "", "", ""]
    if hub.modern:
        head += ["", "", "15.01.0000.000"]
    w.logs.of(hub, "track").append((t, ",".join(head)))


def submitted(w: World, hub: Hub, t: int, msg: Message) -> None:
    """A mailbox user's message picked up by the hub (RECEIVE from STOREDRIVER)."""
    track(
        w,
        hub,
        t,
        "RECEIVE",
        "STOREDRIVER",
        msg,
        server=(hub.ip, hub.name),
        context=f"MDB:{w.rng.getrandbits(64):016x}, Mailbox:{w.rng.getrandbits(64):016x}, "
        "Event:1234, MessageClass:IPM.Note, CreationTime:, ClientType:MOMT",
    )


def sent(w: World, s: Hub, r: Hub, t: int, msg: Message, connector: str, status: str) -> None:
    track(
        w,
        s,
        t,
        "SEND",
        "SMTP",
        msg,
        status=status,
        client=(s.ip, s.fqdn),
        server=(r.ip, r.fqdn),
        connector=connector,
        context=f"{w.rng.getrandbits(60):016X}",
    )


def sent_out(
    w: World, s: Hub, t: int, msg: Message, rcpts: list[str], server: tuple[str, str]
) -> None:
    """Delivered to the Internet over the send connector."""
    track(
        w,
        s,
        t,
        "SEND",
        "SMTP",
        msg,
        rcpts,
        status="250 2.1.5 Ok",
        client=(s.ip, s.fqdn),
        server=server,
        connector=w.org.send_connector,
        context=f"{w.rng.getrandbits(60):016X}",
    )


def received(
    w: World,
    r: Hub,
    t: int,
    msg: Message,
    client: tuple[str, str],
    connector: str,
    rcpts: list[str] | None = None,
) -> None:
    track(
        w,
        r,
        t,
        "RECEIVE",
        "SMTP",
        msg,
        rcpts,
        client=client,
        server=(r.ip, r.fqdn),
        connector=connector,
        context=f"{w.rng.getrandbits(60):016X}",
        direction="Incoming" if client[1] and "." in client[1] else "Originating",
    )


def delivered(w: World, r: Hub, t: int, msg: Message, rcpts: list[str] | None = None) -> None:
    track(
        w,
        r,
        t,
        "DELIVER",
        "STOREDRIVER",
        msg,
        rcpts,
        client=(r.ip, r.fqdn),
        server=("", f"mbx01.{w.org.ad_domain}"),
    )


def failed(
    w: World,
    hub: Hub,
    t: int,
    msg: Message,
    status: str,
    source: str = "SMTP",
    rcpts: list[str] | None = None,
) -> None:
    track(w, hub, t, "FAIL", source, msg, rcpts, status=status, server=(hub.ip, hub.name))


def dsn(w: World, hub: Hub, t: int, msg: Message, delay: bool) -> None:
    subject = ("Delivery delayed:" if delay else "Undeliverable: ") + msg.subject
    notice = Message(
        msgid=f"<{w.rng.getrandbits(128):032x}@{hub.fqdn}>",
        sender=f"MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@{w.org.domain}",
        rcpts=[msg.sender],
        size=msg.size // 4 + 3000,
        subject=subject,
        submitted=t,
        origin=hub,
    )
    track(
        w,
        hub,
        t,
        "DSN",
        "DSN",
        notice,
        server=(hub.ip, hub.name),
        reference=msg.msgid,
        related=";".join(msg.rcpts),
    )


def onward(w: World, hub: Hub, t: int, msg: Message) -> None:
    """What the hub does next with a message it received: delivers it to the mailboxes
    of its own organization, sends the rest on (to the Internet, or to a hub that has
    the send connector)."""
    inside = [r for r in msg.rcpts if r.rpartition("@")[2] in w.org.domains]
    outside = [r for r in msg.rcpts if r not in inside]
    if inside:
        delivered(w, hub, t + w.rng.randint(30, 900), msg, inside)
    if not outside:
        return
    if hub.internet_out:
        domain = outside[0].rpartition("@")[2]
        sent_out(w, hub, t + w.rng.randint(200, 4000), msg, outside, ("", f"mx.{domain}"))
        return
    sources = [h for h in w.org.hubs if h.internet_out] or [hub]
    sent(
        w,
        hub,
        w.rng.choice(sources),
        t + w.rng.randint(30, 900),
        msg,
        INTRA_ORG,
        "250 2.1.5 Recipient OK",
    )
