"""What an Exchange transport server says: banner, EHLO keywords, rights, reply texts.

Written from the spec (exchange-2010.md sections 1.4, 1.5, 2, 3, 4), not from
sitemail: it is the oracle the troubleshooter is tested against.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.corpus.org import ConnCfg, Hub

FIELDS = (
    "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,"
    "event,data,context"
)
RECEIVE_TYPE = "SMTP Receive Protocol Log"
SEND_TYPE = "SMTP Send Protocol Log"
TRACKING_TYPE = "Message Tracking Log"
TRACKING_FIELDS_2010 = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,"
    "connector-id,source,event-id,internal-message-id,message-id,recipient-address,"
    "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
    "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
    "original-client-ip,original-server-ip,custom-data"
)
TRACKING_FIELDS_2007 = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,"
    "connector-id,source,event-id,internal-message-id,message-id,recipient-address,"
    "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
    "message-subject,sender-address,return-path,message-info"
)
TRACKING_FIELDS_2013 = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,"
    "connector-id,source,event-id,internal-message-id,message-id,network-message-id,"
    "recipient-address,recipient-status,total-bytes,recipient-count,"
    "related-recipient-address,reference,message-subject,sender-address,return-path,"
    "message-info,directionality,tenant-id,original-client-ip,original-server-ip,"
    "custom-data,transport-traffic-type,log-id,schema-version"
)

INTRA_ORG = "Intra-Organization SMTP Send Connector"

# Replies (spec 2.4, 1.5, 3.3).
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
START_MAIL = "354 Start mail input; end with <CRLF>.<CRLF>"
CLOSING = "221 2.0.0 Service closing transmission channel"
TLS_READY = "220 2.0.0 SMTP server ready"
AUTH_OK = "235 <authentication information>"
AUTH_USER_OK = "235 2.7.0 Authentication successful"
AUTH_BAD = "535 5.7.3 Authentication unsuccessful"
UNRECOGNIZED = "500 5.3.3 Unrecognized command"
USER_UNKNOWN = "550 5.1.1 User unknown"
UNABLE_TO_RELAY = "550 5.7.1 Unable to relay"
NOT_AUTHENTICATED = "530 5.7.1 Client was not authenticated"
TOO_MANY = (
    "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, "
    "closing transmission channel"
)
TIMEOUT = "451 4.7.0 Timeout waiting for client input"
RESETTING = "250 2.0.0 Resetting"
CANNOT_ACHIEVE = "451 5.7.3 Cannot achieve Exchange Server authentication"
CANNOT_LOAD = (
    "451 5.7.3 Cannot load Internal Transport Certificate. Exchange Server authentication failed."
)
TEMP_AUTH = "454 4.7.0 Temporary authentication failure"
EXPIRED = "550 4.4.7 QUEUE.Expired; message expired"

_RIGHTS_ORDER = (
    "SMTPSubmit",
    "SMTPAcceptAnyRecipient",
    "SMTPAcceptAuthenticationFlag",
    "SMTPAcceptAnySender",
    "SMTPAcceptAuthoritativeDomainSender",
    "BypassAntiSpam",
    "BypassMessageSizeLimit",
    "SMTPSendEXCH50",
    "SMTPAcceptEXCH50",
    "AcceptRoutingHeaders",
    "AcceptForestHeaders",
    "AcceptOrganizationHeaders",
    "SendRoutingHeaders",
    "SendForestHeaders",
    "SendOrganizationHeaders",
    "SendAs",
    "SMTPSendXShadow",
    "SendXShadow",
    "SMTPAcceptXShadow",
    "SMTPAcceptXProxyFrom",
    "SMTPAcceptXSessionParams",
    "SMTPAcceptXMessageContextADRecipientCache",
    "SMTPAcceptXMessageContextExtendedProperties",
    "SMTPAcceptXMessageContextFastIndex",
    "SMTPAcceptXAttr",
    "SMTPAcceptXSysProbe",
)
ANONYMOUS = frozenset(
    {
        "SMTPSubmit",
        "SMTPAcceptAnySender",
        "SMTPAcceptAuthoritativeDomainSender",
        "AcceptRoutingHeaders",
    }
)
USERS = frozenset(
    {"SMTPSubmit", "SMTPAcceptAnyRecipient", "BypassAntiSpam", "AcceptRoutingHeaders"}
)
EXTERNALLY_SECURED = frozenset(
    {
        "SMTPSubmit",
        "SMTPAcceptAnyRecipient",
        "SMTPAcceptAuthenticationFlag",
        "SMTPAcceptAnySender",
        "SMTPAcceptAuthoritativeDomainSender",
        "BypassAntiSpam",
        "BypassMessageSizeLimit",
        "SMTPAcceptEXCH50",
        "AcceptRoutingHeaders",
    }
)
_SERVERS_2007 = EXTERNALLY_SECURED | {
    "SMTPSendEXCH50",
    "AcceptForestHeaders",
    "AcceptOrganizationHeaders",
    "SendRoutingHeaders",
    "SendForestHeaders",
    "SendOrganizationHeaders",
    "SendAs",
}
_MODERN_EXTRA = frozenset(
    {
        "SMTPAcceptXProxyFrom",
        "SMTPAcceptXSessionParams",
        "SMTPAcceptXMessageContextADRecipientCache",
        "SMTPAcceptXMessageContextExtendedProperties",
        "SMTPAcceptXMessageContextFastIndex",
        "SMTPAcceptXAttr",
        "SMTPAcceptXSysProbe",
    }
)


def rights_text(rights: frozenset[str] | set[str]) -> str:
    if not rights:
        return "None"
    return " ".join(r for r in _RIGHTS_ORDER if r in rights)


def server_rights(release: str, xshadow: str = "SMTPSendXShadow") -> frozenset[str]:
    """What an authenticated Exchange server gets on a connector with ExchangeServers."""
    if release == "2007":
        return _SERVERS_2007
    rights = _SERVERS_2007 | {xshadow, "SMTPAcceptXShadow"}
    return rights | _MODERN_EXTRA if release not in ("2010",) else rights


def anonymous_rights(cfg: ConnCfg) -> frozenset[str]:
    """The rights of an anonymous session at its start (spec 1.4)."""
    rights: set[str] = set()
    if "AnonymousUsers" in cfg.groups:
        rights |= ANONYMOUS
    if "ExternalAuthoritative" in cfg.auth and "ExchangeServers" in cfg.groups:
        rights |= EXTERNALLY_SECURED
    if cfg.anon_relay:
        rights.add("SMTPAcceptAnyRecipient")
    return frozenset(rights)


def authenticated_rights(cfg: ConnCfg, release: str, server: bool, xshadow: str) -> frozenset[str]:
    rights: set[str] = set()
    if server and "ExchangeServers" in cfg.groups:
        rights |= server_rights(release, xshadow)
    if "ExchangeUsers" in cfg.groups:
        rights |= USERS
    return frozenset(rights)


def banner(hub: Hub, fqdn: str, t: int) -> str:
    local = datetime.fromtimestamp(t / 1000, UTC) + timedelta(minutes=hub.site.tz)
    sign = "+" if hub.site.tz >= 0 else "-"
    off = abs(hub.site.tz)
    stamp = f"{local:%a}, {local.day} {local:%b %Y %H:%M:%S} {sign}{off // 60:02d}{off % 60:02d}"
    return f"220 {fqdn} Microsoft ESMTP MAIL Service ready at {stamp}"


def ehlo_lines(
    hub: Hub, port: int, cfg: ConnCfg, client_ip: str, stage: str = "plain", helo: bool = False
) -> list[str]:
    """The EHLO reply, one string a line (spec 2.2 order).

    ``stage``: ``plain``, ``anon-tls`` (after X-ANONYMOUSTLS) or ``tls`` (after STARTTLS).
    """
    greeting = f"{hub.fqdn} Hello [{client_ip}]"
    if helo:
        return [f"250 {greeting}"]
    secure = stage != "plain"
    auth = cfg.auth
    exch = "ExchangeServer" in auth
    kw = [cfg.size] if cfg.size else []
    kw += ["PIPELINING", "DSN", "ENHANCEDSTATUSCODES"]
    if "Tls" in auth and not secure:
        kw.append("STARTTLS")
    if exch and not secure:
        kw.append("X-ANONYMOUSTLS")
    mechs = []
    if "Integrated" in auth:
        mechs += ["GSSAPI", "NTLM"] if cfg.gssapi else ["NTLM"]
    if "BasicAuth" in auth and ("BasicAuthRequireTLS" not in auth or secure):
        mechs.append("LOGIN")
    if mechs:
        kw.append("AUTH " + " ".join(mechs))
    if exch:
        exps = "EXCHANGEAUTH GSSAPI NTLM" if stage == "anon-tls" else "GSSAPI NTLM"
        kw.append("X-EXPS " + exps)
        if stage == "anon-tls":
            kw.append("X-EXCHANGEAUTH SHA256")
    kw.append("8BITMIME")
    if cfg.chunking:
        kw += ["BINARYMIME", "CHUNKING"]
    if (exch or "ExternalAuthoritative" in auth) and (not hub.modern or port == 2525):
        kw.append("XEXCH50")
    if exch:
        kw.append("XRDST")
        if hub.release == "2010":
            kw.append("XSHADOW")
        elif hub.modern and port == 2525:
            kw.append("XSHADOWREQUEST")
    out = [f"250-{greeting}"]
    out += [f"250-{k}" for k in kw[:-1]]
    out.append(f"250 {kw[-1]}")
    return out


def keywords(lines: list[str]) -> set[str]:
    """The keywords (first word, upper case) of an EHLO reply, greeting left out."""
    return {line[4:].split(" ", 1)[0].upper() for line in lines[1:]}


def queued(msgid: str, internal_id: int, hub: Hub) -> str:
    if hub.modern:
        return (
            f"250 2.6.0 {msgid} [InternalId={internal_id}, Hostname={hub.fqdn}] "
            "Queued mail for delivery"
        )
    return f"250 2.6.0 {msgid} [InternalId={internal_id}] Queued mail for delivery"
