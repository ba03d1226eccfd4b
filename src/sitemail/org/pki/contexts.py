"""TLS contexts for the organization's servers, clients and ``X-ANONYMOUSTLS``."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from sitemail.org.pki.files import CertFiles, PkiError

ClientCertMode = Literal["none", "optional", "required"]


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
