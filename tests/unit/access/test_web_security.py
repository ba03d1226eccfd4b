"""Sessions and their cookies, CSRF canaries, sign-in throttling, user names, the SSO token."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest

from sitemail.access.throttle import SignInThrottle, ThrottlePolicy
from sitemail.access.web.logon import find_mailbox, parse_user_name
from sitemail.access.web.sessions import (
    CADATA_COOKIE,
    SESSION_COOKIE,
    SessionStore,
    canary_matches,
)
from sitemail.access.web.sso import SsoError, SsoIssuer, SsoVerifier
from sitemail.clock import ManualClock
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import AcceptedDomain, Mailbox, Organization
from sitemail.org.pki import OrganizationPki

# ---------------------------------------------------------------- sessions and cookies


def test_session_cookies_are_httponly_secure_and_host_only() -> None:
    store = SessionStore(clock=ManualClock())
    _, cookies = store.create("adam", "mail.contoso.com", trusted=False)
    assert {c.name for c in cookies} == {SESSION_COOKIE, CADATA_COOKIE}
    for cookie in cookies:
        attrs = [a.strip().lower() for a in cookie.header().split(";")]
        assert "httponly" in attrs and "secure" in attrs and "samesite=lax" in attrs
        assert not any(a.startswith("domain=") for a in attrs)  # never a parent domain


def test_a_session_needs_both_cookies_and_its_own_host() -> None:
    store = SessionStore(clock=ManualClock())
    session, cookies = store.create("adam", "mail.contoso.com", trusted=False)
    sid, cadata = (c.value for c in cookies)
    assert store.find(sid, cadata, "mail.contoso.com") == session
    assert store.find(sid, None, "mail.contoso.com") is None
    assert store.find(sid, "0" * 64, "mail.contoso.com") is None
    assert store.find(sid, cadata, "ex-fl1.contoso.com") is None  # cookies belong to one host
    other = SessionStore(clock=ManualClock())  # another server cannot forge cadata
    assert other.find(sid, cadata, "mail.contoso.com") is None


@pytest.mark.parametrize(
    ("trusted", "idle_ok", "idle_gone"),
    [
        (False, timedelta(minutes=14), timedelta(minutes=16)),
        (True, timedelta(hours=7), timedelta(hours=9)),
    ],
)
def test_sessions_end_after_the_public_or_private_timeout(
    trusted: bool, idle_ok: timedelta, idle_gone: timedelta
) -> None:
    clock = ManualClock()
    store = SessionStore(clock=clock)
    _, cookies = store.create("adam", "h", trusted=trusted)
    sid, cadata = (c.value for c in cookies)
    clock.advance(idle_ok)
    assert store.find(sid, cadata, "h") is not None  # and that use restarts the idle time
    clock.advance(idle_gone)
    assert store.find(sid, cadata, "h") is None


def test_sign_out_ends_the_session_and_clears_the_cookies() -> None:
    store = SessionStore(clock=ManualClock())
    _, cookies = store.create("adam", "h", trusted=True)
    sid, cadata = (c.value for c in cookies)
    assert store.end(sid)
    assert store.find(sid, cadata, "h") is None
    assert all("Max-Age=0" in c.header() for c in SessionStore.clearing_cookies())


def test_session_table_is_bounded() -> None:
    store = SessionStore(clock=ManualClock(), max_sessions=3)
    for i in range(10):
        store.create(f"u{i}", "h", trusted=False)
    assert len(store) == 3


def test_canaries_compare_exactly_and_never_match_empty() -> None:
    store = SessionStore(clock=ManualClock())
    session, _ = store.create("adam", "h", trusted=False)
    assert canary_matches(session.canary, session.canary)
    assert not canary_matches(session.canary, session.canary + "x")
    assert not canary_matches(session.canary, "")
    assert not canary_matches("", "")
    assert not canary_matches(session.canary, None)


def test_sign_in_form_canary_is_bound_to_its_pback_cookie() -> None:
    store = SessionStore(clock=ManualClock())
    pback = store.new_pback().value
    canary = store.logon_canary(pback)
    assert store.logon_canary_ok(pback, canary)
    assert not store.logon_canary_ok(store.new_pback().value, canary)
    assert not store.logon_canary_ok(None, canary)
    assert not store.logon_canary_ok(pback, None)


# ---------------------------------------------------------------- throttling


def test_five_wrong_passwords_lock_the_user_out_for_a_while() -> None:
    clock = ManualClock()
    throttle = SignInThrottle(ThrottlePolicy(), clock=clock)
    for _ in range(4):
        throttle.failed("adam", "127.99.0.5")
    assert throttle.retry_after("adam", "127.99.0.5") == 0
    throttle.failed("adam", "127.99.0.5")
    assert throttle.retry_after("adam", "127.99.0.5") > 0
    assert throttle.retry_after("ADAM", "127.99.0.6") > 0  # the account, from anywhere
    assert throttle.retry_after("alice", "127.99.0.6") == 0
    clock.advance(ThrottlePolicy().lockout + timedelta(seconds=1))
    assert throttle.retry_after("adam", "127.99.0.5") == 0


def test_failures_spread_over_more_than_the_window_do_not_lock() -> None:
    clock = ManualClock()
    throttle = SignInThrottle(ThrottlePolicy(), clock=clock)
    for _ in range(10):
        throttle.failed("adam", "c")
        clock.advance(timedelta(minutes=3))
    assert throttle.retry_after("adam", "c") == 0


def test_a_good_sign_in_clears_the_user_count() -> None:
    throttle = SignInThrottle(ThrottlePolicy(), clock=ManualClock())
    for _ in range(4):
        throttle.failed("adam", "c")
    throttle.succeeded("adam")
    throttle.failed("adam", "c")
    assert throttle.retry_after("adam", "c") == 0


def test_one_client_guessing_many_users_is_locked_out() -> None:
    throttle = SignInThrottle(ThrottlePolicy(), clock=ManualClock())
    for i in range(20):
        throttle.failed(f"user{i}", "127.99.0.9")
    assert throttle.retry_after("someone-else", "127.99.0.9") > 0
    assert throttle.retry_after("someone-else", "127.99.0.10") == 0


# ---------------------------------------------------------------- user names


@pytest.fixture
def directory(tmp_path: Path) -> Directory:
    d = open_directory(str(tmp_path / "d.db"))
    d.put(
        Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    )
    d.put(
        Mailbox(
            alias="adam",
            display_name="Adam Fl",
            primary_smtp_address="adam.fl@contoso.com",
            database="FL-DB1",
        )
    )
    return d


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("contoso\\adam", "adam"),
        ("CONTOSO\\Adam", "adam"),
        ("adam.fl@contoso.com", "adam"),  # the user principal name / address
        ("adam@contoso.com", "adam"),  # alias@accepted domain
        ("adam", "adam"),
        ("fabrikam\\adam", None),  # not our domain
        ("adam@fabrikam.com", None),  # not an accepted domain
        ("contoso\\", None),
        ("", None),
        ("a\\b\\c", None),
    ],
)
def test_user_name_forms(directory: Directory, typed: str, found: str | None) -> None:
    mailbox = find_mailbox(directory, typed)
    assert (mailbox.alias if mailbox else None) == found


def test_user_names_with_control_characters_are_refused() -> None:
    assert parse_user_name("adam\r\nX-Header: 1") is None
    assert parse_user_name("x" * 400) is None


# ---------------------------------------------------------------- single sign-on token


@pytest.fixture
def pki(tmp_path: Path) -> OrganizationPki:
    pki = OrganizationPki.open_or_create(tmp_path / "pki", "Contoso")
    pki.ensure_server("EX-NY1", "ex-ny1.contoso.com")
    pki.ensure_server("EX-FL1", "ex-fl1.contoso.com")
    pki.ensure_admin()
    return pki


def _issue(pki: OrganizationPki, clock: ManualClock, issuer: str = "EX-NY1", **kw: str) -> str:
    claims = {
        "alias": "adam",
        "audience": "EX-FL1",
        "vdir": "EX-FL1\\owa (Default Web Site)",
        "url": "https://ex-fl1.contoso.com/owa",
    }
    claims.update(kw)
    return SsoIssuer(issuer, pki.server_files(issuer), clock=clock).issue(trusted=True, **claims)


def test_sso_token_is_accepted_once_by_its_audience(pki: OrganizationPki) -> None:
    clock = ManualClock()
    token = _issue(pki, clock)
    verifier = SsoVerifier("EX-FL1", pki.verifier(), clock=clock)
    claims = verifier.accept(token)
    assert (claims.alias, claims.issuer, claims.trusted) == ("adam", "EX-NY1", True)
    with pytest.raises(SsoError, match="already used"):
        verifier.accept(token)


def test_sso_token_for_another_server_is_refused(pki: OrganizationPki) -> None:
    clock = ManualClock()
    with pytest.raises(SsoError, match="not EX-NY1"):
        SsoVerifier("EX-NY1", pki.verifier(), clock=clock).accept(_issue(pki, clock))


def test_sso_token_expires_within_a_minute(pki: OrganizationPki) -> None:
    clock = ManualClock()
    token = _issue(pki, clock)
    clock.advance(61)
    with pytest.raises(SsoError, match="expired"):
        SsoVerifier("EX-FL1", pki.verifier(), clock=clock).accept(token)


def test_sso_token_with_a_changed_payload_is_refused(pki: OrganizationPki) -> None:
    clock = ManualClock()
    payload, signature, cert = _issue(pki, clock).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "alice"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(SsoError, match="signature"):
        SsoVerifier("EX-FL1", pki.verifier(), clock=clock).accept(f"{forged}.{signature}.{cert}")


def test_sso_token_signed_outside_the_organization_is_refused(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    clock = ManualClock()
    foreign = OrganizationPki.open_or_create(tmp_path / "foreign", "Contoso")
    foreign.ensure_server("EX-NY1", "ex-ny1.contoso.com")
    token = SsoIssuer("EX-NY1", foreign.server_files("EX-NY1"), clock=clock).issue(
        alias="adam", audience="EX-FL1", vdir="v", url="https://x/owa", trusted=False
    )
    with pytest.raises(SsoError, match="not signed by a server"):
        SsoVerifier("EX-FL1", pki.verifier(), clock=clock).accept(token)


def test_sso_token_naming_another_issuer_is_refused(pki: OrganizationPki) -> None:
    clock = ManualClock()
    # EX-FL1's certificate and key, claiming to come from EX-NY1: the issuer must match.
    issuer = SsoIssuer("EX-NY1", pki.server_files("EX-FL1"), clock=clock)
    token = issuer.issue(alias="adam", audience="EX-FL1", vdir="v", url="u", trusted=False)
    with pytest.raises(SsoError, match="signed by EX-FL1"):
        SsoVerifier("EX-FL1", pki.verifier(), clock=clock).accept(token)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "x" * 10_000, "..."])
def test_malformed_sso_tokens_are_refused(pki: OrganizationPki, token: str) -> None:
    with pytest.raises(SsoError):
        SsoVerifier("EX-FL1", pki.verifier(), clock=ManualClock()).accept(token)
