"""Access lists and packet-tracer on the ASA console: typed, shown, counted, saved, traced."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from sitemail.firewall.acl import Ace, AddressSpec, ace_hash
from sitemail.firewall.asa_cli import AsaCli, SaveStartupConfig, transcript
from sitemail.firewall.asa_cli_text import INVALID_INPUT
from sitemail.firewall.asa_config import factory_config, parse_config, render_config
from sitemail.firewall.asa_model import AsaConfig, Interface
from sitemail.firewall.packet_tracer import Egress
from sitemail.firewall.process import AsaDevice, egress_of
from sitemail.firewall.relay import Connection, Route

NY1, FL1 = "127.1.0.11", "127.2.0.11"
DENY_SMTP = "access-list outside_access_in extended deny tcp any host 127.2.0.11 eq smtp"
PERMIT_ALL = "access-list outside_access_in extended permit ip any any"
BIND = "access-group outside_access_in in interface outside"


def asa_fl() -> AsaConfig:
    """ASA-FL as the lab builds it: outside towards the tunnel, inside on FL's network."""
    return factory_config(
        "ASA-FL",
        [
            Interface("GigabitEthernet0/0", "outside", 0, None),
            Interface("GigabitEthernet0/1", "inside", 100, "127.2.0.1 255.255.0.0"),
        ],
    )


def console(config: AsaConfig | None = None, **kwargs: object) -> AsaCli:
    return AsaCli(config or asa_fl(), privileged=True, **kwargs)  # type: ignore[arg-type]


def outputs(cli: AsaCli, *lines: str) -> list[str]:
    return [cli.feed(line).output for line in lines]


def test_entries_and_groups_are_typed_shown_and_saved_like_the_rest() -> None:
    cli = console()
    out = outputs(
        cli,
        "conf t",
        "access-list outside_access_in extended deny tcp any host 127.2.0.11 eq 25",
        "access-list outside_access_in extended permit ip any any",
        "access-list outside_access_in line 1 remark no mail from the other site",
        "access-list outside_access_in extended permit tcp 127.1.0.0 255.255.0.0 eq 1025 "
        "host 127.2.0.11 eq https log",
        "access-group outside_access_in in interface outside",
    )
    assert out == [""] * 6
    assert cli.feed("show running-config access-list").output == (
        "access-list outside_access_in remark no mail from the other site\n"
        f"{DENY_SMTP}\n"
        f"{PERMIT_ALL}\n"
        "access-list outside_access_in extended permit tcp 127.1.0.0 255.255.0.0 eq 1025 "
        "host 127.2.0.11 eq https log\n"
    )
    assert cli.feed("sh run access-group").output == f"{BIND}\n"
    # The whole configuration puts them where a 9.x box has them, and reads back the same.
    text = render_config(cli.running)
    body = text.splitlines()
    assert body.index(DENY_SMTP) < body.index("pager lines 24")
    assert body.index("no arp permit-nonconnected") < body.index(BIND)
    assert body.index(BIND) < body.index("timeout xlate 3:00:00")
    assert parse_config(text).access_lists == cli.running.access_lists
    assert render_config(parse_config(text)) == text
    # wr me saves them with the rest.
    result = cli.feed("write memory")
    saved = next(e for e in result.effects if isinstance(e, SaveStartupConfig))
    assert f"{DENY_SMTP}\n" in saved.text and f"{BIND}\n" in saved.text


def test_no_forms_remove_lines_groups_and_lists() -> None:
    cli = console()
    outputs(cli, "conf t", DENY_SMTP, PERMIT_ALL, BIND)
    assert cli.feed("no access-list outside_access_in").output == (
        "ERROR: access-list outside_access_in is in use; remove the reference to it first\n"
    )
    assert cli.feed(f"no {DENY_SMTP}").output == ""
    assert cli.feed("show running-config access-list").output == f"{PERMIT_ALL}\n"
    assert cli.feed(f"no {DENY_SMTP}").output == (
        "ERROR: Specified access-list entry does not exist\n"
    )
    assert cli.feed(f"no {BIND}").output == ""
    assert cli.feed("show running-config access-group").output == ""
    assert cli.feed("no access-list outside_access_in").output == ""
    assert cli.running.access_lists == []
    assert "access-list outside_access_in" not in render_config(cli.running)


def test_refused_lines_say_why() -> None:
    cli = console()
    prompt = "ASA-FL(config)# "
    cli.feed("conf t")
    bad_mask = "access-list L extended permit tcp any 10.0.0.0 255.0.0.300 eq smtp"
    assert cli.feed(bad_mask).output == (
        " " * (len(prompt) + bad_mask.index("255.0.0.300")) + "^\n" + INVALID_INPUT
    )
    bad_port = "access-list L extended permit tcp any any eq bogus"
    assert cli.feed(bad_port).output == (
        " " * (len(prompt) + bad_port.index("bogus")) + "^\n" + INVALID_INPUT
    )
    assert cli.feed("access-list L extended permit ip 10.0.0.5 255.255.255.0 any").output == (
        "ERROR: IP address,mask <10.0.0.5,255.255.255.0> doesn't pair\n"
    )
    assert cli.feed("access-group L in interface outside").output == (
        "ERROR: access-list L does not exist\n"
    )
    cli.feed("access-list L remark only a remark")
    assert cli.feed("access-group L in interface outside").output == (
        "ERROR: access-list L has no entry; an access-group needs at least one\n"
    )
    cli.feed(PERMIT_ALL)
    unknown = "access-group outside_access_in in interface dmz"
    assert cli.feed(unknown).output == " " * (len(prompt) + unknown.index("dmz")) + "^\n" + (
        INVALID_INPUT
    )
    assert cli.feed(PERMIT_ALL).output == "WARNING: outside_access_in found duplicate element\n"
    udp = "access-list L extended permit udp any any eq 53"
    assert "is a real ASA command that sitemail does not emulate" in cli.feed(udp).output
    assert cli.running.access_group("outside") is None


def _connection(route: Route, client: str, port: int = 25) -> Connection:
    return Connection(route, port, client, 50123, FL1, port + 10000)


def test_show_access_list_counts_what_the_device_decided_and_clear_resets(tmp_path: Path) -> None:
    box = AsaDevice(tmp_path, "ASA-FL", asa_fl().interfaces)
    box.boot()
    _, cli = box.open_session()
    outputs(cli, "conf t", DENY_SMTP, PERMIT_ALL, BIND, "end")
    route = Route("127.2.101.11", FL1, ((10025, 25),), client_interface="outside")
    refusals = [box.admit(_connection(route, NY1)) for _ in range(3)]
    assert box.admit(_connection(route, NY1, 443)) is None
    deny_hash = ace_hash("outside_access_in", cli.running.access_lists[0].aces[0])
    assert [r.syslog if r else None for r in refusals] == [
        f"%ASA-4-106023: Deny tcp src outside:{NY1}/50123 dst inside:{FL1}/25 by access-group "
        f'"outside_access_in" [{deny_hash}, 0x0]'
    ] * 3
    report = cli.feed("show access-list").output
    assert report == (
        "access-list cached ACL log flows: total 0, denied 0 (deny-flow-max 4096)\n"
        "            alert-interval 300\n"
        "access-list outside_access_in; 2 elements; name hash: 0x41012839\n"
        f"access-list outside_access_in line 1 extended deny tcp any host {FL1} eq smtp "
        f"(hitcnt=3) {deny_hash}\n"
        "access-list outside_access_in line 2 extended permit ip any any (hitcnt=1) 0x0c073fe6\n"
    )
    assert cli.feed("show access-list outside_access_in").output == report
    assert (
        cli.feed("show access-list nothing").output == "ERROR: access-list nothing does not exist\n"
    )
    assert cli.feed("clear access-list outside_access_in counters").output == ""
    assert "(hitcnt=3)" not in cli.feed("show access-list").output
    assert cli.feed("show access-list").output.count("(hitcnt=0)") == 2
    # No access group on inside: traffic entering there passes, no count, no syslog.
    inside = Route("127.2.0.1", NY1, ((10025, 25),), client_interface="inside")
    assert box.admit(_connection(inside, FL1)) is None


def test_implicit_deny_is_logged_with_no_entry_hash(tmp_path: Path) -> None:
    box = AsaDevice(tmp_path, "ASA-FL", asa_fl().interfaces)
    box.boot()
    _, cli = box.open_session()
    outputs(
        cli,
        "conf t",
        "access-list OUT extended permit tcp any any eq https",
        "access-group OUT in interface outside",
    )
    route = Route("127.2.101.11", FL1, ((10025, 25),), client_interface="outside")
    refusal = box.admit(_connection(route, NY1))
    assert refusal is not None
    assert refusal.syslog.endswith('by access-group "OUT" [0x0, 0x0]')


# --- packet-tracer --------------------------------------------------------------------------

ROUTE = """
Phase: 1
Type: ROUTE-LOOKUP
Subtype: Resolve Egress Interface
Result: ALLOW
Config:
Additional Information:
found next-hop 127.2.0.11 using egress ifc  inside
"""
RESULT = """
Result:
input-interface: outside
input-status: up
input-line-status: up
output-interface: inside
output-status: up
output-line-status: up
"""


def test_packet_tracer_allows_and_shows_the_esmtp_inspection() -> None:
    cli = console()
    assert cli.feed("packet-tracer input outside tcp 127.1.0.11 50123 127.2.0.11 smtp").output == (
        ROUTE
        + """
Phase: 2
Type: ACCESS-LIST
Subtype:
Result: ALLOW
Config:
Implicit Rule
Additional Information:

Phase: 3
Type: INSPECT
Subtype: inspect-smtp
Result: ALLOW
Config:
class-map inspection_default
 match default-inspection-traffic
policy-map global_policy
 class inspection_default
  inspect esmtp _default_esmtp_map
service-policy global_policy global
Additional Information:

Phase: 4
Type: FLOW-CREATION
Subtype:
Result: ALLOW
Config:
Additional Information:
New flow created with id 1, packet dispatched to next module
"""
        + RESULT
        + "Action: allow\n"
    )
    # With inspection off there is no INSPECT phase.
    outputs(cli, "conf t", "policy-map global_policy", "class inspection_default")
    outputs(cli, "no inspect esmtp", "end")
    traced = cli.feed("packet-tracer input outside tcp 127.1.0.11 50123 127.2.0.11 25").output
    assert "Type: INSPECT" not in traced
    assert "Phase: 3\nType: FLOW-CREATION\n" in traced
    assert "New flow created with id 2," in traced


def test_packet_tracer_names_the_denying_line() -> None:
    cli = console()
    outputs(cli, "conf t", DENY_SMTP, PERMIT_ALL, BIND, "end")
    assert cli.feed("packet-tracer input outside tcp 127.1.0.11 50123 127.2.0.11 25").output == (
        ROUTE
        + f"""
Phase: 2
Type: ACCESS-LIST
Subtype: log
Result: DROP
Config:
{BIND}
{DENY_SMTP}
Additional Information:
"""
        + RESULT
        + "Action: drop\nDrop-reason: (acl-drop) Flow is denied by configured rule\n"
    )
    https = cli.feed("packet-tracer input outside tcp 127.1.0.11 50123 127.2.0.11 443 detailed")
    assert f"Config:\n{BIND}\n{PERMIT_ALL}\nAdditional Information:\n" in https.output
    assert "        src ip/id=0.0.0.0, mask=0.0.0.0, port=0, tag=any\n" in https.output
    assert "Type: INSPECT" not in https.output and https.output.endswith("Action: allow\n")


def test_packet_tracer_implicit_deny_and_detailed_rule() -> None:
    cli = console()
    outputs(cli, "conf t", "access-list OUT extended permit tcp any any eq https")
    outputs(cli, "access-group OUT in interface outside", "end")
    traced = cli.feed("packet-tracer input outside tcp 127.1.0.11 50123 127.2.0.11 25 detailed")
    assert (
        "Phase: 2\nType: ACCESS-LIST\nSubtype:\nResult: DROP\nConfig:\nImplicit Rule\n"
        "Additional Information:\n Forward Flow based lookup yields rule:\n"
        " in  id=0x0, priority=11, domain=permit, deny=true\n"
    ) in traced.output
    assert traced.output.endswith(
        "Action: drop\nDrop-reason: (acl-drop) Flow is denied by configured rule\n"
    )


def test_packet_tracer_routes_through_the_relays_and_refuses_bad_words() -> None:
    route = Route("127.1.2.11", "127.2.101.11", ((10025, 25),), "", "inside", "outside", FL1)
    egress = egress_of([route])
    assert egress == [Egress(IPv4Network(f"{FL1}/32"), "outside", "127.2.101.11")]
    ny = factory_config(
        "ASA-NY",
        [
            Interface("GigabitEthernet0/0", "outside", 0, None),
            Interface("GigabitEthernet0/1", "inside", 100, "127.1.0.1 255.255.0.0"),
        ],
    )
    cli = console(ny, egress=egress)
    traced = cli.feed("packet-tracer input inside tcp 127.1.0.11 50123 127.2.0.11 25").output
    assert "found next-hop 127.2.101.11 using egress ifc  outside\n" in traced
    assert "output-interface: outside\n" in traced and traced.endswith("Action: allow\n")
    nowhere = cli.feed("packet-tracer input inside tcp 127.1.0.11 50123 10.9.9.9 25").output
    assert nowhere.endswith(
        "output-interface: NP Identity Ifc\noutput-status: down\noutput-line-status: down\n"
        "Action: drop\nDrop-reason: (no-route) No route to host\n"
    )
    assert cli.feed("packet-tracer input dmz tcp 127.1.0.11 1 127.2.0.11 25").output == (
        "ERROR: 'dmz' is not a valid interface name (nameif)\n"
    )
    line = "packet-tracer input inside tcp 127.1.0.300 1 127.2.0.11 25"
    assert cli.feed(line).output == (
        " " * (len("ASA-NY# ") + line.index("127.1.0.300")) + "^\n" + INVALID_INPUT
    )
    line = "packet-tracer input inside tcp 127.1.0.11 1 127.2.0.11 99999"
    assert cli.feed(line).output.startswith(" " * (len("ASA-NY# ") + line.index("99999")) + "^")


@pytest.mark.parametrize(
    "line",
    [
        "access-list L extended permit tcp any any",
        "access-list L extended deny ip host 10.1.1.1 10.2.0.0 255.255.0.0 log",
        "access-list L extended permit tcp any4 eq smtp any eq 587",
        "access-list L remark free text, with words and 1.2.3.4",
    ],
)
def test_a_saved_line_reads_back_as_the_same_entry(line: str) -> None:
    cli = console()
    outputs(cli, "conf t", line)
    text = render_config(cli.running)
    assert f"{line}\n" in text
    again = parse_config(text)
    assert again.access_lists == cli.running.access_lists
    entry = again.access_lists[0].entries[0]
    if isinstance(entry, Ace):
        assert entry.source in (
            AddressSpec("any"),
            AddressSpec("any4"),
            AddressSpec("host", "10.1.1.1"),
        )


def test_the_console_transcript_reads_as_on_the_box() -> None:
    cli = console()
    shown = transcript(cli, ["conf t", DENY_SMTP, BIND, "exit"])
    assert shown == (
        "ASA-FL# conf t\n"
        f"ASA-FL(config)# {DENY_SMTP}\n"
        f"ASA-FL(config)# {BIND}\n"
        "ASA-FL(config)# exit\n"
        "ASA-FL# "
    )
