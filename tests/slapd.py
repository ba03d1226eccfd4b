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

import sitemail.org

SCHEMA = Path(sitemail.org.__file__).resolve().parent / "sitemail.schema"
PASSWORD = "Secret-1234"
_bases = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Slapd:
    def __init__(self, folder: Path, suffix: str = "DC=com", *, schema: Path | None = SCHEMA):
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
        self.conf.write_text(
            "".join(f"include {p}\n" for p in includes) + f"pidfile {folder / 'slapd.pid'}\n"
            "modulepath /usr/lib/ldap\n"
            "moduleload back_mdb\n"
            "database mdb\n"
            f'suffix "{suffix}"\n'
            f'rootdn "{self.admin_dn}"\n'
            f"rootpw {PASSWORD}\n"
            f"directory {self.data}\n"
            "maxsize 1073741824\n"
            + ("index objectClass,sitemailKind,sitemailChangeNumber eq\n" if schema else "")
        )
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

    def new_base(self) -> str:
        """A fresh, empty domain entry under the suffix (one per test)."""
        from ldap3 import Connection, Server

        dc = f"t{os.getpid()}x{next(_bases)}"
        base = f"DC={dc},{self.suffix}"
        conn = Connection(
            Server("127.0.0.1", port=self.port, get_info="NO_INFO"),
            self.admin_dn,
            PASSWORD,
            auto_bind=True,
            raise_exceptions=True,
        )
        try:
            if self.suffix_missing(conn):
                conn.add(self.suffix, ["domain"], {"dc": self.suffix.split(",")[0].split("=")[1]})
            conn.add(base, ["domain"], {"dc": dc})
        finally:
            conn.unbind()
        return base

    def suffix_missing(self, conn: object) -> bool:
        from ldap3 import BASE
        from ldap3.core.exceptions import LDAPNoSuchObjectResult

        try:
            conn.search(self.suffix, "(objectClass=*)", BASE)  # type: ignore[attr-defined]
        except LDAPNoSuchObjectResult:
            return True
        return False
