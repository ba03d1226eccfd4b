"""Get-TransportConfig and Set-TransportConfig: the organization's transport settings.

Only the shadow redundancy properties are here (Exchange 2010 sets them with
``Set-TransportConfig``, "Configure Shadow Redundancy"), beside the size
limits the organization already holds.  Hubs read them live: a change applies
within a second, with no restart.
"""

from __future__ import annotations

from collections.abc import Iterable

from sitemail.shell import (
    BOOL,
    STRING,
    TIMESPAN,
    BoundParameters,
    IntType,
    Parameter,
    Record,
    TableView,
    cmdlet,
)

from .common import Inv, nonterminating, save
from .fields import Field, changes, items, make_record, set_parameters, updated

TYPE = "Microsoft.Exchange.Data.Directory.SystemConfiguration.TransportConfigContainer"

FIELDS: tuple[Field, ...] = (
    Field("MaxReceiveSize", kind="size"),
    Field("MaxSendSize", kind="size"),
    Field("ShadowRedundancyEnabled", BOOL, help="Keep shadow copies between 2010 hubs."),
    Field(
        "ShadowHeartbeatTimeoutInterval",
        TIMESPAN,
        help="How long a hub waits for a heartbeat answer from a next hop it shadows for.",
    ),
    Field(
        "ShadowHeartbeatRetryCount",
        IntType(1, 15),
        help="Missed heartbeats before the shadow copies are resubmitted.",
    ),
    Field(
        "ShadowMessageAutoDiscardInterval",
        TIMESPAN,
        help="How long a shadow copy is kept at most.",
    ),
)

VIEW = TableView.of(TYPE, "ShadowRedundancyEnabled", "ShadowHeartbeatRetryCount", "MaxSendSize")


def to_record(inv: Inv) -> Record:
    org = inv.services.organization()
    return make_record(TYPE, [*items(org, FIELDS), ("Identity", org.name)], {})


@cmdlet(
    "Get-TransportConfig",
    synopsis="Shows the organization's transport settings (shadow redundancy, size limits).",
    examples=("Get-TransportConfig | Format-List Shadow*",),
    output_type=TYPE,
    views=(VIEW,),
)
def get_transport_config(
    item: object | None, params: BoundParameters, inv: Inv
) -> Iterable[object]:
    return [to_record(inv)]


@cmdlet(
    "Set-TransportConfig",
    Parameter("Identity", STRING, position=0, help="The organization (there is one)."),
    *set_parameters(FIELDS),
    synopsis="Changes the organization's shadow redundancy settings.",
    description="Running hubs apply the change within a second; no restart is needed.",
    examples=(
        "Set-TransportConfig -ShadowRedundancyEnabled $true",
        "Set-TransportConfig -ShadowHeartbeatTimeoutInterval 00:15:00 -ShadowHeartbeatRetryCount 3",
    ),
    supports_should_process=True,
)
@nonterminating
def set_transport_config(item: object | None, params: BoundParameters, inv: Inv) -> None:
    org = inv.services.organization()
    save(inv, org, updated(org, changes(org, FIELDS, params), FIELDS), "Set-TransportConfig")


DEFINITIONS = (get_transport_config, set_transport_config)
