"""SMTP sessions as Exchange logs them, both ends at once.

A :class:`Side` is one end's protocol-log session (its own connector-id,
session id and sequence numbers); :func:`hub_session` plays one hub-to-hub
connection through the receiving connector's settings, whatever sits on the
path (:class:`~tests.corpus.middlebox.Middlebox`) and the fault's hooks, and
writes the sender's SmtpSend rows and the receiver's SmtpReceive rows as the
sender and the receiver each saw them.  The sender follows the decision
logic of spec 3.2: X-ANONYMOUSTLS, EHLO again, X-EXPS EXCHANGEAUTH, else
``451 5.7.3 Cannot achieve Exchange Server authentication``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.corpus import exchange as ex
from tests.corpus.middlebox import Middlebox, x_mask
from tests.corpus.org import ConnCfg, Connector, Hub, Org
from tests.corpus.writer import Logs, Row, q


class Side:
    """One end of a session in its protocol log (rows kept only when ``rows`` is a list)."""

    __slots__ = ("ep", "head", "rows", "seq")

    def __init__(
        self, rows: list[Row] | None, connector_id: str, sid: str, local: str, remote: str
    ) -> None:
        self.rows = rows
        self.head = f"{q(connector_id)},{sid},"
        self.ep = f",{local},{remote},"
        self.seq = 0

    def add(self, t: int, event: str, data: str = "", ctx: str = "") -> None:
        if self.rows is not None:
            self.rows.append((t, f"{self.head}{self.seq}{self.ep}{event},{q(data)},{q(ctx)}"))
        self.seq += 1

    def add_ep(
        self, t: int, local: str, remote: str, event: str, data: str = "", ctx: str = ""
    ) -> None:
        if self.rows is not None:
            self.rows.append(
                (t, f"{self.head}{self.seq},{local},{remote},{event},{q(data)},{q(ctx)}")
            )
        self.seq += 1


@dataclass(eq=False)
class Message:
    msgid: str
    sender: str
    rcpts: list[str]
    size: int
    subject: str
    submitted: int
    origin: Hub
    delayed: bool = False
    done: bool = False


class FaultHooks:
    """What a fault changes on the path or in the servers; the default: nothing."""

    cause: str | None = None
    start: int | None = None
    long_start: int | None = None
    """When a fault started before the logs begin: the queues it stopped hold older mail."""

    def affects(self, s: Hub, r: Hub) -> bool:
        """Whether ``s`` cannot deliver to ``r`` while the fault lasts."""
        return False

    def middlebox(self, s: Hub, r: Hub, t: int) -> Middlebox | None:
        return None

    def sender_cert_missing(self, s: Hub, t: int) -> bool:
        return False

    def receiver_tls_broken(self, r: Hub, t: int) -> bool:
        return False

    def kerberos(self, s: Hub, r: Hub, t: int) -> str | None:
        return None

    def drop_style(self) -> str:
        return "dropped"


@dataclass(eq=False)
class World:
    org: Org
    rng: random.Random
    logs: Logs
    hooks: FaultHooks
    rtts: dict[tuple[str, str], int] = field(default_factory=dict)
    thumbs: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def rtt(self, a: Hub, b: Hub) -> int:
        if a.site is b.site:
            return self.rng.randint(0, 2)
        key = tuple(sorted((a.site.code, b.site.code)))
        if key not in self.rtts:
            self.rtts[key] = self.rng.randint(12, 140)  # type: ignore[index]
        return self.rtts[key] + self.rng.randint(0, 6)  # type: ignore[index]

    def thumb(self, hub: Hub) -> str:
        if hub.name not in self.thumbs:
            self.thumbs[hub.name] = f"{self.rng.getrandbits(160):040X}"
        return self.thumbs[hub.name]

    def recv_rows(self, hub: Hub, connector: Connector) -> list[Row] | None:
        if not hub.log_recv:
            return None
        fe = hub.modern and connector.folder == "FrontEnd"
        return self.logs.of(hub, "recv-fe" if fe else "recv")

    def send_rows(self, hub: Hub, intra: bool) -> list[Row] | None:
        if not hub.log_send or (intra and not hub.log_intra):
            return None
        return self.logs.of(hub, "send")

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def eph(self) -> int:
        return self.rng.randint(1025, 65000)


@dataclass
class Outcome:
    t: int
    status: str  # ok, rejected, fail
    accepted: list[Message] = field(default_factory=list)
    refused: list[tuple[Message, str]] = field(default_factory=list)
    error: str = ""


def tls_rows(w: World, snd: Side | None, rcv: Side | None, server: Hub, t: int) -> None:
    knobs = w.org.knobs
    if rcv is not None:
        rcv.add(t, "*", "", "Sending certificate")
        rcv.add(t, "*", f"CN={server.name}", "Certificate subject")
        rcv.add(t, "*", w.thumb(server), "Certificate thumbprint")
    if snd is not None:
        snd.add(t, "*", "", "Received certificate")
        snd.add(t, "*", w.thumb(server), "Certificate thumbprint")
        if knobs["tls_rows"] == "long":
            proto = "TLS1_2" if server.modern else "TLS1_0"
            snd.add(
                t,
                "*",
                "",
                f"TLS protocol SP_PROT_{proto}_CLIENT negotiation succeeded "
                "using bulk encryption algorithm CALG_AES_256 with strength 256 bits, MAC "
                "hash algorithm CALG_SHA1 with strength 160 bits and key exchange algorithm "
                "CALG_ECDHE with strength 256 bits",
            )


def _exchange(
    w: World,
    snd: Side,
    rcv: Side | None,
    t: int,
    rtt: int,
    command: str,
    replies: list[str],
    mb: Middlebox | None = None,
) -> int:
    """Client command, server reply lines; returns the time after the reply."""
    snd.add(t, ">", command)
    t += rtt // 2
    if rcv is not None:
        rcv.add(t, "<", command)
        t += w.rng.randint(0, 3)
        for line in replies:
            rcv.add(t, ">", line)
    t += rtt - rtt // 2
    seen = mb.ehlo(replies) if mb is not None and command.startswith("EHLO") else replies
    for line in seen:
        snd.add(t, "<", line)
    return t + w.rng.randint(0, 2)


def fail_451(w: World, snd: Side, t: int, text: str) -> None:
    if w.org.knobs["x451_in"] == "data":
        snd.add(t, "*", text, "")
    else:
        snd.add(t, "*", "", text)


def quit_both(w: World, snd: Side, rcv: Side | None, t: int, rtt: int) -> int:
    snd.add(t, ">", "QUIT")
    t += rtt // 2
    if rcv is not None:
        rcv.add(t, "<", "QUIT")
        rcv.add(t, ">", ex.CLOSING)
        rcv.add(t + 1, "-", "", "Local")
    t += rtt - rtt // 2 + 1
    if w.org.knobs["quit_221"]:
        snd.add(t, "<", ex.CLOSING)
    snd.add(t, "-", "", "Local")
    return t


def mail_replies(cfg: ConnCfg, rights: frozenset[str]) -> str:
    if cfg.refusal:
        return cfg.refusal
    if "SMTPSubmit" not in rights:
        return "550 5.7.1 Client does not have permissions to submit to this server"
    if not rights & {"SMTPAcceptAnySender", "SMTPAcceptAuthoritativeDomainSender"}:
        return "550 5.7.1 Client does not have permissions to send as this sender"
    return ex.SENDER_OK


def hub_session(w: World, s: Hub, r: Hub, t: int, msgs: list[Message]) -> Outcome:
    """One connection of the intra-organization send connector from ``s`` to ``r``."""
    rng = w.rng
    hooks = w.hooks
    port = r.intra_port
    rtt = w.rtt(s, r)
    lport = w.eph()
    remote_ep = f"{r.ip}:{port}"
    snd = Side(
        w.send_rows(s, intra=True), ex.INTRA_ORG, s.next_sid(t), f"{s.ip}:{lport}", remote_ep
    )
    w.count("hub-sessions")
    snd.add_ep(t, "", remote_ep, "*", "", "attempting to connect")
    mb = hooks.middlebox(s, r, t)
    if mb is not None and mb.kind == "acl":
        return _acl_failure(w, snd, s, r, t, mb)
    picked = r.select(r.ip, port, s.ip_int, t)
    t += rtt
    snd.add(t, "+")
    if picked is None:
        return _dropped(w, snd, t, rtt)
    conn, cfg = picked
    rcv = Side(w.recv_rows(r, conn), conn.identity, r.next_sid(t), remote_ep, f"{s.ip}:{lport}")
    t0 = t - rtt // 2
    rcv.add(t0, "+")
    rcv.add(t0, "*", ex.rights_text(ex.anonymous_rights(cfg)), "Set Session Permissions")
    text = ex.banner(r, r.fqdn, t0)
    rcv.add(t0, ">", text)
    snd.add(t, "<", mb.banner(text) if mb else text)
    t += rng.randint(1, 4)
    ehlo = f"EHLO {s.fqdn}"
    if mb is not None and not mb.passes(ehlo):
        # PIX Mailguard: the server gets X's, answers 500; the sender falls back to HELO.
        snd.add(t, ">", ehlo)
        t += rtt // 2
        rcv.add(t, "<", x_mask(ehlo))
        rcv.add(t, ">", ex.UNRECOGNIZED)
        t += rtt - rtt // 2
        snd.add(t, "<", ex.UNRECOGNIZED)
        t = _exchange(
            w, snd, rcv, t + 1, rtt, f"HELO {s.fqdn}", ex.ehlo_lines(r, port, cfg, s.ip, helo=True)
        )
        fail_451(w, snd, t, ex.CANNOT_ACHIEVE)
        t = quit_both(w, snd, rcv, t + 1, rtt)
        return Outcome(t, "fail", error=ex.CANNOT_ACHIEVE)
    lines = ex.ehlo_lines(r, port, cfg, s.ip)
    t = _exchange(w, snd, rcv, t, rtt, ehlo, lines, mb)
    seen = ex.keywords(mb.ehlo(lines) if mb else lines)
    if "X-ANONYMOUSTLS" not in seen:
        fail_451(w, snd, t, ex.CANNOT_ACHIEVE)
        t = quit_both(w, snd, rcv, t + 1, rtt)
        return Outcome(t, "fail", error=ex.CANNOT_ACHIEVE)
    if hooks.sender_cert_missing(s, t):
        fail_451(w, snd, t, ex.CANNOT_LOAD)
        t = quit_both(w, snd, rcv, t + 1, rtt)
        return Outcome(t, "fail", error=ex.CANNOT_LOAD)
    t = _exchange(w, snd, rcv, t, rtt, "X-ANONYMOUSTLS", [ex.TLS_READY])
    if hooks.receiver_tls_broken(r, t):
        t += rtt + rng.randint(2, 20)
        snd.add(t, "*", "", "TLS negotiation failed with error UnknownCredentials")
        snd.add(t, "-", "", "Local")
        rcv.add(t, "*", "", "TLS negotiation failed with error UnknownCredentials")
        rcv.add(t, "-", "", "Local")
        return Outcome(t, "fail", error="421 4.4.1 Connection timed out")
    t += rtt * 2 + rng.randint(5, 40)
    tls_rows(w, snd, rcv, r, t)
    t = _exchange(w, snd, rcv, t, rtt, ehlo, ex.ehlo_lines(r, port, cfg, s.ip, "anon-tls"))
    kerberos = hooks.kerberos(s, r, t)
    if kerberos == "logon-denied":
        snd.add(t, "*", "", "Outbound Authentication failed with LogonDenied")
        fail_451(w, snd, t, ex.TEMP_AUTH)
        t = quit_both(w, snd, rcv, t + 1, rtt)
        return Outcome(t, "fail", error=ex.TEMP_AUTH)
    if kerberos == "454":
        t = _exchange(w, snd, rcv, t, rtt, "X-EXPS EXCHANGEAUTH SHA256 ", [ex.TEMP_AUTH])
        rcv.add(
            t,
            "*",
            "",
            f"Inbound authentication failed with error IllegalMessage for "
            f"Receive connector {conn.name}",
        )
        t = quit_both(w, snd, rcv, t + 1, rtt)
        return Outcome(t, "fail", error=ex.TEMP_AUTH)
    t = _exchange(w, snd, rcv, t, rtt, "X-EXPS EXCHANGEAUTH SHA256 ", [ex.AUTH_OK])
    rights = ex.authenticated_rights(cfg, r.release, True, str(w.org.knobs["rights_xshadow"]))
    rcv.add(t, "*", cfg.auth_rights or ex.rights_text(rights), "Set Session Permissions")
    if w.org.knobs["authenticated_row"]:
        rcv.add(t, "*", f"{w.org.netbios}\\{s.name}$", "authenticated")
    mail_reply = mail_replies(cfg, rights)
    return _transactions(w, s, r, snd, rcv, t, rtt, msgs, cfg, mail_reply)


def _transactions(
    w: World,
    s: Hub,
    r: Hub,
    snd: Side,
    rcv: Side,
    t: int,
    rtt: int,
    msgs: list[Message],
    cfg: ConnCfg,
    mail_reply: str,
) -> Outcome:
    rng = w.rng
    knobs = w.org.knobs
    out = Outcome(t, "ok")
    pipelining = bool(knobs["pipelining"])
    for i, msg in enumerate(msgs):
        if i and rng.random() < 0.15:
            t = _exchange(w, snd, rcv, t, rtt, "RSET", [ex.RESETTING])
        mail = f"MAIL FROM:<{msg.sender}> SIZE={msg.size}"
        rcpts = [f"RCPT TO:<{a}>" for a in msg.rcpts]
        ok = mail_reply == ex.SENDER_OK
        closing = mail_reply.startswith("530")
        replies = [mail_reply] + [
            ex.RECIPIENT_OK if ok else "503 5.5.2 Need mail command" for _ in rcpts
        ]
        if pipelining:
            for cmd in [mail, *rcpts]:
                snd.add(t, ">", cmd)
            t += rtt // 2
            for cmd, rep in zip([mail, *rcpts], replies, strict=True):
                rcv.add(t, "<", cmd)
                rcv.add(t, ">", rep)
                if closing:
                    break
            t += rtt - rtt // 2
            for rep in replies[:1] if closing else replies:
                snd.add(t, "<", rep)
        else:
            for cmd, rep in zip([mail, *rcpts], replies, strict=True):
                t = _exchange(w, snd, rcv, t, rtt, cmd, [rep])
                if not ok:
                    break
        if not ok:
            out.status = "rejected"
            out.refused.append((msg, mail_reply))
            if mail_reply.startswith("530"):
                t += 1
                rcv.add(t, "-", "", "Local")
                snd.add(t + rtt // 2, "-", "", "Remote")
                out.t = t + rtt // 2
                out.refused += [(m, mail_reply) for m in msgs[i + 1 :]]
                return out
            continue
        internal = r.next_internal_id(rng)
        done = ex.queued(msg.msgid, internal, r)
        transfer = msg.size // rng.randint(800, 4000) + rng.randint(1, 30)
        if cfg.chunking and knobs["chunking"]:
            snd.add(t, ">", f"BDAT {msg.size} LAST")
            t += transfer
            rcv.add(t, "<", f"BDAT {msg.size} LAST")
            t += rng.randint(2, 40)
            rcv.add(t, ">", done)
        else:
            t = _exchange(w, snd, rcv, t, rtt, "DATA", [ex.START_MAIL])
            t += transfer
            rcv.add(t, ">", done)
        t += rtt // 2 + 1
        snd.add(t, "<", done)
        out.accepted.append(msg)
        t += rng.randint(0, 3)
    out.t = quit_both(w, snd, rcv, t, rtt)
    return out


def _dropped(w: World, snd: Side, t: int, rtt: int) -> Outcome:
    """No receive connector for the sender's address: closed before any banner."""
    style = w.hooks.drop_style()
    t += w.rng.randint(0, 3)
    if style == "421-dropped":
        snd.add(t, "*", "", "421 4.4.2 Connection dropped")
        snd.add(t, "-", "", "Local")
    elif style == "421-dropped-reason":
        snd.add(t, "*", "421 4.4.2 Connection dropped due to SocketError", "")
        snd.add(t, "-", "", "Remote")
    else:
        snd.add(t, "-", "", "Remote")
    return Outcome(t, "fail", error="421 4.4.2 Connection dropped")


def _acl_failure(w: World, snd: Side, s: Hub, r: Hub, t: int, mb: Middlebox) -> Outcome:
    """Port 25 blocked: no ``+`` row, the connection attempt's failure as information."""
    ep = f"{r.ip}:{r.intra_port}"
    if mb.acl == "winsock-10061":
        t += w.rng.randint(1, 5) + w.rtt(s, r)
        text = "Failed to connect. Winsock error code: 10061, Win32 error code: 10061."
    elif mb.acl == "421-unable":
        t += 21000 + w.rng.randint(0, 40)
        text = "421 4.2.1 Unable to connect"
    elif mb.acl == "2007-failed":
        t += 21000 + w.rng.randint(0, 40)
        text = (
            f"Connection attempt failed: A connection attempt failed because the connected "
            f"party did not properly respond after a period of time, or established "
            f"connection failed because connected host has failed to respond {ep}"
        )
    else:
        t += 21000 + w.rng.randint(0, 40)
        text = "Failed to connect. Winsock error code: 10060, Win32 error code: 10060."
        if s.modern:
            text = text[:-1] + (
                f", Destination domain: {r.site.name}, Error Message: A "
                "connection attempt failed because the connected party did "
                "not properly respond after a period of time."
            )
    snd.add_ep(t, "", ep, "*", "", text)
    return Outcome(t, "fail", error="421 4.2.1 Unable to connect")
