"""``show running-config`` text of an :class:`~sitemail.firewall.asa_model.AsaConfig`.

The layout follows real ASA 9.x configurations (spec §1.1, §3.2): ``!``
lines around the class-map and policy-map sections, one space of indent per
level, and the trailing blank after every ``inspect`` line (two after ``sip``
and ``skinny``).  Every function returns text whose lines all end in ``\\n``.
"""

from __future__ import annotations

import hashlib

from sitemail.firewall.asa_model import (
    DEFAULT_ESMTP_MAP,
    DOUBLE_BLANK_PROTOCOLS,
    AsaConfig,
    ClassMap,
    EsmtpInspectMap,
    Inspect,
    Interface,
    LocalUser,
    PolicyMap,
    RawInspectMap,
    default_esmtp_map,
)
from sitemail.firewall.asa_passwords import HASH_KEYWORD


def inspect_line(inspect: Inspect) -> str:
    text = f"  inspect {inspect.protocol}"
    if inspect.map_name:
        return f"{text} {inspect.map_name} \n"
    extra = " " if inspect.protocol in DOUBLE_BLANK_PROTOCOLS else ""
    return f"{text} {extra}\n"


def render_interface(interface: Interface) -> str:
    lines = [f"interface {interface.name}"]
    if interface.description is not None:
        lines.append(f" description {interface.description}")
    if interface.management_only:
        lines.append(" management-only")
    if interface.shutdown:
        lines.append(" shutdown")
    lines.append(f" nameif {interface.nameif}" if interface.nameif else " no nameif")
    if interface.security_level is None:
        lines.append(" no security-level")
    else:
        lines.append(f" security-level {interface.security_level}")
    if interface.ip_address:
        lines.append(f" ip address {interface.ip_address}")
    else:
        lines.append(" no ip address")
    lines += [f" {line}" for line in interface.extra]
    return "".join(f"{line}\n" for line in lines)


def render_interfaces(config: AsaConfig, name: str | None = None) -> str:
    return "".join(
        "!\n" + render_interface(i)
        for i in config.interfaces
        if name is None or i.name.lower() == name.lower()
    )


def render_class_map(class_map: ClassMap) -> str:
    lines = [f"class-map {class_map.name}"]
    if class_map.description is not None:
        lines.append(f" description {class_map.description}")
    lines += [f" match {match}" for match in class_map.matches]
    return "".join(f"{line}\n" for line in lines)


def render_class_maps(config: AsaConfig, name: str | None = None) -> str:
    """The class-map section, framed by ``!`` as ``show running-config class-map`` prints it."""
    maps = [m for m in config.class_maps if name is None or m.name == name]
    if not maps:
        return ""
    return "!\n" + "".join(render_class_map(m) for m in maps) + "!\n"


def render_esmtp_map(inspect_map: EsmtpInspectMap, *, show_all: bool = False) -> str:
    """One ESMTP map; ``show_all`` also prints parameters left at their default."""
    lines = [f"policy-map type inspect esmtp {inspect_map.name}"]
    if inspect_map.description is not None:
        lines.append(f" description {inspect_map.description}")
    params: list[str] = []
    if inspect_map.mask_banner:
        params.append("mask-banner")
    elif show_all:
        params.append("no mask-banner")
    if inspect_map.mail_relay is not None:
        domain, action = inspect_map.mail_relay
        params.append(f"mail-relay {domain} action {action}")
    elif show_all:
        params.append("no mail-relay")
    if inspect_map.special_character is not None:
        params.append(f"special-character action {inspect_map.special_character}")
    elif show_all:
        params.append("no special-character")
    if inspect_map.allow_tls:
        params.append("allow-tls action log" if inspect_map.allow_tls_log else "allow-tls")
    elif show_all:
        params.append("no allow-tls")
    if params:
        lines.append(" parameters")
        lines += [f"  {p}" for p in params]
    for match in inspect_map.matches:
        lines.append(f" {match.line}")
        lines += [f"  {action}" for action in match.actions]
    return "".join(f"{line}\n" for line in lines)


def render_raw_map(inspect_map: RawInspectMap) -> str:
    head = f"policy-map type inspect {inspect_map.kind} {inspect_map.name}\n"
    return head + "".join(f"{line}\n" for line in inspect_map.body)


def render_policy_map(policy_map: PolicyMap) -> str:
    lines = [f"policy-map {policy_map.name}\n"]
    if policy_map.description is not None:
        lines.append(f" description {policy_map.description}\n")
    for klass in policy_map.classes:
        lines.append(f" class {klass.name}\n")
        lines += [inspect_line(i) for i in klass.inspects]
        lines += [f"  {line}\n" for line in klass.extra]
    return "".join(lines)


def _shown_inspect_maps(config: AsaConfig, show_all: bool) -> list[EsmtpInspectMap | RawInspectMap]:
    maps = list(config.inspect_maps)
    builtin = default_esmtp_map()
    edited = next(
        (m for m in maps if isinstance(m, EsmtpInspectMap) and m.name == DEFAULT_ESMTP_MAP),
        None,
    )
    if show_all and edited is None:
        maps.insert(0, builtin)
    if not show_all and edited is not None and edited == builtin:
        # The hidden map shows up only once someone has changed it ([unv] §1.2).
        maps.remove(edited)
    return maps


def render_policy_maps(
    config: AsaConfig,
    *,
    show_all: bool = False,
    name: str | None = None,
    esmtp_only: bool = False,
) -> str:
    """The policy-map section, framed by ``!`` as ``show running-config policy-map`` prints it."""
    blocks: list[str] = []
    for inspect_map in _shown_inspect_maps(config, show_all):
        if name is not None and inspect_map.name != name:
            continue
        if isinstance(inspect_map, EsmtpInspectMap):
            blocks.append(render_esmtp_map(inspect_map, show_all=show_all))
        elif not esmtp_only:
            blocks.append(render_raw_map(inspect_map))
    if not esmtp_only:
        blocks += [
            render_policy_map(p) for p in config.policy_maps if name is None or p.name == name
        ]
    if not blocks:
        return ""
    return "!\n" + "".join(blocks) + "!\n"


def render_service_policies(config: AsaConfig) -> str:
    return "".join(
        f"service-policy {p.policy_map} "
        + ("global" if p.interface is None else f"interface {p.interface}")
        + "\n"
        for p in config.service_policies
    )


def render_access_lists(config: AsaConfig, name: str | None = None) -> str:
    """``access-list`` lines, list by list, as ``show running-config access-list`` prints them."""
    return "".join(
        f"{acl.line_text(entry)}\n"
        for acl in config.access_lists
        if name is None or acl.name == name
        for entry in acl.entries
    )


def render_access_groups(config: AsaConfig) -> str:
    return "".join(f"{group.text()}\n" for group in config.access_groups)


def _body_lines(config: AsaConfig) -> list[str]:
    """The verbatim body with the access rules where a 9.x configuration has them: the
    access-lists before ``pager lines``, the access-groups before the routes and timeouts."""
    body = [f"{line}\n" for line in config.body_lines]
    groups = render_access_groups(config)
    if groups:
        at = next(
            (i for i, line in enumerate(body) if line.startswith(("route ", "timeout "))),
            len(body),
        )
        body.insert(at, groups)
    lists = render_access_lists(config)
    if lists:
        at = next((i for i, line in enumerate(body) if line.startswith("pager ")), 0)
        body.insert(at, lists)
    # SSH access and its timeout just before the console's timeout, the local users last.
    at = next((i for i, line in enumerate(body) if line.startswith("console ")), len(body))
    body.insert(at, render_ssh(config))
    body += [f"{user_line(user)}\n" for user in config.users]
    return body


def render_ssh(config: AsaConfig) -> str:
    hosts = "".join(f"ssh {h.address} {h.mask} {h.interface}\n" for h in config.ssh_hosts)
    return f"{hosts}ssh timeout {config.ssh_timeout}\n"


def user_line(user: LocalUser) -> str:
    line = f"username {user.name} password {user.password_hash} {HASH_KEYWORD}"
    return line if user.privilege == 2 else f"{line} privilege {user.privilege}"


def call_home_line(config: AsaConfig) -> str:
    return {
        "unanswered": "",
        "disabled": "no call-home reporting anonymous\n",
        "enabled": "call-home reporting anonymous\n",
        "ask-later": "call-home reporting anonymous prompt 2\n",
    }[config.call_home]


def render_body(config: AsaConfig, *, show_all: bool = False) -> str:
    """Everything from ``ASA Version`` to the line before ``Cryptochecksum:``."""
    parts = [f"ASA Version {config.version}\n", "!\n", f"hostname {config.hostname}\n"]
    if config.enable_password is not None:
        parts.append(f"enable password {config.enable_password} {HASH_KEYWORD}\n")
    parts += [f"{line}\n" for line in config.head_lines]
    parts.append(render_interfaces(config))
    parts.append("!\n")
    parts += _body_lines(config)
    parts.append(render_class_maps(config))
    parts.append(render_policy_maps(config, show_all=show_all))
    parts.append(render_service_policies(config))
    parts += [f"{line}\n" for line in config.tail_lines]
    parts.append(call_home_line(config))
    return "".join(parts)


def cryptochecksum(config: AsaConfig) -> str:
    """32 hex digits over the configuration body, as ``Cryptochecksum:`` shows it."""
    return hashlib.md5(render_body(config).encode(), usedforsecurity=False).hexdigest()


def render_config(config: AsaConfig, *, show_all: bool = False) -> str:
    """The whole ``show running-config`` (and the startup-config file) text."""
    header = (
        f": Saved\n:\n: Serial Number: {config.serial_number}\n: Hardware:   {config.hardware}\n:\n"
    )
    body = render_body(config, show_all=show_all)
    return f"{header}{body}Cryptochecksum:{cryptochecksum(config)}\n: end\n"
