"""A real OpenLDAP slapd for tests: its own folder, a free loopback port, sitemail's schema.

Started in the foreground as the test's own child and stopped by its PID.
Debian's default schema set (core, cosine, nis, inetorgperson) is loaded
beside sitemail's, as on a server an administrator set up with the package.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ldap3 import Connection, Server
from ldap3.core.exceptions import LDAPEntryAlreadyExistsResult

import sitemail.org

SCHEMA = Path(sitemail.org.__file__).resolve().parent / "sitemail.schema"
PASSWORD = "Secret-1234"
_bases = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Slapd:
    def __init__(
        self,
        folder: Path,
        suffix: str = "DC=com",
        *,
        schema: Path | None = SCHEMA,
        global_conf: str = "",
        database_conf: str = "",
    ):
        self.folder = folder
        self.suffix = suffix
        self.admin_dn = f"CN=admin,{suffix}"
        self.port = free_port()
        self.password_file = folder / "password"
        self.password_file.write_text(PASSWORD + "\n")
        self.data = folder / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        debian = ("core", "cosine", "nis", "inetorgperson")
        includes = [f"/etc/ldap/schema/{n}.schema" for n in debian]
        if schema is not None:
            includes.append(str(schema))
        self.conf = folder / "slapd.conf"
        lines = [
            *(f"include {p}" for p in includes),
            f"pidfile {folder / 'slapd.pid'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            global_conf,
            "database mdb",
            f'suffix "{suffix}"',
            f'rootdn "{self.admin_dn}"',
            f"rootpw {PASSWORD}",
            f"directory {self.data}",
            "maxsize 1073741824",
            "index objectClass,sitemailKind,sitemailChangeNumber eq" if schema else "",
            database_conf,
        ]
        self.conf.write_text("".join(line.rstrip("\n") + "\n" for line in lines if line))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not shutil.which("slapd"):
            raise RuntimeError("slapd is not installed: bash scripts/install.sh test")
        log = (self.folder / "slapd.log").open("ab")
        self.proc = subprocess.Popen(
            ["slapd", "-h", f"ldap://127.0.0.1:{self.port}/", "-f", str(self.conf), "-d", "256"],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.folder / 'slapd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("slapd did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def url(self, base: str | None = None, **settings: str) -> str:
        """An ldap:// URL for ``base`` (default: the suffix), binding as the admin."""
        query = {"bind": self.admin_dn, "password_file": str(self.password_file), **settings}
        return f"ldap://127.0.0.1:{self.port}/{base or self.suffix}?" + "&".join(
            f"{k}={v}" for k, v in query.items()
        )

    def admin(self) -> Any:
        """An ldap3 connection bound as the server's root DN."""
        return Connection(
            Server("127.0.0.1", port=self.port, get_info="NO_INFO"),
            self.admin_dn,
            PASSWORD,
            auto_bind=True,
            raise_exceptions=True,
        )

    def add(self, dn: str, classes: list[str], attrs: dict[str, Any]) -> None:
        """Add an entry as the root DN, unless it is there already."""
        conn = self.admin()
        try:
            conn.add(dn, classes, attrs)
        except LDAPEntryAlreadyExistsResult:
            pass
        finally:
            conn.unbind()

    def new_base(self) -> str:
        """A fresh, empty domain entry under the suffix (one per test)."""
        dc = f"t{os.getpid()}x{next(_bases)}"
        base = f"DC={dc},{self.suffix}"
        self.add(self.suffix, ["domain"], {"dc": self.suffix.split(",")[0].split("=")[1]})
        self.add(base, ["domain"], {"dc": dc})
        return base

    def add_account(self, cn: str, password: str) -> str:
        """A service account ``CN=<cn>,CN=Users,<suffix>`` that can bind; its DN."""
        self.add(f"CN=Users,{self.suffix}", ["container"], {})
        dn = f"CN={cn},CN=Users,{self.suffix}"
        self.add(dn, ["person"], {"sn": cn, "userPassword": password})
        return dn
