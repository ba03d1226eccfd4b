"""``sitemail esm EX2003 [COMMAND...]``: Exchange System Manager's view of a 2003 server's HTTP.

ESM shows a 2003 server's virtual directories under Administrative Groups >
First Administrative Group > Servers > EX2003 > Protocols > HTTP > Exchange
Virtual Server, and their Access tab's Authentication Methods (anonymous,
Basic, Integrated Windows).  ESM writes them to Active Directory: here the
directory's :class:`~sitemail.org.model.VirtualDirectory` of the 2003 server,
which the System Attendant copies to the server's IIS metabase
(:mod:`sitemail.exchange2003.system_attendant`), so a change made here stays.

Commands: ``show`` (the tree), ``show VDIR`` (one virtual directory),
``set VDIR anonymous|basic|windows on|off``, ``events`` (the server's
application log, as Event Viewer shows it), ``help``, ``exit``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TextIO

from sitemail.exchange2003.event_log import EventLog
from sitemail.exchange2003.metabase import IisAuth, Metabase, MetabaseError, vdir_leaf
from sitemail.iis.console_cli import Console, ConsoleCommandError, console_main
from sitemail.org.directory import Directory, DirectoryError
from sitemail.org.model import ExchangeVersion, Organization, Server, VirtualDirectory

__all__ = ["EsmView", "esm_main"]

#: The administrative group a 2003 server stays in when 2010 joins (2003's default name).
ADMIN_GROUP = "First Administrative Group"
_METHODS = {
    "anonymous": ("anonymous_authentication", "Anonymous access"),
    "basic": ("basic_authentication", "Basic authentication (password is sent in clear text)"),
    "windows": ("windows_authentication", "Integrated Windows authentication"),
}
_ALIASES = {"integrated": "windows", "iwa": "windows", "ntlm": "windows"}
_SWITCH = {"on": True, "true": True, "enable": True, "off": False, "false": False, "disable": False}

HELP = (
    "Exchange System Manager (Exchange 2003): Protocols > HTTP > Exchange Virtual Server.\n"
    "  show                                  the server's HTTP virtual directories\n"
    "  show VDIR                             one of them: its authentication methods\n"
    "  set VDIR anonymous|basic|windows on|off\n"
    "                                        change one (written to Active Directory; the\n"
    "                                        System Attendant copies it to IIS, so it stays)\n"
    "  events                                the server's application event log\n"
    "  help                                  this text;  exit  leaves\n"
)


def _methods(auth: IisAuth) -> str:
    names = [n for on, n in ((auth.anonymous, "Anonymous"), (auth.basic, "Basic")) if on]
    if auth.windows:
        names.append("Integrated Windows")
    return ", ".join(names) or "(none)"


class EsmView:
    """ESM on one Exchange 2003 server of the directory."""

    def __init__(self, directory: Directory, server: Server, home: Path) -> None:
        if server.version is not ExchangeVersion.E2003:
            raise ConsoleCommandError(
                f"{server.name} is an Exchange {server.version.product} server; Exchange System "
                "Manager manages Exchange 2003 servers. Use the Exchange Management Shell "
                f"(sitemail shell: Set-*VirtualDirectory) or `sitemail iis {server.name}`"
            )
        self.directory = directory
        self.server = server
        self.metabase = Metabase(home)
        self.events = EventLog(home)

    def records(self) -> list[VirtualDirectory]:
        mine = self.server.name.casefold()
        found = [v for v in self.directory.list(VirtualDirectory) if v.server.casefold() == mine]
        return sorted(found, key=lambda v: vdir_leaf(v).casefold())

    def _find(self, name: str) -> VirtualDirectory:
        want = name.casefold()
        for v in self.records():
            if want in (vdir_leaf(v).casefold(), v.name.casefold(), v.identity.casefold()):
                return v
        names = ", ".join(vdir_leaf(v) for v in self.records()) or "none"
        raise ValueError(f"{self.server.name} has no virtual directory {name!r}; it has {names}")

    def _tree_head(self) -> list[str]:
        orgs = self.directory.list(Organization)
        org = orgs[0].name if orgs else "Exchange"
        return [
            f"{org} (Exchange)",
            "  Administrative Groups",
            f"    {ADMIN_GROUP}",
            "      Servers",
            f"        {self.server.name}  ({self.server.version.display})",
            "          Protocols",
            "            HTTP",
            "              Exchange Virtual Server",
        ]

    def show(self, name: str | None = None) -> str:
        if name is None:
            rows = self._tree_head()
            for v in self.records():
                rows.append(f"                {vdir_leaf(v):<30}{_methods(IisAuth.of(v))}")
            return "\n".join(rows) + "\n"
        v = self._find(name)
        auth = IisAuth.of(v)
        rows = [
            f"{vdir_leaf(v)} Properties > Access > Authentication Methods ({self.server.name})",
            *(
                f"  [{'x' if getattr(auth, m) else ' '}] {label}"
                for m, (_, label) in _METHODS.items()
            ),
        ]
        try:
            applied = self.metabase.effective(self.directory, self.server.name)
        except MetabaseError as exc:
            rows.append(f"  (the IIS metabase cannot be read: {exc})")
        else:
            now = next(
                (a for k, a in applied.items() if k.casefold() == vdir_leaf(v).casefold()), None
            )
            if now is not None and now != auth:
                # Not something ESM shows: sitemail says what the next DS2MB pass will do.
                rows.append(
                    f"  IIS applies {_methods(now)} now (changed in IIS Manager); the System "
                    "Attendant puts back the settings above at its next pass."
                )
        return "\n".join(rows) + "\n"

    def set(self, name: str, method: str, value: str) -> str:
        key = _ALIASES.get(method.casefold(), method.casefold())
        if key not in _METHODS:
            raise ValueError(
                f"unknown authentication method {method!r}; use anonymous, basic or windows"
            )
        if value.casefold() not in _SWITCH:
            raise ValueError(f"{value!r}: say on or off")
        v = self._find(name)
        field, label = _METHODS[key]
        on = _SWITCH[value.casefold()]
        if getattr(v, field) != on:
            # Active Directory, where the System Attendant reads it (the shell writes the same).
            with self.directory.transaction():
                self.directory.put(v.model_copy(update={field: on}))
        return (
            f"{vdir_leaf(v)}: {label} {'on' if on else 'off'}; written to Active Directory. "
            f"The System Attendant on {self.server.name} copies it to IIS (it stays).\n"
        )

    def event_text(self) -> str:
        entries = self.events.read()
        if not entries:
            return f"The application log of {self.server.name} is empty.\n"
        return "\n".join(e.text() for e in reversed(entries))

    def run(self, line: str) -> tuple[str, bool]:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            return f"{exc}\n", False
        if not words:
            return "", True
        verb, rest = words[0].casefold(), words[1:]
        try:
            if verb in ("help", "?", "/?"):
                return HELP, True
            if verb == "show" and len(rest) <= 1:
                return self.show(rest[0] if rest else None), True
            if verb == "set" and len(rest) == 3:
                return self.set(*rest), True
            if verb == "events" and not rest:
                return self.event_text(), True
        except (ValueError, DirectoryError) as exc:
            return f"{exc}\n", False
        return f"Not understood: {line!r}. Type help.\n", False


def _esm_console(directory: Directory, server: Server, home: Path) -> Console:
    view = EsmView(directory, server, home)
    return Console(view.run, f"ESM {server.name}> ", HELP + "\n" + view.show())


def esm_main(
    argv: list[str],
    lab_dir: Path,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    return console_main(
        "esm",
        "Exchange System Manager of an Exchange 2003 server: its HTTP virtual directories and "
        "their authentication. Without a command: interactive.",
        "show [VDIR] | set VDIR anonymous|basic|windows on|off | events",
        _esm_console,
        argv,
        lab_dir,
        (stdin, stdout, stderr),
    )
