"""ConvertTo-SecureString: how a password reaches New-Mailbox and Set-Mailbox -Password."""

from __future__ import annotations

from sitemail.shell import (
    BY_VALUE,
    STRING,
    SWITCH,
    BoundParameters,
    CmdletError,
    Parameter,
    cmdlet,
)

from .common import Inv
from .param_types import SecureString

# PowerShell's own refusal when -AsPlainText comes without -Force.
NEEDS_FORCE = (
    "The system cannot protect plain text input. To suppress this warning and convert the "
    "plain text to a SecureString, reissue the command specifying the Force parameter."
)


@cmdlet(
    "ConvertTo-SecureString",
    Parameter("String", STRING, position=0, mandatory=True, pipeline=BY_VALUE),
    Parameter("AsPlainText", SWITCH, help="The string is a password in clear text."),
    Parameter("Force", SWITCH, help="Confirms that the clear text is meant."),
    synopsis="Makes a SecureString from a password, for -Password parameters.",
    examples=("$pw = ConvertTo-SecureString -String 'Pa55word!' -AsPlainText -Force",),
    output_type="System.Security.SecureString",
)
def convert_to_secure_string(
    item: object | None, params: BoundParameters, inv: Inv
) -> list[object]:
    if not params.switch("AsPlainText"):
        raise CmdletError(
            "Only clear text can be converted here: add -AsPlainText -Force "
            "(encrypted standard strings are Windows DPAPI data)."
        )
    if not params.switch("Force"):
        raise CmdletError(NEEDS_FORCE)
    return [SecureString(str(params["String"]))]


DEFINITIONS = (convert_to_secure_string,)
