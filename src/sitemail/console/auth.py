"""Who may use the console: sign-in, sessions and the CSRF token.

The directory has no Organization Management role group yet, and the shell
itself asks for no account (whoever can read the lab's admin certificate
runs it).  So the console's administrators are the organization's mailbox
accounts named when the console starts (``sitemail console --admin alice``);
they sign in with their own password, checked against the hash the directory
holds (:mod:`sitemail.org.passwords`), and every wrong password counts
against the organization's account lockout (:mod:`sitemail.org.lockout`), the
same count OWA, IMAP4 and the rest keep.  A name that is not an administrator
gets the same answer as a wrong password and costs the same time, so the
form does not tell who the administrators are.  Names and passwords are read
as OWA's sign-in reads them (:mod:`sitemail.access.web.logon`).

A session is a random id in a ``Secure; HttpOnly; SameSite=Strict`` cookie,
kept in memory only (a restart of the console signs everyone out), ending
after :data:`IDLE` without a request and after :data:`LIFETIME` in any case.
Each session has its own CSRF token, which every POST must carry; the sign-in
form has one too, bound to a pre-session cookie, so a foreign page cannot sign
a browser in as someone else.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sitemail.access.web.logon import check_password, find_mailbox
from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.directory import Directory
from sitemail.org.lockout import AccountLockouts

SESSION_COOKIE = "sitemail-console"
PRELOGIN_COOKIE = "sitemail-console-signin"
IDLE = timedelta(minutes=20)
LIFETIME = timedelta(hours=8)
#: The most sessions kept at once; the oldest goes first (memory is bounded).
MAX_SESSIONS = 256
#: Longer user names and passwords are refused before any hashing (bounded input).
MAX_NAME = 256
MAX_PASSWORD = 256

#: What the sign-in form says for every refusal but a lockout (as OWA says it).
BAD_CREDENTIALS = "The user name or password you entered isn't correct. Try entering it again."


def locked_out_text(seconds: float) -> str:
    minutes = max(1, int(seconds + 59) // 60)
    return (
        "This account is locked out after too many wrong passwords. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, or ask an administrator "
        "to run Unlock-ADAccount."
    )


def tokens_match(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


@dataclass
class ConsoleSession:
    id: str
    alias: str
    csrf: str
    created: float
    seen: float


@dataclass
class SignInResult:
    session: ConsoleSession | None
    error: str | None = None


@dataclass
class Sessions:
    """The signed-in administrators of this console process."""

    directory: Directory
    admins: frozenset[str]
    clock: Clock = SYSTEM_CLOCK
    _sessions: dict[str, ConsoleSession] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lockouts = AccountLockouts(self.directory, clock=self.clock)

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def find(self, session_id: str | None) -> ConsoleSession | None:
        if not session_id:
            return None
        found = self._sessions.get(session_id)
        if found is None:
            return None
        now = self._now()
        if (
            now - found.seen > IDLE.total_seconds()
            or now - found.created > LIFETIME.total_seconds()
        ):
            del self._sessions[session_id]
            return None
        found.seen = now
        return found

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def _open(self, alias: str) -> ConsoleSession:
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.seen)
            del self._sessions[oldest.id]
        now = self._now()
        session = ConsoleSession(
            secrets.token_urlsafe(32), alias, secrets.token_urlsafe(32), now, now
        )
        self._sessions[session.id] = session
        return session

    async def sign_in(self, name: str, password: str) -> SignInResult:
        """Check an administrator's password; a session, or what to tell the person."""
        if len(name) > MAX_NAME or len(password) > MAX_PASSWORD:
            return SignInResult(None, BAD_CREDENTIALS)
        mailbox = find_mailbox(self.directory, name) if name.strip() else None
        admin = mailbox is not None and mailbox.alias.casefold() in self.admins
        if mailbox is not None:
            locked = self.lockouts.locked_for(mailbox.alias)
            if locked > 0:
                # A locked account's password is not even checked (as AD does).
                return SignInResult(None, locked_out_text(locked))
        # check_password takes one scrypt's time whether or not the account exists.
        ok = await check_password(mailbox, password)
        if mailbox is None:
            return SignInResult(None, BAD_CREDENTIALS)
        if not ok:
            # Every account's wrong password counts, administrator or not: it is the
            # organization's lockout, and the same password guesser may try OWA next.
            if self.lockouts.failed(mailbox.alias):
                return SignInResult(None, locked_out_text(self.lockouts.locked_for(mailbox.alias)))
            return SignInResult(None, BAD_CREDENTIALS)
        self.lockouts.succeeded(mailbox.alias)
        if not admin:
            return SignInResult(None, BAD_CREDENTIALS)
        return SignInResult(self._open(mailbox.alias))
