"""Get-Service and Restart-Service: the Windows services each server process hosts.

Each server process hosts the services of its roles (MSExchangeTransport,
MSExchangeIS, W3SVC, MSExchangePOP3, ...) and restarts one on request
without touching the others.  As in PowerShell, both act on the computer
the shell runs on unless ``-ComputerName`` names another; Restart-Service
also takes the services Get-Service pipes to it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping

from sitemail.org.model import Server
from sitemail.shell import (
    BY_PROPERTY_NAME,
    BY_VALUE,
    STRING,
    SWITCH,
    BoundParameters,
    CmdletError,
    ListType,
    Parameter,
    Record,
    TableView,
    cmdlet,
)
from sitemail.shell.operators import has_wildcard, wildcard_match

from .common import Inv, nonterminating
from .services import ExchangeServices

TYPE = "System.ServiceProcess.ServiceController"
VIEW = TableView.of(TYPE, "Status", "Name", "DisplayName")


def _computer(services: ExchangeServices, name: str | None) -> Server:
    return services.server(name) if name else services.local_server()


def list_services(services: ExchangeServices, server: Server) -> list[Record]:
    answer = services.admin_get(server, "/services")
    rows = answer if isinstance(answer, list) else []
    return [
        Record(
            TYPE,
            [
                ("Status", row.get("Status")),
                ("Name", row.get("Name")),
                ("DisplayName", row.get("DisplayName")),
                ("MachineName", server.name),
            ],
        )
        for row in rows
        if isinstance(row, Mapping)
    ]


def _selected(records: list[Record], names: tuple[str, ...] | None) -> list[Record]:
    if not names:
        return records
    return [
        r
        for r in records
        if any(
            wildcard_match(n, str(r["Name"])) or wildcard_match(n, str(r["DisplayName"]))
            for n in names
        )
    ]


COMPUTER = Parameter(
    "ComputerName",
    STRING,
    aliases=("cn", "MachineName"),
    pipeline=BY_PROPERTY_NAME,
    help="The server (default: the server the shell runs on).",
)


@cmdlet(
    "Get-Service",
    Parameter(
        "Name",
        ListType(STRING),
        position=0,
        help="Service names or display names (wildcards allowed).",
    ),
    COMPUTER,
    aliases=("gsv",),
    synopsis="Lists the services of a server and whether they run.",
    examples=("Get-Service MSExchange*", "Get-Service MSExchangeTransport -ComputerName EX-FL1"),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def get_service(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    server = _computer(inv.services, params.typed("ComputerName", str))
    names = params.typed("Name", tuple)
    found = _selected(list_services(inv.services, server), names)
    for name in names or ():
        if not has_wildcard(name) and not _selected(found, (name,)):
            inv.write_error(f"Cannot find any service with service name '{name}'.")
    return found


@cmdlet(
    "Restart-Service",
    Parameter(
        "Name",
        STRING,
        position=0,
        mandatory=True,
        pipeline=BY_VALUE | BY_PROPERTY_NAME,
        help="The service name, e.g. MSExchangeTransport.",
    ),
    COMPUTER,
    Parameter("PassThru", SWITCH, help="Write the restarted service to the pipeline."),
    Parameter("Force", SWITCH, help="Accepted; dependent services are not stopped here."),
    synopsis="Stops and starts one service of a server; the others keep running.",
    examples=(
        "Restart-Service MSExchangeTransport",
        "Get-Service MSExchangeTransport -ComputerName EX-FL1 | Restart-Service",
    ),
    supports_should_process=True,
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def restart_service(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    server = _computer(inv.services, params.typed("ComputerName", str))
    name = str(params["Name"])
    records = list_services(inv.services, server)
    match = _selected(records, (name,))
    if not match:
        raise CmdletError(f"Cannot find any service with service name '{name}'.")
    out: list[object] = []
    for record in match:
        service = str(record["Name"])
        target = f"{record['DisplayName']} ({service})"
        if not inv.should_process(target, "Restart-Service"):
            continue
        path = f"/services/{urllib.parse.quote(service)}/restart"
        inv.services.admin_post(server, path, {})
        if params.switch("PassThru"):
            fresh = _selected(list_services(inv.services, server), (service,))
            out.extend(fresh)
    return out


DEFINITIONS = (get_service, restart_service)
