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

What a certificate *is* (server of the organization or organization admin)
is carried twice: as a readable subject OU (``Exchange Servers``, the name of
the Active Directory group Exchange servers belong to, or ``Organization
Management``, the Exchange admin role group), and as a role URI among the
subject alternative names (``urn:x-sitemail:server:EX-NY1``, :data:`ROLE_URI_PREFIX`)
holding the role and the server name.  Only the URI decides: it cannot be
confused with a user's certificate whose subject happens to carry the same OU.

Modules: :mod:`.authority` (the CA, :class:`OrganizationPki`, issuing and
reissuing), :mod:`.identity` (:class:`PeerVerifier`: who a peer is),
:mod:`.contexts` (TLS contexts), :mod:`.files` (the folder's files).  Import
from the package: the names below are its public face.  The authority's names are
loaded when first asked for (:func:`__getattr__`): it needs ``cryptography``, which
a server process that only serves with its certificate files never loads.
"""

from typing import TYPE_CHECKING, Any

from sitemail.org.pki.contexts import (
    ClientCertMode,
    anonymous_tls_client_context,
    client_ssl_context,
    server_ssl_context,
)
from sitemail.org.pki.files import (
    CertFiles,
    PkiError,
    admin_cert_files,
    ca_cert_file,
    server_cert_files,
    write_chain_file,
)
from sitemail.org.pki.identity import (
    ROLE_URI_PREFIX,
    AdminIdentity,
    PeerIdentity,
    PeerVerifier,
    ServerIdentity,
)

if TYPE_CHECKING:
    from sitemail.org.pki.authority import (
        ADMIN_OU,
        CA_VALIDITY,
        LEAF_VALIDITY,
        RENEW_BEFORE,
        SERVER_OU,
        IssueResult,
        KeyAlgorithm,
        OrganizationPki,
        ServerCertSpec,
        ensure_organization_pki,
    )

_AUTHORITY = frozenset(
    {
        "ADMIN_OU",
        "CA_VALIDITY",
        "LEAF_VALIDITY",
        "RENEW_BEFORE",
        "SERVER_OU",
        "IssueResult",
        "KeyAlgorithm",
        "OrganizationPki",
        "ServerCertSpec",
        "ensure_organization_pki",
    }
)


def __getattr__(name: str) -> Any:
    if name in _AUTHORITY:
        from sitemail.org.pki import authority

        return getattr(authority, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ADMIN_OU",
    "CA_VALIDITY",
    "LEAF_VALIDITY",
    "RENEW_BEFORE",
    "ROLE_URI_PREFIX",
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
    "write_chain_file",
]
