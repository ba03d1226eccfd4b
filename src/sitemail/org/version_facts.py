"""What differs between the Exchange versions sitemail's servers run, as data, in one place.

Exchange 2007 SP3 and 2010 SP3 servers run the same implementations (the
hub transport, the store, the web site with OWA, ActiveSync and EWS, POP3 and
IMAP4); where the two versions differ in what a client or peer sees, the
services read it here: :func:`facts_for` a server's version.  (Exchange 2003
has services of its own, ``sitemail.exchange2003``; its row holds what the
shared front ends need of it.)

Where a value is not in ``specs/exchange-2010.md``, the comment next to it
says "unverified": it is general knowledge, kept here as the one setting.
"""

from __future__ import annotations

from dataclasses import dataclass

from sitemail.org.model import ExchangeVersion

__all__ = ["VersionFacts", "facts_for"]


@dataclass(frozen=True, slots=True)
class VersionFacts:
    version: ExchangeVersion
    # EWS: the header every response carries (<h:ServerVersionInfo>), and the
    # RequestServerVersion values the server accepts (others: ErrorInvalidServerVersion).
    ews_server_version: tuple[tuple[str, str], ...]
    ews_schemas: tuple[str, ...]
    # ActiveSync OPTIONS: MS-Server-ActiveSync and MS-ASProtocolVersions.
    eas_server_version: str
    eas_protocol_versions: tuple[str, ...]
    # The name OWA's pages carry (the sign-in page, the mailbox's title bar).
    owa_product: str
    # SmtpReceive/SmtpSend/MessageTracking log header "#Version:" (spec 4.3).
    log_version: str
    # XSHADOW in EHLO and the shadow commands: shadow redundancy came with 2010 (spec 2.2 #17).
    shadow_redundancy: bool

    @property
    def ews_version_attributes(self) -> dict[str, str]:
        return dict(self.ews_server_version)


_E2010 = VersionFacts(
    version=ExchangeVersion.E2010,
    # Exchange 2010 SP3, its release build 14.3.123.4; SP3 added no schema of its own.
    ews_server_version=(
        ("MajorVersion", "14"),
        ("MinorVersion", "3"),
        ("MajorBuildNumber", "123"),
        ("MinorBuildNumber", "4"),
        ("Version", "Exchange2010_SP2"),
    ),
    ews_schemas=(
        "Exchange2007",
        "Exchange2007_SP1",
        "Exchange2010",
        "Exchange2010_SP1",
        "Exchange2010_SP2",
    ),
    eas_server_version="14.3",  # unverified (SP1 is known to send 14.1)
    eas_protocol_versions=("2.0", "2.1", "2.5", "12.0", "12.1", "14.0", "14.1"),
    owa_product="Outlook Web App",
    log_version="14.0.0.0",  # spec 4.3
    shadow_redundancy=True,
)

_E2007 = VersionFacts(
    version=ExchangeVersion.E2007,
    # Exchange 2007 SP3 (8.3, build 83.6 as Get-ExchangeServer shows it: unverified build).
    # It answers with the schema Exchange2007_SP1, its newest: SP2 and SP3 added none.
    ews_server_version=(
        ("MajorVersion", "8"),
        ("MinorVersion", "3"),
        ("MajorBuildNumber", "83"),  # unverified
        ("MinorBuildNumber", "6"),  # unverified
        ("Version", "Exchange2007_SP1"),
    ),
    ews_schemas=("Exchange2007", "Exchange2007_SP1"),
    eas_server_version="8.3",  # unverified
    # EAS 12.1 came with 2007 SP1; 14.x with 2010.
    eas_protocol_versions=("2.0", "2.1", "2.5", "12.0", "12.1"),
    # 2007 still called it Outlook Web Access (Outlook Web App is 2010's name).
    owa_product="Outlook Web Access",
    log_version="8.0.0.0",  # unverified (spec 4.3 gives only 2010's 14.0.0.0)
    shadow_redundancy=False,
)

_E2003 = VersionFacts(
    version=ExchangeVersion.E2003,
    ews_server_version=(),  # no EWS before 2007
    ews_schemas=(),
    eas_server_version="6.5.7638.1",  # unverified (2003 SP2's build as a header)
    eas_protocol_versions=("1.0", "2.0", "2.1", "2.5"),
    owa_product="Outlook Web Access",
    log_version="6.5",  # unverified; 2003's SMTP service writes no Exchange protocol logs
    shadow_redundancy=False,
)

_FACTS = {f.version: f for f in (_E2003, _E2007, _E2010)}


def facts_for(version: ExchangeVersion) -> VersionFacts:
    return _FACTS[version]
