"""Who a TLS peer is: a server of the organization, its admin, or nobody.

What a certificate *is* is carried by a role URI among its subject alternative
names (``urn:x-sitemail:server:EX-NY1``, :func:`role_uri`), beside a readable
subject OU; only the URI decides, so a user's certificate whose subject happens
to carry the same OU is nobody.
"""

from __future__ import annotations

import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.pki.files import PkiError

# cryptography is loaded when a certificate is first looked at, not with this module:
# every server process imports the identities, and one that never meets a peer's
# certificate (a hub taking Internet mail only) is spared its memory (files.py).
if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.x509.verification import ExtensionPolicy, Store

# The role rides in the subject alternative names, where every TLS library reads
# (and, for a URI, ignores) it.  It was a private extension under a UUID OID
# (2.25.<128-bit integer>): GnuTLS cannot parse an OID arc that large and refused
# the whole certificate, so msmtp, Debian's mutt and Evolution could not connect.
ROLE_URI_PREFIX = "urn:x-sitemail:"
ROLE_SERVER = "server"
ROLE_ADMIN = "admin"
#: A tool's web front (the console): a TLS server to browsers, never a peer of the servers.
ROLE_WEB = "web"


@dataclass(frozen=True)
class ServerIdentity:
    """The peer is the Exchange server ``name`` of this organization."""

    name: str


@dataclass(frozen=True)
class AdminIdentity:
    """The peer holds the organization admin certificate."""

    name: str = "admin"


PeerIdentity = ServerIdentity | AdminIdentity


# The Web PKI defaults, except that a client certificate may lack a subject
# alternative name: the admin certificate names a role, not a host.
@cache
def _policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """The (CA, end entity) extension policies of the verification."""
    from cryptography import x509
    from cryptography.x509.verification import Criticality, ExtensionPolicy

    return (
        ExtensionPolicy.webpki_defaults_ca(),
        ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        ),
    )


#: How long a certificate's verification is trusted before it is done again.
RECHECK_AFTER = timedelta(minutes=5)
#: Certificates whose verification is kept.
MAX_KNOWN = 256


class PeerVerifier:
    """Tells who a TLS peer is: a server of the organization, its admin, or nobody.

    Verification is the one-level chain leaf -> organization CA, done by
    ``cryptography``'s X.509 path validation (signature, validity period at the
    clock's time, basic constraints, key usage, EKU clientAuth).  Both server
    and admin certificates carry clientAuth, so the same check serves the
    receiving side (a client certificate) and the sending side after
    ``X-ANONYMOUSTLS`` (the receiver's certificate, which was not checked
    during the handshake).
    """

    def __init__(self, ca_cert: x509.Certificate | bytes, *, clock: Clock = SYSTEM_CLOCK) -> None:
        # ``bytes``: the CA's PEM, parsed with the first certificate looked at.
        self._ca = ca_cert
        self._trust: Store | None = None
        self._ca_octets: bytes | None = None  # the CA's DER, compared with a TLS context's
        self._clock = clock
        # The store API and the proxy see the same few certificates on every request:
        # an answer is kept (by the certificate's octets) until the certificate expires,
        # and for no longer than RECHECK_AFTER, so a path validation is not redone per call.
        self._known: OrderedDict[bytes, tuple[PeerIdentity | None, datetime]] = OrderedDict()
        self._known_lock = threading.Lock()

    @classmethod
    def from_file(cls, ca_file: Path, *, clock: Clock = SYSTEM_CLOCK) -> PeerVerifier:
        """The verifier of the CA in ``ca_file``: read now (a missing or unreadable file
        is a :class:`PkiError` here), parsed when the first certificate is looked at."""
        path = Path(ca_file)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise PkiError(f"cannot read certificate {path}: {exc}") from None
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            raise PkiError(f"cannot read certificate {path}: no PEM certificate in it")
        return cls(pem, clock=clock)

    def _store(self) -> Store:
        if self._trust is None:
            from cryptography import x509
            from cryptography.x509.verification import Store

            ca = self._ca
            try:
                cert = x509.load_pem_x509_certificate(ca) if isinstance(ca, bytes) else ca
            except ValueError as exc:
                raise PkiError(f"the organization CA certificate cannot be read: {exc}") from None
            self._trust = Store([cert])
        return self._trust

    def identify(self, peer_cert: bytes | x509.Certificate | None) -> PeerIdentity | None:
        """Identity of a peer certificate (DER bytes or parsed), or None if not one of ours.

        ``None`` (no certificate), garbage, another CA's certificate, an expired
        one, and one of this CA without a role marker all give ``None``.
        """
        if peer_cert is None:
            return None
        if isinstance(peer_cert, bytes):
            return self._identify_der(peer_cert, None)
        return self._identify(peer_cert)

    def _identify_der(
        self, der: bytes, tls: ssl.SSLObject | ssl.SSLSocket | None
    ) -> PeerIdentity | None:
        """:meth:`identify` of DER octets, kept by them; ``tls``: the connection they came
        over, whose handshake may have verified them already (:meth:`identify_ssl`)."""
        now = self._clock.now()
        with self._known_lock:
            known = self._known.get(der)
        if known is not None and now < known[1]:
            return known[0]
        verified = None if tls is None else self._verified_in_handshake(tls)
        if verified is not None:
            identity, not_after = verified
        else:
            from cryptography import x509

            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                return None
            identity, not_after = self._identify(cert), cert.not_valid_after_utc
        with self._known_lock:
            self._known[der] = (identity, min(not_after, now + RECHECK_AFTER))
            while len(self._known) > MAX_KNOWN:
                self._known.popitem(last=False)
        return identity

    def _identify(self, cert: x509.Certificate) -> PeerIdentity | None:
        from cryptography.x509.verification import PolicyBuilder, VerificationError

        ca_policy, ee_policy = _policies()
        verifier = (
            PolicyBuilder()
            .store(self._store())
            .time(self._clock.now())
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            verifier.verify(cert, [])
        except VerificationError:
            return None
        return _identity_of(role_of(cert))

    def identify_ssl(self, tls: ssl.SSLObject | ssl.SSLSocket) -> PeerIdentity | None:
        """Identity of the peer of an established TLS connection.

        On the server side of a connection whose context trusts this CA alone and
        verified the client's certificate (``client_certs`` optional or required,
        contexts.py), OpenSSL has done the path validation of :meth:`identify` in the
        handshake: chain to this CA, validity now, and the TLS client purpose (EKU
        clientAuth).  The role is then read from the certificate as the ssl module
        decoded it, and ``cryptography`` (about 9 MB of memory) is not loaded for it.
        Anything else (a client's view of a server, X-ANONYMOUSTLS, another CA among
        those trusted, a clock of the tests) is verified by :meth:`identify`.
        """
        der = tls.getpeercert(binary_form=True)
        return None if der is None else self._identify_der(der, tls)

    def _verified_in_handshake(
        self, tls: ssl.SSLObject | ssl.SSLSocket
    ) -> tuple[PeerIdentity | None, datetime] | None:
        """(identity, end of validity) of a client certificate OpenSSL verified against
        this CA alone; None when the handshake's check is not the one :meth:`identify`
        makes (then that one is made)."""
        context = tls.context
        if (
            not tls.server_side
            or self._clock is not SYSTEM_CLOCK
            or context.verify_mode == ssl.CERT_NONE
            or context.get_ca_certs(binary_form=True) != [self._ca_der()]
        ):
            return None
        decoded = tls.getpeercert()  # empty unless the handshake verified the chain
        end = decoded.get("notAfter") if decoded else None
        if decoded is None or not isinstance(end, str):
            return None
        names = decoded.get("subjectAltName", ())
        uris = [
            entry[1]
            for entry in names
            if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == "URI"
        ]
        not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(end), UTC)
        return _identity_of(_role_in([u for u in uris if isinstance(u, str)])), not_after

    def _ca_der(self) -> bytes:
        if self._ca_octets is None:
            ca = self._ca
            if isinstance(ca, bytes):
                self._ca_octets = ssl.PEM_cert_to_DER_cert(ca.decode("ascii", "replace"))
            else:
                from cryptography.hazmat.primitives.serialization import Encoding

                self._ca_octets = ca.public_bytes(Encoding.DER)
        return self._ca_octets


def _identity_of(role: tuple[str, str] | None) -> PeerIdentity | None:
    if role is None:
        return None
    kind, name = role
    if kind == ROLE_SERVER:
        return ServerIdentity(name)
    if kind == ROLE_ADMIN:
        return AdminIdentity(name)
    return None


def role_uri(role: str, name: str) -> str:
    """The role marker of a certificate for ``role`` (server, admin, web) named ``name``."""
    return f"{ROLE_URI_PREFIX}{role}:{quote(name, safe='')}"


def role_of(cert: x509.Certificate) -> tuple[str, str] | None:
    """The (role, name) a certificate's role URI says; None when it has none (or two)."""
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    return _role_in(names.get_values_for_type(x509.UniformResourceIdentifier))


def _role_in(uris: list[str]) -> tuple[str, str] | None:
    """The (role, name) of the one role URI among a certificate's URIs, if one."""
    found = [uri for uri in uris if uri.startswith(ROLE_URI_PREFIX)]
    if len(found) != 1:
        return None
    role, sep, name = found[0][len(ROLE_URI_PREFIX) :].partition(":")
    if not sep or not role or not name:
        return None
    return role, unquote(name)
