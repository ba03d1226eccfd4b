"""The old path of :mod:`sitemail.mailflow.envelope`; delete it once the modules moving on
other branches (receive server, lab hosts) import the new one."""

from sitemail.mailflow.envelope import (
    AcceptError,
    AcceptOutcomeUnknown,
    Envelope,
    EnvelopeRecipient,
    MessageAcceptor,
    SpoolWriter,
)

__all__ = [
    "AcceptError",
    "AcceptOutcomeUnknown",
    "Envelope",
    "EnvelopeRecipient",
    "MessageAcceptor",
    "SpoolWriter",
]
