"""The organization PKI: files, certificate contents, idempotence, TLS, peer identity."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sitemail.clock import ManualClock
from sitemail.org.pki import (
    ADMIN_OU,
    LEAF_VALIDITY,
    SERVER_OU,
    AdminIdentity,
    ClientCertMode,
    IssueResult,
    OrganizationPki,
    PeerIdentity,
    PeerVerifier,
    PkiError,
    ServerCertSpec,
    ServerIdentity,
    anonymous_tls_client_context,
    client_ssl_context,
    ensure_organization_pki,
    server_ssl_context,
)

START = datetime(2026, 3, 1, tzinfo=UTC)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def dns_names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def ip_names(cert: x509.Certificate) -> list[object]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(san.get_values_for_type(x509.IPAddress))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def pki(tmp_path: Path, clock: ManualClock) -> OrganizationPki:
    return OrganizationPki.open_or_create(tmp_path / "pki", "Contoso", clock=clock)


def issue_ex01(pki: OrganizationPki) -> IssueResult:
    return pki.ensure_server(
        "EX01",
        "EX01.contoso.test",
        addresses=["127.1.0.1"],
        urls=["https://mail.contoso.com/owa", None, "https://127.1.0.9/ecp"],
    )


# --- the CA -----------------------------------------------------------------


def test_ca_is_created_with_org_name_ten_years_and_private_key(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    folder = tmp_path / "pki"
    ca = load(folder / "ca.pem")
    assert pki.ca_created
    assert ca.subject.rfc4514_string() == "CN=Contoso Organization CA,O=Contoso"
    assert ca.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert timedelta(days=3650) <= ca.not_valid_after_utc - START <= timedelta(days=3660)
    assert ca.not_valid_before_utc <= START
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert stat.S_IMODE((folder / "ca.key").stat().st_mode) == 0o600
    ca.verify_directly_issued_by(ca)


def test_reopening_keeps_the_ca(pki: OrganizationPki, tmp_path: Path) -> None:
    before = (tmp_path / "pki" / "ca.pem").read_bytes()
    again = OrganizationPki.open_or_create(tmp_path / "pki", "Contoso")
    assert not again.ca_created
    assert (tmp_path / "pki" / "ca.pem").read_bytes() == before
    assert again.ca_certificate == pki.ca_certificate


def test_folder_of_another_organization_is_refused(pki: OrganizationPki, tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="'Contoso', not 'Fabrikam'"):
        OrganizationPki.open_or_create(tmp_path / "pki", "Fabrikam")


# --- server certificates ----------------------------------------------------


def test_server_certificate_names_usages_and_marker(pki: OrganizationPki) -> None:
    files = issue_ex01(pki).files
    assert files.cert.name == "EX01.pem" and files.key.name == "EX01.key"
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    cert = load(files.cert)
    cert.verify_directly_issued_by(pki.ca_certificate)

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "EX01.contoso.test"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        SERVER_OU
    )
    assert set(dns_names(cert)) == {
        "EX01.contoso.test",
        "ex01.contoso.test",
        "EX01",
        "ex01",
        "mail.contoso.com",
    }
    # FQDN first: tools that show one name show the right one.
    assert dns_names(cert)[0] == "EX01.contoso.test"
    assert set(ip_names(cert)) == {
        ipaddress.ip_address("127.1.0.1"),
        ipaddress.ip_address("127.1.0.9"),
    }
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The leaf must not outlive five years nor start after "now".
    assert cert.not_valid_after_utc - START <= LEAF_VALIDITY
    assert cert.not_valid_before_utc <= START
    assert pki.verifier().identify(cert) == ServerIdentity("EX01")


def test_second_run_keeps_everything(pki: OrganizationPki, tmp_path: Path) -> None:
    files = issue_ex01(pki).files
    before = (files.cert.read_bytes(), files.key.read_bytes())
    again = OrganizationPki.open_or_create(tmp_path / "pki", "Contoso", clock=ManualClock(START))
    result = again.ensure_server(
        "EX01", "EX01.contoso.test", addresses=["127.1.0.1"], urls=["https://127.1.0.9/ecp"]
    )
    assert result.action == "kept"
    assert (files.cert.read_bytes(), files.key.read_bytes()) == before


def test_new_address_or_url_host_reissues_only_that_server(pki: OrganizationPki) -> None:
    ex01 = issue_ex01(pki).files
    ex02 = pki.ensure_server("EX02", "ex02.contoso.test", addresses=["127.1.0.2"]).files
    ex02_before = ex02.cert.read_bytes()
    ca_before = pki.ca_file.read_bytes()

    result = pki.ensure_server(
        "EX01",
        "EX01.contoso.test",
        addresses=["127.1.0.1", "127.1.0.3"],
        urls=["https://owa.contoso.com/owa"],
    )
    assert result.action == "reissued"
    assert "127.1.0.3" in result.reason and "owa.contoso.com" in result.reason
    cert = load(ex01.cert)
    assert ipaddress.ip_address("127.1.0.3") in ip_names(cert)
    assert "owa.contoso.com" in dns_names(cert)
    assert ex02.cert.read_bytes() == ex02_before
    assert pki.ca_file.read_bytes() == ca_before
    assert pki.ensure_server("EX02", "ex02.contoso.test", addresses=["127.1.0.2"]).action == "kept"


def test_missing_or_mismatched_key_reissues(pki: OrganizationPki) -> None:
    files = issue_ex01(pki).files
    files.key.unlink()
    assert issue_ex01(pki).action == "reissued"
    # A key from elsewhere (say a run killed between the two writes).
    other = ec.generate_private_key(ec.SECP256R1())
    files.key.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    result = issue_ex01(pki)
    assert result.action == "reissued" and "does not match" in result.reason
    assert issue_ex01(pki).action == "kept"


def test_certificate_near_its_end_is_reissued(pki: OrganizationPki, clock: ManualClock) -> None:
    issue_ex01(pki)
    clock.advance(LEAF_VALIDITY - timedelta(days=10))
    result = issue_ex01(pki)
    assert result.action == "reissued" and "expires" in result.reason
    assert load(result.files.cert).not_valid_after_utc > clock.now() + timedelta(days=365)


def test_certificates_of_a_replaced_ca_are_reissued(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    spec = ServerCertSpec("EX01", "ex01.contoso.test", addresses=["127.1.0.1"])
    first = ensure_organization_pki(folder, "Contoso", [spec])
    assert {r.action for r in first.values()} == {"issued"}
    (folder / "ca.pem").unlink()
    second = ensure_organization_pki(folder, "Contoso", [spec])
    assert second["EX01"].action == "reissued"
    assert second["admin"].action == "reissued"
    assert "current organization CA" in second["EX01"].reason


def test_missing_ca_key_blocks_issuing_but_not_keeping(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    issue_ex01(pki)
    (tmp_path / "pki" / "ca.key").unlink()
    again = OrganizationPki.open_or_create(tmp_path / "pki", "Contoso", clock=ManualClock(START))
    assert issue_ex01(again).action == "kept"
    with pytest.raises(PkiError, match=r"ca\.key is missing"):
        again.ensure_server("EX02", "ex02.contoso.test")


@pytest.mark.parametrize(
    ("name", "fqdn", "addresses", "urls", "message"),
    [
        ("../EX01", "ex01.contoso.test", [], [], "not valid"),
        ("ca", "ca.contoso.test", [], [], "reserved"),
        ("Admin", "admin.contoso.test", [], [], "reserved"),
        ("EX01", "ex01..contoso.test", [], [], "not a valid host name"),
        ("EX01", "ex01.contoso.test", ["ex01"], [], "not an IP address"),
        ("EX01", "ex01.contoso.test", [], ["/owa"], "no host name"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    pki: OrganizationPki,
    name: str,
    fqdn: str,
    addresses: list[str],
    urls: list[str],
    message: str,
) -> None:
    with pytest.raises(PkiError, match=message):
        pki.ensure_server(name, fqdn, addresses=addresses, urls=urls)
    assert not list(pki.folder.glob("*EX01*"))


# --- admin and identity -----------------------------------------------------


def test_admin_certificate_is_client_only_and_identified(pki: OrganizationPki) -> None:
    result = pki.ensure_admin()
    assert result.action == "issued"
    assert (result.files.cert.name, result.files.key.name) == ("admin.pem", "admin.key")
    assert stat.S_IMODE(result.files.key.stat().st_mode) == 0o600
    cert = load(result.files.cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        ADMIN_OU
    )
    assert pki.verifier().identify(cert) == AdminIdentity()
    assert pki.ensure_admin().action == "kept"


def test_identify_refuses_what_is_not_an_org_server_or_admin(
    pki: OrganizationPki, tmp_path: Path, clock: ManualClock
) -> None:
    verifier = PeerVerifier.from_file(pki.ca_file, clock=clock)
    ours = load(issue_ex01(pki).files.cert)
    assert verifier.identify(ours.public_bytes(serialization.Encoding.DER)) == ServerIdentity(
        "EX01"
    )
    assert verifier.identify(None) is None
    assert verifier.identify(b"not a certificate") is None
    assert verifier.identify(pki.ca_certificate) is None

    # Same organization name and server name, but another CA: a stranger.
    stranger = OrganizationPki.open_or_create(tmp_path / "other", "Contoso", clock=clock)
    assert verifier.identify(load(issue_ex01(stranger).files.cert)) is None

    # Issued by our CA but without the role marker: a user, not a server.
    ca_key = serialization.load_pem_private_key((pki.folder / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    user_key = ec.generate_private_key(ec.SECP256R1())
    user = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, SERVER_OU),
                    x509.NameAttribute(NameOID.COMMON_NAME, "EX01.contoso.test"),
                ]
            )
        )
        .issuer_name(pki.ca_certificate.subject)
        .public_key(user_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START - timedelta(days=1))
        .not_valid_after(START + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    assert verifier.identify(user) is None

    # Past its end, our own server certificate no longer names anyone.
    clock.advance(LEAF_VALIDITY + timedelta(days=1))
    assert verifier.identify(ours) is None


def test_rsa_keys_are_available_and_get_key_encipherment(tmp_path: Path) -> None:
    pki = OrganizationPki.open_or_create(tmp_path / "pki", "Contoso", key_algorithm="rsa-2048")
    cert = load(pki.ensure_server("EX01", "ex01.contoso.test").files.cert)
    assert isinstance(pki.ca_certificate.public_key(), rsa.RSAPublicKey)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert pki.verifier().identify(cert) == ServerIdentity("EX01")


# --- real TLS on loopback ---------------------------------------------------


class OneShotServer:
    """Accepts one TLS connection on 127.0.0.1 and records who the client was."""

    def __init__(self, ctx: ssl.SSLContext, verifier: PeerVerifier) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(5)
        self.port: int = self.listener.getsockname()[1]
        self.ctx = ctx
        self.verifier = verifier
        self.identity: PeerIdentity | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.identity = self.verifier.identify_ssl(tls)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            self.error = exc
            conn.close()

    def close(self) -> None:
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def org(tmp_path: Path) -> Iterator[OrganizationPki]:
    pki = OrganizationPki.open_or_create(tmp_path / "pki", "Contoso")
    issue_ex01(pki)
    pki.ensure_server("EX02", "ex02.contoso.test", addresses=["127.1.0.2"])
    pki.ensure_admin()
    yield pki


def connect(port: int, ctx: ssl.SSLContext, hostname: str | None) -> tuple[bytes, ssl.SSLSocket]:
    """Handshake with the one-shot server and read its greeting."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=hostname)
        return tls.recv(2), tls
    except BaseException:
        raw.close()
        raise


def serve(org: OrganizationPki, mode: ClientCertMode = "optional") -> OneShotServer:
    ctx = server_ssl_context(
        org.server_files("EX01"),
        ca_file=org.ca_file,
        client_certs=mode,
    )
    return OneShotServer(ctx, org.verifier())


def test_anonymous_tls_between_two_servers_identifies_both(org: OrganizationPki) -> None:
    server = serve(org)
    ctx = anonymous_tls_client_context(org.server_files("EX02"))
    # No name check: the sender may connect by any address, as X-ANONYMOUSTLS does.
    data, tls = connect(server.port, ctx, None)
    with tls:
        assert data == b"ok"
        assert org.verifier().identify_ssl(tls) == ServerIdentity("EX01")
    server.close()
    assert server.error is None
    assert server.identity == ServerIdentity("EX02")


def test_admin_over_verified_tls_by_name_and_by_address(org: OrganizationPki) -> None:
    for hostname in ("ex01.contoso.test", "EX01", "mail.contoso.com", "127.1.0.1"):
        server = serve(org)
        ctx = client_ssl_context(org.ca_file, files=org.admin_files())
        data, tls = connect(server.port, ctx, hostname)
        tls.close()
        server.close()
        assert data == b"ok"
        assert server.identity == AdminIdentity()


def test_client_without_certificate_is_anonymous(org: OrganizationPki) -> None:
    server = serve(org)
    data, tls = connect(server.port, client_ssl_context(org.ca_file), "ex01.contoso.test")
    tls.close()
    server.close()
    assert data == b"ok"
    assert server.error is None and server.identity is None


def test_client_certificate_of_another_ca_fails_the_handshake(
    org: OrganizationPki, tmp_path: Path
) -> None:
    stranger = OrganizationPki.open_or_create(tmp_path / "other", "Contoso")
    files = stranger.ensure_server("EX02", "ex02.contoso.test").files
    server = serve(org)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        # TLS 1.3: the client learns of the refusal at its first read.
        connect(server.port, anonymous_tls_client_context(files), None)
    server.close()
    assert isinstance(server.error, ssl.SSLError)
    assert server.identity is None


def test_required_client_certificate_is_enforced(org: OrganizationPki) -> None:
    server = serve(org, "required")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connect(server.port, anonymous_tls_client_context(), None)
    server.close()
    assert isinstance(server.error, ssl.SSLError)


def test_verified_client_refuses_a_foreign_server_and_a_wrong_name(
    org: OrganizationPki, tmp_path: Path
) -> None:
    stranger = OrganizationPki.open_or_create(tmp_path / "other", "Contoso")
    stranger.ensure_server("EX01", "ex01.contoso.test")
    foreign = OneShotServer(server_ssl_context(stranger.server_files("EX01")), stranger.verifier())
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        connect(foreign.port, client_ssl_context(org.ca_file), "ex01.contoso.test")
    foreign.close()

    server = serve(org)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        connect(server.port, client_ssl_context(org.ca_file), "ex02.contoso.test")
    server.close()


def test_client_certificate_mode_needs_a_ca(org: OrganizationPki) -> None:
    with pytest.raises(PkiError, match="needs ca_file"):
        server_ssl_context(org.server_files("EX01"), client_certs="required")


def test_a_web_front_certificate_names_no_server(tmp_path: Path) -> None:
    """The console's certificate serves browsers; no server takes its holder for a peer."""
    pki = OrganizationPki.open_or_create(tmp_path, "Contoso")
    issued = pki.ensure_web("console", "console.contoso.com", addresses=["127.0.0.1"])
    assert issued.action == "issued"
    cert = x509.load_pem_x509_certificate(issued.files.cert.read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert pki.verifier().identify(cert) is None
    assert pki.ensure_web("console", "console.contoso.com", addresses=["127.0.0.1"]).action == (
        "kept"
    )


def _count_path_validations(monkeypatch: pytest.MonkeyPatch) -> list[x509.Certificate]:
    """The certificates PeerVerifier validated with cryptography from now on."""
    checked: list[x509.Certificate] = []
    real = PeerVerifier._identify

    def counted(self: PeerVerifier, cert: x509.Certificate) -> PeerIdentity | None:
        checked.append(cert)
        return real(self, cert)

    monkeypatch.setattr(PeerVerifier, "_identify", counted)
    return checked


def test_a_client_certificate_verified_in_the_handshake_names_its_server_or_admin(
    org: OrganizationPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = _count_path_validations(monkeypatch)
    for files, expected in (
        (org.server_files("EX02"), ServerIdentity("EX02")),
        (org.admin_files(), AdminIdentity()),
    ):
        server = serve(org)
        data, tls = connect(server.port, client_ssl_context(org.ca_file, files=files), "EX01")
        tls.close()
        server.close()
        assert data == b"ok" and server.error is None
        assert server.identity == expected
    # OpenSSL validated the chain against the organization CA alone in the handshake:
    # the role was read from what the ssl module decoded, cryptography was not needed.
    assert checked == []


def test_a_server_that_trusts_another_ca_too_validates_the_path_itself(
    org: OrganizationPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = OrganizationPki.open_or_create(tmp_path / "other", "Contoso")
    foreign = stranger.ensure_server("EX02", "ex02.contoso.test").files
    ctx = server_ssl_context(org.server_files("EX01"), ca_file=org.ca_file, client_certs="optional")
    ctx.load_verify_locations(stranger.ca_file)  # the handshake now passes either CA
    checked = _count_path_validations(monkeypatch)
    for files, expected in (
        (foreign, None),  # same names, another CA: a stranger, whatever OpenSSL accepted
        (org.server_files("EX02"), ServerIdentity("EX02")),
    ):
        server = OneShotServer(ctx, org.verifier())
        data, tls = connect(server.port, anonymous_tls_client_context(files), None)
        tls.close()
        server.close()
        assert data == b"ok" and server.error is None
        assert server.identity == expected
    assert len(checked) == 2
