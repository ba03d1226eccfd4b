"""The troubleshooter page and its background job, with aiohttp's test client.

The job's runner is a stand-in that announces the live troubleshooter's steps
and waits between them on the test's word, so the progress the page polls is
seen mid-run; the real runner runs in the Chromium story test on the seed's
lab.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tests.unit.console.test_console_app import PASSWORD, Browser, FakeAdmin
from tests.unit.console.test_console_app import admin as admin  # the fixtures
from tests.unit.console.test_console_app import directory as directory
from tests.unit.console.test_console_app import seed_objects as seed_objects

from sitemail.console.app import make_app
from sitemail.console.auth import Sessions
from sitemail.console.backend import OrganizationBackend
from sitemail.console.troubleshoot_job import TroubleshootJobs
from sitemail.diagnose.findings import Confidence, Finding, Fix, FixKind, Report, Severity
from sitemail.org.directory import Directory

STEPS = [
    "reading the directory",
    "asking every hub for its queues and messages",
    "asking the firewalls for their ESMTP inspection",
    "reading the protocol and tracking logs",
]


class SteppedRunner:
    """Says each step, then waits until the test lets it go on."""

    def __init__(self) -> None:
        self.go = threading.Semaphore(0)
        self.runs: list[bool] = []

    def __call__(self, lab_dir: Path, probes: bool, say: Callable[[str], None]) -> Report:
        self.runs.append(probes)
        for step in STEPS:
            say(step)
            self.go.acquire(timeout=10)
        finding = Finding(
            "esmtp-inspection",
            "<script>alert(1)</script> ESMTP inspection masks the banner",
            Severity.ERROR,
            Confidence.HIGH,
            "The firewall rewrites the EHLO keywords.",
            fixes=[Fix(FixKind.ASA, ("no inspect esmtp",), "ASA-NY")],
        )
        return Report("live", [finding], looked_at=["lab: x"])


def test_the_troubleshooter_runs_in_the_background_and_shows_its_progress(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    runner = SteppedRunner()
    sessions = Sessions(directory, frozenset({"alice"}))
    backend = OrganizationBackend(directory, tmp_path, admin=admin, probe=admin)
    jobs = TroubleshootJobs(tmp_path, runner)

    async def main() -> None:
        async with TestClient(TestServer(make_app(sessions, backend, jobs))) as client:
            browser = Browser(client)
            anonymous = await browser.request("POST", "/api/troubleshoot", json={"probes": False})
            assert anonymous.status == 401 and runner.runs == []
            assert (await browser.request("GET", "/api/troubleshoot")).status == 401
            assert (await browser.sign_in("alice", PASSWORD)).status == 303
            token = await browser.csrf()
            page = await browser.request("GET", "/troubleshoot")
            assert 'id="troubleshoot-progress"' in await page.text()
            forged = await browser.request("POST", "/api/troubleshoot", json={"probes": False})
            assert forged.status == 403 and runner.runs == []
            bad = await browser.request(
                "POST", "/api/troubleshoot", json={"probes": "no"}, headers={"X-CSRF-Token": token}
            )
            assert bad.status == 400
            assert await (await browser.request("GET", "/api/troubleshoot")).json() == {
                "state": "none"
            }

            async def start() -> dict[str, Any]:
                answer = await browser.request(
                    "POST",
                    "/api/troubleshoot",
                    json={"probes": False},
                    headers={"X-CSRF-Token": token},
                )
                assert answer.status == 200
                data: dict[str, Any] = await answer.json()
                return data

            async def status() -> dict[str, Any]:
                data: dict[str, Any] = await (
                    await browser.request("GET", "/api/troubleshoot")
                ).json()
                return data

            async def until(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
                for _ in range(200):
                    now = await status()
                    if check(now):
                        return now
                    await asyncio.sleep(0.05)
                raise AssertionError(f"not reached: {now}")

            first = await start()
            assert first["state"] == "running" and first["progress"]["total"] == 4
            mid = await until(lambda s: len(s["steps"]) == 2)
            assert [s["text"] for s in mid["steps"]] == STEPS[:2]
            assert mid["progress"]["done"] == 2 and mid["report"] is None
            again = await start()  # one job at a time: the running one
            assert again["id"] == first["id"] and runner.runs == [False]
            for _ in STEPS:
                runner.go.release()
            done = await until(lambda s: s["state"] == "done")
            assert done["progress"] == {"done": 4, "total": 4}
            finding = done["report"]["findings"][0]
            assert finding["fixes"][0]["lines"] == ["no inspect esmtp"]
            # Data, not markup: the page script puts it in with textContent.
            assert finding["title"].startswith("<script>")
            response = await browser.request("GET", "/api/troubleshoot")
            assert response.content_type == "application/json"

    asyncio.run(main())
