"""Get-ExchangeServer: every server of the organization, 2003 to 2010."""

from __future__ import annotations

from collections.abc import Iterable

from sitemail.org.model import ExchangeVersion, Server, ServerRole
from sitemail.shell import BoundParameters, CmdletError, Record, TableView, cmdlet

from .common import Inv, get_identity_parameter, nonterminating
from .services import matches, not_found

TYPE = "Microsoft.Exchange.Data.Directory.Management.ExchangeServer"
VIEW = TableView.of(TYPE, "Name", "Site", "ServerRole", "Edition", "AdminDisplayVersion")


def to_record(inv: Inv, server: Server) -> Record:
    later = server.version is not ExchangeVersion.E2003
    return Record(
        TYPE,
        [
            ("Name", server.name),
            ("Fqdn", server.fqdn),
            ("Domain", inv.services.domain),
            ("Site", inv.services.site_path(server.site) if later else None),
            ("ServerRole", server.server_role_text),
            # The lab installs every server as Standard: Edition decides nothing here.
            ("Edition", "Standard"),
            ("AdminDisplayVersion", server.version.display),
            ("IsHubTransportServer", later and server.has_role(ServerRole.HUB_TRANSPORT)),
            ("IsClientAccessServer", later and server.has_role(ServerRole.CLIENT_ACCESS)),
            ("IsMailboxServer", later and server.has_role(ServerRole.MAILBOX)),
            ("IsEdgeServer", False),
            ("IsUnifiedMessagingServer", False),
            ("IsExchange2007OrLater", later),
            ("NetworkAddress", tuple(server.addresses)),
            ("Identity", server.name),
        ],
    )


@cmdlet(
    "Get-ExchangeServer",
    get_identity_parameter("server (name or FQDN)"),
    synopsis="Lists the Exchange servers of the organization with their site, roles and version.",
    examples=("Get-ExchangeServer", "Get-ExchangeServer EX-FL1 | Format-List"),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def get_exchange_server(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    identity = params.typed("Identity", str)
    servers = inv.services.servers()
    if identity is not None:
        servers = [s for s in servers if matches(identity, s.name, s.fqdn)]
        if not servers:
            raise CmdletError(not_found(identity))
    return [to_record(inv, s) for s in servers]


DEFINITIONS = (get_exchange_server,)
