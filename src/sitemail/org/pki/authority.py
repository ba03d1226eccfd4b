"""The organization CA and the certificates it issues (:class:`OrganizationPki`).

Every server holds a certificate issued by the CA, with extended key usage
serverAuth *and* clientAuth, and the admin one naming its role; the package
docstring (:mod:`sitemail.org.pki`) says why.  Every ``ensure_*`` keeps a
certificate that still covers what is asked and reissues one that does not.

Key algorithm: ECDSA P-256 by default.  Generating a key takes microseconds
where RSA-2048 takes tens to hundreds of milliseconds (a lab issues a dozen
certificates, tests make many labs), handshakes are smaller, the security
level is higher (128 against 112 bits), and every client we test with
(OpenSSL, Python, curl, swaks, Chromium) supports it.  RSA-2048 remains a
choice (``key_algorithm="rsa-2048"``) for tools that only know RSA.
"""

from __future__ import annotations

import ipaddress
import re
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

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.pki.files import (
    CertFiles,
    PkiError,
    PrivateKey,
    admin_cert_files,
    ca_cert_file,
    check_server_name,
    key_pem,
    load_cert,
    load_key,
    server_cert_files,
    write_private,
    write_public,
)
from sitemail.org.pki.identity import (
    ROLE_ADMIN,
    ROLE_SERVER,
    ROLE_WEB,
    PeerVerifier,
    role_of,
    role_uri,
)

KeyAlgorithm = Literal["ecdsa-p256", "rsa-2048"]

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

_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


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
        self._ca_key: PrivateKey | None = None

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
            ca_cert = load_cert(ca_file)
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
        write_private(folder / "ca.key", key_pem(key))
        write_public(ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
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
        dns, ips = _server_subject_alt_names(name, fqdn, addresses, urls, dns_names)
        return self._ensure_leaf(
            self.server_files(name),
            subject=self._subject(fqdn, SERVER_OU),
            dns=dns,
            ips=ips,
            ekus=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            role=(ROLE_SERVER, name),
        )

    def ensure_web(
        self,
        name: str,
        fqdn: str,
        *,
        addresses: Iterable[str] = (),
        dns_names: Iterable[str] = (),
    ) -> IssueResult:
        """A TLS server certificate for a tool's web front (``sitemail console``): serverAuth
        only and the ``web`` role, so that no process of the organization takes whoever holds
        it for one of its servers (:class:`PeerVerifier` names only servers and the admin)."""
        dns, ips = _server_subject_alt_names(name, fqdn, addresses, (), dns_names)
        return self._ensure_leaf(
            self.server_files(name),
            subject=self._subject(fqdn, None),
            dns=dns,
            ips=ips,
            ekus=[ExtendedKeyUsageOID.SERVER_AUTH],
            role=(ROLE_WEB, name),
        )

    def _subject(self, common_name: str, unit: str | None) -> x509.Name:
        unit_attr = (
            [] if unit is None else [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit)]
        )
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                *unit_attr,
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    def ensure_admin(self, name: str = "admin") -> IssueResult:
        """Make sure the organization admin certificate exists (clientAuth only)."""
        if not name or len(name) > 64:
            raise PkiError(f"admin name {name!r} is not valid: expected 1-64 characters")
        return self._ensure_leaf(
            self.admin_files(),
            subject=self._subject(name, ADMIN_OU),
            dns=[],
            ips=[],
            ekus=[ExtendedKeyUsageOID.CLIENT_AUTH],
            role=(ROLE_ADMIN, name),
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
        write_private(files.key, key_pem(key))
        write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
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
            cert = load_cert(files.cert)
            key = load_key(files.key)
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
        if role_of(cert) != role:
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

    def _ca_private_key(self) -> PrivateKey:
        if self._ca_key is None:
            key_file = self.folder / "ca.key"
            if not key_file.exists():
                raise PkiError(
                    f"{key_file} is missing, so no certificate can be issued: "
                    "restore it, or delete the pki folder to start a new CA"
                )
            key = load_key(key_file)
            if _spki(key) != _spki_of_cert(self.ca_certificate):
                raise PkiError(
                    f"{key_file} does not belong to {self.ca_file}: "
                    "restore the matching key, or delete the pki folder to start a new CA"
                )
            self._ca_key = key
        return self._ca_key

    def _build_leaf(
        self,
        key: PrivateKey,
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
        )
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
        names += [x509.IPAddress(a) for a in ips]
        names.append(x509.UniformResourceIdentifier(role_uri(*role)))
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


# --- helpers ----------------------------------------------------------------


def _server_subject_alt_names(
    name: str,
    fqdn: str,
    addresses: Iterable[str],
    urls: Iterable[str | None],
    dns_names: Iterable[str],
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    check_server_name(name)
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


def _leaf_key_usage(key: PrivateKey) -> x509.KeyUsage:
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


def _build_ca(organization: str, key: PrivateKey, now: datetime) -> x509.Certificate:
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


def _new_key(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise PkiError(f"key algorithm {algorithm!r} is not known: use 'ecdsa-p256' or 'rsa-2048'")


def _spki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _spki_of_cert(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _name_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
