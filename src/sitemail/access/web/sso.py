"""The single sign-on token of OWA cross-site silent redirection (CrossSiteRedirectType Silent).

With forms-based authentication on both ends, Exchange 2010 SP2 sends the
user on to the other site's ExternalUrl without a second sign-in (spec 8.4).
sitemail carries the sign-in across as a short-lived token in the redirect:

    <payload>.<signature>.<certificate>      (each base64url, no padding)

- payload: JSON with the user's alias, the issuing server (``iss``), the one
  server that may accept it (``aud``), the virtual directory and ExternalUrl
  it is for, "private computer" or not, a random ``nonce``, and the issue and
  expiry times (60 seconds apart);
- signature: the issuing CAS signs the payload with its own server key;
- certificate: the issuer's certificate, which the accepting CAS checks
  against the organization CA (it must be a *server* certificate naming
  ``iss``) before it trusts the signature.

The accepting CAS also checks that it is the audience, that the virtual
directory and URL are its own (from the directory), that the token has not
expired, and that its nonce was never seen (a token works once).  The token
travels in a URL, so it is short-lived and single-use; the pages send no
Referer header, so it does not leak to other sites.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.pki import CertFiles, PeerVerifier, ServerIdentity

__all__ = ["SSO_LIFETIME", "SsoClaims", "SsoError", "SsoIssuer", "SsoVerifier"]

#: How long a token may take from one CAS to the other (one browser redirect).
SSO_LIFETIME = 60.0
#: Longest token accepted (a certificate plus a small payload fit in well under this).
MAX_TOKEN = 8192


class SsoError(Exception):
    """The token cannot be accepted; the message says why (for the log, not the user)."""


@dataclass(frozen=True)
class SsoClaims:
    alias: str
    issuer: str
    audience: str
    vdir: str  # the target virtual directory's identity
    url: str  # its ExternalUrl (where the user lands)
    trusted: bool
    nonce: str
    issued: float
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: Any, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise SsoError("the server key is neither ECDSA nor RSA")


def _verify(cert: x509.Certificate, signature: bytes, data: bytes) -> None:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise SsoError("the issuer's key is neither ECDSA nor RSA")


class SsoIssuer:
    """Issues tokens signed with this server's key."""

    def __init__(self, server: str, files: CertFiles, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.server = server
        self._key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        self._cert = _b64(cert.public_bytes(serialization.Encoding.DER))
        self._clock = clock

    def issue(self, *, alias: str, audience: str, vdir: str, url: str, trusted: bool) -> str:
        now = self._clock.now().timestamp()
        claims = {
            "sub": alias,
            "iss": self.server,
            "aud": audience,
            "vdir": vdir,
            "url": url,
            "trusted": trusted,
            "nonce": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + SSO_LIFETIME,
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(_sign(self._key, payload.encode("ascii")))
        return f"{payload}.{signature}.{self._cert}"


class SsoVerifier:
    """Accepts tokens meant for this server, each once."""

    def __init__(
        self,
        server: str,
        verifier: PeerVerifier,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_nonces: int = 50_000,
        first_use: Callable[[str, float, float], bool] | None = None,
    ) -> None:
        """``first_use(nonce, expires, now)``: whether a token's nonce is new to the server
        (with W3SVC workers, a book they share: a token is used once, not once a worker);
        by default this object keeps the book."""
        self.server = server
        self._first_use = first_use
        self._verifier = verifier
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max_nonces = max_nonces

    @classmethod
    def from_ca_file(
        cls, server: str, ca_file: Path, *, clock: Clock = SYSTEM_CLOCK
    ) -> SsoVerifier:
        return cls(server, PeerVerifier.from_file(ca_file, clock=clock), clock=clock)

    def accept(self, token: str) -> SsoClaims:
        """The token's claims when it may be accepted here; SsoError otherwise."""
        if not token or len(token) > MAX_TOKEN:
            raise SsoError("no token, or a token too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise SsoError("the token does not have three parts")
        payload, signature, cert_text = parts
        try:
            cert = x509.load_der_x509_certificate(_unb64(cert_text))
            raw_signature = _unb64(signature)
            claims = json.loads(_unb64(payload))
        except (ValueError, TypeError) as exc:
            raise SsoError(f"the token is malformed: {exc}") from None
        identity = self._verifier.identify(cert)
        if not isinstance(identity, ServerIdentity):
            raise SsoError("the token is not signed by a server of this organization")
        try:
            _verify(cert, raw_signature, payload.encode("ascii"))
        except (InvalidSignature, ValueError) as exc:
            raise SsoError(f"the token's signature does not verify: {exc!r}") from None
        parsed = self._claims(claims)
        if parsed.issuer.casefold() != identity.name.casefold():
            raise SsoError(
                f"the token names issuer {parsed.issuer} but is signed by {identity.name}"
            )
        if parsed.audience.casefold() != self.server.casefold():
            raise SsoError(f"the token is for {parsed.audience}, not {self.server}")
        now = self._clock.now().timestamp()
        if not parsed.issued - 5 <= now <= parsed.expires:
            raise SsoError("the token has expired (or comes from the future)")
        if self._first_use is not None:
            if not self._first_use(parsed.nonce, parsed.expires, now):
                raise SsoError("the token was already used")
            return parsed
        self._forget_expired(now)
        if parsed.nonce in self._seen:
            raise SsoError("the token was already used")
        self._seen[parsed.nonce] = parsed.expires
        while len(self._seen) > self._max_nonces:
            self._seen.popitem(last=False)
        return parsed

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            nonce, expires = next(iter(self._seen.items()))
            if expires >= now:
                break
            del self._seen[nonce]

    @staticmethod
    def _claims(data: object) -> SsoClaims:
        if not isinstance(data, dict):
            raise SsoError("the token's payload is not an object")
        try:
            claims = SsoClaims(
                alias=str(data["sub"]),
                issuer=str(data["iss"]),
                audience=str(data["aud"]),
                vdir=str(data["vdir"]),
                url=str(data["url"]),
                trusted=bool(data["trusted"]),
                nonce=str(data["nonce"]),
                issued=float(data["iat"]),
                expires=float(data["exp"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SsoError(f"the token's payload lacks a claim: {exc}") from None
        if claims.expires - claims.issued > SSO_LIFETIME + 1:
            raise SsoError("the token lives longer than allowed")
        return claims
