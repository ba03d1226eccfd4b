"""Shadow redundancy between two hubs over real sockets: the sender's XSHADOW after
Exchange authentication, the receiver's shadow id and discard notifications from its
queue database, and who may ask."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.integration.smtp_sender_support import (
    HUB_A,
    MESSAGE,
    ORG,
    SENDER_IP,
    body_of,
    hub_settings,
    message,
    organization_pki,
    run,
    sessions,
)

from sitemail.clock import SYSTEM_CLOCK
from sitemail.mailflow.outbound import RecipientStatus, Target, send_session_logs
from sitemail.mailflow.protocol_log import ProtocolLog, ProtocolLoggingLevel
from sitemail.mailflow.smtp_sender import Heartbeat, NextHopConnection
from sitemail.org.defaults import default_receive_connectors
from sitemail.org.model import AcceptedDomain, Organization, Server, ServerRole
from sitemail.org.pki import OrganizationPki
from sitemail.org.sqlite_directory import SqliteDirectory
from sitemail.protocols.smtp import replies
from sitemail.protocols.smtp.shadow import SHADOW_NOT_AUTHORIZED
from sitemail.transport.queue import (
    SHADOW_PEER,
    DeliveryType,
    NextHop,
    QueueStore,
    RecipientOutcome,
)
from sitemail.transport.receive_config import (
    ReceiveConfig,
    ReceiveEnvironment,
    StoreShadowDesk,
    ThreadedAcceptor,
    tls_contexts,
)
from sitemail.transport.receive_listeners import ReceiveListeners

OFFSET = 27100  # the Default connector binds HUB_A:27125
MAILBOX = NextHop(DeliveryType.MAPI_DELIVERY, "ex02.contoso.com")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OrganizationPki:
    return organization_pki(tmp_path_factory.mktemp("pki"))


HUB = Server(
    name="EX02",
    fqdn="EX02.contoso.com",
    site="Site-B",
    roles=[ServerRole.HUB_TRANSPORT],
    addresses=[HUB_A],
)
TARGET = Target(HUB.fqdn, HUB_A, 25 + OFFSET)


@asynccontextmanager
async def receiving_hub(
    pki: OrganizationPki, folder: Path, store: QueueStore, *, enabled: bool = True
) -> AsyncIterator[None]:
    """EX02's receive connectors over ``store``, as the transport process runs them."""
    organization = Organization(
        name=ORG,
        accepted_domains=[AcceptedDomain(domain_name="contoso.com", default=True)],
        shadow_redundancy_enabled=enabled,
    )
    starttls, anonymous = tls_contexts(pki.folder, "EX02")
    env = ReceiveEnvironment(
        directory=SqliteDirectory(folder / "directory.db"),
        clock=SYSTEM_CLOCK,
        acceptor=ThreadedAcceptor(store),
        pki_dir=pki.folder,
        port_offset=OFFSET,
        protocol_log=ProtocolLog.receive(folder / "SmtpReceive"),
        verifier=pki.verifier(),
        starttls_context=starttls,
        anonymous_tls_context=anonymous,
        shadow=StoreShadowDesk(store),
    )
    config = ReceiveConfig(HUB, organization, default_receive_connectors(HUB))
    listeners = ReceiveListeners(env, config)
    await listeners.apply(config)
    try:
        yield
    finally:
        await listeners.close()


def sender(
    pki: OrganizationPki, send_log: ProtocolLog | None = None, *, xshadow: bool = True
) -> NextHopConnection:
    """EX01's connection to EX02, asking for shadow redundancy (logged to ``send_log``)."""
    logs = None
    if send_log is not None:
        logs = send_session_logs(send_log, level=ProtocolLoggingLevel.VERBOSE)
    return NextHopConnection(
        [TARGET], hub_settings(pki, xshadow=xshadow), local_address=SENDER_IP, session_logs=logs
    )


def deliver_everything(store: QueueStore) -> None:
    """EX02 delivers what it took to its mailboxes (the store's side of a delivery)."""
    for msg in store.take_for_categorization(limit=100):
        store.route(msg.item_id, {r.id: MAILBOX for r in msg.recipients})
    for ref in store.due_queues():
        batch = store.take_batch(ref.queue_id)
        assert batch is not None
        for queued in batch.messages:
            outcomes = [RecipientOutcome.delivered(r.id) for r in queued.recipients]
            store.report(batch.lease, queued.item_id, outcomes)
        store.finish(batch.lease)


def test_a_hub_takes_messages_under_xshadow_and_tells_when_they_are_done(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    store = QueueStore.open(tmp_path / "EX02", server="EX02", fqdn=HUB.fqdn)
    send_log = ProtocolLog.send(tmp_path / "SmtpSend")

    async def scenario() -> tuple[list[int], list[int | None], Heartbeat | None, Heartbeat | None]:
        async with receiving_hub(pki, tmp_path, store):
            connection = sender(pki, send_log)
            ids: list[int | None] = []
            shadow_ids = []
            try:
                for _ in range(2):
                    result = await connection.send(message("bob@contoso.com"), body_of(MESSAGE))
                    assert [r.status for r in result.recipients] == [RecipientStatus.DELIVERED]
                    assert result.final_reply is not None
                    ids.append(replies.internal_id_of(result.final_reply))
                    shadow_ids.append(result.shadow_id)
                # Nothing is done on EX02 yet: the heartbeat brings no discards.
                early = await connection.heartbeat(40, open_new=False)
            finally:
                await connection.close()
            await asyncio.to_thread(deliver_everything, store)
            # A heartbeat over a fresh session (EHLO, TLS, X-EXPS, XSHADOW, XQDISCARD).
            later = sender(pki, send_log)
            try:
                late = await later.heartbeat(40)
            finally:
                await later.close()
            return shadow_ids, ids, early, late

    try:
        shadow_ids, ids, early, late = run(scenario())
        assert shadow_ids == [store.shadow_id] * 2
        assert early == Heartbeat("ex02.contoso.com", store.shadow_id, [])
        assert late == Heartbeat("ex02.contoso.com", store.shadow_id, ids)
        assert store.take_discards("EX01", 40) == []  # told once
    finally:
        store.close()
        send_log.close()
    first = next(iter(sessions(tmp_path / "SmtpSend").values()))
    sent = [d for e, d, _ in first if e == ">"]
    assert sent[:5] == [
        "EHLO EX01.contoso.com",
        "X-ANONYMOUSTLS",
        "EHLO EX01.contoso.com",
        "X-EXPS EXCHANGEAUTH SHA256 ",
        "XSHADOW EX01.contoso.com",
    ]
    assert "XQDISCARD 40" in sent


def test_the_receiver_remembers_which_hub_shadows_a_message(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    store = QueueStore.open(tmp_path / "EX02", server="EX02", fqdn=HUB.fqdn)

    async def scenario() -> None:
        async with receiving_hub(pki, tmp_path, store):
            for xshadow in (True, False):
                connection = sender(pki, xshadow=xshadow)
                try:
                    await connection.send(message("bob@contoso.com"), body_of(MESSAGE))
                finally:
                    await connection.close()

    try:
        run(scenario())
        shadowed, plain = store.take_for_categorization(limit=10)
        assert shadowed.envelope.headers == {SHADOW_PEER: "EX01"}
        assert plain.envelope.headers == {}
    finally:
        store.close()


def test_shadow_redundancy_off_means_no_xshadow(pki: OrganizationPki, tmp_path: Path) -> None:
    store = QueueStore.open(tmp_path / "EX02", server="EX02", fqdn=HUB.fqdn)
    send_log = ProtocolLog.send(tmp_path / "SmtpSend")

    async def scenario() -> str | None:
        async with receiving_hub(pki, tmp_path, store, enabled=False):
            connection = sender(pki, send_log)
            try:
                result = await connection.send(message("bob@contoso.com"), body_of(MESSAGE))
            finally:
                await connection.close()
            return result.shadow_id

    try:
        assert run(scenario()) is None
    finally:
        store.close()
        send_log.close()
    [rows] = sessions(tmp_path / "SmtpSend").values()
    # Not offered after Exchange authentication, so not asked for.
    assert "250 XSHADOW" not in [d for e, d, _ in rows if e == "<"]
    assert not any(d.startswith("XSHADOW") for e, d, _ in rows if e == ">")


async def raw_session(lines: list[bytes]) -> list[bytes]:
    """A plain, unauthenticated client: each line and the reply's last line."""
    reader, writer = await asyncio.open_connection(HUB_A, 25 + OFFSET, local_addr=(SENDER_IP, 0))
    answers = [await reader.readline()]
    for line in lines:
        writer.write(line + b"\r\n")
        while True:
            reply = await reader.readline()
            if reply[3:4] != b"-":
                break
        answers.append(reply)
    writer.close()
    return answers


def test_only_an_exchange_authenticated_hub_may_ask(pki: OrganizationPki, tmp_path: Path) -> None:
    store = QueueStore.open(tmp_path / "EX02", server="EX02", fqdn=HUB.fqdn)

    async def scenario() -> list[bytes]:
        async with receiving_hub(pki, tmp_path, store):
            return await raw_session(
                [b"EHLO intruder.test", b"XSHADOW EX01.contoso.com", b"XQDISCARD 40", b"QUIT"]
            )

    try:
        answers = run(scenario())
    finally:
        store.close()
    refused = SHADOW_NOT_AUTHORIZED.to_bytes()
    assert answers[2:4] == [refused, refused]
