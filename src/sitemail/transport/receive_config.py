"""What the hub's SMTP receive side is given: its configuration, environment and hand-off.

:class:`ReceiveConfig` is the directory's view (the server, the
organization, its receive connectors), replaced whole on a change;
:class:`ReceiveEnvironment` is what the process provides (directory, clock,
the durable hand-off to the queue, TLS contexts, the protocol log).  Both
the transport process and its receive workers build them here.
"""

from __future__ import annotations

import asyncio
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sitemail.clock import Clock
from sitemail.mailflow.envelope import Envelope, MessageAcceptor, SpoolWriter
from sitemail.mailflow.log_files import LogLimits
from sitemail.mailflow.protocol_log import NullProtocolLog, ProtocolLog
from sitemail.org.directory import Directory
from sitemail.org.model import Organization, ReceiveConnector, Server, TransportSettings
from sitemail.org.pki import PeerVerifier, server_cert_files, server_ssl_context


@dataclass
class ReceiveConfig:
    """Everything a session reads from the directory; replaced whole on a change."""

    server: Server
    organization: Organization
    connectors: list[ReceiveConnector]


class SessionAcceptor(Protocol):
    """The durable hand-off as a session sees it: spool the body, then wait for the queue."""

    def open_spool(self) -> SpoolWriter: ...

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        """The InternalId once message and envelope are on disk; :class:`AcceptError` if not."""
        ...


class ShadowDesk(Protocol):
    """What a session needs of the queue for shadow redundancy (XSHADOW, XQDISCARD)."""

    @property
    def shadow_id(self) -> str:
        """The queue database's shadow id (the XSHADOW answer)."""
        ...

    async def take_discards(self, peer: str, limit: int) -> list[int]:
        """InternalIds of ``peer``'s messages that are done here, told once."""
        ...


class StoreShadowDesk:
    """The queue store as a :class:`ShadowDesk` (in the transport process)."""

    def __init__(self, store: ShadowStore) -> None:
        self.store = store
        self.shadow_id = store.shadow_id  # fixed for the life of the file

    async def take_discards(self, peer: str, limit: int) -> list[int]:
        return await asyncio.to_thread(self.store.take_discards, peer, limit)


class ShadowStore(Protocol):
    @property
    def shadow_id(self) -> str: ...

    def take_discards(self, peer: str, limit: int) -> list[int]: ...


# accept() blocks its thread in the group commit until its group is in (and first
# for an fsync when the body is large; transport.queue.acceptance): every session
# waiting for its 250 holds a thread.  asyncio's default pool (cores + 4 threads)
# would cap a whole hub at that many messages in flight and queue the rest behind.
ACCEPT_THREADS = 64


class ThreadedAcceptor:
    """A blocking :class:`MessageAcceptor` (the queue store) run on its own thread pool."""

    def __init__(self, acceptor: MessageAcceptor, threads: int = ACCEPT_THREADS) -> None:
        self.acceptor = acceptor
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="accept")

    def open_spool(self) -> SpoolWriter:
        return self.acceptor.open_spool()

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.acceptor.accept, spool, envelope)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class ReceiveEnvironment:
    """What the receive side needs from its process."""

    directory: Directory
    clock: Clock
    acceptor: SessionAcceptor
    pki_dir: Path
    port_offset: int
    protocol_log: ProtocolLog | NullProtocolLog
    verifier: PeerVerifier
    starttls_context: ssl.SSLContext | None
    anonymous_tls_context: ssl.SSLContext | None
    shadow: ShadowDesk | None = None  # None: XSHADOW is neither offered nor answered


def receive_log_limits(t: TransportSettings) -> LogLimits:
    return LogLimits(
        max_file_size=t.receive_protocol_log_max_file_size,
        max_directory_size=t.receive_protocol_log_max_directory_size,
        max_age=t.receive_protocol_log_max_age,
    )


def load_config(directory: Directory, server_name: str) -> ReceiveConfig:
    server = directory.require(Server, server_name)
    orgs = directory.list(Organization)
    if not orgs:
        raise LookupError("the directory holds no organization")
    connectors = [
        c for c in directory.list(ReceiveConnector) if c.server.lower() == server.name.lower()
    ]
    return ReceiveConfig(server, orgs[0], connectors)


def tls_contexts(pki_dir: Path, server: str) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(STARTTLS context, X-ANONYMOUSTLS context) or (None, None) without a certificate."""
    files = server_cert_files(pki_dir, server)
    if not files.cert.exists():
        return None, None
    starttls = server_ssl_context(files)
    # X-ANONYMOUSTLS asks for the sender's certificate: that is how a hub proves it is a
    # server of the organization (it stands in for the Kerberos ticket of X-EXPS).
    anonymous = server_ssl_context(files, ca_file=pki_dir / "ca.pem", client_certs="optional")
    return starttls, anonymous
