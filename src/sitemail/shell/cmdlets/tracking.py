"""Get-MessageTrackingLog: search the hubs' message tracking logs (spec 6.3).

Without ``-Server`` every Exchange 2010 Hub Transport server is searched and
the events come back in time order, so one command shows a message's whole
path (RECEIVE and SEND on EX-NY1, RECEIVE and DELIVER on EX-FL1).  The EMS
searches only the local server; ``Get-TransportServer |
Get-MessageTrackingLog ...`` works here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sitemail.shell import (
    STRING,
    BoundParameters,
    EnumType,
    ListType,
    Parameter,
    Record,
    TableView,
    cmdlet,
)

from .common import SERVER_PARAMETER, Inv, nonterminating
from .param_types import DATETIME, UNLIMITED, UNLIMITED_INT
from .runtime_state import api_record, chosen_hubs, gather

TYPE = "Microsoft.Exchange.Management.TransportLogSearchTasks.MessageTrackingEvent"
VIEW = TableView.of(TYPE, "EventId", "Source", "Sender", "Recipients", "MessageSubject")
DEFAULT_RESULT_SIZE = 1000

EVENT_ID = EnumType(
    "System.String",
    [
        "RECEIVE",
        "SUBMIT",
        "SEND",
        "DELIVER",
        "FAIL",
        "DEFER",
        "DSN",
        "EXPAND",
        "RESOLVE",
        "REDIRECT",
        "TRANSFER",
        "BADMAIL",
        "POISONMESSAGE",
        "DUPLICATEDELIVER",
        "HAREDIRECTFAIL",
        "NOTIFYMAPI",
    ],
)


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _when(record: Record) -> datetime:
    value = record.get("Timestamp")
    return value if isinstance(value, datetime) else datetime.min


@cmdlet(
    "Get-MessageTrackingLog",
    SERVER_PARAMETER,
    Parameter("MessageId", STRING, help="The Message-ID header, with or without <>."),
    Parameter("Sender", STRING, help="The sender's SMTP address."),
    Parameter("Recipients", ListType(STRING), help="One or more recipient SMTP addresses."),
    Parameter("EventId", EVENT_ID, help="RECEIVE, SEND, DELIVER, FAIL, DEFER, DSN, ..."),
    Parameter("Start", DATETIME, help='From this time ("1/5/2024 3:00 PM", local time).'),
    Parameter("End", DATETIME, help="Until this time."),
    Parameter("MessageSubject", STRING, help="Events whose subject contains this text."),
    Parameter(
        "ResultSize",
        UNLIMITED_INT,
        help=f"At most this many events (default {DEFAULT_RESULT_SIZE}).",
    ),
    synopsis="Searches the message tracking logs of the Hub Transport servers.",
    description="Without -Server every Hub Transport server is searched (the EMS: only its own).",
    examples=(
        "Get-MessageTrackingLog -MessageId ny-to-fl@contoso.com",
        'Get-MessageTrackingLog -Server EX-FL1 -EventId DELIVER -Start "1/5/2024 3:00 PM"',
        "Get-TransportServer | Get-MessageTrackingLog -Sender alice@contoso.com",
    ),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def get_message_tracking_log(
    item: object | None, params: BoundParameters, inv: Inv
) -> Iterable[object]:
    size = params.get("ResultSize", DEFAULT_RESULT_SIZE)
    limit = None if size == UNLIMITED or not isinstance(size, int) else size
    recipients = params.get("Recipients")
    body: dict[str, object] = {
        "message_id": params.typed("MessageId", str),
        "sender": params.typed("Sender", str),
        "recipients": list(recipients) if isinstance(recipients, tuple) else None,
        "event_id": params.typed("EventId", str),
        "start": _iso(params.get("Start")),
        "end": _iso(params.get("End")),
        "message_subject": params.typed("MessageSubject", str),
        "result_size": limit if limit is not None else 2**31 - 1,
    }
    hubs = chosen_hubs(inv, params.typed("Server", str))
    answers = gather(inv, hubs, lambda s: inv.services.admin_post(s, "/tracking", body))
    events = sorted((api_record(TYPE, e) for e in answers), key=_when)
    return events if limit is None else events[:limit]


DEFINITIONS = (get_message_tracking_log,)
