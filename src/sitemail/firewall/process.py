"""One firewall process: the emulated ASA's configuration, its relays and its console.

The lab writes ``listeners.json`` in the firewall's folder: which addresses
it answers for and where each leads (the tunnel and NAT plumbing, which an
ASA's own configuration would hold as crypto maps and routes).  The ASA's own
configuration lives beside it as ``startup-config``:

* at start the process loads ``startup-config``; on the very first start there
  is none, so it boots the factory configuration (``inspect esmtp`` on) and
  saves it, as a new box ships with it in flash;
* the running configuration lives in this process only.  ``write memory``
  replaces ``startup-config`` (temp file, fsync, rename), ``reload`` reads it
  back, and a restart of the process is a power cycle: what was not saved is
  gone;
* every new connection is judged by the access group of the interface it
  enters (refused: reset at once, ``%ASA-4-106023`` in ``syslog.log``, the
  entry's hit count up) and gets an inspection engine built from the running
  configuration of that moment; open connections keep theirs.

The console socket (``console.sock``, JSON lines, see
:mod:`sitemail.server.console`) answers ``health``, ``cli`` (console sessions
for ``sitemail asa``), ``show`` and ``counters``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, BinaryIO

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.firewall import asa_cli_trees as trees
from sitemail.firewall.acl import Packet, ace_hash, evaluate
from sitemail.firewall.asa_cli import (
    AsaCli,
    CliResult,
    Logout,
    Mode,
    Reload,
    RunningConfigChanged,
    SaveStartupConfig,
)
from sitemail.firewall.asa_cli_grammar import Node
from sitemail.firewall.asa_cli_input import terminal_safe
from sitemail.firewall.asa_cli_ops import ClearConnections, WriteFile
from sitemail.firewall.asa_config import (
    AsaConfig,
    ConfigSyntaxError,
    Interface,
    esmtp_inspection_for,
    esmtp_policy_for,
    factory_config,
    parse_config,
    render_config,
)
from sitemail.firewall.asa_logging import LogBuffer
from sitemail.firewall.asa_runtime import AsaRuntime
from sitemail.firewall.asa_syslog import acl_denied
from sitemail.firewall.counters import AclHits, InspectCounters
from sitemail.firewall.esmtp_policy import EsmtpPolicy
from sitemail.firewall.inspection import Inspector, make_inspector
from sitemail.firewall.packet_tracer import Egress
from sitemail.firewall.relay import Connection, Refusal, Relay, Route
from sitemail.firewall.ssh_listener import SshListener
from sitemail.org.model import Firewall, InternetHost, Server
from sitemail.org.ports import RELAYED_PORTS, SSH_PORT
from sitemail.server import event_loop
from sitemail.server.console import serve_console
from sitemail.server.context import ProcessContext

__all__ = [
    "AsaDevice",
    "SyslogFile",
    "complete",
    "load_routes",
    "serve_firewall",
]

log = logging.getLogger("sitemail.firewall")

STARTUP_CONFIG = "startup-config"
SYSLOG_FILE = "syslog.log"
#: Console sessions open at once; the least recently used one goes first.
MAX_SESSIONS = 16
#: A console session nobody typed into for this long is closed (``console timeout``).
SESSION_IDLE = 3600.0


# --- routes -------------------------------------------------------------------------------


def load_routes(
    home: Path, port_offset: int, address_of: Callable[[str], str | None] | None = None
) -> list[Route]:
    """The relays of ``listeners.json``; every relayed port, shifted by the lab's offset.

    ``address_of`` gives a host's own address, so that syslog lines name the
    real server rather than the next firewall's tunnel address.
    """
    path = home / "listeners.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    ports = tuple((p + port_offset, p) for p in RELAYED_PORTS)
    routes = []
    for item in data:
        # Traffic leaving the site enters the ASA on its inside interface;
        # traffic from the other site arrives on the outside (from the tunnel).
        outbound = item.get("direction") == "outbound"
        routes.append(
            Route(
                listen=item["listen"],
                forward=item["forward"],
                ports=ports,
                description=f"{item['from_site']} -> {item['to_host']} ({item['direction']})",
                client_interface="inside" if outbound else "outside",
                server_interface="outside" if outbound else "inside",
                server_address=address_of(item["to_host"]) if address_of else None,
            )
        )
    return routes


# --- syslog -------------------------------------------------------------------------------


class SyslogFile:
    """The firewall's log (``syslog.log``), one message a line with the ASA's time stamp.

    The format is what ``show logging`` prints with ``logging timestamp``:
    ``Jan 02 2026 10:11:12: %ASA-4-108004: ...``.  The file is bounded: past
    ``max_bytes`` it moves to ``syslog.log.1`` and a new one starts.
    """

    def __init__(
        self,
        path: Path,
        clock: Clock = SYSTEM_CLOCK,
        max_bytes: int = 10 << 20,
        buffer: LogBuffer | None = None,
    ) -> None:
        self.path = path
        self.clock = clock
        self.max_bytes = max_bytes
        #: ``show logging``'s buffer gets every line too.
        self.buffer = buffer
        self._file: BinaryIO | None = None
        self._size = 0
        self._second = -1
        self._stamp = ""

    def __call__(self, message: str) -> None:
        now = self.clock.now()
        second = int(now.timestamp())
        if second != self._second:
            # Two lines a connection: the stamp is formatted once a second, not per line.
            self._second, self._stamp = second, now.astimezone().strftime("%b %d %Y %H:%M:%S")
        stamp = self._stamp
        if self.buffer is not None:
            self.buffer.add(f"{stamp}: {message}")
        line = f"{stamp}: {message}\n".encode()
        out = self._file
        if out is None or self._size + len(line) > self.max_bytes:
            out = self._reopen(len(line))
        # Unbuffered: each line is one write(2), in the file as soon as it is logged.
        out.write(line)
        self._size += len(line)

    def _reopen(self, incoming: int) -> BinaryIO:
        """Open the file for appending, moving a full one to ``.1`` first."""
        if self._file is not None:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_size + incoming > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        out = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open across lines
        self._file, self._size = out, os.fstat(out.fileno()).st_size
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# --- the device ---------------------------------------------------------------------------


def egress_of(routes: list[Route]) -> list[Egress]:
    """The servers the relays lead to, by the interface they leave on (packet-tracer's routes)."""
    out: list[Egress] = []
    for route in routes:
        try:
            network = IPv4Network(f"{route.server_address or route.forward}/32")
        except ValueError:
            continue
        out.append(Egress(network, route.server_interface, route.forward))
    return out


def _interfaces(firewall: Firewall) -> list[Interface]:
    out = []
    for spec in firewall.interfaces:
        address = None
        if spec.address:
            iface = ipaddress.ip_interface(spec.address)
            address = f"{iface.ip} {iface.netmask}"
        out.append(Interface(spec.name, spec.nameif, spec.security_level, address))
    return out


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` so that a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Session:
    cli: AsaCli
    last_used: float


class AsaDevice:
    """The configuration side of one emulated ASA: flash, running config, console sessions."""

    def __init__(
        self,
        home: Path,
        hostname: str,
        interfaces: list[Interface] | None = None,
        *,
        on_reload: Callable[[], None] | None = None,
        runtime: AsaRuntime | None = None,
    ) -> None:
        self.home = home
        #: Captures, conn table and log buffer, shared with the relay.
        self.runtime = runtime if runtime is not None else AsaRuntime()
        self.hostname = hostname
        self.interfaces = interfaces
        self.counters: dict[str, InspectCounters] = {"esmtp": InspectCounters()}
        self.acl_hits = AclHits()
        #: Where the relays lead, for packet-tracer's route lookup (set with the routes).
        self.egress: list[Egress] = []
        self.running: AsaConfig = factory_config(hostname, interfaces)
        self.startup = ""
        self.boot_problem: str | None = None
        #: Booted the factory configuration because flash had no startup-config (a new
        #: box: the lab gives it its admin account then).
        self.first_boot = False
        self._sessions: dict[str, _Session] = {}
        self._ids = itertools.count(1)
        self.on_reload = on_reload
        self._policies: dict[tuple[str, int], EsmtpPolicy | None] = {}
        self._policy_stamp: tuple[int, int] | None = None
        self._policy_config: AsaConfig | None = None

    @property
    def startup_path(self) -> Path:
        return self.home / STARTUP_CONFIG

    def boot(self) -> None:
        """Load the startup-config, or ship the factory configuration on first start."""
        path = self.startup_path
        if not path.exists():
            self.running = factory_config(self.hostname, self.interfaces)
            self.startup = render_config(self.running)
            write_atomically(path, self.startup)
            self.first_boot = True
            log.info("%s: no startup-config; factory configuration saved", self.hostname)
            return
        self.startup = path.read_text(encoding="utf-8")
        try:
            self.running = parse_config(self.startup)
        except ConfigSyntaxError as exc:
            # A damaged flash file: come up with the factory configuration and say
            # so, rather than not at all; the file stays for the operator to see.
            self.boot_problem = f"{path}: {exc}; running the factory configuration"
            log.error("%s", self.boot_problem)
            self.running = factory_config(self.hostname, self.interfaces)

    # -- inspection --------------------------------------------------------------------------

    def admit(self, conn: Connection) -> Refusal | None:
        """The access group of the interface the connection enters: None lets it through."""
        packet = Packet.tcp(conn.client_ip, conn.client_port, conn.server_ip, conn.exchange_port)
        config = self.running
        interface = conn.route.client_interface
        verdict = evaluate(config.access_lists, config.access_groups, interface, packet)
        entry_hash = "0x0"
        if verdict.access_list is not None and verdict.ace is not None:
            entry_hash = ace_hash(verdict.access_list.name, verdict.ace)
            self.acl_hits.hit(verdict.access_list.name, entry_hash)
        if verdict.permitted or verdict.group is None:
            return None
        return Refusal(acl_denied(conn.flow, verdict.group.acl, entry_hash))

    def inspector_for(self, conn: Connection) -> Inspector | None:
        """The engine for a new connection, from the running configuration of now."""
        policy = self._esmtp_policy(conn.route.client_interface, conn.exchange_port)
        if policy is None:
            return None
        return make_inspector(policy, conn.flow, self.counters["esmtp"])

    def _esmtp_policy(self, interface: str, port: int) -> EsmtpPolicy | None:
        """The policy for new connections on ``interface``, kept per configuration version.

        Building it reads the whole policy-map tree (a tenth of a connection's
        cost); a policy is immutable, so connections share it until the CLI
        changes the configuration or the box reloads.
        """
        config = self.running
        stamp = (id(config), config.generation)
        if self._policy_stamp != stamp or self._policy_config is not config:
            self._policies.clear()
            self._policy_stamp, self._policy_config = stamp, config
        key = (interface, port)
        if key not in self._policies:
            self._policies[key] = esmtp_policy_for(config, interface=interface, port=port)
        return self._policies[key]

    def esmtp_state(self) -> dict[str, str | None]:
        """Per interface: the ESMTP map inspecting TCP/25 arriving there, or None (off)."""
        out: dict[str, str | None] = {}
        for nameif in ("inside", "outside"):
            inspect = esmtp_inspection_for(self.running, interface=nameif)
            out[nameif] = None if inspect is None else inspect.map_name or "_default_esmtp_map"
        return out

    # -- console sessions --------------------------------------------------------------------

    def console(self, *, privileged: bool) -> AsaCli:
        """A console on this box: its running configuration, flash and counters."""
        return AsaCli(
            self.running,
            startup=self.startup,
            counters=self.counters,
            acl_hits=self.acl_hits,
            egress=self.egress,
            privileged=privileged,
            runtime=self.runtime,
        )

    def open_session(self, *, privileged: bool = True) -> tuple[str, AsaCli]:
        now = time.monotonic()
        for sid, session in list(self._sessions.items()):
            if now - session.last_used > SESSION_IDLE:
                del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda s: self._sessions[s].last_used)
            del self._sessions[oldest]
        # The seed's lines start at "CiscoASA#", so a session starts privileged
        # (as on a console line with no enable password); ``enable`` still works.
        cli = self.console(privileged=privileged)
        sid = str(next(self._ids))
        self._sessions[sid] = _Session(cli, now)
        return sid, cli

    def session(self, sid: str) -> AsaCli | None:
        session = self._sessions.get(sid)
        if session is None:
            return None
        session.last_used = time.monotonic()
        return session.cli

    def close_session(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def feed(self, sid: str, line: str) -> tuple[CliResult, bool]:
        """Feed one line to a session; (result, session closed)."""
        cli = self.session(sid)
        if cli is None:
            raise KeyError(sid)
        result = cli.feed(line)
        closed = False
        for effect in result.effects:
            if isinstance(effect, SaveStartupConfig):
                self.save(effect.text)
            elif isinstance(effect, RunningConfigChanged):
                log.info(
                    "%s: running configuration changed: %s",
                    self.hostname,
                    terminal_safe(line.strip()),
                )
            elif isinstance(effect, Reload):
                self._reload(sid, cli)
            elif isinstance(effect, Logout):
                closed = True
            elif isinstance(effect, ClearConnections) and self.on_reload is not None:
                self.on_reload()  # the same as a reload does to the connection table
            elif isinstance(effect, WriteFile):
                self.write_flash(effect.name, effect.data)
        if closed:
            self.close_session(sid)
        return result, closed

    @property
    def flash(self) -> Path:
        """``disk0:``: the folder ``copy /pcap capture:NAME disk0:/FILE`` writes into."""
        return self.home / "disk0"

    def write_flash(self, name: str, data: bytes) -> None:
        self.flash.mkdir(exist_ok=True)
        target = self.flash / name
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        log.info("%s: wrote %s (%d bytes)", self.hostname, target, len(data))

    def save(self, text: str) -> None:
        write_atomically(self.startup_path, text)
        self.startup = text
        for session in self._sessions.values():
            session.cli.startup = text
        log.info("%s: startup-config saved (%d bytes)", self.hostname, len(text.encode()))

    def _reload(self, sid: str, cli: AsaCli) -> None:
        # The CLI already read the startup-config back; the box follows it.  A
        # reload ends every other console session and every connection.
        self.running = cli.running
        self.acl_hits.clear()  # the counters start again with the box
        for other in [s for s in self._sessions if s != sid]:
            del self._sessions[other]
        log.info("%s: reloaded from startup-config", self.hostname)
        if self.on_reload is not None:
            self.on_reload()


# --- completion ---------------------------------------------------------------------------

_MODE_TREES: dict[Mode, Node] = {}


def _tree(mode: Mode) -> Node:
    if not _MODE_TREES:
        _MODE_TREES.update(
            {
                Mode.USER: trees.user_tree(),
                Mode.PRIVILEGED: trees.privileged_tree(),
                Mode.CONFIG: trees.config_tree(),
                Mode.INTERFACE: trees.interface_tree(),
                Mode.CLASS_MAP: trees.class_map_tree(),
                Mode.POLICY_MAP: trees.policy_map_tree(),
                Mode.POLICY_CLASS: trees.policy_class_tree(),
                Mode.ESMTP_MAP: trees.esmtp_map_tree(),
                Mode.ESMTP_PARAMETERS: trees.esmtp_parameters_tree(),
                Mode.ESMTP_MATCH: trees.esmtp_match_tree(),
            }
        )
    return _MODE_TREES[mode]


def complete(mode: Mode, text: str) -> list[str]:
    """The keywords that can come next after ``text`` in ``mode`` (for Tab and ``?``).

    Words already typed may be abbreviated, as the CLI accepts them; the last
    word, unless followed by a blank, is the prefix to complete.
    """
    words = text.split()
    partial = "" if not words or text[-1:].isspace() else words.pop()
    here = _tree(mode)
    for token in words:
        low = token.lower()
        exact = [k for k in here.words if k.lower() == low]
        found = exact or [k for k in here.words if k.lower().startswith(low)]
        if len(found) == 1:
            here = here.words[found[0]]
        elif here.arg is not None and not found:
            here = here.arg
            if here.rest:
                return []
        else:
            return []
        if here.stub:
            return []
    low = partial.lower()
    return sorted(k for k in here.words if k.lower().startswith(low))


# --- the process --------------------------------------------------------------------------


def console_handlers(device: AsaDevice, relay: Relay, name: str) -> dict[str, Any]:
    """The console socket's commands (what ``sitemail asa`` and the lab use)."""

    async def health(_: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": "ok",
            "name": name,
            "kind": "firewall",
            "hostname": device.running.hostname,
            "routes": len(relay.routes),
            "connections": relay.connections,
            "active": relay.active,
            "esmtp_inspection": device.esmtp_state(),
            "boot_problem": device.boot_problem,
            "first_boot": device.first_boot,
        }

    async def cli(request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op", "open")
        if op == "open":
            sid, opened = device.open_session(privileged=bool(request.get("privileged", True)))
            return {"session": sid, "prompt": opened.prompt}
        sid = str(request.get("session", ""))
        session = device.session(sid)
        if session is None:
            return {"error": f"no console session {sid!r} (it ended or the firewall restarted)"}
        if op == "feed":
            result, closed = device.feed(sid, str(request.get("line", "")))
            return {
                "output": result.output,
                "prompt": result.prompt,
                "echo": result.echo,
                "closed": closed,
                "secret": result.prompt.startswith("Password"),
            }
        if op == "complete":
            return {"words": complete(session.mode, str(request.get("text", "")))}
        if op == "close":
            device.close_session(sid)
            return {"closed": True}
        return {"error": f"unknown cli op {op!r}; expected open, feed, complete or close"}

    async def show(request: dict[str, Any]) -> dict[str, Any]:
        # A throwaway privileged session that only ever sees a ``show`` line.
        what = " ".join(str(request.get("what", "running-config")).split())
        session = device.console(privileged=True)
        return {"output": session.feed(f"show {what}").output}

    async def counters(_: dict[str, Any]) -> dict[str, Any]:
        return {
            "inspect": {k: asdict(v) for k, v in device.counters.items()},
            "connections": relay.connections,
            "active": relay.active,
        }

    return {"health": health, "cli": cli, "show": show, "counters": counters}


def _host_addresses(ctx: ProcessContext) -> Callable[[str], str | None]:
    def address_of(host: str) -> str | None:
        server = ctx.directory.get(Server, host)
        if server is not None and server.addresses:
            return server.addresses[0]
        internet = ctx.directory.get(InternetHost, host)
        return internet.address if internet is not None else None

    return address_of


async def serve_firewall(ctx: ProcessContext, firewall: Firewall) -> None:
    hostname = firewall.hostname or firewall.name
    device = AsaDevice(ctx.home, hostname, _interfaces(firewall))
    device.boot()
    syslog = SyslogFile(ctx.home / SYSLOG_FILE, ctx.clock, buffer=device.runtime.log)
    routes = load_routes(ctx.home, ctx.port_offset, _host_addresses(ctx))
    device.egress = egress_of(routes)
    relay = Relay(
        routes, device.inspector_for, syslog=syslog, admit=device.admit, runtime=device.runtime
    )
    # A reload empties the connection table, as on the box.
    device.on_reload = relay.abort_all
    await relay.start()
    ssh = None
    if firewall.address:
        try:
            ssh = SshListener(device, firewall.address, ctx.port(SSH_PORT), syslog)
            ssh.start()
        except OSError as exc:
            ssh = None
            # The box still relays mail without its management plane; the log says why.
            log.error("%s: no SSH on %s: %s", firewall.name, firewall.address, exc)
    console = await serve_console(
        ctx.home / "console.sock", console_handlers(device, relay, firewall.name)
    )
    log.info(
        "%s ready: %d relayed addresses, ESMTP inspection %s",
        firewall.name,
        len(relay.routes),
        device.esmtp_state(),
    )
    try:
        await event_loop.stop_signal().wait()
    finally:
        console.close()
        if ssh is not None:
            ssh.close()
        await relay.stop()
        syslog.close()
