"""The banner and the EHLO/HELO reply of an Exchange 2010 receive connector (spec 2.1-2.3)."""

from __future__ import annotations

import functools
from datetime import datetime

from sitemail.org.model import AuthMechanism, ReceiveConnector, SizeEnabled

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@functools.lru_cache(maxsize=4)
def _banner_date(when: datetime) -> str:
    offset = when.strftime("%z") or "+0000"
    return (
        f"{_DAYS[when.weekday()]}, {when.day} {_MONTHS[when.month - 1]} {when.year} "
        f"{when:%H:%M:%S} {offset}"
    )


def banner_date(when: datetime) -> str:
    """``ddd, d MMM yyyy HH:mm:ss zzzz``: no leading zero on the day, offset without colon."""
    # Every session of a second shows the same text: format it once.
    return _banner_date(when.replace(microsecond=0))


def banner(connector: ReceiveConnector, fqdn: str, when: datetime) -> str:
    """The 220 greeting line (without CRLF).  A custom Banner replaces the whole line."""
    if connector.banner:
        return connector.banner
    return f"220 {fqdn} Microsoft ESMTP MAIL Service ready at {banner_date(when)}"


def hello_text(fqdn: str, client_ip: str) -> str:
    """First line of the EHLO reply, the whole HELO reply: ``<fqdn> Hello [<ip>]``."""
    return f"{fqdn} Hello [{client_ip}]"


def ehlo_keywords(
    connector: ReceiveConnector,
    *,
    secure: bool,
    anonymous_tls: bool,
    certificate: bool = True,
    hub: bool = True,
    xexch50_enabled: bool = True,
    xshadow_without_exchange_auth: bool = False,
    shadow_redundancy: bool = True,
) -> list[str]:
    """The service extensions after the greeting line, in Exchange 2010's fixed order.

    ``secure``: TLS is up (STARTTLS or X-ANONYMOUSTLS); ``anonymous_tls``: it came
    from X-ANONYMOUSTLS, which is what makes EXCHANGEAUTH appear.
    ``xshadow_without_exchange_auth`` is a setting because whether the Client
    connector offers XSHADOW is unverified (spec 2.3 (e)); observed Default
    connectors (with ExchangeServer auth) do.  ``shadow_redundancy`` is the
    organization's ShadowRedundancyEnabled: off, a hub does not offer XSHADOW.
    """
    auth = set(connector.auth_mechanism)
    exchange_auth = AuthMechanism.EXCHANGE_SERVER in auth
    out: list[str] = []
    if connector.size_enabled is SizeEnabled.ENABLED:
        out.append(f"SIZE {connector.max_message_size}")
    elif connector.size_enabled is SizeEnabled.ENABLED_WITHOUT_VALUE:
        out.append("SIZE")
    if connector.pipelining_enabled:
        out.append("PIPELINING")
    if connector.delivery_status_notification_enabled:
        out.append("DSN")
    if connector.enhanced_status_codes_enabled:
        out.append("ENHANCEDSTATUSCODES")
    if AuthMechanism.TLS in auth and not secure and certificate:
        out.append("STARTTLS")
    if exchange_auth and not secure and not connector.suppress_x_anonymous_tls and certificate:
        out.append("X-ANONYMOUSTLS")
    mechs: list[str] = []
    if AuthMechanism.INTEGRATED in auth:
        if connector.enable_auth_gssapi:
            mechs.append("GSSAPI")
        mechs.append("NTLM")
    if AuthMechanism.BASIC_AUTH in auth and (
        AuthMechanism.BASIC_AUTH_REQUIRE_TLS not in auth or secure
    ):
        mechs.append("LOGIN")
    if mechs:
        out.append("AUTH " + " ".join(mechs))
    if exchange_auth:
        exps = ["EXCHANGEAUTH"] if anonymous_tls else []
        if hub:
            exps.append("GSSAPI")
        exps.append("NTLM")
        out.append("X-EXPS " + " ".join(exps))
        if anonymous_tls:
            out.append("X-EXCHANGEAUTH SHA256")
    if connector.eight_bit_mime_enabled:
        out.append("8BITMIME")
    if connector.binary_mime_enabled and connector.chunking_enabled:
        out.append("BINARYMIME")
    if connector.chunking_enabled:
        out.append("CHUNKING")
    if xexch50_enabled and (exchange_auth or AuthMechanism.EXTERNAL_AUTHORITATIVE in auth):
        out.append("XEXCH50")
    if connector.long_addresses_enabled:
        out.append("XLONGADDR")
    if connector.orar_enabled:
        out.append("XORAR")
    if hub and exchange_auth:
        out.append("XRDST")
    if shadow_redundancy and (exchange_auth or xshadow_without_exchange_auth):
        out.append("XSHADOW")
    return out
