"""Where the PKI's files are, and reading and writing them safely.

One folder (``<lab>/pki``) holds ``ca.pem``/``ca.key``, one
``<SERVER>.pem``/``<SERVER>.key`` per server and ``admin.pem``/``admin.key``.
Keys are unencrypted PKCS#8 PEM files with mode 0600 (servers start
unattended; the lab folder is the secret), written through a temporary file
so that a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

# cryptography (about 9 MB of a process's memory) is loaded by the functions that
# parse or write certificates and keys, not by this module: a server process that
# only needs the files' paths for its TLS contexts (a hub's Internet-facing receive
# connector, its receive workers) never loads it.
if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

_RESERVED_FILE_NAMES = frozenset({"ca", "admin"})
# NetBIOS-style server names (what Exchange accepts), which also keeps them
# safe to use as file names.
_SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

PrivateKey: TypeAlias = "ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey"


class PkiError(Exception):
    """A problem with the PKI folder or a request, in one line a user can act on."""


@dataclass(frozen=True)
class CertFiles:
    """Where one certificate and its private key live."""

    cert: Path
    key: Path


# --- file layout ------------------------------------------------------------


def ca_cert_file(folder: Path) -> Path:
    return Path(folder) / "ca.pem"


def server_cert_files(folder: Path, server: str) -> CertFiles:
    check_server_name(server)
    return CertFiles(Path(folder) / f"{server}.pem", Path(folder) / f"{server}.key")


def write_chain_file(folder: Path, server: str, chain: Path) -> CertFiles:
    """Write ``server``'s certificate followed by the CA's to ``chain`` (atomically), for a
    TLS server whose clients are told to trust the organization CA by its key (a browser
    started with ``--ignore-certificate-errors-spki-list``): they can match it only when the
    server sends it.  The files to load, the chain with the server's key."""
    files = server_cert_files(folder, server)
    chain.parent.mkdir(parents=True, exist_ok=True)
    # Per process: the W3SVC's worker processes may write the same chain at once.
    tmp = chain.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(files.cert.read_bytes() + ca_cert_file(folder).read_bytes())
    tmp.replace(chain)
    return CertFiles(chain, files.key)


def admin_cert_files(folder: Path) -> CertFiles:
    return CertFiles(Path(folder) / "admin.pem", Path(folder) / "admin.key")


def check_server_name(server: str) -> None:
    if not _SERVER_NAME.match(server):
        raise PkiError(
            f"server name {server!r} is not valid: expected 1-63 letters, digits or hyphens"
        )
    if server.lower() in _RESERVED_FILE_NAMES:
        raise PkiError(
            f"server name {server!r} is reserved in the PKI folder: choose another server name"
        )


def key_pem(key: PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_cert(path: Path) -> x509.Certificate:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read certificate {path}: {exc}") from None


def load_key(path: Path) -> PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"cannot read private key {path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"private key {path} is neither ECDSA nor RSA")
    return key


def write_private(path: Path, data: bytes) -> None:
    _write_atomic(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
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
