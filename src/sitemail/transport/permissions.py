"""Receive connector permission groups and the extended rights they grant (spec 1.4).

A session starts with the rights the connector grants to anonymous logon and
is re-evaluated after AUTH or X-EXPS (spec 1.4, [Decomp] SmtpInSession).
The protocol log's ``Set Session Permissions`` row lists the rights with
Exchange's Permission flag names, in the enum's order.
"""

from __future__ import annotations

from enum import Enum, IntFlag

from sitemail.org.model import AuthMechanism, PermissionGroup, ReceiveConnector


class Right(IntFlag):
    """Exchange's ``Permission`` flags, named as the protocol log prints them.

    The bit order is Exchange's enum order, which is the order of the names in
    the ``Set Session Permissions`` row (spec 1.4 example; general knowledge for
    the names that example does not show).
    """

    NONE = 0
    SMTPSubmit = 1 << 0
    SMTPAcceptAnyRecipient = 1 << 1
    SMTPAcceptAuthenticationFlag = 1 << 2
    SMTPAcceptAnySender = 1 << 3
    SMTPAcceptAuthoritativeDomainSender = 1 << 4
    BypassAntiSpam = 1 << 5
    BypassMessageSizeLimit = 1 << 6
    SMTPSendEXCH50 = 1 << 7
    SMTPAcceptEXCH50 = 1 << 8
    AcceptRoutingHeaders = 1 << 9
    AcceptForestHeaders = 1 << 10
    AcceptOrganizationHeaders = 1 << 11
    SMTPAcceptXShadow = 1 << 12


R = Right

#: What each permission group grants (spec 1.4, table "Extended rights").
GROUP_RIGHTS: dict[PermissionGroup, Right] = {
    PermissionGroup.ANONYMOUS_USERS: R.SMTPSubmit
    | R.SMTPAcceptAnySender
    | R.SMTPAcceptAuthoritativeDomainSender
    | R.AcceptRoutingHeaders,
    PermissionGroup.EXCHANGE_USERS: R.SMTPSubmit
    | R.SMTPAcceptAnyRecipient
    | R.BypassAntiSpam
    | R.AcceptRoutingHeaders,
    PermissionGroup.EXCHANGE_SERVERS: R.SMTPSubmit
    | R.SMTPAcceptAnyRecipient
    | R.SMTPAcceptAnySender
    | R.SMTPAcceptAuthoritativeDomainSender
    | R.SMTPAcceptAuthenticationFlag
    | R.SMTPAcceptEXCH50
    | R.BypassAntiSpam
    | R.BypassMessageSizeLimit
    | R.AcceptRoutingHeaders
    | R.AcceptOrganizationHeaders
    | R.AcceptForestHeaders
    | R.SMTPAcceptXShadow,
    PermissionGroup.EXCHANGE_LEGACY_SERVERS: R.SMTPSubmit
    | R.SMTPAcceptAnyRecipient
    | R.SMTPAcceptAnySender
    | R.SMTPAcceptAuthoritativeDomainSender
    | R.SMTPAcceptAuthenticationFlag
    | R.SMTPAcceptEXCH50
    | R.BypassAntiSpam
    | R.BypassMessageSizeLimit
    | R.AcceptRoutingHeaders,
    PermissionGroup.PARTNERS: R.SMTPSubmit | R.AcceptRoutingHeaders,
    PermissionGroup.CUSTOM: R.NONE,
    PermissionGroup.NONE: R.NONE,
}

#: ExchangeServers with ExternalAuthoritative: "Externally Secured Servers" (spec 1.4).
EXTERNALLY_SECURED = GROUP_RIGHTS[PermissionGroup.EXCHANGE_SERVERS] & ~(
    R.AcceptOrganizationHeaders | R.AcceptForestHeaders
)


class Principal(Enum):
    """Who the session is, as far as the receive connector can tell."""

    ANONYMOUS = "anonymous"
    USER = "user"  # AUTH LOGIN / NTLM with a mailbox's credentials
    EXCHANGE_SERVER = "exchange-server"  # X-EXPS with the organization's server credentials
    LEGACY_SERVER = "legacy-server"  # an Exchange 2003 server (ExchangeLegacyInterop)
    PARTNER = "partner"  # domain-secured TLS partner


def session_rights(connector: ReceiveConnector, principal: Principal) -> Right:
    """The rights a session of ``principal`` holds on ``connector``."""
    groups = set(connector.permission_groups)
    rights = R.NONE

    def grant(group: PermissionGroup) -> None:
        nonlocal rights
        if group in groups:
            rights |= GROUP_RIGHTS[group]

    if principal is Principal.ANONYMOUS:
        grant(PermissionGroup.ANONYMOUS_USERS)
        # ExternalAuthoritative: the connection is secured outside Exchange, so anonymous
        # senders are treated as externally secured servers (spec 1.3, 1.4).
        if (
            AuthMechanism.EXTERNAL_AUTHORITATIVE in connector.auth_mechanism
            and PermissionGroup.EXCHANGE_SERVERS in groups
        ):
            rights |= EXTERNALLY_SECURED
        return rights
    # Every authenticated principal is in "Authenticated Users" (ExchangeUsers).
    grant(PermissionGroup.EXCHANGE_USERS)
    if principal is Principal.EXCHANGE_SERVER:
        grant(PermissionGroup.EXCHANGE_SERVERS)
    elif principal is Principal.LEGACY_SERVER:
        grant(PermissionGroup.EXCHANGE_LEGACY_SERVERS)
    elif principal is Principal.PARTNER:
        grant(PermissionGroup.PARTNERS)
    return rights


def rights_text(rights: Right) -> str:
    """The data field of the ``Set Session Permissions`` protocol-log row."""
    return " ".join(r.name for r in Right if r.value and r in rights and r.name)
