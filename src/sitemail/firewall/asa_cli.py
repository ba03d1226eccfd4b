"""The ASA console, sans-I/O: one typed line in, the ASA's answer and the next prompt out.

:class:`AsaCli` holds the running configuration and the saved startup
configuration text of one firewall and answers each line as an ASA 9.x does
(spec §3): the modes and their prompts, unambiguous abbreviations, the ``^``
error marker, the call-home question of a fresh box, ``write memory`` and
``reload``.  It never touches a file or a socket: saving, reloading and
re-reading the policy are returned as *effects* for the caller (the firewall
process, ``sitemail asa NAME -c ...``) to carry out.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sitemail.firewall import asa_cli_acl as acl_cli
from sitemail.firewall import asa_cli_esmtp as esmtp_cli
from sitemail.firewall import asa_cli_mgmt as mgmt
from sitemail.firewall import asa_cli_ops as ops
from sitemail.firewall import asa_cli_text as say
from sitemail.firewall import asa_cli_trees as trees
from sitemail.firewall.asa_cli_grammar import ARG, Matched, Node, Problem, match_line
from sitemail.firewall.asa_cli_input import bad_argument, bad_character, terminal_safe
from sitemail.firewall.asa_cli_show import BadTracerWord, ShowContext, packet_tracer, show
from sitemail.firewall.asa_config import (
    DEFAULT_ESMTP_MAP,
    AsaConfig,
    ClassMap,
    EsmtpInspectMap,
    EsmtpMatch,
    Interface,
    PolicyClass,
    PolicyMap,
    ServicePolicy,
    cryptochecksum,
    default_esmtp_map,
    factory_config,
    parse_config,
    render_config,
)
from sitemail.firewall.asa_model import inspect_from_words
from sitemail.firewall.asa_passwords import verify_password
from sitemail.firewall.asa_render import render_body
from sitemail.firewall.asa_runtime import AsaRuntime
from sitemail.firewall.counters import AclHits, InspectCounters
from sitemail.firewall.packet_tracer import Egress

__all__ = [
    "AsaCli",
    "CliResult",
    "CliSettings",
    "Effect",
    "Logout",
    "Mode",
    "Reload",
    "RunningConfigChanged",
    "SaveStartupConfig",
    "transcript",
]


class Mode(enum.Enum):
    """Where the console is; the ESMTP map modes share their prompts with policy-maps."""

    USER = "user"
    PRIVILEGED = "privileged"
    CONFIG = "config"
    INTERFACE = "interface"
    CLASS_MAP = "class-map"
    POLICY_MAP = "policy-map"
    POLICY_CLASS = "policy-map class"
    ESMTP_MAP = "esmtp map"
    ESMTP_PARAMETERS = "esmtp parameters"
    ESMTP_MATCH = "esmtp match"

    @property
    def suffix(self) -> str:
        """What follows the hostname in the prompt (spec §3.1, §3.3)."""
        return _SUFFIX[self]


_SUFFIX = {
    Mode.USER: ">",
    Mode.PRIVILEGED: "#",
    Mode.CONFIG: "(config)#",
    Mode.INTERFACE: "(config-if)#",
    Mode.CLASS_MAP: "(config-cmap)#",
    Mode.POLICY_MAP: "(config-pmap)#",
    Mode.POLICY_CLASS: "(config-pmap-c)#",
    Mode.ESMTP_MAP: "(config-pmap)#",
    Mode.ESMTP_PARAMETERS: "(config-pmap-p)#",
    Mode.ESMTP_MATCH: "(config-pmap-c)#",
}


# Where a line goes when it does not fit the current mode, as on the ASA: a
# parent-mode command typed in a sub-mode leaves the sub-mode.
_PARENT: dict[Mode, Mode] = {
    Mode.INTERFACE: Mode.CONFIG,
    Mode.CLASS_MAP: Mode.CONFIG,
    Mode.POLICY_MAP: Mode.CONFIG,
    Mode.POLICY_CLASS: Mode.POLICY_MAP,
    Mode.ESMTP_MAP: Mode.CONFIG,
    Mode.ESMTP_PARAMETERS: Mode.ESMTP_MAP,
    Mode.ESMTP_MATCH: Mode.ESMTP_MAP,
}

_TREES: dict[Mode, Node] = {
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


# --- effects the caller carries out ---------------------------------------------------------


@dataclass(frozen=True)
class SaveStartupConfig:
    """Write ``text`` as this firewall's startup-config."""

    text: str


@dataclass(frozen=True)
class RunningConfigChanged:
    """The running configuration changed: new connections get a new policy."""


@dataclass(frozen=True)
class Reload:
    """The firewall restarts from its startup-config (the CLI already did, for itself)."""


@dataclass(frozen=True)
class Logout:
    """The session ended (``exit`` at the top)."""


Effect = SaveStartupConfig | RunningConfigChanged | Reload | Logout | ops.Effect


@dataclass(frozen=True)
class CliResult:
    """The answer to one line: what to print after it, the next prompt, what to do."""

    output: str  # every line ends in "\n"; "" when the ASA prints nothing
    prompt: str  # printed next, ready for the next line ("ciscoasa(config)# ")
    echo: str  # how the typed line shows on the terminal ("********" for a password)
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class CliSettings:
    """Lab knobs of the console."""

    enable_password: str = ""  # a factory ASA has none: Enter at "Password:" is enough
    password_attempts: int = 3
    write_elapsed: str = "1.20"  # "N bytes copied in 1.20 secs" (no clock here)
    write_shows_rate: bool = True  # "(N bytes/sec)" after it, as in spec §3.1
    long_service_policy_format: bool = True  # 5-min-pkt-rate etc., as in spec §3.2


@dataclass
class _Dialog:
    prompt: str
    answer: Callable[[str], str]
    secret: bool = False


class _Refused(Exception):
    """A line the ASA refuses; ``output`` is what it prints."""

    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = output


class AsaCli:
    """One console session on one emulated ASA.

    ``running`` defaults to the factory configuration; ``startup`` is the saved
    startup-config text (default: the running configuration, as after a boot;
    ``""``: none saved).  ``counters`` maps an inspection (``"esmtp"``) to the
    figures ``show service-policy`` prints; the relay keeps them up to date,
    as it does ``acl_hits`` (``show access-list``).  ``egress`` are the routes
    ``packet-tracer`` may use besides the interfaces' own networks.
    ``privileged=True`` starts at ``ciscoasa#``, as the seed's steps do.
    """

    def __init__(
        self,
        running: AsaConfig | None = None,
        *,
        startup: str | None = None,
        settings: CliSettings | None = None,
        counters: Mapping[str, InspectCounters] | None = None,
        acl_hits: AclHits | None = None,
        egress: Sequence[Egress] = (),
        privileged: bool = False,
        runtime: AsaRuntime | None = None,
    ) -> None:
        self.running = running if running is not None else factory_config()
        self.startup = render_config(self.running) if startup is None else startup
        self.settings = settings or CliSettings()
        self.counters: Mapping[str, InspectCounters] = counters if counters is not None else {}
        self.acl_hits = acl_hits if acl_hits is not None else AclHits()
        self.egress = tuple(egress)
        self.runtime = runtime if runtime is not None else AsaRuntime()
        self._flows = 0  # packet-tracer's flow ids
        self.mode = Mode.PRIVILEGED if privileged else Mode.USER
        self._dialog: _Dialog | None = None
        self._effects: list[Effect] = []
        self._failures = 0
        self._interface: Interface | None = None
        self._class_map: ClassMap | None = None
        self._policy_map: PolicyMap | None = None
        self._policy_class: PolicyClass | None = None
        self._esmtp_map: EsmtpInspectMap | None = None
        self._esmtp_match: EsmtpMatch | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def prompt(self) -> str:
        if self._dialog is not None:
            return self._dialog.prompt
        return terminal_safe(f"{self.running.hostname}{self.mode.suffix} ")

    @property
    def unsaved_changes(self) -> bool:
        """Does the running configuration differ from the startup-config?"""
        if not self.startup:
            return True
        return render_body(parse_config(self.startup)) != render_body(self.running)

    def feed(self, line: str) -> CliResult:
        """Answer one typed line (without its line end)."""
        line = line.rstrip("\r\n").expandtabs(1)
        self._effects = []
        before = render_body(self.running)
        echo = terminal_safe(line)
        if self._dialog is not None:
            dialog, self._dialog = self._dialog, None
            echo = "*" * len(line) if dialog.secret else echo
            output = dialog.answer(line)
        else:
            output = self._run(line)
        if render_body(self.running) != before:
            self.running.generation += 1
            self._effects.insert(0, RunningConfigChanged())
        output = terminal_safe(output, lines=True)
        return CliResult(output, self.prompt, echo, tuple(self._effects))

    def feed_lines(self, lines: Iterable[str]) -> list[CliResult]:
        return [self.feed(line) for line in lines]

    # -- dispatch ----------------------------------------------------------------------------

    def _run(self, line: str) -> str:
        stripped = line.strip()
        if not stripped or stripped.startswith(("!", ":")):
            return ""
        prompt = self.prompt
        column = bad_character(line)
        if column is not None:
            return self._invalid_at(column, prompt).output
        first = match_line(_TREES[self.mode], line)
        result, mode = first, self.mode
        while isinstance(result, Problem) and mode in _PARENT:
            mode = _PARENT[mode]
            result = match_line(_TREES[mode], line)
        if isinstance(result, Problem):
            return self._problem(first if isinstance(first, Problem) else result, line, prompt)
        if result.stub:
            return say.not_emulated(" ".join(line.split()))
        column = bad_argument(result)
        if column is not None:
            return self._invalid_at(column, prompt).output
        if mode is not self.mode:
            self._leave_to(mode)
        try:
            return self._command(result, line, prompt)
        except _Refused as refused:
            return refused.output

    def _problem(self, problem: Problem, line: str, prompt: str) -> str:
        if problem.kind == "incomplete":
            return say.INCOMPLETE
        if problem.kind == "ambiguous":
            return say.ambiguous(line)
        return " " * (len(prompt) + problem.column) + "^\n" + say.INVALID_INPUT

    def _invalid_at(self, column: int, prompt: str) -> _Refused:
        return _Refused(" " * (len(prompt) + column) + "^\n" + say.INVALID_INPUT)

    def _leave_to(self, mode: Mode) -> None:
        self.mode = mode
        if mode in (Mode.USER, Mode.PRIVILEGED, Mode.CONFIG):
            self._interface = self._class_map = self._policy_map = None
            self._esmtp_map = None
        if mode not in (Mode.POLICY_CLASS,):
            self._policy_class = None
        if mode is not Mode.ESMTP_MATCH:
            self._esmtp_match = None

    def _command(self, found: Matched, line: str, prompt: str) -> str:
        path = found.path
        head = path[0]
        if head == "show":
            return self._show(found)
        if head == "write":
            return render_config(self.running) if path[1:] == ("terminal",) else self._write()
        if head == "reload":
            return self._reload()
        if head == "terminal":
            return ""
        if head == "end":
            self._leave_to(Mode.PRIVILEGED)
            return ""
        if head in ("exit", "quit", "logout"):
            return self._exit()
        handler = {
            Mode.USER: self._user,
            Mode.PRIVILEGED: self._privileged,
            Mode.CONFIG: self._config,
            Mode.INTERFACE: self._interface_command,
            Mode.CLASS_MAP: self._class_map_command,
            Mode.POLICY_MAP: self._policy_map_command,
            Mode.POLICY_CLASS: self._policy_class_command,
            Mode.ESMTP_MAP: self._esmtp_map_command,
            Mode.ESMTP_PARAMETERS: self._esmtp_parameters,
            Mode.ESMTP_MATCH: self._esmtp_match_command,
        }[self.mode]
        return handler(found, line, prompt)

    # -- exec modes --------------------------------------------------------------------------

    def _exit(self) -> str:
        if self.mode in (Mode.USER, Mode.PRIVILEGED):
            self._leave_to(Mode.USER)
            self._effects.append(Logout())
            return say.LOGOFF
        self._leave_to(_PARENT.get(self.mode, Mode.PRIVILEGED))
        return ""

    def _user(self, found: Matched, line: str, prompt: str) -> str:
        # "enable" is the only command of user mode that reaches here.
        self._dialog = _Dialog(say.PASSWORD_PROMPT, self._password, secret=True)
        return ""

    def _password(self, answer: str) -> str:
        stored = self.running.enable_password
        if (stored is not None and verify_password(answer, stored)) or (
            stored is None and answer == self.settings.enable_password
        ):
            self._failures = 0
            self._leave_to(Mode.PRIVILEGED)
            return ""
        self._failures += 1
        if self._failures < self.settings.password_attempts:
            self._dialog = _Dialog(say.PASSWORD_PROMPT, self._password, secret=True)
        else:
            self._failures = 0  # [unv] back to the user prompt after the last try
        return say.INVALID_PASSWORD

    def _privileged(self, found: Matched, line: str, prompt: str) -> str:
        path = found.path
        if path == ("disable",):
            self._leave_to(Mode.USER)
            return ""
        if path == ("enable",):
            return ""
        if path[:2] == ("clear", "access-list"):  # clear access-list [NAME] counters
            self.acl_hits.clear(found.args[0] if found.args else None)
            return ""
        if path[0] in ("capture", "copy", "no", "clear"):
            return self._ops(found, prompt)
        if path[0] == "packet-tracer":
            self._flows += 1
            try:
                return packet_tracer(
                    found, self.running, egress=self.egress, hits=self.acl_hits, flow_id=self._flows
                )
            except BadTracerWord as bad:
                raise self._invalid_at(found.columns[bad.index], prompt) from None
        # configure terminal
        self._leave_to(Mode.CONFIG)
        if self.running.call_home == "unanswered":
            self._dialog = _Dialog(say.CALL_HOME_QUESTION, self._call_home)
            return f"{self.running.hostname}{Mode.CONFIG.suffix} \n{say.CALL_HOME_NOTICE}"
        return ""

    def _call_home(self, answer: str) -> str:
        choice = answer.strip().lower()[:1]
        if choice == "y":
            self.running.call_home = "enabled"
            return say.CALL_HOME_YES
        if choice == "n":
            self.running.call_home = "disabled"
            return say.CALL_HOME_NO
        if choice == "a":
            self.running.call_home = "ask-later"
            return say.CALL_HOME_LATER
        self._dialog = _Dialog(say.CALL_HOME_QUESTION, self._call_home)
        return ""

    # -- show, write, reload -----------------------------------------------------------------

    def _ops(self, found: Matched, prompt: str) -> str:  # captures, connections, logging
        try:
            output, effects = ops.run(found, self.runtime, self.counters)
        except ops.BadOpsWord as bad:
            raise self._invalid_at(found.columns[bad.index], prompt) from None
        self._effects += effects
        return output

    def _show(self, found: Matched) -> str:
        if ops.shows(found):
            return ops.show(found, self.runtime)
        ctx = ShowContext(
            self.startup, self.counters, self.acl_hits, self.settings.long_service_policy_format
        )
        return show(found, self.running, ctx)

    def _save(self) -> tuple[str, int]:
        text = render_config(self.running)
        self.startup = text
        self._effects.append(SaveStartupConfig(text))
        digest = cryptochecksum(self.running)
        groups = " ".join(digest[i : i + 8] for i in range(0, 32, 8))
        return f"Cryptochecksum: {groups} \n\n", len(text.encode())

    def _write(self) -> str:
        checksum, size = self._save()
        elapsed = self.settings.write_elapsed
        rate = ""
        if self.settings.write_shows_rate:
            # The ASA divides by whole seconds: "6854 bytes copied in 1.20 secs (6854 bytes/sec)".
            rate = f" ({size // max(1, int(float(elapsed)))} bytes/sec)"
        copied = f"{size} bytes copied in {elapsed} secs{rate}\n"
        return f"Building configuration...\n{checksum}{copied}[OK]\n"

    def _reload(self) -> str:
        if self.unsaved_changes:
            self._dialog = _Dialog(say.RELOAD_SAVE_QUESTION, self._reload_save)
        else:
            self._dialog = _Dialog(say.RELOAD_CONFIRM, self._reload_confirm)
        return ""

    def _reload_save(self, answer: str) -> str:
        choice = answer.strip().lower()[:1]
        output = ""
        if choice == "y":
            checksum, size = self._save()
            output = f"{checksum}{size} bytes copied in {self.settings.write_elapsed} secs\n"
        elif choice != "n":
            self._dialog = _Dialog(say.RELOAD_SAVE_QUESTION, self._reload_save)
            return ""
        self._dialog = _Dialog(say.RELOAD_CONFIRM, self._reload_confirm)
        return output

    def _reload_confirm(self, answer: str) -> str:
        if answer.strip().lower() not in ("", "y", "yes"):
            return ""
        self.running = parse_config(self.startup) if self.startup else factory_config()
        self._leave_to(Mode.USER)
        self._effects.append(Reload())
        return say.RELOAD_OUTPUT

    # -- global configuration ----------------------------------------------------------------

    def _config(self, found: Matched, line: str, prompt: str) -> str:
        path, args, config = found.path, found.args, self.running
        negate = path[0] == "no"
        body = path[1:] if negate else path
        if body == ("policy-map", ARG):
            return self._ordinary_policy_map(args[0], negate)
        if body[:4] == ("policy-map", "type", "inspect", "esmtp"):
            return self._esmtp_policy_map(args[0], negate)
        if body == ("class-map", ARG):
            if negate:
                return self._remove_class_map(args[0])
            class_map = config.class_map(args[0])
            if class_map is None:
                class_map = ClassMap(args[0])
                config.class_maps.append(class_map)
            self._leave_to(Mode.CLASS_MAP)
            self._class_map = class_map
            return ""
        if body[0] == "service-policy":
            return self._service_policy(found, negate, prompt)
        if body[0] in ("username", "enable", "ssh"):
            return mgmt.configure(config, found, lambda c: self._invalid_at(c, prompt))
        if body[0] in ("access-list", "access-group"):
            try:
                return acl_cli.configure(config, found, self.acl_hits)
            except acl_cli.AclWordError as bad:
                if bad.message:
                    return bad.message
                raise self._invalid_at(found.columns[bad.index], prompt) from None
        if body == ("hostname", ARG):
            config.hostname = args[0]
            return ""
        # interface NAME
        interface = config.interface(args[0])
        if interface is None:
            raise self._invalid_at(found.columns[1], prompt)
        self._leave_to(Mode.INTERFACE)
        self._interface = interface
        return ""

    def _ordinary_policy_map(self, name: str, negate: bool) -> str:
        config = self.running
        policy_map = config.policy_map(name)
        if negate:
            if policy_map is None:
                return say.missing("policy-map", name)
            if any(p.policy_map == name for p in config.service_policies):
                return say.in_use("policy-map", name)
            config.policy_maps.remove(policy_map)
            return ""
        if policy_map is None:
            policy_map = PolicyMap(name)
            config.policy_maps.append(policy_map)
        self._leave_to(Mode.POLICY_MAP)
        self._policy_map = policy_map
        return ""

    def _esmtp_policy_map(self, name: str, negate: bool) -> str:
        config = self.running
        existing = next(
            (m for m in config.inspect_maps if isinstance(m, EsmtpInspectMap) and m.name == name),
            None,
        )
        if negate:
            used = any(
                i.kind == "esmtp" and i.map_name == name
                for p in config.policy_maps
                for c in p.classes
                for i in c.inspects
            )
            if used:
                return say.in_use("policy-map", name)
            if existing is not None:
                config.inspect_maps.remove(existing)
            return ""
        if existing is None:
            # Editing the hidden default map starts from its built-in rules.
            existing = default_esmtp_map() if name == DEFAULT_ESMTP_MAP else EsmtpInspectMap(name)
            config.inspect_maps.append(existing)
        self._leave_to(Mode.ESMTP_MAP)
        self._esmtp_map = existing
        return ""

    def _remove_class_map(self, name: str) -> str:
        config = self.running
        class_map = config.class_map(name)
        if class_map is None:
            return say.missing("class-map", name)
        if any(c.name == name for p in config.policy_maps for c in p.classes):
            return say.in_use("class-map", name)
        config.class_maps.remove(class_map)
        return ""

    def _service_policy(self, found: Matched, negate: bool, prompt: str) -> str:
        config = self.running
        name = found.args[0]
        interface = found.args[1] if len(found.args) > 1 else None
        current = config.service_policy(interface)
        if negate:
            if current is not None and current.policy_map == name:
                config.service_policies.remove(current)
            return ""
        if config.policy_map(name) is None:
            return say.missing("policy-map", name)
        if interface is not None and not any(i.nameif == interface for i in config.interfaces):
            raise self._invalid_at(found.columns[-1], prompt)
        if current is not None:
            config.service_policies.remove(current)
        config.service_policies.append(ServicePolicy(name, interface))
        return ""

    # -- interface ---------------------------------------------------------------------------

    def _interface_command(self, found: Matched, line: str, prompt: str) -> str:
        interface = self._interface
        assert interface is not None
        path, args = found.path, found.args
        if path[0] == "no":
            what = path[1]
            if what == "nameif":
                interface.nameif = None
            elif what == "security-level":
                interface.security_level = None
            elif what == "ip":
                interface.ip_address = None
            elif what == "shutdown":
                interface.shutdown = False
            elif what == "description":
                interface.description = None
            else:
                interface.management_only = False
            return ""
        what = path[0]
        if what == "nameif":
            interface.nameif = args[0]
        elif what == "security-level":
            if not args[0].isdigit() or int(args[0]) > 100:
                raise self._invalid_at(found.columns[1], prompt)
            interface.security_level = int(args[0])
        elif what == "ip":
            interface.ip_address = " ".join(_fill(path[2:], args))
        elif what == "shutdown":
            interface.shutdown = True
        elif what == "description":
            interface.description = args[0]
        else:
            interface.management_only = True
        return ""

    # -- class-map ---------------------------------------------------------------------------

    def _class_map_command(self, found: Matched, line: str, prompt: str) -> str:
        class_map = self._class_map
        assert class_map is not None
        path, args = found.path, found.args
        negate = path[0] == "no"
        body = path[1:] if negate else path
        if body[0] == "description":
            class_map.description = None if negate else args[0]
            return ""
        words = _fill(body[1:], args)
        if "eq" in words and not (words[-1].isdigit() or words[-1] == "smtp"):
            raise self._invalid_at(found.columns[-1], prompt)
        text = " ".join(words)
        if negate:
            if text in class_map.matches:
                class_map.matches.remove(text)
            return ""
        class_map.matches = [text]
        return ""

    # -- ordinary policy-map -----------------------------------------------------------------

    def _policy_map_command(self, found: Matched, line: str, prompt: str) -> str:
        policy_map = self._policy_map
        assert policy_map is not None
        path, args = found.path, found.args
        negate = path[0] == "no"
        body = path[1:] if negate else path
        if body[0] == "description":
            policy_map.description = None if negate else args[0]
            return ""
        name = args[0]
        klass = policy_map.find(name)
        if negate:
            if klass is not None:
                policy_map.classes.remove(klass)
            return ""
        if klass is None:
            if name != "class-default" and self.running.class_map(name) is None:
                return say.missing("class-map", name)
            klass = PolicyClass(name)
            policy_map.classes.append(klass)
        self._leave_to(Mode.POLICY_CLASS)
        self._policy_class = klass
        return ""

    def _policy_class_command(self, found: Matched, line: str, prompt: str) -> str:
        klass = self._policy_class
        assert klass is not None
        negate = found.path[0] == "no"
        body = found.path[1:] if negate else found.path
        inspect = inspect_from_words(_fill(body[1:], found.args))
        current = klass.find(inspect.protocol)
        if negate:
            if current is not None:
                klass.inspects.remove(current)
            return ""
        named = inspect.map_name
        if named is not None and inspect.kind == "esmtp" and self.running.esmtp_map(named) is None:
            return say.missing("policy-map", named)
        if current is not None:
            if current.map_name == inspect.map_name and current.protocol == inspect.protocol:
                return ""
            return say.INSPECT_EXISTS
        klass.inspects.append(inspect)
        return ""

    # -- ESMTP inspect map -------------------------------------------------------------------

    def _esmtp_map_command(self, found: Matched, line: str, prompt: str) -> str:
        inspect_map = self._esmtp_map
        assert inspect_map is not None
        path, args = found.path, found.args
        negate = path[0] == "no"
        body = path[1:] if negate else path
        if body[0] == "description":
            inspect_map.description = None if negate else args[0]
            return ""
        if body[0] == "parameters":
            self._leave_to(Mode.ESMTP_PARAMETERS)
            self._esmtp_map = inspect_map
            return ""
        # match [not] CRITERION
        not_ = len(body) > 1 and body[1] == "not"
        criterion = self._criterion(found, body[2:] if not_ else body[1:], prompt)
        match = inspect_map.find(criterion, not_)
        if negate:
            if match is not None:
                inspect_map.matches.remove(match)
            return ""
        if match is None:
            match = EsmtpMatch(criterion, not_)
            inspect_map.matches.append(match)
        self._leave_to(Mode.ESMTP_MATCH)
        self._esmtp_map = inspect_map
        self._esmtp_match = match
        return ""

    def _criterion(self, found: Matched, words: tuple[str, ...], prompt: str) -> str:
        return esmtp_cli.criterion(found, words, lambda c: self._invalid_at(c, prompt))

    def _esmtp_parameters(self, found: Matched, line: str, prompt: str) -> str:
        assert self._esmtp_map is not None
        return esmtp_cli.parameter(self._esmtp_map, found)

    def _esmtp_match_command(self, found: Matched, line: str, prompt: str) -> str:
        assert self._esmtp_match is not None
        return esmtp_cli.action(self._esmtp_match, found, lambda c: self._invalid_at(c, prompt))


def _fill(words: tuple[str, ...], args: tuple[str, ...]) -> list[str]:
    """The canonical words of a matched path, free words put back in their places."""
    values = list(args)
    return [values.pop(0) if w == ARG else w for w in words]


def transcript(cli: AsaCli, lines: Iterable[str]) -> str:
    """The console as a person would see it: prompt, typed line, answer, ... next prompt."""
    out: list[str] = []
    for line in lines:
        prompt = cli.prompt
        result = cli.feed(line)
        out.append(f"{prompt}{result.echo}\n{result.output}")
    out.append(cli.prompt)
    return "".join(out)
