"""Sign-in throttling: too many wrong passwords lock the account and the client out for a while.

Exchange 2010 leaves the account to the Active Directory lockout policy,
which every protocol and every server shares: an account's wrong passwords
are counted in the directory (:class:`~sitemail.org.lockout.AccountLockouts`),
so a user locked out in OWA is locked out of IMAP4, POP3, EWS and
ActiveSync on every server too.  Besides that, each process counts per
client address, with a larger budget, so one client cannot try one password
against every user; and per typed name that is no account, so that a client
cannot tell an unknown name from a locked-out user by the answers.  A good
sign-in clears the account's count.

The in-memory tables are bounded; the oldest entries go first when full.
The directory calls block (SQLite, a synced write per failure): async
callers run :meth:`SignInThrottle.failed` and
:meth:`SignInThrottle.succeeded` off the event loop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import timedelta

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.lockout import AccountLockouts

__all__ = ["SignInThrottle", "ThrottlePolicy"]


@dataclass(frozen=True)
class ThrottlePolicy:
    # The same numbers as the directory's LockoutPolicy, for names that are no account.
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
    """``account`` below is the alias of the mailbox a typed name denotes, None when it
    denotes none (then ``user``, the typed name, is counted in memory instead)."""

    def __init__(
        self,
        policy: ThrottlePolicy | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        accounts: AccountLockouts | None = None,
    ):
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self.accounts = accounts
        self._users: OrderedDict[str, _Counter] = OrderedDict()
        self._clients: OrderedDict[str, _Counter] = OrderedDict()
        # Callers run these methods in threads (the directory's calls block).
        self._lock = threading.Lock()

    def retry_after(self, user: str, client: str, account: str | None = None) -> float:
        """Seconds until this user may try again from this client; 0 means now."""
        now = self._clock.monotonic()
        shared = account is not None and self.accounts is not None
        with self._lock:
            counters = [self._clients.get(client)]
            if not shared:
                counters.append(self._users.get(_user_key(user)))
            waits = [c.locked_until - now for c in counters if c is not None]
        if account is not None and self.accounts is not None:
            waits.append(self.accounts.locked_for(account))
        return max([0.0, *waits])

    def failed(self, user: str, client: str, account: str | None = None) -> None:
        """Count a wrong password (or an unknown user, which must look the same)."""
        if account is not None and self.accounts is not None:
            self.accounts.failed(account)
        else:
            self._fail(self._users, _user_key(user), self.policy.max_failures_per_user)
        self._fail(self._clients, client, self.policy.max_failures_per_client)

    def succeeded(self, user: str, account: str | None = None) -> None:
        if account is not None and self.accounts is not None:
            self.accounts.succeeded(account)
        with self._lock:
            self._users.pop(_user_key(user), None)

    def _fail(self, table: OrderedDict[str, _Counter], key: str, limit: int) -> None:
        with self._lock:
            self._count(table, key, limit)

    def _count(self, table: OrderedDict[str, _Counter], key: str, limit: int) -> None:
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
