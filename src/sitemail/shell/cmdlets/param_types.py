"""Parameter types the Exchange cmdlets need beyond the shell's own.

``Unlimited`` values (``-MaxInboundConnection unlimited``), dates
(``-Start "1/5/2024 3:00 PM"``), secure strings (``-Password``), and the
enums of the Exchange data model, named as Exchange names them so that
Get-Help and tab completion show the same values as the real shell.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sitemail.org.model import (
    AuthMechanism,
    LoggingLevel,
    LoginType,
    PermissionGroup,
    RedirectType,
    SizeEnabled,
)
from sitemail.shell import SIZE, EnumType, FlagsType, IntType, ParamType
from sitemail.shell.errors import ConversionError
from sitemail.shell.values import ByteSize, to_string

UNLIMITED = "unlimited"

AUTH_MECHANISMS = FlagsType(
    "Microsoft.Exchange.Data.AuthMechanisms", [m.value for m in AuthMechanism]
)
PERMISSION_GROUPS = FlagsType(
    "Microsoft.Exchange.Data.PermissionGroups", [g.value for g in PermissionGroup]
)
PROTOCOL_LOGGING_LEVEL = EnumType(
    "Microsoft.Exchange.Data.ProtocolLoggingLevel", [v.value for v in LoggingLevel]
)
SIZE_MODE = EnumType("Microsoft.Exchange.Data.SizeMode", [v.value for v in SizeEnabled])
REDIRECT_TYPE = EnumType(
    "Microsoft.Exchange.Data.Directory.SystemConfiguration.RedirectType",
    [v.value for v in RedirectType],
)
LOGIN_TYPE = EnumType(
    "Microsoft.Exchange.Data.Directory.LoginOptions", [v.value for v in LoginType]
)
RECEIVE_USAGE = EnumType(
    "Microsoft.Exchange.Management.SystemConfigurationTasks.NewReceiveConnector+UsageType",
    ["Custom", "Internet", "Internal", "Client", "Partner"],
)


class UnlimitedType(ParamType):
    """Exchange's ``Unlimited<T>``: a value, or the word ``unlimited`` (returned as is)."""

    def __init__(self, inner: ParamType) -> None:
        self.inner = inner
        self.type_name = f"Microsoft.Exchange.Data.Unlimited`1[{inner.type_name}]"
        self.short_name = "Unlimited"

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if isinstance(value, str) and value.strip().casefold() == UNLIMITED:
            return UNLIMITED
        return self.inner.convert(value)

    def accepts_exact(self, value: object) -> bool:
        return value == UNLIMITED or self.inner.accepts_exact(value)

    def completions(self) -> tuple[str, ...]:
        return (UNLIMITED,)


UNLIMITED_INT = UnlimitedType(IntType(minimum=1))
UNLIMITED_SIZE = UnlimitedType(SIZE)

_DATE_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
)


def parse_datetime(text: str) -> datetime:
    """en-US dates as the EMS takes them (``1/5/2024 3:04 PM``) or ISO 8601, as aware UTC.

    A time without a zone is the local time of this machine, as the EMS
    reads it in the server's time zone.
    """
    stripped = text.strip()
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        for pattern in _DATE_FORMATS:
            try:
                moment = datetime.strptime(stripped, pattern)
                break
            except ValueError:
                continue
        else:
            raise ConversionError(
                f'The string "{text}" was not recognized as a valid DateTime. Write it as '
                '"1/5/2024 3:04 PM" or 2024-01-05T15:04:00.'
            ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC)


class DateTimeType(ParamType):
    type_name = "System.DateTime"
    short_name = "DateTime"

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.astimezone()
        return parse_datetime(to_string(value))

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, datetime)


DATETIME = DateTimeType()


class SecureString:
    """``System.Security.SecureString``: holds a password without ever showing it."""

    type_name = "System.Security.SecureString"

    def __init__(self, plain: str) -> None:
        self._plain = plain

    def reveal(self) -> str:
        """The clear text, for hashing it; never for display."""
        return self._plain

    def __str__(self) -> str:
        return self.type_name

    def __repr__(self) -> str:
        return "SecureString(****)"


class SecureStringType(ParamType):
    type_name = "System.Security.SecureString"
    short_name = "SecureString"

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if isinstance(value, SecureString):
            return value
        raise ConversionError(
            f'Cannot convert the "{to_string(value)}" value of type "{type(value).__name__}" to '
            'type "System.Security.SecureString". Use (ConvertTo-SecureString -String '
            "'<password>' -AsPlainText -Force)."
        )

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, SecureString)


SECURE_STRING = SecureStringType()


def size_bytes(value: object) -> int | None:
    """A converted size parameter as bytes; None for ``unlimited``."""
    if value == UNLIMITED or value is None:
        return None
    if isinstance(value, ByteSize):
        return value.bytes
    raise TypeError(f"not a size: {value!r}")


def unlimited_int(value: object) -> int | None:
    if value == UNLIMITED or value is None:
        return None
    if isinstance(value, int):
        return value
    raise TypeError(f"not an Unlimited<int>: {value!r}")
