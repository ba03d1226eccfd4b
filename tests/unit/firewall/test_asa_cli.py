"""The ASA console: the transcripts of spec §3 and the seed, errors, saving and reloading."""

from __future__ import annotations

import re

import pytest

from sitemail.firewall.asa_cli import (
    AsaCli,
    CliSettings,
    Logout,
    Mode,
    Reload,
    RunningConfigChanged,
    SaveStartupConfig,
    transcript,
)
from sitemail.firewall.asa_cli_input import MAX_HOSTNAME, MAX_NAME, terminal_safe
from sitemail.firewall.asa_cli_text import INVALID_INPUT
from sitemail.firewall.asa_config import (
    esmtp_policy_for,
    factory_config,
    parse_config,
    render_config,
)
from sitemail.firewall.counters import InspectCounters
from sitemail.firewall.esmtp_policy import EsmtpPolicy
from sitemail.firewall.inspection import EsmtpInspector, PassThrough, ToClient, make_inspector

# Spec §3.1, verbatim but for the trailing blank of the checksum line (checked by
# CHECKSUM_LINE); "..." stands for lines the spec leaves out.
SPEC_3_1 = """\
ciscoasa> enable
Password: ********
ciscoasa# configure terminal
ciscoasa(config)#

***************************** NOTICE *****************************
...
Would you like to enable anonymous error reporting to help improve
the product? [Y]es, [N]o, [A]sk later: N
...

ciscoasa(config)# policy-map global_policy
ciscoasa(config-pmap)# class inspection_default
ciscoasa(config-pmap-c)# no inspect esmtp
ciscoasa(config-pmap-c)# exit
ciscoasa(config-pmap)# exit
ciscoasa(config)# exit
ciscoasa# write memory
Building configuration...
Cryptochecksum: 4b86b1e4 2e731d6b 9d1fc491 a5eae0f3

6854 bytes copied in 1.20 secs (6854 bytes/sec)
[OK]
ciscoasa#
"""

CHECKSUM_LINE = re.compile(r"Cryptochecksum: [0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{8} [0-9a-f]{8} $")
COPIED_LINE = re.compile(r"(\d+) bytes copied in 1\.20 secs \(\1 bytes/sec\)$")


def same_line(expected: str, seen: str) -> bool:
    # The checksum and size depend on the configuration, not on the CLI.
    if expected.startswith("Cryptochecksum: "):
        return bool(CHECKSUM_LINE.match(seen))
    if "bytes copied in" in expected:
        return bool(COPIED_LINE.match(seen))
    return expected.rstrip() == seen.rstrip()


def matches_with_gaps(expected: list[str], seen: list[str]) -> bool:
    """Line for line, where an expected "..." stands for one or more seen lines."""
    if not expected:
        return not seen
    if expected[0] == "...":
        return any(matches_with_gaps(expected[1:], seen[n:]) for n in range(1, len(seen) + 1))
    return (
        bool(seen) and same_line(expected[0], seen[0]) and matches_with_gaps(expected[1:], seen[1:])
    )


def test_spec_3_1_transcript_line_for_line() -> None:
    cli = AsaCli(
        factory_config(call_home="unanswered"), settings=CliSettings(enable_password="s3cret!!")
    )
    typed = ["enable", "s3cret!!", "configure terminal", "N", "policy-map global_policy"]
    typed += ["class inspection_default", "no inspect esmtp", "exit", "exit", "exit"]
    typed += ["write memory"]
    seen = transcript(cli, typed)
    assert matches_with_gaps(SPEC_3_1.splitlines(), seen.splitlines()), seen
    assert any(CHECKSUM_LINE.match(line) for line in seen.splitlines())
    assert "s3cret" not in seen
    assert cli.running.call_home == "disabled"
    assert esmtp_policy_for(cli.running) is None
    assert not cli.unsaved_changes


def test_seed_steps_from_the_privileged_prompt() -> None:
    # The seed's lines, typed at "CiscoASA#" (seed lines 56-63).
    cli = AsaCli(factory_config("CiscoASA"), privileged=True)
    assert esmtp_policy_for(cli.running) == EsmtpPolicy()
    seed = [
        ("CiscoASA# ", "config t"),
        ("CiscoASA(config)# ", "policy-map global_policy"),
        ("CiscoASA(config-pmap)# ", "class inspection_default"),
        ("CiscoASA(config-pmap-c)# ", "no inspect esmtp"),
        ("CiscoASA(config-pmap-c)# ", "exit"),
        ("CiscoASA(config-pmap)# ", "exit"),
        ("CiscoASA(config)# ", "exit"),
        ("CiscoASA# ", "wr me"),
    ]
    effects = []
    for prompt, line in seed:
        assert cli.prompt == prompt
        result = cli.feed(line)
        effects += result.effects
        if line != "wr me":
            assert result.output == ""
    assert result.output.startswith("Building configuration...\nCryptochecksum: ")
    assert result.output.endswith("[OK]\n")
    assert cli.prompt == "CiscoASA# "
    assert RunningConfigChanged() in effects
    saved = [e for e in effects if isinstance(e, SaveStartupConfig)]
    assert len(saved) == 1
    # What was saved has inspection off, and comes back that way after a restart.
    assert esmtp_policy_for(parse_config(saved[0].text)) is None
    assert "inspect esmtp" not in saved[0].text


def test_show_running_config_policy_map_after_the_change() -> None:
    cli = AsaCli(privileged=True)
    cli.feed_lines(["conf t", "policy-map global_policy", "class inspection_default"])
    cli.feed_lines(["no inspect esmtp", "end"])
    shown = cli.feed("show running-config policy-map").output
    assert shown.startswith("!\npolicy-map type inspect dns preset_dns_map\n")
    assert "  inspect ftp \n" in shown and "esmtp" not in shown
    assert shown.endswith("  inspect ip-options \n!\n")


def test_spec_3_3_custom_map_prompts_and_result() -> None:
    cli = AsaCli(privileged=True)
    steps = [
        ("configure terminal", "ciscoasa(config)# "),
        ("policy-map type inspect esmtp ESMTP_ALLOW_TLS", "ciscoasa(config-pmap)# "),
        ("parameters", "ciscoasa(config-pmap-p)# "),
        ("no mask-banner", "ciscoasa(config-pmap-p)# "),
        ("allow-tls action log", "ciscoasa(config-pmap-p)# "),
        ("exit", "ciscoasa(config-pmap)# "),
        ("match ehlo-reply-parameter others", "ciscoasa(config-pmap-c)# "),
        ("log", "ciscoasa(config-pmap-c)# "),
        ("exit", "ciscoasa(config-pmap)# "),
        ("exit", "ciscoasa(config)# "),
        ("policy-map global_policy", "ciscoasa(config-pmap)# "),
        ("class inspection_default", "ciscoasa(config-pmap-c)# "),
        ("no inspect esmtp", "ciscoasa(config-pmap-c)# "),
        ("inspect esmtp ESMTP_ALLOW_TLS", "ciscoasa(config-pmap-c)# "),
        ("end", "ciscoasa# "),
    ]
    for line, prompt in steps:
        result = cli.feed(line)
        assert (result.output, result.prompt) == ("", prompt), line
    policy = esmtp_policy_for(cli.running)
    assert policy is not None
    assert (policy.map_name, policy.mask_banner, policy.allow_tls, policy.allow_tls_log) == (
        "ESMTP_ALLOW_TLS",
        False,
        True,
        True,
    )
    shown = cli.feed("show running-config policy-map type inspect esmtp").output
    assert shown == (
        "!\npolicy-map type inspect esmtp ESMTP_ALLOW_TLS\n parameters\n  allow-tls action log\n"
        " match ehlo-reply-parameter others\n  log\n!\n"
    )


def test_changing_the_map_needs_no_inspect_first() -> None:
    cli = AsaCli(privileged=True)
    cli.feed_lines(["conf t", "policy-map type inspect esmtp M", "exit"])
    cli.feed_lines(["policy-map global_policy", "class inspection_default"])
    refused = cli.feed("inspect esmtp M")
    assert refused.output.startswith("ERROR: Inspect configuration of this type exists")
    assert cli.feed("inspect esmtp").output == ""  # the same line again is fine
    assert cli.feed("inspect esmtp NOSUCH").output.startswith("ERROR: policy-map NOSUCH")


def test_inspect_smtp_is_turned_into_esmtp() -> None:
    cli = AsaCli(privileged=True)
    cli.feed_lines(["conf t", "policy-map global_policy", "class inspection_default"])
    cli.feed("no inspect esmtp")
    assert esmtp_policy_for(cli.running) is None
    cli.feed("inspect smtp")
    assert "  inspect esmtp \n" in cli.feed("show running-config policy-map").output
    assert esmtp_policy_for(cli.running) == EsmtpPolicy()


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "caret_column"),
    [
        ("shwo running-config", 10),
        ("show running-config policy-mapp", 30),
        ("show running-config foo", 30),
        ("configure terminall", 20),
    ],
)
def test_invalid_input_marker_points_at_the_bad_word(line: str, caret_column: int) -> None:
    cli = AsaCli(privileged=True)
    output = cli.feed(line).output
    assert output == " " * caret_column + "^\nERROR: % Invalid input detected at '^' marker.\n"
    assert cli.prompt == "ciscoasa# "


def test_marker_counts_the_longer_prompt_of_sub_modes() -> None:
    cli = AsaCli(privileged=True)
    cli.feed_lines(["conf t", "policy-map type inspect esmtp M", "match cmd line length gt big"])
    # "ciscoasa(config-pmap)# " is 23 wide; "big" starts at column 25 of the line.
    assert cli.feed("match cmd line length gt big").output.startswith(" " * 48 + "^\n")
    assert cli.feed("match ehlo-reply-parameter others starttls").output.startswith(
        " " * (23 + 34) + "^\n"
    )


def test_incomplete_and_ambiguous_commands() -> None:
    cli = AsaCli(privileged=True)
    assert cli.feed("configure").output == "ERROR: % Incomplete command\n"
    assert cli.feed("c t").output.startswith("ERROR: % Ambiguous command")
    assert cli.prompt == "ciscoasa# "


def test_mask_is_only_for_ehlo_parameters_and_verbs() -> None:
    cli = AsaCli(privileged=True)
    cli.feed_lines(["conf t", "policy-map type inspect esmtp M", "match cmd line length gt 100"])
    assert "Invalid input" in cli.feed("mask").output
    assert cli.feed("reset log").output == ""
    cli.feed("match ehlo-reply-parameter auth")
    assert cli.feed("mask log").output == ""
    policy = cli.running.esmtp_map("M")
    assert policy is not None
    assert [(m.criterion, m.actions) for m in policy.matches] == [
        ("cmd line length gt 100", ["reset log"]),
        ("ehlo-reply-parameter auth", ["mask log"]),
    ]


def test_real_commands_that_are_not_emulated_say_so() -> None:
    cli = AsaCli(privileged=True)
    output = cli.feed("copy running-config startup-config").output
    assert output.startswith("ERROR: % 'copy running-config startup-config' is a real ASA command")
    assert "write memory" in output


# --- modes, abbreviations, prompts ------------------------------------------------------------


def test_abbreviations_the_asa_accepts() -> None:
    cli = AsaCli(privileged=True)
    assert cli.feed("conf t").prompt == "ciscoasa(config)# "
    assert cli.feed("policy-m global_policy").prompt == "ciscoasa(config-pmap)# "
    assert cli.feed("cl inspection_default").prompt == "ciscoasa(config-pmap-c)# "
    assert cli.feed("no insp esmtp").output == ""
    assert "inspect esmtp" not in cli.feed("sh run pol").output
    assert cli.feed("wr").output.endswith("[OK]\n")


def test_parent_mode_commands_work_from_a_sub_mode() -> None:
    cli = AsaCli(privileged=True)
    cli.feed_lines(["conf t", "policy-map global_policy", "class inspection_default"])
    # "policy-map" is a global command: typing it in config-pmap-c leaves the class.
    assert cli.feed("policy-map type inspect esmtp M").prompt == "ciscoasa(config-pmap)# "
    cli.feed_lines(["match cmd line length gt 100", "log"])
    assert cli.feed("match cmd RCPT count gt 5").prompt == "ciscoasa(config-pmap-c)# "
    assert cli.feed("show running-config hostname").output == "hostname ciscoasa\n"
    assert cli.mode is Mode.ESMTP_MATCH  # show does not leave the mode


def test_enable_with_a_wrong_password_then_logout() -> None:
    cli = AsaCli(settings=CliSettings(enable_password="pw"))
    assert cli.feed("enable").prompt == "Password: "
    wrong = cli.feed("nope")
    assert (wrong.echo, wrong.output, wrong.prompt) == ("****", "Invalid password\n", "Password: ")
    cli.feed("nope")
    assert cli.feed("nope").prompt == "ciscoasa> "  # three tries, back to user mode
    cli.feed("enable")
    assert cli.feed("pw").prompt == "ciscoasa# "
    assert cli.feed("disable").prompt == "ciscoasa> "
    bye = cli.feed("exit")
    assert bye.output == "\nLogoff\n\n" and Logout() in bye.effects


def test_factory_box_has_no_enable_password() -> None:
    cli = AsaCli()
    assert cli.feed("enable").prompt == "Password: "
    assert cli.feed("").prompt == "ciscoasa# "


def test_call_home_answers() -> None:
    for answer, state, first in [("Y", "enabled", "Enabling"), ("a", "ask-later", "")]:
        cli = AsaCli(factory_config(call_home="unanswered"), privileged=True)
        cli.feed("conf t")
        assert cli.feed("maybe").prompt == "the product? [Y]es, [N]o, [A]sk later: "
        assert cli.feed(answer).output.startswith(f"\n{first}")
        assert cli.running.call_home == state
        assert cli.prompt == "ciscoasa(config)# "
        assert cli.feed("exit").prompt == "ciscoasa# "
        assert cli.feed("conf t").output == ""  # asked once only


def test_hostname_changes_the_prompt() -> None:
    cli = AsaCli(privileged=True)
    cli.feed("conf t")
    assert cli.feed("hostname ASA-NY").prompt == "ASA-NY(config)# "


def test_interface_settings() -> None:
    cli = AsaCli(privileged=True)
    cli.feed("conf t")
    assert cli.feed("interface GigabitEthernet1/2").prompt == "ciscoasa(config-if)# "
    cli.feed_lines(["ip address 127.0.10.1 255.255.255.0", "security-level 90", "no shutdown"])
    assert "Invalid input" in cli.feed("security-level 101").output
    interface = cli.running.interface("GigabitEthernet1/2")
    assert interface is not None
    assert interface.address == ("127.0.10.1", "255.255.255.0")
    assert interface.security_level == 90
    shown = cli.feed("show running-config interface GigabitEthernet1/2").output
    assert " ip address 127.0.10.1 255.255.255.0\n" in shown
    assert "Invalid input" in cli.feed("interface Nope0/9").output


# --- show service-policy ----------------------------------------------------------------------

SPEC_3_2_BEFORE = (
    "Global policy:\n"
    "  Service-policy: global_policy\n"
    "    Class-map: inspection_default\n"
    "      Inspect: esmtp _default_esmtp_map, packet 0, lock fail 0, drop 0, reset-drop 0, "
    "5-min-pkt-rate 0 pkts/sec, v6-fail-close 0 sctp-drop-override 0\n"
)


DEFAULT_MAP_FIGURES = (
    "        mask-banner, count {banner}\n"
    "        match cmd line length gt 512\n"
    "          drop-connection log, packet 0\n"
    "        match cmd RCPT count gt 100\n"
    "          drop-connection log, packet 0\n"
    "        match body line length gt 998\n"
    "          log, packet 0\n"
    "        match header line length gt 998\n"
    "          drop-connection log, packet 0\n"
    "        match sender-address length gt 320\n"
    "          drop-connection log, packet 0\n"
    "        match MIME filename length gt 255\n"
    "          drop-connection log, packet 0\n"
    "        match ehlo-reply-parameter others\n"
    "          mask, packet {ehlo}\n"
)


def test_show_service_policy_inspect_esmtp_counts_what_the_engine_did() -> None:
    counters = {"esmtp": InspectCounters()}
    cli = AsaCli(privileged=True, counters=counters)
    engine = EsmtpInspector(counters=counters["esmtp"])
    engine.feed_server(b"220 mx ESMTP\r\n")
    engine.feed_client(b"EHLO a\r\n")
    engine.feed_server(b"250-mx\r\n250-X-EXPS GSSAPI\r\n250 STARTTLS\r\n")
    shown = cli.feed("show service-policy inspect esmtp").output
    # STARTTLS goes by no-allow-tls, X-EXPS by the "others" rule (class 7).
    assert shown.endswith(DEFAULT_MAP_FIGURES.format(banner=1, ehlo=1)), shown
    assert "Inspect: esmtp _default_esmtp_map, packet 3, lock fail 0" in shown
    assert cli.feed("clear service-policy").output == ""
    shown = cli.feed("show service-policy inspect esmtp").output
    assert shown == SPEC_3_2_BEFORE + DEFAULT_MAP_FIGURES.format(banner=0, ehlo=0)


def test_show_service_policy_inspect_esmtp_before_and_after() -> None:
    counters = {"esmtp": InspectCounters()}
    cli = AsaCli(privileged=True, counters=counters)
    before = SPEC_3_2_BEFORE + DEFAULT_MAP_FIGURES.format(banner=0, ehlo=0)
    assert cli.feed("show service-policy inspect esmtp").output == before
    counters["esmtp"].packet = 96716502
    counters["esmtp"].lock_fail = 7
    counters["esmtp"].drop = 25
    shown = cli.feed("sh service-policy global inspect esmtp").output
    assert "Inspect: esmtp _default_esmtp_map, packet 96716502, lock fail 7, drop 25," in shown
    cli.feed_lines(["conf t", "policy-map global_policy", "class inspection_default"])
    cli.feed_lines(["no inspect esmtp", "end"])
    after = cli.feed("show service-policy inspect esmtp").output
    assert after == "Global policy:\n  Service-policy: global_policy\n"


def test_short_service_policy_format() -> None:
    cli = AsaCli(privileged=True, settings=CliSettings(long_service_policy_format=False))
    assert cli.feed("show service-policy inspect esmtp").output.endswith(
        "Inspect: esmtp _default_esmtp_map, packet 0, lock fail 0, drop 0, reset-drop 0\n"
        + DEFAULT_MAP_FIGURES.format(banner=0, ehlo=0)
    )


def test_full_service_policy_lists_every_inspection() -> None:
    shown = AsaCli(privileged=True).feed("show service-policy").output
    assert shown.count("      Inspect: ") == 15
    assert "      Inspect: sip , packet 0" in shown
    assert "      Inspect: h323 h225 _default_h323_map, packet 0" in shown


# --- saving and reloading ---------------------------------------------------------------------


def turn_off(cli: AsaCli) -> None:
    cli.feed_lines(["conf t", "policy-map global_policy", "class inspection_default"])
    cli.feed_lines(["no inspect esmtp", "end"])


def test_unsaved_change_is_lost_on_reload_without_saving() -> None:
    cli = AsaCli(privileged=True)
    turn_off(cli)
    assert cli.unsaved_changes
    assert "inspect esmtp" in cli.feed("show startup-config").output
    assert "inspect esmtp" not in cli.feed("show running-config").output
    assert cli.feed("reload").prompt == "System config has been modified. Save? [Y]es/[N]o: "
    assert cli.feed("N").prompt == "Proceed with reload? [confirm]"
    result = cli.feed("")
    assert Reload() in result.effects
    assert "START GRACEFUL SHUTDOWN" in result.output
    assert result.prompt == "ciscoasa> "
    assert esmtp_policy_for(cli.running) == EsmtpPolicy()  # back from the startup-config


def test_reload_can_save_first() -> None:
    cli = AsaCli(privileged=True)
    turn_off(cli)
    cli.feed("reload")
    saved = cli.feed("Y")
    assert saved.output.startswith("Cryptochecksum: ")
    assert any(isinstance(e, SaveStartupConfig) for e in saved.effects)
    cli.feed("")
    assert esmtp_policy_for(cli.running) is None


def test_reload_can_be_cancelled_and_needs_no_save_when_saved() -> None:
    cli = AsaCli(privileged=True)
    assert cli.feed("reload").prompt == "Proceed with reload? [confirm]"
    result = cli.feed("n")
    assert result.effects == () and result.prompt == "ciscoasa# "


def test_a_box_without_startup_config_reloads_to_factory() -> None:
    cli = AsaCli(startup="", privileged=True)
    assert cli.unsaved_changes
    assert cli.feed("show startup-config").output == ""
    cli.feed("reload")
    cli.feed("n")
    cli.feed("")
    assert esmtp_policy_for(cli.running) == EsmtpPolicy()


def test_policy_from_the_cli_drives_the_engine() -> None:
    cli = AsaCli(privileged=True)
    banner = b"220 mx.example.org ESMTP\r\n"
    before = make_inspector(esmtp_policy_for(cli.running))
    assert before.feed_server(banner) == [ToClient(b"220 " + b"*" * 20 + b"\r\n")]
    turn_off(cli)
    after = make_inspector(esmtp_policy_for(cli.running))
    assert isinstance(after, PassThrough)
    assert after.feed_server(banner) == [ToClient(banner)]


# ------------------------------------------------------------------ what the console accepts


def configuring() -> AsaCli:
    cli = AsaCli(privileged=True)
    cli.feed("conf t")
    return cli


def refused_at(cli: AsaCli, line: str, column: int) -> None:
    """``line`` is refused with the ASA's marker under ``column`` and changes nothing."""
    prompt = cli.prompt
    before = render_config(cli.running)
    result = cli.feed(line)
    assert result.output == " " * (len(prompt) + column) + "^\n" + INVALID_INPUT
    assert not any(isinstance(e, RunningConfigChanged) for e in result.effects)
    assert render_config(cli.running) == before
    assert result.prompt == prompt


def test_a_hostname_of_at_most_63_letters_digits_and_hyphens_is_taken() -> None:
    cli = configuring()
    name = "A" + "-b2" * 20 + "z"  # 62
    assert cli.feed(f"hostname {name}").output == ""
    assert cli.feed(f"hostname {name}0").prompt == f"{name}0(config)# "  # 63
    assert len(cli.running.hostname) == MAX_HOSTNAME


@pytest.mark.parametrize(
    "name",
    ["a" * (MAX_HOSTNAME + 1), "x" * 100_000, "-asa", "asa-", "asa_ny", "asa.ny", "as;a"],
)
def test_a_hostname_past_the_asas_limits_is_refused(name: str) -> None:
    cli = configuring()
    refused_at(cli, f"hostname {name}", len("hostname "))
    assert cli.running.hostname == "ciscoasa"


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("policy-map " + "p" * (MAX_NAME + 1), len("policy-map ")),
        ("policy-map " + "p" * 5000, len("policy-map ")),
        (
            "policy-map type inspect esmtp " + "m" * (MAX_NAME + 1),
            len("policy-map type inspect esmtp "),
        ),
        ("class-map " + "c" * (MAX_NAME + 1), len("class-map ")),
        ("service-policy " + "s" * (MAX_NAME + 1) + " global", len("service-policy ")),
        ("no policy-map " + "p" * (MAX_NAME + 1), len("no policy-map ")),
    ],
)
def test_names_longer_than_40_characters_are_refused(line: str, column: int) -> None:
    cli = configuring()
    refused_at(cli, line, column)
    assert cli.prompt == "ciscoasa(config)# "


def test_names_of_40_characters_are_taken_and_long_ones_in_sub_modes_refused() -> None:
    cli = configuring()
    name = "n" * MAX_NAME
    assert cli.feed(f"class-map {name}").prompt == "ciscoasa(config-cmap)# "
    refused_at(cli, "match access-list " + "a" * (MAX_NAME + 1), len("match access-list "))
    cli.feed("exit")
    assert cli.feed(f"policy-map {name}").prompt == "ciscoasa(config-pmap)# "
    refused_at(cli, "class " + "c" * (MAX_NAME + 1), len("class "))
    assert f"policy-map {name}\n" in cli.feed("show running-config policy-map").output


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("hostname evil\x1b[2Jasa", len("hostname evil")),
        ("policy-map bad\x07name", len("policy-map bad")),
        ("class-map a\rb", len("class-map a")),
        ("policy-map na\u009bme", len("policy-map na")),  # C1 CSI
        ("policy-map caf\u00e9", len("policy-map caf")),
        ("policy-map a\u202eb", len("policy-map a")),  # bidirectional override
        ("shwo\x1b[31m", len("shwo")),  # the character comes first, whatever the command
    ],
)
def test_lines_with_control_or_non_ascii_characters_are_refused(line: str, column: int) -> None:
    cli = configuring()
    refused_at(cli, line, column)
    assert cli.feed("show running-config").output.isascii()


def test_no_control_character_reaches_the_terminal() -> None:
    cli = configuring()
    for line in ["hostname a\x1b]0;pwned\x07b", "policy-map x\x1b[2J", "bogus\x1b[1m word\x00"]:
        result = cli.feed(line)
        for text in (result.echo, result.prompt, result.output.replace("\n", "")):
            assert all(" " <= c <= "~" for c in text), repr(text)
    assert cli.feed("policy-map x\x1b[2J").echo == "policy-map x\\x1b[2J"
    # Not even from a startup-config written elsewhere: the prompt shows an escape.
    loaded = AsaCli(parse_config("hostname evil\x1b[2J\n"), privileged=True)
    assert "\x1b" not in loaded.prompt and "\x1b" not in loaded.feed("show running-config").output


def test_output_keeps_its_line_ends_and_tabs_and_escapes_the_rest() -> None:
    # show capture NAME dump separates offset, hex and text with tabs, as the ASA does.
    row = "0x0030\t 7210 eb85 0000 3232 3020 2a2a 2a2a 2a2a \tr.....220 ******\n"
    assert terminal_safe(row, lines=True) == row
    assert terminal_safe("a\tb\x1b[2J\r\n", lines=True) == "a\tb\\x1b[2J\\x0d\n"
    assert terminal_safe("a\tb\n") == "a\\x09b\\x0a"  # one line (an echo): nothing passes


def test_a_tab_counts_as_a_space() -> None:
    cli = configuring()
    assert cli.feed("hostname\tASA-NY").prompt == "ASA-NY(config)# "


def test_a_refused_line_is_not_saved() -> None:
    cli = configuring()
    cli.feed("policy-map " + "p" * 5000)
    cli.feed("hostname " + "h" * 100_000)
    saved = [e for e in cli.feed("write memory").effects if isinstance(e, SaveStartupConfig)]
    assert (
        saved
        and "p" * (MAX_NAME + 1) not in saved[0].text
        and "hostname ciscoasa\n" in saved[0].text
    )
