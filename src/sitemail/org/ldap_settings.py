"""Where an LDAP directory is and how to sign in to it: the ``ldap://`` URL and the environment.

``ldap://HOST[:PORT]/BASE-DN[?key=value&...]`` (or ``ldaps://``), for example::

    ldap://dc1.contoso.com:389/DC=contoso,DC=com?bind=CN=sitemail,CN=Users,DC=contoso,DC=com

The base DN is the domain (the configuration lives under ``CN=Configuration``
below it, the users under ``CN=Users``).  Keys after ``?``:

``bind``           the DN to bind as (or ``SITEMAIL_LDAP_BIND_DN``); none: anonymous
``password_file``  a file holding the password (or ``SITEMAIL_LDAP_PASSWORD_FILE``)
``org``            the Exchange organization's name, fixed when the directory is
                   first set up ("First Organization", Exchange setup's default)
``timeout``        seconds to connect and for each answer (default 5)
``retries``        how often an operation is retried when the server does not
                   answer (default 2, so at most 3 attempts)
``lease``          seconds after which a writer's lock counts as abandoned (default 30)

The password itself never appears in a URL (URLs end up in process lists and
logs): it comes from ``SITEMAIL_LDAP_PASSWORD`` or a password file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from sitemail.org.directory import DirectoryError

DEFAULT_ORGANIZATION = "First Organization"
_KEYS = {"bind", "password_file", "org", "timeout", "retries", "lease"}


@dataclass(frozen=True)
class LdapSettings:
    url: str  # as given, for messages (it holds no secret)
    host: str
    port: int
    use_ssl: bool
    base: str
    bind_dn: str | None
    password: str | None
    organization: str | None  # None: the one the directory was set up with
    timeout: float = 5.0
    retries: int = 2
    lease: float = 30.0


def parse_ldap_url(url: str, environ: dict[str, str] | None = None) -> LdapSettings:
    """Read an ``ldap://`` URL; a DirectoryError says what is wrong with it."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps"):
        raise DirectoryError(f"directory {url!r}: expected ldap://HOST:PORT/BASE-DN")
    if parts.username or parts.password:
        raise DirectoryError(
            f"directory {url!r}: put no user or password in the URL; use ?bind=DN and "
            "SITEMAIL_LDAP_PASSWORD or ?password_file=PATH"
        )
    host = parts.hostname or ""
    if not host:
        raise DirectoryError(f"directory {url!r}: no host (expected ldap://HOST:PORT/BASE-DN)")
    try:
        port = parts.port or (636 if parts.scheme == "ldaps" else 389)
    except ValueError:
        raise DirectoryError(f"directory {url!r}: the port is not a number") from None
    base = unquote(parts.path.lstrip("/"))
    if not base or "=" not in base:
        raise DirectoryError(
            f"directory {url!r}: no base DN after the host "
            "(expected for example ldap://dc1:389/DC=contoso,DC=com)"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - _KEYS)
    if unknown:
        raise DirectoryError(
            f"directory {url!r}: unknown setting {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_KEYS))})"
        )
    bind_dn = query.get("bind") or env.get("SITEMAIL_LDAP_BIND_DN") or None
    password = env.get("SITEMAIL_LDAP_PASSWORD")
    password_file = query.get("password_file") or env.get("SITEMAIL_LDAP_PASSWORD_FILE")
    if password_file:
        try:
            password = Path(password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise DirectoryError(
                f"directory {url!r}: cannot read the password file {password_file}: {exc.strerror}"
            ) from None
    if bind_dn and password is None:
        raise DirectoryError(
            f"directory {url!r}: a bind DN but no password; set SITEMAIL_LDAP_PASSWORD "
            "or ?password_file=PATH"
        )
    return LdapSettings(
        url=url,
        host=host,
        port=port,
        use_ssl=parts.scheme == "ldaps",
        base=base,
        bind_dn=bind_dn,
        password=password if bind_dn else None,
        organization=query.get("org") or None,
        timeout=_number(url, query, "timeout", 5.0, low=0.05),
        retries=int(_number(url, query, "retries", 2, low=0)),
        lease=_number(url, query, "lease", 30.0, low=0.1),
    )


def _number(url: str, query: dict[str, str], key: str, default: float, *, low: float) -> float:
    text = query.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = low - 1
    if value < low:
        raise DirectoryError(f"directory {url!r}: {key}={text!r} must be a number >= {low:g}")
    return value
