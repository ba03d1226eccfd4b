"""Pieces every noun module shares: identity parameters, saving a change, error plumbing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from sitemail.org.directory import DirectoryError
from sitemail.org.model import Model
from sitemail.shell import (
    BY_PROPERTY_NAME,
    BY_VALUE,
    STRING,
    BoundParameters,
    CmdletError,
    Invocation,
    Parameter,
)

from .admin_client import AdminError
from .fields import ChangeRejected
from .services import ExchangeServices

Inv = Invocation[ExchangeServices]
ProcessResult = Iterable[object] | None

NO_CHANGE = "The command completed successfully but no settings of '{identity}' have been modified."


def identity_parameter(what: str, *, mandatory: bool = True) -> Parameter:
    """``-Identity`` of a Set-/Remove- cmdlet: positional, and taken from the pipeline."""
    return Parameter(
        "Identity",
        STRING,
        position=0,
        mandatory=mandatory,
        pipeline=BY_VALUE | BY_PROPERTY_NAME,
        help=f"The {what} to act on.",
    )


def get_identity_parameter(what: str) -> Parameter:
    """``-Identity`` of a Get- cmdlet: optional, positional, wildcards allowed."""
    return Parameter(
        "Identity", STRING, position=0, help=f"The {what} to show (wildcards allowed)."
    )


SERVER_PARAMETER = Parameter(
    "Server",
    STRING,
    pipeline=BY_VALUE,
    help="The server (name or FQDN); Get-TransportServer or Get-ExchangeServer can pipe it.",
)


def save(inv: Inv, old: Model, new: Model, action: str) -> bool:
    """Write ``new`` in place of ``old`` (which may have another identity, after a rename).

    Warns as Exchange does when nothing changed; honours -WhatIf.
    """
    if new == old:
        inv.write_warning(NO_CHANGE.format(identity=old.identity))
        return False
    if not inv.should_process(old.identity, action):
        return False
    directory = inv.services.directory
    with reported(), directory.transaction():
        if new.identity.casefold() != old.identity.casefold():
            directory.create(new)
            directory.delete(type(old), old.identity)
        else:
            directory.put(new)
    return True


@contextmanager
def reported() -> Iterator[None]:
    """Turn the lower layers' errors into the cmdlet's error (one line, their words)."""
    try:
        yield
    except ChangeRejected as error:
        raise CmdletError(str(error)) from None
    except DirectoryError as error:
        raise CmdletError(str(error)) from None
    except AdminError as error:
        raise CmdletError(error.message) from None


Process = Callable[[object | None, BoundParameters, Inv], ProcessResult]


def nonterminating(function: Process) -> Process:
    """Report a cmdlet body's error as a non-terminating one, as Exchange cmdlets do.

    The error names the object that failed and the pipeline goes on with the
    next one (``Get-TransportServer | Set-TransportServer ...`` on a broken
    server still changes the others).  The body's results are gathered first,
    so an error cannot leave half an answer on the screen.
    """

    def wrapped(item: object | None, params: BoundParameters, inv: Inv) -> ProcessResult:
        try:
            with reported():
                result = function(item, params, inv)
                return None if result is None else list(result)
        except CmdletError as error:
            inv.write_error(error.message)
            return None

    return wrapped
