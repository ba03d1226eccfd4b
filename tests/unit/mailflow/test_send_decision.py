"""The sending hub's decisions (spec 3.2) and its LastError text (spec 3.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitemail.mailflow.send_decision import (
    CANNOT_ACHIEVE_EXCHANGE_AUTH,
    CANNOT_LOAD_INTERNAL_CERTIFICATE,
    CONNECTION_DROPPED,
    GSSAPI_UNAVAILABLE,
    REQUIRE_BASIC_AUTH,
    REQUIRE_STARTTLS_FOR_BASIC_AUTH,
    STARTTLS_REQUIRED,
    TEMPORARY_AUTH_FAILURE,
    UNABLE_TO_CONNECT,
    Action,
    SendAuth,
    SendPolicy,
    SessionState,
    TlsKind,
    after_basic_auth,
    after_exchange_auth,
    after_hello,
    last_error,
    mail_parameters,
    rcpt_parameters,
    remote_server_returned,
    use_chunking,
)
from sitemail.protocols.smtp import EhloReply, Reply, parse_ehlo_reply


def ehlo(*keywords: str) -> EhloReply:
    return parse_ehlo_reply(Reply.of(250, "EX02.contoso.com Hello [10.1.0.11]", *keywords))


# Spec 2.3 (a): a 2010 Default connector before TLS.
DEFAULT_PLAIN = ehlo(
    "SIZE",
    "PIPELINING",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "STARTTLS",
    "X-ANONYMOUSTLS",
    "AUTH NTLM",
    "X-EXPS GSSAPI NTLM",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "XEXCH50",
    "XRDST",
    "XSHADOW",
)
# Spec 2.3 (b): the same connector after X-ANONYMOUSTLS.
DEFAULT_AFTER_ANONYMOUS_TLS = ehlo(
    "SIZE",
    "PIPELINING",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "AUTH NTLM LOGIN",
    "X-EXPS EXCHANGEAUTH GSSAPI NTLM",
    "X-EXCHANGEAUTH SHA256",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "XEXCH50",
    "XRDST",
    "XSHADOW",
)
# Spec 3.5: behind an ASA with inspect esmtp (Cisco 118550's sample).
ASA_MASKED = ehlo("8BITMIME", "SIZE 14680064", "XXXXXXXA")
# A connector without ExchangeServer auth (the Client connector, spec 2.3 (e)).
NO_EXCHANGE_AUTH_WITH_STARTTLS = ehlo(
    "SIZE 10485760", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES", "STARTTLS", "AUTH NTLM"
)
NO_EXCHANGE_AUTH_PLAIN = ehlo("SIZE 10485760", "PIPELINING", "8BITMIME")
# Anonymous TLS is up but the receiver offers no X-EXPS at all.
TLS_NO_XEXPS = ehlo("SIZE", "PIPELINING", "AUTH NTLM LOGIN", "CHUNKING")
# An Edge-style connector (spec 2.3 (c)): X-EXPS NTLM only, never EXCHANGEAUTH.
EDGE_AFTER_TLS = ehlo("SIZE", "X-EXPS NTLM", "XEXCH50", "XSHADOW")
# A pre-2010 peer offering plain X-EXPS GSSAPI (what a 2003 routing group does).
GSSAPI_ONLY = ehlo("SIZE", "X-EXPS GSSAPI NTLM")
HELO_OK = Reply.of(250, "EX02.contoso.com Hello [10.1.0.11]")

PLAIN = SessionState()
ANON = SessionState(tls=TlsKind.ANONYMOUS)
STARTTLS_UP = SessionState(tls=TlsKind.STARTTLS)
INTRA = SendPolicy.intra_org()
NO_CERT = SendPolicy.intra_org(internal_certificate=False)
DOWNGRADED = SendPolicy.intra_org(gssapi_exchange_auth=True)
SMART = SendPolicy(SendAuth.NONE)
EXT_AUTH = SendPolicy(SendAuth.EXTERNAL_AUTHORITATIVE)
REQ_TLS = SendPolicy(SendAuth.NONE, require_tls=True)
BASIC = SendPolicy(SendAuth.BASIC_AUTH)
BASIC_TLS = SendPolicy(SendAuth.BASIC_AUTH_REQUIRE_TLS)


# Every row: (why, hello reply, session, policy, expected action, expected reply or None).
TREE = [
    # --- spec 3.2 consequences table, intra-organization connector
    (
        "receiver lacks ExchangeServer auth, offers STARTTLS: STARTTLS does not help",
        NO_EXCHANGE_AUTH_WITH_STARTTLS,
        PLAIN,
        INTRA,
        Action.FAIL_OVER,
        CANNOT_ACHIEVE_EXCHANGE_AUTH,
    ),
    (
        "receiver lacks ExchangeServer auth, no STARTTLS",
        NO_EXCHANGE_AUTH_PLAIN,
        PLAIN,
        INTRA,
        Action.FAIL_OVER,
        CANNOT_ACHIEVE_EXCHANGE_AUTH,
    ),
    (
        "firewall masked X-ANONYMOUSTLS/X-EXPS into 250 XXXXXXXA",
        ASA_MASKED,
        PLAIN,
        INTRA,
        Action.FAIL_OVER,
        CANNOT_ACHIEVE_EXCHANGE_AUTH,
    ),
    (
        "anonymous TLS up, no X-EXPS after it: go on unauthenticated",
        TLS_NO_XEXPS,
        ANON,
        INTRA,
        Action.CONTINUE_UNAUTHENTICATED,
        None,
    ),
    (
        "anonymous TLS up, X-EXPS without EXCHANGEAUTH (Edge-style): unauthenticated",
        EDGE_AFTER_TLS,
        ANON,
        INTRA,
        Action.CONTINUE_UNAUTHENTICATED,
        None,
    ),
    # --- spec 3.1/3.2 the normal handshake
    (
        "2010 Default connector, plain: X-ANONYMOUSTLS first",
        DEFAULT_PLAIN,
        PLAIN,
        INTRA,
        Action.ANONYMOUS_TLS,
        None,
    ),
    (
        "2010 Default connector after X-ANONYMOUSTLS: X-EXPS EXCHANGEAUTH",
        DEFAULT_AFTER_ANONYMOUS_TLS,
        ANON,
        INTRA,
        Action.EXCHANGE_AUTH,
        None,
    ),
    (
        "no internal transport certificate",
        DEFAULT_PLAIN,
        PLAIN,
        NO_CERT,
        Action.FAIL_OVER,
        CANNOT_LOAD_INTERNAL_CERTIFICATE,
    ),
    (
        "X-ANONYMOUSTLS refused (not 220): cannot achieve Exchange auth",
        DEFAULT_PLAIN,
        SessionState(tls_refused=True),
        INTRA,
        Action.FAIL_OVER,
        CANNOT_ACHIEVE_EXCHANGE_AUTH,
    ),
    (
        "X-EXPS GSSAPI towards a 2003 routing group / downgraded auth",
        GSSAPI_ONLY,
        PLAIN,
        DOWNGRADED,
        Action.GSSAPI_EXCHANGE_AUTH,
        None,
    ),
    (
        "X-EXPS GSSAPI offered but downgraded auth not allowed",
        GSSAPI_ONLY,
        PLAIN,
        INTRA,
        Action.FAIL_OVER,
        CANNOT_ACHIEVE_EXCHANGE_AUTH,
    ),
    (
        "EXCHANGEAUTH is preferred to GSSAPI even when downgraded auth is allowed",
        DEFAULT_AFTER_ANONYMOUS_TLS,
        ANON,
        DOWNGRADED,
        Action.EXCHANGE_AUTH,
        None,
    ),
    (
        "HELO-only peer: its HELO reply has no extensions",
        HELO_OK,
        SessionState(helo=True),
        INTRA,
        Action.FAIL_OVER,
        CANNOT_ACHIEVE_EXCHANGE_AUTH,
    ),
    # --- replies to EHLO / HELO
    (
        "5xx to EHLO: send HELO",
        Reply.of(500, "Unrecognized command", enhanced="5.3.3"),
        PLAIN,
        INTRA,
        Action.SEND_HELO,
        None,
    ),
    (
        "5xx to EHLO on a smart host: HELO too",
        Reply.of(502, "Command not implemented"),
        PLAIN,
        SMART,
        Action.SEND_HELO,
        None,
    ),
    (
        "4xx to EHLO: fail over with it",
        Reply.of(421, "Service not available", enhanced="4.3.2"),
        PLAIN,
        INTRA,
        Action.FAIL_OVER,
        Reply.of(421, "Service not available", enhanced="4.3.2"),
    ),
    (
        "5xx to HELO as well: fail over with it",
        Reply.of(554, "go away", enhanced="5.7.1"),
        SessionState(helo=True),
        SMART,
        Action.FAIL_OVER,
        Reply.of(554, "go away", enhanced="5.7.1"),
    ),
    # --- smart host connectors, spec 3.2 last paragraph
    (
        "auth None: opportunistic STARTTLS",
        NO_EXCHANGE_AUTH_WITH_STARTTLS,
        PLAIN,
        SMART,
        Action.STARTTLS,
        None,
    ),
    (
        "auth None, no STARTTLS: plain SMTP",
        NO_EXCHANGE_AUTH_PLAIN,
        PLAIN,
        SMART,
        Action.PROCEED,
        None,
    ),
    ("auth None, masked EHLO: plain SMTP", ASA_MASKED, PLAIN, SMART, Action.PROCEED, None),
    (
        "auth None after STARTTLS: proceed",
        DEFAULT_AFTER_ANONYMOUS_TLS,
        STARTTLS_UP,
        SMART,
        Action.PROCEED,
        None,
    ),
    (
        "auth None, STARTTLS refused: plain SMTP",
        NO_EXCHANGE_AUTH_WITH_STARTTLS,
        SessionState(tls_refused=True),
        SMART,
        Action.PROCEED,
        None,
    ),
    (
        "auth None never uses X-ANONYMOUSTLS",
        DEFAULT_PLAIN,
        PLAIN,
        SMART,
        Action.STARTTLS,
        None,
    ),
    (
        "ExternalAuthoritative: opportunistic STARTTLS",
        NO_EXCHANGE_AUTH_WITH_STARTTLS,
        PLAIN,
        EXT_AUTH,
        Action.STARTTLS,
        None,
    ),
    ("ExternalAuthoritative: plain", ASA_MASKED, PLAIN, EXT_AUTH, Action.PROCEED, None),
    (
        "RequireTLS, STARTTLS offered",
        NO_EXCHANGE_AUTH_WITH_STARTTLS,
        PLAIN,
        REQ_TLS,
        Action.STARTTLS,
        None,
    ),
    (
        "RequireTLS, no STARTTLS",
        ASA_MASKED,
        PLAIN,
        REQ_TLS,
        Action.FAIL_OVER,
        STARTTLS_REQUIRED,
    ),
    (
        "RequireTLS, STARTTLS refused",
        NO_EXCHANGE_AUTH_WITH_STARTTLS,
        SessionState(tls_refused=True),
        REQ_TLS,
        Action.FAIL_OVER,
        STARTTLS_REQUIRED,
    ),
    (
        "RequireTLS after HELO",
        HELO_OK,
        SessionState(helo=True),
        REQ_TLS,
        Action.FAIL_OVER,
        STARTTLS_REQUIRED,
    ),
    (
        "RequireTLS, TLS up: proceed",
        NO_EXCHANGE_AUTH_PLAIN,
        STARTTLS_UP,
        REQ_TLS,
        Action.PROCEED,
        None,
    ),
    # --- basic authentication
    (
        "BasicAuthRequireTLS, no STARTTLS",
        ehlo("SIZE", "AUTH LOGIN"),
        PLAIN,
        BASIC_TLS,
        Action.FAIL_OVER,
        REQUIRE_STARTTLS_FOR_BASIC_AUTH,
    ),
    (
        "BasicAuthRequireTLS, STARTTLS offered",
        NO_EXCHANGE_AUTH_WITH_STARTTLS,
        PLAIN,
        BASIC_TLS,
        Action.STARTTLS,
        None,
    ),
    (
        "BasicAuthRequireTLS, STARTTLS refused",
        NO_EXCHANGE_AUTH_WITH_STARTTLS,
        SessionState(tls_refused=True),
        BASIC_TLS,
        Action.FAIL_OVER,
        REQUIRE_STARTTLS_FOR_BASIC_AUTH,
    ),
    (
        "BasicAuthRequireTLS, TLS up, AUTH LOGIN offered",
        ehlo("SIZE", "AUTH NTLM LOGIN"),
        STARTTLS_UP,
        BASIC_TLS,
        Action.BASIC_AUTH,
        None,
    ),
    (
        "BasicAuthRequireTLS, TLS up, AUTH without LOGIN",
        ehlo("SIZE", "AUTH NTLM"),
        STARTTLS_UP,
        BASIC_TLS,
        Action.FAIL_OVER,
        REQUIRE_BASIC_AUTH,
    ),
    (
        "BasicAuth, no AUTH at all",
        NO_EXCHANGE_AUTH_PLAIN,
        PLAIN,
        BASIC,
        Action.FAIL_OVER,
        REQUIRE_BASIC_AUTH,
    ),
    (
        "BasicAuth, AUTH LOGIN in plain text is allowed",
        ehlo("SIZE", "AUTH LOGIN"),
        PLAIN,
        BASIC,
        Action.BASIC_AUTH,
        None,
    ),
    (
        "BasicAuth takes opportunistic STARTTLS first",
        ehlo("STARTTLS", "AUTH LOGIN"),
        PLAIN,
        BASIC,
        Action.STARTTLS,
        None,
    ),
    (
        "BasicAuth, TLS up, AUTH LOGIN offered",
        ehlo("AUTH LOGIN"),
        STARTTLS_UP,
        BASIC,
        Action.BASIC_AUTH,
        None,
    ),
]


@pytest.mark.parametrize(
    ("hello", "state", "policy", "action", "reply"),
    [row[1:] for row in TREE],
    ids=[row[0] for row in TREE],
)
def test_after_hello(
    hello: EhloReply | Reply,
    state: SessionState,
    policy: SendPolicy,
    action: Action,
    reply: Reply | None,
) -> None:
    step = after_hello(hello, state, policy)
    assert step.action is action
    assert step.reply == reply


def test_synthetic_failure_is_logged_as_its_reply_text() -> None:
    step = after_hello(ASA_MASKED, PLAIN, INTRA)
    assert step.log == ("451 5.7.3 Cannot achieve Exchange Server authentication",)


def test_require_tls_logs_the_connector_reason_then_the_reply() -> None:
    step = after_hello(ASA_MASKED, PLAIN, REQ_TLS)
    assert step.log == (
        "Connector is configured to send mail only over TLS connections and remote doesn't "
        "support TLS",
        "451 5.7.3 STARTTLS is required to send mail",
    )


def test_a_remote_failure_reply_is_not_logged_again() -> None:
    # The 4xx came over the wire and is already a "<" row.
    assert after_hello(Reply.of(421, "bye", enhanced="4.3.2"), PLAIN, INTRA).log == ()


def test_synthetic_reply_texts_are_exchanges() -> None:
    assert [
        str(r)
        for r in (
            CANNOT_ACHIEVE_EXCHANGE_AUTH,
            CANNOT_LOAD_INTERNAL_CERTIFICATE,
            STARTTLS_REQUIRED,
            REQUIRE_STARTTLS_FOR_BASIC_AUTH,
            REQUIRE_BASIC_AUTH,
            TEMPORARY_AUTH_FAILURE,
            CONNECTION_DROPPED,
            UNABLE_TO_CONNECT,
        )
    ] == [
        "451 5.7.3 Cannot achieve Exchange Server authentication",
        "451 5.7.3 Cannot load Internal Transport Certificate. Exchange Server authentication"
        " failed.",
        "451 5.7.3 STARTTLS is required to send mail",
        "451 5.7.3 Require STARTTLS to do basic authentication",
        "451 5.7.3 Require basic authentication",
        "454 4.7.0 Temporary authentication failure",
        "421 4.4.2 Connection dropped",
        "421 4.2.1 Unable to connect",
    ]


# --- authentication replies ---------------------------------------------------------


def test_exchange_auth_235_with_a_good_mutual_blob_proceeds() -> None:
    assert after_exchange_auth(Reply.of(235, "eyJ9"), mutual_ok=True).action is Action.PROCEED


@pytest.mark.parametrize(
    "reply",
    [
        Reply.of(535, "Authentication unsuccessful", enhanced="5.7.3"),
        Reply.of(454, "Temporary authentication failure", enhanced="4.7.0"),
        Reply.of(504, "Unrecognized authentication type", enhanced="5.7.4"),
    ],
)
def test_refused_exchange_auth_is_454_and_fail_over(reply: Reply) -> None:
    step = after_exchange_auth(reply, mutual_ok=False)
    assert step.action is Action.FAIL_OVER
    assert str(step.reply) == "454 4.7.0 Temporary authentication failure"
    assert step.log == (
        f"Outbound Authentication failed with {reply}",
        "454 4.7.0 Temporary authentication failure",
    )


def test_exchange_auth_235_with_a_bad_mutual_blob_fails_over() -> None:
    step = after_exchange_auth(Reply.of(235, "garbage"), mutual_ok=False)
    assert step.action is Action.FAIL_OVER
    assert step.reply == TEMPORARY_AUTH_FAILURE


def test_gssapi_exchange_auth_is_an_honest_454() -> None:
    assert GSSAPI_UNAVAILABLE.action is Action.FAIL_OVER
    assert GSSAPI_UNAVAILABLE.reply == TEMPORARY_AUTH_FAILURE
    assert GSSAPI_UNAVAILABLE.log[-1] == "454 4.7.0 Temporary authentication failure"


def test_basic_auth_replies() -> None:
    assert after_basic_auth(Reply.of(235, "ok", enhanced="2.7.0")).action is Action.PROCEED
    refused = Reply.of(535, "Authentication unsuccessful", enhanced="5.7.3")
    step = after_basic_auth(refused)
    assert (step.action, step.reply) == (Action.FAIL_OVER, refused)


# --- LastError, spec 3.3, byte for byte ------------------------------------------------

SUFFIX = (
    " Attempted failover to alternate host, but that did not succeed. Either there are no"
    " alternate hosts, or delivery failed to all alternate hosts."
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            CANNOT_ACHIEVE_EXCHANGE_AUTH,
            # KB979175, verbatim.
            '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve'
            ' Exchange Server authentication." Attempted failover to alternate host, but that did'
            " not succeed. Either there are no alternate hosts, or delivery failed to all"
            " alternate hosts.",
        ),
        (
            TEMPORARY_AUTH_FAILURE,
            # KB979174.
            '451 4.4.0 Primary target IP address responded with: "454 4.7.0 Temporary'
            ' authentication failure."' + SUFFIX,
        ),
        (
            Reply.of(421, "Connection timed out", enhanced="4.4.1"),
            # KB4051498.
            '451 4.4.0 Primary target IP address responded with: "421 4.4.1 Connection timed'
            ' out."' + SUFFIX,
        ),
        (
            UNABLE_TO_CONNECT,
            '451 4.4.0 Primary target IP address responded with: "421 4.2.1 Unable to connect."'
            + SUFFIX,
        ),
        (
            CONNECTION_DROPPED,
            '451 4.4.0 Primary target IP address responded with: "421 4.4.2 Connection'
            ' dropped."' + SUFFIX,
        ),
        (
            CANNOT_LOAD_INTERNAL_CERTIFICATE,
            # The reply's own final period is not doubled.
            '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot load Internal'
            ' Transport Certificate. Exchange Server authentication failed."' + SUFFIX,
        ),
    ],
)
def test_last_error(reply: Reply, expected: str) -> None:
    assert last_error(reply) == expected


def test_last_error_of_a_multiline_reply_is_one_line() -> None:
    text = last_error(Reply.of(421, "first", "second", enhanced="4.3.2"))
    assert "\n" not in text
    assert '"421-4.3.2 first 421 4.3.2 second."' in text


@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_last_error_wraps_any_reply_once(text: str) -> None:
    out = last_error(Reply.of(451, text, enhanced="4.7.0"))
    assert out.startswith('451 4.4.0 Primary target IP address responded with: "451 4.7.0')
    assert out.endswith(SUFFIX)
    assert '.."' not in out


def test_ndr_diagnostic() -> None:
    reply = Reply.of(550, "Unable to relay", enhanced="5.7.1")
    assert remote_server_returned(reply) == "Remote Server returned '550 5.7.1 Unable to relay'"


# --- parameters ---------------------------------------------------------------------------


def test_mail_parameters_only_what_is_offered() -> None:
    def params(ext: EhloReply | None) -> dict[str, str | None]:
        return mail_parameters(ext, size=2048, body_type="8BITMIME", ret="hdrs", envid="QQ+2B1")

    assert params(DEFAULT_PLAIN) == {
        "SIZE": "2048",
        "BODY": "8BITMIME",
        "RET": "HDRS",
        "ENVID": "QQ+2B1",
    }
    assert params(ASA_MASKED) == {"SIZE": "2048", "BODY": "8BITMIME"}
    assert params(ehlo("PIPELINING")) == {}
    assert params(None) == {}


def test_binarymime_needs_binarymime_and_chunking() -> None:
    assert mail_parameters(DEFAULT_PLAIN, body_type="BINARYMIME") == {"BODY": "BINARYMIME"}
    assert mail_parameters(ehlo("BINARYMIME"), body_type="BINARYMIME") == {}
    assert use_chunking(DEFAULT_PLAIN)
    assert not use_chunking(ASA_MASKED)
    assert not use_chunking(None)


def test_rcpt_parameters_need_dsn() -> None:
    assert rcpt_parameters(DEFAULT_PLAIN, notify="success,failure", orcpt="rfc822;b@x") == {
        "NOTIFY": "SUCCESS,FAILURE",
        "ORCPT": "rfc822;b@x",
    }
    assert rcpt_parameters(ASA_MASKED, notify="never", orcpt="rfc822;b@x") == {}


# --- properties of the whole tree -------------------------------------------------------------

KEYWORDS = [
    "STARTTLS",
    "X-ANONYMOUSTLS",
    "AUTH NTLM",
    "AUTH NTLM LOGIN",
    "X-EXPS GSSAPI NTLM",
    "X-EXPS EXCHANGEAUTH GSSAPI NTLM",
    "X-EXPS NTLM",
    "CHUNKING",
    "XXXXXXXA",
]
SYNTHETIC = {
    CANNOT_ACHIEVE_EXCHANGE_AUTH,
    CANNOT_LOAD_INTERNAL_CERTIFICATE,
    STARTTLS_REQUIRED,
    REQUIRE_STARTTLS_FOR_BASIC_AUTH,
    REQUIRE_BASIC_AUTH,
}
states = st.builds(
    SessionState,
    tls=st.sampled_from([None, TlsKind.STARTTLS, TlsKind.ANONYMOUS]),
    tls_refused=st.booleans(),
)
policies = st.builds(
    SendPolicy,
    auth=st.sampled_from(list(SendAuth)),
    require_tls=st.booleans(),
    internal_certificate=st.booleans(),
    gssapi_exchange_auth=st.booleans(),
)


@given(st.lists(st.sampled_from(KEYWORDS), unique=True), states, policies)
def test_tree_properties(keywords: list[str], state: SessionState, policy: SendPolicy) -> None:
    step = after_hello(ehlo(*keywords), state, policy)
    if step.action is Action.FAIL_OVER:
        # A positive EHLO only ever fails over with a reply the sender makes up,
        # and that reply is what the log's last information row says.
        assert step.reply in SYNTHETIC
        assert step.log[-1] == str(step.reply)
    else:
        assert step.reply is None
    if state.secure:
        assert step.action not in (Action.ANONYMOUS_TLS, Action.STARTTLS)
    if policy.auth is SendAuth.EXCHANGE_SERVER:
        # Exchange authentication never uses STARTTLS, never plain AUTH.
        assert step.action not in (Action.STARTTLS, Action.BASIC_AUTH, Action.PROCEED)
    else:
        assert step.action not in (
            Action.ANONYMOUS_TLS,
            Action.EXCHANGE_AUTH,
            Action.GSSAPI_EXCHANGE_AUTH,
            Action.CONTINUE_UNAUTHENTICATED,
        )
    if policy.auth in (SendAuth.NONE, SendAuth.EXTERNAL_AUTHORITATIVE) and not policy.require_tls:
        # Opportunistic TLS never fails a session.
        assert step.action in (Action.STARTTLS, Action.PROCEED)
