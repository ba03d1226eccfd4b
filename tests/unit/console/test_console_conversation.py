"""The console's SMTP conversation page, with aiohttp's test client.

The hubs' ``/protocol-log`` route is played by the route's own search
(:func:`find_sessions`) over logs the project's log writer wrote: the
troubleshooter's samples of story 1 (EX-NY1's send session with the banner
and EHLO keywords masked by the ASA; EX-FL1's receive session of it, as
EX-FL1 really spoke).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
from tests.unit.console.test_console_app import Browser, FakeAdmin, play
from tests.unit.console.test_console_app import directory as directory  # the fixtures
from tests.unit.console.test_console_app import seed_objects as seed_objects

from sitemail.clock import ManualClock
from sitemail.console.auth import Sessions
from sitemail.console.conversation import TO_SENDER, align
from sitemail.diagnose import samples
from sitemail.diagnose.log_routes import find_sessions
from sitemail.diagnose.logs import LogKind
from sitemail.mailflow.protocol_log import ProtocolLog
from sitemail.org.directory import Directory


class LogAdmin(FakeAdmin):
    """The hubs' admin API with a real ``/protocol-log`` over the folders of each hub."""

    def __init__(self, folders: dict[str, Path]) -> None:
        super().__init__()
        self.folders = folders

    def post(
        self, server: str, address: str, port: int, path: str, body: dict[str, object]
    ) -> object:
        if path != "/protocol-log":
            return super().post(server, address, port, path, body)
        self.calls.append((server, address, path, body))
        kind = str(body.get("kind"))
        when = {k: datetime.fromisoformat(str(body[k])) for k in ("start", "end") if k in body}
        return find_sessions(
            self.folders[server] / ("SmtpSend" if kind == "send" else "SmtpReceive"),
            LogKind.SMTP_SEND if kind == "send" else LogKind.SMTP_RECEIVE,
            session_id=body.get("session_id"),  # type: ignore[arg-type]
            remote_ip=body.get("remote_ip"),  # type: ignore[arg-type]
            limit=int(body.get("limit", 50)),  # type: ignore[call-overload]
            **when,
        )


@pytest.fixture
def hubs(tmp_path: Path) -> LogAdmin:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    folders = {"EX-NY1": tmp_path / "ny", "EX-FL1": tmp_path / "fl"}
    ny = ProtocolLog.send(folders["EX-NY1"] / "SmtpSend", clock=clock)
    fl = ProtocolLog.receive(folders["EX-FL1"] / "SmtpReceive", clock=clock)
    samples.send_masked(ny)
    samples.receive_on(fl, "EX-FL1\\Default EX-FL1", samples.EHLO_2010)
    odd = ny.session("EX-NY1\\Intra-Organization", "10.1.0.11:7", "10.2.0.11:25")
    odd.received("<script>alert(1)</script>")
    ny.close()
    fl.close()
    return LogAdmin(folders)


def send_ids(fake: LogAdmin) -> list[str]:
    sessions = find_sessions(fake.folders["EX-NY1"] / "SmtpSend", LogKind.SMTP_SEND)
    return [str(s["session_id"]) for s in sessions]


def test_the_conversation_marks_what_the_firewall_rewrote(
    tmp_path: Path, directory: Directory, hubs: LogAdmin
) -> None:
    masked = send_ids(hubs)[0]

    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        await browser.sign_in()
        listing = await (await browser.request("GET", "/conversations")).text()
        assert f"session={masked}" in listing and "EX-NY1" in listing
        response = await browser.request("GET", f"/conversations?server=ex-ny1&session={masked}")
        page = await response.text()
        assert response.status == 200
        # Both ends, side by side, and the firewalls of both sites.
        assert "Sending hub EX-NY1" in page and "Receiving hub EX-FL1" in page
        assert "Firewalls ASA-NY, ASA-FL" in page
        rewritten = re.findall(r'<tr class="rewritten">(.*?)</tr>', page)
        # The banner, and each keyword the ASA masked (STARTTLS -> XXXXXXXA ...).
        assert len(rewritten) == 1 + sum(1 for k in samples.EHLO_MASKED if "XXX" in k)
        banner = unescape(rewritten[0])
        assert "220 " in banner and "Microsoft ESMTP MAIL Service" in banner
        marks = [unescape(m) for m in re.findall(r'<mark class="rewritten">(.*?)</mark>', page)]
        assert any(set(m) == {"*"} for m in marks)  # the masked banner
        # Marked place by place: X-ANONYMOUSTLS kept its first X, the rest is the ASA's.
        assert {"XXXXXXXA", "STARTTLS", "XXXXXXXXXXXXA", "-ANONYMOUSTLS"} <= set(marks)
        count = re.search(r'id="conversation-summary" role="status">(\d+) lines rewritten', page)
        assert count is not None and int(count.group(1)) == len(rewritten)
        # The receiving hub found by the sender's own address, near in time.
        asked = [
            c[3] for c in fake.calls if c[0] == "EX-FL1" and c[3] and c[3]["kind"] == "receive"
        ]
        assert asked and all(b is not None and b["remote_ip"] == "10.1.0.11" for b in asked)

    play(tmp_path, directory, hubs, scenario)


def test_log_lines_come_out_escaped_and_input_is_checked(
    tmp_path: Path, directory: Directory, hubs: LogAdmin
) -> None:
    odd = send_ids(hubs)[-1]

    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        anonymous = await browser.request("GET", f"/conversations?server=EX-NY1&session={odd}")
        assert anonymous.status == 303 and not fake.calls
        await browser.sign_in()
        listing = await (await browser.request("GET", "/conversations")).text()
        assert "<script>alert" not in listing
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
        path = f"/conversations?server=EX-NY1&session={odd}"
        shown = await (await browser.request("GET", path)).text()
        # Set beside the receiver's line, the text is cut into marked runs: escaped each.
        assert "<script>" not in shown and "alert(1)" in unescape(re.sub(r"<[^>]+>", "", shown))
        bad = await browser.request("GET", "/conversations?server=EX-NY1&session=1'%3Cb%3E")
        assert bad.status == 400 and "is not a protocol log session id" in await bad.text()
        assert "<b>" not in await bad.text()
        nobody = await browser.request("GET", "/conversations?server=EX-XX9&session=0A")
        assert nobody.status == 400 and "couldn't be found" in unescape(await nobody.text())
        missing = await browser.request("GET", "/conversations?server=EX-NY1&session=FFFF")
        assert missing.status == 400 and "has no SmtpSend session FFFF" in await missing.text()

    play(tmp_path, directory, hubs, scenario)


def test_a_line_the_other_end_never_read_is_shown_alone() -> None:
    sender = [
        {"event": "<", "data": "220 ****"},
        {"event": ">", "data": "EHLO ny"},
        {"event": "<", "data": "250-SIZE"},
        {"event": "<", "data": "250 8BITMIME"},
    ]
    receiver = [
        {"event": "+", "data": ""},
        {"event": ">", "data": "220 fl.1"},
        {"event": "<", "data": "EHLO ny"},
        {"event": ">", "data": "250-SIZE"},
        {"event": ">", "data": "250-X-ANONYMOUSTLS"},
        {"event": ">", "data": "250 8BITMIME"},
    ]
    steps = align(sender, receiver)
    assert [(s.firewall, s.direction == TO_SENDER) for s in steps] == [
        ("", False),  # the receiver's connect note
        ("rewritten", True),
        ("passed", False),
        ("passed", True),
        ("not read by the sending hub", True),  # stripped on the way
        ("passed", True),
    ]
    assert steps[1].sender_runs == [("220 ", False), ("****", True)]


def test_recording_captures_on_each_asa_and_showing_what_each_interface_passed(
    tmp_path: Path, directory: Directory, hubs: LogAdmin
) -> None:
    """The console types ``capture`` on a real emulated ASA; the segments of the next
    conversation are recorded into those captures as the relay records them (the ASA's
    inside carrying FL's own words, as ASA-FL's inside would), and the page reads them back
    with ``show capture NAME dump``."""
    from sitemail.firewall.process import AsaDevice, console_handlers
    from sitemail.firewall.relay import Relay
    from sitemail.firewall.tcp_segments import ACK, PSH, SYN, Segment
    from sitemail.server.console import serve_console

    home = tmp_path / "firewalls" / "ASA-FL"
    home.mkdir(parents=True)
    device = AsaDevice(home, "ASA-FL")
    device.boot()
    masked = send_ids(hubs)[0]

    def segments() -> list[Segment]:
        start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
        client, server = (samples.SENDER_IP, 41235), (samples.RECEIVER_IP, 25)
        said = [
            (server, client, samples.BANNER),
            (client, server, f"EHLO {samples.SENDER}"),
            (server, client, "250-STARTTLS"),
        ]
        out = [Segment(start, *client, *server, 1, 0, SYN, mss=1460)]
        for n, (a, b, line) in enumerate(said, 1):
            out.append(
                Segment(start + n / 100, *a, *b, 100 * n, 1, ACK | PSH, (line + "\r\n").encode())
            )
        return out

    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        server = await serve_console(
            home / "console.sock", console_handlers(device, Relay([]), "ASA-FL")
        )
        try:
            await browser.sign_in()
            token = await browser.csrf()
            forged = await browser.request("POST", "/conversations/record", data={"csrf": "x"})
            assert forged.status == 403 and device.runtime.captures.get("console-in") is None
            done = await browser.request("POST", "/conversations/record", data={"csrf": token})
            text = unescape(await done.text())
            assert done.status == 200 and "ASA-FL: capturing SMTP on inside and outside" in text
            inside = device.runtime.captures.get("console-in")
            assert inside is not None and inside.interface == "inside"
            device.runtime.captures.record("inside", segments())
            page = await browser.request("GET", f"/conversations?server=EX-NY1&session={masked}")
            shown = await page.text()
            assert 'aria-label="Captured on ASA-FL inside"' in shown
            table = shown[shown.index('aria-label="Captured on ASA-FL inside"') :]
            cells = [
                unescape(re.sub(r"<[^>]+>", "", c))
                for c in re.findall(r'<td class="line">(.*?)</td>', table)
            ]
            assert cells == [samples.BANNER, f"EHLO {samples.SENDER}", "250-STARTTLS"]
            # On the inside, FL's words are what FL logged: nothing marked there.
            assert "<mark" not in table.split("</table>")[0]
            assert 'aria-label="Captured on ASA-FL outside"' not in shown  # nothing there
        finally:
            server.close()
            await server.wait_closed()

    play(tmp_path, directory, hubs, scenario)
