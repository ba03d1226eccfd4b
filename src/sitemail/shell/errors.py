"""The errors a shell user can meet, worded the way PowerShell words them.

Every message is one line that says what was wrong and what was expected, so
that a script's stderr reads like the Exchange Management Shell's.
"""

from __future__ import annotations


class ShellError(Exception):
    """Base of every error the shell reports to its user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ParseError(ShellError):
    """The text is not valid in the language.

    ``incomplete`` is true when the text ended too early (an open brace, quote
    or pipe): the interactive shell then asks for a continuation line instead
    of reporting the error.
    """

    def __init__(self, message: str, text: str, offset: int, *, incomplete: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.incomplete = incomplete
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - (text.rfind("\n", 0, offset) + 1) + 1

    def __str__(self) -> str:
        return f"At line:{self.line} char:{self.column}: {self.message}"


class ConversionError(ShellError):
    """A value cannot be converted to the type a parameter or operator needs.

    The message is the inner ``Error: "..."`` part of PowerShell's binding
    error; the binder wraps it with the parameter's name.
    """


class BindingError(ShellError):
    """Arguments do not fit the command's parameters."""


class CommandNotFoundError(ShellError):
    def __init__(self, name: str, suggestion: str | None = None) -> None:
        message = (
            f"The term '{name}' is not recognized as the name of a cmdlet, function, "
            "script file, or operable program. Check the spelling of the name, or if a "
            "path was included, verify that the path is correct and try again."
        )
        if suggestion:
            message += f" Did you mean '{suggestion}'?"
        super().__init__(message)
        self.name = name


class CmdletError(ShellError):
    """Raised by a cmdlet to stop its pipeline (a terminating error).

    For an error about one object that should not stop the others, call
    ``Invocation.write_error`` instead.
    """


class RuntimeShellError(ShellError):
    """An expression failed while running (bad operator operands, no such method)."""


class ArgumentRejected(ConversionError):
    """A conversion failure with PowerShell's whole sentence for it.

    The message may contain ``{parameter}``, which the binder fills in.
    """
