"""The interface cmdlets are written against.

A cmdlet is declared with :func:`cmdlet` on a function (called once per
pipeline object) or :func:`stateful_cmdlet` on a :class:`Cmdlet` subclass
(with ``begin``/``process``/``end``, a new instance per use). Either way the
result is a :class:`CmdletDefinition` to add to a ``Registry``.

The services a cmdlet needs (the directory, the servers' admin API) reach it
as ``invocation.services``; their type is the registry's type parameter, so
Exchange cmdlets declare ``Invocation[ExchangeServices]`` and the built-ins,
which need none, ``Invocation[object]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, overload

from .params import Parameter, PipelineInput
from .views import View, ViewRegistry

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)
C_contra = TypeVar("C_contra", contravariant=True)
T = TypeVar("T")


class BoundParameters:
    """The parameters bound for one call of ``process``, by canonical name, any case."""

    def __init__(self, values: dict[str, object]) -> None:
        self._values = {name.casefold(): (name, value) for name, value in values.items()}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._values

    def __getitem__(self, name: str) -> object:
        return self._values[name.casefold()][1]

    def get(self, name: str, default: object = None) -> object:
        entry = self._values.get(name.casefold())
        return default if entry is None else entry[1]

    def switch(self, name: str) -> bool:
        """True if the switch (or bool) parameter was given and is true."""
        return self.get(name) is True

    @overload
    def typed(self, name: str, kind: type[T]) -> T | None: ...
    @overload
    def typed(self, name: str, kind: type[T], default: T) -> T: ...
    def typed(self, name: str, kind: type[T], default: T | None = None) -> T | None:
        """The value narrowed to ``kind`` (default if unbound); a wrong type is a bug."""
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, kind):
            raise TypeError(f"parameter {name} holds {type(value).__name__}, not {kind.__name__}")
        return value

    def names(self) -> list[str]:
        return [name for name, _ in self._values.values()]

    def items(self) -> Iterator[tuple[str, object]]:
        return iter(self._values.values())

    def __repr__(self) -> str:
        return f"BoundParameters({dict(self.items())!r})"


@dataclass(frozen=True)
class Example:
    code: str
    remarks: str = ""


@dataclass(frozen=True)
class CmdletInfo:
    """What the shell knows about a cmdlet without running it (help, completion, binding)."""

    name: str
    parameters: tuple[Parameter, ...] = ()
    aliases: tuple[str, ...] = ()
    synopsis: str = ""
    description: str = ""
    examples: tuple[Example, ...] = ()
    supports_should_process: bool = False
    output_type: str | None = None

    @property
    def verb(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def noun(self) -> str:
        return self.name.split("-", 1)[1] if "-" in self.name else ""

    def takes_pipeline_input(self) -> bool:
        return any(p.pipeline != PipelineInput.NONE for p in self.parameters)


class CommandInfoSource(Protocol):
    """What built-ins such as Get-Command and Format-Table need from the shell."""

    @property
    def views(self) -> ViewRegistry: ...

    @property
    def width(self) -> int: ...

    def command_infos(self) -> list[CmdletInfo]: ...

    def find_command(self, name: str) -> CmdletInfo | None: ...


class Invocation(Generic[S_co]):
    """One use of a cmdlet in a pipeline: its services and its ways to report.

    ``write_error`` reports a problem with one object and goes on (a
    non-terminating error); raise ``CmdletError`` to stop the pipeline.
    """

    def __init__(
        self,
        services: S_co,
        shell: CommandInfoSource,
        command_name: str,
        *,
        error: Callable[[str], None],
        warning: Callable[[str], None],
        verbose: Callable[[str], None],
        host: Callable[[str], None],
        what_if: bool = False,
    ) -> None:
        self._services = services
        self.shell = shell
        self.command_name = command_name
        self._error = error
        self._warning = warning
        self._verbose = verbose
        self._host = host
        self.what_if = what_if

    @property
    def services(self) -> S_co:
        return self._services

    def write_error(self, message: str) -> None:
        self._error(message)

    def write_warning(self, message: str) -> None:
        self._warning(message)

    def write_verbose(self, message: str) -> None:
        self._verbose(message)

    def write_host(self, text: str) -> None:
        self._host(text)

    def should_process(self, target: str, action: str) -> bool:
        """False under ``-WhatIf`` (after saying what would happen), else True."""
        if self.what_if:
            self._host(f'What if: Performing operation "{action}" on Target "{target}".')
            return False
        return True


ProcessResult = Iterable[object] | None


class Cmdlet(Generic[C_contra]):
    """Base for cmdlets that keep state across pipeline objects (Sort-Object, Measure-Object).

    ``item`` is the pipeline object, or None when the cmdlet starts a
    pipeline (``process`` is then called once). Parameters bound from the
    pipeline are in ``params`` for that call only.
    """

    def begin(self, params: BoundParameters, invocation: Invocation[C_contra]) -> ProcessResult:
        return None

    def process(
        self, item: object | None, params: BoundParameters, invocation: Invocation[C_contra]
    ) -> ProcessResult:
        return None

    def end(self, params: BoundParameters, invocation: Invocation[C_contra]) -> ProcessResult:
        return None


ProcessFunction = Callable[[object | None, BoundParameters, Invocation[S]], ProcessResult]


class _FunctionCmdlet(Cmdlet[C_contra]):
    def __init__(self, function: ProcessFunction[C_contra]) -> None:
        self.function = function

    def process(
        self, item: object | None, params: BoundParameters, invocation: Invocation[C_contra]
    ) -> ProcessResult:
        return self.function(item, params, invocation)


@dataclass(frozen=True)
class CmdletDefinition(Generic[C_contra]):
    """A cmdlet ready to register: its description, how to make one, the views it brings."""

    info: CmdletInfo
    factory: Callable[[], Cmdlet[C_contra]]
    views: tuple[View, ...] = field(default=())


def _info(
    name: str,
    parameters: tuple[Parameter, ...],
    aliases: Iterable[str],
    synopsis: str,
    description: str,
    examples: Iterable[Example | str],
    supports_should_process: bool,
    output_type: str | None,
) -> CmdletInfo:
    seen: set[str] = set()
    for parameter in parameters:
        for alias in parameter.names():
            if alias.casefold() in seen:
                raise ValueError(f"{name}: parameter name {alias!r} is declared twice")
            seen.add(alias.casefold())
    return CmdletInfo(
        name=name,
        parameters=parameters,
        aliases=tuple(aliases),
        synopsis=synopsis,
        description=description,
        examples=tuple(e if isinstance(e, Example) else Example(e) for e in examples),
        supports_should_process=supports_should_process,
        output_type=output_type,
    )


def cmdlet(
    name: str,
    *parameters: Parameter,
    aliases: Iterable[str] = (),
    synopsis: str = "",
    description: str = "",
    examples: Iterable[Example | str] = (),
    supports_should_process: bool = False,
    output_type: str | None = None,
    views: Iterable[View] = (),
) -> Callable[[ProcessFunction[S]], CmdletDefinition[S]]:
    """Declare a cmdlet whose body is one function called per pipeline object.

    ::

        @cmdlet("Get-Thing", Parameter("Identity", position=0), synopsis="Lists things.")
        def get_thing(item, params, invocation: Invocation[Services]) -> Iterable[object]:
            ...
    """
    info = _info(
        name,
        parameters,
        aliases,
        synopsis,
        description,
        examples,
        supports_should_process,
        output_type,
    )

    def wrap(function: ProcessFunction[S]) -> CmdletDefinition[S]:
        return CmdletDefinition(info, lambda: _FunctionCmdlet(function), tuple(views))

    return wrap


def stateful_cmdlet(
    cls: type[Cmdlet[S]],
    name: str,
    *parameters: Parameter,
    aliases: Iterable[str] = (),
    synopsis: str = "",
    description: str = "",
    examples: Iterable[Example | str] = (),
    supports_should_process: bool = False,
    output_type: str | None = None,
    views: Iterable[View] = (),
) -> CmdletDefinition[S]:
    """Declare a cmdlet from a :class:`Cmdlet` subclass (a new instance per use)::

    class SortThings(Cmdlet[Services]):
        def process(self, item, params, invocation): ...
        def end(self, params, invocation): ...

    SORT_THINGS = stateful_cmdlet(SortThings, "Sort-Thing", Parameter(...))
    """
    info = _info(
        name,
        parameters,
        aliases,
        synopsis,
        description,
        examples,
        supports_should_process,
        output_type,
    )
    return CmdletDefinition(info, cls, tuple(views))
