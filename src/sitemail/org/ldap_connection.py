"""One ldap3 connection to the directory server, retried a bounded number of times.

An operation the server did not answer (refused, reset, timed out) is retried
on a new connection ``retries`` times with a short back-off; then it fails with
:class:`DirectoryUnavailable`, naming the URL and the cause.  So a server that
is down costs at most ``(retries + 1) * timeout`` plus the back-off, never a
hang.  What the server answered (no such object, already exists, ...) is the
caller's to handle and is never retried here.  Callers retry only operations
that are safe to repeat (reads, idempotent writes, writes with a precondition).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ldap3 import BASE, LEVEL, SUBTREE, Connection, Server
from ldap3.core import exceptions as lx

from sitemail.org.directory import DirectoryError, DirectoryUnavailable
from sitemail.org.ldap_settings import LdapSettings

log = logging.getLogger("sitemail.directory")

T = TypeVar("T")

#: The server did not answer, or went away: worth a new connection and another try.
UNANSWERED: tuple[type[BaseException], ...] = (
    lx.LDAPCommunicationError,  # socket open/send/receive errors, timeouts, resets
    lx.LDAPSessionTerminatedByServerError,
    lx.LDAPUnavailableResult,  # slapd shutting down
    lx.LDAPBusyResult,
    lx.LDAPResponseTimeoutError,
    OSError,
)
PAGE_SIZE = 500
_PAGED_RESULTS = "1.2.840.113556.1.4.319"
_TIME_LIMIT, _SIZE_LIMIT = 3, 4  # LDAP result codes
Attrs = dict[str, list[bytes]]


class LdapRefused(DirectoryError):
    """The server answered an operation with an error result (``result`` is ldap3's)."""

    def __init__(self, message: str, result: lx.LDAPOperationResult) -> None:
        super().__init__(message)
        self.result = result


def refused_as(exc: BaseException, *results: type[lx.LDAPOperationResult]) -> bool:
    """Whether ``exc`` is the server's answer of one of these result kinds."""
    return isinstance(exc, LdapRefused) and isinstance(exc.result, results)


class LdapConnection:
    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._conn: Connection | None = None

    # ------------------------------------------------------------ connecting

    def _connect(self) -> Connection:
        s = self.settings
        server = Server(
            s.host, port=s.port, use_ssl=s.use_ssl, get_info="NO_INFO", connect_timeout=s.timeout
        )
        # receive_timeout stays None: ldap3 packs it as whole seconds; the socket's own
        # timeout below takes fractions.
        conn = Connection(
            server,
            user=s.bind_dn,
            password=s.password,
            raise_exceptions=True,
            receive_timeout=None,
            auto_referrals=False,
        )
        conn.open()
        conn.socket.settimeout(s.timeout)
        try:
            conn.bind()
        except lx.LDAPInvalidCredentialsResult:
            conn.unbind()
            raise DirectoryError(
                f"directory {s.url}: the server refused the bind as {s.bind_dn!r} "
                "(invalid credentials); check SITEMAIL_LDAP_PASSWORD or the password file"
            ) from None
        except lx.LDAPOperationResult as exc:
            conn.unbind()
            raise DirectoryError(
                f"directory {s.url}: the server refused the bind as {s.bind_dn!r}: "
                f"{exc.description} {exc.message}".rstrip()
            ) from None
        return conn

    def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # The connection is already gone when this fails; nothing to tell anyone.
            with contextlib.suppress(Exception):
                conn.unbind()

    close = drop

    # ------------------------------------------------------------- operations

    def call(self, what: str, op: Callable[[Connection], T], *, retry: bool = True) -> T:
        """Run ``op`` on a live connection; retried while the server does not answer.

        No ldap3 exception leaves here: what the server refused is :class:`LdapRefused`,
        anything else a :class:`DirectoryError` naming the URL.
        """
        s = self.settings
        start = time.monotonic()
        attempts = s.retries + 1 if retry else 1
        cause = ""
        for attempt in range(attempts):
            try:
                if self._conn is None:
                    self._conn = self._connect()
                return op(self._conn)
            except UNANSWERED as exc:
                self.drop()
                cause = _cause(exc)
                log.warning("directory %s: %s: %s (attempt %d)", s.url, what, cause, attempt + 1)
                if attempt + 1 < attempts:
                    time.sleep(min(0.05 * 2**attempt, 1.0))
            except lx.LDAPOperationResult as exc:
                raise LdapRefused(f"directory {s.url}: {what}: {_cause(exc)}", exc) from None
            except lx.LDAPException as exc:  # a client-side error (a DN ldap3 cannot encode...)
                raise DirectoryError(f"directory {s.url}: {what}: {exc}") from None
        took = time.monotonic() - start
        raise DirectoryUnavailable(
            f"directory {s.url}: {what} failed: {cause} ({attempts} attempts in {took:.1f} s); "
            f"check that the LDAP server runs and answers at {s.host}:{s.port}"
        )

    def read(self, what: str, dn: str, filt: str, attrs: list[str]) -> Attrs | None:
        """The attributes of one entry (base scope), or None if it is absent or does not match."""

        def op(c: Connection) -> Attrs | None:
            try:
                c.search(dn, filt, BASE, attributes=attrs)
            except lx.LDAPNoSuchObjectResult:
                return None
            for r in c.response or []:
                if r.get("type") == "searchResEntry":
                    return dict(r["raw_attributes"])
            return None

        return self.call(what, op)

    def search(
        self, what: str, base: str, filt: str, attrs: list[str], *, one_level: bool = False
    ) -> list[tuple[str, Attrs]]:
        """Every matching entry under ``base`` (paged, so no server size limit cuts it short)."""

        def op(c: Connection) -> list[tuple[str, Attrs]]:
            found = list(_paged(c, base, filt, LEVEL if one_level else SUBTREE, attrs))
            if c.result.get("result") in (_SIZE_LIMIT, _TIME_LIMIT):
                # ldap3 does not raise for these: a list cut short must not pass for whole.
                who = self.settings.bind_dn or "anonymous"
                raise DirectoryError(
                    f"directory {self.settings.url}: {what}: the server stopped after "
                    f"{len(found)} entries ({c.result.get('description')} for {who}); lift "
                    f'the limit for this account (slapd.conf: limits dn.exact="{who}" '
                    "size=unlimited time=unlimited)"
                )
            return found

        return self.call(what, op)


def _paged(
    c: Connection, base: str, filt: str, scope: Any, attrs: list[str]
) -> Iterator[tuple[str, Attrs]]:
    cookie: bytes | None = None
    while True:
        try:
            c.search(base, filt, scope, attributes=attrs, paged_size=PAGE_SIZE, paged_cookie=cookie)
        except lx.LDAPNoSuchObjectResult:
            return
        for r in c.response or []:
            if r.get("type") == "searchResEntry":
                yield r["dn"], dict(r["raw_attributes"])
        control = (c.result.get("controls") or {}).get(_PAGED_RESULTS) or {}
        cookie = (control.get("value") or {}).get("cookie")
        if not cookie:
            return


def _cause(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, lx.LDAPOperationResult):
        text = f"{exc.description} {exc.message or ''}".strip()
    if "timed out" in text:
        return "the server did not answer in time (" + text + ")"
    return text


def first(attrs: Attrs | None, name: str) -> str | None:
    """The first value of an attribute, decoded (attribute names compare without case)."""
    if not attrs:
        return None
    for key, values in attrs.items():
        if key.lower() == name.lower() and values:
            return values[0].decode("utf-8")
    return None


def values(attrs: Attrs, name: str) -> list[str]:
    for key, vals in attrs.items():
        if key.lower() == name.lower():
            return [v.decode("utf-8") for v in vals]
    return []
