"""Read a saved ASA configuration (``startup-config``) back into an AsaConfig.

The reader is indentation-driven, as the ASA's own text is: a line at column 0
opens a block, the lines indented under it belong to that block.  Blocks the
model knows are parsed; every other block is kept verbatim in the part of the
configuration it came from, so ``render(parse(text))`` gives the same text for
anything :func:`sitemail.firewall.asa_render.render_config` wrote.

``access-list`` and ``access-group`` lines are read with the console's own
configuration-mode grammar (:mod:`sitemail.firewall.asa_cli_acl`), so a saved
line means what it meant when it was typed.
"""

from __future__ import annotations

from sitemail.firewall import asa_cli_trees
from sitemail.firewall.acl import AccessGroup
from sitemail.firewall.asa_cli_acl import AclWordError, add_entry, entry_from_path
from sitemail.firewall.asa_cli_grammar import Matched, Node, match_line
from sitemail.firewall.asa_model import (
    AsaConfig,
    ClassMap,
    EsmtpInspectMap,
    EsmtpMatch,
    Interface,
    LocalUser,
    PolicyClass,
    PolicyMap,
    RawInspectMap,
    ServicePolicy,
    SshHost,
    inspect_from_words,
)
from sitemail.firewall.asa_passwords import HASH_KEYWORD, is_hashed


class ConfigSyntaxError(ValueError):
    """A saved configuration line the reader cannot place."""


def _blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith(" ") and blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def parse_config(text: str) -> AsaConfig:
    """Build the model from configuration text (as ``show running-config`` prints it)."""
    config = AsaConfig(call_home="unanswered")
    region = "head"
    for block in _blocks(text):
        top = block[0]
        words = top.split()
        if top.startswith(":"):
            _header(config, top)
        elif top.startswith(("!", "Cryptochecksum:")):
            continue
        elif top.startswith("ASA Version "):
            config.version = top[len("ASA Version ") :].strip()
        elif words[0] == "hostname" and len(words) == 2:
            config.hostname = words[1]
        elif words[0] == "interface" and len(words) == 2:
            config.interfaces.append(_interface(words[1], block[1:]))
            region = "body"
        elif (words[0] in ("access-list", "access-group") and _access_rule(config, top)) or (
            words[0] in ("username", "enable", "ssh") and _management(config, words)
        ):
            continue
        elif words[0] == "class-map" and len(words) == 2:
            config.class_maps.append(_class_map(words[1], block[1:]))
        elif words[:3] == ["policy-map", "type", "inspect"] and len(words) == 5:
            if words[3] == "esmtp":
                config.inspect_maps.append(_esmtp_map(words[4], block[1:]))
            else:
                config.inspect_maps.append(RawInspectMap(words[3], words[4], block[1:]))
        elif words[0] == "policy-map" and len(words) == 2:
            config.policy_maps.append(_policy_map(words[1], block[1:]))
        elif words[0] == "service-policy" and len(words) in (3, 4):
            config.service_policies.append(_service_policy(top, words))
            region = "tail"
        elif top.strip() == "no call-home reporting anonymous":
            config.call_home = "disabled"
        elif top.strip() == "call-home reporting anonymous":
            config.call_home = "enabled"
        elif top.startswith("call-home reporting anonymous prompt"):
            config.call_home = "ask-later"
        else:
            target = {
                "head": config.head_lines,
                "body": config.body_lines,
                "tail": config.tail_lines,
            }[region]
            target += block
    return config


_CONFIG_TREE: list[Node] = []


def _access_rule(config: AsaConfig, line: str) -> bool:
    """Put an access-list or access-group line into the model; False: keep it verbatim
    (a kind the emulator does not model, such as ``extended permit udp``)."""
    if not _CONFIG_TREE:
        _CONFIG_TREE.append(asa_cli_trees.config_tree())
    found = match_line(_CONFIG_TREE[0], line)
    if not isinstance(found, Matched) or found.stub:
        return False
    if found.path[0] == "access-group":
        config.access_groups.append(AccessGroup(found.args[0], found.args[1]))
        return True
    try:
        parsed = entry_from_path(found, 0)
    except AclWordError as exc:
        raise ConfigSyntaxError(f"{line!r}: {exc.message or 'bad address or port'}") from None
    if parsed.entry is None:
        raise ConfigSyntaxError(f"{line!r}: an access-list line without an entry")
    add_entry(config, parsed)
    return True


def _management(config: AsaConfig, words: list[str]) -> bool:
    """``username``, ``enable password``, ``ssh`` lines into the model; False: keep verbatim."""
    hashed = len(words) > 3 and words[3] == HASH_KEYWORD and is_hashed(words[2])
    if words[:2] == ["enable", "password"] and len(words) == 4 and hashed:
        config.enable_password = words[2]
        return True
    if words[0] == "username" and len(words) >= 5 and words[2] == "password":
        if words[4] != HASH_KEYWORD or not is_hashed(words[3]):
            return False
        privilege = 2
        if words[5:6] == ["privilege"] and len(words) == 7 and words[6].isdigit():
            privilege = int(words[6])
        config.users.append(LocalUser(words[1], words[3], privilege))
        return True
    if words[:2] == ["ssh", "timeout"] and len(words) == 3 and words[2].isdigit():
        config.ssh_timeout = int(words[2])
        return True
    if words[0] == "ssh" and len(words) == 4 and words[1][:1].isdigit():
        config.ssh_hosts.append(SshHost(words[1], words[2], words[3]))
        return True
    return False


def _header(config: AsaConfig, line: str) -> None:
    if line.startswith(": Serial Number:"):
        config.serial_number = line.split(":", 2)[2].strip()
    elif line.startswith(": Hardware:"):
        config.hardware = line.split(":", 2)[2].strip()


def _interface(name: str, lines: list[str]) -> Interface:
    interface = Interface(name)
    for line in lines:
        text = line.strip()
        words = text.split()
        if words[0] == "nameif" and len(words) == 2:
            interface.nameif = words[1]
        elif words[0] == "security-level" and len(words) == 2 and words[1].isdigit():
            interface.security_level = int(words[1])
        elif words[:2] == ["ip", "address"] and len(words) > 2:
            interface.ip_address = " ".join(words[2:])
        elif text == "shutdown":
            interface.shutdown = True
        elif text == "management-only":
            interface.management_only = True
        elif words[0] == "description":
            interface.description = text[len("description ") :]
        elif text in ("no nameif", "no security-level", "no ip address"):
            continue
        else:
            interface.extra.append(text)
    return interface


def _class_map(name: str, lines: list[str]) -> ClassMap:
    class_map = ClassMap(name)
    for line in lines:
        text = line.strip()
        if text.startswith("match "):
            class_map.matches.append(text[len("match ") :])
        elif text.startswith("description "):
            class_map.description = text[len("description ") :]
        else:
            raise ConfigSyntaxError(f"class-map {name}: unexpected line {text!r}")
    return class_map


def _esmtp_map(name: str, lines: list[str]) -> EsmtpInspectMap:
    inspect_map = EsmtpInspectMap(name)
    match: EsmtpMatch | None = None
    for line in lines:
        text = " ".join(line.split())
        words = text.split()
        if _indent(line) == 1:
            match = None
            if words[0] == "description":
                inspect_map.description = line.strip()[len("description ") :]
            elif words[0] == "match":
                negate = len(words) > 1 and words[1] == "not"
                match = EsmtpMatch(" ".join(words[2 if negate else 1 :]), negate)
                inspect_map.matches.append(match)
            elif text != "parameters":
                raise ConfigSyntaxError(f"policy-map {name}: unexpected line {text!r}")
        elif match is not None:
            match.actions.append(text)
        else:
            _parameter(inspect_map, words)
    return inspect_map


def _parameter(inspect_map: EsmtpInspectMap, words: list[str]) -> None:
    text = " ".join(words)
    if text == "mask-banner":
        inspect_map.mask_banner = True
    elif words[0] == "mail-relay" and len(words) == 4 and words[2] == "action":
        inspect_map.mail_relay = (words[1], words[3])
    elif words[:2] == ["special-character", "action"] and len(words) == 3:
        inspect_map.special_character = words[2]
    elif text in ("allow-tls", "allow-tls action log"):
        inspect_map.allow_tls = True
        inspect_map.allow_tls_log = text.endswith("log")
    elif text in ("no mask-banner", "no mail-relay", "no special-character", "no allow-tls"):
        return
    else:
        raise ConfigSyntaxError(f"policy-map {inspect_map.name}: unknown parameter {text!r}")


def _policy_map(name: str, lines: list[str]) -> PolicyMap:
    policy_map = PolicyMap(name)
    klass: PolicyClass | None = None
    for line in lines:
        text = line.strip()
        words = text.split()
        if _indent(line) == 1 and words[0] == "class" and len(words) == 2:
            klass = PolicyClass(words[1])
            policy_map.classes.append(klass)
        elif _indent(line) == 1 and words[0] == "description":
            policy_map.description = text[len("description ") :]
        elif klass is None:
            raise ConfigSyntaxError(f"policy-map {name}: {text!r} outside a class")
        elif words[0] == "inspect" and len(words) > 1:
            klass.inspects.append(inspect_from_words(words[1:]))
        else:
            klass.extra.append(text)
    return policy_map


def _service_policy(line: str, words: list[str]) -> ServicePolicy:
    if len(words) == 3 and words[2] == "global":
        return ServicePolicy(words[1])
    if len(words) == 4 and words[2] == "interface":
        return ServicePolicy(words[1], words[3])
    raise ConfigSyntaxError(f"unexpected service-policy line {line!r}")
