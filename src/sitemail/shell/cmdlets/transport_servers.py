"""Get-TransportServer and Set-TransportServer: a Hub's retry, expiry and log settings.

The properties are those of spec 4.2, 5.3 and 6.3 (``Server.transport`` in
the directory).  ``-IntraOrgProtocolLoggingLevel``, as the seed types it, is
Exchange's alias of ``-IntraOrgConnectorProtocolLoggingLevel``.  The
EdgeTransport.exe.config keys (QueueGlitchRetryCount, ...) are settable here
too, so that a lab can shorten the retry ladder; Exchange sets them in that
file and needs a transport restart, sitemail's servers apply them at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sitemail.org.model import Server
from sitemail.shell import (
    BOOL,
    INT,
    SIZE,
    STRING,
    TIMESPAN,
    BoundParameters,
    CmdletError,
    IntType,
    Record,
    TableView,
    cmdlet,
)

from .common import Inv, get_identity_parameter, identity_parameter, nonterminating, save
from .fields import Field, changes, items, make_record, set_parameters, updated
from .param_types import PROTOCOL_LOGGING_LEVEL
from .services import matches, not_found

TYPE = "Microsoft.Exchange.Data.Directory.SystemConfiguration.TransportServer"

_CONFIG_KEY = " (EdgeTransport.exe.config in Exchange; applied at once here.)"

FIELDS: tuple[Field, ...] = (
    Field("DelayNotificationTimeout", TIMESPAN, help="When the sender gets a delay DSN (4 h)."),
    Field("MessageExpirationTimeout", TIMESPAN, help="When a queued message expires (2 days)."),
    Field("QueueMaxIdleTime", TIMESPAN),
    Field("MessageRetryInterval", TIMESPAN),
    Field("TransientFailureRetryCount", IntType(0, 15)),
    Field("TransientFailureRetryInterval", TIMESPAN),
    Field("OutboundConnectionFailureRetryInterval", TIMESPAN),
    Field("MaxOutboundConnections", INT),
    Field("MaxPerDomainOutboundConnections", INT),
    Field("MaxConcurrentMailboxDeliveries", INT),
    Field("MaxConcurrentMailboxSubmissions", INT),
    Field("MaxConnectionRatePerMinute", INT),
    Field("PoisonMessageDetectionEnabled", BOOL),
    Field("PoisonThreshold", IntType(1, 10)),
    Field("UseDowngradedExchangeServerAuth", BOOL),
    Field(
        "IntraOrgConnectorProtocolLoggingLevel",
        PROTOCOL_LOGGING_LEVEL,
        aliases=("IntraOrgProtocolLoggingLevel",),
        help="None or Verbose: log hub-to-hub SMTP in the SmtpSend protocol log.",
    ),
    Field("ReceiveProtocolLogPath", STRING),
    Field("ReceiveProtocolLogMaxAge", TIMESPAN),
    Field("ReceiveProtocolLogMaxDirectorySize", SIZE, "size"),
    Field("ReceiveProtocolLogMaxFileSize", SIZE, "size"),
    Field("SendProtocolLogPath", STRING),
    Field("SendProtocolLogMaxAge", TIMESPAN),
    Field("SendProtocolLogMaxDirectorySize", SIZE, "size"),
    Field("SendProtocolLogMaxFileSize", SIZE, "size"),
    Field("MessageTrackingLogEnabled", BOOL),
    Field("MessageTrackingLogPath", STRING),
    Field("MessageTrackingLogMaxAge", TIMESPAN),
    Field("MessageTrackingLogMaxDirectorySize", SIZE, "size"),
    Field("MessageTrackingLogMaxFileSize", SIZE, "size"),
    Field("MessageTrackingLogSubjectLoggingEnabled", BOOL),
    Field("QueueGlitchRetryCount", IntType(0, 15), help="Quick reconnections." + _CONFIG_KEY),
    Field("QueueGlitchRetryInterval", TIMESPAN, help="Between quick reconnections." + _CONFIG_KEY),
    Field("MailboxDeliveryQueueRetryInterval", TIMESPAN, help=_CONFIG_KEY.strip()),
    Field("MaxIdleTimeBeforeResubmit", TIMESPAN, help=_CONFIG_KEY.strip()),
)

_PATHS = ("ReceiveProtocolLogPath", "SendProtocolLogPath", "MessageTrackingLogPath")

VIEW = TableView.of(
    TYPE, "Name", "IntraOrgConnectorProtocolLoggingLevel", "MessageTrackingLogEnabled"
)


def to_record(inv: Inv, server: Server) -> Record:
    # Log paths are kept relative to the server's folder; show where the files really are.
    home = inv.services.lab_dir / "servers" / server.name
    shown: dict[str, object] = {}
    for name in _PATHS:
        field = next(f for f in FIELDS if f.name == name)
        value = getattr(server.transport, field.attribute)
        if isinstance(value, str):
            shown[name] = str(home / Path(value))
    return make_record(
        TYPE,
        [("Name", server.name), *items(server.transport, FIELDS), ("Identity", server.name)],
        shown,
    )


def transport_servers(inv: Inv, identity: str | None) -> list[Server]:
    hubs = inv.services.hubs()
    if identity is None:
        return hubs
    found = [s for s in hubs if matches(identity, s.name, s.fqdn)]
    if not found:
        raise CmdletError(not_found(identity))
    return found


@cmdlet(
    "Get-TransportServer",
    get_identity_parameter("Hub Transport server"),
    synopsis="Lists the Hub Transport servers with their transport settings.",
    examples=("Get-TransportServer", "Get-TransportServer EX-NY1 | Format-List *Log*"),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def get_transport_server(
    item: object | None, params: BoundParameters, inv: Inv
) -> Iterable[object]:
    return [to_record(inv, s) for s in transport_servers(inv, params.typed("Identity", str))]


@cmdlet(
    "Set-TransportServer",
    identity_parameter("Hub Transport server"),
    *set_parameters(FIELDS),
    synopsis="Changes a Hub Transport server's retry, expiry and logging settings.",
    description="Running servers apply the change within a second; no restart is needed.",
    examples=(
        "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose",
        "Set-TransportServer EX-NY1 -IntraOrgConnectorProtocolLoggingLevel None",
    ),
    supports_should_process=True,
)
@nonterminating
def set_transport_server(item: object | None, params: BoundParameters, inv: Inv) -> None:
    identity = str(params["Identity"])
    for server in transport_servers(inv, identity):
        settings = updated(server.transport, changes(server.transport, FIELDS, params), FIELDS)
        save(inv, server, server.model_copy(update={"transport": settings}), "Set-TransportServer")


DEFINITIONS = (get_transport_server, set_transport_server)
