"""What a receive connector answers to MAIL, RCPT, AUTH and end of data (spec 1.3-1.5, 2.4).

Pure functions over the connector, the session's rights and the
organization: each returns the refusal to send, or None to go on.  The
session (:mod:`.receive_session`) does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from sitemail.org.model import AuthMechanism, Organization, ReceiveConnector
from sitemail.protocols.smtp import Reply, replies
from sitemail.transport.permissions import Right

#: Mechanisms Exchange advertises that sitemail does not implement (NTLM, GSSAPI need a
#: Windows domain).  They get an honest temporary failure, never a silent success.
UNSUPPORTED_MECHANISMS = frozenset({"NTLM", "GSSAPI"})


@dataclass(frozen=True)
class SessionView:
    """What the policy needs to know about a session."""

    rights: Right
    anonymous: bool
    secure: bool
    user_addresses: frozenset[str] = frozenset()  # an authenticated mailbox's own addresses


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def check_mail(
    connector: ReceiveConnector,
    org: Organization,
    session: SessionView,
    sender: str,
    declared_size: int | None,
) -> tuple[Reply | None, bool]:
    """Refusal for MAIL FROM (or None), and whether the session must then close."""
    if connector.require_tls and not session.secure:
        return replies.MUST_ISSUE_STARTTLS, False
    if Right.SMTPSubmit not in session.rights:
        if session.anonymous:
            # Spec 1.5: anonymous MAIL on a connector that does not let anonymous submit;
            # Exchange closes the session after this reply.
            return replies.CLIENT_NOT_AUTHENTICATED, True
        return replies.NO_SUBMIT_PERMISSION, False
    if (
        declared_size is not None
        and declared_size > connector.max_message_size
        and Right.BypassMessageSizeLimit not in session.rights
    ):
        return replies.MESSAGE_TOO_BIG, False
    if sender and Right.SMTPAcceptAnySender not in session.rights:
        if session.anonymous:
            if org.is_accepted(domain_of(sender)) and (
                Right.SMTPAcceptAuthoritativeDomainSender not in session.rights
            ):
                return replies.ANONYMOUS_CANNOT_SEND_AS, False
        elif sender.lower() not in session.user_addresses:
            return replies.CANNOT_SEND_AS, False
    return None, False


def check_rcpt(
    connector: ReceiveConnector,
    org: Organization,
    session: SessionView,
    recipient: str,
    accepted_so_far: int,
) -> Reply | None:
    """Refusal for RCPT TO (or None).

    A 2010 hub does no recipient filtering at RCPT: an unknown address in an
    accepted domain is accepted and NDR'd by the categorizer
    (``RESOLVER.ADR.RecipNotFound``).  Addresses outside the accepted domains
    need Accept-Any-Recipient: without it, ``550 5.7.1 Unable to relay``.
    """
    if accepted_so_far >= connector.max_recipients_per_message:
        return replies.TOO_MANY_RECIPIENTS
    if not org.is_accepted(domain_of(recipient)) and (
        Right.SMTPAcceptAnyRecipient not in session.rights
    ):
        return replies.UNABLE_TO_RELAY
    return None


def check_auth(
    connector: ReceiveConnector, session: SessionView, mechanism: str, already: bool
) -> Reply | None:
    """Refusal for AUTH <mechanism> (or None to run the LOGIN exchange)."""
    if already:
        return replies.AUTH_ALREADY_SPECIFIED
    mechs = set(connector.auth_mechanism)
    if mechanism == "LOGIN":
        offered = AuthMechanism.BASIC_AUTH in mechs and (
            AuthMechanism.BASIC_AUTH_REQUIRE_TLS not in mechs or session.secure
        )
        return None if offered else replies.UNRECOGNIZED_AUTH_TYPE
    if mechanism in UNSUPPORTED_MECHANISMS and AuthMechanism.INTEGRATED in mechs:
        return replies.TEMPORARY_AUTH_FAILURE
    return replies.UNRECOGNIZED_AUTH_TYPE


def check_end_of_data(
    connector: ReceiveConnector,
    session: SessionView,
    *,
    size: int,
    size_exceeded: bool,
    header_size_exceeded: bool,
    hop_count: int,
) -> Reply | None:
    """Refusal at end of data (or None: make it durable, then 250)."""
    if header_size_exceeded:
        return replies.HEADER_TOO_BIG
    if (size_exceeded or size > connector.max_message_size) and (
        Right.BypassMessageSizeLimit not in session.rights
    ):
        return replies.MESSAGE_TOO_BIG
    if hop_count > connector.max_hop_count:
        return replies.HOP_COUNT_EXCEEDED
    return None


def auth_as(session: SessionView, exchange_server: bool) -> str:
    """The X-MS-Exchange-Organization-AuthAs value for this session."""
    if exchange_server:
        return "Internal"
    return "Anonymous" if session.anonymous else "Authenticated"
