"""Passwords in the ASA's configuration: stored as the ASA 9.x stores them, never in clear.

``username NAME password SECRET`` and ``enable password SECRET`` typed in
configuration mode are kept as PBKDF2-SHA512 hashes, written the way a 9.x
box writes them: ``$sha512$5000$SALT$HASH pbkdf2`` (salt and hash in base64).
A saved configuration read back keeps the hash; typing a line that ends in
``pbkdf2`` gives a hash, as pasting a saved configuration does on the box.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["HASH_KEYWORD", "hash_password", "is_hashed", "verify_password"]

#: The word after a stored hash in the configuration.
HASH_KEYWORD = "pbkdf2"
_ITERATIONS = 5000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(secret: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode("utf-8"), salt, _ITERATIONS, dklen=16)
    return f"$sha512${_ITERATIONS}${_b64(salt)}${_b64(digest)}"


def is_hashed(text: str) -> bool:
    parts = text.split("$")
    return len(parts) == 5 and parts[0] == "" and parts[1] == "sha512" and parts[2].isdigit()


def verify_password(secret: str, stored: str) -> bool:
    if not is_hashed(stored):
        return False
    _, _, iterations, salt, digest = stored.split("$")
    try:
        want = base64.b64decode(digest, validate=True)
        got = hashlib.pbkdf2_hmac(
            "sha512", secret.encode("utf-8"), base64.b64decode(salt), int(iterations), len(want)
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, want)
