"""What the lab's Internet host answers, and where its mail goes (pure decisions).

It behaves like a small Postfix: ``220 mail.fabrikam.com ESMTP``, STARTTLS,
AUTH LOGIN/PLAIN only inside TLS, and the classic relay rule (mail for its
own domains from anyone, for users that exist; for any other domain only
from a user who authenticated).  Port 25 is the MX; port 587 is submission.
Its routing sends local recipients to its own mailboxes and everything for
an organization's accepted domain to that organization's "MX" (the hubs
whose receive connector lets this host in anonymously).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime

from sitemail.mta.profile import Limits, Replies, SessionFacts
from sitemail.org.model import Organization, PermissionGroup, ReceiveConnector, Server
from sitemail.org.passwords import verify_password
from sitemail.protocols.smtp import Reply
from sitemail.transport.queue import DeliveryType, FailRecipient, NextHop, RouteDecision

SMTP_PORT = 25
SUBMISSION_PORT = 587
#: The next hop (NextHopDomain) of the queue for this host's own mailboxes.
LOCAL_NEXT_HOP = "local"


def _r(code: int, enhanced: str | None, text: str) -> Reply:
    return Reply(code, enhanced, (text,))


# Postfix's replies (general knowledge of a default Postfix 3.x smtpd with
# smtpd_helo_required=yes, disable_vrfy_command=yes, smtpd_tls_auth_only=yes).
POSTFIX_REPLIES = Replies(
    hello_first=_r(503, "5.5.1", "Error: send HELO/EHLO first"),
    nested_mail=_r(503, "5.5.1", "Error: nested MAIL command"),
    need_mail=_r(503, "5.5.1", "Error: need MAIL command"),
    need_rcpt=_r(503, "5.5.1", "Error: need RCPT command"),
    bad_sender=_r(501, "5.1.7", "Bad sender address syntax"),
    bad_recipient=_r(501, "5.1.3", "Bad recipient address syntax"),
    bad_parameter=_r(555, "5.5.4", "Unsupported option"),
    syntax_error=_r(501, "5.5.4", "Syntax error in parameters or arguments"),
    unknown_command=_r(502, "5.5.2", "Error: command not recognized"),
    line_too_long=_r(500, "5.5.2", "Error: line too long"),
    data_start=_r(354, None, "End data with <CR><LF>.<CR><LF>"),
    reset=_r(250, "2.0.0", "Ok"),
    noop=_r(250, "2.0.0", "Ok"),
    vrfy=_r(502, "5.5.1", "VRFY command is disabled"),
    help=_r(502, "5.5.2", "Error: command not recognized"),
    closing=_r(221, "2.0.0", "Bye"),
    tls_ready=_r(220, "2.0.0", "Ready to start TLS"),
    tls_active=_r(554, "5.5.1", "Error: TLS already active"),
    auth_unavailable=_r(503, "5.5.1", "Error: authentication not enabled"),
    auth_in_transaction=_r(503, "5.5.1", "Error: MAIL transaction in progress"),
    auth_already=_r(503, "5.5.1", "Error: already authenticated"),
    auth_bad_mechanism=_r(
        535, "5.7.8", "Error: authentication failed: Invalid authentication mechanism"
    ),
    auth_ok=_r(235, "2.7.0", "Authentication successful"),
    auth_failed=_r(535, "5.7.8", "Error: authentication failed: authentication failure"),
    auth_cancelled=_r(501, "5.7.0", "Authentication aborted"),
    size_exceeded=_r(552, "5.3.4", "Message size exceeds fixed limit"),
    too_many_recipients=_r(452, "4.5.3", "Error: too many recipients"),
    too_many_hops=_r(554, "5.4.0", "Error: too many hops"),
    queue_error=_r(451, "4.3.0", "Error: queue file write error"),
    timeout=_r(421, "4.4.2", "Error: timeout exceeded"),
    too_many_errors=_r(421, "4.7.0", "Error: too many errors"),
    busy=_r(421, "4.3.2", "Service currently unavailable"),
)
# Postfix's message_size_limit default.
POSTFIX_LIMITS = Limits(max_message_size=10_240_000)
MUST_STARTTLS = _r(530, "5.7.0", "Must issue a STARTTLS command first")


def user_unknown(address: str) -> Reply:
    return _r(550, "5.1.1", f"<{address}>: Recipient address rejected: User unknown")


def relay_denied(address: str) -> Reply:
    return _r(554, "5.7.1", f"<{address}>: Relay access denied")


def client_rejected(ip: str) -> Reply:
    """Submission without authentication (``permit_sasl_authenticated, reject``)."""
    return _r(554, "5.7.1", f"<unknown[{ip}]>: Client host rejected: Access denied")


def domain_not_found(address: str) -> str:
    """The bounce for a domain that does not exist in the lab's world (no MX, no A)."""
    domain = address.rpartition("@")[2]
    return (
        f"550 5.4.4 <{address}>: Host or domain name not found. Name service error for "
        f"name={domain} type=A: Host not found"
    )


def queue_id(internal_id: int) -> str:
    """A Postfix-looking queue id (upper-case hex) for the store's InternalId."""
    return f"{internal_id:010X}"


# ---------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class InternetProfile:
    """The Internet host as an SMTP server: Postfix's voice and its relay rule."""

    hostname: str
    domains: frozenset[str]
    users: Mapping[str, str | None] = field(default_factory=dict)
    """Address (lower case) -> password hash."""
    limits: Limits = POSTFIX_LIMITS
    replies: Replies = POSTFIX_REPLIES
    chunking: bool = False

    def banner(self, now: datetime) -> str:
        return f"220 {self.hostname} ESMTP"

    def hello(self, facts: SessionFacts, *, ehlo: bool, tls_available: bool) -> Reply:
        if not ehlo:
            return Reply.of(250, self.hostname)
        lines = [self.hostname, "PIPELINING", f"SIZE {self.limits.max_message_size}"]
        if tls_available and not facts.secure:
            lines.append("STARTTLS")
        lines += list(self._auth_keywords(facts))
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME"]
        return Reply.of(250, *lines)

    def _auth_keywords(self, facts: SessionFacts) -> tuple[str, ...]:
        mechanisms = self.auth_mechanisms(facts)
        return (f"AUTH {' '.join(mechanisms)}",) if mechanisms else ()

    def hello_syntax(self, verb: str) -> Reply:
        return Reply(501, None, (f"Syntax: {verb} hostname",))

    def auth_mechanisms(self, facts: SessionFacts) -> tuple[str, ...]:
        # smtpd_tls_auth_only: passwords never cross the wire in clear.
        return ("LOGIN", "PLAIN") if facts.secure else ()

    def check_mail(self, facts: SessionFacts, sender: str) -> Reply | None:
        if facts.port == SUBMISSION_PORT and not facts.secure:
            return MUST_STARTTLS
        return None

    def check_rcpt(self, facts: SessionFacts, recipient: str) -> Reply | None:
        if facts.rcpt_count >= self.limits.max_recipients:
            return self.replies.too_many_recipients
        if facts.port == SUBMISSION_PORT and facts.user is None:
            return client_rejected(facts.remote_ip)
        domain = recipient.rpartition("@")[2].lower()
        if domain in self.domains:
            if recipient.lower() in self.users:
                return None
            return user_unknown(recipient)
        if facts.user is None:
            return relay_denied(recipient)
        return None

    def sender_ok(self, sender: str) -> Reply:
        return _r(250, "2.1.0", "Ok")

    def recipient_ok(self, recipient: str) -> Reply:
        return _r(250, "2.1.5", "Ok")

    def queued(self, message_id: str, queue_id: str) -> Reply:
        return _r(250, "2.0.0", f"Ok: queued as {queue_id}")

    def received(self, facts: SessionFacts, helo: str, now: datetime) -> bytes:
        protocol = "ESMTP" + ("S" if facts.secure else "") + ("A" if facts.user else "")
        text = (
            f"Received: from {helo or 'unknown'} (unknown [{facts.remote_ip}])\r\n"
            f"\tby {self.hostname} with {protocol};\r\n"
            f"\t{format_datetime(now)}\r\n"
        )
        return text.encode("ascii", errors="replace")

    def login(self, user: str, password: str) -> str | None:
        name = user.strip().lower()
        # "carol" or "carol@fabrikam.com", as a mail client may be set up either way.
        candidates = [name] if "@" in name else [f"{name}@{d}" for d in sorted(self.domains)]
        for address in candidates:
            if address in self.users:
                return address if verify_password(password, self.users[address]) else None
        return None


# ---------------------------------------------------------------------------- routing


def route_recipient(
    address: str,
    *,
    domains: frozenset[str],
    users: Mapping[str, object],
    organization: Organization | None,
) -> RouteDecision:
    """Where one accepted recipient goes: this host's mailboxes, an MX, or back."""
    domain = address.rpartition("@")[2].lower()
    if domain in domains:
        if address.lower() in users:
            return NextHop(DeliveryType.MAPI_DELIVERY, LOCAL_NEXT_HOP)
        # The user went away between RCPT and delivery.
        return FailRecipient(str(user_unknown(address)))
    if organization is not None and organization.is_accepted(domain):
        return NextHop(DeliveryType.DNS_CONNECTOR_DELIVERY, domain)
    return FailRecipient(domain_not_found(address))


def mx_servers(
    domain: str,
    *,
    organization: Organization | None,
    servers: list[Server],
    connectors: list[ReceiveConnector],
    source: str,
) -> list[tuple[Server, int]]:
    """The "MX" of ``domain`` for a sender at ``source``: (hub, port) in name order.

    The hubs that take anonymous mail from ``source`` for an accepted domain
    of the organization, on the port of that receive connector.
    """
    if organization is None or not organization.is_accepted(domain):
        return []
    out: list[tuple[Server, int]] = []
    for server in sorted(servers, key=lambda s: s.name.lower()):
        if not server.is_hub:
            continue
        for c in connectors:
            if (
                c.server.lower() == server.name.lower()
                and c.enabled
                and PermissionGroup.ANONYMOUS_USERS in c.permission_groups
                and any(source in r for r in c.ranges)
            ):
                ports = [p for _, p in c.ports]
                out.append((server, SMTP_PORT if SMTP_PORT in ports else ports[0]))
                break
    return out
