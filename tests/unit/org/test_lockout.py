"""The organization's account lockout: AD's bad-password count, shared through the directory."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sitemail.clock import ManualClock
from sitemail.org.directory import open_directory
from sitemail.org.lockout import AccountLockout, AccountLockouts, LockoutPolicy

POLICY = LockoutPolicy(
    threshold=3, observation_window=timedelta(minutes=10), duration=timedelta(minutes=5)
)


def test_a_lockout_counted_by_one_process_holds_in_another(tmp_path: Path) -> None:
    # Two handles on one directory file: two server processes of the organization.
    clock = ManualClock()
    ny = AccountLockouts(open_directory(str(tmp_path / "d.db")), POLICY, clock=clock)
    fl = AccountLockouts(open_directory(str(tmp_path / "d.db")), POLICY, clock=clock)
    assert not ny.failed("adam")
    assert not fl.failed("adam")
    assert fl.locked_for("adam") == 0
    assert ny.failed("adam")  # the third wrong password, wherever it came
    assert fl.locked_for("adam") == POLICY.duration.total_seconds()
    clock.advance(60)
    assert ny.locked_for("adam") == POLICY.duration.total_seconds() - 60
    assert not fl.failed("adam")  # no counting while locked out
    clock.advance(POLICY.duration)
    assert ny.locked_for("adam") == 0
    assert fl.locked_for("bob") == 0


def test_failures_outside_the_observation_window_start_a_new_count(tmp_path: Path) -> None:
    clock = ManualClock()
    lockouts = AccountLockouts(open_directory(str(tmp_path / "d.db")), POLICY, clock=clock)
    lockouts.failed("adam")
    lockouts.failed("adam")
    clock.advance(POLICY.observation_window + timedelta(seconds=1))
    assert not lockouts.failed("adam")
    record = lockouts.directory.get(AccountLockout, "adam")
    assert record is not None and record.bad_pwd_count == 1


def test_a_good_password_resets_the_count_and_an_administrator_can_unlock(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    lockouts = AccountLockouts(open_directory(str(tmp_path / "d.db")), POLICY, clock=clock)
    lockouts.failed("adam")
    lockouts.failed("adam")
    lockouts.succeeded("adam")
    assert not lockouts.failed("adam")  # one, not three
    lockouts.failed("adam")
    assert lockouts.failed("adam")
    assert lockouts.unlock("ADAM")  # identities are case-insensitive, as in AD
    assert lockouts.locked_for("adam") == 0
    assert not lockouts.unlock("adam")
