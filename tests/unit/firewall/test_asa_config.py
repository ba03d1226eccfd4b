"""The ASA configuration model: factory text, round trip, and the inspection it implies."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.firewall.asa_config import (
    AsaConfig,
    ClassMap,
    EsmtpInspectMap,
    EsmtpMatch,
    Inspect,
    Interface,
    PolicyClass,
    PolicyMap,
    ServicePolicy,
    default_esmtp_map,
    esmtp_inspection_for,
    esmtp_policy_for,
    factory_config,
    parse_config,
    policy_from_map,
    render_config,
)
from sitemail.firewall.asa_render import (
    render_class_maps,
    render_esmtp_map,
    render_policy_maps,
    render_service_policies,
)
from sitemail.firewall.esmtp_policy import EsmtpPolicy, MailRelay

# Spec §1.1 (with the "..." of the spec spelled out as its own list of protocols).
FACTORY_POLICY_MAPS = "".join(
    f"{line}\n"
    for line in [
        "!",
        "policy-map type inspect dns preset_dns_map",
        " parameters",
        "  message-length maximum client auto",
        "  message-length maximum 512",
        "policy-map global_policy",
        " class inspection_default",
        "  inspect dns preset_dns_map ",
        "  inspect ftp ",
        "  inspect h323 h225 ",
        "  inspect h323 ras ",
        "  inspect rsh ",
        "  inspect rtsp ",
        "  inspect esmtp ",
        "  inspect sqlnet ",
        "  inspect skinny  ",
        "  inspect sunrpc ",
        "  inspect xdmcp ",
        "  inspect sip  ",
        "  inspect netbios ",
        "  inspect tftp ",
        "  inspect ip-options ",
        "!",
    ]
)

# Spec §1.2, the 9.x guide's text of the hidden map.
DEFAULT_MAP_TEXT = """\
policy-map type inspect esmtp _default_esmtp_map
 description Default ESMTP policy-map
 parameters
  mask-banner
  no mail-relay
  no special-character
  no allow-tls
 match cmd line length gt 512
  drop-connection log
 match cmd RCPT count gt 100
  drop-connection log
 match body line length gt 998
  log
 match header line length gt 998
  drop-connection log
 match sender-address length gt 320
  drop-connection log
 match MIME filename length gt 255
  drop-connection log
 match ehlo-reply-parameter others
  mask
"""


def test_factory_sections_render_as_the_spec_shows() -> None:
    config = factory_config()
    assert render_policy_maps(config) == FACTORY_POLICY_MAPS
    assert render_class_maps(config) == (
        "!\nclass-map inspection_default\n match default-inspection-traffic\n!\n"
    )
    assert render_service_policies(config) == "service-policy global_policy global\n"


def test_every_inspect_line_keeps_its_trailing_blank() -> None:
    lines = [line for line in render_config(factory_config()).split("\n") if "inspect " in line]
    inspects = [line for line in lines if line.startswith("  inspect")]
    assert len(inspects) == 15
    assert all(line.endswith(" ") for line in inspects)
    assert "  inspect skinny  " in inspects and "  inspect sip  " in inspects


def test_hidden_default_map_renders_as_the_guide_prints_it() -> None:
    assert render_esmtp_map(default_esmtp_map(), show_all=True) == DEFAULT_MAP_TEXT
    # It stays hidden without "all", and shows with it.
    assert "_default_esmtp_map" not in render_policy_maps(factory_config())
    assert DEFAULT_MAP_TEXT in render_policy_maps(factory_config(), show_all=True)


def test_whole_config_is_framed_like_an_asa_config() -> None:
    text = render_config(factory_config())
    lines = text.splitlines()
    assert lines[:5] == [": Saved", ":", ": Serial Number: 9AX0SITEM01", lines[3], ":"]
    assert lines[5] == "ASA Version 9.12(4)"
    assert lines[-2].startswith("Cryptochecksum:") and len(lines[-2]) == len("Cryptochecksum:") + 32
    assert lines[-1] == ": end"
    assert (
        "class-map inspection_default\n match default-inspection-traffic\n!\n!\npolicy-map" in text
    )
    assert "service-policy global_policy global\nprompt hostname context \n" in text


def test_factory_text_round_trips() -> None:
    config = factory_config()
    text = render_config(config)
    assert parse_config(text) == config
    assert render_config(parse_config(text)) == text


def test_checksum_follows_the_content() -> None:
    config = factory_config()
    changed = factory_config()
    changed.policy_maps[0].classes[0].inspects.pop(6)
    assert render_config(config) != render_config(changed)
    first = render_config(config).splitlines()[-2]
    assert first == render_config(factory_config()).splitlines()[-2]
    assert first != render_config(changed).splitlines()[-2]


def test_custom_map_and_interface_policy_round_trip() -> None:
    config = factory_config("asa-fl")
    config.inspect_maps.append(
        EsmtpInspectMap(
            "ESMTP_ALLOW_TLS",
            description="lab map",
            allow_tls=True,
            allow_tls_log=True,
            mail_relay=("example.org", "log"),
            special_character="drop-connection",
            matches=[
                EsmtpMatch("ehlo-reply-parameter others", actions=["log"]),
                EsmtpMatch("cmd verb VRFY EXPN", negate=True, actions=["mask log"]),
            ],
        )
    )
    config.class_maps.append(ClassMap("ESMTP", ["port tcp eq 25"]))
    config.policy_maps.append(
        PolicyMap("DMZ_POLICY", [PolicyClass("ESMTP", [Inspect("esmtp", "ESMTP_ALLOW_TLS")])])
    )
    config.service_policies.append(ServicePolicy("DMZ_POLICY", "inside"))
    config.interfaces[0].shutdown = True
    config.interfaces[0].description = "to the Internet"
    config.call_home = "ask-later"
    text = render_config(config)
    assert " match not cmd verb VRFY EXPN\n  mask log\n" in text
    assert "service-policy DMZ_POLICY interface inside\n" in text
    assert parse_config(text) == config
    assert render_config(parse_config(text)) == text


def test_unknown_lines_are_kept_where_they_were() -> None:
    text = render_config(factory_config()).replace(
        # A UDP entry is not modelled (only tcp and ip are): it stays a verbatim line.
        "pager lines 24\n",
        "pager lines 24\naccess-list OUT extended permit udp any any eq 53\n",
    )
    again = render_config(parse_config(text))
    assert again.splitlines()[:-2] == text.splitlines()[:-2]  # all but the checksum


NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,12}", fullmatch=True)


@st.composite
def configs(draw: st.DrawFn) -> AsaConfig:
    config = factory_config(draw(NAMES), call_home=draw(st.sampled_from(["disabled", "enabled"])))
    klass = config.policy_maps[0].classes[0]
    keep = draw(st.lists(st.sampled_from(klass.inspects), unique_by=lambda i: i.protocol))
    klass.inspects = keep
    for name in draw(st.lists(NAMES, max_size=3, unique=True)):
        config.inspect_maps.append(
            EsmtpInspectMap(
                name,
                mask_banner=draw(st.booleans()),
                allow_tls=draw(st.booleans()),
                matches=[
                    EsmtpMatch(f"cmd line length gt {draw(st.integers(1, 9999))}", actions=["log"])
                ],
            )
        )
    return config


@settings(max_examples=40, deadline=None)
@given(configs())
def test_any_config_round_trips(config: AsaConfig) -> None:
    text = render_config(config)
    assert parse_config(text) == config
    assert render_config(parse_config(text)) == text


# --- the inspection a configuration implies ----------------------------------------------


def test_factory_config_inspects_tcp_25_with_the_default_map() -> None:
    assert esmtp_policy_for(factory_config()) == EsmtpPolicy()
    assert policy_from_map(default_esmtp_map()) == EsmtpPolicy()


def test_no_inspect_esmtp_turns_inspection_off() -> None:
    config = factory_config()
    klass = config.policy_maps[0].classes[0]
    klass.inspects = [i for i in klass.inspects if i.kind != "esmtp"]
    assert esmtp_policy_for(config) is None


def test_default_inspection_traffic_is_port_25_only() -> None:
    assert esmtp_inspection_for(factory_config(), port=587) is None


def test_custom_map_becomes_the_engine_policy() -> None:
    config = factory_config()
    config.inspect_maps.append(
        EsmtpInspectMap(
            "ESMTP_ALLOW_TLS",
            allow_tls=True,
            allow_tls_log=True,
            mail_relay=("example.org", "drop-connection"),
            matches=[
                EsmtpMatch("ehlo-reply-parameter others", actions=["log"]),
                EsmtpMatch("cmd RCPT count gt 5", actions=["reset log"]),
            ],
        )
    )
    klass = config.policy_maps[0].classes[0]
    klass.inspects = [
        Inspect("esmtp", "ESMTP_ALLOW_TLS") if i.kind == "esmtp" else i for i in klass.inspects
    ]
    policy = esmtp_policy_for(config, base=replace(EsmtpPolicy(), ehlo_mask_suffix="sequence"))
    assert policy is not None
    assert (policy.map_name, policy.mask_banner, policy.allow_tls) == (
        "ESMTP_ALLOW_TLS",
        False,
        True,
    )
    assert policy.allow_tls_log
    assert policy.ehlo_mask_suffix == "sequence"  # knobs a map cannot set come from the base
    assert policy.cmd_line_max is None  # a new map has no limits of its own
    assert policy.mail_relay == MailRelay("example.org", "drop-connection")
    assert policy.rcpt_max is not None and policy.rcpt_max.threshold == 5
    assert policy.rcpt_max.outcome.action == "reset" and policy.rcpt_max.outcome.class_id == 2
    (rule,) = policy.ehlo_rules
    assert rule.names == frozenset({"others"}) and rule.outcome.action == "log"


def test_interface_policy_wins_over_the_global_one() -> None:
    config = factory_config()
    config.class_maps.append(ClassMap("MAIL", ["port tcp eq smtp"]))
    config.policy_maps.append(PolicyMap("OUT_POLICY", [PolicyClass("MAIL", [Inspect("ftp")])]))
    config.service_policies.append(ServicePolicy("OUT_POLICY", "outside"))
    assert esmtp_inspection_for(config, interface="outside") is None
    assert esmtp_inspection_for(config, interface="inside") == Inspect("esmtp")


def test_access_list_classes_are_not_evaluated() -> None:
    config = AsaConfig(
        interfaces=[Interface("GigabitEthernet0/0", "outside", 0)],
        class_maps=[ClassMap("MAILHOSTS", ["access-list mail_hosts"])],
        policy_maps=[PolicyMap("P", [PolicyClass("MAILHOSTS", [Inspect("esmtp")])])],
        service_policies=[ServicePolicy("P")],
    )
    assert esmtp_policy_for(config) is None
