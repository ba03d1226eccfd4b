"""Get-, Set-, New- and Remove-ReceiveConnector (spec 1.1-1.4, 1.6).

Changes go to the directory; running servers pick them up within a second,
without a restart of MSExchangeTransport (spec 1.7).  Each change is checked
as Exchange checks it: the AuthMechanism dependencies of spec 1.3, the
PermissionGroups that ExternalAuthoritative needs, and the rule that
connectors sharing a binding have different, disjoint-or-nested
RemoteIPRanges (spec 1.2, 1.6).
"""

from __future__ import annotations

from collections.abc import Iterable

from sitemail.org.model import AuthMechanism, PermissionGroup, ReceiveConnector, Server
from sitemail.shell import (
    BOOL,
    SIZE,
    STRING,
    TIMESPAN,
    BoundParameters,
    CmdletError,
    IntType,
    MultiValuedType,
    Parameter,
    Record,
    TableView,
    cmdlet,
)
from sitemail.transport.connector_selection import conflict, conflict_message

from .common import (
    SERVER_PARAMETER,
    Inv,
    get_identity_parameter,
    identity_parameter,
    nonterminating,
    reported,
    save,
)
from .fields import Field, changes, items, make_record, set_parameters, updated
from .param_types import (
    AUTH_MECHANISMS,
    PERMISSION_GROUPS,
    PROTOCOL_LOGGING_LEVEL,
    RECEIVE_USAGE,
    SIZE_MODE,
    UNLIMITED_INT,
)
from .services import matches, not_found, pick_one

TYPE = "Microsoft.Exchange.Data.Directory.SystemConfiguration.ReceiveConnector"
MULTI = MultiValuedType(STRING)

# Exchange's Format-List order; Name, Server and Identity close the list as in the EMS.
FIELDS: tuple[Field, ...] = (
    Field(
        "AuthMechanism",
        AUTH_MECHANISMS,
        "flags",
        help="Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer, "
        "ExternalAuthoritative, or None alone.",
    ),
    Field("Banner", STRING, help="The 220 line sent on connect ($null: the default banner)."),
    Field("BinaryMimeEnabled", BOOL),
    Field(
        "Bindings",
        MULTI,
        "multi",
        help="Local IP:port endpoints, e.g. 0.0.0.0:25 (a list replaces; @{Add=..} edits).",
    ),
    Field("ChunkingEnabled", BOOL),
    Field("DeliveryStatusNotificationEnabled", BOOL),
    Field("EightBitMimeEnabled", BOOL),
    Field("DomainSecureEnabled", BOOL),
    Field("EnableAuthGSSAPI", BOOL),
    Field("Enabled", BOOL),
    Field("EnhancedStatusCodesEnabled", BOOL),
    Field("LongAddressesEnabled", BOOL),
    Field("OrarEnabled", BOOL),
    Field("SuppressXAnonymousTls", BOOL),
    Field(
        "Fqdn", STRING, help="The name in the banner and the EHLO reply (default: the server's)."
    ),
    Field("Comment", STRING),
    Field("ConnectionTimeout", TIMESPAN),
    Field("ConnectionInactivityTimeout", TIMESPAN),
    Field("MessageRateLimit", UNLIMITED_INT, "unlimited"),
    Field("MaxInboundConnection", UNLIMITED_INT, "unlimited"),
    Field("MaxInboundConnectionPerSource", UNLIMITED_INT, "unlimited"),
    Field("MaxInboundConnectionPercentagePerSource", IntType(1, 100)),
    Field("MaxHeaderSize", SIZE, "size"),
    Field("MaxHopCount", IntType(1, 500)),
    Field("MaxLocalHopCount", IntType(0, 50)),
    Field("MaxLogonFailures", IntType(0, 10)),
    Field("MaxMessageSize", SIZE, "size"),
    Field("MaxProtocolErrors", UNLIMITED_INT, "unlimited"),
    Field("MaxRecipientsPerMessage", IntType(1, 512000)),
    Field(
        "PermissionGroups",
        PERMISSION_GROUPS,
        "flags",
        help="AnonymousUsers, ExchangeUsers, ExchangeServers, ExchangeLegacyServers, Partners, "
        "Custom.",
    ),
    Field("PipeliningEnabled", BOOL),
    Field(
        "ProtocolLoggingLevel", PROTOCOL_LOGGING_LEVEL, help="None or Verbose (SmtpReceive log)."
    ),
    Field(
        "RemoteIPRanges",
        MULTI,
        "multi",
        help="Remote addresses served: an address, a range a-b or a CIDR block.",
    ),
    Field("RequireEHLODomain", BOOL),
    Field("RequireTLS", BOOL, help="Refuse mail before STARTTLS (needs Tls in AuthMechanism)."),
    Field("Server"),
    Field("SizeEnabled", SIZE_MODE),
    Field("TarpitInterval", TIMESPAN),
    Field("MaxAcknowledgementDelay", TIMESPAN),
    Field("Name", STRING, help="A new name for the connector."),
)

VIEW = TableView.of(TYPE, "Identity", "Bindings", "Enabled")

# Texts for the rules of spec 1.3 (the spec gives the rules, not Exchange's words).
NONE_ALONE = (
    "The AuthMechanism value None can't be combined with other authentication mechanisms; "
    "specify None alone."
)
BASIC_NEEDS_TLS = (
    "The AuthMechanism value BasicAuthRequireTLS requires BasicAuth and Tls; add them or "
    "remove BasicAuthRequireTLS."
)
EXTERNAL_ONLY_WITH_TLS = (
    "The AuthMechanism value ExternalAuthoritative can only be combined with Tls."
)
EXTERNAL_NEEDS_SERVERS = (
    "The AuthMechanism value ExternalAuthoritative requires the ExchangeServers permission "
    "group; add ExchangeServers to PermissionGroups."
)
REQUIRE_TLS_NEEDS_TLS = (
    "RequireTLS can't be $true unless AuthMechanism includes Tls; add Tls or set RequireTLS "
    "to $false."
)
BANNER_220 = 'The Banner must start with "220 " followed by text, such as "220 mail ready".'


def rule_problem(auth: Iterable[str], groups: Iterable[str], require_tls: bool) -> str | None:
    """Which dependency rule of spec 1.3 a connector's settings break, if any."""
    mechanisms = {a.casefold() for a in auth}
    if "none" in mechanisms and len(mechanisms) > 1:
        return NONE_ALONE
    if "basicauthrequiretls" in mechanisms and not {"basicauth", "tls"} <= mechanisms:
        return BASIC_NEEDS_TLS
    if "externalauthoritative" in mechanisms:
        if mechanisms - {"externalauthoritative", "tls"}:
            return EXTERNAL_ONLY_WITH_TLS
        if "exchangeservers" not in {g.casefold() for g in groups}:
            return EXTERNAL_NEEDS_SERVERS
    if require_tls and "tls" not in mechanisms:
        return REQUIRE_TLS_NEEDS_TLS
    return None


def check(inv: Inv, connector: ReceiveConnector, replacing: ReceiveConnector | None = None) -> None:
    """Exchange's checks before a connector is written (raises CmdletError).

    ``replacing`` is the connector being changed: a renamed connector must not
    clash with its own old self.
    """
    problem = rule_problem(
        [a.value for a in connector.auth_mechanism],
        [g.value for g in connector.permission_groups],
        connector.require_tls,
    )
    if problem is not None:
        raise CmdletError(problem)
    if connector.banner is not None and not connector.banner.startswith("220 "):
        raise CmdletError(BANNER_220)
    others = [
        c
        for c in inv.services.directory.list(ReceiveConnector)
        if replacing is None or c.identity.casefold() != replacing.identity.casefold()
    ]
    clash = conflict(others, connector)
    if clash is not None:
        raise CmdletError(conflict_message(connector, clash))


def _pre_check(current: ReceiveConnector, update: dict[str, object]) -> None:
    """The AuthMechanism rules on the raw values: the model refuses None+others itself."""
    auth = update.get("auth_mechanism", [a.value for a in current.auth_mechanism])
    groups = update.get("permission_groups", [g.value for g in current.permission_groups])
    require_tls = update.get("require_tls", current.require_tls)
    problem = rule_problem(
        [str(a) for a in auth] if isinstance(auth, list) else [],
        [str(g) for g in groups] if isinstance(groups, list) else [],
        bool(require_tls),
    )
    if problem is not None:
        raise CmdletError(problem)


def to_record(inv: Inv, connector: ReceiveConnector) -> Record:
    server = inv.services.directory.get(Server, connector.server)
    fqdn = connector.fqdn or (server.fqdn if server else "")
    return make_record(
        TYPE,
        [*items(connector, FIELDS), ("Identity", connector.identity)],
        {"Fqdn": fqdn},
    )


def find(inv: Inv, identity: str) -> ReceiveConnector:
    """``SERVER\\Name`` or a name that only one server's connector has."""
    return pick_one(identity, _matching(inv, identity))


def _matching(inv: Inv, identity: str) -> list[ReceiveConnector]:
    server_part, _, name = identity.rpartition("\\")
    return [
        c
        for c in inv.services.directory.list(ReceiveConnector)
        if matches(name, c.name) and (not server_part or matches(server_part, c.server))
    ]


def _ordered(inv: Inv, connectors: list[ReceiveConnector]) -> list[ReceiveConnector]:
    order = {s.name.casefold(): i for i, s in enumerate(inv.services.servers())}
    return sorted(connectors, key=lambda c: (order.get(c.server.casefold(), 0), c.name.casefold()))


@cmdlet(
    "Get-ReceiveConnector",
    get_identity_parameter("receive connector (SERVER\\Name or Name)"),
    SERVER_PARAMETER,
    synopsis="Lists receive connectors: all of them, one server's, or one by identity.",
    examples=(
        "Get-ReceiveConnector",
        "Get-ReceiveConnector -Server EX-FL1",
        '"EX-FL1\\Default EX-FL1" | Get-ReceiveConnector | Format-List',
    ),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def get_receive_connector(
    item: object | None, params: BoundParameters, inv: Inv
) -> Iterable[object]:
    identity = params.typed("Identity", str)
    server_name = params.typed("Server", str)
    connectors = inv.services.directory.list(ReceiveConnector)
    if server_name is not None:
        server = inv.services.server(server_name)
        connectors = [c for c in connectors if c.server.casefold() == server.name.casefold()]
    if identity is not None:
        wanted = {c.identity.casefold() for c in _matching(inv, identity)}
        connectors = [c for c in connectors if c.identity.casefold() in wanted]
        if not connectors:
            raise CmdletError(not_found(identity))
    return [to_record(inv, c) for c in _ordered(inv, connectors)]


@cmdlet(
    "Set-ReceiveConnector",
    identity_parameter("receive connector (SERVER\\Name)"),
    *set_parameters(FIELDS),
    synopsis="Changes a receive connector; multi-valued properties are replaced as a whole.",
    description="Running servers apply the change within a second; no restart is needed.",
    examples=(
        'Set-ReceiveConnector "EX-FL1\\Default EX-FL1" -RemoteIPRanges 0.0.0.0-255.255.255.255',
        'Set-ReceiveConnector "Default EX-FL1" -AuthMechanism '
        "Tls,Integrated,BasicAuth,BasicAuthRequireTLS,ExchangeServer",
        'Set-ReceiveConnector "Default EX-FL1" -PermissionGroups '
        "ExchangeUsers,ExchangeServers,ExchangeLegacyServers,AnonymousUsers",
    ),
    supports_should_process=True,
)
@nonterminating
def set_receive_connector(item: object | None, params: BoundParameters, inv: Inv) -> None:
    connector = find(inv, str(params["Identity"]))
    update = changes(connector, FIELDS, params)
    _pre_check(connector, update)
    new = updated(connector, update, FIELDS)
    check(inv, new, replacing=connector)
    save(inv, connector, new, "Set-ReceiveConnector")


# What each -Usage of New-ReceiveConnector starts from (spec 1.1, 1.2; [Decomp] Internal).
USAGE_DEFAULTS: dict[str, dict[str, object]] = {
    "Custom": {"permission_groups": [PermissionGroup.NONE]},
    "Internet": {
        "auth_mechanism": [AuthMechanism.TLS],
        "permission_groups": [PermissionGroup.ANONYMOUS_USERS],
    },
    "Internal": {
        "auth_mechanism": [AuthMechanism.TLS, AuthMechanism.EXCHANGE_SERVER],
        "permission_groups": [PermissionGroup.EXCHANGE_SERVERS],
        "size_enabled": "EnabledWithoutValue",
        "max_inbound_connection_percentage_per_source": 100,
    },
    "Client": {
        "auth_mechanism": [
            AuthMechanism.TLS,
            AuthMechanism.INTEGRATED,
            AuthMechanism.BASIC_AUTH,
            AuthMechanism.BASIC_AUTH_REQUIRE_TLS,
        ],
        "permission_groups": [PermissionGroup.EXCHANGE_USERS],
    },
    "Partner": {
        "auth_mechanism": [AuthMechanism.TLS],
        "permission_groups": [PermissionGroup.PARTNERS],
        "domain_secure_enabled": True,
    },
}

NEW_FIELDS = tuple(f for f in FIELDS if f.name not in ("Name", "Bindings", "RemoteIPRanges"))


@cmdlet(
    "New-ReceiveConnector",
    Parameter("Name", STRING, position=0, mandatory=True, help="The connector's name."),
    Parameter(
        "Server",
        STRING,
        help="The Hub Transport server (default: the server the shell runs on).",
    ),
    Parameter(
        "Usage",
        RECEIVE_USAGE,
        help="Starting settings: Custom (default), Internet, Internal, Client, Partner.",
    ),
    Parameter("Bindings", MULTI, mandatory=True, help="Local IP:port endpoints, e.g. 0.0.0.0:25."),
    Parameter(
        "RemoteIPRanges",
        MULTI,
        help="Remote addresses served (default 0.0.0.0-255.255.255.255).",
    ),
    *set_parameters(NEW_FIELDS),
    synopsis="Creates a receive connector on a Hub Transport server.",
    examples=(
        'New-ReceiveConnector "Relay EX-NY1" -Server EX-NY1 -Usage Custom -Bindings 0.0.0.0:25 '
        "-RemoteIPRanges 127.1.0.50 -PermissionGroups AnonymousUsers -AuthMechanism Tls",
    ),
    supports_should_process=True,
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def new_receive_connector(
    item: object | None, params: BoundParameters, inv: Inv
) -> Iterable[object]:
    server_name = params.typed("Server", str)
    server = inv.services.server(server_name) if server_name else inv.services.local_server()
    if not server.is_hub:
        raise CmdletError(
            f"Server {server.name} doesn't have the Exchange 2010 Hub Transport role; receive "
            "connectors can only be created on Hub Transport servers."
        )
    usage = params.typed("Usage", str, "Custom")
    with reported():
        template = updated(
            ReceiveConnector(server=server.name, name=str(params["Name"])), USAGE_DEFAULTS[usage]
        )
    update = changes(template, NEW_FIELDS, params)
    for name, attribute in (("Bindings", "bindings"), ("RemoteIPRanges", "remote_ip_ranges")):
        field = next(f for f in FIELDS if f.name == name)
        if name in params:
            update[attribute] = field.stored(params[name], [])
    _pre_check(template, update)
    connector = updated(template, update, FIELDS)
    check(inv, connector)
    if inv.services.directory.get(ReceiveConnector, connector.identity) is not None:
        raise CmdletError(
            f"A receive connector named '{connector.name}' already exists on server "
            f"{server.name}; choose another name."
        )
    if not inv.should_process(connector.identity, "New-ReceiveConnector"):
        return []
    with reported():
        inv.services.directory.create(connector)
    return [to_record(inv, connector)]


@cmdlet(
    "Remove-ReceiveConnector",
    identity_parameter("receive connector (SERVER\\Name)"),
    synopsis="Deletes a receive connector; the server stops listening on it within a second.",
    examples=('Remove-ReceiveConnector "EX-NY1\\Relay EX-NY1"',),
    supports_should_process=True,
)
@nonterminating
def remove_receive_connector(item: object | None, params: BoundParameters, inv: Inv) -> None:
    connector = find(inv, str(params["Identity"]))
    if inv.should_process(connector.identity, "Remove-ReceiveConnector"):
        inv.services.directory.delete(ReceiveConnector, connector.identity)


DEFINITIONS = (
    get_receive_connector,
    set_receive_connector,
    new_receive_connector,
    remove_receive_connector,
)
