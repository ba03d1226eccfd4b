"""Exceptions of the SMTP core.

Two kinds, kept apart on purpose: :class:`SmtpSyntaxError` is about *input*
(bytes from the network, a log line) and is always caught by the connection
objects and turned into an event; :class:`LocalProtocolError` is about the
*caller* using a connection object wrongly and is never raised because of
what the peer sent.
"""

from __future__ import annotations


class SmtpSyntaxError(ValueError):
    """Text that does not follow the SMTP grammar; the message says what and where."""


class AddressSyntaxError(SmtpSyntaxError):
    """A reverse-path or forward-path (``<local@domain>``) is malformed."""


class ParameterSyntaxError(SmtpSyntaxError):
    """An ESMTP parameter (``KEY=value`` after a path) is malformed or repeated."""


class LocalProtocolError(RuntimeError):
    """The caller broke the rules of the connection object.

    Examples: replying when no command waits for a reply, sending a command
    while a STARTTLS reply is outstanding, writing a body before the 354.
    """
