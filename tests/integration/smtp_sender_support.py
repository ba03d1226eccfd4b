"""The sending side of the SMTP sender's tests: addresses, settings, one send, its log.

The tests (``test_smtp_sender_*.py``) send with the hub's
:func:`~sitemail.mailflow.smtp_sender.send_message` from ``SENDER_IP`` to a
:class:`tests.doubles.smtp_peer.Peer` (or the real receive server).
Addresses are 127.88.x.y.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

from sitemail.diagnose.logs import read_protocol_log
from sitemail.mailflow.envelope import EnvelopeRecipient
from sitemail.mailflow.outbound import (
    OutboundMessage,
    SenderSettings,
    SendResult,
    Target,
    send_session_logs,
)
from sitemail.mailflow.protocol_log import ProtocolLog, ProtocolLoggingLevel
from sitemail.mailflow.smtp_sender import send_message
from sitemail.org.pki import OrganizationPki

ORG = "Contoso"
SENDER_IP = "127.88.1.1"  # the sending hub's own address
HUB_A = "127.88.2.11"
HUB_B = "127.88.2.12"
NOBODY = "127.88.2.99"  # nothing listens here
FIREWALL = "127.88.3.1"
MESSAGE = (
    b"From: alice@contoso.com\r\nTo: bob@fabrikam.com\r\nSubject: hello\r\n"
    b"Message-ID: <1@EX01.contoso.com>\r\n\r\n"
    b"line one\r\n.a line starting with a dot\r\n..two dots\r\nlast line\r\n"
)

LAST_ERROR_5_7_3 = (
    '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange'
    ' Server authentication." Attempted failover to alternate host, but that did not succeed.'
    " Either there are no alternate hosts, or delivery failed to all alternate hosts."
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 20)

    return asyncio.run(bounded())


def organization_pki(folder: Path) -> OrganizationPki:
    """Contoso's PKI with the certificates of EX01 (the sender), EX02 and EX03."""
    org = OrganizationPki.open_or_create(folder, ORG)
    for name in ("EX01", "EX02", "EX03"):
        org.ensure_server(name, f"{name}.contoso.com")
    return org


def hub_settings(pki: OrganizationPki, **changes: Any) -> SenderSettings:
    base: dict[str, Any] = {
        "fqdn": "EX01.contoso.com",
        "server_name": "EX01",
        "cert_files": pki.server_files("EX01"),
        "verifier": pki.verifier(),
        "reply_timeout": 5.0,
        "connect_timeout": 5.0,
        "quit_timeout": 1.0,
    }
    base.update(changes)
    return SenderSettings(**base)


def message(*recipients: str, size: int | None = len(MESSAGE)) -> OutboundMessage:
    rcpts = recipients or ("bob@fabrikam.com",)
    return OutboundMessage(
        "alice@contoso.com", tuple(EnvelopeRecipient(r) for r in rcpts), size=size
    )


def body_of(data: bytes, chunk: int = 7) -> Callable[[], Iterable[bytes]]:
    """The message in small pieces, so that chunk boundaries fall anywhere."""
    return lambda: (data[i : i + chunk] for i in range(0, len(data), chunk))


async def send(
    targets: list[Target],
    settings: SenderSettings,
    msg: OutboundMessage | None = None,
    body: Callable[[], Iterable[bytes]] | None = None,
    log_dir: Path | None = None,
) -> SendResult:
    logs = None
    if log_dir is not None:
        protocol_log = ProtocolLog.send(log_dir)
        logs = send_session_logs(protocol_log, level=ProtocolLoggingLevel.VERBOSE)
    try:
        return await send_message(
            targets,
            msg or message(),
            body or body_of(MESSAGE),
            settings,
            local_address=SENDER_IP,
            session_logs=logs,
        )
    finally:
        if log_dir is not None:
            protocol_log.close()


def sessions(log_dir: Path) -> dict[str, list[tuple[str, str, str]]]:
    """(event, data, context) rows of each session in the SmtpSend log, in order."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for row in read_protocol_log(log_dir):
        out.setdefault(row.session_id, []).append((row.event, row.data, row.context))
    return out
