"""Story 1 in the web console, in a real browser (issue 16 item 7).

``sitemail console`` runs beside the seed's lab, a child of the test; headless
Chromium (Debian's, driven by Playwright, trusting the lab's CA by its key as
the story 2 test does) signs in as alice, an administrator, with the keyboard.
The topology shows both sites and both ASAs inspecting ESMTP; after alice's
mail to adam, EX-NY1 holds one message and the Queue Viewer shows the queue
for site FL in Retry with Exchange's LastError.  The failed SMTP conversation,
seen from both ends, has the masked banner and ``XXXXXXXA`` (for ``STARTTLS``)
marked.  Each firewall's panel turns inspection off with the troubleshooter's
lines (after the page's question), the console's Retry button runs
Retry-Queue, and the message reaches adam's mailbox exactly once; its way is
then drawn from the tracking logs: RECEIVE and SEND on EX-NY1, RECEIVE and
DELIVER on EX-FL1.  Labels and
the Tab order of the sign-in form and the queue actions are checked on the
way; each step leaves a screenshot in ``test-artifacts/console/``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from tests.conftest import ROOT, RunningLab, delivered_once, in_mailbox, submit_as, wait_for
from tests.integration.test_story1_mail_flow import LAST_ERROR, fl_queue, set_intra_org_logging
from tests.scenarios.test_story2_owa import CHROMIUM, PASSWORD, chromium_args

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts" / "console"
MESSAGE_ID = "ny-to-fl@console"
RECEIVE_CONNECTOR = "'EX-FL1\\Default EX-FL1'"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def console(seed_lab: RunningLab) -> Iterator[str]:
    """``sitemail console`` on the lab; its address, as it prints it."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "sitemail", "console", "--lab-dir", str(seed_lab.dir)),
            *("--listen", f"127.0.0.1:{port}", "--admin", "alice"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"https://\S+/", line)
        assert found, (
            f"no address printed: {line!r} {process.stderr.read() if process.stderr else ''}"
        )
        yield found.group(0)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(seed_lab: RunningLab) -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            # Only the console's own address; no name resolves.
            args=chromium_args(
                seed_lab.dir / "pki" / "ca.pem", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
            ),
        )
        try:
            yield chromium
        finally:
            chromium.close()


def focused(page: Page) -> str:
    """What has the keyboard focus: its id, else its accessible text."""
    return str(
        page.evaluate(
            "() => { const e = document.activeElement;"
            " return e.id || e.getAttribute('aria-label') || e.textContent.trim(); }"
        )
    )


def unnamed_controls(page: Page) -> list[str]:
    """The page's controls that a screen reader could not name (no label, no aria-label,
    no text)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll(
              'input:not([type=hidden]), button, select, textarea, a[href], [role=button]')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                         && !e.textContent.trim())
            .map(e => e.outerHTML.slice(0, 120))"""
    )
    return found


def newest_session(page: Page, console: str) -> str | None:
    """The session id of EX-NY1's newest SmtpSend session on the conversations page."""
    page.goto(console + "conversations")
    link = page.locator("#send-sessions tbody tr", has_text="EX-NY1").first.get_by_role("link")
    return link.inner_text() if link.count() else None


def test_story_one_in_the_console(seed_lab: RunningLab, console: str, browser: Browser) -> None:
    lab = seed_lab
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()

    # Nothing without sign-in: the console sends the browser to its sign-in form.
    page.goto(console + "queues")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type("not her password")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("isn't correct")
    shot(page, "1-sign-in-refused")
    # The name is kept and the cursor waits in the password field.
    expect(page.get_by_label("User name")).to_have_value("alice")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(console + "queues")

    # The topology: both sites, both ASAs inspecting ESMTP, every host running.
    page.get_by_role("link", name="Topology").click()
    expect(page.locator("#topology")).to_contain_text("Site NY")
    expect(page.locator("#topology")).to_contain_text("Site FL")
    for fw in ("ASA-NY", "ASA-FL"):
        expect(page.locator(f"#insp-{fw}")).to_have_text("inspect esmtp: on")
    expect(page.locator("#state-EX-FL1")).to_have_text("state: running")

    # The seed's logging (and EX-FL1's Default connector's, to see the other end too).
    set_intra_org_logging(lab, "Verbose")
    lab.shell(f"Set-ReceiveConnector {RECEIVE_CONNECTOR} -ProtocolLoggingLevel Verbose")
    lab.changes_live()

    # Alice's mail to adam waits on EX-NY1 for site FL, in Retry.
    submit_as("alice", ["adam@contoso.com"], MESSAGE_ID)
    queue = wait_for(
        lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and q, "the FL queue in Retry"
    )
    expect(page.locator("#queue-EX-NY1")).to_have_text("queued: 1", timeout=15_000)
    page.get_by_role("button", name="firewall ASA-NY: show details").press("Enter")
    expect(page.locator("#details")).to_contain_text("inspect esmtp")
    assert unnamed_controls(page) == []
    shot(page, "2-topology-inspection-on")

    # The Queue Viewer: the queue for FL with the cmdlet's columns and LastError.
    page.get_by_role("link", name="Queue Viewer").click()
    row = page.locator("#queues tbody tr", has_text=queue["Identity"])
    expect(row).to_contain_text("SmtpRelayToRemoteAdSite")
    expect(row).to_contain_text("Retry")
    expect(row).to_contain_text(LAST_ERROR)
    page.get_by_label(f"Select queue {queue['Identity']}").check()
    expect(page.locator("#messages tbody")).to_contain_text("alice@contoso.com")
    # The queue actions in toolbar order, each one labelled by its text.
    page.get_by_role("button", name="Retry").focus()
    order = [focused(page)]
    for _ in range(2):
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert order == ["Retry", "Suspend", "Resume"]
    assert unnamed_controls(page) == []
    shot(page, "3-queue-viewer-retry")

    # The failed conversation from both ends: what EX-NY1 read is not what EX-FL1 said.
    page.get_by_role("link", name="SMTP conversations").click()
    newest = page.locator("#send-sessions tbody tr", has_text="EX-NY1").first
    newest.get_by_role("link").click()
    expect(page.locator("#conversation")).to_contain_text("Receiving hub EX-FL1")
    marks = page.locator("#conversation tr.rewritten mark.rewritten")
    expect(marks.first).to_be_visible()
    shown = marks.all_inner_texts()
    assert "XXXXXXXA" in shown and "STARTTLS" in shown, shown
    assert any(set(m) == {"*"} for m in shown), shown  # the masked banner
    banner = page.locator("#conversation tr.rewritten", has_text="Microsoft ESMTP MAIL Service")
    expect(banner.first).to_be_visible()
    assert unnamed_controls(page) == []
    shot(page, "4-conversation-rewritten")

    # Record the next conversation on both ASAs, make it happen (Retry), and see where the
    # rewrite happens: FL's own words on ASA-FL's inside, masked from its outside on.
    failed = str(newest_session(page, console))
    page.get_by_role("button", name="Record the next conversation").click()
    for fw in ("ASA-NY", "ASA-FL"):
        expect(page.locator("#record-status")).to_contain_text(
            f"{fw}: capturing SMTP on inside and outside"
        )
    page.get_by_role("link", name="Queue Viewer").click()
    page.get_by_label(f"Select queue {queue['Identity']}").check()
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#output")).to_contain_text("Retry-Queue")
    wait_for(lambda: newest_session(page, console) not in (None, failed), "the next session")
    page.locator("#send-sessions tbody tr", has_text="EX-NY1").first.get_by_role("link").click()
    inside = page.get_by_role("table", name="Captured on ASA-FL inside")
    outside = page.get_by_role("table", name="Captured on ASA-FL outside")
    expect(inside).to_contain_text("250-STARTTLS")
    expect(inside.locator("mark")).to_have_count(0)
    expect(outside.locator("mark", has_text="XXXXXXXA").first).to_be_visible()
    expect(page.get_by_role("table", name="Captured on ASA-NY inside")).to_contain_text("XXXXXXXA")
    shot(page, "4b-conversation-captured")

    # The troubleshooter, run from the console in the background: its steps, then its report
    # with the ASA lines (the probes are left out here: the story test's time is short).
    page.get_by_role("link", name="Troubleshooter").click()
    page.get_by_label("Probe SMTP between the sites").uncheck()
    page.get_by_role("button", name="Run the troubleshooter").click()
    expect(page.locator("#report-summary")).to_be_visible(timeout=60_000)
    expect(page.locator("#troubleshoot-steps")).to_contain_text("reading the directory")
    expect(page.locator("#troubleshoot-steps")).to_contain_text("reading the protocol and tracking")
    expect(page.locator("#report")).to_contain_text("no inspect esmtp")
    bar = page.locator("#troubleshoot-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max")
    assert unnamed_controls(page) == []
    shot(page, "5-troubleshooter-report")

    # The troubleshooter's lines on both ASAs, from each firewall's panel (after its question).
    page.get_by_role("link", name="Topology").click()
    questions: list[str] = []
    for fw in ("ASA-NY", "ASA-FL"):
        page.get_by_role("button", name=f"firewall {fw}: show details").click()
        expect(page.locator("#details")).to_contain_text("ESMTP inspection: on")
        page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
        page.get_by_role("button", name="Turn ESMTP inspection off").click()
        expect(page.locator("#asa-output")).to_contain_text("[OK]", timeout=20_000)
        expect(page.locator("#details")).to_contain_text("ESMTP inspection: off")
        assert fw in questions[-1] and "no inspect esmtp" in questions[-1]
        assert "wr me" in questions[-1]
        shot(page, f"6-{fw}-inspection-switched-off")
    page.get_by_role("link", name="Queue Viewer").click()
    page.get_by_label(f"Select queue {queue['Identity']}").check()
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#output")).to_contain_text(f"Retry-Queue -Identity '{queue['Identity']}'")
    delivered_once(
        lab,
        lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", MESSAGE_ID),
        MESSAGE_ID,
        "adam has it",
    )
    # The queue is empty (or gone, once Exchange drops an idle queue): nothing left in Retry.
    expect(page.locator("#queues td.status-Retry")).to_have_count(0, timeout=15_000)
    shot(page, "7-queue-viewer-delivered")
    page.get_by_role("link", name="Topology").click()
    for fw in ("ASA-NY", "ASA-FL"):
        expect(page.locator(f"#insp-{fw}")).to_have_text("inspect esmtp: off")
    shot(page, "8-topology-inspection-off")

    # The message's way: searched by its Message-ID, drawn across both hubs and sites.
    page.get_by_role("link", name="Message tracking").click()
    page.get_by_label("Message-ID").fill(MESSAGE_ID)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#events")).to_contain_text("DELIVER")
    page.locator("#events a").first.click()
    path = page.locator("svg#path")
    for server, event in (
        ("EX-NY1", "RECEIVE"),
        ("EX-NY1", "SEND"),
        ("EX-FL1", "RECEIVE"),
        ("EX-FL1", "DELIVER"),
    ):
        box = path.locator(f'g[data-server="{server}"][data-event="{event}"]')
        expect(box.first).to_be_visible()
    expect(path).to_contain_text("Site NY")
    expect(path).to_contain_text("Site FL")
    # A DEFER, when the hub logged one for the refused attempts, carries Exchange's LastError.
    for label in path.locator('g[data-event="DEFER"]').evaluate_all(
        "boxes => boxes.map(b => b.getAttribute('aria-label'))"
    ):
        assert "451" in label, label
    assert unnamed_controls(page) == []
    shot(page, "9-message-path")
    set_intra_org_logging(lab, "None")
    lab.shell(f"Set-ReceiveConnector {RECEIVE_CONNECTOR} -ProtocolLoggingLevel None")
    lab.changes_live()
