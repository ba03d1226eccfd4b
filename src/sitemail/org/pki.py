"""The organization's PKI: one CA, one certificate per server, one for the admin.

In Exchange, servers of one organization trust each other through Active
Directory and Kerberos (``X-EXPS EXCHANGEAUTH``), and encrypt with
self-signed "Internal Transport Certificates".  sitemail has no Kerberos, so
the organization CA stands in for both: every server holds a certificate
issued by it, with extended key usage serverAuth *and* clientAuth, and a peer
that presents such a certificate is a server of the organization.

Files, in one folder (``<lab>/pki``)::

    ca.pem  ca.key                 the organization CA
    <SERVER>.pem  <SERVER>.key     one per server
    admin.pem  admin.key           the organization admin (shell, lab tools)

Keys are unencrypted PKCS#8 PEM files with mode 0600: server processes start
unattended, and the lab folder is the secret.

Key algorithm: ECDSA P-256 by default.  Generating a key takes microseconds
where RSA-2048 takes tens to hundreds of milliseconds (a lab issues a dozen
certificates, tests make many labs), handshakes are smaller, the security
level is higher (128 against 112 bits), and every client we test with
(OpenSSL, Python, curl, swaks, Chromium) supports it.  RSA-2048 remains a
choice (``key_algorithm="rsa-2048"``) for tools that only know RSA.

What a certificate *is* (server of the organization or organization admin)
is carried twice: as a readable subject OU (``Exchange Servers``, the name of
the Active Directory group Exchange servers belong to, or ``Organization
Management``, the Exchange admin role group), and as a private extension
(:data:`ROLE_EXTENSION_OID`) holding the role and the server name.  Only the
extension decides: it cannot be confused with a user's certificate whose
subject happens to carry the same OU.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from sitemail.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "ADMIN_OU",
    "CA_VALIDITY",
    "LEAF_VALIDITY",
    "RENEW_BEFORE",
    "ROLE_EXTENSION_OID",
    "SERVER_OU",
    "AdminIdentity",
    "CertFiles",
    "ClientCertMode",
    "IssueResult",
    "KeyAlgorithm",
    "OrganizationPki",
    "PeerIdentity",
    "PeerVerifier",
    "PkiError",
    "ServerCertSpec",
    "ServerIdentity",
    "admin_cert_files",
    "anonymous_tls_client_context",
    "ca_cert_file",
    "client_ssl_context",
    "ensure_organization_pki",
    "server_cert_files",
    "server_ssl_context",
]

KeyAlgorithm = Literal["ecdsa-p256", "rsa-2048"]
ClientCertMode = Literal["none", "optional", "required"]

# An OID under the ITU-T UUID arc (2.25.<uuid as integer>, ITU-T X.667): anyone
# may mint one without registering a private enterprise number.
ROLE_EXTENSION_OID = x509.ObjectIdentifier("2.25.151980114077364388721831725774917059245")
SERVER_OU = "Exchange Servers"
ADMIN_OU = "Organization Management"

CA_VALIDITY = timedelta(days=3652)
# Five years, the lifetime of the self-signed certificate Exchange 2010 makes.
LEAF_VALIDITY = timedelta(days=1826)
# A certificate this close to its end is reissued, so a lab never starts with
# one that runs out during a session.
RENEW_BEFORE = timedelta(days=30)
# Certificates start an hour in the past: a peer whose clock lags a little
# (another machine, a test clock) must not see them as not yet valid.
BACKDATE = timedelta(hours=1)

_ROLE_SERVER = "server"
_ROLE_ADMIN = "admin"
_RESERVED_FILE_NAMES = frozenset({"ca", "admin"})
# NetBIOS-style server names (what Exchange accepts), which also keeps them
# safe to use as file names.
_SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class PkiError(Exception):
    """A problem with the PKI folder or a request, in one line a user can act on."""


@dataclass(frozen=True)
class CertFiles:
    """Where one certificate and its private key live."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerCertSpec:
    """What one server's certificate must cover.

    ``urls`` are the InternalUrl/ExternalUrl values of the server's virtual
    directories; ``None`` entries (an ExternalUrl of ``$null``) are ignored.
    """

    name: str
    fqdn: str
    addresses: Sequence[str] = ()
    urls: Sequence[str | None] = ()
    dns_names: Sequence[str] = ()


@dataclass(frozen=True)
class IssueResult:
    """What :class:`OrganizationPki` did for one certificate, and why."""

    files: CertFiles
    action: Literal["kept", "issued", "reissued"]
    reason: str


@dataclass(frozen=True)
class ServerIdentity:
    """The peer is the Exchange server ``name`` of this organization."""

    name: str


@dataclass(frozen=True)
class AdminIdentity:
    """The peer holds the organization admin certificate."""

    name: str = "admin"


PeerIdentity = ServerIdentity | AdminIdentity


# --- file layout ------------------------------------------------------------


def ca_cert_file(folder: Path) -> Path:
    return Path(folder) / "ca.pem"


def server_cert_files(folder: Path, server: str) -> CertFiles:
    _check_server_name(server)
    return CertFiles(Path(folder) / f"{server}.pem", Path(folder) / f"{server}.key")


def admin_cert_files(folder: Path) -> CertFiles:
    return CertFiles(Path(folder) / "admin.pem", Path(folder) / "admin.key")


def _check_server_name(server: str) -> None:
    if not _SERVER_NAME.match(server):
        raise PkiError(
            f"server name {server!r} is not valid: expected 1-63 letters, digits or hyphens"
        )
    if server.lower() in _RESERVED_FILE_NAMES:
        raise PkiError(
            f"server name {server!r} is reserved in the PKI folder: choose another server name"
        )


# --- the organization PKI ---------------------------------------------------


class OrganizationPki:
    """The CA of one organization and the certificates it issues, in one folder.

    Use :meth:`open_or_create`; every ``ensure_*`` method is idempotent: it
    keeps a certificate that still covers what is asked and reissues one that
    is missing, not from this CA, near its end, or short of a name.
    """

    def __init__(
        self,
        folder: Path,
        organization: str,
        ca_cert: x509.Certificate,
        *,
        ca_created: bool = False,
        key_algorithm: KeyAlgorithm = "ecdsa-p256",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.folder = Path(folder)
        self.organization = organization
        self.ca_certificate = ca_cert
        self.ca_created = ca_created
        self.key_algorithm: KeyAlgorithm = key_algorithm
        self._clock = clock
        self._ca_key: _PrivateKey | None = None

    @classmethod
    def open_or_create(
        cls,
        folder: Path,
        organization: str,
        *,
        key_algorithm: KeyAlgorithm = "ecdsa-p256",
        clock: Clock = SYSTEM_CLOCK,
    ) -> OrganizationPki:
        """Open the CA in ``folder``, creating the folder and the CA if there is none."""
        organization = organization.strip()
        if not organization:
            raise PkiError("organization name is empty: give the organization's name")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ca_file = ca_cert_file(folder)
        if ca_file.exists():
            ca_cert = _load_cert(ca_file)
            found = _name_attribute(ca_cert.subject, NameOID.ORGANIZATION_NAME)
            if found != organization:
                raise PkiError(
                    f"{ca_file} is the CA of organization {found!r}, not {organization!r}: "
                    "use another lab folder or delete its pki folder"
                )
            return cls(folder, organization, ca_cert, key_algorithm=key_algorithm, clock=clock)
        # No CA certificate: a leftover ca.key (from a run killed between the
        # two writes) never signed anything, so it is simply replaced.
        key = _new_key(key_algorithm)
        ca_cert = _build_ca(organization, key, clock.now())
        _write_private(folder / "ca.key", _key_pem(key))
        _write_public(ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
        pki = cls(
            folder, organization, ca_cert, ca_created=True, key_algorithm=key_algorithm, clock=clock
        )
        pki._ca_key = key
        return pki

    @property
    def ca_file(self) -> Path:
        return ca_cert_file(self.folder)

    def server_files(self, server: str) -> CertFiles:
        return server_cert_files(self.folder, server)

    def admin_files(self) -> CertFiles:
        return admin_cert_files(self.folder)

    def verifier(self) -> PeerVerifier:
        return PeerVerifier(self.ca_certificate, clock=self._clock)

    def ensure_server(
        self,
        name: str,
        fqdn: str,
        *,
        addresses: Iterable[str] = (),
        urls: Iterable[str | None] = (),
        dns_names: Iterable[str] = (),
    ) -> IssueResult:
        """Make sure server ``name`` has a certificate covering these names and addresses."""
        files = self.server_files(name)
        dns, ips = _server_subject_alt_names(name, fqdn, addresses, urls, dns_names)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, SERVER_OU),
                x509.NameAttribute(NameOID.COMMON_NAME, fqdn),
            ]
        )
        return self._ensure_leaf(
            files,
            subject=subject,
            dns=dns,
            ips=ips,
            ekus=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            role=(_ROLE_SERVER, name),
        )

    def ensure_admin(self, name: str = "admin") -> IssueResult:
        """Make sure the organization admin certificate exists (clientAuth only)."""
        if not name or len(name) > 64:
            raise PkiError(f"admin name {name!r} is not valid: expected 1-64 characters")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ADMIN_OU),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        return self._ensure_leaf(
            self.admin_files(),
            subject=subject,
            dns=[],
            ips=[],
            ekus=[ExtendedKeyUsageOID.CLIENT_AUTH],
            role=(_ROLE_ADMIN, name),
        )

    # -- internals --

    def _ensure_leaf(
        self,
        files: CertFiles,
        *,
        subject: x509.Name,
        dns: list[str],
        ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
        ekus: list[x509.ObjectIdentifier],
        role: tuple[str, str],
    ) -> IssueResult:
        reason = self._why_reissue(files, subject, dns, ips, ekus, role)
        if reason is None:
            return IssueResult(files, "kept", "covers every requested name and address")
        existed = files.cert.exists()
        key = _new_key(self.key_algorithm)
        cert = self._build_leaf(key, subject, dns, ips, ekus, role)
        # Key first: a crash between the two writes leaves a certificate that
        # no longer matches its key, which the next run detects and reissues.
        _write_private(files.key, _key_pem(key))
        _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
        return IssueResult(files, "reissued" if existed else "issued", reason)

    def _why_reissue(
        self,
        files: CertFiles,
        subject: x509.Name,
        dns: list[str],
        ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
        ekus: list[x509.ObjectIdentifier],
        role: tuple[str, str],
    ) -> str | None:
        """Why the existing certificate will not do, or None if it will."""
        if not files.cert.exists() or not files.key.exists():
            return "missing"
        try:
            cert = _load_cert(files.cert)
            key = _load_key(files.key)
        except PkiError as exc:
            return f"unreadable: {exc}"
        if _spki(key) != _spki_of_cert(cert):
            return "key file does not match the certificate"
        try:
            cert.verify_directly_issued_by(self.ca_certificate)
        except (ValueError, TypeError, InvalidSignature):
            return "not issued by the current organization CA"
        if cert.not_valid_after_utc - RENEW_BEFORE < self._clock.now():
            return f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
        if cert.subject != subject:
            return f"subject is {cert.subject.rfc4514_string()}, wanted {subject.rfc4514_string()}"
        if _role_of(cert) != role:
            return "role marker differs"
        try:
            have_ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            have_ekus = set()
        if not set(ekus) <= have_ekus:
            return "extended key usage differs"
        have_dns, have_ips = _subject_alt_names(cert)
        missing = [n for n in dns if n not in have_dns] + [str(a) for a in ips if a not in have_ips]
        if missing:
            return "does not cover " + ", ".join(missing)
        return None

    def _ca_private_key(self) -> _PrivateKey:
        if self._ca_key is None:
            key_file = self.folder / "ca.key"
            if not key_file.exists():
                raise PkiError(
                    f"{key_file} is missing, so no certificate can be issued: "
                    "restore it, or delete the pki folder to start a new CA"
                )
            key = _load_key(key_file)
            if _spki(key) != _spki_of_cert(self.ca_certificate):
                raise PkiError(
                    f"{key_file} does not belong to {self.ca_file}: "
                    "restore the matching key, or delete the pki folder to start a new CA"
                )
            self._ca_key = key
        return self._ca_key

    def _build_leaf(
        self,
        key: _PrivateKey,
        subject: x509.Name,
        dns: list[str],
        ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
        ekus: list[x509.ObjectIdentifier],
        role: tuple[str, str],
    ) -> x509.Certificate:
        ca_key = self._ca_private_key()
        now = self._clock.now()
        # A leaf that outlives its CA could never verify after the CA's end.
        not_after = min(now + LEAF_VALIDITY, self.ca_certificate.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(key), critical=True)
            .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            # Not critical: a TLS library that does not know the OID must
            # still accept the certificate (OpenSSL rejects unknown critical ones).
            .add_extension(
                x509.UnrecognizedExtension(ROLE_EXTENSION_OID, _encode_role(*role)), False
            )
        )
        if dns or ips:
            names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
            names += [x509.IPAddress(a) for a in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(ca_key, hashes.SHA256())


def ensure_organization_pki(
    folder: Path,
    organization: str,
    servers: Iterable[ServerCertSpec],
    *,
    admin: bool = True,
    key_algorithm: KeyAlgorithm = "ecdsa-p256",
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, IssueResult]:
    """Everything ``lab up`` needs: the CA, each server's certificate, the admin's.

    Returns what happened per certificate, keyed by server name (and ``admin``).
    """
    pki = OrganizationPki.open_or_create(
        folder, organization, key_algorithm=key_algorithm, clock=clock
    )
    results: dict[str, IssueResult] = {}
    for spec in servers:
        results[spec.name] = pki.ensure_server(
            spec.name,
            spec.fqdn,
            addresses=spec.addresses,
            urls=spec.urls,
            dns_names=spec.dns_names,
        )
    if admin:
        results["admin"] = pki.ensure_admin()
    return results


# --- peer identity ----------------------------------------------------------

# The Web PKI defaults, except that a client certificate may lack a subject
# alternative name: the admin certificate names a role, not a host.
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)


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

    def __init__(self, ca_cert: x509.Certificate, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._store = Store([ca_cert])
        self._clock = clock

    @classmethod
    def from_file(cls, ca_file: Path, *, clock: Clock = SYSTEM_CLOCK) -> PeerVerifier:
        return cls(_load_cert(Path(ca_file)), clock=clock)

    def identify(self, peer_cert: bytes | x509.Certificate | None) -> PeerIdentity | None:
        """Identity of a peer certificate (DER bytes or parsed), or None if not one of ours.

        ``None`` (no certificate), garbage, another CA's certificate, an expired
        one, and one of this CA without a role marker all give ``None``.
        """
        if peer_cert is None:
            return None
        if isinstance(peer_cert, bytes):
            try:
                cert = x509.load_der_x509_certificate(peer_cert)
            except ValueError:
                return None
        else:
            cert = peer_cert
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(self._clock.now())
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        try:
            verifier.verify(cert, [])
        except VerificationError:
            return None
        role = _role_of(cert)
        if role is None:
            return None
        kind, name = role
        if kind == _ROLE_SERVER:
            return ServerIdentity(name)
        if kind == _ROLE_ADMIN:
            return AdminIdentity(name)
        return None

    def identify_ssl(self, tls: ssl.SSLObject | ssl.SSLSocket) -> PeerIdentity | None:
        """Identity of the peer of an established TLS connection."""
        return self.identify(tls.getpeercert(binary_form=True))


# --- SSL contexts -----------------------------------------------------------


def server_ssl_context(
    files: CertFiles,
    *,
    ca_file: Path | None = None,
    client_certs: ClientCertMode = "none",
) -> ssl.SSLContext:
    """A TLS server context presenting ``files``.

    ``client_certs`` "optional" asks the client for a certificate, "required"
    insists on one; either way a presented certificate must chain to
    ``ca_file`` or the handshake fails (OpenSSL offers no "ask but do not
    check").  That failure is what the sender of ``X-ANONYMOUSTLS`` meets with a
    foreign certificate; name the peer afterwards with :class:`PeerVerifier`.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.cert, files.key)
    if client_certs != "none":
        if ca_file is None:
            raise PkiError(f"client_certs={client_certs!r} needs ca_file to check them against")
        ctx.load_verify_locations(cafile=ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED if client_certs == "required" else ssl.CERT_OPTIONAL
    return ctx


def client_ssl_context(ca_file: Path, *, files: CertFiles | None = None) -> ssl.SSLContext:
    """A TLS client context that trusts only the organization CA and checks host names.

    The system's trust store is deliberately not loaded: inside the
    organization only its own CA vouches for a server.  Pass ``files`` to
    present a client certificate (a server's, or the admin's).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=ca_file)
    if files is not None:
        ctx.load_cert_chain(files.cert, files.key)
    return ctx


def anonymous_tls_client_context(files: CertFiles | None = None) -> ssl.SSLContext:
    """The client side of ``X-ANONYMOUSTLS``: encrypt, but check neither chain nor name.

    Exchange does this with self-signed internal transport certificates.  The
    sender still presents its own server certificate (``files``) so the
    receiver can recognise a server of the organization, and it may identify
    the receiver after the handshake with :meth:`PeerVerifier.identify_ssl`.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if files is not None:
        ctx.load_cert_chain(files.cert, files.key)
    return ctx


# --- helpers ----------------------------------------------------------------


def _server_subject_alt_names(
    name: str,
    fqdn: str,
    addresses: Iterable[str],
    urls: Iterable[str | None],
    dns_names: Iterable[str],
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    _check_server_name(name)
    fqdn = _dns_name(fqdn, what="server FQDN")
    short = fqdn.split(".", 1)[0]
    wanted = [fqdn, fqdn.lower(), short, short.lower(), name, name.lower()]
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for address in addresses:
        try:
            ips.append(ipaddress.ip_address(address))
        except ValueError:
            raise PkiError(
                f"address {address!r} of server {name} is not an IP address: "
                "give IPv4 or IPv6 addresses"
            ) from None
    for url in urls:
        if url is None:
            continue
        host = urlsplit(url).hostname
        if not host:
            raise PkiError(f"URL {url!r} of server {name} has no host name: give absolute URLs")
        try:
            ips.append(ipaddress.ip_address(host))
        except ValueError:
            wanted.append(_dns_name(host, what=f"host of URL {url!r}"))
    for extra in dns_names:
        extra = _dns_name(extra, what="DNS name")
        wanted += [extra, extra.lower()]
    # dict.fromkeys: drop duplicates but keep the order (FQDN first reads best).
    return list(dict.fromkeys(wanted)), list(dict.fromkeys(ips))


def _dns_name(host: str, *, what: str) -> str:
    host = host.strip().rstrip(".")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise PkiError(f"{what} {host!r} is not a valid host name") from None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise PkiError(
            f"{what} {host!r} is not a valid host name: expected dot-separated labels "
            "of letters, digits and hyphens"
        )
    return ascii_host


def _subject_alt_names(
    cert: x509.Certificate,
) -> tuple[set[str], set[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for value in san.get_values_for_type(x509.IPAddress):
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            ips.add(value)
    return set(san.get_values_for_type(x509.DNSName)), ips


def _leaf_key_usage(key: _PrivateKey) -> x509.KeyUsage:
    # keyEncipherment only means something for RSA key transport; on an ECDSA
    # key it is a known lint error, so it is set for RSA keys only.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _build_ca(organization: str, key: _PrivateKey, now: datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} Organization CA"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        # path_length=0: the CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _new_key(algorithm: KeyAlgorithm) -> _PrivateKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise PkiError(f"key algorithm {algorithm!r} is not known: use 'ecdsa-p256' or 'rsa-2048'")


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki(key: _PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _spki_of_cert(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read certificate {path}: {exc}") from None


def _load_key(path: Path) -> _PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"cannot read private key {path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"private key {path} is neither ECDSA nor RSA")
    return key


def _name_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _write_private(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file.

    The temporary file is created with its final mode, so a private key is
    never readable by others, not even for a moment.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


# The role marker: DER SEQUENCE { UTF8String role, UTF8String name }.


def _encode_role(role: str, name: str) -> bytes:
    body = _der_tlv(0x0C, role.encode()) + _der_tlv(0x0C, name.encode())
    return _der_tlv(0x30, body)


def _role_of(cert: x509.Certificate) -> tuple[str, str] | None:
    try:
        ext = cert.extensions.get_extension_for_oid(ROLE_EXTENSION_OID).value
    except x509.ExtensionNotFound:
        return None
    if not isinstance(ext, x509.UnrecognizedExtension):
        return None
    try:
        tag, body, end = _der_read(ext.value, 0)
        if tag != 0x30 or end != len(ext.value):
            return None
        tag1, role, pos = _der_read(body, 0)
        tag2, name, pos = _der_read(body, pos)
        if tag1 != 0x0C or tag2 != 0x0C or pos != len(body):
            return None
        return role.decode(), name.decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _der_tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One TLV at ``pos``: (tag, content, position after it); ValueError if malformed."""
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated")
    return tag, data[pos : pos + length], pos + length
