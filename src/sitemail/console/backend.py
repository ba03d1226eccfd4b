"""What the console knows of the organization, asked the way the shell asks it.

Everything the console shows or does goes through the Exchange Management
Shell's own runtime and cmdlets (``Get-Queue``, ``Retry-Queue``, ...) on the
shell's :class:`ExchangeServices`, so the console shows the cmdlets' objects
and their errors word for word, and the servers are reached only through their
admin API with the organization's admin certificate.  The firewalls are
reached through their console sockets, as ``sitemail asa`` reaches them
(:func:`sitemail.firewall.console_cli.find_console`).  No file of a server is
read: the directory, the lab's state file (which process runs each host) and
the PKI are the organization's, not a server's.

Every method blocks (the shell's admin client is ``urllib``); the web app
calls them on one worker thread (:class:`Backend` in :mod:`.app`), which also
keeps the directory connection on a single thread.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sitemail.diagnose.commands import ASA_NO_INSPECT_ESMTP
from sitemail.firewall.console_cli import AsaCommandError, AsaConsole, find_console, run_lines
from sitemail.org.directory import Directory
from sitemail.org.lab_state import LabState
from sitemail.org.model import Firewall, InternetHost, Site, SiteLink
from sitemail.org.ports import ADMIN_PORT
from sitemail.server.console import ConsoleClient, ConsoleError
from sitemail.shell import CmdletError, Runtime
from sitemail.shell.cmdlets import exchange_registry
from sitemail.shell.cmdlets.admin_client import AdminClient, AdminError
from sitemail.shell.cmdlets.services import ExchangeServices
from sitemail.shell.host import BufferHost
from sitemail.shell.json_text import json_value
from sitemail.shell.parser import parse

from .capture_view import CAPTURES

#: Queue and message identities as the cmdlets write them (``EX-NY1\3``,
#: ``EX-NY1\Submission``, ``EX-NY1\3\12``).  A posted identity must look like
#: one before it is put into a cmdlet line, and it is single-quoted there too.
IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}\\[A-Za-z0-9]{1,32}(\\[0-9]{1,12})?$")

#: The console's buttons and the cmdlet each one runs, as the Queue Viewer's menus map.
QUEUE_ACTIONS = {"retry": "Retry-Queue", "suspend": "Suspend-Queue", "resume": "Resume-Queue"}
MESSAGE_ACTIONS = {
    "suspend": "Suspend-Message",
    "resume": "Resume-Message",
    "remove": "Remove-Message",
}

#: The virtual directory cmdlets a server's panel lists (the shell's, in the EMC's order).
VDIR_CMDLETS = (
    "Get-OwaVirtualDirectory",
    "Get-EcpVirtualDirectory",
    "Get-ActiveSyncVirtualDirectory",
    "Get-WebServicesVirtualDirectory",
)

#: How long one poll waits for a process that does not answer: the page updates every
#: few seconds, and one stopped server must not hold the others' state back.
PROBE_TIMEOUT = 3.0


#: How long the ASA may take over the lines that switch inspection (``write memory`` included).
ASA_TIMEOUT = 20.0


def inspection_lines(on: bool) -> tuple[str, ...]:
    """The troubleshooter's ASA lines that turn ESMTP inspection off (the seed's), or the same
    lines with ``inspect esmtp`` that turn it back on; both end with ``write memory``."""
    if on:
        return tuple(
            "inspect esmtp" if x == "no inspect esmtp" else x for x in ASA_NO_INSPECT_ESMTP
        )
    return ASA_NO_INSPECT_ESMTP


class ConsoleInputError(ValueError):
    """A request the console refuses before any cmdlet runs (an identity that is not one)."""


@dataclass(frozen=True)
class CmdletResult:
    """What one cmdlet line wrote: its objects (as JSON values) and its error lines."""

    command: str
    objects: list[Any]
    errors: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "objects": self.objects, "errors": self.errors}


def quoted(value: str) -> str:
    """A PowerShell single-quoted string: nothing in it expands, ``'`` doubles."""
    return "'" + value.replace("'", "''") + "'"


def checked_identity(identity: str) -> str:
    if not IDENTITY.match(identity):
        raise ConsoleInputError(
            f"{identity[:80]!r} is not a queue or message identity; expected SERVER\\QUEUE "
            "or SERVER\\QUEUE\\NUMBER as Get-Queue and Get-Message show them"
        )
    return identity


class OrganizationBackend:
    """The shell's services for one lab, and the lab's firewalls' consoles."""

    def __init__(
        self,
        directory: Directory,
        lab_dir: Path,
        *,
        admin: AdminClient | None = None,
        probe: AdminClient | None = None,
    ) -> None:
        self.directory = directory
        self.lab_dir = lab_dir
        self.services = ExchangeServices(directory, lab_dir, admin or AdminClient(lab_dir / "pki"))
        # Polls use a client of their own with a short timeout (see PROBE_TIMEOUT).
        self._probe = probe or AdminClient(lab_dir / "pki", timeout=PROBE_TIMEOUT)
        self.registry = exchange_registry()

    # ------------------------------------------------------------------ cmdlets

    def run(self, command: str) -> CmdletResult:
        """Run one line of the shell; its objects and errors (as the shell prints them)."""
        host = BufferHost()
        runtime = Runtime(self.registry, self.services, host)
        objects: list[Any] = []
        try:
            for statement in parse(command).statements:
                objects.extend(json_value(o, 3) for o in runtime.collect([statement]))
        except Exception as error:  # the shell's own wording for a failed statement
            runtime.write("error", str(error))
        errors = [text for stream, text in host.entries if stream == "error"]
        return CmdletResult(command, objects, errors)

    def queues(self) -> CmdletResult:
        return self.run("Get-Queue")

    def messages(self, queue: str) -> CmdletResult:
        return self.run(f"Get-Message -Queue {quoted(checked_identity(queue))}")

    def track(self, command: str) -> CmdletResult:
        """A Get-MessageTrackingLog line (built by :mod:`.tracking` from checked fields)."""
        if not command.startswith("Get-MessageTrackingLog"):
            raise ConsoleInputError("only Get-MessageTrackingLog searches the tracking logs")
        return self.run(command)

    def hubs(self) -> list[tuple[str, str, str]]:
        """(name, site, FQDN) of each Exchange 2010 hub, in the lab's order (NY first)."""
        return [(s.name, s.site, s.fqdn) for s in self.services.hubs()]

    def queue_action(self, action: str, identity: str) -> CmdletResult:
        return self._action(QUEUE_ACTIONS, action, identity)

    def message_action(self, action: str, identity: str) -> CmdletResult:
        return self._action(MESSAGE_ACTIONS, action, identity)

    def _action(self, table: dict[str, str], action: str, identity: str) -> CmdletResult:
        name = table.get(action)
        if name is None:
            raise ConsoleInputError(f"{action[:40]!r} is not one of {', '.join(table)}")
        return self.run(f"{name} -Identity {quoted(checked_identity(identity))}")

    # ----------------------------------------------------------------- topology

    def topology(self) -> dict[str, Any]:
        """Sites, site links, servers, firewalls and the Internet host: what does not change
        while the page is open (state and queues come from :meth:`live`)."""
        shown = {str(r["Name"]): r for r in self.run("Get-ExchangeServer").objects}
        servers = self.services.servers()  # in the lab's order: the seed's NY first
        order = [s.site.casefold() for s in servers]
        sites = sorted(
            (s for s in self.directory.list(Site) if not s.internet),
            key=lambda s: order.index(s.name.casefold()) if s.name.casefold() in order else 99,
        )
        return {
            "organization": self.services.organization().name,
            "sites": [s.name for s in sites],
            "links": [
                {"name": link.name, "sites": list(link.sites), "cost": link.effective_cost}
                for link in self.directory.list(SiteLink)
            ],
            # The site from the directory: Get-ExchangeServer shows none for Exchange 2003,
            # which still sits in its site's column.
            "servers": [
                {
                    "name": s.name,
                    "site": s.site,
                    "roles": shown.get(s.name, {}).get("ServerRole"),
                    "version": shown.get(s.name, {}).get("AdminDisplayVersion"),
                    "hub": bool(shown.get(s.name, {}).get("IsHubTransportServer")),
                }
                for s in servers
            ],
            "firewalls": [{"name": f.name, "site": f.site} for f in self.directory.list(Firewall)],
            "internet": [
                {"name": h.name, "fqdn": h.fqdn, "address": h.address}
                for h in self.directory.list(InternetHost)
            ],
        }

    def live(self) -> dict[str, Any]:
        """Running or stopped for every host, queue lengths per hub, inspection per firewall."""
        state = LabState.load(self.lab_dir)
        records = state.processes if state is not None else []
        hosts: dict[str, str] = {}
        firewalls: dict[str, dict[str, Any]] = {}
        for rec in records:
            if rec.kind == "server":
                hosts[rec.name] = "running" if self._server_answers(rec.name) else "stopped"
            elif rec.kind in ("firewall", "internet"):
                health = self._console(rec.name, rec.kind, lambda c: c.call("health"))
                hosts[rec.name] = "running" if health is not None else "stopped"
                if rec.kind == "firewall":
                    firewalls[rec.name] = {"inspection": _inspection(health)}
        queues = self.queues()
        lengths: dict[str, int] = {}
        for queue in queues.objects:
            server = str(queue.get("Identity", "")).partition("\\")[0]
            lengths[server] = lengths.get(server, 0) + int(queue.get("MessageCount") or 0)
        return {
            "hosts": hosts,
            "firewalls": firewalls,
            "queue_lengths": lengths,
            "queues": queues.objects,
            "errors": queues.errors,
        }

    def _server_answers(self, name: str) -> bool:
        try:
            server = self.services.server(name)
            address, port = self.services.address(server), self.services.port(ADMIN_PORT)
            self._probe.get(server.name, address, port, "/health")
        except (AdminError, CmdletError):
            return False
        return True

    def _console(
        self, name: str, kind: str, ask: Callable[[ConsoleClient], dict[str, Any]]
    ) -> dict[str, Any] | None:
        state = LabState.load(self.lab_dir)
        rec = next((r for r in (state.processes if state else []) if r.name == name), None)
        if rec is None:
            return None
        return _ask(Path(rec.home) / "console.sock", ask)

    def server_detail(self, name: str) -> dict[str, Any]:
        """A server's receive connectors and virtual directories, from their Get- cmdlets."""
        server = self.services.server(name)  # Exchange's not-found wording when there is none
        target = quoted(server.name)
        connectors = self.run(f"Get-ReceiveConnector -Server {target}")
        vdirs: list[Any] = []
        errors = list(connectors.errors)
        for cmdlet in VDIR_CMDLETS:
            found = self.run(f"{cmdlet} -Server {target}")
            vdirs += [{"Cmdlet": cmdlet, **v} for v in found.objects if isinstance(v, dict)]
            errors += found.errors
        return {
            "name": server.name,
            "receive_connectors": connectors.objects,
            "virtual_directories": vdirs,
            "errors": errors,
        }

    def set_inspection(self, name: str, on: bool) -> dict[str, Any]:
        """Turn ESMTP inspection on or off on a firewall, with the troubleshooter's lines."""
        done = _run_asa(name, self.lab_dir, inspection_lines(on))
        if "error" not in done:
            done["inspection"] = self.firewall_detail(done["name"]).get("inspection", "unknown")
        return done

    def record_next(self) -> list[dict[str, Any]]:
        """Start (or empty) the console's captures on every firewall, inside and outside, of
        SMTP (port 25): what the next conversation across them will be read from."""
        lines: list[str] = []
        for interface, name in CAPTURES.items():
            lines += [
                f"capture {name} interface {interface} match tcp any any eq 25",
                f"clear capture {name}",
            ]
        return [_run_asa(f.name, self.lab_dir, tuple(lines)) for f in self.directory.list(Firewall)]

    def captured(self, firewalls: list[str]) -> dict[str, dict[str, str]]:
        """``show capture NAME dump`` of the console's captures, per firewall and interface
        (a firewall that does not answer, or has none, is left out)."""
        shown: dict[str, dict[str, str]] = {}
        for name in firewalls:
            try:
                found, socket = find_console(name, self.lab_dir)
            except AsaCommandError:
                continue

            def ask(client: ConsoleClient) -> dict[str, Any]:
                return {
                    interface: str(client.call("show", what=f"capture {cap} dump")["output"])
                    for interface, cap in CAPTURES.items()
                }

            answer = _ask(socket, ask)
            if answer is not None:
                shown[found] = answer
        return shown

    def firewall_detail(self, name: str) -> dict[str, Any]:
        """A firewall's inspection policy and its counters, as its console shows them."""
        try:
            found, socket = find_console(name, self.lab_dir)
        except AsaCommandError as error:
            return {"name": name, "error": str(error)}

        def ask(client: ConsoleClient) -> dict[str, Any]:
            return {
                "health": client.call("health"),
                "policy": client.call("show", what="running-config policy-map")["output"],
                "service_policy": client.call("show", what="service-policy")["output"],
            }

        shown = _ask(socket, ask)
        if shown is None:
            return {"name": found, "error": f"{found} does not answer on its console"}
        return {
            "name": found,
            "inspection": _inspection(shown["health"]),
            # What the switch types, shown to the administrator before it does.
            "switch_lines": {"off": inspection_lines(False), "on": inspection_lines(True)},
            "policy": shown["policy"],
            "service_policy": shown["service_policy"],
        }


def _ask(socket: Path, ask: Callable[[ConsoleClient], dict[str, Any]]) -> dict[str, Any] | None:
    """A host's answer on its console socket; None when it does not answer in time."""
    try:
        with ConsoleClient(socket, timeout=PROBE_TIMEOUT) as client:
            return ask(client)
    except (ConsoleError, OSError, ValueError):
        return None


def _run_asa(name: str, lab_dir: Path, lines: tuple[str, ...]) -> dict[str, Any]:
    """Type ``lines`` on a firewall's console, as ``sitemail asa NAME -c`` does: the transcript
    and whether every line was taken (no ``ERROR:`` answer)."""
    try:
        found, socket = find_console(name, lab_dir)
        with ConsoleClient(socket, timeout=ASA_TIMEOUT) as client:
            console = AsaConsole(client, found)
            out = io.StringIO()
            try:
                failed = run_lines(console, lines, out)
            finally:
                console.close()
    except (AsaCommandError, ConsoleError, OSError) as error:
        return {"name": name, "lines": list(lines), "error": str(error)}
    return {"name": found, "lines": list(lines), "transcript": out.getvalue(), "ok": not failed}


def _inspection(health: dict[str, Any] | None) -> str:
    """``on``, ``off`` or ``unknown`` from a firewall's health answer, which names per
    interface the ESMTP map inspecting port 25 there (None: not inspected)."""
    if health is None:
        return "unknown"
    state = health.get("esmtp_inspection")
    if not isinstance(state, dict):
        return "unknown"
    return "on" if any(v for v in state.values()) else "off"
