"""Get-/Set-PopSettings and Get-/Set-ImapSettings of a Client Access server (spec 8.6).

Like Exchange's, these cmdlets take ``-Server`` (default: the server the
shell runs on) rather than an identity.  ProxyTargetPort is the port of the
Exchange 2003 back-end that POP3/IMAP4 sessions of 2003 mailboxes are
relayed to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sitemail.org.model import PopImapSettings, parse_binding
from sitemail.shell import (
    BY_PROPERTY_NAME,
    BY_VALUE,
    STRING,
    TIMESPAN,
    BoundParameters,
    CmdletDefinition,
    CmdletError,
    IntType,
    MultiValuedType,
    Parameter,
    Record,
    TableView,
    cmdlet,
)

from .common import Inv, nonterminating, save
from .fields import Field, changes, items, make_record, set_parameters, updated
from .param_types import LOGIN_TYPE
from .services import ExchangeServices

FIELDS = (
    Field(
        "UnencryptedOrTLSBindings",
        MultiValuedType(STRING),
        "multi",
        help="IP:port endpoints for plain text and STARTTLS/STLS connections.",
    ),
    Field("SSLBindings", MultiValuedType(STRING), "multi", help="IP:port endpoints for SSL."),
    Field(
        "LoginType",
        LOGIN_TYPE,
        help="SecureLogin (clear-text sign-in only after TLS), PlainTextLogin, "
        "PlainTextAuthentication.",
    ),
    Field(
        "ProxyTargetPort",
        IntType(1, 65535),
        help="The port of the Exchange 2003 back-end that 2003 mailboxes' sessions go to.",
    ),
    Field(
        "MaxConnections",
        IntType(1, 25_000),
        help="Connections the service accepts in all, signed in or not (2000).",
    ),
    Field(
        "MaxConnectionFromSingleIP",
        IntType(1, 25_000),
        help="Connections the service accepts from one IP address (2000).",
    ),
    Field(
        "MaxConnectionsPerUser",
        IntType(1, 25_000),
        help="Signed-in connections the service accepts for one user (16).",
    ),
    Field(
        "PreAuthenticatedConnectionTimeout",
        TIMESPAN,
        help="How long a connection may stay before sign-in, whatever it sends (00:01:00).",
    ),
    Field(
        "AuthenticatedConnectionTimeout",
        TIMESPAN,
        help="How long a signed-in connection may stay idle (00:30:00).",
    ),
)


@dataclass(frozen=True)
class Protocol:
    protocol: Literal["POP3", "IMAP4"]
    noun: str
    type_name: str


PROTOCOLS = (
    Protocol(
        "POP3",
        "PopSettings",
        "Microsoft.Exchange.Data.Directory.SystemConfiguration.Pop3AdConfiguration",
    ),
    Protocol(
        "IMAP4",
        "ImapSettings",
        "Microsoft.Exchange.Data.Directory.SystemConfiguration.Imap4AdConfiguration",
    ),
)


def to_record(services: ExchangeServices, settings: PopImapSettings, type_name: str) -> Record:
    server = services.server(settings.server)
    return make_record(
        type_name,
        [
            *items(settings, FIELDS),
            ("X509CertificateName", server.fqdn),
            ("Server", settings.server),
            ("Name", "1"),
            ("Identity", settings.identity),
        ],
        {},
    )


def _settings(inv: Inv, protocol: Protocol, server_name: str | None) -> PopImapSettings:
    server = inv.services.server(server_name) if server_name else inv.services.local_server()
    found = inv.services.directory.get(PopImapSettings, f"{server.name}\\{protocol.protocol}")
    if found is None:
        raise CmdletError(
            f"Server {server.name} has no {protocol.protocol} settings: it is not an Exchange "
            "2010 Client Access server."
        )
    return found


def _definitions(protocol: Protocol) -> tuple[CmdletDefinition[ExchangeServices], ...]:
    server_parameter = Parameter(
        "Server",
        STRING,
        position=0,
        pipeline=BY_VALUE | BY_PROPERTY_NAME,
        help="The Client Access server (default: the server the shell runs on).",
    )

    @cmdlet(
        f"Get-{protocol.noun}",
        server_parameter,
        synopsis=f"Shows a Client Access server's {protocol.protocol} settings.",
        examples=(f"Get-{protocol.noun}", f"Get-{protocol.noun} -Server EX-FL1 | Format-List"),
        output_type=protocol.type_name,
        views=(
            TableView.of(
                protocol.type_name,
                "UnencryptedOrTLSBindings",
                "SSLBindings",
                "LoginType",
                "X509CertificateName",
            ),
        ),
    )
    @nonterminating
    def get(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
        settings = _settings(inv, protocol, params.typed("Server", str))
        return [to_record(inv.services, settings, protocol.type_name)]

    @cmdlet(
        f"Set-{protocol.noun}",
        server_parameter,
        *set_parameters(FIELDS),
        synopsis=f"Changes a Client Access server's {protocol.protocol} settings.",
        examples=(f"Set-{protocol.noun} -Server EX-NY1 -LoginType PlainTextLogin",),
        supports_should_process=True,
    )
    @nonterminating
    def set_(item: object | None, params: BoundParameters, inv: Inv) -> None:
        settings = _settings(inv, protocol, params.typed("Server", str))
        new = updated(settings, changes(settings, FIELDS, params), FIELDS)
        for binding in (*new.unencrypted_or_tls_bindings, *new.ssl_bindings):
            try:
                parse_binding(binding)
            except ValueError as error:
                raise CmdletError(
                    f"The value of property 'Bindings' is not valid: {error}."
                ) from None
        save(inv, settings, new, f"Set-{protocol.noun}")

    return (get, set_)


DEFINITIONS = tuple(d for p in PROTOCOLS for d in _definitions(p))
