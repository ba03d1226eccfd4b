"""The firewalls' access lists on a hub-to-hub path: which line refuses SMTP, and how to fix it.

A live lab's firewalls answer ``show running-config access-list`` and
``access-group`` (:class:`~.facts.FirewallFact.access_rules`).  Read back
with the firewall's own reader, they are judged by the same decision the
relay makes for each new connection (:func:`sitemail.firewall.acl.evaluate`):
TCP/25 from the sending hub's address to the receiving hub's, entering the
firewall on the interface the path crosses.  The fix is the console lines
that make that decision a permit: remove the denying line, and when that is
not enough (an implicit deny, or another deny after it), permit SMTP between
the hubs at the top of the list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sitemail.diagnose.facts import FirewallFact
from sitemail.firewall.acl import (
    AccessList,
    Ace,
    AclVerdict,
    AddressSpec,
    Packet,
    evaluate,
)
from sitemail.firewall.asa_config import AsaConfig, ConfigSyntaxError, parse_config

__all__ = ["AclBlock", "blocks_on_path", "fix_lines", "packet_tracer_line"]

SMTP = 25
#: A source port for packet-tracer lines; a hub connects from an ephemeral one.
EPHEMERAL_PORT = 50000


@dataclass(frozen=True)
class AclBlock:
    """A firewall whose access group refuses SMTP from ``source`` to ``destination``."""

    firewall: FirewallFact
    interface: str
    source: str
    destination: str
    verdict: AclVerdict
    config: AsaConfig

    @property
    def denying_line(self) -> str:
        """The access-list line that refuses, or the implicit deny in words."""
        acl, ace = self.verdict.access_list, self.verdict.ace
        group = self.verdict.group
        assert group is not None
        if acl is not None and ace is not None:
            return f"access-list {acl.name} line {self.verdict.line} {ace.text()}"
        return f"the implicit deny at the end of access-list {group.acl}"


def _config(firewall: FirewallFact) -> AsaConfig | None:
    if not firewall.access_rules:
        return None
    try:
        return parse_config("\n".join(firewall.access_rules))
    except ConfigSyntaxError:
        return None


def blocks_on_path(
    on_path: list[tuple[FirewallFact, str]], source: str, destination: str
) -> list[AclBlock]:
    """Each firewall on the path whose access group refuses TCP/25 from source to destination."""
    out = []
    packet = Packet.tcp(source, None, destination, SMTP)
    for firewall, interface in on_path:
        config = _config(firewall) if firewall.reachable else None
        if config is None:
            continue
        verdict = evaluate(config.access_lists, config.access_groups, interface, packet)
        if not verdict.permitted:
            out.append(AclBlock(firewall, interface, source, destination, verdict, config))
    return out


def fix_lines(block: AclBlock) -> tuple[str, ...]:
    """Console lines (from ``#``) that let SMTP through, saved with ``wr me``."""
    group = block.verdict.group
    assert group is not None
    packet = Packet.tcp(block.source, None, block.destination, SMTP)
    lines = ["config t"]
    acl = block.config.access_list(group.acl)
    entries = list(acl.entries) if acl is not None else []
    if block.verdict.ace is not None and acl is not None:
        lines.append(f"no {acl.line_text(block.verdict.ace)}")
        entries.remove(block.verdict.ace)
    still = evaluate([AccessList(group.acl, entries)], [group], block.interface, packet)
    if not still.permitted:
        permit = Ace(
            "permit",
            "tcp",
            AddressSpec("host", block.source),
            AddressSpec("host", block.destination),
            destination_port=SMTP,
        )
        lines.append(f"access-list {group.acl} line 1 {permit.text()}")
    return (*lines, "exit", "wr me")


def packet_tracer_line(block: AclBlock) -> str:
    """The check an administrator types afterwards (Action: allow)."""
    return (
        f"packet-tracer input {block.interface} tcp {block.source} {EPHEMERAL_PORT} "
        f"{block.destination} {SMTP}"
    )
