"""What the W3SVC's worker processes share: sessions and ActiveSync states in one file each.

Two stores on one file stand for two workers: what one does the other sees,
and the file alone gives nobody a usable cookie.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sitemail.access.eas_state import FolderEntry, MessageEntry, SyncStates
from sitemail.access.web.sessions import SessionStore
from sitemail.access.web.workers import SharedWebState, web_worker_count
from sitemail.clock import ManualClock

SECRET = bytes(range(32))
HOST = "mail.contoso.com"


def test_a_session_made_in_one_worker_is_found_and_ended_in_another(tmp_path: Path) -> None:
    clock = ManualClock()
    one = SessionStore(clock=clock, secret=SECRET, path=tmp_path / "sessions.db")
    other = SessionStore(clock=clock, secret=SECRET, path=tmp_path / "sessions.db")
    session, cookies = one.create("adam", HOST, trusted=False)
    sid, cadata = (c.value for c in cookies)
    found = other.find(sid, cadata, HOST)
    assert found == session and found.canary == session.canary  # one canary in all
    assert other.end(sid)
    assert one.find(sid, cadata, HOST) is None


def test_use_in_one_worker_keeps_the_session_alive_in_another(tmp_path: Path) -> None:
    clock = ManualClock()
    one = SessionStore(clock=clock, secret=SECRET, path=tmp_path / "sessions.db")
    other = SessionStore(clock=clock, secret=SECRET, path=tmp_path / "sessions.db")
    _, cookies = one.create("adam", HOST, trusted=False)
    sid, cadata = (c.value for c in cookies)
    for _ in range(3):  # 3 x 10 minutes of use, all of it in the other worker
        clock.advance(600)
        assert other.find(sid, cadata, HOST) is not None
    assert one.find(sid, cadata, HOST) is not None
    clock.advance(16 * 60)
    assert one.find(sid, cadata, HOST) is None


def test_the_file_alone_forges_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    store = SessionStore(clock=ManualClock(), secret=SECRET, path=path)
    session, cookies = store.create("adam", HOST, trusted=False)
    sid, cadata = (c.value for c in cookies)
    store.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert sid.encode() not in data and cadata.encode() not in data
    assert session.canary.encode() not in data
    stranger = SessionStore(clock=ManualClock(), secret=bytes(32), path=path)
    assert stranger.find(sid, cadata, HOST) is None


def test_activesync_states_saved_in_one_worker_are_read_in_another(tmp_path: Path) -> None:
    one = SyncStates(path=tmp_path / "states.db")
    other = SyncStates(path=tmp_path / "states.db")
    assert one.hierarchy("adam", "DEV1", "0") == {}
    folders = {"1": FolderEntry("1", "0", "Inbox", 2)}
    key = one.save_hierarchy("adam", "DEV1", folders)
    assert other.hierarchy("ADAM", "dev1", key) == folders
    assert other.collection("adam", "DEV1", "1", "0") == {}
    ckey = other.save_collection("adam", "DEV1", "1", {7: MessageEntry(read=True)})
    assert one.collection("adam", "DEV1", "1", ckey) == {7: MessageEntry(read=True)}
    assert one.collection("adam", "DEV1", "1", "{nonsense}1") is None


def test_activesync_states_are_bounded_per_server(tmp_path: Path) -> None:
    states = SyncStates(max_devices=2, path=tmp_path / "states.db")
    keys = [states.save_hierarchy("adam", f"DEV{i}", {}) for i in range(3)]
    assert states.hierarchy("adam", "DEV0", keys[0]) is None  # the least recently used went
    assert states.hierarchy("adam", "DEV2", keys[2]) == {}


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("1", 1), (" 3 ", 3)])
def test_the_variable_sets_the_number_of_w3svc_workers(value: str, expected: int) -> None:
    assert web_worker_count({"SITEMAIL_W3SVC_PROCESSES": value}) == expected


def test_per_server_limits_are_divided_among_the_workers(tmp_path: Path) -> None:
    shared = SharedWebState(tmp_path, SECRET, workers=3)
    assert (shared.divided(200), shared.divided(20), shared.divided(2)) == (66, 6, 1)


def test_a_single_sign_on_token_is_used_once_whichever_worker_sees_it(tmp_path: Path) -> None:
    one = SessionStore(clock=ManualClock(), secret=SECRET, path=tmp_path / "sessions.db")
    other = SessionStore(clock=ManualClock(), secret=SECRET, path=tmp_path / "sessions.db")
    assert one.first_use("n1", expires=100.0, now=50.0)
    assert not other.first_use("n1", expires=100.0, now=60.0)
    assert other.first_use("n2", expires=100.0, now=60.0)


def test_a_basic_users_canary_is_the_same_in_every_worker(tmp_path: Path) -> None:
    one = SessionStore(clock=ManualClock(), secret=SECRET, path=tmp_path / "sessions.db")
    other = SessionStore(clock=ManualClock(), secret=SECRET, path=tmp_path / "sessions.db")
    assert one.user_canary("Adam") == other.user_canary("adam")
    assert one.user_canary("adam") != one.user_canary("alice")
    assert SessionStore(secret=bytes(32)).user_canary("adam") != one.user_canary("adam")


def test_a_message_a_device_resends_to_another_worker_leaves_once(tmp_path: Path) -> None:
    one = SyncStates(path=tmp_path / "states.db")
    other = SyncStates(path=tmp_path / "states.db")
    assert not one.was_sent("adam", "DEV1", "client-1")
    one.mark_sent("adam", "DEV1", "client-1")
    assert other.was_sent("adam", "DEV1", "client-1")
    assert not other.was_sent("adam", "DEV2", "client-1")
