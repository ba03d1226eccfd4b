"""The front door's one sign-in step: each service's challenge, Basic, forms sessions, lockout.

:class:`~sitemail.access.web.authentication.Authenticator` runs before every
handler (OWA, ECP, EWS, ActiveSync, Autodiscover); these tests call it on
requests built in memory, so each service's 401 can be compared to the
letter with what the service answered when it authenticated by itself.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from tests.unit.access.test_web_service import PASSWORD, _org

from sitemail.access.directory_view import AccessDirectory
from sitemail.access.entry_points import EntryPoint
from sitemail.access.outcomes import Entry
from sitemail.access.throttle import SignInThrottle
from sitemail.access.web.authentication import Authenticator
from sitemail.access.web.common import AppUser, RequestContext, SignInMethod
from sitemail.access.web.sessions import CADATA_COOKIE, SESSION_COOKIE, SessionStore
from sitemail.clock import ManualClock
from sitemail.org.defaults import default_virtual_directories
from sitemail.org.model import Server, VirtualDirectoryKind

HOST = "ex-ny1.contoso.com"
SIGN_IN = "Sign in with your user name and password."
REALM = f'Basic realm="{HOST}"'


class Site1:
    """One server's directory, sessions and throttle, and its Authenticator."""

    def __init__(self, tmp: Path) -> None:
        self.clock = ManualClock()
        self.directory = _org(tmp)[0]  # EX-NY1 of site NY, and alice's mailbox
        self.sessions = SessionStore(clock=self.clock)
        self.auth = Authenticator(
            "EX-NY1",
            self.directory,
            self.sessions,
            SignInThrottle(clock=self.clock),
            mock.Mock(),  # no TLS peer in these requests: the verifier is never asked
            self.clock,
        )

    def context(self, kind: VirtualDirectoryKind, **settings: bool) -> RequestContext:
        vdir = next(
            v.model_copy(update=settings)
            for v in default_virtual_directories(self.directory.require(Server, "EX-NY1"))
            if v.type == kind
        )
        assert vdir.internal_url is not None
        entry = EntryPoint("EX-NY1", vdir.identity, kind, Entry.INTERNAL, vdir.internal_url)
        return RequestContext(
            host=HOST,
            entry=entry,
            vdir=vdir,
            subpath="/",
            snapshot=AccessDirectory.read(self.directory),
            peer=None,
        )

    def sign_in(
        self,
        ctx: RequestContext,
        *,
        method: str = "POST",
        user: str | None = None,
        password: str = PASSWORD,
        cookies: dict[str, str] | None = None,
    ) -> AppUser | web.StreamResponse:
        headers = {"Host": HOST}
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda name, default=None: (
            ("127.99.0.5", 50000) if name == "peername" else default
        )
        request = make_mocked_request(method, "/x/y?z=1", headers=headers, transport=transport)
        return asyncio.run(self.auth.authenticate(request, ctx))


def _challenge(found: AppUser | web.StreamResponse) -> tuple[int, str, list[str], str]:
    assert isinstance(found, web.Response)
    body = found.text or ""
    return found.status, found.content_type, found.headers.getall("WWW-Authenticate", []), body


@pytest.mark.parametrize(
    ("kind", "basic", "user", "status", "content_type", "challenges", "says"),
    [
        # EWS: Windows authentication only by default; Basic where it is turned on.
        (
            VirtualDirectoryKind.EWS,
            False,
            None,
            401,
            "text/plain",
            ["Negotiate", "NTLM"],
            "EX-NY1\\EWS (Default Web Site) accepts only Integrated Windows authentication, "
            "which sitemail keeps for Client Access servers; turn Basic on for clients with "
            'Set-WebServicesVirtualDirectory -Identity "EX-NY1\\EWS (Default Web Site)" '
            "-BasicAuthentication $true.",
        ),
        (VirtualDirectoryKind.EWS, True, None, 401, "text/plain", [REALM], SIGN_IN),
        (VirtualDirectoryKind.EWS, True, "wrong", 401, "text/plain", [REALM], SIGN_IN),
        # ActiveSync asks for Basic even when it is off, saying how to turn it on.
        (
            VirtualDirectoryKind.EAS,
            False,
            None,
            401,
            "text/plain",
            [REALM],
            "Basic authentication is off on EX-NY1\\Microsoft-Server-ActiveSync (Default Web "
            'Site); turn it on with Set-ActiveSyncVirtualDirectory -Identity "EX-NY1\\'
            'Microsoft-Server-ActiveSync (Default Web Site)" -BasicAuthEnabled $true.',
        ),
        (VirtualDirectoryKind.EAS, True, "wrong", 401, "text/plain", [REALM], SIGN_IN),
        (VirtualDirectoryKind.AUTODISCOVER, False, None, 401, "text/plain", ["Negotiate"], SIGN_IN),
        (VirtualDirectoryKind.AUTODISCOVER, True, "wrong", 401, "text/plain", [REALM], SIGN_IN),
        # OWA without forms: a page, with Basic's realm or Windows authentication's scheme.
        (VirtualDirectoryKind.OWA, True, "wrong", 401, "text/html", [REALM], SIGN_IN),
        (
            VirtualDirectoryKind.OWA,
            False,
            None,
            401,
            "text/html",
            ["Negotiate"],
            "allows only Integrated Windows authentication, which browsers cannot use",
        ),
    ],
)
def test_each_service_answers_its_own_challenge(
    tmp_path: Path,
    kind: VirtualDirectoryKind,
    basic: bool,
    user: str | None,
    status: int,
    content_type: str,
    challenges: list[str],
    says: str,
) -> None:
    site = Site1(tmp_path)
    ctx = site.context(kind, basic_authentication=basic, forms_authentication=False)
    password = "not-it" if user == "wrong" else PASSWORD
    found = site.sign_in(ctx, user="alice" if user else None, password=password)
    got_status, got_type, got_challenges, body = _challenge(found)
    assert (got_status, got_type, got_challenges) == (status, content_type, challenges)
    if content_type == "text/plain":
        assert body == says
    else:
        assert says in body


def test_good_basic_credentials_give_the_user_for_every_service(tmp_path: Path) -> None:
    site = Site1(tmp_path)
    for kind in (
        VirtualDirectoryKind.OWA,
        VirtualDirectoryKind.ECP,
        VirtualDirectoryKind.EWS,
        VirtualDirectoryKind.EAS,
        VirtualDirectoryKind.AUTODISCOVER,
    ):
        ctx = site.context(kind, basic_authentication=True, forms_authentication=False)
        found = site.sign_in(ctx, user="contoso\\alice")
        assert isinstance(found, AppUser), kind
        assert (found.alias, found.method, found.trusted, found.proxied_by) == (
            "alice",
            SignInMethod.BASIC,
            False,
            None,
        )
        assert found.log_name == "alice"
        # Basic has no session: its canary is the same on every request of the user.
        again = site.sign_in(ctx, user="alice@contoso.com")
        assert isinstance(again, AppUser) and again.canary == found.canary


def test_forms_sessions_sign_owa_in_and_others_go_to_the_sign_in_page(tmp_path: Path) -> None:
    site = Site1(tmp_path)
    ctx = site.context(VirtualDirectoryKind.OWA)  # forms-based, as setup makes it
    session, cookies = site.sessions.create("alice", HOST, trusted=True)
    jar = {c.name: c.value for c in cookies}
    assert set(jar) == {SESSION_COOKIE, CADATA_COOKIE}
    found = site.sign_in(ctx, method="GET", cookies=jar)
    assert isinstance(found, AppUser)
    assert (found.alias, found.method, found.canary, found.trusted) == (
        "alice",
        SignInMethod.FORMS,
        session.canary,
        True,
    )
    # Basic credentials are not looked at where forms-based sign-in is on.
    page_load = site.sign_in(ctx, method="GET", user="alice")
    assert isinstance(page_load, web.Response) and page_load.status == 302
    assert page_load.headers["Location"] == (
        "/owa/auth/logon.aspx?replaceCurrent=1&url=https%3A%2F%2Fex-ny1.contoso.com%2Fx%2Fy%3Fz%3D1"
    )
    post = site.sign_in(ctx, method="POST")
    assert isinstance(post, web.Response) and post.status == 440
    # FormsAuthentication means nothing on the services browsers do not sign in to.
    eas = site.context(VirtualDirectoryKind.EAS, forms_authentication=True)
    assert isinstance(site.sign_in(eas, user="alice"), AppUser)


def test_wrong_passwords_lock_the_user_out_of_every_service(tmp_path: Path) -> None:
    site = Site1(tmp_path)
    ews = site.context(VirtualDirectoryKind.EWS, basic_authentication=True)
    for _ in range(5):
        assert _challenge(site.sign_in(ews, user="alice", password="no"))[0] == 401
    # (int(wait // 60) + 1 of the 300 s lockout, as the sign-in page says it)
    locked = "Too many failed sign-in attempts. Try again in 6 minutes."
    # The right password now too is refused, on another service as well, with the reason.
    eas = site.context(VirtualDirectoryKind.EAS)
    assert _challenge(site.sign_in(eas, user="alice")) == (401, "text/plain", [REALM], locked)
    owa = site.context(VirtualDirectoryKind.OWA, forms_authentication=False)
    status, _, challenges, body = _challenge(site.sign_in(owa, user="alice"))
    assert (status, challenges) == (401, [REALM]) and locked in body
