"""CAS-to-CAS proxying of HTTP requests (spec 8.3): forward to the target's InternalUrl.

The proxying CAS (CAS1) has already signed the user in and decided
:class:`~sitemail.access.outcomes.Proxy`.  It forwards the request to the
virtual directory's InternalUrl on the target CAS (CAS2):

- **Only directory URLs.**  The target URL must be, character for character,
  the InternalUrl of a virtual directory of the target server in the current
  directory snapshot; anything else raises :class:`ProxyRefused` before a
  socket is opened.  The client's path is carried over with
  :func:`~sitemail.access.proxy_paths.rebase_request_path`, which refuses
  paths that could leave the virtual directory.  The address dialled comes
  from the directory too (``address_of(server)``, through the lab's
  firewalls); the URL's host name is only used for TLS (SNI and the
  certificate check against the organization CA) and the ``Host`` header.
- **Server authentication stands in for Kerberos.**  CAS1 presents its own
  server certificate; CAS2 accepts the request only from a server of the
  organization and only on a virtual directory with WindowsAuthentication on
  (Exchange needs Integrated Windows authentication there).  The user's
  identity travels in :data:`PROXY_USER_HEADER`, which CAS2 trusts from such
  a peer only, with the session's CSRF canary and whether the user chose
  "private computer".  The browser's cookies and Authorization header are
  never forwarded.
- **Bodies stream** both ways in chunks; what the user receives is what CAS2
  served (status, body and content headers), except that a redirect to CAS2's
  own URL is rewritten to the address the user is on and CAS2 cannot set
  cookies for CAS1's host.

Failures are :class:`ProxyFailed` with an
:class:`~sitemail.access.outcomes.ErrorReason`-like reason and a message in
the words of Exchange's proxy events (MSExchange OWA 42/71: which CAS tried
to proxy to which, and what failed).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from sitemail.access.directory_view import AccessDirectory
from sitemail.access.outcomes import ErrorReason, Proxy
from sitemail.access.proxy_paths import rebase_request_path

__all__ = [
    "PROXY_CANARY_HEADER",
    "PROXY_CLIENT_IP_HEADER",
    "PROXY_TRUSTED_HEADER",
    "PROXY_USER_HEADER",
    "ProxyClient",
    "ProxyFailed",
    "ProxyIdentity",
    "ProxyRefused",
    "ProxyTarget",
]

PROXY_USER_HEADER = "X-Sitemail-Proxy-User"
PROXY_CANARY_HEADER = "X-Sitemail-Proxy-Canary"
PROXY_TRUSTED_HEADER = "X-Sitemail-Proxy-Trusted"
PROXY_CLIENT_IP_HEADER = "X-Sitemail-Proxy-Client-IP"
#: Every header of ours; a browser's copies are removed before anything reads them.
PROXY_HEADERS = (
    PROXY_USER_HEADER,
    PROXY_CANARY_HEADER,
    PROXY_TRUSTED_HEADER,
    PROXY_CLIENT_IP_HEADER,
)

CHUNK = 64 * 1024
#: An answer of a known length up to this is read whole and sent in one write with its
#: headers (an OWA page: one TLS record and one send, not three); longer ones stream.
WHOLE_ANSWER = 256 * 1024
#: Seconds between looks at whether the client is still there while the target is quiet.
CLIENT_CHECK = 0.25

# What of the browser's request goes on to CAS2, and what of CAS2's answer comes back.
_REQUEST_HEADERS = frozenset(
    h.casefold()
    for h in (
        "Accept",
        "Accept-Language",
        "Content-Type",
        "Content-Length",
        "User-Agent",
        "If-None-Match",
        "If-Modified-Since",
        "MS-ASProtocolVersion",
        "X-MS-PolicyKey",
        "SOAPAction",
    )
)
_RESPONSE_HEADERS = frozenset(
    h.casefold()
    for h in (
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Content-Disposition",
        "Content-Language",
        "Cache-Control",
        "Expires",
        "Last-Modified",
        "ETag",
        "Retry-After",
        "X-MS-Location",
        "MS-Server-ActiveSync",
        "MS-ASProtocolVersions",
        "MS-ASProtocolCommands",
        "Content-Security-Policy",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "Referrer-Policy",
    )
)


class ProxyRefused(Exception):
    """The target is not a directory InternalUrl of the target server: nothing was sent."""


class ProxyFailed(Exception):
    """The proxied request could not be completed; ``reason`` and ``message`` say why."""

    def __init__(self, reason: str, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ProxyIdentity:
    """Who the request is for, as CAS1 authenticated them."""

    alias: str
    canary: str
    trusted: bool
    client_ip: str


@dataclass(frozen=True)
class ProxyTarget:
    """Where one request goes: the directory URL, the rebased URL, and the socket to dial."""

    server: str
    vdir_url: str  # the InternalUrl, from the directory
    url: str  # vdir_url + the client's path below the virtual directory
    host_header: str
    server_hostname: str  # for SNI and the certificate check
    address: str
    port: int


# Upstream reasons (proxy failures that are not a directory decision).
TARGET_UNREACHABLE = "ProxyTargetUnreachable"
TARGET_CERTIFICATE = "ProxyTargetCertificateNotTrusted"
TARGET_REDIRECT = "ProxyTargetRedirectedElsewhere"


class ProxyClient:
    """Forwards requests from this CAS (``server``) to other Client Access servers."""

    def __init__(
        self,
        server: str,
        *,
        snapshot: Callable[[], AccessDirectory],
        address_of: Callable[[str], str],
        port: Callable[[int], int],
        ssl_context: ssl.SSLContext,
        local_address: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.server = server
        self._snapshot = snapshot
        self._address_of = address_of
        self._port = port
        self._ssl = ssl_context
        self._local = local_address
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Connect from this server's own address, so the target (and its logs)
            # see which server proxied, as with a routed link between the sites.
            local = (self._local, 0) if self._local else None
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=256, local_addr=local)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    # ---------------------------------------------------------------- target

    def target(self, proxy: Proxy, entry_path: str, request_target: str) -> ProxyTarget:
        """Check ``proxy`` against the directory and work out where to connect.

        Raises :class:`ProxyRefused` when the URL is not a directory InternalUrl
        of the target server, :class:`~sitemail.access.proxy_paths.UnsafeRequestPath`
        when the client's path cannot be carried over, and :class:`ProxyFailed`
        when the target server has no known address.
        """
        url = proxy.target_url
        if url is None:
            raise ProxyRefused(f"the {proxy.protocol} proxy outcome names no URL")
        directory = self._snapshot()
        known = any(
            v.internal_url == url and v.server.casefold() == proxy.target_server.casefold()
            for v in directory.virtual_directories
        )
        if not known:
            raise ProxyRefused(
                f"{url} is not the InternalUrl of a virtual directory of {proxy.target_server} "
                "in the directory: only directory URLs are proxied to"
            )
        forward = rebase_request_path(url, entry_path, request_target)
        parts = urlsplit(url)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ProxyFailed(
                ErrorReason.NO_INTERNAL_URL,
                f"{self.server} tried to proxy {proxy.protocol} to {url}, which does not use "
                "https://; set the InternalUrl of the target virtual directory to an https:// URL.",
            )
        try:
            address = self._address_of(proxy.target_server)
        except LookupError as exc:
            raise ProxyFailed(
                TARGET_UNREACHABLE,
                f"{self.server} tried to proxy {proxy.protocol} to {proxy.target_server} ({url}) "
                f"but knows no address for it: {exc}",
            ) from None
        default = 443
        port = parts.port if parts.port is not None else default
        host_header = (
            parts.hostname if parts.port in (None, default) else f"{parts.hostname}:{port}"
        )
        return ProxyTarget(
            server=proxy.target_server,
            vdir_url=url,
            url=forward,
            host_header=host_header,
            server_hostname=parts.hostname,
            address=address,
            port=self._port(port),
        )

    # ---------------------------------------------------------------- forward

    async def forward(
        self,
        request: web.Request,
        target: ProxyTarget,
        identity: ProxyIdentity,
        *,
        client_base: str,
        protocol: str,
        cookies: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """Send ``request`` to ``target`` and stream the answer back to the browser.

        ``client_base`` is the virtual directory path the browser is on
        (``/owa``): CAS2's redirects to its own URL are rewritten onto it.
        ``cookies`` are this server's own, set on the answer for that path (CAS2
        cannot set cookies for this server's host).
        """
        parts = urlsplit(target.url)
        dial = urlunsplit(
            ("https", _hostport(target.address, target.port), parts.path, parts.query, "")
        )
        headers = _request_headers(request.headers, target, identity)
        body = request.content.iter_chunked(CHUNK) if request.body_exists else None
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self._connect_timeout,
            sock_connect=self._connect_timeout,
            sock_read=self._read_timeout,
        )
        what = (
            f"{self.server} tried to proxy {protocol} traffic for {identity.alias} "
            f"to {target.vdir_url}"
        )
        try:
            upstream = await self._client().request(
                request.method,
                dial,
                headers=headers,
                data=body,
                timeout=timeout,
                server_hostname=target.server_hostname,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding",),
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ProxyFailed(
                TARGET_CERTIFICATE,
                f"{what}: its certificate is not trusted ({exc.certificate_error}); the target "
                "must present a certificate of the organization that covers the InternalUrl's "
                "host name.",
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ProxyFailed(
                TARGET_UNREACHABLE,
                f"{what} ({target.address}:{target.port}): {type(exc).__name__}: {exc}. "
                "Check that the target server is running and that the firewalls between the "
                "sites pass HTTPS.",
            ) from None
        try:
            if upstream.status == 401:
                raise ProxyFailed(
                    ErrorReason.WINDOWS_AUTHENTICATION_DISABLED,
                    f"{what}: the target refused the proxy authentication (HTTP 401). The "
                    "virtual directory there must have Integrated Windows authentication "
                    "(WindowsAuthentication) on for Client Access servers to proxy to it.",
                )
            return await _relay(request, upstream, target, client_base, what, cookies or {})
        finally:
            upstream.release()

    async def post(
        self,
        target: ProxyTarget,
        identity: ProxyIdentity,
        body: bytes,
        *,
        content_type: str,
        protocol: str,
        limit: int,
    ) -> tuple[int, bytes]:
        """POST a request this server made itself (the availability service asking the
        mailbox's site for free/busy) to ``target``; the status and at most ``limit`` bytes.
        """
        parts = urlsplit(target.url)
        dial = urlunsplit(
            ("https", _hostport(target.address, target.port), parts.path, parts.query, "")
        )
        headers = _request_headers({"Content-Type": content_type}, target, identity)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self._connect_timeout,
            sock_connect=self._connect_timeout,
            sock_read=self._read_timeout,
        )
        what = f"{self.server} tried to send {protocol} for {identity.alias} to {target.vdir_url}"
        try:
            async with self._client().post(
                dial,
                headers=headers,
                data=body,
                timeout=timeout,
                server_hostname=target.server_hostname,
                allow_redirects=False,
            ) as upstream:
                data = bytearray()
                async for chunk in upstream.content.iter_chunked(CHUNK):
                    data += chunk
                    if len(data) > limit:
                        raise ProxyFailed(
                            TARGET_UNREACHABLE, f"{what}: the answer is larger than {limit} bytes"
                        )
                return upstream.status, bytes(data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ProxyFailed(
                TARGET_UNREACHABLE,
                f"{what} ({target.address}:{target.port}): {type(exc).__name__}: {exc}",
            ) from None


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _request_headers(
    incoming: Mapping[str, str], target: ProxyTarget, identity: ProxyIdentity
) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        if name.casefold() in _REQUEST_HEADERS:
            out.add(name, value)
    out["Host"] = target.host_header
    out[PROXY_USER_HEADER] = identity.alias
    out[PROXY_CANARY_HEADER] = identity.canary
    out[PROXY_TRUSTED_HEADER] = "1" if identity.trusted else "0"
    out[PROXY_CLIENT_IP_HEADER] = identity.client_ip
    return out


def rewrite_location(location: str, vdir_url: str, client_base: str) -> str | None:
    """CAS2's ``Location`` as the browser must see it; None if it leads elsewhere.

    A relative reference is kept (the browser resolves it against the URL it
    is on, which is CAS1's); an absolute one must lie under CAS2's virtual
    directory URL and is moved onto ``client_base``.  Nothing else passes:
    the proxy never sends a browser to a host the directory did not give.
    """
    text = location.strip()
    if not text or any(ord(c) < 0x20 for c in text) or "\\" in text:
        return None
    try:
        parts = urlsplit(text)
        base = urlsplit(vdir_url)
    except ValueError:
        return None
    if not parts.scheme and not parts.netloc:
        return text if not text.startswith("//") else None
    same_origin = (
        parts.scheme.lower() == base.scheme.lower()
        and (parts.hostname or "") == (base.hostname or "")
        and parts.port == base.port
    )
    root = base.path.rstrip("/")
    if not same_origin or not (parts.path == root or parts.path.startswith(root + "/")):
        return None
    rest = parts.path[len(root) :]
    return urlunsplit(("", "", client_base.rstrip("/") + rest, parts.query, ""))


async def _relay(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    target: ProxyTarget,
    client_base: str,
    what: str,
    cookies: Mapping[str, str],
) -> web.StreamResponse:
    length = upstream.content_length
    whole = (
        length is not None
        and length <= WHOLE_ANSWER
        and request.method != "HEAD"
        and upstream.status >= 200
        and upstream.status not in (204, 304)
        # aiohttp gives a Response without one a type of its own; a stream gets none.
        and "Content-Type" in upstream.headers
    )
    response = (
        web.Response(status=upstream.status, reason=upstream.reason)
        if whole
        else web.StreamResponse(status=upstream.status, reason=upstream.reason)
    )
    for name, value in upstream.headers.items():
        if name.casefold() in _RESPONSE_HEADERS:
            response.headers.add(name, value)
    for name, value in cookies.items():
        response.set_cookie(name, value, path=client_base or "/", secure=True, httponly=True)
    location = upstream.headers.get("Location")
    if location is not None:
        rewritten = rewrite_location(location, target.vdir_url, client_base)
        if rewritten is None:
            raise ProxyFailed(
                TARGET_REDIRECT,
                f"{what}: the target answered with a redirect to {location[:200]!r}, outside its "
                "own virtual directory; the proxy does not follow it.",
            )
        response.headers["Location"] = rewritten
    if isinstance(response, web.Response) and length is not None:
        try:
            response.body = await upstream.content.readexactly(length)
        except (aiohttp.ClientError, asyncio.IncompleteReadError, TimeoutError) as exc:
            raise ProxyFailed(
                TARGET_UNREACHABLE,
                f"{what}: the target's answer was cut off ({type(exc).__name__}).",
            ) from None
        return response
    if length is not None:
        response.content_length = length
    await response.prepare(request)
    while (chunk := await _next_chunk(request, upstream.content)) is not None:
        if not chunk:
            await response.write_eof()
            return response
        await response.write(chunk)
    # The client went away while the target was quiet (an EWS stream waiting for events):
    # the connection to the target is closed now, so that the target ends what it serves
    # for nobody (a stream would give the next events away to a closed connection).
    upstream.close()
    return response


async def _next_chunk(request: web.Request, body: aiohttp.StreamReader) -> bytes | None:
    """The target's next chunk (empty at its end); None if the client left meanwhile.

    aiohttp does not cancel a handler whose client left, so while the target sends
    nothing the client's connection is looked at every CLIENT_CHECK seconds.
    """
    read = asyncio.ensure_future(body.read(CHUNK))
    try:
        while True:
            done, _ = await asyncio.wait({read}, timeout=CLIENT_CHECK)
            if done:
                return read.result()
            transport = request.transport
            if transport is None or transport.is_closing():
                return None
    finally:
        if not read.done():
            read.cancel()  # a read waiting for data gives none away when cancelled
