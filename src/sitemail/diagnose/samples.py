"""Exchange 2010-shaped protocol log sessions, written with the transport's own log writer.

For tests, the benchmark and demonstrations of ``troubleshoot --logs``: each
function writes one SMTP session as a 2010 hub writes it (the SmtpSend side
of the intra-organization send connector, or the SmtpReceive side of a
receive connector), for one of the outcomes the troubleshooter tells apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from sitemail.mailflow.protocol_log import INTRA_ORG_SEND_CONNECTOR_ID, ProtocolLog

RECEIVER = "ex-fl1.contoso.com"
SENDER = "ex-ny1.contoso.com"
SENDER_IP = "10.1.0.11"
RECEIVER_IP = "10.2.0.11"
BANNER = (
    "220 ex-fl1.contoso.com Microsoft ESMTP MAIL Service ready at Fri, 5 Aug 2016 16:24:41 +0000"
)
MASKED_BANNER = "220 ****************************************************2****2*0**20 ****2*0**0*"
EHLO_2010 = (
    "SIZE",
    "PIPELINING",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "STARTTLS",
    "X-ANONYMOUSTLS",
    "AUTH NTLM",
    "X-EXPS GSSAPI NTLM",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "XEXCH50",
    "XRDST",
    "XSHADOW",
)
EHLO_MASKED = (
    "SIZE",
    "PIPELINING",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "XXXXXXXA",
    "XXXXXXXXXXXXXA",
    "AUTH NTLM",
    "XXXXXA GSSAPI NTLM",
    "8BITMIME",
    "BINARYMIME",
    "XXXXXXXA",
    "XXXXXXA",
    "XXXXA",
    "XXXXXXA",
)
EHLO_NO_EXCHANGE_AUTH = tuple(
    k for k in EHLO_2010 if not k.startswith(("X-", "XEXCH50", "XRDST", "XSHADOW"))
)
EHLO_AFTER_TLS = (
    "SIZE",
    "PIPELINING",
    "DSN",
    "ENHANCEDSTATUSCODES",
    "AUTH NTLM LOGIN",
    "X-EXPS EXCHANGEAUTH GSSAPI NTLM",
    "X-EXCHANGEAUTH SHA256",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "XEXCH50",
    "XRDST",
    "XSHADOW",
)
CANNOT_ACHIEVE = "451 5.7.3 Cannot achieve Exchange Server authentication"
SEND_AS_DENIED = "550 5.7.1 Client does not have permissions to send as this sender"
SERVER_RIGHTS = (
    "SMTPSubmit SMTPAcceptAnyRecipient SMTPAcceptAuthenticationFlag SMTPAcceptAnySender "
    "SMTPAcceptAuthoritativeDomainSender BypassAntiSpam BypassMessageSizeLimit "
    "SMTPAcceptEXCH50 AcceptRoutingHeaders AcceptForestHeaders AcceptOrganizationHeaders "
    "SMTPAcceptXShadow"
)


def ehlo_reply(
    keywords: Sequence[str], greeting: str = f"{RECEIVER} Hello [{SENDER_IP}]"
) -> list[str]:
    lines = [greeting, *keywords]
    return [f"250-{x}" for x in lines[:-1]] + [f"250 {lines[-1]}"]


def send_delivered(log: ProtocolLog, message_id: str = "<m1@ex-ny1.contoso.com>") -> None:
    s = log.session(INTRA_ORG_SEND_CONNECTOR_ID, f"{SENDER_IP}:41234", f"{RECEIVER_IP}:25")
    s.info("", "attempting to connect")
    s.connect()
    s.received(BANNER)
    s.sent(f"EHLO {SENDER}")
    s.received(ehlo_reply(EHLO_2010))
    s.sent("X-ANONYMOUSTLS")
    s.received("220 2.0.0 SMTP server ready")
    s.sent(f"EHLO {SENDER}")
    s.received(ehlo_reply(EHLO_AFTER_TLS))
    s.sent("X-EXPS EXCHANGEAUTH SHA256 ")
    s.received("235 <authentication information>")
    s.sent("MAIL FROM:<alice@contoso.com> SIZE=2048")
    s.sent("RCPT TO:<adam@contoso.com>")
    s.received("250 2.1.0 Sender OK")
    s.received("250 2.1.5 Recipient OK")
    s.sent("BDAT 2048 LAST")
    s.received(f"250 2.6.0 {message_id} [InternalId=1234] Queued mail for delivery")
    s.sent("QUIT")
    s.disconnect("Local")


def send_refused_at_ehlo(log: ProtocolLog, keywords: Sequence[str], banner: str = BANNER) -> None:
    """The sender finds no X-ANONYMOUSTLS/X-EXPS it can use and gives up with 451 5.7.3."""
    s = log.session(INTRA_ORG_SEND_CONNECTOR_ID, f"{SENDER_IP}:41235", f"{RECEIVER_IP}:25")
    s.info("", "attempting to connect")
    s.connect()
    s.received(banner)
    s.sent(f"EHLO {SENDER}")
    s.received(ehlo_reply(keywords))
    s.info("", CANNOT_ACHIEVE)
    s.sent("QUIT")
    s.disconnect("Local")


def send_masked(log: ProtocolLog) -> None:
    send_refused_at_ehlo(log, EHLO_MASKED, MASKED_BANNER)


def send_failed_to_connect(log: ProtocolLog) -> None:
    s = log.session(INTRA_ORG_SEND_CONNECTOR_ID, "", f"{RECEIVER_IP}:25")
    s.info("", "attempting to connect")
    s.info("", f"Failed to connect: [Errno 111] Connect call failed ('{RECEIVER_IP}', 25)")
    s.info("", "421 4.2.1 Unable to connect")


def send_dropped_before_banner(log: ProtocolLog) -> None:
    s = log.session(INTRA_ORG_SEND_CONNECTOR_ID, f"{SENDER_IP}:41236", f"{RECEIVER_IP}:25")
    s.info("", "attempting to connect")
    s.connect()
    s.info("", "421 4.4.2 Connection dropped")
    s.disconnect("Remote")


def send_send_as_denied(log: ProtocolLog) -> None:
    s = log.session(INTRA_ORG_SEND_CONNECTOR_ID, f"{SENDER_IP}:41237", f"{RECEIVER_IP}:25")
    s.info("", "attempting to connect")
    s.connect()
    s.received(BANNER)
    s.sent(f"EHLO {SENDER}")
    s.received(ehlo_reply(EHLO_2010))
    s.sent("X-ANONYMOUSTLS")
    s.received("220 2.0.0 SMTP server ready")
    s.sent(f"EHLO {SENDER}")
    s.received(ehlo_reply(EHLO_AFTER_TLS))
    s.sent("X-EXPS EXCHANGEAUTH SHA256 ")
    s.received("235 <authentication information>")
    s.sent("MAIL FROM:<alice@contoso.com> SIZE=2048")
    s.sent("RCPT TO:<adam@contoso.com>")
    s.received(SEND_AS_DENIED)
    s.received("503 5.5.2 Need mail command")
    s.sent("QUIT")
    s.disconnect("Local")


def receive_on(
    log: ProtocolLog,
    connector: str,
    keywords: Sequence[str],
    *,
    client: str = SENDER,
    then: str = "QUIT",
    anonymous_rights: str = "SMTPSubmit SMTPAcceptAnySender",
) -> None:
    """A session on ``connector`` that offers ``keywords`` and sees the client do ``then``."""
    s = log.session(connector, f"{RECEIVER_IP}:25", f"{SENDER_IP}:41238")
    s.connect()
    s.set_session_permissions(anonymous_rights.split())
    s.sent(BANNER)
    s.received(f"EHLO {client}")
    s.sent(ehlo_reply(keywords, f"{RECEIVER} Hello [{SENDER_IP}]"))
    s.received(then)
    if then == "QUIT":
        s.sent("221 2.0.0 Service closing transmission channel")
    s.disconnect("Local")


def receive_send_as_denied(log: ProtocolLog, connector: str) -> None:
    s = log.session(connector, f"{RECEIVER_IP}:25", f"{SENDER_IP}:41239")
    s.connect()
    s.set_session_permissions([])
    s.sent(BANNER)
    s.received(f"EHLO {SENDER}")
    s.sent(ehlo_reply(EHLO_2010))
    s.received("X-ANONYMOUSTLS")
    s.sent("220 2.0.0 SMTP server ready")
    s.received(f"EHLO {SENDER}")
    s.sent(ehlo_reply(EHLO_AFTER_TLS))
    s.received("X-EXPS EXCHANGEAUTH SHA256 ")
    s.sent("235 <authentication information>")
    s.set_session_permissions(["SMTPSubmit", "SMTPAcceptAnyRecipient", "BypassAntiSpam"])
    s.received("MAIL FROM:<alice@contoso.com> SIZE=2048")
    s.sent(SEND_AS_DENIED)
    s.received("QUIT")
    s.sent("221 2.0.0 Service closing transmission channel")
    s.disconnect("Local")
