"""Management access on the ASA console: ``username``, ``enable password`` and ``ssh`` lines.

The command trees of these configuration-mode lines, and what they do to the
model.  Passwords are hashed as soon as they are typed
(:mod:`.asa_passwords`); ``ssh A.B.C.D MASK IF`` lines say who may open an
SSH session, and :func:`ssh_permitted` answers for the SSH server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from sitemail.firewall.asa_cli_grammar import ARG, Matched, Node, node, stub, word
from sitemail.firewall.asa_model import AsaConfig, LocalUser, SshHost
from sitemail.firewall.asa_passwords import HASH_KEYWORD, hash_password, is_hashed

__all__ = ["configure", "negated_trees", "ssh_permitted", "trees"]

Invalid = Callable[[int], Exception]


def _privilege() -> Node:
    return node({"privilege": word()}, end=True)


def trees() -> dict[str, Node]:
    """``username``, ``enable password``, ``ssh`` of configuration mode."""
    password = word(node({HASH_KEYWORD: _privilege(), "privilege": word()}, end=True))
    ssh_words = ("stricthostkeycheck", "key-exchange", "version", "cipher", "scopy")
    return {
        "username": word(node({"password": password, "nopassword": stub(), "attributes": stub()})),
        "enable": node({"password": word(node({HASH_KEYWORD: node(end=True)}, end=True))}),
        "ssh": node({"timeout": word(), **{name: stub() for name in ssh_words}}, arg=word(word())),
    }


def negated_trees() -> dict[str, Node]:
    """Their ``no`` forms: ``no username NAME``, ``no enable password``, ``no ssh A M IF``."""
    return {
        "username": node(arg=node(end=True, words={"password": stub()})),
        "enable": node({"password": node(end=True, words={})}),
        "ssh": node({"timeout": node(end=True, arg=node(end=True))}, arg=word(word())),
    }


def _columns(found: Matched) -> list[int]:
    return [c for p, c in zip(found.path, found.columns, strict=True) if p == ARG]


def configure(config: AsaConfig, found: Matched, invalid: Invalid) -> str:
    """One of these lines (or its ``no``) applied to ``config``; what the console prints."""
    path, args = found.path, found.args
    negate = path[0] == "no"
    body = path[1:] if negate else path
    columns = _columns(found)
    if body[0] == "username":
        config.users = [u for u in config.users if u.name != args[0]]
        if negate:
            return ""
        secret = args[1]
        if HASH_KEYWORD in body and not is_hashed(secret):
            raise invalid(columns[1])
        privilege = 2
        if "privilege" in body:
            if not args[2].isdigit() or int(args[2]) > 15:
                raise invalid(columns[2])
            privilege = int(args[2])
        stored = secret if HASH_KEYWORD in body else hash_password(secret)
        config.users.append(LocalUser(args[0], stored, privilege))
        return ""
    if body[0] == "enable":
        if negate:
            config.enable_password = None
            return ""
        if HASH_KEYWORD in body and not is_hashed(args[0]):
            raise invalid(columns[0])
        config.enable_password = args[0] if HASH_KEYWORD in body else hash_password(args[0])
        return ""
    if body[1] == "timeout":  # ssh timeout N (1-60 minutes)
        if negate:
            config.ssh_timeout = 5
            return ""
        if not args[0].isdigit() or not 1 <= int(args[0]) <= 60:
            raise invalid(columns[0])
        config.ssh_timeout = int(args[0])
        return ""
    address, mask, interface = args
    for value, column in zip((address, mask), columns, strict=False):
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise invalid(column) from None
    try:
        ipaddress.IPv4Network(f"{address}/{mask}")
    except ValueError:
        raise invalid(columns[0]) from None
    if interface not in config.nameifs():
        raise invalid(columns[2])
    host = SshHost(address, mask, interface)
    config.ssh_hosts = [h for h in config.ssh_hosts if h != host]
    if not negate:
        config.ssh_hosts.append(host)
    return ""


def ssh_permitted(config: AsaConfig, client: str, interface: str) -> bool:
    """Does an ``ssh`` line let ``client`` in on ``interface``?  None at all: nobody."""
    address = ipaddress.IPv4Address(client)
    return any(
        h.interface == interface and address in ipaddress.IPv4Network(f"{h.address}/{h.mask}")
        for h in config.ssh_hosts
    )
