"""What the ASA console prints for ``show ...`` and ``packet-tracer``: reports over the model.

:class:`~sitemail.firewall.asa_cli.AsaCli` decides which command was typed;
the functions here only read the running configuration (and the counters
the data plane keeps) and return the text, every line ending in ``\\n``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sitemail.firewall import asa_cli_text as say
from sitemail.firewall.acl import Packet, port_number
from sitemail.firewall.asa_cli_acl import access_list_report
from sitemail.firewall.asa_cli_grammar import ARG, Matched
from sitemail.firewall.asa_model import AsaConfig
from sitemail.firewall.asa_render import (
    render_access_groups,
    render_access_lists,
    render_class_maps,
    render_config,
    render_interfaces,
    render_policy_maps,
    render_service_policies,
)
from sitemail.firewall.counters import AclHits, InspectCounters
from sitemail.firewall.packet_tracer import Egress, render_trace, trace

__all__ = ["BadTracerWord", "ShowContext", "packet_tracer", "show"]


@dataclass(frozen=True)
class ShowContext:
    """What a report may read besides the running configuration."""

    startup: str
    counters: Mapping[str, InspectCounters]
    hits: AclHits
    long_service_policy_format: bool = True


def show(found: Matched, config: AsaConfig, ctx: ShowContext) -> str:
    """The output of a matched ``show`` line."""
    path, args = found.path, found.args
    if path[1] == "startup-config":
        return ctx.startup
    if path[1] == "access-list":
        return access_list_report(config, ctx.hits, args[0] if args else None)
    if path[1] == "service-policy":
        scope: str | bool | None = True
        if "global" in path:
            scope = None
        elif "interface" in path:
            scope = args[0]
        return say.service_policy_report(
            config,
            ctx.counters,
            scope=scope,
            esmtp_only="esmtp" in path,
            long_format=ctx.long_service_policy_format,
        )
    # show running-config [all] [section ...]
    show_all = "all" in path
    section = path[3:] if show_all else path[2:]
    name = args[0] if args else None
    if not section:
        return render_config(config, show_all=show_all)
    if section[0] == "policy-map":
        esmtp_only = "esmtp" in section
        return render_policy_maps(config, show_all=show_all, name=name, esmtp_only=esmtp_only)
    if section[0] == "class-map":
        return render_class_maps(config, name)
    if section[0] == "service-policy":
        return render_service_policies(config)
    if section[0] == "access-list":
        return render_access_lists(config, name)
    if section[0] == "access-group":
        return render_access_groups(config)
    if section[0] == "interface":
        text = render_interfaces(config, name)
        return f"{text}!\n" if text else ""
    return f"hostname {config.hostname}\n"


class BadTracerWord(ValueError):
    """A free word of ``packet-tracer`` the ASA refuses; ``index`` is its place in the path."""

    def __init__(self, index: int) -> None:
        super().__init__(f"bad word at {index}")
        self.index = index


def packet_tracer(
    found: Matched,
    config: AsaConfig,
    *,
    egress: Sequence[Egress],
    hits: AclHits,
    flow_id: int,
) -> str:
    """``packet-tracer input IF tcp SRC SPORT DST DPORT [detailed]``.

    Raises :class:`BadTracerWord` for an address or port that is not one.
    """
    interface, source, sport, destination, dport = found.args
    indexes = [i for i, p in enumerate(found.path) if p == ARG]
    for value, index in ((source, indexes[1]), (destination, indexes[3])):
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise BadTracerWord(index) from None
    ports = []
    for value, index in ((sport, indexes[2]), (dport, indexes[4])):
        number = port_number(value)
        if number is None:
            raise BadTracerWord(index)
        ports.append(number)
    if interface not in config.nameifs():
        return say.no_such_interface(interface)
    packet = Packet.tcp(source, ports[0], destination, ports[1])
    result = trace(config, interface, packet, egress=egress, hits=hits, flow_id=flow_id)
    return render_trace(result, detailed="detailed" in found.path)
