"""The TLS rows of the SmtpSend log, in the words of Exchange (Schannel), from OpenSSL's view."""

from __future__ import annotations

import hashlib

_SCHANNEL_PROTOCOLS = {
    "TLSv1": "SP_PROT_TLS1_0_CLIENT",
    "TLSv1.1": "SP_PROT_TLS1_1_CLIENT",
    "TLSv1.2": "SP_PROT_TLS1_2_CLIENT",
    "TLSv1.3": "SP_PROT_TLS1_3_CLIENT",
}


def tls_negotiated_text(version: str | None, cipher: tuple[str, str, int] | None) -> str:
    """The ``TLS protocol ... negotiation succeeded ...`` row of spec 4.4, from OpenSSL's view.

    Exchange writes Schannel's names (``SP_PROT_TLS1_0_CLIENT``, ``CALG_AES_256``);
    OpenSSL's cipher name is mapped onto them.  The key exchange strength is not
    reported by Python's ssl module: ECDHE is written with 256 bits (P-256 and
    X25519, what the organization's ECDSA certificates negotiate).
    """
    protocol = _SCHANNEL_PROTOCOLS.get(version or "", version or "unknown")
    if cipher is None:
        return f"TLS protocol {protocol} negotiation succeeded"
    name, _, bits = cipher
    upper = name.upper().replace("_", "-")
    if "AES256" in upper or "AES-256" in upper:
        bulk = "CALG_AES_256"
    elif "AES128" in upper or "AES-128" in upper:
        bulk = "CALG_AES_128"
    elif "CHACHA20" in upper:
        bulk = "CHACHA20_POLY1305"  # no CALG_ name exists for it
    else:
        bulk = name
    if upper.endswith("SHA384"):
        mac, mac_bits = "CALG_SHA_384", 384
    elif upper.endswith("SHA256") or "POLY1305" in upper:
        mac, mac_bits = "CALG_SHA_256", 256
    elif upper.endswith("SHA"):
        mac, mac_bits = "CALG_SHA1", 160
    else:
        mac, mac_bits = "unknown", 0
    if version == "TLSv1.3" or upper.startswith("ECDHE"):
        kx, kx_bits = "CALG_ECDHE", 256
    elif upper.startswith("DHE"):
        kx, kx_bits = "CALG_DH_EPHEM", bits
    else:
        kx, kx_bits = "CALG_RSA_KEYX", bits
    return (
        f"TLS protocol {protocol} negotiation succeeded using bulk encryption algorithm {bulk} "
        f"with strength {bits} bits, MAC hash algorithm {mac} with strength {mac_bits} bits "
        f"and key exchange algorithm {kx} with strength {kx_bits} bits"
    )


def certificate_thumbprint(der: bytes) -> str:
    """A certificate's thumbprint as Windows shows it: SHA-1, upper-case hex."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
