"""The lab's firewall admin account: lines an ASA takes, and who they let in with what."""

from __future__ import annotations

from pathlib import Path

from sitemail.firewall.asa_cli import AsaCli
from sitemail.firewall.asa_cli_mgmt import ssh_permitted
from sitemail.firewall.asa_model import factory_config
from sitemail.firewall.asa_passwords import verify_password
from sitemail.firewall.asa_render import render_config
from sitemail.lab.asa_admin import PASSWORD_FILE, admin_password, setup_lines


def test_the_password_is_made_once_private_and_kept(tmp_path: Path) -> None:
    first = admin_password(tmp_path)
    assert len(first) >= 20
    assert (tmp_path / PASSWORD_FILE).stat().st_mode & 0o777 == 0o600
    assert admin_password(tmp_path) == first


def test_the_lines_give_a_box_the_account_and_only_the_lab_machine_and_its_site() -> None:
    cli = AsaCli(factory_config("ASA-FL"), privileged=True)
    for line in ["configure terminal", *setup_lines("s3cret-Pa55", "127.2.0.1"), "end"]:
        assert "ERROR" not in cli.feed(line).output, line
    config = cli.running
    user = config.user("admin")
    assert user is not None and user.privilege == 15
    assert verify_password("s3cret-Pa55", user.password_hash)
    assert config.enable_password and verify_password("s3cret-Pa55", config.enable_password)
    assert "s3cret-Pa55" not in render_config(config)
    assert ssh_permitted(config, "127.0.0.1", "outside")
    assert ssh_permitted(config, "127.2.0.11", "inside")
    assert not ssh_permitted(config, "127.1.0.11", "outside")  # a host of the other site
    assert not ssh_permitted(config, "127.0.0.2", "outside")
