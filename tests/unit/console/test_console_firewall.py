"""The firewall panel's ESMTP inspection switch, with aiohttp's test client.

Behind the console is a real emulated ASA (:class:`AsaDevice` and its console
handlers) on a real console socket in a lab-shaped folder, so the lines the
console types are taken, or refused, by the ASA's own CLI, and ``write
memory`` writes its startup-config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.console.test_console_app import Browser, FakeAdmin, play
from tests.unit.console.test_console_app import admin as admin  # the fixtures
from tests.unit.console.test_console_app import directory as directory
from tests.unit.console.test_console_app import seed_objects as seed_objects

from sitemail.console.auth import Sessions
from sitemail.diagnose.commands import ASA_NO_INSPECT_ESMTP
from sitemail.firewall.process import AsaDevice, console_handlers
from sitemail.firewall.relay import Relay
from sitemail.org.directory import Directory
from sitemail.server.console import serve_console


def test_the_switch_types_the_troubleshooters_lines_behind_csrf_and_confirmation(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    home = tmp_path / "firewalls" / "ASA-NY"
    home.mkdir(parents=True)
    device = AsaDevice(home, "ASA-NY")
    device.boot()

    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        server = await serve_console(
            home / "console.sock", console_handlers(device, Relay([]), "ASA-NY")
        )
        try:
            await browser.sign_in()
            token = await browser.csrf()
            panel = await (await browser.request("GET", "/api/firewalls/asa-ny")).json()
            assert panel["inspection"] == "on" and "inspect esmtp" in panel["policy"]
            assert panel["switch_lines"]["off"] == list(ASA_NO_INSPECT_ESMTP)
            path = "/api/firewalls/ASA-NY/inspection"
            off = {"inspect": "off", "confirm": True}

            async def post(body: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
                answer = await browser.request("POST", path, json=body, headers=headers)
                data: dict[str, Any] = await answer.json()
                return answer.status, data

            # No token, a wrong one, another site: refused before the ASA hears anything.
            for headers in (
                {},
                {"X-CSRF-Token": "guess"},
                {"X-CSRF-Token": token, "Origin": "https://evil.example"},
            ):
                assert (await post(off, headers))[0] == 403
            # Without the page's confirmation, or asking for something else: refused.
            for body in ({"inspect": "off"}, {"inspect": "maybe", "confirm": True}, ["off"]):
                status, data = await post(body, {"X-CSRF-Token": token})
                assert status == 400 and "confirm" in data["error"]
            assert device.esmtp_state()["outside"] is not None  # still inspecting

            status, done = await post(off, {"X-CSRF-Token": token})
            assert status == 200 and done["ok"] is True, done
            assert done["lines"] == list(ASA_NO_INSPECT_ESMTP)
            assert "ASA-NY(config-pmap-c)# no inspect esmtp" in done["transcript"]
            assert "[OK]" in done["transcript"]  # write memory
            assert done["inspection"] == "off"
            assert set(device.esmtp_state().values()) == {None}
            assert "inspect esmtp" not in (home / "startup-config").read_text()

            status, back = await post({"inspect": "on", "confirm": True}, {"X-CSRF-Token": token})
            assert status == 200 and back["inspection"] == "on"
            assert "ASA-NY(config-pmap-c)# inspect esmtp" in back["transcript"]
            assert "inspect esmtp" in (home / "startup-config").read_text()
            # A firewall that is none of the lab's: the one-line reason, nothing typed.
            unknown = await browser.request(
                "POST",
                "/api/firewalls/ASA-XX/inspection",
                json=off,
                headers={"X-CSRF-Token": token},
            )
            assert "not a firewall" in (await unknown.json())["error"]
        finally:
            server.close()
            await server.wait_closed()

    play(tmp_path, directory, admin, scenario)
