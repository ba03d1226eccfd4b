"""The replies an Exchange 2010 receive connector sends, with their exact text.

Sources: ``specs/exchange-2010.md`` §2.4 (command replies), §1.2
(MaxHeaderSize, MaxProtocolErrors) and §1.5 (permission failures).  The
server core uses some of these as *suggested* replies on its events; the
policy layer (receive connectors) decides what is actually sent and uses
the rest directly.  Keep one definition of each string here.
"""

from __future__ import annotations

import re

from .reply import Reply


def _r(code: int, enhanced: str | None, *lines: str) -> Reply:
    return Reply(code, enhanced, lines)


# --- §2.4: commands --------------------------------------------------------
SENDER_OK = _r(250, "2.1.0", "Sender OK")
RECIPIENT_OK = _r(250, "2.1.5", "Recipient OK")
START_MAIL_INPUT = _r(354, None, "Start mail input; end with <CRLF>.<CRLF>")
CLOSING = _r(221, "2.0.0", "Service closing transmission channel")
RESETTING = _r(250, "2.0.0", "Resetting")
NOOP_OK = _r(250, "2.0.0", "OK")
TLS_READY = _r(220, "2.0.0", "SMTP server ready")
ONLY_ONE_STARTTLS = _r(503, "5.5.2", "Only one STARTTLS command can be issued per session")
UNRECOGNIZED_COMMAND = _r(500, "5.3.3", "Unrecognized command")
UNRECOGNIZED_PARAMETER = _r(501, "5.5.4", "Unrecognized parameter")
EHLO_REQUIRES_DOMAIN = _r(501, "5.0.0", "EHLO requires domain address")
INVALID_DOMAIN = _r(501, "5.5.4", "Invalid domain name")
SEND_HELLO_FIRST = _r(503, "5.5.2", "Send hello first")
NEED_MAIL_COMMAND = _r(503, "5.5.2", "Need mail command")
NEED_RCPT_COMMAND = _r(503, "5.5.2", "Need rcpt command")
SENDER_ALREADY_SPECIFIED = _r(503, "5.5.2", "Sender already specified")
INVALID_SENDER_ADDRESS = _r(501, "5.1.7", "Invalid address")
INVALID_RECIPIENT_ADDRESS = _r(501, "5.1.3", "Invalid address")
CANNOT_VRFY = _r(252, "2.1.5", "Cannot VRFY user")
HELP = _r(
    214,
    None,
    "This server supports the following commands:",
    "HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP AUTH BDAT",
)
AUTH_USERNAME_PROMPT = _r(334, None, "VXNlcm5hbWU6")
AUTH_PASSWORD_PROMPT = _r(334, None, "UGFzc3dvcmQ6")
AUTH_SUCCESSFUL = _r(235, "2.7.0", "Authentication successful")
AUTH_UNSUCCESSFUL = _r(535, "5.7.3", "Authentication unsuccessful")
UNRECOGNIZED_AUTH_TYPE = _r(504, "5.7.4", "Unrecognized authentication type")
AUTH_ALREADY_SPECIFIED = _r(503, "5.5.2", "Auth command already specified")
TEMPORARY_AUTH_FAILURE = _r(454, "4.7.0", "Temporary authentication failure")
TIMEOUT_WAITING_FOR_CLIENT = _r(451, "4.7.0", "Timeout waiting for client input")
CONNECTION_TIMED_OUT = _r(421, "4.4.1", "Connection timed out")
CONNECTION_DROPPED = _r(421, "4.4.2", "Connection dropped")
TOO_MANY_SERVER_CONNECTIONS = _r(
    421,
    "4.3.2",
    "The maximum number of concurrent server connections has exceeded a limit, "
    "closing transmission channel",
)
TOO_MANY_CONNECTIONS_PER_SOURCE = _r(
    421,
    "4.3.2",
    "The maximum number of concurrent connections has exceeded a limit, "
    "closing transmission channel",
)
INSUFFICIENT_RESOURCES = _r(452, "4.3.1", "Insufficient system resources")
SERVICE_NOT_AVAILABLE = _r(421, "4.3.2", "Service not available")
SERVICE_NOT_ACTIVE = _r(421, "4.3.2", "Service not active")
USER_UNKNOWN = _r(550, "5.1.1", "User unknown")
MESSAGE_TOO_BIG = _r(552, "5.3.4", "Message size exceeds fixed maximum message size")
HOP_COUNT_EXCEEDED = _r(554, "5.4.6", "Hop count exceeded - possible mail loop")
TOO_MANY_RECIPIENTS = _r(452, "4.5.3", "Too many recipients")

# --- §1.2: connector limits ------------------------------------------------
HEADER_TOO_BIG = _r(552, "5.3.4", "Header size exceeds fixed maximum size")
TOO_MANY_ERRORS = _r(
    421, "4.7.0", "Too many errors on this connection, closing transmission channel"
)

# --- §1.5: permission failures ---------------------------------------------
CLIENT_NOT_AUTHENTICATED = _r(530, "5.7.1", "Client was not authenticated")
NO_SUBMIT_PERMISSION = _r(550, "5.7.1", "Client does not have permissions to submit to this server")
UNABLE_TO_RELAY = _r(550, "5.7.1", "Unable to relay")
CANNOT_SEND_AS = _r(550, "5.7.1", "Client does not have permissions to send as this sender")
ANONYMOUS_CANNOT_SEND_AS = _r(
    550, "5.7.1", "Anonymous client does not have permissions to send as this sender"
)
MUST_ISSUE_STARTTLS = _r(530, "5.7.0", "Must issue a STARTTLS command first")
NOT_AUTHENTICATED = _r(530, "5.7.1", "Not authenticated")
NOT_AUTHORIZED = _r(550, "5.7.1", "Not authorized")
COMMAND_NOT_ALLOWED = _r(550, "5.7.1", "Command not allowed")
XEXCH50_NOT_AUTHORIZED = _r(504, "5.7.1", "Not authorized")

# --- not in the spec -------------------------------------------------------
# The spec gives no Exchange text for an overlong command line; this is the
# RFC 5321 §4.5.3.1.4 wording with the RFC 3463 "syntax error" code.
# Unverified against Exchange: treat it as a default, not an oracle.
LINE_TOO_LONG = _r(500, "5.5.2", "Line too long")
# RFC 3030 §2: DATA and BDAT cannot be mixed in one transaction, and DATA
# after a BDAT chunk "MUST" get a 503.  The spec quotes no Exchange text for
# it; the wording follows Exchange's other 503s.  Unverified against Exchange.
DATA_AFTER_BDAT = _r(503, "5.5.1", "Data command not allowed after BDAT")
# ``BDAT 0 LAST`` as the only chunk of a transaction would queue an empty
# message.  The spec says nothing of how Exchange answers it; this 503 is our
# own choice (RFC 3030's sense of a bad sequence).  Unverified against Exchange.
BDAT_NO_MESSAGE_DATA = _r(503, "5.5.1", "No message data received")


def requires_domain(verb: str) -> Reply:
    """``501 5.0.0 <VERB> requires domain address``.

    The spec quotes the EHLO form; HELO and LHLO use the same template
    (assumed, not observed).
    """
    return _r(501, "5.0.0", f"{verb.upper()} requires domain address")


def queued_mail(message_id: str, internal_id: int) -> Reply:
    """``250 2.6.0 <message-id> [InternalId=n] Queued mail for delivery`` (2010 form).

    ``message_id`` is the Message-ID with or without its angle brackets.
    2013+ adds ``, Hostname=...`` inside the brackets; 2010 does not.
    """
    mid = message_id if message_id.startswith("<") else f"<{message_id}>"
    return _r(250, "2.6.0", f"{mid} [InternalId={internal_id}] Queued mail for delivery")


_INTERNAL_ID = re.compile(r"\[InternalId=([0-9]{1,20})[,\]]")


def internal_id_of(reply: Reply) -> int | None:
    """The InternalId in a ``250 2.6.0 <id> [InternalId=n] Queued mail`` reply, if any."""
    m = _INTERNAL_ID.search(" ".join(reply.lines))
    return int(m.group(1)) if m else None
