"""Test-Mailflow: send a test message between system mailboxes and time its delivery (spec 9.2).

As in Exchange, the message goes from the system mailbox of the tested
server's database to the system mailbox of the target's (another server,
another database, or the same one), or to ``-TargetEmailAddress``.  It is
submitted to a Hub of the source's site the way a server submits: from the
server's own address, with Exchange Server authentication (X-EXPS) under the
server's certificate.  Delivery is seen in the target site's message
tracking log (the DELIVER event); MessageLatencyTime runs from submission to
that event.

System mailboxes (``SystemMailbox-<guid>``, see :mod:`.mailboxes`) are created in the directory
the first time a database is used here, as Exchange setup creates them with
the database; Get-Mailbox does not show them.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from sitemail.mailflow.envelope import EnvelopeRecipient
from sitemail.mailflow.outbound import OutboundMessage, SenderSettings, Target
from sitemail.mailflow.send_decision import reply_text
from sitemail.mailflow.smtp_sender import send_message
from sitemail.org.model import ExchangeVersion, Mailbox, MailboxDatabase, Server
from sitemail.org.pki import PeerVerifier, server_cert_files
from sitemail.shell import (
    BY_VALUE,
    STRING,
    SWITCH,
    BoundParameters,
    CmdletError,
    IntType,
    Parameter,
    Record,
    TableView,
    cmdlet,
)

from .admin_client import AdminError
from .common import Inv, nonterminating, reported
from .mailboxes import SYSTEM_MAILBOX_PREFIX
from .services import ExchangeServices, matches, pick_one

TYPE = "Microsoft.Exchange.Monitoring.TestMailflowResult"
VIEW = TableView.of(TYPE, "TestMailflowResult", "MessageLatencyTime", "IsRemoteTest")
SUCCESS = "Success"
FAILURE = "*FAILURE*"
POLL_INTERVAL = 0.25
DIRECTORY_SETTLE = 1.5
# Spec 9.2's defaults, in seconds.
ERROR_LATENCY_LOCAL = 15
ERROR_LATENCY_REMOTE = 180
EXECUTION_TIMEOUT = 240
_SYSTEM_NAMESPACE = uuid.UUID("6f6b1ad9-3c43-4a53-9a43-5e4b1f0c7a10")


def system_mailbox(services: ExchangeServices, database: MailboxDatabase) -> Mailbox:
    """The database's system mailbox, created in the directory if it is not there yet."""
    alias = f"{SYSTEM_MAILBOX_PREFIX}{uuid.uuid5(_SYSTEM_NAMESPACE, database.name.lower())}"
    found = services.directory.get(Mailbox, alias)
    if found is not None:
        return found
    mailbox = Mailbox(
        alias=alias,
        display_name=alias,
        primary_smtp_address=f"{alias}@{services.domain}",
        database=database.name,
    )
    with reported():
        services.directory.put(mailbox)
    # Running hubs re-read the directory within a second; one that routed the test
    # message before seeing its recipient would refuse it as unknown.
    time.sleep(DIRECTORY_SETTLE)
    return mailbox


def _databases(services: ExchangeServices, server: Server) -> list[MailboxDatabase]:
    return [
        d
        for d in services.directory.list(MailboxDatabase)
        if d.server.casefold() == server.name.casefold()
    ]


def _first_database(services: ExchangeServices, server: Server) -> MailboxDatabase:
    found = _databases(services, server)
    if server.version is not ExchangeVersion.E2010 or not found:
        raise CmdletError(
            f"Server {server.name} isn't an Exchange 2010 Mailbox server with a mailbox "
            "database; Test-Mailflow runs against Mailbox servers."
        )
    return found[0]


def _database_server(services: ExchangeServices, database: MailboxDatabase) -> Server:
    return services.server(database.server)


def _target(
    services: ExchangeServices, params: BoundParameters, source_db: MailboxDatabase
) -> tuple[str, MailboxDatabase]:
    """The recipient address and the database it lives in."""
    address = params.typed("TargetEmailAddress", str)
    if address is not None:
        mailbox = pick_one(
            address,
            (m for m in services.directory.list(Mailbox) if matches(address, *m.all_addresses)),
        )
        database = services.directory.require(MailboxDatabase, mailbox.database)
        return mailbox.primary_smtp_address, database
    database_name = params.typed("TargetDatabase", str)
    if database_name is not None:
        database = pick_one(
            database_name,
            (d for d in services.directory.list(MailboxDatabase) if matches(database_name, d.name)),
        )
    elif params.typed("TargetMailboxServer", str) is not None:
        server = services.server(str(params["TargetMailboxServer"]))
        database = _first_database(services, server)
    else:
        database = source_db
    return system_mailbox(services, database).primary_smtp_address, database


def _submission_hub(services: ExchangeServices, source: Server) -> Server:
    if source.is_hub:
        return source
    for hub in services.hubs():
        if hub.site.casefold() == source.site.casefold():
            return hub
    raise CmdletError(f"Site {source.site} has no Hub Transport server to submit to.")


def _message(sender: str, recipient: str, message_id: str, source: Server) -> bytes:
    lines = [
        f"From: Microsoft Exchange <{sender}>",
        f"To: <{recipient}>",
        f"Subject: Test-Mailflow {message_id.strip('<>').split('@')[0]}",
        f"Message-ID: {message_id}",
        f"Date: {email.utils.format_datetime(datetime.now(UTC))}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"This is a test message sent by Test-Mailflow from {source.name}.",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def submit(
    services: ExchangeServices, source: Server, sender: str, recipient: str, message_id: str
) -> None:
    """Hand the test message to a hub of the source's site, as the server itself would."""
    hub = _submission_hub(services, source)
    pki = services.lab_dir / "pki"
    data = _message(sender, recipient, message_id, source)
    settings = SenderSettings(
        fqdn=source.fqdn,
        server_name=source.name,
        cert_files=server_cert_files(pki, source.name),
        verifier=PeerVerifier.from_file(pki / "ca.pem"),
        connect_timeout=30.0,
        reply_timeout=60.0,
    )
    result = asyncio.run(
        send_message(
            [Target(hub.fqdn, services.address(hub), services.port(25))],
            OutboundMessage(sender, (EnvelopeRecipient(recipient),), size=len(data)),
            lambda: [data],
            settings,
            local_address=services.address(source),
        )
    )
    if result.last_error is not None:
        raise CmdletError(
            f"The test message couldn't be submitted to {hub.name}: {result.last_error}"
        )
    refused = [r for r in result.recipients if r.status.value != "delivered"]
    if refused:
        raise CmdletError(
            f"{hub.name} refused the test message for {recipient}: {reply_text(refused[0].reply)}"
        )


def _delivered_at(inv: Inv, hubs: list[Server], message_id: str) -> datetime | None:
    body: dict[str, object] = {"message_id": message_id, "event_id": "DELIVER"}
    for hub in hubs:
        try:
            answer = inv.services.admin_post(hub, "/tracking", body)
        except AdminError:  # a hub that does not answer now may answer on the next poll
            continue
        for event in answer if isinstance(answer, list) else []:
            if isinstance(event, Mapping) and isinstance(event.get("Timestamp"), str):
                moment = datetime.fromisoformat(str(event["Timestamp"]))
                return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


@cmdlet(
    "Test-Mailflow",
    Parameter(
        "Identity",
        STRING,
        position=0,
        pipeline=BY_VALUE,
        help="The Mailbox server that sends (default: the server the shell runs on).",
    ),
    Parameter("TargetMailboxServer", STRING, help="Send to this Mailbox server's system mailbox."),
    Parameter("TargetDatabase", STRING, help="Send to this database's system mailbox."),
    Parameter("TargetEmailAddress", STRING, help="Send to this mailbox instead."),
    Parameter(
        "AutoDiscoverTargetMailboxServer",
        SWITCH,
        help="Pick a Mailbox server of another site as the target.",
    ),
    Parameter(
        "ErrorLatency",
        IntType(1, 86400),
        help="Seconds after which a delivery counts as slow (15 local, 180 remote).",
    ),
    Parameter(
        "ExecutionTimeout",
        IntType(1, 86400),
        help=f"Seconds to wait for delivery before *FAILURE* (default {EXECUTION_TIMEOUT}).",
    ),
    Parameter("ActiveDirectoryTimeout", IntType(1, 3600), help="Accepted; the directory is local."),
    synopsis="Sends a test message between system mailboxes and reports whether and how fast "
    "it was delivered.",
    examples=(
        "Test-Mailflow",
        "Test-Mailflow EX-NY1 -TargetMailboxServer EX-FL1",
        "Test-Mailflow -TargetEmailAddress adam@contoso.com -ExecutionTimeout 60",
    ),
    output_type=TYPE,
    views=(VIEW,),
)
@nonterminating
def test_mailflow(item: object | None, params: BoundParameters, inv: Inv) -> Iterable[object]:
    services = inv.services
    name = params.typed("Identity", str)
    source = services.server(name) if name else services.local_server()
    source_db = _first_database(services, source)
    if params.switch("AutoDiscoverTargetMailboxServer"):
        others = [
            s
            for s in services.servers()
            if s.site.casefold() != source.site.casefold()
            and _databases(services, s)
            and s.version is ExchangeVersion.E2010
        ]
        if not others:
            raise CmdletError("No Mailbox server in another site was found to send to.")
        recipient = system_mailbox(services, _first_database(services, others[0]))
        target_address, target_db = (
            recipient.primary_smtp_address,
            _first_database(services, others[0]),
        )
    else:
        target_address, target_db = _target(services, params, source_db)
    target_server = _database_server(services, target_db)
    remote = target_server.site.casefold() != source.site.casefold()
    sender = system_mailbox(services, source_db).primary_smtp_address
    message_id = f"<{uuid.uuid4()}@{source.fqdn}>"
    timeout = params.typed("ExecutionTimeout", int, EXECUTION_TIMEOUT)
    error_latency = params.typed(
        "ErrorLatency", int, ERROR_LATENCY_REMOTE if remote else ERROR_LATENCY_LOCAL
    )
    delivering = [h for h in services.hubs() if h.site.casefold() == target_server.site.casefold()]
    started = datetime.now(UTC)
    submit(services, source, sender, target_address, message_id)
    deadline = time.monotonic() + timeout
    delivered = _delivered_at(inv, delivering, message_id)
    while delivered is None and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        delivered = _delivered_at(inv, delivering, message_id)
    if delivered is None:
        inv.write_warning(
            f"The test message {message_id} wasn't delivered within {timeout} seconds. "
            f"Get-Queue and Get-MessageTrackingLog -MessageId {message_id.strip('<>')} show "
            "where it waits."
        )
        latency = timedelta(0)
    else:
        latency = max(delivered - started, timedelta(0))
        if latency > timedelta(seconds=error_latency):
            inv.write_warning(
                f"Delivery took {latency}, more than the ErrorLatency of {error_latency} seconds."
            )
    return [
        Record(
            TYPE,
            [
                ("TestMailflowResult", SUCCESS if delivered is not None else FAILURE),
                ("MessageLatencyTime", latency),
                ("IsRemoteTest", remote),
            ],
        )
    ]


DEFINITIONS = (test_mailflow,)
