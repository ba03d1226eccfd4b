"""What the sending hub does next in an SMTP session, as pure functions (spec 3.2-3.4).

The hub sender (:mod:`.smtp_sender`) does the I/O; every choice Exchange 2010
makes on the sending side of a connection is made here, from what the
receiver advertised, what the session already did and what the send
connector requires:

- :func:`after_hello` is the decision tree of spec 3.2, run after every
  EHLO (or HELO) reply: fall back to HELO, fail over, X-ANONYMOUSTLS,
  STARTTLS, X-EXPS EXCHANGEAUTH, X-EXPS GSSAPI, AUTH LOGIN, or go on to MAIL;
- :func:`after_exchange_auth` and :func:`after_basic_auth` judge the reply to
  the authentication;
- :func:`last_error` writes the queue's LastError once every target failed
  (spec 3.3), :func:`remote_server_returned` the NDR diagnostic (spec 5.5);
- :func:`mail_parameters` / :func:`rcpt_parameters` pick the ESMTP
  parameters the receiver understands.

A failure that ends the attempt on one target is a :class:`Step` with
``Action.FAIL_OVER`` and the reply kept for LastError; the replies the
sender makes up itself (never sent on the wire, spec 3.4) are the constants
below, with their exact Exchange text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sitemail.protocols.smtp import EhloReply, Reply, replies

# --------------------------------------------------------------------------
# Synthetic replies (spec 3.2-3.4): made by the sender, shown in LastError,
# the SmtpSend log and NDRs.
# --------------------------------------------------------------------------

# Exchange writes these 4xx replies with a 5.x.x enhanced code, which RFC 3463
# would not allow (the class must match); Reply keeps the code in the text so
# that they read exactly as Exchange writes them.
CANNOT_ACHIEVE_EXCHANGE_AUTH = Reply.of(451, "5.7.3 Cannot achieve Exchange Server authentication")
CANNOT_LOAD_INTERNAL_CERTIFICATE = Reply.of(
    451,
    "5.7.3 Cannot load Internal Transport Certificate. Exchange Server authentication failed.",
)
STARTTLS_REQUIRED = Reply.of(451, "5.7.3 STARTTLS is required to send mail")
REQUIRE_STARTTLS_FOR_BASIC_AUTH = Reply.of(451, "5.7.3 Require STARTTLS to do basic authentication")
REQUIRE_BASIC_AUTH = Reply.of(451, "5.7.3 Require basic authentication")
TEMPORARY_AUTH_FAILURE = replies.TEMPORARY_AUTH_FAILURE  # 454 4.7.0, a refused X-EXPS
CONNECTION_DROPPED = replies.CONNECTION_DROPPED  # 421 4.4.2, the peer went away mid-session
CONNECTION_TIMED_OUT = replies.CONNECTION_TIMED_OUT  # 421 4.4.1, no reply in time
# Spec 3.3 marks the 2010 wording of a refused or timed-out connection
# "confidence: general knowledge" (2013+ builds write "441 4.4.1 Error
# encountered while communicating with primary target IP address ...").
# Kept as one constant so it is changed in one place once verified.
UNABLE_TO_CONNECT = Reply(421, "4.2.1", ("Unable to connect",))
# KB4051498 (spec 3.3, 4.4) shows "TLS negotiation failed with error
# UnknownCredentials" in the SmtpSend log paired with the LastError reply
# "421 4.4.1 Connection timed out": that pairing is the only evidence of what a
# failed handshake leaves in LastError, so a failed handshake reports it.
TLS_NEGOTIATION_FAILED = replies.CONNECTION_TIMED_OUT

# SmtpSend log text for RequireTLS without STARTTLS (spec 3.2 consequences table).
REQUIRE_TLS_LOG = (
    "Connector is configured to send mail only over TLS connections and remote doesn't support TLS"
)
# Spec 3.2/4.4: the row the sender writes when X-EXPS fails; the status word
# Exchange puts there comes from its Kerberos layer (e.g. LogonDenied), which
# sitemail has not got: the refusing reply, or what sitemail checked, stands in.
OUTBOUND_AUTH_FAILED_LOG = "Outbound Authentication failed with {status}"
# What sitemail cannot do: GSSAPI Exchange authentication needs a Windows domain.
GSSAPI_UNAVAILABLE_LOG = (
    "X-EXPS GSSAPI (Exchange 2003 routing group or downgraded Exchange Server "
    "authentication) is not available in sitemail"
)

# --------------------------------------------------------------------------
# LastError (spec 3.3)
# --------------------------------------------------------------------------

LAST_ERROR_PREFIX = '451 4.4.0 Primary target IP address responded with: "'
LAST_ERROR_SUFFIX = (
    '." Attempted failover to alternate host, but that did not succeed. Either there are no '
    "alternate hosts, or delivery failed to all alternate hosts."
)


def reply_text(reply: Reply) -> str:
    """A reply on one line, as LastError and NDRs quote it (lines joined by a space)."""
    return " ".join(reply.wire_lines())


def last_error(reply: Reply) -> str:
    """The 2010 LastError after every target failed (spec 3.3), without 2013+'s wrapper.

    The template adds ``."`` after the reply; a reply that ends with its own
    period (``...authentication failed.``) loses it so the text never reads ``.."``.
    """
    inner = reply_text(reply)
    if inner.endswith("."):
        inner = inner[:-1]
    return f"{LAST_ERROR_PREFIX}{inner}{LAST_ERROR_SUFFIX}"


def remote_server_returned(reply: Reply) -> str:
    """The NDR diagnostic for a recipient the next hop refused (spec 5.5)."""
    return f"Remote Server returned '{reply_text(reply)}'"


# --------------------------------------------------------------------------
# What the connector requires, what the session did
# --------------------------------------------------------------------------


class SendAuth(StrEnum):
    """The authentication a send connector uses (``SmartHostAuthMechanism``).

    The implicit intra-organization connector uses ``ExchangeServer``.
    """

    NONE = "None"
    BASIC_AUTH = "BasicAuth"
    BASIC_AUTH_REQUIRE_TLS = "BasicAuthRequireTLS"
    EXCHANGE_SERVER = "ExchangeServer"
    EXTERNAL_AUTHORITATIVE = "ExternalAuthoritative"


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """What the send connector (and this server) bring to the session."""

    auth: SendAuth = SendAuth.NONE
    require_tls: bool = False
    """The connector's RequireTLS: no STARTTLS, no mail."""
    internal_certificate: bool = True
    """This server's internal transport certificate can be loaded (needed for X-ANONYMOUSTLS)."""
    gssapi_exchange_auth: bool = False
    """Plain ``X-EXPS GSSAPI`` is wanted: the next hop is an Exchange 2003 routing group
    (DeliveryType SmtpRelayToTiRg) or UseDowngradedExchangeServerAuth is on (spec 3.1)."""

    @classmethod
    def intra_org(
        cls, *, internal_certificate: bool = True, gssapi_exchange_auth: bool = False
    ) -> SendPolicy:
        """The implicit intra-organization send connector (hub to hub)."""
        return cls(
            SendAuth.EXCHANGE_SERVER,
            internal_certificate=internal_certificate,
            gssapi_exchange_auth=gssapi_exchange_auth,
        )


class TlsKind(StrEnum):
    STARTTLS = "STARTTLS"
    ANONYMOUS = "X-ANONYMOUSTLS"


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the session has done so far, as far as the decisions care."""

    tls: TlsKind | None = None
    """Which TLS is up (the handshake succeeded), if any."""
    helo: bool = False
    """The hello being judged is HELO's (EHLO got a 5xx)."""
    tls_refused: bool = False
    """STARTTLS or X-ANONYMOUSTLS was answered with something other than 220:
    it is not offered again in this session."""

    @property
    def secure(self) -> bool:
        return self.tls is not None


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


class Action(StrEnum):
    SEND_HELO = "send HELO"
    FAIL_OVER = "fail over"
    ANONYMOUS_TLS = "X-ANONYMOUSTLS"
    STARTTLS = "STARTTLS"
    EXCHANGE_AUTH = "X-EXPS EXCHANGEAUTH"
    GSSAPI_EXCHANGE_AUTH = "X-EXPS GSSAPI"
    BASIC_AUTH = "AUTH LOGIN"
    CONTINUE_UNAUTHENTICATED = "continue unauthenticated"
    """Anonymous TLS is up but no usable X-EXPS: the session goes on, the receiver
    will treat it as anonymous (spec 3.2, derived from 2013+ code)."""
    PROCEED = "proceed"
    """Nothing more to negotiate: MAIL FROM."""


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    reply: Reply | None = None
    """FAIL_OVER: the reply this target leaves for LastError."""
    log: tuple[str, ...] = field(default=())
    """Information rows (``*``) for the SmtpSend log, in order."""


def _fail(reply: Reply, *before: str) -> Step:
    # A reply the sender makes up is recorded as an information row whose text
    # is the reply (spec 4.5 shows it that way; its exact shape is unverified).
    return Step(Action.FAIL_OVER, reply, (*before, reply_text(reply)))


# Steps for the sender to take when the tree says X-EXPS GSSAPI (which sitemail
# cannot do: an honest failure, as a failed Kerberos logon would be).
GSSAPI_UNAVAILABLE = _fail(TEMPORARY_AUTH_FAILURE, GSSAPI_UNAVAILABLE_LOG)


def after_hello(hello: EhloReply | Reply, state: SessionState, policy: SendPolicy) -> Step:
    """The next step after a reply to EHLO or HELO (spec 3.2).

    ``hello`` is the parsed EHLO reply when it was positive, otherwise the
    reply itself; after HELO it is HELO's reply (positive: no extensions).
    """
    if isinstance(hello, Reply):
        if hello.is_permanent and not state.helo:
            # A HELO-only peer: it gets HELO, and then cannot offer what Exchange
            # authentication needs (the tree below fails it with 451 5.7.3).
            return Step(Action.SEND_HELO)
        if not hello.is_positive:
            return Step(Action.FAIL_OVER, hello)  # the remote's reply, already logged
        ext = EhloReply(hello.text)
    else:
        ext = hello
    starttls = "STARTTLS" in ext and not state.secure and not state.tls_refused
    if policy.require_tls and not state.secure and not starttls:
        return _fail(STARTTLS_REQUIRED, REQUIRE_TLS_LOG)
    if policy.auth is SendAuth.EXCHANGE_SERVER:
        return _exchange_server(ext, state, policy)
    if policy.auth in (SendAuth.BASIC_AUTH, SendAuth.BASIC_AUTH_REQUIRE_TLS):
        if starttls:
            return Step(Action.STARTTLS)
        if policy.auth is SendAuth.BASIC_AUTH_REQUIRE_TLS and not state.secure:
            return _fail(REQUIRE_STARTTLS_FOR_BASIC_AUTH)
        if not ext.has("AUTH", "LOGIN"):
            return _fail(REQUIRE_BASIC_AUTH)
        return Step(Action.BASIC_AUTH)
    # None, ExternalAuthoritative: opportunistic TLS only (spec 3.2).
    if starttls:
        return Step(Action.STARTTLS)
    return Step(Action.PROCEED)


def _exchange_server(ext: EhloReply, state: SessionState, policy: SendPolicy) -> Step:
    # STARTTLS plays no part: Exchange authentication never uses it (spec 3.2).
    if "X-ANONYMOUSTLS" in ext and not state.secure and not state.tls_refused:
        if not policy.internal_certificate:
            return _fail(CANNOT_LOAD_INTERNAL_CERTIFICATE)
        return Step(Action.ANONYMOUS_TLS)
    if ext.has("X-EXPS", "EXCHANGEAUTH"):
        return Step(Action.EXCHANGE_AUTH)
    if ext.has("X-EXPS", "GSSAPI") and policy.gssapi_exchange_auth:
        return Step(Action.GSSAPI_EXCHANGE_AUTH)
    if not state.secure:
        return _fail(CANNOT_ACHIEVE_EXCHANGE_AUTH)
    return Step(Action.CONTINUE_UNAUTHENTICATED)


def after_exchange_auth(reply: Reply, *, mutual_ok: bool) -> Step:
    """After ``X-EXPS EXCHANGEAUTH SHA256 <blob>``: 235 with a good mutual blob goes on.

    Anything else is a failed Exchange authentication: ``454 4.7.0 Temporary
    authentication failure`` and fail over (spec 3.2, KB979174), whatever the
    receiver answered.  ``mutual_ok`` says whether the 235's blob proved the
    receiver (checked by the caller with the TLS peer's certificate).
    """
    if reply.code == 235 and mutual_ok:
        return Step(Action.PROCEED)
    status = "an unverifiable mutual authentication" if reply.code == 235 else reply_text(reply)
    return _fail(TEMPORARY_AUTH_FAILURE, OUTBOUND_AUTH_FAILED_LOG.format(status=status))


def after_basic_auth(reply: Reply) -> Step:
    """After the AUTH LOGIN exchange: 2xx goes on, anything else fails over with it."""
    if reply.is_positive:
        return Step(Action.PROCEED)
    return Step(Action.FAIL_OVER, reply)


# --------------------------------------------------------------------------
# MAIL / RCPT parameters
# --------------------------------------------------------------------------


def mail_parameters(
    ext: EhloReply | None,
    *,
    size: int | None = None,
    body_type: str | None = None,
    ret: str | None = None,
    envid: str | None = None,
) -> dict[str, str | None]:
    """The MAIL FROM parameters the receiver advertised support for.

    SIZE (RFC 1870) with the message size; BODY=8BITMIME (RFC 6152) or
    BODY=BINARYMIME (RFC 3030, needs CHUNKING too); RET/ENVID (RFC 3461) when
    DSN is offered.  ``envid`` is the xtext value as received.  After HELO
    (``ext`` None) there are none.
    """
    out: dict[str, str | None] = {}
    if ext is None:
        return out
    if size is not None and "SIZE" in ext:
        out["SIZE"] = str(size)
    body = body_type.upper() if body_type else None
    if body == "8BITMIME" and "8BITMIME" in ext:
        out["BODY"] = "8BITMIME"
    elif body == "BINARYMIME" and "BINARYMIME" in ext and "CHUNKING" in ext:
        out["BODY"] = "BINARYMIME"
    if "DSN" in ext:
        if ret:
            out["RET"] = ret.upper()
        if envid:
            out["ENVID"] = envid
    return out


def rcpt_parameters(
    ext: EhloReply | None, *, notify: str | None = None, orcpt: str | None = None
) -> dict[str, str | None]:
    """NOTIFY/ORCPT (RFC 3461, values as received) when the receiver offers DSN."""
    out: dict[str, str | None] = {}
    if ext is None or "DSN" not in ext:
        return out
    if notify:
        out["NOTIFY"] = notify.upper()
    if orcpt:
        out["ORCPT"] = orcpt
    return out


def use_chunking(ext: EhloReply | None) -> bool:
    """BDAT when CHUNKING is offered (Exchange hubs do), DATA otherwise."""
    return ext is not None and "CHUNKING" in ext


def use_pipelining(ext: EhloReply | None) -> bool:
    return ext is not None and "PIPELINING" in ext
