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
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sitemail.access.web.workers import shared_table_file
from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.lru import LruCache

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
#: A session's use is written down at most this often (see :class:`SessionStore`).
TOUCH_EVERY = timedelta(seconds=30)
#: MACs kept in memory (three per session in use; about 200 bytes each).
KEPT_MACS = 6_000
#: The canary's length (a MAC's hex digits; the form field OWA uses carries it).
CANARY_LENGTH = 32


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
        return idle_timeout(self.trusted)


def idle_timeout(trusted: bool) -> timedelta:
    """OWA's idle timeout: PrivateTimeout on a private computer, PublicTimeout otherwise."""
    return PRIVATE_TIMEOUT if trusted else PUBLIC_TIMEOUT


def canary_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison; an empty or missing canary never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


class SessionStore:
    """Sessions in a SQLite table: in memory, or in a file that every W3SVC worker shares.

    With ``path`` (the W3SVC's worker processes, :mod:`.workers`), each process
    opens the same file with the same ``secret``, so a session made by one is
    found, touched and ended by any other: sign-out in one is sign-out in all.
    The service starts each time with a new file and a new secret, so a
    restart signs everyone out, as an IIS reset does.  Without ``path`` the
    table lives in this process's memory.

    The table never holds a usable cookie: a row is keyed by a MAC of the
    session id (the file and the secret are needed together to forge one),
    and the canary is a MAC of the id too.  Use is written back at most once
    per :data:`TOUCH_EVERY`, so that most requests only read; an idle time is
    then measured up to that much short, against timeouts of 15 minutes and
    more.
    """

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        secret: bytes | None = None,
        max_sessions: int = MAX_SESSIONS,
        path: Path | None = None,
    ) -> None:
        self._clock = clock
        self._secret = secret or secrets.token_bytes(32)
        self._macs: LruCache[str, str] = LruCache(KEPT_MACS)
        self._max = max_sessions
        self._db = shared_table_file(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sessions (key TEXT PRIMARY KEY, alias TEXT NOT NULL, "
            "host TEXT NOT NULL, trusted INTEGER NOT NULL, created REAL NOT NULL, "
            "last_seen REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_use ON sessions (last_seen)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires REAL NOT NULL)"
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    # ---------------------------------------------------------------- MACs

    def _mac(self, purpose: str, *parts: str) -> str:
        msg = "\n".join((purpose, *parts))
        # A session's three MACs are asked on each of its requests: kept (bounded, and
        # by the message, so a MAC kept is the MAC the secret gives).
        found = self._macs.get(msg)
        if found is None:
            found = hmac.new(self._secret, msg.encode(), hashlib.sha256).hexdigest()
            self._macs.put(msg, found)
        return found

    def _cadata(self, session_id: str, alias: str, host: str) -> str:
        return self._mac("cadata", session_id, alias.casefold(), host)

    def _key(self, session_id: str) -> str:
        return self._mac("row", session_id)

    def _canary(self, session_id: str) -> str:
        return self._mac("canary", session_id)[:CANARY_LENGTH]

    # ---------------------------------------------------------------- sessions

    def create(self, alias: str, host: str, *, trusted: bool) -> tuple[Session, list[Cookie]]:
        """A new session and the cookies that carry it."""
        now = self._clock.monotonic()
        session_id = secrets.token_urlsafe(32)
        session = Session(
            id=session_id,
            alias=alias,
            host=host,
            trusted=trusted,
            canary=self._canary(session_id),
            created=now,
            last_seen=now,
        )
        self._db.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
            (self._key(session_id), alias, host, int(trusted), now, now),
        )
        # The least recently used go first (sign-ins are rare next to page views).
        self._db.execute(
            "DELETE FROM sessions WHERE key IN (SELECT key FROM sessions ORDER BY last_seen "
            "LIMIT max(0, (SELECT count(*) FROM sessions) - ?))",
            (self._max,),
        )
        cookies = [
            Cookie(SESSION_COOKIE, session.id),
            Cookie(CADATA_COOKIE, self._cadata(session.id, alias, host)),
        ]
        return session, cookies

    def find(self, session_id: str | None, cadata: str | None, host: str) -> Session | None:
        """The live session these cookies name on ``host``, touched; None otherwise."""
        if not session_id or not cadata or len(session_id) > 100 or len(cadata) > 100:
            return None
        key = self._key(session_id)
        row = self._db.execute(
            "SELECT alias, host, trusted, created, last_seen FROM sessions WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        alias, stored_host, trusted, created, last_seen = row
        expected = self._cadata(session_id, alias, stored_host)
        if stored_host != host or not hmac.compare_digest(expected, cadata):
            return None
        now = self._clock.monotonic()
        if now - last_seen > idle_timeout(bool(trusted)).total_seconds():
            self._db.execute("DELETE FROM sessions WHERE key = ?", (key,))
            return None
        if now - last_seen >= TOUCH_EVERY.total_seconds():
            self._db.execute("UPDATE sessions SET last_seen = ? WHERE key = ?", (now, key))
        return Session(
            id=session_id,
            alias=alias,
            host=stored_host,
            trusted=bool(trusted),
            canary=self._canary(session_id),
            created=created,
            last_seen=now,
        )

    def end(self, session_id: str | None) -> bool:
        """Sign out: forget the session (True if there was one), in every process."""
        if session_id is None or len(session_id) > 100:
            return False
        cursor = self._db.execute("DELETE FROM sessions WHERE key = ?", (self._key(session_id),))
        return cursor.rowcount > 0

    def end_user(self, alias: str) -> int:
        """End every session of ``alias`` (after a password change elsewhere, for example)."""
        folded = alias.casefold()
        rows = self._db.execute("SELECT key, alias FROM sessions").fetchall()
        gone = [(key,) for key, name in rows if name.casefold() == folded]
        self._db.executemany("DELETE FROM sessions WHERE key = ?", gone)
        return len(gone)

    def first_use(self, nonce: str, expires: float, now: float) -> bool:
        """Whether a single sign-on token's ``nonce`` is seen here for the first time
        (:class:`~.sso.SsoVerifier`); kept until the token expires."""
        if len(nonce) > 100:
            return False
        self._db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
        cursor = self._db.execute("INSERT OR IGNORE INTO nonces VALUES (?, ?)", (nonce, expires))
        return cursor.rowcount == 1

    def user_canary(self, alias: str) -> str:
        """The canary of a user signed in with Basic: no session holds one, so it is the
        user's own, the same in every worker (the secret is theirs)."""
        return self._mac("basic", alias.casefold())

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
