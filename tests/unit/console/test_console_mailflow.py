"""The console's message tracking page and a message's path, with aiohttp's test client.

The hubs are the shell tests' fake admin API: canned tracking events per hub,
every call kept, so the cmdlet line the console builds from the form, and
what it sends each hub, is visible.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from tests.unit.console.test_console_app import Browser, FakeAdmin, play
from tests.unit.console.test_console_app import admin as admin  # the fixtures
from tests.unit.console.test_console_app import directory as directory
from tests.unit.console.test_console_app import seed_objects as seed_objects
from tests.unit.shell.test_cmdlets_runtime import LAST_ERROR

from sitemail.console.auth import Sessions
from sitemail.org.directory import Directory

MID = "<ny-to-fl@contoso.com>"


def event(event_id: str, when: str, server: str, **more: object) -> dict[str, object]:
    return {
        "Timestamp": when,
        "EventId": event_id,
        "Source": "SMTP",
        "ServerHostname": server,
        "Sender": "alice@contoso.com",
        "Recipients": ["adam@contoso.com"],
        "MessageSubject": "hello",
        "MessageId": MID,
        **more,
    }


def story_one(fake: FakeAdmin) -> None:
    """The seed's message: received and deferred on EX-NY1, then sent, received and
    delivered on EX-FL1."""
    fake.answers[("EX-NY1", "/tracking")] = [
        event("RECEIVE", "2024-01-05T15:00:00+00:00", "EX-NY1.contoso.com"),
        event(
            "DEFER",
            "2024-01-05T15:00:01+00:00",
            "EX-NY1.contoso.com",
            RecipientStatus=[LAST_ERROR],
        ),
        event("SEND", "2024-01-05T15:05:00+00:00", "EX-NY1.contoso.com"),
    ]
    fake.answers[("EX-FL1", "/tracking")] = [
        event("RECEIVE", "2024-01-05T15:05:01+00:00", "ex-fl1.contoso.com"),
        event("DELIVER", "2024-01-05T15:05:02+00:00", "EX-FL1", Source="STOREDRIVER"),
    ]


def boxes(page: str) -> list[tuple[str, str]]:
    """(server, EventId) of each event box of the path picture, top to bottom."""
    return re.findall(r'<g class="event[^"]*" data-server="([^"]+)" data-event="([^"]+)"', page)


def test_a_search_runs_get_messagetrackinglog_with_the_forms_fields(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    story_one(admin)

    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        await browser.sign_in()
        response = await browser.request(
            "GET",
            "/tracking?sender=alice@contoso.com&recipients=adam@contoso.com,+bob@contoso.com"
            "&subject=it's&start=2024-01-05T14:00&end=&ignored=x",
        )
        page = await response.text()
        assert response.status == 200
        assert (
            "Get-MessageTrackingLog -Sender 'alice@contoso.com' -Recipients "
            "'adam@contoso.com','bob@contoso.com' -MessageSubject 'it''s' "
            "-Start '2024-01-05T14:00' -ResultSize 500"
        ) in unescape(page)
        # Every hub was asked, with the cmdlet's own body.
        bodies = {c[0]: c[3] for c in fake.calls if c[2] == "/tracking"}
        assert set(bodies) == {"EX-NY1", "EX-FL1"}
        body = bodies["EX-FL1"]
        assert body is not None and body["sender"] == "alice@contoso.com"
        assert body["recipients"] == ["adam@contoso.com", "bob@contoso.com"]
        assert body["message_subject"] == "it's"
        # Both hubs' events, merged in time order, each with the link to its path.
        events = re.findall(r"<td>(RECEIVE|DEFER|SEND|DELIVER)</td>", page)
        assert events == ["RECEIVE", "DEFER", "SEND", "RECEIVE", "DELIVER"]
        assert LAST_ERROR in unescape(page)
        assert 'href="/tracking?path=%3Cny-to-fl%40contoso.com%3E"' in page

    play(tmp_path, directory, admin, scenario)


def test_the_path_draws_each_event_on_its_hub_in_time_order(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    story_one(admin)

    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        await browser.sign_in()
        path = "/tracking?path=%3Cny-to-fl%40contoso.com%3E"
        page = await (await browser.request("GET", path)).text()
        assert boxes(page) == [
            ("EX-NY1", "RECEIVE"),
            ("EX-NY1", "DEFER"),
            ("EX-NY1", "SEND"),
            ("EX-FL1", "RECEIVE"),
            ("EX-FL1", "DELIVER"),
        ]
        # The hubs under their sites; DEFER carries LastError (whole in its label).
        assert ">Site NY</text>" in page and ">Site FL</text>" in page
        defer = re.search(r'data-event="DEFER" aria-label="([^"]+)"', page)
        assert defer is not None and LAST_ERROR in unescape(defer.group(1))
        assert page.count('marker-end="url(#arrowhead)"') == 4  # one arrow between each two
        bodies = [c[3] for c in fake.calls if c[2] == "/tracking"]
        assert all(b is not None and b["message_id"] == MID for b in bodies)

    play(tmp_path, directory, admin, scenario)


def test_log_contents_and_form_values_come_out_escaped(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    admin.answers[("EX-NY1", "/tracking")] = [
        event(
            "RECEIVE",
            "2024-01-05T15:00:00+00:00",
            "EX-NY1",
            MessageSubject="<script>alert(1)</script>",
            MessageId='<"><script>alert(2)</script>',
            RecipientStatus=["<script>alert(3)</script>"],
        )
    ]

    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        await browser.sign_in()
        response = await browser.request(
            "GET", '/tracking?subject=<script>alert(4)</script>&path="><script>alert(5)</script>'
        )
        page = await response.text()
        assert response.status == 200
        assert "<script>alert" not in page
        for n in range(1, 6):
            assert f"&lt;script&gt;alert({n})&lt;/script&gt;" in page, n

    play(tmp_path, directory, admin, scenario)


def test_a_search_is_bounded_and_needs_a_session(
    tmp_path: Path, directory: Directory, admin: FakeAdmin
) -> None:
    async def scenario(browser: Browser, sessions: Sessions, fake: FakeAdmin) -> None:
        anonymous = await browser.request("GET", "/tracking?sender=alice@contoso.com")
        assert anonymous.status == 303
        assert anonymous.headers["Location"].startswith("/signin?next=")
        assert not fake.calls
        await browser.sign_in()
        long = await browser.request("GET", "/tracking?sender=" + "a" * 300)
        assert long.status == 400 and "at most 256" in await long.text()
        control = await browser.request("GET", "/tracking?subject=a%0Db")
        assert control.status == 400 and "control characters" in await control.text()
        many = ",".join(f"u{n}@contoso.com" for n in range(21))
        too_many = await browser.request("GET", "/tracking?recipients=" + many)
        assert too_many.status == 400 and "at most 20" in await too_many.text()
        assert not [c for c in fake.calls if c[2] == "/tracking"]
        # A date the cmdlet cannot read: its own words.
        bad = await (await browser.request("GET", "/tracking?start=yesterday")).text()
        assert "was not recognized as a valid DateTime" in unescape(bad)

    play(tmp_path, directory, admin, scenario)
