"""Carrying the client's path over to a proxy target, without letting it choose the target.

Outcomes name virtual directory URLs only (``https://ex-fl1.contoso.com/owa``).
A proxied request keeps the part of the client's path below the virtual
directory it came in on: ``/owa/ev.owa?ns=Mail`` received on ``/owa`` is
forwarded to ``https://ex-fl1.contoso.com/owa/ev.owa?ns=Mail``.  Redirects do
not use this: they go to the virtual directory URL itself.

The scheme, host and port always come from the directory's URL; a path
that could climb out of the virtual directory or smuggle another host
(``..``, ``//``, backslashes, encoded separators, control characters) is
refused with :class:`UnsafeRequestPath`.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["UnsafeRequestPath", "application_path", "rebase_request_path"]


class UnsafeRequestPath(ValueError):
    """The client's request path cannot be carried over to a proxy target."""


def _refuse(request_target: str, why: str) -> UnsafeRequestPath:
    shown = request_target if len(request_target) <= 200 else request_target[:200] + "..."
    return UnsafeRequestPath(f"request path {shown!r} is not proxied: {why}")


def application_path(url_path: str) -> str:
    """The virtual directory of a directory URL's path, without the trailing '/'.

    A URL may name a file of the application (``/EWS/Exchange.asmx``,
    ``/Autodiscover/Autodiscover.xml``); the virtual directory is then its folder,
    as IIS serves the application's other files there too (``/EWS/Services.wsdl``).
    """
    path = url_path.rstrip("/")
    folder, _, last = path.rpartition("/")
    return folder if "." in last else path


def rebase_request_path(target_url: str, entry_path: str, request_target: str) -> str:
    """The URL to forward ``request_target`` (origin form) to, under ``target_url``.

    ``entry_path`` is the path of the virtual directory the request came in on
    (e.g. ``/owa``); IIS paths compare case-insensitively, so the match does.
    """
    if not request_target.startswith("/") or request_target.startswith("//"):
        raise _refuse(request_target, "it must be a path starting with a single '/'")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in request_target):
        raise _refuse(request_target, "it contains spaces or control characters")
    if "\\" in request_target or "#" in request_target:
        raise _refuse(request_target, "it contains '\\' or '#'")
    path, mark, query = request_target.partition("?")
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%00" in lowered:
        raise _refuse(request_target, "it contains an encoded path separator or NUL")
    decoded = unquote(path)
    if any(seg in (".", "..") for seg in decoded.split("/")):
        raise _refuse(request_target, "it contains '.' or '..' segments")
    base = application_path(entry_path)
    if base and not (lowered == base.lower() or lowered.startswith(base.lower() + "/")):
        raise _refuse(request_target, f"it is not under the virtual directory {entry_path!r}")
    remainder = path[len(base) :]
    target = urlsplit(target_url)
    new_path = application_path(target.path) + remainder
    base_url = urlunsplit((target.scheme, target.netloc, new_path or "/", "", ""))
    # The query goes on as it came, an empty one ("/owa?") included: a proxy does not
    # rewrite what the client sent after the path.
    return base_url + mark + query
