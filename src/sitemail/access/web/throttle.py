"""Sign-in throttling: too many wrong passwords lock the account and the client out for a while.

Exchange 2010 itself leaves this to the Active Directory account lockout
policy; sitemail has no domain controller, so the Client Access server
applies one: after ``max_failures`` wrong passwords for one user within
``window``, that user's sign-ins are refused for ``lockout`` (a guessing
attack cannot go on, and a typo costs a legitimate user nothing).  The same
holds, with a larger budget, per client address, so one client cannot try
one password against every user.  A good sign-in clears the user's count.

Counters live in memory and their tables are bounded; the oldest entries go
first when they are full.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import timedelta

from sitemail.clock import SYSTEM_CLOCK, Clock

__all__ = ["SignInThrottle", "ThrottlePolicy"]


@dataclass(frozen=True)
class ThrottlePolicy:
    # AD's "Account lockout threshold" is commonly 5 and "duration" 30 minutes;
    # shorter here so that a lab user who mistypes is not stuck for long.
    max_failures_per_user: int = 5
    max_failures_per_client: int = 20
    window: timedelta = timedelta(minutes=10)
    lockout: timedelta = timedelta(minutes=5)
    max_tracked: int = 10_000


class _Counter:
    """Failure times within the window, and until when the key is locked out."""

    __slots__ = ("failures", "locked_until")

    def __init__(self) -> None:
        self.failures: deque[float] = deque()
        self.locked_until = 0.0


class SignInThrottle:
    def __init__(self, policy: ThrottlePolicy | None = None, *, clock: Clock = SYSTEM_CLOCK):
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._users: OrderedDict[str, _Counter] = OrderedDict()
        self._clients: OrderedDict[str, _Counter] = OrderedDict()

    def retry_after(self, user: str, client: str) -> float:
        """Seconds until this user may try again from this client; 0 means now."""
        now = self._clock.monotonic()
        waits = [
            c.locked_until - now
            for c in (self._users.get(_user_key(user)), self._clients.get(client))
            if c is not None
        ]
        return max([0.0, *waits])

    def failed(self, user: str, client: str) -> None:
        """Count a wrong password (or an unknown user, which must look the same)."""
        self._fail(self._users, _user_key(user), self.policy.max_failures_per_user)
        self._fail(self._clients, client, self.policy.max_failures_per_client)

    def succeeded(self, user: str) -> None:
        self._users.pop(_user_key(user), None)

    def _fail(self, table: OrderedDict[str, _Counter], key: str, limit: int) -> None:
        now = self._clock.monotonic()
        counter = table.get(key)
        if counter is None:
            counter = table[key] = _Counter()
            while len(table) > self.policy.max_tracked:
                table.popitem(last=False)
        table.move_to_end(key)
        window = self.policy.window.total_seconds()
        counter.failures.append(now)
        while counter.failures and now - counter.failures[0] > window:
            counter.failures.popleft()
        if len(counter.failures) >= limit:
            counter.locked_until = now + self.policy.lockout.total_seconds()
            counter.failures.clear()


def _user_key(user: str) -> str:
    return user.strip().casefold()[:320]
