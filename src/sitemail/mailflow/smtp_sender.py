"""The SMTP sending side of a hub: one message, relayed to the first target that takes it.

Used by the queue's delivery workers for the implicit intra-organization
send connector (hub to the hubs of another Active Directory site, with
Exchange Server authentication) and for send connectors to smart hosts::

    result = await send_message(
        [Target("EX02.contoso.com", "10.2.0.11"), Target("EX03.contoso.com", "10.2.0.12")],
        OutboundMessage("alice@contoso.com", (EnvelopeRecipient("bob@contoso.com"),), size=2048),
        file_body(spool_path),
        SenderSettings(fqdn="EX01.contoso.com", server_name="EX01",
                       cert_files=server_cert_files(pki_dir, "EX01"), verifier=verifier),
        session_logs=send_session_logs(send_log, level=intra_org_logging_level),
    )

Each target is tried in order (the caller resolved names and ordered the
hubs); a failure of the session (spec 3.2: EHLO 4xx, 451 5.7.3, a refused
X-EXPS, a dropped connection, a timeout) fails over to the next; when every
target failed, :attr:`SendResult.last_error` holds the queue's LastError in
the 2010 wrapper (spec 3.3).  Once a target took MAIL FROM, its answers are
final for this attempt: per recipient delivered (2xx), failed (5xx, for the
NDR) or deferred (4xx).

The decisions live in :mod:`.send_decision`; the grammar in the sans-I/O
SMTP core; :mod:`.send_session` runs one connection (sockets, TLS, timeouts
and the SmtpSend log); :mod:`.outbound` holds what the caller gives and gets.
This module tries the targets in turn.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sitemail.mailflow.outbound import (
    BodySource,
    OutboundMessage,
    RecipientResult,
    RecipientStatus,
    SenderSettings,
    SendResult,
    SessionLogFactory,
    Target,
    TargetAttempt,
)
from sitemail.mailflow.protocol_log import NullSessionLog
from sitemail.mailflow.send_decision import SendAuth, last_error
from sitemail.mailflow.send_session import FailOver, SendSession
from sitemail.org.pki import CertFiles, PkiError, anonymous_tls_client_context


async def send_message(
    targets: Sequence[Target],
    message: OutboundMessage,
    body: BodySource,
    settings: SenderSettings,
    *,
    local_address: str | None = None,
    session_logs: SessionLogFactory | None = None,
) -> SendResult:
    """Relay ``message`` to the first of ``targets`` that takes it (see the module text).

    ``local_address`` binds the connection's source address (the server's own).
    Raises :class:`BodyReadError` when ``body`` fails, ``ValueError`` for a
    call that cannot work (no target, no recipient, BasicAuth without credentials).
    """
    connection = NextHopConnection(
        targets, settings, local_address=local_address, session_logs=session_logs
    )
    try:
        return await connection.send(message, body)
    finally:
        await connection.close()


class NextHopConnection:
    """Messages for one next hop over one SMTP session, as Exchange sends a queue's mail.

    The first :meth:`send` opens a session to the first target that takes it
    (failing over as :func:`send_message` does); later ones reuse it, RSET
    between messages, until :meth:`close` or a failure.  A session that fails
    while reused (the peer closed it while idle, say) is replaced by a new one
    for the same message, once.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        settings: SenderSettings,
        *,
        local_address: str | None = None,
        session_logs: SessionLogFactory | None = None,
    ) -> None:
        if not targets:
            raise ValueError("send_message needs at least one target")
        policy = settings.policy
        if policy.auth in (SendAuth.BASIC_AUTH, SendAuth.BASIC_AUTH_REQUIRE_TLS) and (
            settings.credentials is None
        ):
            raise ValueError(f"a {policy.auth} send connector needs credentials")
        self.targets = tuple(targets)
        self.settings = settings
        self.local_address = local_address
        self.session_logs = session_logs
        self.anonymous_context = _anonymous_context(settings.cert_files)
        if policy.auth is SendAuth.EXCHANGE_SERVER:
            policy = replace(policy, internal_certificate=self.anonymous_context is not None)
        self.policy = policy
        self.starttls_context = settings.starttls_context or anonymous_tls_client_context(None)
        self._session: SendSession | None = None
        self.messages_sent = 0

    @property
    def is_open(self) -> bool:
        """Whether a session is open and between transactions (a next one may go over it)."""
        return self._session is not None and self._session.is_open

    async def send(self, message: OutboundMessage, body: BodySource) -> SendResult:
        if not message.recipients:
            raise ValueError("send_message needs at least one recipient")
        session = self._session
        if session is not None and session.is_open:
            outcome = await session.transact(message, body)
            attempt = TargetAttempt(session.target, outcome.reply, session.log.session_id, False)
            if not isinstance(outcome, FailOver):
                self.messages_sent += 1
                return SendResult(
                    outcome.recipients,
                    (attempt,),
                    session.target,
                    outcome.final_reply,
                    None,
                    session.shadow_id,
                )
            self._session = None  # it closed: the message goes over a new session
        return await self._send_fresh(message, body)

    def _new_session(
        self, target: Target, message: OutboundMessage, body: BodySource
    ) -> SendSession:
        log = self.session_logs(target) if self.session_logs is not None else NullSessionLog()
        return SendSession(
            target,
            message,
            body,
            self.settings,
            self.policy,
            self.anonymous_context,
            self.starttls_context,
            log,
            self.local_address,
        )

    async def _send_fresh(self, message: OutboundMessage, body: BodySource) -> SendResult:
        attempts: list[TargetAttempt] = []
        for target in self.targets:
            session = self._new_session(target, message, body)
            log = session.log
            refused = await session.open()
            outcome = refused if refused is not None else await session.transact(message, body)
            if isinstance(outcome, FailOver):
                attempts.append(TargetAttempt(target, outcome.reply, log.session_id, True))
                continue
            attempts.append(TargetAttempt(target, outcome.reply, log.session_id, False))
            self._session = session
            self.messages_sent += 1
            return SendResult(
                outcome.recipients,
                tuple(attempts),
                target,
                outcome.final_reply,
                None,
                session.shadow_id,
            )
        last = attempts[-1].reply
        deferred = tuple(
            RecipientResult(r.address, RecipientStatus.DEFERRED, last) for r in message.recipients
        )
        return SendResult(deferred, tuple(attempts), None, None, last_error(last))

    async def heartbeat(self, max_ids: int, *, open_new: bool = True) -> Heartbeat | None:
        """A shadow redundancy heartbeat: connect, authenticate, XSHADOW, XQDISCARD.

        None when no target answered (or none took XSHADOW): one missed heartbeat.
        Leaves the session open for :meth:`send` (or :meth:`close`).
        ``open_new`` False: only over the session already open.
        """
        session = self._session
        if session is None or not session.is_open:
            session = None
            if not open_new:
                return None
            for target in self.targets:
                candidate = self._new_session(target, OutboundMessage("", ()), _no_body)
                if await candidate.open() is None:
                    session = candidate
                    break
            self._session = session
        if session is None or session.shadow_id is None:
            return None
        ids = await session.discards(max_ids)
        if ids is None:
            return None
        return Heartbeat(session.target.host, session.shadow_id, ids)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A next hop's answer to a shadow heartbeat."""

    server: str  # the target's host name (FQDN)
    shadow_id: str  # its XSHADOW answer: a new one means it lost its queue
    discards: list[int]  # its InternalIds of our messages that it is done with


def _no_body() -> Iterable[bytes]:
    return ()


def _anonymous_context(files: CertFiles | None) -> ssl.SSLContext | None:
    """The X-ANONYMOUSTLS context with our certificate, or None if it cannot be loaded
    (which the decision turns into "Cannot load Internal Transport Certificate")."""
    if files is None:
        return None
    try:
        return anonymous_tls_client_context(files)
    except (OSError, ssl.SSLError, PkiError):
        return None
