"""``packet-tracer``: what the running configuration does to a new TCP connection, no packet sent.

:func:`trace` walks the phases an ASA 9.x reports for the first packet of a
connection (route lookup, the interface's access list, ESMTP inspection,
flow creation) over the configuration alone; :func:`render_trace` prints
them in the ASA's layout.  NAT is not part of the emulated configuration,
so no NAT phase appears.

Where the box sends a destination comes from its interfaces' own networks,
from ``ip address dhcp setroute`` (a default route) and from the
:class:`Egress` entries its owner supplies: the lab's firewall passes the
servers its relays lead to, the routes a real ASA would hold as ``route``
and crypto map lines.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Literal

from sitemail.firewall.acl import AclVerdict, Packet, ace_hash, evaluate
from sitemail.firewall.asa_config import InspectionRule, esmtp_inspection_rule
from sitemail.firewall.asa_model import DEFAULT_ESMTP_MAP, AsaConfig
from sitemail.firewall.counters import AclHits

__all__ = ["Egress", "Phase", "Trace", "render_trace", "route_lookup", "trace"]

# [obs] the drop reason of an access-list drop, as packet-tracer and `show asp drop` print it.
ACL_DROP = "(acl-drop) Flow is denied by configured rule"
# [unv] the other drop reasons and the route-lookup wording of 9.x packet-tracer.
NO_ROUTE_DROP = "(no-route) No route to host"
INTERFACE_DOWN_DROP = "(interface-down) Interface is down"
FOUND_NEXT_HOP = "found next-hop {hop} using egress ifc  {ifc}"  # two blanks, as 9.x prints
NO_ROUTE_INFO = "no route to {dst} from the routing table"
FLOW_CREATED = "New flow created with id {flow}, packet dispatched to next module"
IMPLICIT_RULE = "Implicit Rule"  # [obs]
NO_OUTPUT_INTERFACE = "NP Identity Ifc"  # [unv] the output interface shown when none is found


@dataclass(frozen=True)
class Egress:
    """A destination network the box reaches through one of its interfaces."""

    network: IPv4Network
    interface: str  # nameif
    next_hop: str | None = None  # None: the destination itself (directly attached)


@dataclass(frozen=True)
class Phase:
    type: str
    subtype: str
    allowed: bool
    config: tuple[str, ...] = ()
    info: tuple[str, ...] = ()
    detail: tuple[str, ...] = ()  # printed only with ``detailed``


@dataclass(frozen=True)
class Trace:
    """The phases one connection goes through, and where it ends."""

    input_interface: str
    output_interface: str | None
    phases: tuple[Phase, ...]
    input_up: bool = True
    output_up: bool = True
    drop_reason: str | None = None
    verdict: AclVerdict | None = None

    @property
    def allowed(self) -> bool:
        return self.drop_reason is None


def route_lookup(
    config: AsaConfig, egress: Sequence[Egress], destination: ipaddress.IPv4Address
) -> Egress | None:
    """The longest-prefix route to ``destination``: connected networks, then the rest."""
    candidates = list(egress)
    for interface in config.interfaces:
        if not interface.nameif:
            continue
        if interface.address is not None:
            ip, mask = interface.address
            network = IPv4Network(f"{ip}/{mask}", strict=False)
            candidates.append(Egress(network, interface.nameif))
        elif "setroute" in (interface.ip_address or ""):
            # DHCP with setroute installs a default route out of that interface.
            candidates.append(Egress(IPv4Network("0.0.0.0/0"), interface.nameif, "dhcp"))
    found = [c for c in candidates if destination in c.network]
    if not found:
        return None
    # Connected networks come after the supplied entries only when equally specific.
    return max(found, key=lambda c: c.network.prefixlen)


def _route_phase(packet: Packet, route: Egress | None) -> Phase:
    if route is None:
        info = NO_ROUTE_INFO.format(dst=packet.destination)
        return Phase("ROUTE-LOOKUP", "Resolve Egress Interface", False, info=(info,))
    hop = str(packet.destination)
    if route.next_hop is not None and route.next_hop != "dhcp":
        hop = route.next_hop
    info = FOUND_NEXT_HOP.format(hop=hop, ifc=route.interface)
    return Phase("ROUTE-LOOKUP", "Resolve Egress Interface", True, info=(info,))


def _rule_lines(
    *,
    rule_id: str,
    priority: int,
    domain: str,
    deny: bool,
    hits: int,
    protocol: int,
    source: tuple[str, str, int],
    destination: tuple[str, str, int],
    interface: str,
) -> tuple[str, ...]:
    """The "Forward Flow based lookup yields rule" block of ``detailed`` (the ASA indents
    the inner lines with a tab; a console here shows eight blanks)."""
    tab = " " * 8
    return (
        " Forward Flow based lookup yields rule:",
        f" in  id={rule_id}, priority={priority}, domain={domain}, deny={str(deny).lower()}",
        f"{tab}hits={hits}, user_data=0x0, cs_id=0x0, use_real_addr, flags=0x0, "
        f"protocol={protocol}",
        f"{tab}src ip/id={source[0]}, mask={source[1]}, port={source[2]}, tag=any",
        f"{tab}dst ip/id={destination[0]}, mask={destination[1]}, port={destination[2]}, "
        "tag=any, dscp=0x0",
        f"{tab}input_ifc={interface}, output_ifc=any",
    )


def _acl_phase(verdict: AclVerdict, interface: str, hits: AclHits | None) -> Phase:
    group, acl, ace = verdict.group, verdict.access_list, verdict.ace
    if group is None or acl is None or ace is None:
        # No access group (the lab's permit), or the implicit deny at the end of one.
        detail = _rule_lines(
            rule_id="0x0",
            priority=1 if group is None else 11,
            domain="permit",
            deny=not verdict.permitted,
            hits=0,
            protocol=0,
            source=("0.0.0.0", "0.0.0.0", 0),
            destination=("0.0.0.0", "0.0.0.0", 0),
            interface=interface,
        )
        return Phase("ACCESS-LIST", "", verdict.permitted, (IMPLICIT_RULE,), detail=detail)
    entry_hash = ace_hash(acl.name, ace)
    detail = _rule_lines(
        rule_id=entry_hash,
        priority=13,
        domain="permit",
        deny=ace.action == "deny",
        hits=hits.get(acl.name, entry_hash) if hits is not None else 0,
        protocol=6 if ace.protocol == "tcp" else 0,
        source=(str(ace.source.net.network_address), str(ace.source.net.netmask), 0),
        destination=(
            str(ace.destination.net.network_address),
            str(ace.destination.net.netmask),
            ace.destination_port or 0,
        ),
        interface=interface,
    )
    config = (group.text(), acl.line_text(ace))
    return Phase("ACCESS-LIST", "log", verdict.permitted, config, detail=detail)


def _inspect_phase(rule: InspectionRule, interface: str, port: int) -> Phase:
    lines: list[str] = []
    if rule.class_map is not None:
        lines.append(f"class-map {rule.class_map.name}")
        lines += [f" match {m}" for m in rule.class_map.matches]
    lines.append(f"policy-map {rule.policy_map.name}")
    lines.append(f" class {rule.klass.name}")
    # packet-tracer names the hidden default map that the running-config leaves out.
    lines.append(f"  inspect {rule.inspect.protocol} {rule.inspect.map_name or DEFAULT_ESMTP_MAP}")
    scope = "global" if rule.service.interface is None else f"interface {rule.service.interface}"
    lines.append(f"service-policy {rule.service.policy_map} {scope}")
    detail = _rule_lines(
        rule_id="0x0",
        priority=70,
        domain="inspect-smtp",
        deny=False,
        hits=0,
        protocol=6,
        source=("0.0.0.0", "0.0.0.0", 0),
        destination=("0.0.0.0", "0.0.0.0", port),
        interface=interface,
    )
    return Phase("INSPECT", "inspect-smtp", True, tuple(lines), detail=detail)


def trace(
    config: AsaConfig,
    interface: str,
    packet: Packet,
    *,
    egress: Sequence[Egress] = (),
    hits: AclHits | None = None,
    flow_id: int = 1,
) -> Trace:
    """The phases of a new TCP connection entering ``interface`` (a nameif of ``config``)."""
    ifc = next(i for i in config.interfaces if i.nameif == interface)
    route = route_lookup(config, egress, packet.destination)
    output = route.interface if route is not None else None
    out_ifc = next((i for i in config.interfaces if i.nameif == output), None)
    output_up = out_ifc is not None and not out_ifc.shutdown
    phases = [_route_phase(packet, route)]

    def ended(reason: str | None, verdict: AclVerdict | None = None) -> Trace:
        return Trace(interface, output, tuple(phases), not ifc.shutdown, output_up, reason, verdict)

    if route is None:
        return ended(NO_ROUTE_DROP)
    verdict = evaluate(config.access_lists, config.access_groups, interface, packet)
    phases.append(_acl_phase(verdict, interface, hits))
    if not verdict.permitted:
        return ended(ACL_DROP, verdict)
    rule = esmtp_inspection_rule(config, interface=interface, port=packet.destination_port)
    if rule is not None:
        phases.append(_inspect_phase(rule, interface, packet.destination_port))
    if ifc.shutdown or not output_up:
        return ended(INTERFACE_DOWN_DROP, verdict)
    phases.append(Phase("FLOW-CREATION", "", True, info=(FLOW_CREATED.format(flow=flow_id),)))
    return ended(None, verdict)


def _status(up: bool) -> Literal["up", "down"]:
    return "up" if up else "down"


def render_trace(result: Trace, *, detailed: bool = False) -> str:
    """The ASA's packet-tracer output: a block per phase, then the result."""
    out: list[str] = []
    for number, phase in enumerate(result.phases, start=1):
        out += [
            "",
            f"Phase: {number}",
            f"Type: {phase.type}",
            f"Subtype: {phase.subtype}".rstrip(),
            f"Result: {'ALLOW' if phase.allowed else 'DROP'}",
            "Config:",
            *phase.config,
            "Additional Information:",
            *(phase.detail if detailed else ()),
            *phase.info,
        ]
    output = result.output_interface or NO_OUTPUT_INTERFACE
    out += [
        "",
        "Result:",
        f"input-interface: {result.input_interface}",
        f"input-status: {_status(result.input_up)}",
        f"input-line-status: {_status(result.input_up)}",
        f"output-interface: {output}",
        f"output-status: {_status(result.output_up)}",
        f"output-line-status: {_status(result.output_up)}",
        f"Action: {'allow' if result.allowed else 'drop'}",
    ]
    if result.drop_reason is not None:
        out.append(f"Drop-reason: {result.drop_reason}")
    return "".join(f"{line}\n" for line in out)
