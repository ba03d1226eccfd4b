"""Get-Message, Suspend-Message, Resume-Message and Remove-Message (spec 5.4).

Message identities are ``SERVER\\<queue>\\<number>``; the server part says
which hub's admin API to ask.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable

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
from .runtime_state import api_record, chosen_hubs, gather, identity_matches, with_server
from .services import ExchangeServices, not_found

TYPE = "Microsoft.Exchange.Data.QueueViewer.ExtensibleMessageInfo"
VIEW = TableView.of(TYPE, "Identity", "FromAddress", "Status", "Queue", "Subject")

FILTER_PARAMETER = Parameter(
    "Filter",
    FILTER,
    help='An OPATH filter on message properties: {FromAddress -like "*@contoso.com"}.',
)


def select_messages(
    inv: Inv,
    identity: str | None,
    queue: str | None,
    server: str | None,
    query: RecordFilter | None,
) -> list[Record]:
    if queue is not None:
        hub, full_queue = with_server(inv, queue)
        path = "/messages?" + urllib.parse.urlencode({"queue": full_queue})
        answers = gather(inv, [hub], lambda s: inv.services.admin_get(s, path))
    elif identity is not None:
        hub, _ = with_server(inv, identity)
        answers = gather(inv, [hub], lambda s: inv.services.admin_get(s, "/messages"))
    else:
        hubs = chosen_hubs(inv, server)
        answers = gather(inv, hubs, lambda s: inv.services.admin_get(s, "/messages"))
    messages = [api_record(TYPE, m) for m in answers]
    if identity is not None:
        _, full = with_server(inv, identity)
        messages = [m for m in messages if identity_matches(full, str(m["Identity"]))]
        if not messages and not has_wildcard(identity):
            raise CmdletError(not_found(identity))
    return [m for m in messages if query is None or query.matches(m)]


@cmdlet(
    "Get-Message",
    Parameter("Identity", STRING, position=0, help="SERVER\\<queue>\\<number>."),
    Parameter(
        "Queue",
        STRING,
        help="Only the messages of this queue (SERVER\\<queue>).",
    ),
    SERVER_PARAMETER,
    FILTER_PARAMETER,
    synopsis="Lists the messages in the transport queues.",
    description="Without -Queue, -Server or an identity, every Hub Transport server is asked.",
    examples=("Get-Message", "Get-Message -Queue EX-NY1\\5 | Format-List"),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def get_message(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    return select_messages(
        inv,
        params.typed("Identity", str),
        params.typed("Queue", str),
        params.typed("Server", str),
        params.typed("Filter", RecordFilter),
    )


def _message_action(
    name: str,
    action: str,
    synopsis: str,
    examples: tuple[str, ...],
    extra: tuple[Parameter, ...] = (),
    body: Callable[[BoundParameters], dict[str, object]] = lambda params: {},
) -> CmdletDefinition[ExchangeServices]:
    @cmdlet(
        name,
        identity_parameter("message (SERVER\\<queue>\\<number>)", mandatory=False),
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
            found = select_messages(inv, identity, None, params.typed("Server", str), query)
            targets = [str(m["Identity"]) for m in found]
        for target in targets:
            hub, full = with_server(inv, target)
            if not inv.should_process(full, name):
                continue
            try:
                inv.services.admin_post(
                    hub, f"/messages/{action}", {"identity": full, **body(params)}
                )
            except (AdminError, CmdletError) as error:  # one refusal must not stop the rest
                inv.write_error(error.message)

    return act


remove_message = _message_action(
    "Remove-Message",
    "remove",
    "Deletes a queued message, with a non-delivery report to the sender unless -WithNDR $false.",
    ("Remove-Message EX-NY1\\5\\12 -WithNDR $false",),
    (
        Parameter(
            "WithNDR",
            BOOL,
            help="$true (default): the sender gets a non-delivery report; $false: silently.",
        ),
    ),
    lambda params: {"with_ndr": params.get("WithNDR") is not False},
)
suspend_message = _message_action(
    "Suspend-Message",
    "suspend",
    "Holds a message in its queue until Resume-Message.",
    ("Suspend-Message EX-NY1\\5\\12",),
)
resume_message = _message_action(
    "Resume-Message",
    "resume",
    "Lets a suspended message be delivered again.",
    ("Get-Message -Filter {Status -eq 'Suspended'} | Resume-Message",),
)

DEFINITIONS = (get_message, suspend_message, resume_message, remove_message)
