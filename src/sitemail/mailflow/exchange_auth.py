"""Exchange Server authentication (``X-EXPS EXCHANGEAUTH``) with the organization's PKI.

Exchange proves "I am an Exchange server of this organization" with a
Kerberos ticket for ``SMTPSVC/<receiver fqdn>`` bound to the anonymous TLS
session (spec 3.1).  sitemail keeps the wire shape and stands the
organization's certificates in for Kerberos: the sender presents its server
certificate in the X-ANONYMOUSTLS handshake (the TLS layer proves it holds
the key), and the blob names the sender and the service it wants, which the
receiver checks against that certificate.  The mutual blob of the ``235``
reply names the receiver the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from sitemail.org.pki import PeerIdentity, ServerIdentity

HASH_ALGORITHM = "SHA256"
_VERSION = 1


@dataclass(frozen=True)
class AuthOutcome:
    server: str | None  # the authenticated server's name, or None
    reason: str  # for the log and the event text when it fails


def spn(fqdn: str) -> str:
    return f"SMTPSVC/{fqdn.lower()}"


def make_blob(sender: str, receiver_fqdn: str) -> str:
    payload = {"v": _VERSION, "server": sender, "spn": spn(receiver_fqdn)}
    return base64.b64encode(json.dumps(payload, sort_keys=True).encode()).decode("ascii")


def make_mutual_blob(receiver: str) -> str:
    payload = {"v": _VERSION, "server": receiver, "mutual": True}
    return base64.b64encode(json.dumps(payload, sort_keys=True).encode()).decode("ascii")


def _decode(blob: str | None) -> dict[str, object] | None:
    if not blob:
        return None
    try:
        data = json.loads(base64.b64decode(blob, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def check_blob(blob: str | None, peer: PeerIdentity | None, my_fqdn: str) -> AuthOutcome:
    """Does this X-EXPS EXCHANGEAUTH blob, on this TLS session, prove a server of ours?"""
    if not isinstance(peer, ServerIdentity):
        return AuthOutcome(None, "LogonDenied: the TLS peer presented no server certificate")
    data = _decode(blob)
    if data is None:
        return AuthOutcome(None, "IllegalMessage: the authentication blob is not readable")
    if data.get("spn") != spn(my_fqdn):
        return AuthOutcome(
            None, f"IllegalMessage: the ticket is for {data.get('spn')!r}, not {spn(my_fqdn)!r}"
        )
    if str(data.get("server", "")).lower() != peer.name.lower():
        return AuthOutcome(None, "LogonDenied: the blob names another server than the certificate")
    return AuthOutcome(peer.name, "")


def check_mutual_blob(blob: str, expected_server: str | None) -> bool:
    data = _decode(blob)
    if data is None or data.get("mutual") is not True:
        return False
    return expected_server is None or str(data.get("server", "")).lower() == expected_server.lower()
