"""What can be typed in each mode of the emulated ASA CLI.

Keyword spellings are the display spellings (``RCPT``, ``MIME``), so a
matched path renders straight into the running configuration.  Real commands
the emulator does not carry out are "stubs": they are recognised (so
abbreviations collide as on the ASA) and answered with a clear message.
"""

from __future__ import annotations

from sitemail.firewall import asa_cli_mgmt as mgmt
from sitemail.firewall import asa_cli_trees_ops as ops
from sitemail.firewall.asa_cli_grammar import (
    Node,
    leaf,
    node,
    optional_word,
    stub,
    stubs,
    text,
    word,
)

# --- pieces -------------------------------------------------------------------------------

INSPECT_PROTOCOLS = (
    "ctiqbe",
    "dcerpc",
    "dns",
    "esmtp",
    "gtp",
    "http",
    "ils",
    "im",
    "ip-options",
    "ipsec-pass-thru",
    "ipv6",
    "mgcp",
    "netbios",
    "pptp",
    "rsh",
    "rtsp",
    "sip",
    "skinny",
    "smtp",
    "snmp",
    "sqlnet",
    "sunrpc",
    "tftp",
    "waas",
    "xdmcp",
)

EHLO_PARAMETERS = frozenset(
    {"8bitmime", "auth", "binarymime", "checkpnt", "dsn", "ecode", "etrn", "others"}
    | {"pipelining", "size", "vrfy"}
)


def _inspect_tree() -> Node:
    protocols: dict[str, Node] = {p: optional_word() for p in INSPECT_PROTOCOLS}
    protocols["h323"] = node({"h225": optional_word(), "ras": optional_word()})
    protocols["icmp"] = node({"error": leaf()}, end=True)
    protocols["ftp"] = node({"strict": optional_word()}, arg=leaf(), end=True)
    return node(protocols)


def _gt() -> Node:
    return node({"gt": word()})


def _regex() -> Node:
    return node({"class": word()}, arg=leaf())


def esmtp_criteria() -> Node:
    """``match [not] ...`` of an ESMTP inspect map (spec §1.11)."""
    return node(
        {
            "body": node({"length": _gt(), "line": node({"length": _gt()})}),
            "cmd": node(
                {
                    "line": node({"length": _gt()}),
                    "RCPT": node({"count": _gt()}),
                    "verb": text(),
                }
            ),
            "ehlo-reply-parameter": text(),
            "header": node(
                {
                    "length": _gt(),
                    "line": node({"length": _gt()}),
                    "to-fields": node({"count": _gt()}),
                }
            ),
            "invalid-recipients": node({"count": _gt()}),
            "MIME": node(
                {
                    "encoding": text(),
                    "filename": node({"length": _gt()}),
                    "filetype": node({"regex": _regex()}),
                }
            ),
            "sender-address": node({"length": _gt(), "regex": _regex()}),
        }
    )


def _address(then: Node) -> Node:
    """``any``, ``any4``, ``host A`` or ``A MASK``, then ``then``."""
    return node({"any": then, "any4": then, "host": word(then)}, arg=word(then))


def _ace(end: bool = False) -> Node:
    """What follows ``access-list NAME``: an extended entry, a remark, or ``line N`` first."""
    log = node({"log": leaf()}, end=True)
    tcp_destination = _address(node({"eq": word(log), "log": leaf()}, end=True))
    # After a TCP source: an optional ``eq PORT``, then the destination.
    after_source = node(
        {"eq": word(tcp_destination), **tcp_destination.words}, arg=tcp_destination.arg
    )
    action = node(
        {"tcp": _address(after_source), "ip": _address(_address(log))}
        | stubs("udp", "icmp", "object", "object-group")
    )
    entry = {
        "extended": node({"permit": action, "deny": action}),
        "remark": text(),
        **stubs("standard", "webtype", "ethertype", "rename"),
    }
    return node({**entry, "line": word(node(entry))}, end=end)


def access_list_commands() -> dict[str, Node]:
    """``access-list ...`` and ``access-group ...`` of configuration mode (and their ``no``)."""
    group = word(node({"in": node({"interface": word()})}))
    return {"access-list": word(_ace()), "access-group": group}


def _show() -> Node:
    policy_map = node(
        {"type": node({"inspect": node({"esmtp": optional_word()})})}, arg=leaf(), end=True
    )
    sections = {
        "policy-map": policy_map,
        "class-map": optional_word(),
        "service-policy": leaf(),
        "interface": optional_word(),
        "hostname": leaf(),
        "access-list": optional_word(),
        "access-group": leaf(),
    }
    running = node({"all": node(sections, end=True), **sections}, end=True)
    esmtp_filter = node({"esmtp": leaf()})
    service_policy = node(
        {
            "global": node({"inspect": esmtp_filter}, end=True),
            "inspect": esmtp_filter,
            "interface": word(node({"inspect": esmtp_filter}, end=True)),
        },
        end=True,
    )
    return node(
        {
            "running-config": running,
            "startup-config": leaf(),
            "service-policy": service_policy,
            "access-list": optional_word(),
            **ops.show_words(),
            **stubs("version", "interface", "route", "xlate", "asp", "inspect"),
        }
    )


def _exec_in_config() -> dict[str, Node]:
    """Commands the ASA also takes inside configuration modes, without ``do``."""
    return {
        "show": _show(),
        "write": node({"memory": leaf(), "terminal": leaf(), "erase": stub()}, end=True),
        "reload": leaf(),
        "terminal": node({"pager": word(), "width": word()}),
        "end": leaf(),
        "exit": leaf(),
    }


# --- the modes ------------------------------------------------------------------------------


def user_tree() -> Node:
    return node(
        {
            "enable": leaf(),
            "exit": leaf(),
            "quit": leaf(),
            "logout": leaf(),
            **stubs("ping", "traceroute", "help", "show", "login"),
        }
    )


def _clear() -> Node:
    """``clear access-list [NAME] counters``; the other ``clear`` commands are not emulated."""
    counters = node({"counters": leaf()})
    return node(
        {
            "access-list": node({"counters": leaf()}, arg=counters),
            **ops.clear_words(),
            **stubs("xlate", "configure", "asp", "arp"),
        }
    )


def _packet_tracer() -> Node:
    """``packet-tracer input IF tcp SRC SPORT DST DPORT [detailed]``."""
    options = node({"detailed": leaf(), "xml": stub()}, end=True)
    tcp = word(word(word(word(options))))
    return node({"input": word(node({"tcp": tcp, **stubs("udp", "icmp", "rawip", "sctp")}))})


def privileged_tree() -> Node:
    exec_words = _exec_in_config()
    del exec_words["end"]  # only configuration modes have "end"
    return node(
        {
            **exec_words,
            "enable": leaf(),
            "disable": leaf(),
            "quit": leaf(),
            "logout": leaf(),
            "configure": node({"terminal": leaf(), **stubs("factory-default", "memory", "net")}),
            "clear": _clear(),
            "packet-tracer": _packet_tracer(),
            **ops.privileged_words(),
            **stubs("clock", "debug", "dir", "more", "ping"),
            **stubs("traceroute", "delete", "format", "verify"),
        }
    )


def config_tree() -> Node:
    policy_map_type = node(
        {"inspect": node({"esmtp": word(), **stubs("dns", "http", "ftp", "sip")})}
    )
    return node(
        {
            **_exec_in_config(),
            "policy-map": node({"type": policy_map_type}, arg=leaf()),
            "class-map": node({"type": stub()}, arg=leaf()),
            "service-policy": word(node({"global": leaf(), "interface": word()})),
            "hostname": word(),
            "interface": word(),
            "no": node(
                {
                    "policy-map": node({"type": policy_map_type}, arg=leaf()),
                    "class-map": word(),
                    "service-policy": word(node({"global": leaf(), "interface": word()})),
                    "access-list": word(_ace(end=True)),
                    "access-group": access_list_commands()["access-group"],
                    **mgmt.negated_trees(),
                    **stubs("object", "route", "nat", "logging"),
                }
            ),
            **access_list_commands(),
            **stubs("object", "object-group", "route", "nat"),
            **mgmt.trees(),
            **stubs("logging", "telnet", "http", "crypto", "tunnel-group"),
            **stubs("aaa", "names", "timeout", "mtu", "call-home", "dns", "ntp"),
            **stubs("domain-name", "same-security-traffic", "sysopt", "dhcpd", "failover"),
        }
    )


def interface_tree() -> Node:
    address = node({"dhcp": node({"setroute": leaf()}, end=True)}, arg=word())
    settings = {
        "nameif": word(),
        "security-level": word(),
        "ip": node({"address": address}),
        "shutdown": leaf(),
        "description": text(),
        "management-only": leaf(),
    }
    negated = {
        "nameif": leaf(),
        "security-level": leaf(),
        "ip": node({"address": node(end=True)}),
        "shutdown": leaf(),
        "description": leaf(),
        "management-only": leaf(),
    }
    return node({**_exec_in_config(), **settings, "no": node(negated), **stubs("speed", "duplex")})


def class_map_tree() -> Node:
    matches = node(
        {
            "default-inspection-traffic": leaf(),
            "any": leaf(),
            "port": node({"tcp": node({"eq": word(), "range": word(word())}), "udp": stub()}),
            "access-list": word(),
        }
    )
    return node(
        {
            **_exec_in_config(),
            "match": matches,
            "description": text(),
            "no": node({"match": matches, "description": leaf()}),
        }
    )


def policy_map_tree() -> Node:
    return node(
        {
            **_exec_in_config(),
            "class": word(),
            "description": text(),
            "no": node({"class": word(), "description": leaf()}),
        }
    )


def policy_class_tree() -> Node:
    return node(
        {
            **_exec_in_config(),
            "inspect": _inspect_tree(),
            "no": node({"inspect": _inspect_tree(), **stubs("set", "police")}),
            **stubs("set", "police", "priority", "shape", "user-statistics", "flow-export"),
        }
    )


def esmtp_map_tree() -> Node:
    match = node({"not": esmtp_criteria(), **esmtp_criteria().words})
    return node(
        {
            **_exec_in_config(),
            "description": text(),
            "parameters": leaf(),
            "match": match,
            "no": node({"description": leaf(), "match": match}),
        }
    )


def _address_action() -> Node:
    return node({"action": node({"drop-connection": leaf(), "log": leaf()})})


def esmtp_parameters_tree() -> Node:
    return node(
        {
            **_exec_in_config(),
            "mask-banner": leaf(),
            "allow-tls": node({"action": node({"log": leaf()})}, end=True),
            "mail-relay": word(_address_action()),
            "special-character": _address_action(),
            "no": node(
                {
                    "mask-banner": leaf(),
                    "allow-tls": node({"action": node({"log": leaf()})}, end=True),
                    "mail-relay": optional_word(),
                    "special-character": node(end=True),
                }
            ),
        }
    )


def _actions() -> dict[str, Node]:
    with_log = node({"log": leaf()}, end=True)
    return {
        "drop-connection": with_log,
        "mask": node({"log": leaf()}, end=True),
        "reset": node({"log": leaf()}, end=True),
        "log": leaf(),
        "rate-limit": word(),
    }


def esmtp_match_tree() -> Node:
    return node({**_exec_in_config(), **_actions(), "no": node(_actions())})
