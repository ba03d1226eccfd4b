"""Get-Queue, Retry-Queue, Suspend-Queue and Resume-Queue (spec 5.2, 5.4).

Queues live in each Hub's transport service; these cmdlets ask the hubs'
admin API.  Without ``-Server`` or a server in the identity, Get-Queue asks
every Exchange 2010 Hub Transport server of the organization (the EMS on a
hub asks only that hub; one shell here sees the whole lab), so that::

    Get-Queue | Where-Object {$_.Status -eq "Retry"} | Retry-Queue

retries every queue in Retry wherever it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sitemail.org.model import Server
from sitemail.shell import (
    BOOL,
    FILTER,
    STRING,
    BoundParameters,
    CmdletDefinition,
    CmdletError,
    Parameter,
    Record,
    RecordFilter,
    TableView,
    cmdlet,
)
from sitemail.shell.operators import has_wildcard

from .admin_client import AdminError
from .common import SERVER_PARAMETER, Inv, identity_parameter, nonterminating
from .param_types import UNLIMITED, UNLIMITED_INT
from .runtime_state import api_record, chosen_hubs, gather, identity_matches, with_server
from .services import ExchangeServices, not_found

TYPE = "Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo"
VIEW = TableView.of(TYPE, "Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain")

FILTER_PARAMETER = Parameter(
    "Filter",
    FILTER,
    help='An OPATH filter on queue properties: {Status -eq "Retry"}, {MessageCount -gt 10}, '
    '{LastError -like "451 4.4.0*"}.',
)


def fetch_queues(inv: Inv, servers: Iterable[Server]) -> list[Record]:
    answers = gather(inv, servers, lambda s: inv.services.admin_get(s, "/queues"))
    return [api_record(TYPE, q) for q in answers]


def select_queues(
    inv: Inv, identity: str | None, server: str | None, query: RecordFilter | None
) -> list[Record]:
    if identity is not None:
        hub, full = with_server(inv, identity)
        queues = [q for q in fetch_queues(inv, [hub]) if identity_matches(full, str(q["Identity"]))]
        if not queues and not has_wildcard(identity):
            raise CmdletError(not_found(identity))
    else:
        queues = fetch_queues(inv, chosen_hubs(inv, server))
    return [q for q in queues if query is None or query.matches(q)]


@cmdlet(
    "Get-Queue",
    Parameter(
        "Identity",
        STRING,
        position=0,
        help="SERVER\\Submission, SERVER\\Unreachable, SERVER\\Poison or SERVER\\<number>.",
    ),
    SERVER_PARAMETER,
    FILTER_PARAMETER,
    Parameter("ResultSize", UNLIMITED_INT, help="At most this many queues (default unlimited)."),
    synopsis="Lists the transport queues of the Hub Transport servers.",
    description=(
        "Without -Server or a server in the identity, every Exchange 2010 Hub Transport "
        "server is asked (the EMS asks only its own server)."
    ),
    examples=(
        "Get-Queue",
        'Get-Queue -Filter {Status -eq "Retry"} | Format-List',
        "Get-Queue EX-NY1\\Submission",
    ),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def get_queue(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    queues = select_queues(
        inv,
        params.typed("Identity", str),
        params.typed("Server", str),
        params.typed("Filter", RecordFilter),
    )
    size = params.get("ResultSize")
    return queues if size in (None, UNLIMITED) or not isinstance(size, int) else queues[:size]


def _queue_action(
    name: str,
    path: str,
    synopsis: str,
    examples: tuple[str, ...],
    extra: tuple[Parameter, ...] = (),
    body: Callable[[BoundParameters], dict[str, object]] = lambda params: {},
) -> CmdletDefinition[ExchangeServices]:
    @cmdlet(
        name,
        identity_parameter("queue (SERVER\\<queue>)", mandatory=False),
        SERVER_PARAMETER,
        FILTER_PARAMETER,
        *extra,
        synopsis=synopsis,
        examples=examples,
        supports_should_process=True,
    )
    @nonterminating
    def act(item: object | None, params: BoundParameters, inv: Inv) -> None:
        identity = params.typed("Identity", str)
        query = params.typed("Filter", RecordFilter)
        if identity is None and query is None:
            raise CmdletError(f"{name} needs -Identity or -Filter (with -Server if you like).")
        if identity is not None and not has_wildcard(identity):
            targets = [with_server(inv, identity)[1]]
        else:
            queues = select_queues(inv, identity, params.typed("Server", str), query)
            targets = [str(q["Identity"]) for q in queues]
        for target in targets:
            hub, full = with_server(inv, target)
            if not inv.should_process(full, name):
                continue
            try:
                inv.services.admin_post(hub, path, {"identity": full, **body(params)})
            except (AdminError, CmdletError) as error:  # one refusal must not stop the rest
                inv.write_error(error.message)

    return act


retry_queue = _queue_action(
    "Retry-Queue",
    "/queues/retry",
    "Connects again now for a queue in Retry (-Resubmit $true re-routes its messages).",
    (
        'Get-Queue | Where-Object {$_.Status -eq "Retry"} | Retry-Queue',
        "Retry-Queue EX-NY1\\Unreachable -Resubmit $true",
    ),
    (
        Parameter(
            "Resubmit",
            BOOL,
            help="$true: send the messages back through the categorizer (needed for Unreachable).",
        ),
    ),
    lambda params: {"resubmit": params.get("Resubmit") is True},
)
suspend_queue = _queue_action(
    "Suspend-Queue",
    "/queues/suspend",
    "Stops delivery from a queue; new messages still enter it.",
    ("Suspend-Queue EX-NY1\\5",),
)
resume_queue = _queue_action(
    "Resume-Queue",
    "/queues/resume",
    "Resumes delivery from a suspended queue.",
    ('Get-Queue -Filter {Status -eq "Suspended"} | Resume-Queue',),
)

DEFINITIONS = (get_queue, retry_queue, suspend_queue, resume_queue)
