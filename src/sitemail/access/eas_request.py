"""What an Exchange ActiveSync request says about itself (MS-ASHTTP), and the server's banners.

A command is ``POST /Microsoft-Server-ActiveSync?Cmd=FolderSync&User=adam
&DeviceId=...&DeviceType=...`` with a WBXML body and the
``MS-ASProtocolVersion`` header; ``OPTIONS`` asks which versions and
commands the server has.  Only the plain query form is read (the base64
query form of MS-ASHTTP 2.2.1.1.1.1 gets HTTP 400 saying so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from sitemail.org.model import ExchangeVersion
from sitemail.org.version_facts import facts_for

__all__ = [
    "EXCHANGE2003",
    "EXCHANGE2007",
    "EXCHANGE2010",
    "WBXML_TYPE",
    "BadEasRequest",
    "EasBanner",
    "EasRequest",
    "banner_for",
    "parse_eas_request",
]

WBXML_TYPE = "application/vnd.ms-sync.wbxml"

_DEVICE_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_VERSION = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}")
_COMMAND = re.compile(r"[A-Za-z]{1,32}")


@dataclass(frozen=True)
class EasBanner:
    """What OPTIONS answers: the server's version and the protocol versions and commands."""

    server_version: str
    protocol_versions: tuple[str, ...]
    commands: tuple[str, ...]

    def headers(self) -> dict[str, str]:
        return {
            "Allow": "OPTIONS,POST",
            "Public": "OPTIONS,POST",
            "MS-Server-ActiveSync": self.server_version,
            "MS-ASProtocolVersions": ",".join(self.protocol_versions),
            "MS-ASProtocolCommands": ",".join(self.commands),
        }


#: The commands sitemail's ActiveSync serves.
COMMANDS = ("Sync", "FolderSync", "Provision", "SendMail")
#: What the Exchange 2003 back-end serves: sitemail's 2003 server runs no Mail Submission
#: service (``serve.py``), so a message submitted there would stay in its Outbox.
COMMANDS_2003 = ("Sync", "FolderSync", "Provision")


def banner_for(version: ExchangeVersion) -> EasBanner:
    """The OPTIONS headers of a server of ``version`` (org/version_facts.py has the values)."""
    facts = facts_for(version)
    return EasBanner(
        server_version=facts.eas_server_version,
        protocol_versions=facts.eas_protocol_versions,
        # sitemail's 2003 server runs no Mail Submission service, hence its short list.
        commands=COMMANDS_2003 if version is ExchangeVersion.E2003 else COMMANDS,
    )


EXCHANGE2010 = banner_for(ExchangeVersion.E2010)
EXCHANGE2007 = banner_for(ExchangeVersion.E2007)
EXCHANGE2003 = banner_for(ExchangeVersion.E2003)


class BadEasRequest(ValueError):
    """The request cannot be an ActiveSync command; the text says what is missing."""


@dataclass(frozen=True)
class EasRequest:
    command: str | None  # None for OPTIONS
    user: str
    device_id: str
    device_type: str
    version: str | None  # MS-ASProtocolVersion
    policy_key: str | None  # X-MS-PolicyKey
    save_in_sent: bool = False  # SaveInSent=T: a pre-14.0 SendMail keeps a copy


def parse_eas_request(method: str, query: str, headers: dict[str, str]) -> EasRequest:
    """The command of a request (headers with lower-case names)."""
    version = headers.get("ms-asprotocolversion")
    if version is not None and not _VERSION.fullmatch(version.strip()):
        raise BadEasRequest(f"MS-ASProtocolVersion {version[:20]!r} is not a version number")
    version = version.strip() if version is not None else None
    policy = headers.get("x-ms-policykey")
    if method == "OPTIONS":
        return EasRequest(None, "", "", "", version, policy)
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "Cmd" not in params:
        if query and "=" not in query:
            raise BadEasRequest("the base64-encoded query form is not supported; send Cmd=...")
        raise BadEasRequest("the request names no command (Cmd=...)")
    command = params["Cmd"]
    if not _COMMAND.fullmatch(command):
        raise BadEasRequest("the command name is not valid")
    device_id = params.get("DeviceId", "")
    if not _DEVICE_ID.fullmatch(device_id):
        raise BadEasRequest("DeviceId must be 1 to 32 letters and digits")
    return EasRequest(
        command=command,
        user=params.get("User", "")[:256],
        device_id=device_id,
        device_type=params.get("DeviceType", "")[:64],
        version=version,
        policy_key=policy,
        save_in_sent=params.get("SaveInSent", "").upper() == "T",
    )
