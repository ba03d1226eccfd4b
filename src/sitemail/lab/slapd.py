"""The lab's own OpenLDAP server (``sitemail lab up --directory ldap``).

It lives in ``<lab>/ldap/``: ``slapd.conf`` (written by every ``lab up``, so a
new sitemail schema file is picked up), ``data/`` (the mdb database),
``password`` (the admin's, generated once, mode 0600) and ``process.log``.  It
listens on 127.0.0.1, port 389 plus the lab's port offset, and runs in the
foreground as one of the lab's supervised processes.  The admin's password
appears in no command line: slapd.conf holds only its salted hash, and the
lab's processes read it from the password file named in their directory URL.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
from pathlib import Path
from urllib.parse import quote

import sitemail.org
from sitemail.org.lab_state import ProcessRecord
from sitemail.org.pki.files import write_private

SLAPD_ADDRESS = "127.0.0.1"
SLAPD_PORT = 389  # LDAP's own port; plus the lab's --port-offset like every port
RECORD_NAME = "slapd"
FOLDER = "ldap"
# What Debian's slapd package loads by default; sitemail's schema uses names of them.
DEBIAN_SCHEMAS = ("core", "cosine", "nis", "inetorgperson")
SCHEMA_DIR = Path("/etc/ldap/schema")


class SlapdError(Exception):
    """The lab cannot run its slapd; the message says what to install or fix."""


def schema_file() -> Path:
    return Path(sitemail.org.__file__).resolve().parent / "sitemail.schema"


def _ssha(password: str) -> str:
    """slapd's {SSHA}: SHA-1 over the password and a salt, then the salt, in base64."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def url_with(url: str, **settings: str) -> str:
    """``url`` with settings added after ``?`` (values quoted the way the URL parser reads them)."""
    query = "&".join(f"{k}={quote(v, safe='=,/:')}" for k, v in settings.items())
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + query


def slapd_command(rec: ProcessRecord, port_offset: int) -> list[str]:
    """How the lab runs its slapd (``rec``: its process record, ``home`` its folder)."""
    binary = shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        raise SlapdError(
            "slapd is not installed; install OpenLDAP's server (apt-get install slapd "
            "ldap-utils, or bash scripts/install.sh test) or use --directory embedded"
        )
    # -d 32768: stay in the foreground (a supervised process) and log only start-up
    # errors and start/stop to stderr, which is the folder's process.log.
    listen = f"ldap://{rec.address}:{SLAPD_PORT + port_offset}/"
    return [binary, "-h", listen, "-f", str(Path(rec.home) / "slapd.conf"), "-d", "32768"]


class ManagedSlapd:
    def __init__(self, lab_dir: Path, base_dn: str, organization: str, port_offset: int) -> None:
        self.folder = lab_dir / FOLDER
        self.base_dn = base_dn
        self.organization = organization
        self.port = SLAPD_PORT + port_offset
        self.admin_dn = f"CN=admin,{base_dn}"
        self.conf = self.folder / "slapd.conf"
        self.password_file = self.folder / "password"
        self.data = self.folder / "data"

    def url(self) -> str:
        """The URL every process of the lab opens the directory with (no secret in it)."""
        base = f"ldap://{SLAPD_ADDRESS}:{self.port}/{quote(self.base_dn, safe='=,')}"
        return url_with(
            base,
            bind=self.admin_dn,
            password_file=str(self.password_file),
            org=self.organization,
        )

    def record(self) -> ProcessRecord:
        return ProcessRecord(RECORD_NAME, "directory", "", SLAPD_ADDRESS, home=str(self.folder))

    def prepare(self) -> None:
        """Write the configuration and, the first time, the admin's password."""
        missing = [SCHEMA_DIR / f"{n}.schema" for n in DEBIAN_SCHEMAS]
        missing = [p for p in missing if not p.exists()]
        if missing:
            raise SlapdError(
                f"slapd's standard schemas are missing ({', '.join(map(str, missing))}); "
                "install OpenLDAP's server (apt-get install slapd)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700, exist_ok=True)
        if not self.password_file.exists():
            write_private(self.password_file, (secrets.token_urlsafe(24) + "\n").encode())
        password = self.password_file.read_text().rstrip("\r\n")
        write_private(self.conf, self._config(password).encode())

    def _config(self, password: str) -> str:
        includes = [*(SCHEMA_DIR / f"{n}.schema" for n in DEBIAN_SCHEMAS), schema_file()]
        lines = [
            *(f"include {p}" for p in includes),
            f"pidfile {self.folder / 'slapd.pid'}",
            f"argsfile {self.folder / 'slapd.args'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "database mdb",
            f'suffix "{self.base_dn}"',
            f'rootdn "{self.admin_dn}"',
            f"rootpw {_ssha(password)}",
            f"directory {self.data}",
            # back-mdb's default (10 MB) is small for the change log, which is never pruned.
            "maxsize 1073741824",
            "index objectClass,sitemailKind,sitemailChangeNumber eq",
            # Anyone may read the Active Directory attributes (ldapsearch -x); sitemail's JSON
            # copy of each object holds password hashes, so only the admin reads that.
            "access to attrs=sitemailObject,sitemailChange,sitemailChangeData,userPassword",
            "    by anonymous auth",
            "    by * none",
            "access to *",
            "    by * read",
        ]
        return "".join(f"{line}\n" for line in lines)
