"""Account lockout for the whole organization, kept in the directory as Active Directory keeps it.

Exchange 2010 checks every password (OWA, ECP, EWS, ActiveSync, POP3, IMAP4,
SMTP AUTH) against Active Directory, and AD counts the wrong ones on the user
object (``badPwdCount``, ``badPasswordTime``, ``lockoutTime``) under the
domain's lockout policy.  So a user whose password is being guessed over
IMAP4 on one server is locked out of OWA on every server, and the reverse.

sitemail keeps that record in the directory, the organization's shared
state: one :class:`AccountLockout` object per user who failed recently, read
and written in one directory transaction by whichever process checks a
password.  Only accounts that exist are counted here (AD has nothing to
lock for a name that is not a user); callers hide the difference from the
client themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.directory import Directory
from sitemail.org.model import Model

__all__ = ["AccountLockout", "AccountLockouts", "LockoutPolicy"]


@dataclass(frozen=True)
class LockoutPolicy:
    """The Default Domain Policy's account lockout settings.

    AD's "Account lockout threshold" is commonly 5 and its "duration" 30
    minutes; the duration is shorter here so that a lab user who mistypes is
    not stuck for long.  (Not read from Exchange: AD owns these settings.)
    """

    threshold: int = 5
    observation_window: timedelta = timedelta(minutes=10)
    duration: timedelta = timedelta(minutes=5)


class AccountLockout(Model):
    """A user's wrong passwords: AD's badPwdCount, badPasswordTime and lockoutTime."""

    kind: ClassVar[str] = "AccountLockout"
    user: str
    bad_pwd_count: int = 0
    bad_password_time: float = 0.0  # seconds since the epoch (UTC)
    lockout_time: float = 0.0  # 0: not locked out

    @property
    def identity(self) -> str:
        return self.user


class AccountLockouts:
    """Reads and counts wrong passwords of the organization's accounts."""

    def __init__(
        self,
        directory: Directory,
        policy: LockoutPolicy | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.directory = directory
        self.policy = policy or LockoutPolicy()
        self._clock = clock

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def locked_for(self, user: str) -> float:
        """Seconds until ``user`` (an account's alias) may sign in again; 0 means now."""
        record = self.directory.get(AccountLockout, user)
        if record is None or not record.lockout_time:
            return 0.0
        end = record.lockout_time + self.policy.duration.total_seconds()
        return max(0.0, end - self._now())

    def failed(self, user: str) -> bool:
        """Count a wrong password for ``user``; True when this one locks the account."""
        now = self._now()
        window = self.policy.observation_window.total_seconds()
        with self.directory.transaction():
            record = self.directory.get(AccountLockout, user) or AccountLockout(user=user)
            duration = self.policy.duration.total_seconds()
            if record.lockout_time and now < record.lockout_time + duration:
                # Locked already: AD does not count more while the lockout lasts.
                return False
            if record.lockout_time or now - record.bad_password_time > window:
                record = AccountLockout(user=user)  # the lockout ended, or the window reset
            record.bad_pwd_count += 1
            record.bad_password_time = now
            locks = record.bad_pwd_count >= self.policy.threshold
            if locks:
                record.lockout_time = now
            self.directory.put(record)
        return locks

    def succeeded(self, user: str) -> None:
        """A right password resets the count, as AD does (not while locked out: callers
        check :meth:`locked_for` first and never check the password of a locked account)."""
        if self.directory.get(AccountLockout, user) is None:
            return
        with self.directory.transaction():
            if self.directory.get(AccountLockout, user) is not None:
                self.directory.delete(AccountLockout, user)

    def unlock(self, user: str) -> bool:
        """Clear ``user``'s lockout (an administrator's Unlock-ADAccount); False if none."""
        with self.directory.transaction():
            if self.directory.get(AccountLockout, user) is None:
                return False
            self.directory.delete(AccountLockout, user)
        return True
