"""One server's IIS as its administrator sees it: web site, virtual directories, authentication.

Where the settings live depends on the version, as on the real servers:

* Exchange 2007 and 2010 (IIS 7): Basic and Windows authentication of an
  Exchange virtual directory are the settings Set-*VirtualDirectory changes,
  so IIS Manager and the shell share them: they are read from and written to
  the directory's :class:`~sitemail.org.model.VirtualDirectory` (one source
  of truth).  Anonymous access is not one of Exchange's settings there and
  sitemail keeps none: it is shown off and cannot be changed.
* Exchange 2003 (IIS 6): the IIS metabase of the server
  (:mod:`sitemail.exchange2003.metabase`), which the System Attendant
  overwrites from the directory (what Exchange System Manager set).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sitemail.exchange2003.metabase import IisAuth, Metabase, metabase_location, vdir_leaf
from sitemail.org.directory import Directory
from sitemail.org.model import (
    ExchangeVersion,
    Organization,
    Server,
    VirtualDirectory,
    VirtualDirectoryKind,
)

__all__ = ["SITE_NAME", "IisServerView", "IisVdir", "NotChangeable"]

SITE_NAME = "Default Web Site"
SITE_ID = 1

# Physical paths and application pools, for `list vdir` / `list app` only (nothing
# reads them).  Exchange's install folders are general knowledge; the application
# pool names are unverified.
_V14 = r"C:\Program Files\Microsoft\Exchange Server\V14\ClientAccess"
_V8 = r"C:\Program Files\Microsoft\Exchange Server\ClientAccess"
_LATER: dict[VirtualDirectoryKind, tuple[str, str]] = {
    VirtualDirectoryKind.OWA: ("Owa", "MSExchangeOWAAppPool"),
    VirtualDirectoryKind.ECP: ("ecp", "MSExchangeECPAppPool"),
    VirtualDirectoryKind.EAS: ("Sync", "MSExchangeSyncAppPool"),
    VirtualDirectoryKind.EWS: (r"exchweb\ews", "MSExchangeServicesAppPool"),
    VirtualDirectoryKind.OAB: ("OAB", "MSExchangeOABAppPool"),
    VirtualDirectoryKind.AUTODISCOVER: ("Autodiscover", "MSExchangeAutodiscoverAppPool"),
}
# Exchange 2003's folders (techgenix "Fixing a damaged OWA 2003 installation"); the
# store's virtual directories point into the Exchange store (\\.\BackOfficeStorage).
_E2003_PATHS = {
    "exchange": r"\\.\BackOfficeStorage\{domain}\MBX",
    "public": r"\\.\BackOfficeStorage\{domain}\Public Folders",
    "microsoft-server-activesync": r"C:\Program Files\Exchsrvr\OMA\Sync",
    "oma": r"C:\Program Files\Exchsrvr\OMA\Browse",
}
E2003_APP_POOL = "ExchangeApplicationPool"  # unverified for the OMA/ActiveSync ones


class NotChangeable(Exception):
    """A setting this server's IIS view cannot change (the message says why)."""


@dataclass(frozen=True, slots=True)
class IisVdir:
    """One virtual directory of the Default Web Site."""

    leaf: str
    auth: IisAuth
    physical_path: str
    app_pool: str
    record: VirtualDirectory | None

    @property
    def path(self) -> str:
        """appcmd's application identifier: ``Default Web Site/owa``."""
        return f"{SITE_NAME}/{self.leaf}"


class IisServerView:
    """The IIS of ``server`` (its folder ``home`` holds a 2003 server's metabase)."""

    def __init__(self, directory: Directory, server: Server, home: Path) -> None:
        self.directory = directory
        self.server = server
        self.metabase = Metabase(home)

    @property
    def iis6(self) -> bool:
        return self.server.version is ExchangeVersion.E2003

    @property
    def iis_version(self) -> str:
        # Windows Server 2003: IIS 6.0; 2007 SP3 and 2010 on Windows Server 2008 (R2): 7.x.
        return "6.0" if self.iis6 else "7.5"

    def _records(self) -> list[VirtualDirectory]:
        mine = self.server.name.casefold()
        found = [v for v in self.directory.list(VirtualDirectory) if v.server.casefold() == mine]
        return sorted(found, key=lambda v: vdir_leaf(v).casefold())

    def _domain(self) -> str:
        orgs = self.directory.list(Organization)
        return orgs[0].default_domain if orgs else self.server.fqdn.partition(".")[2]

    def vdirs(self) -> list[IisVdir]:
        records = {vdir_leaf(v).casefold(): v for v in self._records()}
        if not self.iis6:
            out = []
            for v in records.values():
                folder, pool = _LATER.get(v.type, (vdir_leaf(v), "DefaultAppPool"))
                base = _V14 if self.server.version is ExchangeVersion.E2010 else _V8
                auth = IisAuth(False, v.basic_authentication, v.windows_authentication)
                out.append(IisVdir(vdir_leaf(v), auth, f"{base}\\{folder}", pool, v))
            return out
        applied = self.metabase.effective(self.directory, self.server.name)
        out = []
        domain = self._domain()
        for leaf in sorted(applied, key=str.casefold):
            path = _E2003_PATHS.get(leaf.casefold(), r"C:\Program Files\Exchsrvr\{leaf}")
            out.append(
                IisVdir(
                    leaf,
                    applied[leaf],
                    path.format(domain=domain, leaf=leaf),
                    E2003_APP_POOL,
                    records.get(leaf.casefold()),
                )
            )
        return out

    def vdir(self, leaf: str) -> IisVdir | None:
        return next((v for v in self.vdirs() if v.leaf.casefold() == leaf.casefold()), None)

    def set_auth(self, vdir: IisVdir, method: str, enabled: bool) -> IisVdir:
        """Switch ``method`` (anonymous, basic, windows) of ``vdir``; the view after it."""
        if self.iis6:
            applied = self.metabase.effective(self.directory, self.server.name)
            applied[vdir.leaf] = vdir.auth.with_method(method, enabled)
            self.metabase.write(applied)
        else:
            record = vdir.record
            if record is None:
                raise NotChangeable(f"{vdir.path} is not a virtual directory of Exchange")
            if method == "anonymous":
                raise NotChangeable(
                    f"{self.server.name} is an Exchange {self.server.version.product} server: "
                    "sitemail keeps no anonymous access for its Exchange virtual directories "
                    "(Exchange serves no anonymous request there); only basicAuthentication "
                    "and windowsAuthentication can be changed, as with Set-*VirtualDirectory"
                )
            field = {"basic": "basic_authentication", "windows": "windows_authentication"}[method]
            if getattr(record, field) != enabled:
                # The same record Set-*VirtualDirectory writes: Client Access servers see it.
                with self.directory.transaction():
                    self.directory.put(record.model_copy(update={field: enabled}))
        found = self.vdir(vdir.leaf)
        assert found is not None
        return found

    def metabase_line(self, vdir: IisVdir) -> str:
        return f'{metabase_location(vdir.leaf)} AuthFlags="{vdir.auth.auth_flags}"'
