"""The old path of :mod:`sitemail.mailflow.smtp_sender` (and :mod:`sitemail.mailflow.outbound`);
delete it once the lab's Internet host, moving on another branch, imports the new ones."""

from sitemail.mailflow.outbound import OutboundMessage, SenderSettings, Target, file_body
from sitemail.mailflow.smtp_sender import send_message

__all__ = [
    "OutboundMessage",
    "SenderSettings",
    "Target",
    "file_body",
    "send_message",
]
