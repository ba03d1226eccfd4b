"""Forms-based sign-in sessions of one Client Access server, and their CSRF canaries.

Exchange 2010's forms-based authentication leaves two cookies after a good
sign-in, ``sessionid`` and ``cadata`` (Exchange keeps the user's encrypted
credentials in ``cadata``).  Here ``sessionid`` is a random session key and
``cadata`` a MAC over it with this server's secret, so a request needs both
and neither can be guessed or forged.  Both are ``HttpOnly`` (no script
reads them), ``Secure`` (never sent over plain HTTP) and ``SameSite=Lax``
(not sent with another site's form posts).  They are set for the host name
the user signed in on, and never for a parent domain.

Sessions end after the OWA timeouts: 15 minutes idle on a public or shared
computer, 8 hours on a private one (Set-OwaVirtualDirectory's defaults,
confidence: general knowledge), and at sign-out.

Every form OWA and ECP show carries the session's *canary* (``hidcanary``,
the field OWA 2010 uses); a POST whose canary does not match its session is
refused, so another site cannot make the browser act for the user.  The
sign-in form, which has no session yet, carries a canary bound to a random
``PBack`` cookie (the cookie Exchange's sign-in page sets to check that
cookies work).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import timedelta

from sitemail.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "CADATA_COOKIE",
    "CANARY_FIELD",
    "LOGON_COOKIE",
    "MAX_SESSIONS",
    "PRIVATE_TIMEOUT",
    "PUBLIC_TIMEOUT",
    "SESSION_COOKIE",
    "Cookie",
    "Session",
    "SessionStore",
    "canary_matches",
]

SESSION_COOKIE = "sessionid"
CADATA_COOKIE = "cadata"
LOGON_COOKIE = "PBack"
CANARY_FIELD = "hidcanary"

# Set-OwaVirtualDirectory PublicTimeout / PrivateTimeout defaults (minutes 15 / 480),
# confidence: general knowledge.
PUBLIC_TIMEOUT = timedelta(minutes=15)
PRIVATE_TIMEOUT = timedelta(minutes=480)
#: Sessions kept at most; the least recently used go first (bounded memory).
MAX_SESSIONS = 20_000


@dataclass(frozen=True)
class Cookie:
    """A ``Set-Cookie`` header's parts (always HttpOnly and Secure, on path ``/``)."""

    name: str
    value: str
    max_age: int | None = None  # None: a browser-session cookie; 0: delete it

    def header(self) -> str:
        parts = [f"{self.name}={self.value}", "path=/", "secure", "HttpOnly", "SameSite=Lax"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
            if self.max_age == 0:
                parts.append("expires=Thu, 01 Jan 1970 00:00:00 GMT")
        return "; ".join(parts)


@dataclass(frozen=True)
class Session:
    """One signed-in user on this Client Access server."""

    id: str
    alias: str
    host: str  # the host name the user signed in on; the cookies belong to it
    trusted: bool  # "This is a private computer"
    canary: str
    created: float
    last_seen: float = field(compare=False)

    @property
    def timeout(self) -> timedelta:
        return PRIVATE_TIMEOUT if self.trusted else PUBLIC_TIMEOUT


def canary_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison; an empty or missing canary never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


class SessionStore:
    """Sessions in memory (a restart signs everyone out, as an IIS reset does)."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        secret: bytes | None = None,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._clock = clock
        self._secret = secret or secrets.token_bytes(32)
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    # ---------------------------------------------------------------- cadata

    def _cadata(self, session_id: str, alias: str, host: str) -> str:
        msg = f"{session_id}\n{alias.casefold()}\n{host}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    # ---------------------------------------------------------------- sessions

    def create(self, alias: str, host: str, *, trusted: bool) -> tuple[Session, list[Cookie]]:
        """A new session and the cookies that carry it."""
        now = self._clock.monotonic()
        session = Session(
            id=secrets.token_urlsafe(32),
            alias=alias,
            host=host,
            trusted=trusted,
            canary=secrets.token_urlsafe(24),
            created=now,
            last_seen=now,
        )
        self._sessions[session.id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        cookies = [
            Cookie(SESSION_COOKIE, session.id),
            Cookie(CADATA_COOKIE, self._cadata(session.id, alias, host)),
        ]
        return session, cookies

    def find(self, session_id: str | None, cadata: str | None, host: str) -> Session | None:
        """The live session these cookies name on ``host``, touched; None otherwise."""
        if not session_id or not cadata or len(session_id) > 100 or len(cadata) > 100:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        expected = self._cadata(session.id, session.alias, session.host)
        if session.host != host or not hmac.compare_digest(expected, cadata):
            return None
        now = self._clock.monotonic()
        if now - session.last_seen > session.timeout.total_seconds():
            del self._sessions[session_id]
            return None
        touched = replace(session, last_seen=now)
        self._sessions[session_id] = touched
        self._sessions.move_to_end(session_id)
        return touched

    def end(self, session_id: str | None) -> bool:
        """Sign out: forget the session (True if there was one)."""
        return session_id is not None and self._sessions.pop(session_id, None) is not None

    def end_user(self, alias: str) -> int:
        """End every session of ``alias`` (after a password change elsewhere, for example)."""
        gone = [k for k, s in self._sessions.items() if s.alias.casefold() == alias.casefold()]
        for key in gone:
            del self._sessions[key]
        return len(gone)

    @staticmethod
    def clearing_cookies() -> list[Cookie]:
        """The cookies that sign a browser out."""
        return [Cookie(SESSION_COOKIE, "", max_age=0), Cookie(CADATA_COOKIE, "", max_age=0)]

    # ---------------------------------------------------------------- sign-in form

    def logon_canary(self, pback: str) -> str:
        """The canary of a sign-in form shown with the ``PBack`` cookie ``pback``."""
        return hmac.new(self._secret, b"logon\n" + pback.encode(), hashlib.sha256).hexdigest()

    def logon_canary_ok(self, pback: str | None, given: str | None) -> bool:
        if not pback or len(pback) > 100:
            return False
        return canary_matches(self.logon_canary(pback), given)

    @staticmethod
    def new_pback() -> Cookie:
        return Cookie(LOGON_COOKIE, secrets.token_urlsafe(16))
