"""The ASA configuration: model, text in and out, and the inspection it implies.

This is the public face of the configuration code:

* the model (:class:`AsaConfig` and its parts, from :mod:`.asa_model`);
* :func:`factory_config`, :func:`render_config` / :func:`parse_config`;
* :func:`esmtp_policy_for`: is ESMTP inspection on for a connection to TCP/25,
  and with which map, turned into the :class:`EsmtpPolicy` the engine obeys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sitemail.firewall.asa_model import (
    DEFAULT_ESMTP_MAP,
    AsaConfig,
    CallHome,
    ClassMap,
    EsmtpInspectMap,
    EsmtpMatch,
    Inspect,
    Interface,
    PolicyClass,
    PolicyMap,
    RawInspectMap,
    ServicePolicy,
    default_esmtp_map,
    factory_config,
    factory_interfaces,
)
from sitemail.firewall.asa_parse import ConfigSyntaxError, parse_config
from sitemail.firewall.asa_render import cryptochecksum, render_config
from sitemail.firewall.esmtp_policy import (
    AddressAction,
    EsmtpPolicy,
    LimitRule,
    MailRelay,
    NameRule,
    Outcome,
    RuleAction,
)

__all__ = [
    "DEFAULT_ESMTP_MAP",
    "AsaConfig",
    "CallHome",
    "ClassMap",
    "ConfigSyntaxError",
    "EsmtpInspectMap",
    "EsmtpMatch",
    "Inspect",
    "InspectionRule",
    "Interface",
    "PolicyClass",
    "PolicyMap",
    "RawInspectMap",
    "ServicePolicy",
    "cryptochecksum",
    "default_esmtp_map",
    "esmtp_inspection_for",
    "esmtp_inspection_rule",
    "esmtp_policy_for",
    "factory_config",
    "factory_interfaces",
    "parse_config",
    "policy_from_map",
    "render_config",
]

SMTP_PORT = 25

# Criteria the engine enforces, by the EsmtpPolicy field they fill.
_LIMITS: dict[str, re.Pattern[str]] = {
    "cmd_line_max": re.compile(r"cmd line length gt (\d+)", re.I),
    "rcpt_max": re.compile(r"cmd rcpt count gt (\d+)", re.I),
    "body_line_max": re.compile(r"body line length gt (\d+)", re.I),
    "body_length_max": re.compile(r"body length gt (\d+)", re.I),
    "header_line_max": re.compile(r"header line length gt (\d+)", re.I),
    "header_length_max": re.compile(r"header length gt (\d+)", re.I),
    "sender_addr_max": re.compile(r"sender-address length gt (\d+)", re.I),
    "mime_filename_max": re.compile(r"mime filename length gt (\d+)", re.I),
}
_EHLO = re.compile(r"ehlo-reply-parameter (.+)", re.I)
_VERB = re.compile(r"cmd verb (.+)", re.I)


def _outcome(match: EsmtpMatch, class_id: int) -> Outcome | None:
    for action_line in match.actions:
        words = action_line.split()
        if words[0] in ("drop-connection", "reset", "mask", "log"):
            action: RuleAction = words[0]  # type: ignore[assignment]
            log = words[0] == "log" or words[-1] == "log"
            return Outcome(action, log, class_id, match.criterion)
    return None  # no action, or only rate-limit: nothing the engine does


def policy_from_map(inspect_map: EsmtpInspectMap, base: EsmtpPolicy | None = None) -> EsmtpPolicy:
    """The engine policy for an ESMTP inspect map.

    ``base`` supplies what a map cannot say (PIX mode, masking details the spec
    leaves open); everything a map can say comes from the map, so a map without
    a ``cmd line length`` rule has no such limit.  ``match not`` rules and the
    regex/count criteria the engine does not implement are ignored.
    """
    limits: dict[str, LimitRule | None] = dict.fromkeys(_LIMITS)
    ehlo_rules: list[NameRule] = []
    verb_rules: list[NameRule] = []
    for position, match in enumerate(inspect_map.matches, start=1):
        outcome = _outcome(match, position)
        if outcome is None or match.negate:
            continue
        for name, pattern in _LIMITS.items():
            found = pattern.fullmatch(match.criterion)
            if found and limits[name] is None:
                limits[name] = LimitRule(int(found.group(1)), outcome)
        if found_ehlo := _EHLO.fullmatch(match.criterion):
            names = frozenset(n.lower() for n in found_ehlo.group(1).split())
            ehlo_rules.append(NameRule(names, outcome))
        if found_verb := _VERB.fullmatch(match.criterion):
            names = frozenset(n.lower() for n in found_verb.group(1).split())
            verb_rules.append(NameRule(names, outcome))
    relay = None
    if inspect_map.mail_relay is not None:
        domain, relay_action = inspect_map.mail_relay
        relay = MailRelay(domain, _address_action(relay_action))
    special = (
        None
        if inspect_map.special_character is None
        else _address_action(inspect_map.special_character)
    )
    return replace(
        base or EsmtpPolicy(),
        map_name=inspect_map.name,
        mask_banner=inspect_map.mask_banner,
        allow_tls=inspect_map.allow_tls,
        allow_tls_log=inspect_map.allow_tls_log,
        ehlo_rules=tuple(ehlo_rules),
        verb_rules=tuple(verb_rules),
        mail_relay=relay,
        special_character=special,
        cmd_line_max=limits["cmd_line_max"],
        rcpt_max=limits["rcpt_max"],
        body_line_max=limits["body_line_max"],
        body_length_max=limits["body_length_max"],
        header_line_max=limits["header_line_max"],
        header_length_max=limits["header_length_max"],
        sender_addr_max=limits["sender_addr_max"],
        mime_filename_max=limits["mime_filename_max"],
    )


def _address_action(text: str) -> AddressAction:
    return "drop-connection" if text == "drop-connection" else "log"


def _class_matches(class_map: ClassMap | None, name: str, port: int) -> bool:
    if name == "class-default":
        return True
    if class_map is None:
        return False
    for match in class_map.matches:
        words = match.split()
        if words == ["default-inspection-traffic"]:
            # The default port of every inspection; for ESMTP that is TCP/25 (§1.1).
            if port == SMTP_PORT:
                return True
        elif words == ["any"]:
            return True
        elif words[:3] == ["port", "tcp", "eq"] and len(words) == 4:
            wanted = (
                SMTP_PORT if words[3] == "smtp" else int(words[3]) if words[3].isdigit() else -1
            )
            if wanted == port:
                return True
        elif words[:3] == ["port", "tcp", "range"] and len(words) == 5:
            low, high = words[3], words[4]
            if low.isdigit() and high.isdigit() and int(low) <= port <= int(high):
                return True
        # "match access-list NAME" needs the ACL, which is not modelled: no match.
    return False


@dataclass(frozen=True)
class InspectionRule:
    """Where an ``inspect esmtp`` comes from: service-policy, policy-map, class, class-map."""

    service: ServicePolicy
    policy_map: PolicyMap
    klass: PolicyClass
    class_map: ClassMap | None  # None for class-default
    inspect: Inspect


def _decide(
    config: AsaConfig, service: ServicePolicy, policy_map: PolicyMap, port: int
) -> tuple[bool, InspectionRule | None]:
    """(decided, esmtp rule): the first matching class with an inspect decides (MPF)."""
    for klass in policy_map.classes:
        if not klass.inspects:
            continue
        class_map = config.class_map(klass.name)
        if not _class_matches(class_map, klass.name, port):
            continue
        inspect = klass.find("esmtp")
        if inspect is None:
            return True, None
        return True, InspectionRule(service, policy_map, klass, class_map, inspect)
    return False, None


def esmtp_inspection_rule(
    config: AsaConfig, *, interface: str | None = None, port: int = SMTP_PORT
) -> InspectionRule | None:
    """The configuration behind the ``inspect esmtp`` that applies to TCP/``port`` arriving
    on ``interface``, or None when SMTP is not inspected there.

    An interface service-policy is looked at before the global one, as on the
    ASA (spec §3.1): the first class that matches the traffic and has an
    ``inspect`` decides.
    """
    scopes = ([interface] if interface is not None else []) + [None]
    for scope in scopes:
        service = config.service_policy(scope)
        if service is None:
            continue
        policy_map = config.policy_map(service.policy_map)
        if policy_map is None:
            continue
        decided, rule = _decide(config, service, policy_map, port)
        if decided:
            return rule
    return None


def esmtp_inspection_for(
    config: AsaConfig, *, interface: str | None = None, port: int = SMTP_PORT
) -> Inspect | None:
    """The ``inspect esmtp`` line that applies to TCP/``port`` arriving on ``interface``."""
    rule = esmtp_inspection_rule(config, interface=interface, port=port)
    return None if rule is None else rule.inspect


def esmtp_policy_for(
    config: AsaConfig,
    *,
    interface: str | None = None,
    port: int = SMTP_PORT,
    base: EsmtpPolicy | None = None,
) -> EsmtpPolicy | None:
    """The engine policy for a new connection, or None when ESMTP inspection is off."""
    inspect = esmtp_inspection_for(config, interface=interface, port=port)
    if inspect is None:
        return None
    inspect_map = config.esmtp_map(inspect.map_name or DEFAULT_ESMTP_MAP)
    if inspect_map is None:
        inspect_map = default_esmtp_map()
    return policy_from_map(inspect_map, base)
