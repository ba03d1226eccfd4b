"""Which CAS virtual directory a request's host name belongs to, and whether on its InternalUrl.

The HTTPS front end calls :func:`resolve_host` with the ``Host`` header (and,
from the request path, the virtual directory kind) to learn the ``Entry``
that :func:`sitemail.access.decision.decide` needs.  Only host names are
compared (case-insensitively, without port or trailing dot): a lab may move
ports, but a name belongs to the URLs the directory holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

from sitemail.access.directory_view import AccessDirectory
from sitemail.access.outcomes import Entry
from sitemail.org.model import VirtualDirectoryKind

__all__ = ["EntryPoint", "normalize_host", "resolve_host", "url_host"]

_KIND_ORDER = {k: i for i, k in enumerate(VirtualDirectoryKind)}


@dataclass(frozen=True, slots=True)
class EntryPoint:
    """A virtual directory URL that a host name matched."""

    server: str
    vdir: str  # the virtual directory's identity, e.g. 'EX-NY1\\owa (Default Web Site)'
    kind: VirtualDirectoryKind
    entry: Entry
    url: str  # the InternalUrl or ExternalUrl that matched


# Both are pure and asked on every request (resolve_host splits each virtual
# directory's two URLs): a bounded memo, so a client's odd Host headers
# cannot grow it.
@lru_cache(maxsize=1024)
def normalize_host(host: str) -> str | None:
    """``"Mail.Contoso.com:443"`` -> ``"mail.contoso.com"``; None if it is not a host name.

    Accepts a bare name, ``name:port``, ``[v6]`` and ``[v6]:port``.
    """
    text = host.strip()
    if not text:
        return None
    try:
        parsed = urlsplit(f"//{text}")
        parsed.port  # noqa: B018 -- reading it validates the port
    except ValueError:
        return None
    name = parsed.hostname
    if not name or parsed.username is not None or parsed.path or parsed.query:
        return None
    return name.rstrip(".").lower() or None


@lru_cache(maxsize=1024)
def url_host(url: str | None) -> str | None:
    """The lower-case host name of a directory URL, without a trailing dot (None if none)."""
    if url is None:
        return None
    try:
        name = urlsplit(url).hostname
    except ValueError:
        return None
    return name.rstrip(".").lower() if name else None


def resolve_host(
    directory: AccessDirectory,
    host: str,
    *,
    kind: VirtualDirectoryKind | None = None,
    server: str | None = None,
) -> EntryPoint | None:
    """The virtual directory whose InternalUrl or ExternalUrl names ``host``, or None.

    ``kind`` narrows to one virtual directory kind; ``server`` to the virtual
    directories of the server that took the request (several CAS may answer
    one load-balanced name).  When a name is both an ExternalUrl and an
    InternalUrl (as ``naemail.exchangelaboratory.com`` is in us-eu.yaml), the
    request counts as external: clients from the Internet use that name, and
    those are the requests Exchange redirects.  Ties are broken by server
    name, then virtual directory kind and name.
    """
    wanted = normalize_host(host)
    if wanted is None:
        return None
    # A snapshot never changes: what a name resolves to in it is kept with it.
    key = ("resolve_host", wanted, kind, server and server.casefold())
    if key in directory.memo:
        return cast("EntryPoint | None", directory.memo[key])
    result = _resolve(directory, wanted, kind, server)
    directory.remember(key, result)
    return result


def _resolve(
    directory: AccessDirectory,
    wanted: str,
    kind: VirtualDirectoryKind | None,
    server: str | None,
) -> EntryPoint | None:
    found: list[EntryPoint] = []
    for v in directory.virtual_directories:
        if kind is not None and v.type != kind:
            continue
        if server is not None and v.server.casefold() != server.casefold():
            continue
        for entry, url in ((Entry.EXTERNAL, v.external_url), (Entry.INTERNAL, v.internal_url)):
            if url is not None and url_host(url) == wanted:
                found.append(EntryPoint(v.server, v.identity, v.type, entry, url))
    if not found:
        return None
    return min(
        found,
        key=lambda e: (
            e.entry != Entry.EXTERNAL,
            e.server.casefold(),
            _KIND_ORDER[e.kind],
            e.vdir.casefold(),
        ),
    )
