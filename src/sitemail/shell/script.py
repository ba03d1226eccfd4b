"""Running a script's text to completion (``sitemail shell -c "..."``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from .host import BufferHost
from .registry import Registry
from .runtime import Runtime

C = TypeVar("C")


@dataclass(frozen=True)
class ScriptResult:
    """What a script printed, in order, and whether anything failed."""

    output: str
    errors: tuple[str, ...]
    failed: bool


def run_script(
    text: str, services: C, registry: Registry[C] | None = None, *, width: int = 120
) -> ScriptResult:
    """Run ``text`` (statements separated by ``;`` or newlines) against ``services``.

    Errors do not stop the script: like PowerShell, the next statement runs.
    ``output`` holds every stream as a console would show it (errors too);
    ``errors`` holds the error lines alone.
    """
    host = BufferHost()
    runtime = Runtime(
        registry if registry is not None else Registry[C](), services, host, width=width
    )
    ok = runtime.run(text)
    errors = tuple(t for stream, t in host.entries if stream == "error")
    return ScriptResult(output=host.text(), errors=errors, failed=not ok)
