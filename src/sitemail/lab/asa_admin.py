"""The lab's administrator account on its firewalls, so that ``ssh admin@<ASA>`` works.

A factory ASA has no ``username`` and no ``ssh`` line, so nobody may sign in
over SSH.  On a firewall's first start (no ``startup-config`` yet) ``lab up``
types, on its console, what an administrator types on a new box -- an
account, an enable password, the hosts that may connect -- and saves it
(``write memory``), so the lines are in the firewall's ``startup-config`` like
any other.

The password is generated once per lab into ``<lab>/firewalls/admin-password``
(mode 0600) and is the ``enable`` password too.  It appears in no command
line and in no configuration: the lines typed carry its PBKDF2 hash, as a
saved 9.x configuration does (``... password $sha512$5000$... pbkdf2``).

Who may connect: the lab machine itself, from 127.0.0.1 (what ``ssh
admin@127.N.0.1`` uses by default; it arrives on the ``outside`` interface, as
the firewall interfaces have no addresses), and the hosts of the firewall's
own site, ``127.N.0.0/16``, on ``inside``.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from sitemail.firewall.asa_passwords import HASH_KEYWORD, hash_password
from sitemail.firewall.console_cli import AsaConsole, find_console
from sitemail.org.pki.files import write_private
from sitemail.server.console import ConsoleClient

__all__ = ["ADMIN_USER", "PASSWORD_FILE", "admin_password", "give_admin_account", "setup_lines"]

ADMIN_USER = "admin"
#: Under the lab folder; one password for every firewall of the lab.
PASSWORD_FILE = Path("firewalls") / "admin-password"
#: Where ``ssh`` connects from when not told otherwise (the loopback route's source).
LAB_MACHINE = "127.0.0.1"


def admin_password(lab_dir: Path) -> str:
    """The lab's firewall admin password, generated (0600) the first time it is asked for."""
    path = lab_dir / PASSWORD_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, (secrets.token_urlsafe(18) + "\n").encode())
    return path.read_text(encoding="utf-8").rstrip("\r\n")


def setup_lines(password: str, management: str) -> list[str]:
    """The configuration-mode lines of the account, for the firewall at ``management``."""
    site = ipaddress.IPv4Network(f"{management}/16", strict=False)
    # Each line its own salt, as the box hashes each password it is given.
    return [
        f"username {ADMIN_USER} password {hash_password(password)} {HASH_KEYWORD} privilege 15",
        f"enable password {hash_password(password)} {HASH_KEYWORD}",
        f"ssh {LAB_MACHINE} 255.255.255.255 outside",
        f"ssh {site.network_address} {site.netmask} inside",
    ]


def give_admin_account(lab_dir: Path, name: str, management: str) -> str | None:
    """On a box that has just booted for the first time (no startup-config in its flash),
    type the account on firewall ``name``'s console and save it; None, else why not.

    Any later start keeps what its startup-config says: an account an administrator
    removed stays removed."""
    _, sock = find_console(name, lab_dir)
    with ConsoleClient(sock) as client:
        if not client.call("health").get("first_boot"):
            return None
        lines = ["configure terminal", *setup_lines(admin_password(lab_dir), management)]
        lines += ["end", "write memory"]
        console = AsaConsole(client, name)
        try:
            for line in lines:
                _, output = console.feed(line)
                if "ERROR:" in output:
                    return f"{name}: {line.split(' password ')[0]!r}: {output.strip()}"
        finally:
            console.close()
    return None
