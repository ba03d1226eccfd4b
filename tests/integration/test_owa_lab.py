"""OWA and ECP on the seed lab, with an HTTP client: story 2 steps 1, 3 and 4.

Adam's mailbox is in FL; he signs in at NY's external URL
(``https://mail.contoso.com/owa``, which the client maps to EX-NY1's address,
as DNS would).  FL's OWA has no ExternalUrl, so EX-NY1 proxies to FL's
InternalUrl through both firewalls; then FL gets an ExternalUrl (Manual
page, then Silent redirection with single sign-on); then Windows
authentication goes off on FL's OWA and proxying fails the way Exchange
fails.  Directory changes are what Set-OwaVirtualDirectory writes; the
servers see them without a restart.

The client trusts only the lab CA and checks host names, so this also shows
that the servers' certificates cover the URLs' names.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from tests.conftest import RunningLab

from sitemail.mailbox.store_client import StoreClient
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import Mailbox, RedirectType, VirtualDirectory
from sitemail.org.pki import server_cert_files
from sitemail.org.ports import STORE_PORT

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PASSWORD = "Pa55word!"
FL_OWA = "EX-FL1\\owa (Default Web Site)"
FL_ECP = "EX-FL1\\ecp (Default Web Site)"
NY_OWA = "EX-NY1\\owa (Default Web Site)"
FL_EXTERNAL = "https://ex-fl1.contoso.com/owa"


class Lab:
    def __init__(self, running: RunningLab) -> None:
        self.running = running
        status = running.status()
        self.addresses = {s["name"]: s["address"] for s in status["servers"]}
        self.offset = int(status["port_offset"])
        self.directory: Directory = open_directory(str(running.dir / "directory.db"))
        self.names = {
            "mail.contoso.com": self.addresses["EX-NY1"],
            "ex-fl1.contoso.com": self.addresses["EX-FL1"],
        }

    def url(self, host: str, path: str) -> str:
        port = "" if self.offset == 0 else f":{443 + self.offset}"
        return f"https://{host}{port}{path}"

    def set_vdir(self, identity: str, **changes: Any) -> None:
        """What Set-OwaVirtualDirectory / Set-EcpVirtualDirectory write."""
        v = self.directory.require(VirtualDirectory, identity)
        self.directory.put(v.model_copy(update=changes))

    def store(self) -> StoreClient:
        """The store API, as a server of the organization (EX-FL1's certificate) calls it."""
        pki = self.running.dir / "pki"
        return StoreClient(
            self.directory,
            lambda server: (self.addresses[server], STORE_PORT),
            ca_file=pki / "ca.pem",
            cert_files=server_cert_files(pki, "EX-FL1"),
        )


@pytest.fixture(scope="module")
def lab(seed_lab: RunningLab) -> Iterator[Lab]:
    the_lab = Lab(seed_lab)
    yield the_lab
    the_lab.directory.close()


class _Names(AbstractResolver):
    """The lab's host names, as the lab's DNS would answer them."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.names[host]  # any other name is a test bug: never leave the lab
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


@asynccontextmanager
async def browser(lab: Lab) -> AsyncIterator[aiohttp.ClientSession]:
    ctx = ssl.create_default_context(cafile=str(lab.running.dir / "pki" / "ca.pem"))
    connector = aiohttp.TCPConnector(ssl=ctx, resolver=_Names(lab.names))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario, 120))


def hosts_of(response: aiohttp.ClientResponse) -> set[str]:
    return {str(r.url.host) for r in (*response.history, response)}


async def sign_in(
    lab: Lab, s: aiohttp.ClientSession, host: str, user: str
) -> aiohttp.ClientResponse:
    """What a person does: open /owa, get the sign-in page, fill it in."""
    r = await s.get(lab.url(host, "/owa"))
    assert urlsplit(str(r.url)).path == "/owa/auth/logon.aspx"
    page = await r.text()
    fields = dict(
        re.findall(
            r'name="(destination|flags|forcedownlevel|isUtf8|hidcanary)" value="([^"]*)"', page
        )
    )
    form = {**fields, "username": user, "password": PASSWORD, "trusted": "4"}
    return await s.post(lab.url(host, "/owa/auth.owa"), data=form)


def canary(page: str) -> str:
    found: list[str] = re.findall(r'name="hidcanary" value="([^"]*)"', page)
    assert found, page[:2000]
    return found[0]


def message_ids(page: str, subject: str) -> list[str]:
    pattern = r'href="\?ae=Item&amp;id=(\d+)">' + re.escape(html.escape(subject))
    found: list[str] = re.findall(pattern, page)
    return found


def message(subject: str, body: str, *, content_type: str = "text/plain") -> bytes:
    return (
        "From: Alice Ny <alice@contoso.com>\r\nTo: Adam Fl <adam@contoso.com>\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{abs(hash(subject))}@contoso.com>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


BUDGET_HTML = (
    "<p>Hello <b>Adam</b>, the budget is attached.</p>"
    "<script>document.title='owned'</script>"
    '<img src="http://tracker.example/p.gif" alt="logo">'
    '<a href="javascript:alert(1)">details</a>'
)


def test_story2_owa_and_ecp_proxy_redirect_and_failure(lab: Lab) -> None:
    async def scenario() -> None:
        # Mail for Adam, delivered into FL's store (where the hub would put it).
        async with lab.store() as store:
            await store.deliver(
                "adam",
                "owa-test:budget",
                message("Budget review", BUDGET_HTML, content_type="text/html"),
            )
            for i in range(22):
                await store.deliver("adam", f"owa-test:{i}", message(f"Note {i:02d}", f"Text {i}"))

        async with browser(lab) as s:
            # ---- step 1: sign in at NY's external URL; NY proxies to FL
            r = await sign_in(lab, s, "mail.contoso.com", "contoso\\adam")
            page = await r.text()
            assert r.status == 200 and "Adam Fl" in page
            assert hosts_of(r) == {"mail.contoso.com"}  # the address bar never left it
            assert "Items 1 to 20 of 23" in page and "Inbox" in page
            assert re.search(r"Inbox</span><span class=\"unread\">\(23\)", page)
            r = await s.get(lab.url("mail.contoso.com", "/owa/?ae=Folder&id=inbox&p=2"))
            page2 = await r.text()
            assert "Items 21 to 23 of 23" in page2
            (budget,) = message_ids(page2, "Budget review")

            r = await s.get(lab.url("mail.contoso.com", f"/owa/?ae=Item&id={budget}"))
            read = await r.text()
            assert r.status == 200 and hosts_of(r) == {"mail.contoso.com"}
            assert "Hello <b>Adam</b>, the budget is attached." in read
            assert "<script" not in read.split('class="body')[1]
            assert "tracker.example" not in read and "javascript:" not in read
            assert "[logo]" in read

            # ECP, proxied the same way: Adam sets his signature.
            r = await s.get(lab.url("mail.contoso.com", "/ecp/"))
            ecp = await r.text()
            assert r.status == 200 and hosts_of(r) == {"mail.contoso.com"} and "My Account" in ecp
            r = await s.post(
                lab.url("mail.contoso.com", "/ecp/"),
                data={
                    "a": "signature",
                    "hidcanary": canary(ecp),
                    "signature": "Adam, Tampa office",
                },
            )
            assert "Your signature was saved." in await r.text()
            assert lab.directory.require(Mailbox, "adam").signature == "Adam, Tampa office"

            # Reply through the proxy: it is submitted from FL's store.
            r = await s.get(lab.url("mail.contoso.com", f"/owa/?ae=Item&a=Reply&id={budget}"))
            compose = await r.text()
            assert "RE: Budget review" in compose and "Adam, Tampa office" in compose
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/?ae=Item"),
                data={
                    "a": "Send",
                    "hidcanary": canary(compose),
                    "rid": budget,
                    "to": "alice@contoso.com",
                    "subject": "RE: Budget review",
                    "body": "Looks fine.",
                },
            )
            assert r.status == 200 and "Your message was sent." in await r.text()
            async with lab.store() as store:
                outbox = await store.list_messages("adam", "outbox")
                sent = await store.list_messages("adam", "sentitems")
                subjects = [m.subject for m in (*outbox.items, *sent.items)]
                assert (
                    "RE: Budget review" in subjects
                )  # left Drafts for the Mail Submission service
                original = await store.get_message("adam", int(budget))
                assert original.flags.answered and original.flags.seen

            # Delete (to Deleted Items) and move, through the proxy.
            page = await (await s.get(lab.url("mail.contoso.com", "/owa/"))).text()
            (note0,) = message_ids(page2, "Note 00")
            (note1,) = message_ids(page2, "Note 01")
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/?ae=Item"),
                data={"a": "Delete", "id": note0, "hidcanary": canary(page)},
            )
            assert "The item was moved to Deleted Items." in await r.text()
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/?ae=Item"),
                data={"a": "Move", "id": note1, "folder": "junkemail", "hidcanary": canary(page)},
            )
            assert "The item was moved." in await r.text()
            async with lab.store() as store:
                deleted = await store.list_messages("adam", "deleteditems")
                junk = await store.list_messages("adam", "junkemail")
                assert [m.subject for m in deleted.items] == ["Note 00"]
                assert [m.subject for m in junk.items] == ["Note 01"]

            # ---- step 3: FL gets an ExternalUrl: the Manual redirection page
            lab.set_vdir(FL_OWA, external_url=FL_EXTERNAL)
            lab.set_vdir(FL_ECP, external_url="https://ex-fl1.contoso.com/ecp")
            r = await s.get(lab.url("mail.contoso.com", "/owa/"))
            manual = await r.text()
            assert r.status == 200
            assert (
                "Use the following link to open this mailbox with the best performance:" in manual
            )
            assert re.findall(r'<a href="(https://[^"]+)"', manual) == [FL_EXTERNAL]
            r = await s.get(lab.url("mail.contoso.com", "/ecp/"))
            assert re.findall(r'<a href="(https://[^"]+)"', await r.text()) == [
                "https://ex-fl1.contoso.com/ecp"
            ]

            # Silent: a 302 to FL's ExternalUrl, signed in there without a second sign-in.
            lab.set_vdir(NY_OWA, cross_site_redirect_type=RedirectType.SILENT)
            r = await s.get(lab.url("mail.contoso.com", "/owa/"), allow_redirects=False)
            assert r.status == 302
            assert r.headers["Location"].startswith(FL_EXTERNAL + "/")
            r = await s.get(lab.url("mail.contoso.com", "/owa/"))
            inbox = await r.text()
            assert r.url.host == "ex-fl1.contoso.com" and urlsplit(str(r.url)).path == "/owa/"
            assert "logon.aspx" not in " ".join(str(h.url) for h in r.history)
            assert "Adam Fl" in inbox and "Inbox" in inbox

            # ---- step 4: no ExternalUrl, and Windows authentication off on FL's OWA
            lab.set_vdir(NY_OWA, cross_site_redirect_type=RedirectType.MANUAL)
            lab.set_vdir(FL_OWA, external_url=None, windows_authentication=False)
            r = await s.get(lab.url("mail.contoso.com", "/owa/"))
            failure = html.unescape(await r.text())
            assert r.status == 500 and hosts_of(r) == {"mail.contoso.com"}
            assert "WindowsAuthenticationDisabledOnTarget" in failure
            assert 'Set-OwaVirtualDirectory -Identity "EX-FL1\\owa (Default Web Site)"' in failure

            # ECP still proxies (its own virtual directory still has Windows authentication).
            lab.set_vdir(FL_ECP, external_url=None)
            r = await s.get(lab.url("mail.contoso.com", "/ecp/"))
            assert r.status == 200 and "My Account" in await r.text()

        # The troubleshooter's evidence: EX-NY1's decision log names the reason.
        log_dir = lab.running.dir / "servers" / "EX-NY1" / "Logging" / "ClientAccess"
        records = [
            json.loads(line)
            for f in sorted(log_dir.glob("Decision*.log"))
            for line in f.read_text().splitlines()
        ]
        outcomes = {
            (r["protocol"], r["outcome"], r.get("reason"))
            for r in records
            if r.get("user") == "adam"
        }
        assert ("OWA", "Proxy", None) in outcomes
        assert ("OWA", "Redirect", None) in outcomes
        assert ("OWA", "Error", "WindowsAuthenticationDisabledOnTarget") in outcomes
        # FL's IIS log shows the proxied requests, from EX-NY1's own address.
        iis = "".join(
            f.read_text()
            for f in (lab.running.dir / "servers" / "EX-FL1" / "inetpub").rglob("u_ex*.log")
        )
        assert f" {lab.addresses['EX-NY1']} " in iis and "adam+(via+EX-NY1)" in iis

        lab.set_vdir(FL_OWA, windows_authentication=True)

    run(scenario())


def test_unknown_host_names_and_foreign_destinations_stay_put(lab: Lab) -> None:
    async def scenario() -> None:
        async with browser(lab) as s:
            r = await s.get(
                lab.url("mail.contoso.com", "/owa/"),
                headers={"Host": "www.fabrikam.com"},
                allow_redirects=False,
            )
            assert r.status == 404 and "Location" not in r.headers
            page = await (await s.get(lab.url("mail.contoso.com", "/owa/auth/logon.aspx"))).text()
            fields = dict(re.findall(r'name="(hidcanary)" value="([^"]*)"', page))
            form = {
                **fields,
                "destination": "https://www.fabrikam.com/phish",
                "username": "contoso\\alice",
                "password": PASSWORD,
            }
            r = await s.post(
                lab.url("mail.contoso.com", "/owa/auth.owa"), data=form, allow_redirects=False
            )
            assert (r.status, r.headers["Location"]) == (302, "/owa/")

    run(scenario())
