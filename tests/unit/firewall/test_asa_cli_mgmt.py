"""Management access lines: typed, hashed, saved, read back; who SSH lets in."""

from __future__ import annotations

import re

from sitemail.firewall.asa_cli import AsaCli
from sitemail.firewall.asa_cli_mgmt import ssh_permitted
from sitemail.firewall.asa_config import parse_config, render_config
from sitemail.firewall.asa_passwords import hash_password, verify_password

LINES = [
    "conf t",
    "username admin password S3cret! privilege 15",
    "username ops password 0ps",
    "enable password En4ble",
    "ssh 127.1.0.0 255.255.0.0 inside",
    "ssh timeout 20",
    "end",
]


def test_passwords_are_stored_hashed_and_read_back() -> None:
    cli = AsaCli(privileged=True)
    assert all(r.output == "" for r in cli.feed_lines(LINES))
    text = render_config(cli.running)
    assert "S3cret!" not in text and "En4ble" not in text and "0ps" not in text
    assert re.search(r"\nhostname ciscoasa\nenable password \$sha512\$5000\$\S+ pbkdf2\n", text)
    assert re.search(r"\nusername admin password \$sha512\$\S+ pbkdf2 privilege 15\n", text)
    assert re.search(r"\nusername ops password \$sha512\$\S+ pbkdf2\n", text)
    assert "ssh stricthostkeycheck\nssh 127.1.0.0 255.255.0.0 inside\nssh timeout 20\n" in text
    again = parse_config(text)
    assert render_config(again) == text
    admin = again.user("admin")
    assert admin is not None and admin.privilege == 15
    assert verify_password("S3cret!", admin.password_hash)
    assert not verify_password("s3cret!", admin.password_hash)
    # The factory configuration reads back to itself (its "ssh timeout 5" is modelled now).
    factory = render_config(AsaCli().running)
    assert "ssh timeout 5\nconsole timeout 0\n" in factory
    assert render_config(parse_config(factory)) == factory


def test_enable_asks_for_the_configured_password() -> None:
    cli = AsaCli(privileged=True)
    cli.feed_lines([*LINES, "disable"])
    assert cli.prompt == "ciscoasa> "
    cli.feed("enable")
    assert cli.feed("").output == "Invalid password\n"
    assert cli.feed("En4ble").prompt == "ciscoasa# "


def test_pasted_hashes_are_kept_and_bad_words_refused() -> None:
    cli = AsaCli(privileged=True)
    stored = hash_password("x")
    cli.feed_lines(["conf t", f"username u password {stored} pbkdf2"])
    user = cli.running.user("u")
    assert user is not None and user.password_hash == stored
    assert "^" in cli.feed("username v password notahash pbkdf2").output
    assert "^" in cli.feed("ssh 127.1.0.0 255.255.0.0 dmz").output
    assert "^" in cli.feed("ssh 127.1.0.0 255.0.255.0 inside").output
    assert "^" in cli.feed("ssh timeout 61").output
    cli.feed("no username u")
    assert cli.running.user("u") is None


def test_ssh_lines_decide_who_may_connect_on_which_interface() -> None:
    cli = AsaCli(privileged=True)
    assert not ssh_permitted(cli.running, "127.1.0.11", "inside")  # none: nobody
    cli.feed_lines(LINES)
    assert ssh_permitted(cli.running, "127.1.0.11", "inside")
    assert not ssh_permitted(cli.running, "127.1.0.11", "outside")
    assert not ssh_permitted(cli.running, "127.2.0.11", "inside")
    cli.feed_lines(["conf t", "no ssh 127.1.0.0 255.255.0.0 inside"])
    assert not ssh_permitted(cli.running, "127.1.0.11", "inside")
