"""The HTTPS front door of two Client Access servers, in one process, over real TLS on loopback.

EX-NY1 (site NY, ExternalUrl mail.contoso.com) and EX-FL1 (site FL, no
ExternalUrl, Windows authentication on) each run a :class:`FrontDoor` on
127.0.0.1 with certificates of a test organization CA; their mailbox stores
are real mailbox database files.  A browser is an aiohttp client that
trusts the CA and maps the host names to the two ports.  A third
certificate belongs to EX-HUB, a Hub Transport server (not a CAS).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import re
import socket
import ssl
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import BaseModel

from sitemail.access.outcomes import ClientProtocol, Proxy
from sitemail.access.web.common import AppUser, RequestContext, SignInMethod
from sitemail.access.web.front import FrontDoor
from sitemail.access.web.proxy import ProxyClient
from sitemail.access.web.sessions import CADATA_COOKIE, SESSION_COOKIE
from sitemail.access.web.sso import SsoIssuer, SsoVerifier
from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.database_items import parse_record
from sitemail.mailbox.item_records import ItemKind, TypedItem, TypedItemPage
from sitemail.mailbox.records import (
    Flags,
    FlagUpdate,
    Folder,
    FolderView,
    MessageDetail,
    MessagePage,
    MessageSummary,
    Placement,
)
from sitemail.org.defaults import default_virtual_directories
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import (
    AcceptedDomain,
    ExchangeVersion,
    Mailbox,
    MailboxDatabase,
    Organization,
    RedirectType,
    Server,
    ServerRole,
    Site,
    VirtualDirectory,
    VirtualDirectoryKind,
)
from sitemail.org.passwords import hash_password
from sitemail.org.pki import OrganizationPki, client_ssl_context

PASSWORD = "Pa55word!"
_HASH = hash_password(PASSWORD)
ALL = [ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT]

# ------------------------------------------------------------------ the organization


def _organization(tmp: Path) -> tuple[Directory, OrganizationPki]:
    pki = OrganizationPki.open_or_create(tmp / "pki", "Contoso")
    d = open_directory(str(tmp / "directory.db"))
    d.put(
        Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    )
    for site in ("NY", "FL"):
        d.put(Site(name=site))
    servers = [
        Server(name="EX-NY1", fqdn="ex-ny1.contoso.com", site="NY", roles=ALL),
        Server(name="EX-FL1", fqdn="ex-fl1.contoso.com", site="FL", roles=ALL),
        Server(
            name="EX-HUB", fqdn="ex-hub.contoso.com", site="NY", roles=[ServerRole.HUB_TRANSPORT]
        ),
        Server(
            name="EX2003",
            fqdn="ex2003.contoso.com",
            site="NY",
            version=ExchangeVersion.E2003,
            roles=[ServerRole.MAILBOX],
        ),
    ]
    for server in servers:
        d.put(server)
        vdirs = default_virtual_directories(server)
        for v in vdirs:
            if server.name == "EX-NY1" and v.type in (
                VirtualDirectoryKind.OWA,
                VirtualDirectoryKind.ECP,
            ):
                v = v.model_copy(
                    update={"external_url": f"https://mail.contoso.com/{v.type.value.lower()}"}
                )
            if server.name == "EX-NY1" and v.type == VirtualDirectoryKind.OWA:
                v = v.model_copy(update={"exchange2003_url": "https://ex2003.contoso.com/exchange"})
            if server.name == "EX-NY1" and v.type == VirtualDirectoryKind.AUTODISCOVER:
                # As in the seed: clients find NY's CAS by the autodiscover name.
                external = "https://autodiscover.contoso.com/Autodiscover/Autodiscover.xml"
                v = v.model_copy(update={"external_url": external})
            if server.name == "EX-FL1":
                v = v.model_copy(update={"windows_authentication": True})
            d.put(v)
        urls = [u for v in vdirs for u in (v.internal_url, v.external_url)]
        if server.name == "EX-NY1":
            urls += ["https://mail.contoso.com/owa", "https://autodiscover.contoso.com/"]
        pki.ensure_server(server.name, server.fqdn, urls=urls)
    d.put(MailboxDatabase(name="NY-DB1", server="EX-NY1"))
    d.put(MailboxDatabase(name="FL-DB1", server="EX-FL1"))
    d.put(MailboxDatabase(name="EX2003-MBX", server="EX2003"))
    for alias, db in (("alice", "NY-DB1"), ("adam", "FL-DB1"), ("larry", "EX2003-MBX")):
        d.put(
            Mailbox(
                alias=alias,
                display_name=f"{alias.title()} User",
                primary_smtp_address=f"{alias}@contoso.com",
                database=db,
                password_hash=_HASH,
            )
        )
    return d, pki


class DatabaseStore:
    """The MailStore interface over a mailbox database file (the store API's job, in-process)."""

    def __init__(self, db: StoreDatabase) -> None:
        self.db = db

    async def list_folders(self, mailbox: str, *, everything: bool = False) -> list[Folder]:
        return self.db.list_folders(mailbox, everything=everything)

    async def get_folder(self, mailbox: str, folder: int | str) -> Folder:
        return self.db.get_folder(mailbox, folder)

    async def folder_view(
        self, mailbox: str, folder: int | str, *, offset: int = 0, limit: int = 50
    ) -> FolderView:
        return self.db.folder_view(mailbox, folder, offset=offset, limit=limit)

    async def list_messages(
        self,
        mailbox: str,
        folder: int | str,
        *,
        offset: int = 0,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> MessagePage:
        return self.db.list_messages(
            mailbox, folder, offset=offset, limit=limit, oldest_first=oldest_first
        )

    async def get_message(self, mailbox: str, message_id: int) -> MessageDetail:
        return self.db.get_message(mailbox, message_id)

    async def read_part(self, mailbox: str, message_id: int, part_id: str) -> bytes:
        with self.db.open_part(mailbox, message_id, part_id) as reader:
            return b"".join(iter(reader.read, b""))

    @asynccontextmanager
    async def open_part(self, mailbox: str, message_id: int, part_id: str) -> AsyncIterator[Any]:
        data = await self.read_part(mailbox, message_id, part_id)

        class _Stream:
            size = len(data)

            async def __aiter__(self) -> AsyncIterator[bytes]:
                yield data

        yield _Stream()

    async def set_flags(self, mailbox: str, message_id: int, update: FlagUpdate) -> MessageSummary:
        return self.db.set_flags(mailbox, message_id, update)

    async def move(self, mailbox: str, message_id: int, folder: int | str) -> Placement:
        return self.db.move(mailbox, message_id, folder)

    async def delete(
        self, mailbox: str, message_id: int, *, hard: bool = False
    ) -> Placement | None:
        return self.db.delete(mailbox, message_id, hard=hard)

    async def append(
        self, mailbox: str, folder: int | str, message: bytes, *, flags: Flags | None = None
    ) -> Placement:
        return self.db.append(mailbox, folder, message, flags=flags)

    async def submit(self, mailbox: str, message_id: int) -> Placement:
        return self.db.submit(mailbox, message_id)

    # Calendar items, contacts and tasks (the store API's typed item routes).

    async def create_typed(
        self, mailbox: str, folder: int | str, kind: ItemKind, record: BaseModel
    ) -> TypedItem:
        return self.db.create_typed(mailbox, folder, parse_record(kind, record.model_dump()))

    async def get_typed(self, mailbox: str, item_id: int) -> TypedItem:
        return self.db.get_typed(mailbox, item_id)

    async def replace_typed(
        self, mailbox: str, item_id: int, record: BaseModel, *, expected_modseq: int | None = None
    ) -> TypedItem:
        kind = self.db.get_typed(mailbox, item_id).kind
        return self.db.replace_typed(
            mailbox,
            item_id,
            parse_record(kind, record.model_dump()),
            expected_modseq=expected_modseq,
        )

    async def list_typed(
        self,
        mailbox: str,
        folder: int | str,
        *,
        kind: ItemKind | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> TypedItemPage:
        return self.db.list_typed(mailbox, folder, kind=kind, offset=offset, limit=limit)

    async def calendar_items(
        self, mailbox: str, folder: int | str, start: datetime, end: datetime
    ) -> list[TypedItem]:
        return self.db.calendar_items(mailbox, folder, start, end)

    async def typed_kinds(self, mailbox: str, ids: Collection[int]) -> dict[int, ItemKind]:
        return self.db.typed_kinds(mailbox, ids)


@dataclass
class Lab:
    directory: Directory
    pki: OrganizationPki
    ports: dict[str, int]
    doors: dict[str, FrontDoor]
    stores: dict[str, StoreDatabase]
    tmp: Path

    def url(self, host: str, path: str) -> str:
        server = "EX-FL1" if host.startswith("ex-fl1") else "EX-NY1"
        return f"https://{host}:{self.ports[server]}{path}"

    def set_vdir(self, identity: str, **changes: object) -> None:
        v = self.directory.require(VirtualDirectory, identity)
        self.directory.put(v.model_copy(update=changes))

    def deliver(self, server: str, alias: str, subject: str, body: str = "Hello") -> None:
        raw = (
            f"From: Bob <bob@contoso.com>\r\nTo: {alias}@contoso.com\r\n"
            f"Subject: {subject}\r\n\r\n{body}\r\n"
        )
        self.stores[server].deliver(alias, f"test:{subject}", raw.encode())


def _server_tls(pki: OrganizationPki, name: str, tmp: Path) -> ssl.SSLContext:
    files = pki.server_files(name)
    chain = tmp / f"{name}-chain.pem"
    chain.write_bytes(files.cert.read_bytes() + pki.ca_file.read_bytes())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, files.key)
    ctx.load_verify_locations(cafile=pki.ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


@asynccontextmanager
async def running(tmp: Path) -> AsyncIterator[Lab]:
    directory, pki = _organization(tmp)
    stores = {name: StoreDatabase(tmp / f"{name}.db") for name in ("EX-NY1", "EX-FL1")}
    lab = Lab(directory, pki, {}, {}, stores, tmp)
    runners: list[web.AppRunner] = []
    verifier = pki.verifier()
    for name in ("EX-FL1", "EX-NY1"):
        proxy = ProxyClient(
            name,
            snapshot=functools.partial(lambda n: lab.doors[n].snapshot(), name),
            address_of=lambda server: "127.0.0.1",
            # A server proxies only to the other one (FL's availability service asks NY too).
            port=functools.partial(
                lambda n, port: lab.ports["EX-NY1" if n == "EX-FL1" else "EX-FL1"], name
            ),
            ssl_context=client_ssl_context(pki.ca_file, files=pki.server_files(name)),
        )
        door = FrontDoor(
            name,
            directory=directory,
            store=DatabaseStore(stores[name]),
            proxy=proxy,
            verifier=verifier,
            sso_issuer=SsoIssuer(name, pki.server_files(name)),
            sso_verifier=SsoVerifier(name, verifier),
        )
        runner = web.AppRunner(door.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_server_tls(pki, name, tmp))
        await site.start()
        lab.ports[name] = runner.addresses[0][1]
        lab.doors[name] = door
        runners.append(runner)
    try:
        yield lab
    finally:
        for door in lab.doors.values():
            await door.proxy.close()
        for runner in runners:
            await runner.cleanup()
        for store in stores.values():
            store.close()


class _Resolver(AbstractResolver):
    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


def browser(lab: Lab, *, cert: str | None = None) -> aiohttp.ClientSession:
    """A client trusting the organization CA (with a server certificate: another server)."""
    files = lab.pki.server_files(cert) if cert else None
    ctx = client_ssl_context(lab.pki.ca_file, files=files)
    connector = aiohttp.TCPConnector(ssl=ctx, resolver=_Resolver(), force_close=True)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar())


def run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario, 60))


async def sign_in(
    lab: Lab,
    s: aiohttp.ClientSession,
    user: str = "contoso\\adam",
    password: str = PASSWORD,
    *,
    host: str = "mail.contoso.com",
    destination: str | None = None,
) -> aiohttp.ClientResponse:
    page = await (await s.get(lab.url(host, "/owa/auth/logon.aspx"))).text()
    fields = dict(re.findall(r'name="(destination|hidcanary)" value="([^"]*)"', page))
    if destination is not None:
        fields["destination"] = destination
    form = {**fields, "username": user, "password": password, "trusted": "0", "flags": "4"}
    return await s.post(lab.url(host, "/owa/auth.owa"), data=form, allow_redirects=False)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def canary_of(page: str) -> str:
    found: list[str] = re.findall(r'name="hidcanary" value="([^"]*)"', page)
    assert found, page
    return found[0]


# ------------------------------------------------------------------ host names


def test_a_host_name_the_directory_does_not_give_this_server_gets_a_404(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            # The Host header decides (a browser mapped to this address by DNS or hosts file).
            for host in ("evil.example", "ex-fl1.contoso.com"):  # FL's name, sent to NY
                r = await s.get(
                    lab.url("mail.contoso.com", "/owa/"),
                    headers={"Host": host},
                    allow_redirects=False,
                )
                assert r.status == 404 and "Location" not in r.headers
            r = await s.get(lab.url("mail.contoso.com", "/"), allow_redirects=False)
            assert (r.status, r.headers["Location"]) == (302, "/owa/")

    run(scenario())


def test_the_site_answers_as_iis_7_5_under_exchange_2010(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            r = await s.get(lab.url("mail.contoso.com", "/owa/auth/logon.aspx"))
            assert r.status == 200
            assert r.headers.getall("Server") == ["Microsoft-IIS/7.5"]
            assert r.headers["X-Powered-By"] == "ASP.NET"
            assert r.headers["X-AspNet-Version"] == "2.0.50727"
            assert r.headers["X-OWA-Version"] == "14.3.123.4"
            # ECP is not OWA: no OWA build on its answers.
            r = await s.get(lab.url("mail.contoso.com", "/ecp/"), allow_redirects=False)
            assert r.headers["Server"] == "Microsoft-IIS/7.5" and "X-OWA-Version" not in r.headers
            # A script's request without a session: 440 with OWA's own phrase.
            r = await s.post(lab.url("mail.contoso.com", "/owa/"), data={"a": "b"})
            assert (r.status, r.reason) == (440, "Login Timeout")

    run(scenario())


# ------------------------------------------------------------------ sign-in


def test_forms_sign_in_sets_secure_httponly_session_cookies(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            r = await s.get(lab.url("mail.contoso.com", "/owa"))
            assert urlsplit(str(r.url)).path == "/owa/auth/logon.aspx"
            assert parse_qs(urlsplit(str(r.url)).query)["url"] == [
                f"https://mail.contoso.com:{lab.ports['EX-NY1']}/owa/"
            ]
            r = await sign_in(lab, s, "alice@contoso.com")
            assert (r.status, r.headers["Location"]) == (302, "/owa/")
            cookies = {c.split("=", 1)[0]: c for c in r.headers.getall("Set-Cookie")}
            for name in (SESSION_COOKIE, CADATA_COOKIE):
                attrs = cookies[name].lower()
                assert "httponly" in attrs and "secure" in attrs and "domain=" not in attrs
            page = await (await s.get(lab.url("mail.contoso.com", "/owa/"))).text()
            assert "Alice User" in page and "Inbox" in page

    run(scenario())


def test_wrong_passwords_return_to_sign_in_and_five_lock_the_account(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            for _ in range(5):
                r = await sign_in(lab, s, "contoso\\adam", "wrong")
                assert r.status == 302
                assert parse_qs(urlsplit(r.headers["Location"]).query)["reason"] == ["2"]
            page = await (
                await s.get(lab.url("mail.contoso.com", "/owa/auth/logon.aspx?reason=2"))
            ).text()
            assert "The user name or password you entered isn't correct." in html.unescape(page)
            r = await sign_in(lab, s, "contoso\\adam", PASSWORD)  # the right one, too late
            assert r.status == 429 and "Too many failed sign-in attempts" in await r.text()
            r = await sign_in(lab, s, "alice", PASSWORD)  # another user is not locked out
            assert r.status == 302 and SESSION_COOKIE in r.cookies

    run(scenario())


@pytest.mark.parametrize(
    "destination",
    [
        "https://evil.example/owa/",
        "//evil.example/owa/",
        "https://ex-fl1.contoso.com/owa/",  # a directory URL, but of another host
        "/owa/../../evil",
        "/elsewhere/",
        "javascript:alert(1)",
        "/\\evil.example",
    ],
)
def test_sign_in_never_redirects_off_this_host(tmp_path: Path, destination: str) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            r = await sign_in(lab, s, "alice", destination=destination)
            assert (r.status, r.headers["Location"]) == (302, "/owa/")

    run(scenario())


def test_sign_in_keeps_a_destination_on_this_host(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            r = await sign_in(lab, s, "alice", destination="https://mail.contoso.com/ecp/?rfr=owa")
            assert r.headers["Location"] == "/ecp/?rfr=owa"

    run(scenario())


SCRIPTED_FORM = {
    # What OWA 2010's sign-in page posts, sent straight to auth.owa as monitoring
    # scripts and load testers do: no sign-in page cookie, no canary.
    "destination": "https://mail.contoso.com/owa/",
    "flags": "4",
    "forcedownlevel": "0",
    "trusted": "4",
    "username": "contoso\\alice",
    "password": PASSWORD,
    "isUtf8": "1",
}


async def post_sign_in(
    lab: Lab, s: aiohttp.ClientSession, form: dict[str, str], headers: dict[str, str]
) -> aiohttp.ClientResponse:
    return await s.post(
        lab.url("mail.contoso.com", "/owa/auth.owa"),
        data=form,
        headers=headers,
        allow_redirects=False,
    )


def test_a_scripted_sign_in_post_without_cookie_or_origin_signs_in(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            r = await post_sign_in(lab, s, SCRIPTED_FORM, {})
            assert (r.status, r.headers["Location"]) == (302, "/owa/")
            assert SESSION_COOKIE in r.cookies and CADATA_COOKIE in r.cookies
            page = await (await s.get(lab.url("mail.contoso.com", "/owa/"))).text()
            assert "Alice User" in page and "Inbox" in page

    run(scenario())


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://mail.contoso.com"},  # another scheme is another site
        {"Origin": "https://ex-fl1.contoso.com"},  # another host of the organization
        {"Referer": "https://evil.example/login.html"},
        {"Origin": "https://evil.example", "Referer": "https://mail.contoso.com/owa/"},
    ],
)
def test_a_sign_in_post_naming_another_site_is_refused(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            r = await post_sign_in(lab, s, SCRIPTED_FORM, headers)
            assert r.status == 403 and SESSION_COOKIE not in r.cookies
            assert "posted from another web site" in await r.text()

    run(scenario())


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://mail.contoso.com"},
        {"Origin": "https://MAIL.contoso.com:443"},
        {"Referer": "https://mail.contoso.com/owa/auth/logon.aspx?replaceCurrent=1"},
    ],
)
def test_a_sign_in_post_naming_this_site_is_accepted(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            r = await post_sign_in(lab, s, SCRIPTED_FORM, headers)
            assert (r.status, r.headers["Location"]) == (302, "/owa/")
            assert SESSION_COOKIE in r.cookies

    run(scenario())


def test_the_browser_flow_with_origin_cookie_and_canary_still_signs_in(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            page = await (await s.get(lab.url("mail.contoso.com", "/owa/auth/logon.aspx"))).text()
            form = {**SCRIPTED_FORM, "hidcanary": canary_of(page)}
            origin = {"Origin": f"https://mail.contoso.com:{lab.ports['EX-NY1']}"}
            r = await post_sign_in(lab, s, form, origin)
            assert (r.status, r.headers["Location"]) == (302, "/owa/")
            assert SESSION_COOKIE in r.cookies

    run(scenario())


def test_a_canary_that_does_not_match_the_pages_cookie_says_the_page_expired(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            # A browser with cookies off, or a stale page: it posts a canary without its cookie.
            form = {**SCRIPTED_FORM, "hidcanary": "stale"}
            r = await post_sign_in(lab, s, form, {"Origin": "https://mail.contoso.com"})
            assert r.status == 400 and SESSION_COOKIE not in r.cookies
            assert "Sign-in page expired" in await r.text()

    run(scenario())


# ------------------------------------------------------------------ CSRF and sign-out


def test_forms_without_the_session_canary_or_from_another_site_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            await sign_in(lab, s, "alice")
            lab.deliver("EX-NY1", "alice", "Keep me")
            send = {"a": "Send", "to": "bob@contoso.com", "subject": "x", "body": "y"}
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/?ae=Item"), data=send, allow_redirects=False
            )
            assert r.status == 403
            page = await (await s.get(lab.url("mail.contoso.com", "/owa/"))).text()
            good = {**send, "hidcanary": canary_of(page)}
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/?ae=Item"),
                data=good,
                headers={"Origin": "https://evil.example"},
                allow_redirects=False,
            )
            assert r.status == 403
            assert lab.stores["EX-NY1"].list_messages("alice", "outbox").total == 0
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/?ae=Item"), data=good, allow_redirects=False
            )
            assert r.status == 303
            assert lab.stores["EX-NY1"].list_messages("alice", "outbox").total == 1

    run(scenario())


def test_sign_out_needs_the_canary_and_ends_the_session(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            await sign_in(lab, s, "alice")
            page = await (await s.get(lab.url("mail.contoso.com", "/owa/"))).text()
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/logoff.owa"), data={"hidcanary": "x"}
            )
            assert r.status == 403
            r = await s.get(
                lab.url("mail.contoso.com", "/owa/logoff.owa")
            )  # a GET signs nobody out
            assert r.status == 200 and "Sign out" in await r.text()
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/logoff.owa"), data={"hidcanary": canary_of(page)}
            )
            assert r.status == 200 and "successfully signed out" in await r.text()
            r = await s.get(lab.url("mail.contoso.com", "/owa/"), allow_redirects=False)
            assert r.status == 302 and r.headers["Location"].startswith("/owa/auth/logon.aspx")

    run(scenario())


# ------------------------------------------------------------------ proxy


def test_a_fl_mailbox_is_read_through_ny_by_proxy(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            lab.deliver("EX-FL1", "adam", "Budget <review>", body="<b>not html</b>")
            r = await sign_in(lab, s, "contoso\\adam")
            r = await s.get(lab.url("mail.contoso.com", "/owa/"))
            page = await r.text()
            assert r.url.host == "mail.contoso.com" and "Adam User" in page
            assert "Budget &lt;review&gt;" in page  # escaped, from FL's store
            item = re.findall(r'href="\?ae=Item&amp;id=(\d+)"', page)[0]
            r = await s.get(lab.url("mail.contoso.com", f"/owa/?ae=Item&id={item}"))
            assert "&lt;b&gt;not html&lt;/b&gt;" in await r.text()
            ecp = await (await s.get(lab.url("mail.contoso.com", "/ecp/"))).text()
            assert "My Account" in ecp and "adam@contoso.com" in ecp

    run(scenario())


def test_fl_trusts_the_proxied_user_only_from_a_cas_on_a_windows_auth_vdir(tmp_path: Path) -> None:
    headers = {
        "X-Sitemail-Proxy-User": "adam",
        "X-Sitemail-Proxy-Canary": "c",
        "X-Sitemail-Proxy-Trusted": "0",
    }

    async def scenario() -> None:
        async with running(tmp_path) as lab:
            url = lab.url("ex-fl1.contoso.com", "/owa/")
            async with browser(lab, cert="EX-NY1") as ny:
                r = await ny.get(url, headers=headers, allow_redirects=False)
                assert r.status == 200 and "Adam User" in await r.text()
            async with browser(lab) as anyone:  # the same headers from a browser count for nothing
                r = await anyone.get(url, headers=headers, allow_redirects=False)
                assert r.status == 302 and "logon.aspx" in r.headers["Location"]
            async with browser(lab, cert="EX-HUB") as hub:  # a server, but not a CAS
                r = await hub.get(url, headers=headers, allow_redirects=False)
                assert r.status == 403
            lab.set_vdir("EX-FL1\\owa (Default Web Site)", windows_authentication=False)
            async with browser(lab, cert="EX-NY1") as ny:
                r = await ny.get(url, headers=headers, allow_redirects=False)
                assert r.status == 401 and r.headers["WWW-Authenticate"] == "Negotiate"
            async with browser(lab, cert="EX-NY1") as ny:  # alice's mailbox is not FL's to serve
                r = await ny.get(url, headers={**headers, "X-Sitemail-Proxy-User": "alice"})
                assert r.status == 401  # (Windows authentication still off)
            lab.set_vdir("EX-FL1\\owa (Default Web Site)", windows_authentication=True)
            async with browser(lab, cert="EX-NY1") as ny:
                r = await ny.get(url, headers={**headers, "X-Sitemail-Proxy-User": "alice"})
                assert r.status == 421

    run(scenario())


def test_windows_authentication_off_on_fl_gives_a_page_naming_the_problem(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            await sign_in(lab, s, "contoso\\adam")
            lab.set_vdir("EX-FL1\\owa (Default Web Site)", windows_authentication=False)
            r = await s.get(lab.url("mail.contoso.com", "/owa/"))
            page = await r.text()
            assert r.status == 500
            assert "WindowsAuthenticationDisabledOnTarget" in page
            assert "Set-OwaVirtualDirectory" in page and "-WindowsAuthentication $true" in page

    run(scenario())


# ------------------------------------------------------------------ redirection


def test_manual_redirection_links_to_the_directory_external_url(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            await sign_in(lab, s, "contoso\\adam")
            lab.set_vdir(
                "EX-FL1\\owa (Default Web Site)", external_url="https://ex-fl1.contoso.com/owa"
            )
            r = await s.get(lab.url("mail.contoso.com", "/owa/"), allow_redirects=False)
            page = await r.text()
            assert r.status == 200
            assert "Use the following link to open this mailbox with the best performance:" in page
            assert re.findall(r'<a href="(https://[^"]+)"', page) == [
                "https://ex-fl1.contoso.com/owa"
            ]

    run(scenario())


def test_silent_redirection_signs_the_user_in_at_the_other_site_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            await sign_in(lab, s, "contoso\\adam")
            lab.set_vdir(
                "EX-FL1\\owa (Default Web Site)", external_url="https://ex-fl1.contoso.com/owa"
            )
            lab.set_vdir(
                "EX-NY1\\owa (Default Web Site)", cross_site_redirect_type=RedirectType.SILENT
            )
            r = await s.get(lab.url("mail.contoso.com", "/owa/"), allow_redirects=False)
            assert r.status == 302
            location = r.headers["Location"]
            assert location.startswith("https://ex-fl1.contoso.com/owa/auth/sso.owa?t=")
            landing = lab.url(
                "ex-fl1.contoso.com", urlsplit(location).path + "?" + urlsplit(location).query
            )
            r = await s.get(landing, allow_redirects=False)
            assert (r.status, r.headers["Location"]) == (302, "/owa/")
            page = await (await s.get(lab.url("ex-fl1.contoso.com", "/owa/"))).text()
            assert "Adam User" in page and "Inbox" in page  # no second sign-in
            async with browser(lab) as thief:  # the same token again is refused
                r = await thief.get(landing, allow_redirects=False)
                assert r.status == 302 and "logon.aspx" in r.headers["Location"]

    run(scenario())


def test_basic_authentication_where_the_vdir_allows_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            lab.set_vdir(
                "EX-NY1\\owa (Default Web Site)",
                forms_authentication=False,
                basic_authentication=True,
            )
            r = await s.get(lab.url("mail.contoso.com", "/owa/"), allow_redirects=False)
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
            r = await s.get(
                lab.url("mail.contoso.com", "/owa/"), headers=basic("contoso\\alice", PASSWORD)
            )
            assert r.status == 200 and "Alice User" in await r.text()
            r = await s.get(lab.url("mail.contoso.com", "/owa/"), headers=basic("alice", "no"))
            assert r.status == 401

    run(scenario())


def test_an_exchange_2003_mailbox_is_sent_to_the_exchange2003_url(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            await sign_in(lab, s, "contoso\\larry")
            r = await s.get(lab.url("mail.contoso.com", "/owa/"), allow_redirects=False)
            # Forms-based sign-in on the 2010 vdir: straight on to the legacy URL (spec 8.4).
            assert (r.status, r.headers["Location"]) == (302, "https://ex2003.contoso.com/exchange")

    run(scenario())


def test_an_unreachable_target_gives_a_proxy_error_page(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            await sign_in(lab, s, "contoso\\adam")
            with socket.socket() as unused:
                unused.bind(("127.0.0.1", 0))
                lab.ports["EX-FL1"] = unused.getsockname()[1]  # nothing listens there
            r = await s.get(lab.url("mail.contoso.com", "/owa/"))
            page = await r.text()
            assert r.status == 502 and "ProxyTargetUnreachable" in page
            assert (
                "EX-NY1 tried to proxy OWA traffic for adam to https://ex-fl1.contoso.com/owa"
                in (html.unescape(page))
            )

    run(scenario())


def test_a_large_attachment_streams_through_the_proxy(tmp_path: Path) -> None:
    payload = bytes(range(256)) * (3 * 4096)  # 3 MiB

    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            raw = (
                b"From: bob@contoso.com\r\nTo: adam@contoso.com\r\nSubject: Big\r\n"
                b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
                b"--b\r\nContent-Type: application/octet-stream\r\n"
                b'Content-Disposition: attachment; filename="data.bin"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n"
                + base64.encodebytes(payload).replace(b"\n", b"\r\n")
                + b"--b--\r\n"
            )
            lab.stores["EX-FL1"].deliver("adam", "test:big", raw)
            await sign_in(lab, s, "contoso\\adam")
            page = await (await s.get(lab.url("mail.contoso.com", "/owa/"))).text()
            item = re.findall(r'href="\?ae=Item&amp;id=(\d+)"', page)[0]
            page = await (
                await s.get(lab.url("mail.contoso.com", f"/owa/?ae=Item&id={item}"))
            ).text()
            link = html.unescape(re.findall(r'href="(\?ae=Attachment[^"]+)"', page)[0])
            assert "data.bin" in page
            r = await s.get(lab.url("mail.contoso.com", "/owa/" + link))
            assert r.headers["Content-Type"] == "application/octet-stream"
            assert r.headers["Content-Disposition"].startswith("attachment;")
            assert await r.read() == payload

    run(scenario())


def test_ecp_password_change(tmp_path: Path) -> None:
    new = "N3w-passw0rd"

    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            await sign_in(lab, s, "alice")
            page = await (await s.get(lab.url("mail.contoso.com", "/ecp/"))).text()
            url = lab.url("mail.contoso.com", "/ecp/")
            form = {"a": "password", "hidcanary": canary_of(page)}

            async def change(old: str, confirm: str) -> tuple[int, str]:
                data = {**form, "oldpwd": old, "newpwd": new, "confirmpwd": confirm}
                r = await s.post(url, data=data)
                return r.status, html.unescape(await r.text())

            status, text = await change("nope", new)
            assert status == 400 and "The current password you entered isn't correct." in text
            status, text = await change(PASSWORD, "other")
            assert status == 400 and "The new passwords don't match." in text
            status, text = await change(PASSWORD, new)
            assert status == 200 and "Your password was changed." in text
            async with browser(lab) as other:
                old_try = await sign_in(lab, other, "alice", PASSWORD)
                assert old_try.headers["Location"].startswith("/owa/auth/logon.aspx")
                new_try = await sign_in(lab, other, "alice", new)
                assert new_try.headers["Location"] == "/owa/"

    run(scenario())


async def _ews_by_proxy(
    door: FrontDoor, request: web.Request, ctx: RequestContext, user: AppUser
) -> web.StreamResponse:
    """What NY's EWS front end does: the decision, which must be a proxy, carried out."""
    outcome = door.decisions.decide(ctx, ClientProtocol.EWS, user.mailbox)
    assert isinstance(outcome, Proxy)
    return await door.handoff.forward_service(request, ctx, outcome, user)


def test_plugged_in_protocols_use_the_same_sign_in_decision_and_proxy(tmp_path: Path) -> None:
    """What the EWS front end does: Basic at NY, proxied to FL's InternalUrl, served there.

    The front door signs the user in before either handler runs: NY's by Basic,
    FL's as the user NY's server certificate names.
    """

    async def ews_ny(
        request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        assert (user.method, user.proxied_by) == (SignInMethod.BASIC, None)
        return await _ews_by_proxy(lab_ref[0].doors["EX-NY1"], request, ctx, user)

    async def ews_fl(
        request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        assert (user.method, user.proxied_by) == (SignInMethod.PROXIED, "EX-NY1")
        body = await request.read()
        return web.json_response({"user": user.alias, "got": len(body), "path": ctx.subpath})

    lab_ref: list[Lab] = []

    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            lab_ref.append(lab)
            lab.doors["EX-NY1"].register(VirtualDirectoryKind.EWS, ews_ny)
            lab.doors["EX-FL1"].register(VirtualDirectoryKind.EWS, ews_fl)
            url = lab.url("ex-ny1.contoso.com", "/EWS/Exchange.asmx")
            # EWS's default is Windows authentication only, which clients cannot use here.
            r = await s.post(url, headers=basic("contoso\\adam", PASSWORD))
            assert r.status == 401 and r.headers.getall("WWW-Authenticate") == ["Negotiate", "NTLM"]
            lab.set_vdir("EX-NY1\\EWS (Default Web Site)", basic_authentication=True)
            url = lab.url("ex-ny1.contoso.com", "/EWS/Exchange.asmx")
            r = await s.post(url, data=b"x" * 100_000, headers=basic("contoso\\adam", PASSWORD))
            # The path below the application's folder (/EWS), as IIS gives it.
            assert await r.json() == {"user": "adam", "got": 100_000, "path": "/Exchange.asmx"}
            wsdl = lab.url("ex-ny1.contoso.com", "/ews/Services.wsdl")
            r = await s.post(wsdl, data=b"x", headers=basic("contoso\\adam", PASSWORD))
            assert await r.json() == {"user": "adam", "got": 1, "path": "/Services.wsdl"}
            # A browser's own proxy headers are stripped before the handler sees them.
            r = await s.post(url, headers={"X-Sitemail-Proxy-User": "adam"})
            assert r.status == 401
            r = await s.post(url, data=b"x", headers=basic("contoso\\adam", "wrong"))
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")

    run(scenario())


def test_a_proxied_answer_cut_off_by_the_target_is_an_error_not_a_short_page(
    tmp_path: Path,
) -> None:
    """A small answer goes back whole (one write with its headers), so NY sees a target
    that stops before its Content-Length before it has sent anything: a 502 page, not
    a 200 with half a body; a whole one keeps the target's status and headers."""

    async def ews_ny(
        request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        return await _ews_by_proxy(lab_ref[0].doors["EX-NY1"], request, ctx, user)

    async def ews_fl(
        request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        if ctx.subpath == "/Services.wsdl":
            answer = web.Response(status=207, body=b"<wsdl/>", content_type="text/xml")
            answer.headers["ETag"] = '"v1"'
            return answer
        response = web.StreamResponse()
        response.content_type = "text/xml"
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"<partial")
        assert request.transport is not None
        request.transport.close()
        return response

    lab_ref: list[Lab] = []

    async def scenario() -> None:
        async with running(tmp_path) as lab, browser(lab) as s:
            lab_ref.append(lab)
            lab.doors["EX-NY1"].register(VirtualDirectoryKind.EWS, ews_ny)
            lab.doors["EX-FL1"].register(VirtualDirectoryKind.EWS, ews_fl)
            lab.set_vdir("EX-NY1\\EWS (Default Web Site)", basic_authentication=True)
            auth = basic("contoso\\adam", PASSWORD)
            r = await s.get(lab.url("ex-ny1.contoso.com", "/EWS/Services.wsdl"), headers=auth)
            assert (r.status, await r.read()) == (207, b"<wsdl/>")
            assert r.headers["Content-Type"] == "text/xml" and r.headers["ETag"] == '"v1"'
            r = await s.get(lab.url("ex-ny1.contoso.com", "/EWS/Exchange.asmx"), headers=auth)
            page = html.unescape(await r.text())
            assert r.status == 502 and "ProxyTargetUnreachable" in page
            assert "the target's answer was cut off" in page

    run(scenario())


def test_a_directory_change_shows_in_the_next_turn_of_the_event_loop(tmp_path: Path) -> None:
    """The front door reads the directory's change counter once per turn of its event loop:
    within one turn every request sees the same snapshot, and the first request of the
    next turn (any request sent after the change was committed) sees the change."""

    async def scenario() -> None:
        async with running(tmp_path) as lab:
            door = lab.doors["EX-FL1"]
            owa = "EX-FL1\\owa (Default Web Site)"
            await asyncio.sleep(0)
            before = door.snapshot()
            lab.set_vdir(owa, basic_authentication=True)
            assert door.snapshot() is before  # the same turn
            await asyncio.sleep(0)
            after = door.snapshot()
            assert after is not before
            vdir = next(v for v in after.virtual_directories if v.identity == owa)
            assert vdir.basic_authentication
            await asyncio.sleep(0)
            assert door.snapshot() is after  # nothing changed since: the snapshot is kept

    run(scenario())


def test_a_snapshot_taken_outside_an_event_loop_is_always_read_again(tmp_path: Path) -> None:
    directory, _ = _organization(tmp_path)
    from sitemail.access.web.front import FrontDoor as Door

    door = Door.__new__(Door)  # only the directory is needed to take snapshots
    door.directory = directory
    door._counter, door._read_in = -1, None
    door._snapshot = door.snapshot()
    owa = "EX-FL1\\owa (Default Web Site)"
    v = directory.require(VirtualDirectory, owa)
    directory.put(v.model_copy(update={"basic_authentication": not v.basic_authentication}))
    again = door.snapshot()
    changed = next(x for x in again.virtual_directories if x.identity == owa)
    assert changed.basic_authentication is not v.basic_authentication
