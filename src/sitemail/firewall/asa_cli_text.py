"""Fixed texts the emulated ASA prints, and the ``show service-policy`` report.

Texts marked [obs] are quoted from real ASA sessions (spec §3, public console
logs); texts marked [unv] are not confirmed anywhere and are kept here, in
one place, so they are easy to correct.
"""

from __future__ import annotations

from collections.abc import Mapping

from sitemail.firewall.asa_model import AsaConfig, Inspect
from sitemail.firewall.counters import InspectCounters

INVALID_INPUT = "ERROR: % Invalid input detected at '^' marker.\n"  # [obs]
INCOMPLETE = "ERROR: % Incomplete command\n"  # [obs]
INVALID_PASSWORD = "Invalid password\n"  # [obs]
PASSWORD_PROMPT = "Password: "  # [obs]


def ambiguous(line: str) -> str:
    # [unv] for the ASA; this is the IOS wording.
    return f'ERROR: % Ambiguous command:  "{line.strip()}"\n'


def not_emulated(words: str) -> str:
    return (
        f"ERROR: % '{words}' is a real ASA command that sitemail does not emulate; use "
        "configure terminal, policy-map, class-map, inspect, service-policy, access-list "
        "(extended tcp/ip), access-group, show running-config, show service-policy, show "
        "access-list, clear access-list, packet-tracer (tcp), write memory or reload.\n"
    )


# [unv] errors for configuration that refers to something missing or in use.
def missing(kind: str, name: str) -> str:
    return f"ERROR: {kind} {name} does not exist\n"


def in_use(kind: str, name: str) -> str:
    return f"ERROR: {kind} {name} is in use; remove the reference to it first\n"


# [unv] access-list errors: the address and mask of an entry disagree, the entry typed
# again, a `no` for an entry the list does not have, an access-group naming a list that
# has no entry (the guide: "You cannot reference empty ACLs or ACLs that contain only a
# remark").
def address_mask_mismatch(address: str, mask: str) -> str:
    return f"ERROR: IP address,mask <{address},{mask}> doesn't pair\n"


def duplicate_ace(name: str) -> str:
    return f"WARNING: {name} found duplicate element\n"


NO_SUCH_ACE = "ERROR: Specified access-list entry does not exist\n"


def empty_access_list(name: str) -> str:
    return f"ERROR: access-list {name} has no entry; an access-group needs at least one\n"


# [unv] packet-tracer with an input interface that has no such nameif.
def no_such_interface(name: str) -> str:
    return f"ERROR: '{name}' is not a valid interface name (nameif)\n"


INSPECT_EXISTS = (  # [unv] changing the map of an inspect needs "no inspect" first (§3.3)
    "ERROR: Inspect configuration of this type exists, first remove that configuration "
    "and then add the new configuration\n"
)

# [obs] first "configure terminal" on a box whose call-home question is unanswered.
CALL_HOME_NOTICE = (
    "\n"
    "***************************** NOTICE *****************************\n"
    "\n"
    "Help to improve the ASA platform by enabling anonymous reporting,\n"
    "which allows Cisco to securely receive minimal error and health\n"
    "information from the device. To learn more about this feature,\n"
    "please visit: http://www.cisco.com/go/smartcall\n"
    "\n"
    "Would you like to enable anonymous error reporting to help improve\n"
)
CALL_HOME_QUESTION = "the product? [Y]es, [N]o, [A]sk later: "
CALL_HOME_NO = (
    "\n"
    "In the future, if you would like to enable this feature,\n"
    'issue the command "call-home reporting anonymous".\n'
    "\n"
    "Please remember to save your configuration.\n"
    "\n"
)
CALL_HOME_YES = (
    "\n"
    "Enabling anonymous reporting.\n"
    'Adding "call-home reporting anonymous" to running configuration...\n'
    "\n"
    "Please remember to save your configuration.\n"
    "\n"
)
CALL_HOME_LATER = "\n"  # [unv]

RELOAD_SAVE_QUESTION = "System config has been modified. Save? [Y]es/[N]o: "  # [obs]
RELOAD_CONFIRM = "Proceed with reload? [confirm]"  # [obs]
RELOAD_OUTPUT = (  # [obs] shortened: the real list of "Shutting down ..." lines is longer
    "\n"
    "***\n"
    "*** --- START GRACEFUL SHUTDOWN ---\n"
    "Shutting down isakmp\n"
    "Shutting down File system\n"
    "\n"
    "***\n"
    "*** --- SHUTDOWN NOW ---\n"
    "Process shutdown finished\n"
    "Rebooting...\n"
    "\n"
    "Type help or '?' for a list of available commands.\n"
)
LOGOFF = "\nLogoff\n\n"  # [obs]

# Names `show service-policy` prints for inspections that use a hidden map [obs GENIE].
HIDDEN_MAPS = {
    "esmtp": "_default_esmtp_map",
    "h323 h225": "_default_h323_map",
    "h323 ras": "_default_h323_map",
    "ip-options": "_default_ip_options_map",
}
TCP_PROXY = frozenset({"rtsp", "sunrpc", "h323 h225", "sip", "skinny"})


def _inspect_label(inspect: Inspect) -> str:
    name = inspect.map_name or HIDDEN_MAPS.get(inspect.protocol)
    if name:
        return f"{inspect.protocol} {name}"
    # "Inspect: sip , packet 0" — sip and skinny carry a blank, as in their config line.
    return f"{inspect.protocol} " if inspect.protocol in ("sip", "skinny") else inspect.protocol


def _figures(counters: InspectCounters, long_format: bool) -> str:
    short = (
        f"packet {counters.packet}, lock fail {counters.lock_fail}, drop {counters.drop}, "
        f"reset-drop {counters.reset_drop}"
    )
    if not long_format:
        return short
    return (
        f"{short}, 5-min-pkt-rate {counters.five_min_pkt_rate} pkts/sec, "
        f"v6-fail-close {counters.v6_fail_close} sctp-drop-override {counters.sctp_drop_override}"
    )


def service_policy_report(
    config: AsaConfig,
    counters: Mapping[str, InspectCounters],
    *,
    scope: str | bool | None = True,
    esmtp_only: bool = False,
    long_format: bool = True,
) -> str:
    """``show service-policy [global | interface IFC] [inspect esmtp]``.

    ``scope`` True shows every service-policy, None the global one, a string
    the one on that interface.  ``counters`` is keyed by inspection
    (``"esmtp"``); missing ones print as zeros.
    """
    lines: list[str] = []
    policies = sorted(config.service_policies, key=lambda p: p.interface is not None)
    for service in policies:
        if scope is not True and service.interface != scope:
            continue
        policy_map = config.policy_map(service.policy_map)
        if service.interface is None:
            lines.append("Global policy:")
        else:
            lines.append(f"Interface {service.interface}:")
        lines.append(f"  Service-policy: {service.policy_map}")
        for klass in policy_map.classes if policy_map else []:
            inspects = [i for i in klass.inspects if not esmtp_only or i.kind == "esmtp"]
            if not inspects:
                continue
            lines.append(f"    Class-map: {klass.name}")
            for inspect in inspects:
                figures = _figures(counters.get(inspect.kind, InspectCounters()), long_format)
                lines.append(f"      Inspect: {_inspect_label(inspect)}, {figures}")
                if esmtp_only:
                    lines += _esmtp_map_figures(config, inspect, counters.get("esmtp"))
                if inspect.protocol in TCP_PROXY:
                    lines.append("        tcp-proxy: bytes in buffer 0, bytes dropped 0")
    return "".join(f"{line}\n" for line in lines)


def _esmtp_map_figures(
    config: AsaConfig, inspect: Inspect, counters: InspectCounters | None
) -> list[str]:
    """[unv] layout: the map's parameters and match rules under the Inspect line, each with
    how often it acted (``show service-policy inspect esmtp``)."""
    inspect_map = config.esmtp_map(inspect.map_name or HIDDEN_MAPS["esmtp"])
    if inspect_map is None:
        return []
    figures = counters or InspectCounters()
    lines = []
    if inspect_map.mask_banner:
        lines.append(f"        mask-banner, count {figures.mask_banner}")
    for class_id, match in enumerate(inspect_map.matches, start=1):
        lines.append(f"        {match.line}")
        hits = figures.matched.get(class_id, 0)
        lines += [f"          {action}, packet {hits}" for action in match.actions]
    return lines
