"""What a session answers when the queue's answer does not come (receive workers' case).

A worker whose transport process died after being asked to commit cannot
know whether the message is queued.  It must not say 4xx (that tells the
client the message was not taken, and it may have been): it closes the
connection without a reply, as a crash would.  A refusal the store did give
is still a 452.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitemail.clock import SYSTEM_CLOCK
from sitemail.diagnose.logs import read_protocol_log
from sitemail.mailflow.envelope import AcceptError, AcceptOutcomeUnknown, Envelope, SpoolWriter
from sitemail.mailflow.protocol_log import ProtocolLog
from sitemail.org.defaults import default_receive_connectors
from sitemail.org.model import (
    AcceptedDomain,
    LoggingLevel,
    Organization,
    PermissionGroup,
    Server,
    ServerRole,
)
from sitemail.org.pki import PeerVerifier
from sitemail.org.sqlite_directory import SqliteDirectory
from sitemail.transport.queue.spool import SpoolFile
from sitemail.transport.receive_config import ReceiveConfig, ReceiveEnvironment
from sitemail.transport.receive_listeners import ReceiveListeners

ADDRESS, OFFSET = "127.88.3.11", 28000  # Default binds 0.0.0.0:25, here ADDRESS:28025


class FailingAcceptor:
    def __init__(self, tmp: Path, error: Exception) -> None:
        self.tmp, self.error = tmp, error

    def open_spool(self) -> SpoolWriter:
        return SpoolFile(self.tmp)

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        raise self.error


@pytest.fixture
def hub(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    server = Server(
        name="EX05",
        fqdn="ex05.contoso.com",
        site="S",
        roles=[ServerRole.HUB_TRANSPORT],
        addresses=[ADDRESS],
    )
    org = Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    (tmp_path / "ca.pem").write_bytes(b"")
    env = ReceiveEnvironment(
        directory=SqliteDirectory(tmp_path / "directory.db"),
        clock=SYSTEM_CLOCK,
        acceptor=FailingAcceptor(tmp_path, request.param),
        pki_dir=tmp_path,
        port_offset=OFFSET,
        protocol_log=ProtocolLog.receive(tmp_path / "SmtpReceive"),
        verifier=PeerVerifier.__new__(PeerVerifier),  # never asked: no TLS here
        starttls_context=None,
        anonymous_tls_context=None,
    )
    # The Default connector, opened to anonymous senders for the accepted domain.
    default = default_receive_connectors(server)[0]
    groups = [*default.permission_groups, PermissionGroup.ANONYMOUS_USERS]
    connector = default.model_copy(
        update={"permission_groups": groups, "protocol_logging_level": LoggingLevel.VERBOSE}
    )
    config = ReceiveConfig(server, org, [connector])
    loop = asyncio.new_event_loop()
    listeners = ReceiveListeners(env, config)
    loop.run_until_complete(listeners.apply(config))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path / "SmtpReceive"
    finally:
        asyncio.run_coroutine_threadsafe(listeners.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _send() -> smtplib.SMTP:
    client = smtplib.SMTP(ADDRESS, 25 + OFFSET, timeout=10)
    client.ehlo("client.example")
    client.mail("a@example.com")
    client.rcpt("bob@contoso.com")
    return client


@pytest.mark.parametrize(
    "hub", [AcceptOutcomeUnknown("the transport process is gone")], indirect=True
)
def test_an_unknown_outcome_gets_no_reply_at_all(hub: Path) -> None:
    client = _send()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.data(b"Subject: x\r\n\r\nhello\r\n")
    time.sleep(0.2)
    rows = [(row.event, row.data, row.context) for row in read_protocol_log(hub)]
    # The server closed on purpose, after saying why in its log; no reply was sent.
    assert rows[-2:] == [
        ("*", "", "Connection closed: the message's fate is unknown"),
        ("-", "", "Local"),
    ]
    assert not any(event == ">" and data.startswith("4") for event, data, _ in rows)


@pytest.mark.parametrize("hub", [AcceptError("disk full")], indirect=True)
@pytest.mark.usefixtures("hub")
def test_a_refusal_is_still_a_452() -> None:
    client = _send()
    code, text = client.data(b"Subject: x\r\n\r\nhello\r\n")
    assert (code, text) == (452, b"4.3.1 Insufficient system resources")
    client.quit()
