"""SMTPSVC of the legacy Exchange 2003 server: SMTP in, straight into its mailbox databases.

An organization being migrated keeps its Exchange 2003 server (EX2003 in the
seed) in the "First Routing Group".  A 2010 hub routes a 2003 mailbox's
mail there (DeliveryType ``SmtpRelayToTiRg``) by SMTP to port 25, without
Exchange authentication (X-EXPS GSSAPI needs a Windows domain).  This
service is what answers: IIS 6.0's SMTP service with Exchange 2003 on top,
its banner and replies, taking mail for the mailboxes whose database is on
this server from anyone, and relaying for nobody.

Why there is no queue here: this server is the last hop for every message it
takes, so each one goes straight into the mailbox database through the
server's own Information Store (MSExchangeIS, in the same process).  A
delivery is one SQLite transaction with ``synchronous=FULL`` that commits
before the 250 is sent, so the commit is the durability point a queue would
give, without a second copy or a worker.  The delivery id is
``<Message-ID>:<recipient>`` (the hub's own form), so when a store failure
for one recipient makes the reply a 451 and the hub sends the message
again, the recipients already stored are not stored twice.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.limits import DEFAULT_MAX_MESSAGE_SIZE
from sitemail.mailbox.service import InformationStoreService
from sitemail.mailbox.store_backend import StoreBackend
from sitemail.mailflow.envelope import AcceptError, Envelope, SpoolWriter
from sitemail.mta.profile import Limits, Replies, SessionFacts
from sitemail.mta.session import MtaListener
from sitemail.org.directory import Directory
from sitemail.org.model import Mailbox, MailboxDatabase, Organization, Server
from sitemail.org.pki import server_cert_files, server_ssl_context
from sitemail.protocols.smtp import Reply
from sitemail.server.context import ProcessContext
from sitemail.server.services import DISPLAY_NAMES, ServiceHost
from sitemail.transport.greeting import banner_date
from sitemail.transport.headers import delivered_to_key, submit_time_of

# The logger keeps the name it had under sitemail.lab: log lines stay as they were.
log = logging.getLogger(__name__)

SERVICE_NAME = "SMTPSVC"
SMTP_PORT = 25
#: The SMTP service version of Windows Server 2003 SP2 (IIS 6.0) as its banner and
#: Received headers show it.  General knowledge, not from the specs: change it here.
SMTPSVC_VERSION = "6.0.3790.4675"


def _r(code: int, enhanced: str | None, text: str) -> Reply:
    return Reply(code, enhanced, (text,))


# The replies of Exchange 2003's SMTP service (general knowledge of IIS 6.0
# SMTP; where sitemail had to choose a text, the comment says so).
EXCHANGE_2003_REPLIES = Replies(
    hello_first=_r(503, "5.5.2", "Send hello first"),
    nested_mail=_r(503, "5.5.2", "Sender already specified"),
    need_mail=_r(503, "5.5.2", "Need mail command."),
    need_rcpt=_r(503, "5.5.2", "Need Rcpt command."),
    bad_sender=_r(501, "5.5.4", "Invalid Address"),
    bad_recipient=_r(501, "5.5.4", "Invalid Address"),
    bad_parameter=_r(501, "5.5.4", "Invalid arguments"),
    syntax_error=_r(501, "5.5.4", "Invalid arguments"),
    unknown_command=_r(500, "5.3.3", "Unrecognized command"),
    line_too_long=_r(500, "5.3.3", "Unrecognized command"),
    data_start=_r(354, None, "Start mail input; end with <CRLF>.<CRLF>"),
    reset=_r(250, "2.0.0", "Resetting"),
    noop=_r(250, "2.0.0", "OK"),
    vrfy=_r(252, "2.1.5", "Cannot VRFY user, but will take message for this user"),
    help=_r(214, None, "This server supports the following commands:"),
    closing=_r(221, "2.0.0", "Service closing transmission channel"),
    tls_ready=_r(220, "2.0.0", "SMTP server ready"),
    tls_active=_r(503, "5.5.2", "Only one STARTTLS command can be issued per session"),
    auth_unavailable=_r(504, "5.7.4", "Unrecognized authentication type"),
    auth_in_transaction=_r(503, "5.5.2", "Sender already specified"),
    auth_already=_r(503, "5.5.2", "Already authenticated"),
    auth_bad_mechanism=_r(504, "5.7.4", "Unrecognized authentication type"),
    auth_ok=_r(235, "2.7.0", "Authentication successful"),
    auth_failed=_r(535, "5.7.3", "Authentication unsuccessful"),
    auth_cancelled=_r(501, "5.7.0", "Authentication cancelled"),
    size_exceeded=_r(552, "5.3.4", "Message size exceeds fixed maximum message size"),
    too_many_recipients=_r(452, "4.5.3", "Too many recipients"),
    too_many_hops=_r(554, "5.4.6", "Hop count exceeded - possible mail loop"),
    # sitemail's text: the store could not take the message now; the hub retries.
    queue_error=_r(451, "4.3.2", "The mailbox store is not available; try again later"),
    timeout=_r(421, "4.4.1", "Connection timed out"),
    too_many_errors=_r(421, "4.7.0", "Too many errors on this connection"),
    busy=_r(421, "4.3.2", "Service not available, closing transmission channel"),
)
# The hubs send batches of recipients and up to the organization's message size;
# the SMTP limit stays just under the store's own (with room for the Received
# header added here), so that what SMTP takes the store takes too.
EXCHANGE_2003_LIMITS = Limits(
    max_message_size=DEFAULT_MAX_MESSAGE_SIZE - 64 * 1024,
    max_recipients=5000,
    idle_timeout=600.0,
)


def unable_to_relay(address: str) -> Reply:
    return _r(550, "5.7.1", f"Unable to relay for {address}")


USER_UNKNOWN = _r(550, "5.1.1", "User unknown")


# ---------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class LegacyProfile:
    """Exchange 2003's SMTP voice and rule: own mailboxes from anyone, no relay."""

    hostname: str
    own_addresses: frozenset[str]
    """Addresses of the mailboxes whose database is on this server (lower case)."""
    organization_addresses: frozenset[str]
    """Every mailbox address of the organization (lower case)."""
    accepted_domains: frozenset[str]
    limits: Limits = EXCHANGE_2003_LIMITS
    replies: Replies = EXCHANGE_2003_REPLIES
    chunking: bool = True

    def banner(self, now: datetime) -> str:
        # Two spaces after "at": that is how 2003 prints it.
        return (
            f"220 {self.hostname} Microsoft ESMTP MAIL Service, Version: {SMTPSVC_VERSION} "
            f"ready at  {banner_date(now)}"
        )

    def hello(self, facts: SessionFacts, *, ehlo: bool, tls_available: bool) -> Reply:
        greeting = f"{self.hostname} Hello [{facts.remote_ip}]"
        if not ehlo:
            return Reply.of(250, greeting)
        # 2003's EHLO order, keeping only what this service does: no TURN/ETRN,
        # no AUTH or X-EXPS (no Windows domain), no X-LINK2STATE/XEXCH50.
        lines = [
            greeting,
            "SIZE",
            "PIPELINING",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "8bitmime",
            "BINARYMIME",
            "CHUNKING",
            "VRFY",
        ]
        if tls_available and not facts.secure:
            lines += ["TLS", "STARTTLS"]
        lines.append("OK")
        return Reply.of(250, *lines)

    def hello_syntax(self, verb: str) -> Reply:
        return _r(501, "5.5.4", "Invalid arguments")

    def auth_mechanisms(self, facts: SessionFacts) -> tuple[str, ...]:
        return ()

    def check_mail(self, facts: SessionFacts, sender: str) -> Reply | None:
        return None

    def check_rcpt(self, facts: SessionFacts, recipient: str) -> Reply | None:
        if facts.rcpt_count >= self.limits.max_recipients:
            return self.replies.too_many_recipients
        address = recipient.lower()
        if address in self.own_addresses:
            return None
        domain = address.rpartition("@")[2]
        if domain in self.accepted_domains and address not in self.organization_addresses:
            return USER_UNKNOWN
        # Another server's mailbox or another domain: this server routes nothing on.
        return unable_to_relay(recipient)

    def sender_ok(self, sender: str) -> Reply:
        return _r(250, "2.1.0", f"{sender}....Sender OK")

    def recipient_ok(self, recipient: str) -> Reply:
        return _r(250, "2.1.5", recipient)

    def queued(self, message_id: str, queue_id: str) -> Reply:
        return _r(250, "2.6.0", f"{message_id} Queued mail for delivery")

    def received(self, facts: SessionFacts, helo: str, now: datetime) -> bytes:
        text = (
            f"Received: from {helo or facts.remote_ip} ([{facts.remote_ip}]) by {self.hostname} "
            f"with Microsoft SMTPSVC({SMTPSVC_VERSION});\r\n\t {banner_date(now)}\r\n"
        )
        return text.encode("ascii", errors="replace")

    def login(self, user: str, password: str) -> str | None:
        return None


def legacy_profile(directory: Directory, server: Server) -> LegacyProfile:
    """The profile of ``server`` from the directory as it is now."""
    here = {
        d.name.lower()
        for d in directory.list(MailboxDatabase)
        if d.server.lower() == server.name.lower()
    }
    own: set[str] = set()
    everyone: set[str] = set()
    for mailbox in directory.list(Mailbox):
        addresses = {a.lower().removeprefix("smtp:") for a in mailbox.all_addresses}
        everyone |= addresses
        if mailbox.database.lower() in here:
            own |= addresses
    domains = {d.domain_name for o in directory.list(Organization) for d in o.accepted_domains}
    return LegacyProfile(
        hostname=server.fqdn,
        own_addresses=frozenset(own),
        organization_addresses=frozenset(everyone),
        accepted_domains=frozenset(domains),
    )


# ---------------------------------------------------------------------------- the sink


class TempSpool:
    """A body in an anonymous temporary file: nothing to clean up after a crash."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self._size += len(data)

    def abort(self) -> None:
        self.file.close()


class StoreSink:
    """Delivers each accepted message into the recipients' mailbox databases."""

    def __init__(self, store: Callable[[], StoreBackend | None], spool_dir: Path) -> None:
        self.store = store
        self.spool_dir = spool_dir

    def open_spool(self) -> SpoolWriter:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        return TempSpool(tempfile.TemporaryFile(dir=self.spool_dir))

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> str:
        if not isinstance(spool, TempSpool):
            raise AcceptError("this spool was not opened by this service")
        backend = self.store()
        if backend is None:
            raise AcceptError("the Information Store (MSExchangeIS) is not running")
        file = spool.file
        address = ""
        try:
            file.flush()
            file.seek(0)
            submitted = submit_time_of(file.read(64 * 1024))
            for rcpt in envelope.recipients:
                address = rcpt.address.lower()
                delivery_id = delivered_to_key(envelope.internet_message_id, submitted, address)

                def deliver(address: str = address, delivery_id: str = delivery_id) -> None:
                    database, where = backend.resolve(address)
                    file.flush()
                    file.seek(0)
                    database.deliver(where.alias, delivery_id, file)

                await backend.run(deliver)
        except (StoreError, OSError) as exc:
            raise AcceptError(f"could not store the message for {address}: {exc}") from exc
        finally:
            spool.abort()
        return envelope.internet_message_id


# ---------------------------------------------------------------------------- the service


def _store_of(host: ServiceHost | None) -> Callable[[], StoreBackend | None]:
    def backend() -> StoreBackend | None:
        if host is None:
            return None
        with contextlib.suppress(Exception):
            service = host.get("MSExchangeIS")
            if isinstance(service, InformationStoreService):
                return service.backend
        return None

    return backend


class LegacySmtpService:
    """``SMTPSVC`` of an Exchange 2003 server (a :class:`Service` of its process)."""

    name = SERVICE_NAME
    display_name = DISPLAY_NAMES[SERVICE_NAME]

    def __init__(
        self,
        ctx: ProcessContext,
        server: Server,
        store: Callable[[], StoreBackend | None],
    ) -> None:
        self.ctx = ctx
        self.server = server
        self.sink = StoreSink(store, ctx.home / "mailbox" / "spool")
        self.listener: MtaListener | None = None
        self._profile: LegacyProfile | None = None
        self._counter = -1

    @classmethod
    def from_context(
        cls, ctx: ProcessContext, server: Server, host: ServiceHost | None
    ) -> LegacySmtpService:
        """The service of the server process ``ctx``, storing through ``host``'s MSExchangeIS."""
        return cls(ctx, server, _store_of(host))

    def profile(self) -> LegacyProfile:
        directory = self.ctx.directory
        counter = directory.change_counter()
        if self._profile is None or counter != self._counter:
            server = directory.get(Server, self.server.name) or self.server
            self._profile = legacy_profile(directory, server)
            self._counter = counter
        return self._profile

    def _tls(self) -> ssl.SSLContext | None:
        files = server_cert_files(self.ctx.pki_dir, self.server.name)
        return server_ssl_context(files) if files.cert.exists() else None

    async def start(self) -> None:
        if self.listener is not None:
            return
        listener = MtaListener(
            self.profile,
            self.sink,
            tls=self._tls(),
            port_offset=self.ctx.port_offset,
            clock=self.ctx.clock,
        )
        try:
            for address in self.server.addresses or [self.ctx.address]:
                await listener.listen(address, SMTP_PORT)
        except BaseException:
            await listener.close()
            raise
        self.listener = listener

    async def stop(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            await listener.close()
