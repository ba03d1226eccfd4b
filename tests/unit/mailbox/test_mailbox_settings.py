"""Mailbox settings in the store: automatic replies, Inbox rules and delegates."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.integration.test_store_api import Org, client_for, org, run, store_of_ny

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.errors import Conflict, InvalidRequest
from sitemail.mailbox.mailbox_settings import OofSettings, SettingName
from sitemail.mailbox.schema import SCHEMA_VERSION

__all__ = ["org"]

OOF = {
    "state": "Enabled",
    "external_audience": "Known",
    "internal_reply": "Away",
    "external_reply": "",
}


def test_settings_are_kept_per_mailbox_and_validated(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    assert db.get_setting("adam", SettingName.OOF) is None
    db.put_setting("adam", SettingName.OOF, OOF)
    assert db.get_setting("adam", SettingName.OOF) == {
        **OOF,
        "start": None,
        "end": None,
        "owner": None,
    }
    assert db.get_setting("alice", SettingName.OOF) is None
    with pytest.raises(InvalidRequest, match="state"):
        db.put_setting("adam", SettingName.OOF, {"state": "Sometimes"})
    with pytest.raises(InvalidRequest, match="internal_reply"):
        db.put_setting("adam", SettingName.OOF, {"internal_reply": "x" * 70_000})
    rule = {"rule_id": "1", "display_name": "r", "priority": 1, "actions": {"Delete": True}}
    db.put_setting("adam", SettingName.INBOX_RULES, {"rules": [rule], "next_id": 2})
    with pytest.raises(InvalidRequest, match="rules"):
        db.put_setting("adam", SettingName.INBOX_RULES, {"rules": [rule] * 300})
    with pytest.raises(InvalidRequest):
        db.put_setting("adam", SettingName.INBOX_RULES, {"rules": [{**rule, "colour": "red"}]})


def test_a_checked_write_refuses_a_document_changed_meanwhile(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    first = db.put_setting("adam", SettingName.DELEGATES, {}, expected=None, check=True)
    with pytest.raises(Conflict):
        db.put_setting("adam", SettingName.DELEGATES, {}, expected=None, check=True)
    db.put_setting("adam", SettingName.DELEGATES, {"delegates": []}, expected=first, check=True)


def test_oof_is_active_when_enabled_or_inside_its_schedule() -> None:
    now = datetime(2030, 5, 1, 12, tzinfo=UTC)
    assert not OofSettings().active(now)
    assert OofSettings(state="Enabled").active(now)
    scheduled = OofSettings(
        state="Scheduled",
        start=datetime(2030, 5, 1, tzinfo=UTC),
        end=datetime(2030, 5, 2, tzinfo=UTC),
    )
    assert scheduled.active(now)
    assert not scheduled.active(datetime(2030, 5, 2, tzinfo=UTC))


def test_a_version_2_database_gains_the_settings_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    StoreDatabase(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE mailbox_settings")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    db = StoreDatabase(path)
    assert db._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.put_setting("adam", SettingName.OOF, OOF)["state"] == "Enabled"


def test_settings_travel_over_the_store_api(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            assert await store.get_setting("alice", SettingName.OOF) is None
            stored = await store.put_setting("alice", SettingName.OOF, OOF, expected=None)
            assert await store.get_setting("alice", SettingName.OOF) == stored
            with pytest.raises(Conflict):
                await store.put_setting("alice", SettingName.OOF, OOF, expected=None)
            with pytest.raises(InvalidRequest):
                await store.put_setting("alice", SettingName.OOF, {"state": 3})

    run(scenario())
