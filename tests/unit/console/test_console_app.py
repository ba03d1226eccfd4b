"""The web console's gate, sign-in, CSRF check and Queue Viewer, with aiohttp's test client.

The organization is the seed's directory; the hubs' admin API is the shell
tests' fake (canned queues, every call kept), so what the console asks of the
servers, and how it words the cmdlets it runs, is visible.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from html import escape
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

# The shell's runtime tests' fake hubs: EX-NY1 holds the NY->FL queue in Retry.
from tests.unit.shell.test_cmdlets_runtime import LAST_ERROR, FakeAdmin
from tests.unit.shell.test_cmdlets_runtime import admin as admin  # the fixture

from sitemail.clock import ManualClock
from sitemail.console.app import PAGES, is_public, make_app
from sitemail.console.auth import BAD_CREDENTIALS, IDLE, LIFETIME, SESSION_COOKIE, Sessions
from sitemail.console.backend import OrganizationBackend
from sitemail.console.main import console_main
from sitemail.org.directory import Directory, open_directory
from sitemail.org.lockout import AccountLockout, LockoutPolicy
from sitemail.org.model import Server
from sitemail.org.topology import Topology

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed.yaml"
PASSWORD = "Pa55word!"


@pytest.fixture(scope="module")
def seed_objects() -> list[Any]:
    # Hashing five passwords with scrypt takes a moment: once for the module.
    return list(Topology.load(SEED).objects(hash_passwords=True))


@pytest.fixture
def directory(tmp_path: Path, seed_objects: list[Any]) -> Iterator[Directory]:
    d = open_directory(str(tmp_path / "directory.db"))
    with d.transaction():
        for obj in seed_objects:
            if isinstance(obj, Server):
                obj = obj.model_copy(
                    update={
                        "addresses": [
                            {"EX-NY1": "127.1.0.11", "EX-FL1": "127.2.0.11"}.get(
                                obj.name, "127.1.0.12"
                            )
                        ]
                    }
                )
            d.put(obj)
    yield d
    d.close()


class Browser:
    """The test client with a cookie jar of its own: the console's cookies are ``Secure``,
    which a jar keeps away from the plain-HTTP test server."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client
        self.cookies: dict[str, str] = {}

    def _keep(self, response: ClientResponse) -> None:
        for header in response.headers.getall("Set-Cookie", []):
            for name, morsel in SimpleCookie(header).items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)

    async def request(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.client.request(
            method, path, headers=headers, allow_redirects=False, **kwargs
        )
        await response.read()
        self._keep(response)
        return response

    async def sign_in(self, user: str = "alice", password: str = PASSWORD) -> ClientResponse:
        form = await self.request("GET", "/signin?next=/queues")
        token = re.search(r'name="csrf" value="([^"]+)"', await form.text())
        assert token is not None
        return await self.request(
            "POST",
            "/signin",
            data={
                "csrf": token.group(1),
                "username": user,
                "password": password,
                "next": "/queues",
            },
        )

    async def csrf(self) -> str:
        page = await self.request("GET", "/queues")
        found = re.search(r'data-csrf="([^"]+)"', await page.text())
        assert found is not None
        return found.group(1)


Scenario = Callable[[Browser, Sessions, FakeAdmin], Awaitable[None]]


def play(tmp_path: Path, directory: Directory, admin: FakeAdmin, scenario: Scenario) -> None:
    sessions = Sessions(directory, frozenset({"alice"}))
    backend = OrganizationBackend(directory, tmp_path, admin=admin, probe=admin)

    async def main() -> None:
        app = make_app(sessions, backend)
        async with TestClient(TestServer(app)) as client:
            await scenario(Browser(client), sessions, admin)

    asyncio.run(main())


def routes(app: web.Application) -> list[tuple[str, str]]:
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter", "")
        path = path.replace("{action}", "retry").replace("{name}", "EX-NY1")
        out.append((route.method, path))
    return out


def test_every_route_but_the_sign_in_form_needs_a_session(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        app = browser.client.server.app
        assert app is not None
        found = routes(app)
        public = {
            (r.method, r.resource.canonical)
            for r in app.router.routes()
            if r.resource is not None and is_public(r.handler)
        }
        assert public == {("GET", "/signin"), ("HEAD", "/signin"), ("POST", "/signin")}
        assert len(found) >= 14  # the pages, the picture, the static files and the JSON routes
        for method, path in [*found, ("GET", "/no/such/page"), ("GET", "/static/console.js")]:
            if (method, path) in public:
                continue
            response = await browser.request(method, path, json={"identity": "EX-NY1\\5"})
            if method == "GET" and not path.startswith("/api/"):
                assert response.status == 303, (method, path)
                assert response.headers["Location"].startswith("/signin?next="), path
            else:
                assert response.status == 401, (method, path, response.status)
        assert not [c for c in fake.calls if c[3] is not None], "nothing ran without a session"

    play(tmp_path, directory, admin, scenario)


def test_sign_in_goes_back_only_to_the_consoles_own_pages(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        first = await browser.request("GET", "/queues")
        assert first.headers["Location"] in ("/signin?next=/queues", "/signin?next=%2Fqueues")
        form = await browser.request("GET", "/signin?next=https://evil.example/")
        page = await form.text()
        assert 'name="next" value="/"' in page
        assert '<label for="username">User name</label>' in page
        assert '<label for="password">Password</label>' in page
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        response = await browser.request(
            "POST",
            "/signin",
            data={
                "csrf": token.group(1),
                "username": "alice",
                "password": PASSWORD,
                "next": "//evil.example/",
            },
        )
        assert response.status == 303
        assert response.headers["Location"] == "/"
        cookie = next(h for h in response.headers.getall("Set-Cookie") if SESSION_COOKIE in h)
        assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Strict"))
        assert (await browser.request("GET", "/")).status == 200
        assert set(PAGES) == {"/", "/queues", "/tracking", "/conversations", "/troubleshoot"}

    play(tmp_path, directory, admin, scenario)


def test_the_sign_in_form_needs_its_own_token_and_an_administrator(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        # A foreign page posting the form has neither the pre-sign-in cookie nor its token.
        forged = await browser.request(
            "POST", "/signin", data={"csrf": "x", "username": "alice", "password": PASSWORD}
        )
        assert forged.status == 403 and SESSION_COOKIE not in browser.cookies
        # bob has a mailbox and the right password but is not an administrator.
        refused = await browser.sign_in("bob")
        assert refused.status == 401 and escape(BAD_CREDENTIALS) in await refused.text()
        unknown = await browser.sign_in("nobody")
        assert unknown.status == 401 and escape(BAD_CREDENTIALS) in await unknown.text()
        assert SESSION_COOKIE not in browser.cookies
        assert (await browser.sign_in("CONTOSO\\alice")).status == 303

    play(tmp_path, directory, admin, scenario)


def test_wrong_passwords_count_against_the_organizations_lockout(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        for _ in range(LockoutPolicy().threshold - 1):
            assert (await browser.sign_in("alice", "wrong")).status == 401
        record = directory.get(AccountLockout, "alice")
        assert record is not None and record.bad_pwd_count == LockoutPolicy().threshold - 1
        locked = await browser.sign_in("alice", "wrong")
        assert "locked out" in await locked.text()
        # Locked: even the right password is refused, as OWA and IMAP4 would refuse it.
        again = await browser.sign_in("alice", PASSWORD)
        assert again.status == 401 and "locked out" in await again.text()
        assert SESSION_COOKIE not in browser.cookies

    play(tmp_path, directory, admin, scenario)


def test_posts_need_the_sessions_csrf_token_and_this_origin(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        await browser.sign_in()
        token = await browser.csrf()
        body = {"identity": "EX-NY1\\5"}
        missing = await browser.request("POST", "/api/queues/retry", json=body)
        wrong = await browser.request(
            "POST", "/api/queues/retry", json=body, headers={"X-CSRF-Token": "guess"}
        )
        foreign = await browser.request(
            "POST",
            "/api/queues/retry",
            json=body,
            headers={"X-CSRF-Token": token, "Origin": "https://evil.example"},
        )
        signout = await browser.request("POST", "/signout", data={})
        assert [r.status for r in (missing, wrong, foreign, signout)] == [403, 403, 403, 403]
        assert not [c for c in fake.calls if c[3] is not None]
        host = browser.client.server.host, browser.client.server.port
        ok = await browser.request(
            "POST",
            "/api/queues/retry",
            json=body,
            headers={"X-CSRF-Token": token, "Origin": f"https://{host[0]}:{host[1]}"},
        )
        assert ok.status == 200
        assert [c[2:] for c in fake.calls if c[3] is not None] == [
            ("/queues/retry", {"identity": "EX-NY1\\5", "resubmit": False})
        ]
        out = await browser.request("POST", "/signout", data={"csrf": token})
        assert out.status == 303 and SESSION_COOKIE not in browser.cookies
        assert (await browser.request("GET", "/api/queues")).status == 401

    play(tmp_path, directory, admin, scenario)


def test_the_queue_viewer_shows_get_queue_and_runs_the_cmdlets(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        await browser.sign_in()
        token = await browser.csrf()
        listed = await (await browser.request("GET", "/api/queues")).json()
        assert listed["command"] == "Get-Queue" and listed["errors"] == []
        retry = next(q for q in listed["objects"] if q["Identity"] == "EX-NY1\\5")
        assert retry["Status"] == "Retry" and retry["NextHopDomain"] == "FL"
        assert retry["DeliveryType"] == "SmtpRelayToRemoteAdSite"
        assert retry["LastError"] == LAST_ERROR

        async def post(path: str, identity: str) -> dict[str, Any]:
            answer = await browser.request(
                "POST", path, json={"identity": identity}, headers={"X-CSRF-Token": token}
            )
            data: dict[str, Any] = await answer.json()
            data["status"] = answer.status
            return data

        done = await post("/api/queues/suspend", "EX-NY1\\5")
        assert done["command"] == "Suspend-Queue -Identity 'EX-NY1\\5'" and done["errors"] == []
        removed = await post("/api/messages/remove", "EX-NY1\\5\\12")
        assert removed["command"] == "Remove-Message -Identity 'EX-NY1\\5\\12'"
        # An identity is checked before it goes into a cmdlet line.
        bad = await post("/api/queues/retry", "EX-NY1\\5'; Remove-Message -Filter {1 -eq 1}")
        assert bad["status"] == 400 and "not a queue or message identity" in bad["error"]
        unknown = await post("/api/queues/delete", "EX-NY1\\5")
        assert unknown["status"] == 400
        # The hubs' refusal comes back in the cmdlet's own words.
        from sitemail.shell.cmdlets.admin_client import AdminError

        fake.answers[("EX-NY1", "/queues/resume")] = AdminError(
            "The queue EX-NY1\\5 isn't suspended."
        )
        refused = await post("/api/queues/resume", "EX-NY1\\5")
        assert refused["errors"] == ["Resume-Queue : The queue EX-NY1\\5 isn't suspended."]
        assert [c[2:] for c in fake.calls if c[3] is not None] == [
            ("/queues/suspend", {"identity": "EX-NY1\\5"}),
            ("/messages/remove", {"identity": "EX-NY1\\5\\12", "with_ndr": True}),
            ("/queues/resume", {"identity": "EX-NY1\\5"}),
        ]
        too_big = await browser.request(
            "POST",
            "/api/queues/retry",
            data=b"x" * 100_000,
            headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
        )
        assert too_big.status == 413

    play(tmp_path, directory, admin, scenario)


def test_the_topology_draws_sites_servers_and_firewalls(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        await browser.sign_in()
        page = await browser.request("GET", "/")
        text = await page.text()
        assert page.status == 200
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"
        for shown in ("Site NY", "Site FL", 'id="host-ASA-NY"', 'id="host-ASA-FL"'):
            assert shown in text
        assert 'id="queue-EX-NY1"' in text and 'tabindex="0" role="button"' in text
        assert "NY-FL cost" in text
        live = await (await browser.request("GET", "/api/live")).json()
        assert live["queue_lengths"]["EX-NY1"] == 1

    play(tmp_path, directory, admin, scenario)


def test_a_session_ends_when_idle_and_after_its_lifetime(directory: Directory) -> None:
    clock = ManualClock()
    sessions = Sessions(directory, frozenset({"alice"}), clock=clock)

    def signed_in() -> str:
        result = asyncio.run(sessions.sign_in("alice", PASSWORD))
        assert result.session is not None
        return result.session.id

    idle = signed_in()
    clock.advance(IDLE - timedelta(seconds=1))
    assert sessions.find(idle) is not None  # a request keeps it alive...
    clock.advance(IDLE + timedelta(seconds=1))
    assert sessions.find(idle) is None  # ...and a quiet spell ends it
    busy = signed_in()
    start = clock.now()
    while sessions.find(busy) is not None:  # in use all the time, never idle
        assert clock.now() - start <= LIFETIME
        clock.advance(IDLE - timedelta(seconds=1))
    assert clock.now() - start > LIFETIME


def test_a_servers_panel_shows_its_connectors_and_virtual_directories(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        await browser.sign_in()
        panel = await (await browser.request("GET", "/api/servers/ex-fl1")).json()
        assert panel["errors"] == []
        default = next(c for c in panel["receive_connectors"] if c["Name"] == "Default EX-FL1")
        assert default["Bindings"] == ["0.0.0.0:25"]
        assert "ExchangeServer" in default["AuthMechanism"]
        owa = next(v for v in panel["virtual_directories"] if v["Name"].startswith("owa"))
        assert owa["InternalUrl"] == "https://ex-fl1.contoso.com/owa"
        assert owa["ExternalUrl"] is None  # the seed's FL: $null
        assert {v["Cmdlet"] for v in panel["virtual_directories"]} == {
            "Get-OwaVirtualDirectory",
            "Get-EcpVirtualDirectory",
            "Get-ActiveSyncVirtualDirectory",
            "Get-WebServicesVirtualDirectory",
        }
        missing = await browser.request("GET", "/api/servers/EX-XX9")
        assert missing.status == 404
        assert "couldn't be found" in (await missing.json())["error"]

    play(tmp_path, directory, admin, scenario)


def test_the_console_says_in_one_line_why_it_cannot_start(
    tmp_path: Path, directory: Directory
) -> None:
    def start(*argv: str, lab: Path) -> tuple[int, str]:
        err = io.StringIO()
        code = console_main(list(argv), lab, stdout=io.StringIO(), stderr=err)
        return code, err.getvalue()

    code, text = start("--admin", "alice", lab=tmp_path / "nothing")
    assert code == 1 and "no lab in" in text and "sitemail lab up" in text
    code, text = start("--admin", "alice", "--listen", "localhost:99999", lab=tmp_path)
    assert code == 1 and "expected ADDRESS:PORT" in text
    code, text = start("--admin", "mallory", lab=tmp_path)
    assert code == 1 and "--admin mallory: no such mailbox account" in text
    assert "alice" in text  # and it says which accounts there are
    code, text = start("--admin", "alice", lab=tmp_path)  # the directory, but no lab CA
    assert code == 1 and "no organization CA" in text
    assert len(text.splitlines()) == 1
