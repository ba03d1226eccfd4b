"""The seed's legacy stories on the lab of examples/legacy.yaml, with real clients.

"Exchange 2007 (non-internet facing) to Exchange 2007": dora's mailbox is on
EX07-BR in site BRANCH, which has no ExternalUrl; she signs in at
legacy.contoso.com, EX07-HQ's ExternalUrl in the Internet-facing site HQ, and
EX07-HQ (an Exchange 2007 Client Access server) proxies her to EX07-BR -- OWA
in Chromium, ActiveSync with curl, EWS with exchangelib, which finds an
Exchange 2007 SP3 server there.  With Integrated Windows authentication off
on EX07-BR (turned off in IIS Manager, ``sitemail iis``, where the seed says
2007 sets it), proxying fails with a page naming the cause.

Mixed: EX2010 answers mail.contoso.com and hands 2007 mailboxes to a 2007
Client Access server of the mailbox's site: lena's (HQ) is sent to the legacy
URL legacy.contoso.com, dora's (BRANCH) is proxied to EX07-BR.
"""

from __future__ import annotations

import json
import poplib
import re
import smtplib
import ssl
from collections.abc import Iterator
from functools import partial

import pytest
from bench.lab_names import LabNamesAdapter, MappedConnection
from exchangelib import BASIC, Account, Configuration, Credentials
from exchangelib import DELEGATE as DELEGATE_ACCESS
from exchangelib.protocol import BaseProtocol
from playwright.sync_api import Page, expect, sync_playwright
from tests.conftest import example_lab, in_mailbox, sitemail, submit_as, wait_for
from tests.integration.test_ews_eas_lab import PASSWORD, Lab, decisions, eas, folders, foldersync
from tests.integration.test_story2_mail_clients import process_log
from tests.scenarios.test_story2_owa import CHROMIUM, chromium_args, sign_in

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LEGACY = "legacy.contoso.com"  # EX07-HQ, Exchange 2007, Internet-facing
MAIL = "mail.contoso.com"  # EX2010
BR_OWA = "Default Web Site/owa"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with example_lab(tmp_path_factory, "legacy.yaml") as running:
        the_lab = Lab(running)
        the_lab.deliver("dora", "EX07-BR", "Branch opening", "The branch opens on Monday.")
        the_lab.deliver("lena", "EX07-HQ", "Legacy hello", "Still on 2007.")
        yield the_lab


@pytest.fixture(scope="module")
def page(lab: Lab) -> Iterator[Page]:
    rules = ", ".join(
        [
            f"MAP {LEGACY} {lab.addresses['EX07-HQ']}",
            f"MAP {MAIL} {lab.addresses['EX2010']}",
            "MAP * ~NOTFOUND",  # nothing else resolves: the browser never leaves the lab
        ]
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args(lab.ca, rules))
        try:
            yield browser.new_page()
        finally:
            browser.close()


def iis_windows_auth(lab: Lab, server: str, vdir: str, enabled: bool) -> None:
    """IIS Manager's switch (appcmd), as the seed turns IWA on for a 2007 CAS."""
    sitemail(
        "iis", "--dir", str(lab.running.dir), server, "set", "config", vdir,
        "-section:windowsAuthentication", f"/enabled:{str(enabled).lower()}", "/commit:apphost",
    )  # fmt: skip
    lab.running.changes_live()


def test_owa_2007_to_2007_proxy_needs_windows_authentication(lab: Lab, page: Page) -> None:
    page.goto(lab.url(LEGACY, "/owa"))
    assert page.url.startswith(lab.url(LEGACY, "/owa/auth/logon.aspx"))
    expect(page).to_have_title("Outlook Web Access")  # 2007's name for it
    sign_in(page, user="dora")
    expect(page).to_have_url(lab.url(LEGACY, "/owa/"))
    expect(page.get_by_text("Dora Branch", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Branch opening")).to_be_visible()
    (proxied,) = {d["target"] for d in decisions(lab, "EX07-HQ") if d.get("user") == "dora"}
    assert proxied == "https://ex07-br.contoso.com/owa"

    iis_windows_auth(lab, "EX07-BR", BR_OWA, False)
    try:
        page.reload()
        text = page.locator("main").inner_text()
        assert "Integrated Windows authentication is off on EX07-BR\\owa" in text
        assert "WindowsAuthenticationDisabledOnTarget" in text
        # The troubleshooter names it, with IIS Manager's fix.
        report = lab.running.run("troubleshoot", "--no-probe", "--json", check=False)
        (finding,) = [
            f
            for f in json.loads(report.stdout)["findings"]
            if f["cause"] == "exchange2007-proxy-windows-auth"
        ]
        assert finding["subject"] == "EX07-BR\\owa (Default Web Site)"
        assert finding["fixes"][0]["lines"][0].startswith("sitemail iis EX07-BR set config")
    finally:
        iis_windows_auth(lab, "EX07-BR", BR_OWA, True)
    page.reload()
    expect(page.get_by_role("link", name="Branch opening")).to_be_visible()


def test_owa_2010_sends_a_2007_mailbox_to_the_legacy_url(lab: Lab, page: Page) -> None:
    page.context.clear_cookies()
    page.goto(lab.url(MAIL, "/owa"))
    expect(page).to_have_title("Outlook Web App")
    sign_in(page, user="lena")
    # Forms-based sign-in on EX2010's OWA: the legacy redirect is silent (spec 8.4).
    assert page.url.startswith(lab.url(LEGACY, "/owa"))
    expect(page).to_have_title("Outlook Web Access")


def test_activesync_through_the_2007_and_2010_cas(lab: Lab) -> None:
    at_legacy = {"host": LEGACY, "server": "EX07-HQ"}
    status, headers, _ = eas(lab, "dora", None, None, **at_legacy)
    assert status == 200
    # EX07-BR's banner, through EX07-HQ: 2007 speaks EAS up to 12.1.
    assert headers["ms-asprotocolversions"] == "2.0,2.1,2.5,12.0,12.1"
    assert headers["ms-server-activesync"] == "8.3"
    status, _, body = eas(lab, "dora", "12.1", "FolderSync", foldersync(), **at_legacy)
    assert status == 200 and "Inbox" in folders(body)
    # 2007 cannot open alice's 2010 mailbox: 403 (spec 8.5).
    status, _, body = eas(lab, "alice", "12.1", "FolderSync", foldersync(), **at_legacy)
    assert status == 403 and b"Exchange 2010 Client Access server" in body

    at_2010 = {"host": MAIL, "server": "EX2010"}
    status, _, body = eas(lab, "dora", "12.1", "FolderSync", foldersync(), **at_2010)
    assert status == 200 and "Inbox" in folders(body)  # proxied to EX07-BR
    status, headers, _ = eas(lab, "lena", "12.1", "FolderSync", foldersync(), **at_2010)
    assert status == 451
    assert headers["x-ms-location"] == f"https://{LEGACY}/Microsoft-Server-ActiveSync"


def test_exchangelib_finds_exchange_2007_behind_the_legacy_url(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MappedConnection, "names", {LEGACY: lab.addresses["EX07-HQ"]})
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", LabNamesAdapter)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.ca))
    config = Configuration(
        service_endpoint=lab.url(LEGACY, "/EWS/Exchange.asmx"),
        credentials=Credentials("contoso\\dora", PASSWORD),
        auth_type=BASIC,  # no version given: exchangelib asks the server
    )
    account = Account(
        "dora@contoso.com", config=config, autodiscover=False, access_type=DELEGATE_ACCESS
    )
    assert [i.subject for i in account.inbox.all()] == ["Branch opening"]
    version = account.version
    assert (version.build.major_version, version.build.minor_version) == (8, 3)
    assert version.api_version == "Exchange2007_SP1"


def test_pop3_2007_to_2007_proxy(lab: Lab) -> None:
    # Python's poplib at EX07-HQ (by address: the chain is checked, not the name).
    tls = ssl.create_default_context(cafile=str(lab.ca))
    tls.check_hostname = False
    offset = int(lab.running.status()["port_offset"])
    pop = poplib.POP3_SSL(lab.addresses["EX07-HQ"], 995 + offset, context=tls, timeout=30)
    try:
        pop.user("dora")
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        subjects = [
            line
            for n in range(1, count + 1)
            for line in pop.retr(n)[1]
            if line.startswith(b"Subject: ")
        ]
        assert b"Subject: Branch opening" in subjects
    finally:
        pop.quit()
    # EX07-HQ proxied the session to EX07-BR, which served it from its store.
    served = re.compile(r"POP3 dora from 127\.1\.0\.12:\d+ served locally")
    assert served.search(process_log(lab.running, "EX07-BR"))


def test_2007_hub_speaks_and_logs_as_2007(lab: Lab) -> None:
    lab.shell('Set-ReceiveConnector "EX07-HQ\\Default EX07-HQ" -ProtocolLoggingLevel Verbose')
    lab.running.changes_live()
    offset = int(lab.running.status()["port_offset"])
    features = {}
    for server in ("EX07-HQ", "EX2010"):
        with smtplib.SMTP(timeout=30) as smtp:
            code, banner = smtp.connect(lab.addresses[server], 25 + offset)
            assert code == 220
            assert banner.startswith(f"{server.lower()}.contoso.com Microsoft ESMTP MAIL ".encode())
            assert smtp.ehlo()[0] == 250
            features[server] = set(smtp.esmtp_features)
    # Shadow redundancy came with 2010: only its hub offers XSHADOW (spec 2.2).
    assert "xshadow" in features["EX2010"] and "xshadow" not in features["EX07-HQ"]
    assert {"x-anonymoustls", "x-exps", "xexch50"} <= features["EX07-HQ"]
    logs = lab.running.dir / "servers" / "EX07-HQ" / "TransportRoles" / "Logs" / "ProtocolLogs"
    (log,) = (logs / "SmtpReceive").glob("RECV*.LOG")
    text = log.read_bytes()
    assert text.startswith(b"#Software: Microsoft Exchange Server\r\n#Version: 8.0.0.0\r\n")
    assert b"Microsoft ESMTP MAIL Service ready at" in text


def test_mail_flows_between_2010_and_2007_hubs(lab: Lab) -> None:
    offset = int(lab.running.status()["port_offset"])
    # alice (2010) writes to both 2007 sites; EX07-BR's hub takes BRANCH's mail from EX2010.
    hq = lab.addresses["EX2010"]
    submit_as(
        "alice",
        ["dora@contoso.com", "lena@contoso.com"],
        "to-2007@contoso.com",
        server=hq,
        port=587 + offset,
    )
    # dora (2007) answers through her own 2007 hub.
    br = lab.addresses["EX07-BR"]
    submit_as("dora", ["alice@contoso.com"], "from-2007@contoso.com", server=br, port=587 + offset)
    for server, db, message_id in (
        ("EX07-BR", "BR-DB07", "to-2007@contoso.com"),
        ("EX07-HQ", "HQ-DB07", "to-2007@contoso.com"),
        ("EX2010", "HQ-DB10", "from-2007@contoso.com"),
    ):
        copies = partial(in_mailbox, lab.running, server, db, message_id)
        wait_for(lambda copies=copies: copies() == 1, f"{message_id} in {db}")
    # Shadow redundancy is 2010's (spec 5.1): no 2007 hub holds a shadow queue.
    queues = lab.running.shell("Get-Queue")
    assert {q["Identity"].split("\\")[0] for q in queues} >= {"EX07-HQ", "EX07-BR", "EX2010"}
    shadows = [q["Identity"] for q in queues if q["DeliveryType"] == "ShadowRedundancy"]
    assert not [q for q in shadows if q.startswith("EX07-")], shadows


def test_tools_see_the_2007_servers(lab: Lab) -> None:
    servers = {s["Name"]: s for s in lab.running.shell("Get-ExchangeServer")}
    assert servers["EX07-BR"]["AdminDisplayVersion"] == "Version 8.3 (Build 83.6)"
    owa = {v["Server"]: v for v in lab.running.shell("Get-OwaVirtualDirectory")}
    assert owa["EX07-BR"]["OwaVersion"] == "Exchange2007" and owa["EX07-BR"]["ExternalUrl"] is None
    status = lab.running.status()
    assert {s["name"]: s["state"] for s in status["servers"]} == dict.fromkeys(
        ["EX2010", "EX07-HQ", "EX07-BR"], "running"
    )
    # A healthy legacy lab: the troubleshooter reads its 2007 hubs and finds nothing.
    report = lab.running.run("troubleshoot", "--no-probe", check=False)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "No problem found" in report.stdout and "3 hubs" in report.stdout
