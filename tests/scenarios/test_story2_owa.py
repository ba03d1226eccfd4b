"""Story 2 in a browser: OWA and ECP proxied, redirected, and failing, as Exchange 2010 does it.

Headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright)
resolves the lab's host names with ``--host-resolver-rules`` (the addresses
come from ``sitemail lab status --json``) and trusts the lab's CA by its key
(``--ignore-certificate-errors-spki-list``; the servers send the CA
certificate after their own).  Each step leaves a screenshot in
``test-artifacts/story2/``.

1. Adam (mailbox in FL) signs in at ``https://mail.contoso.com/owa``, NY's
   external URL; FL's ExternalUrl is ``$null``, so EX-NY1 proxies to FL's
   InternalUrl.  He reads, replies, opens Options (ECP); the address bar
   stays on mail.contoso.com.
3. FL gets an ExternalUrl: OWA and ECP show the redirection page with FL's
   URL (CrossSiteRedirectType Manual); following it means signing in again.
   With CrossSiteRedirectType Silent the browser lands in FL's OWA without a
   second sign-in.
4. With no ExternalUrl and Windows authentication off on FL's OWA, proxying
   fails with a page that names the problem and the fix.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from tests.conftest import ROOT, RunningLab

from sitemail.mailbox.store_client import StoreClient
from sitemail.org.directory import Directory
from sitemail.org.pki import server_cert_files
from sitemail.org.ports import STORE_PORT

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts" / "story2"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "Pa55word!"
FL_OWA = "EX-FL1\\owa (Default Web Site)"
FL_ECP = "EX-FL1\\ecp (Default Web Site)"
NY_OWA = "EX-NY1\\owa (Default Web Site)"
FL_EXTERNAL_OWA = "https://ex-fl1.contoso.com/owa"
FL_EXTERNAL_ECP = "https://ex-fl1.contoso.com/ecp"

WELCOME = (
    "From: Fiona Fl <fiona@contoso.com>\r\nTo: Adam Fl <adam@contoso.com>\r\n"
    "Subject: Welcome to the Tampa office\r\nMessage-ID: <welcome-story2@contoso.com>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    "<h2>Welcome, Adam!</h2><p>Your desk is <b>3-114</b>. The <i>Tampa</i> team meets on "
    "Mondays at 9.</p><script>document.body.innerHTML='owned'</script>"
    '<p><img src="http://tracker.example/pixel.gif" alt="team photo"></p>'
    "<ul><li>Badge: reception</li><li>Laptop: IT desk</li></ul>\r\n"
)


@dataclass
class Story:
    lab: RunningLab
    directory: Directory
    browser: Browser
    addresses: dict[str, str]
    port: int

    def url(self, host: str, path: str) -> str:
        suffix = "" if self.port == 443 else f":{self.port}"
        return f"https://{host}{suffix}{path}"

    def configure(self, line: str) -> None:
        """A Set-OwaVirtualDirectory / Set-EcpVirtualDirectory line, as the administrator
        types it (``sitemail shell``), then until every server has applied it."""
        self.lab.shell(line)
        self.lab.changes_live()

    def context(self) -> BrowserContext:
        """A fresh browser profile (no cookies), as a new person at a new computer."""
        return self.browser.new_context(viewport={"width": 1280, "height": 820})


# A headless page has no address bar; the story is about what it shows, so the
# screenshot gets one (drawn by the test, outside the page's own content).
_ADDRESS_BAR = """url => {
  const bar = document.createElement('div');
  bar.id = 'test-address-bar';
  bar.textContent = url;
  Object.assign(bar.style, {position: 'fixed', top: '0', left: '0', right: '0', zIndex: '9999',
    height: '32px', boxSizing: 'border-box', background: '#eceff1', color: '#202124',
    padding: '7px 14px', font: '14px monospace', borderBottom: '1px solid #b0bec5'});
  document.body.style.paddingTop = '32px';
  document.body.prepend(bar);
}"""


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate(_ADDRESS_BAR, page.url)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.evaluate(
        "() => { document.getElementById('test-address-bar').remove();"
        " document.body.style.paddingTop = ''; }"
    )


def _spki_hash(ca_file: Path) -> str:
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    der = ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chromium_args(ca_file: Path, resolver_rules: str) -> list[str]:
    """Headless Chromium as TESTING.md runs it, resolving names by ``resolver_rules`` and
    trusting the lab's CA (``ca_file``) by its key."""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--host-resolver-rules={resolver_rules}",
        f"--ignore-certificate-errors-spki-list={_spki_hash(ca_file)}",
    ]


def _deliver(lab: RunningLab, directory: Directory, addresses: dict[str, str]) -> None:
    """A message for Adam, put into FL's store as its hub would (server certificate)."""
    pki = lab.dir / "pki"

    async def deliver() -> None:
        async with StoreClient(
            directory,
            lambda server: (addresses[server], STORE_PORT),
            ca_file=pki / "ca.pem",
            cert_files=server_cert_files(pki, "EX-FL1"),
        ) as store:
            await store.deliver("adam", "story2:welcome", WELCOME.encode())
            for i, subject in enumerate(["Parking passes", "Q3 planning", "Lunch on Friday"]):
                raw = (
                    f"From: Fiona Fl <fiona@contoso.com>\r\nTo: adam@contoso.com\r\n"
                    f"Subject: {subject}\r\n\r\nSee you there.\r\n"
                )
                await store.deliver("adam", f"story2:{i}", raw.encode())

    # Playwright's sync API runs an event loop in this thread: deliver from another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, deliver()).result(timeout=60)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def story(seed_lab: RunningLab, playwright: Playwright) -> Iterator[Story]:
    status = seed_lab.status()
    addresses = {s["name"]: s["address"] for s in status["servers"]}
    rules = ", ".join(
        [
            f"MAP mail.contoso.com {addresses['EX-NY1']}",
            f"MAP ex-fl1.contoso.com {addresses['EX-FL1']}",
            "MAP * ~NOTFOUND",  # nothing else resolves: the browser never leaves the lab
        ]
    )
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=chromium_args(seed_lab.dir / "pki" / "ca.pem", rules),
    )
    directory = seed_lab.open_directory()
    _deliver(seed_lab, directory, addresses)
    try:
        yield Story(seed_lab, directory, browser, addresses, 443 + int(status["port_offset"]))
    finally:
        browser.close()
        directory.close()


def sign_in(page: Page, *, private: bool = True, user: str = "adam") -> None:
    """Fill in OWA's sign-in page the way a person does."""
    if private:
        page.get_by_label("This is a private computer").check()
    page.get_by_label("Domain\\user name:").fill(f"contoso\\{user}")
    page.get_by_label("Password:").fill(PASSWORD)
    # One navigation, however many redirects follow (proxy, Silent redirection).
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def test_story2_step1_owa_and_ecp_are_proxied_to_fl(story: Story) -> None:
    context = story.context()
    page = context.new_page()
    first = page.goto(story.url("mail.contoso.com", "/owa"))
    assert first is not None
    tls = first.security_details()
    assert tls is not None and "Contoso Organization CA" in str(tls.get("issuer"))
    assert page.url.startswith(story.url("mail.contoso.com", "/owa/auth/logon.aspx"))
    shot(page, "step1-01-owa-sign-in-at-mail.contoso.com")

    sign_in(page)
    expect(page).to_have_url(story.url("mail.contoso.com", "/owa/"))
    expect(page.get_by_text("Adam Fl", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Welcome to the Tampa office")).to_be_visible()
    assert "(4)" in page.locator(".navpane li.current").inner_text()  # unread count
    shot(page, "step1-02-owa-inbox-proxied-to-fl")

    page.get_by_role("link", name="Welcome to the Tampa office").click()
    expect(page.get_by_role("heading", name="Welcome, Adam!")).to_be_visible()
    body = page.locator(".body").inner_text()
    assert "owned" not in body and "[team photo]" in body
    assert page.url.startswith(story.url("mail.contoso.com", "/owa/"))
    shot(page, "step1-03-owa-read-proxied")

    page.get_by_role("link", name="Reply", exact=True).click()
    assert page.locator("input[name=subject]").input_value() == "RE: Welcome to the Tampa office"
    page.locator("textarea[name=body]").press("Control+Home")
    page.locator("textarea[name=body]").type("Thanks Fiona, see you Monday.")
    shot(page, "step1-04-owa-reply")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Your message was sent.")).to_be_visible()
    shot(page, "step1-05-owa-sent")

    page.get_by_role("link", name="Parking passes").click()
    page.get_by_label("Move to folder").select_option(label="Deleted Items")
    page.get_by_role("button", name="Move").click()
    expect(page.get_by_text("The item was moved.")).to_be_visible()
    expect(page.get_by_role("link", name="Parking passes")).to_have_count(0)

    page.get_by_role("link", name="Options").click()
    expect(page).to_have_url(story.url("mail.contoso.com", "/ecp/?rfr=owa"))
    expect(page.get_by_role("heading", name="My Account")).to_be_visible()
    page.locator("textarea[name=signature]").fill("Adam Fl\nTampa office, desk 3-114")
    page.locator("#signature button").click()
    expect(page.get_by_text("Your signature was saved.")).to_be_visible()
    shot(page, "step1-06-ecp-options-proxied-to-fl")

    # Sign out: EX-NY1 holds the session, whichever server drew the page.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("successfully signed out")).to_be_visible()
    expect(page).to_have_url(story.url("mail.contoso.com", "/owa/logoff.owa"))
    page.goto(story.url("mail.contoso.com", "/owa/"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    context.close()


def test_story2_step3_fl_external_url_manual_then_silent(story: Story) -> None:
    story.configure(f'Set-OwaVirtualDirectory "{FL_OWA}" -ExternalUrl {FL_EXTERNAL_OWA}')
    story.configure(f'Set-EcpVirtualDirectory "{FL_ECP}" -ExternalUrl {FL_EXTERNAL_ECP}')
    try:
        context = story.context()
        page = context.new_page()
        page.goto(story.url("mail.contoso.com", "/owa"))
        sign_in(page)
        expect(page).to_have_url(story.url("mail.contoso.com", "/owa/"))
        text = page.locator("main").inner_text()
        assert "Use the following link to open this mailbox with the best performance:" in text
        link = page.locator("#redirect-link")
        assert link.get_attribute("href") == FL_EXTERNAL_OWA
        shot(page, "step3-01-owa-manual-redirection-page")

        page.goto(story.url("mail.contoso.com", "/ecp/"))
        assert page.locator("#redirect-link").get_attribute("href") == FL_EXTERNAL_ECP
        shot(page, "step3-02-ecp-manual-redirection-page")

        page.goto(story.url("mail.contoso.com", "/owa/"))
        with page.expect_navigation():
            page.locator("#redirect-link").click()
        # Manual: the other site's sign-in page, a second sign-in.
        assert page.url.startswith("https://ex-fl1.contoso.com")
        assert "/owa/auth/logon.aspx" in page.url
        shot(page, "step3-03-fl-asks-to-sign-in-again")
        context.close()

        story.configure(f'Set-OwaVirtualDirectory "{NY_OWA}" -CrossSiteRedirectType Silent')
        context = story.context()
        page = context.new_page()
        visited: list[str] = []
        page.on("framenavigated", lambda frame: visited.append(frame.url))
        page.goto(story.url("mail.contoso.com", "/owa"))
        sign_in(page)
        expect(page).to_have_url(story.url("ex-fl1.contoso.com", "/owa/"))
        fl_logons = [u for u in visited if "ex-fl1" in u and "logon.aspx" in u]
        assert fl_logons == []  # single sign-on: no second sign-in page
        expect(page.get_by_role("link", name="Welcome to the Tampa office")).to_be_visible()
        shot(page, "step3-04-owa-silent-redirection-to-fl")

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_text("successfully signed out")).to_be_visible()
        shot(page, "step3-05-signed-out")
        context.close()
    finally:
        story.configure(f'Set-OwaVirtualDirectory "{NY_OWA}" -CrossSiteRedirectType Manual')
        story.configure(f'Set-OwaVirtualDirectory "{FL_OWA}" -ExternalUrl $null')
        story.configure(f'Set-EcpVirtualDirectory "{FL_ECP}" -ExternalUrl $null')


def test_story2_step4_windows_authentication_off_on_fl(story: Story) -> None:
    story.configure(f'Set-OwaVirtualDirectory "{FL_OWA}" -WindowsAuthentication $false')
    try:
        context = story.context()
        page = context.new_page()
        page.goto(story.url("mail.contoso.com", "/owa"))
        sign_in(page)
        expect(page).to_have_url(story.url("mail.contoso.com", "/owa/"))
        text = page.locator("main").inner_text()
        assert "Integrated Windows authentication is off on EX-FL1\\owa (Default Web Site)" in text
        assert "WindowsAuthenticationDisabledOnTarget" in text
        assert "-WindowsAuthentication $true" in text
        shot(page, "step4-01-owa-proxy-fails-windows-authentication-off")
        context.close()
    finally:
        story.configure(f'Set-OwaVirtualDirectory "{FL_OWA}" -WindowsAuthentication $true')
