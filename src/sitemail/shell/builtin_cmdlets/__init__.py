"""The cmdlets every shell has, whatever its services (PowerShell's own)."""

from __future__ import annotations

from ..cmdlet import CmdletDefinition
from . import commands, objects, output

BUILTINS: tuple[CmdletDefinition[object], ...] = (
    *objects.DEFINITIONS,
    *output.DEFINITIONS,
    *commands.DEFINITIONS,
)

__all__ = ["BUILTINS"]
