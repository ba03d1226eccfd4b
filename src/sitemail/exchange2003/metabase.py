"""The IIS 6 metabase of an Exchange 2003 server: what its web site actually serves.

Exchange 2003 keeps its virtual directories' settings in Active Directory
(Exchange System Manager writes them there); the System Attendant's DS2MB
process copies them one way into the IIS metabase, which is what IIS reads.
A change made in IIS Manager lands only in the metabase and is overwritten
at the next copy (KB 294280; spec 8.5 and the seed's warning).  So the
metabase is a layer of its own, per server: a file in the server's folder
(``inetsrv/MetaBase.xml``, laid out like IIS 6's, ``IIsWebVirtualDir``
nodes with their ``AuthFlags``), written by the System Attendant and by
``sitemail iis``, read by the 2003 web service on every request.

Until the System Attendant has written it once, the metabase holds what the
directory holds (the copy made at installation).
"""

from __future__ import annotations

import os
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from sitemail.org.directory import Directory
from sitemail.org.lab_state import LabState
from sitemail.org.model import VirtualDirectory

__all__ = [
    "IisAuth",
    "Metabase",
    "MetabaseError",
    "metabase_location",
    "server_home",
    "vdir_leaf",
]

#: Where IIS 6 keeps it: %SystemRoot%\system32\inetsrv\MetaBase.xml.
METABASE_FILE = Path("inetsrv") / "MetaBase.xml"
#: The metabase path of the Default Web Site's root (site id 1).
ROOT_LOCATION = "/LM/W3SVC/1/ROOT"
_NAMESPACE = "urn:microsoft-catalog:XML_Metabase_V64_0"
# IIS 6's AuthFlags names; Integrated Windows authentication is AuthNTLM.
_FLAGS = (("anonymous", "AuthAnonymous"), ("basic", "AuthBasic"), ("windows", "AuthNTLM"))


class MetabaseError(Exception):
    """The metabase file cannot be read (in one line, with the file's name)."""


@dataclass(frozen=True, slots=True)
class IisAuth:
    """The authentication methods of one virtual directory, as IIS applies them."""

    anonymous: bool
    basic: bool
    windows: bool

    @classmethod
    def of(cls, vdir: VirtualDirectory) -> IisAuth:
        return cls(
            vdir.anonymous_authentication, vdir.basic_authentication, vdir.windows_authentication
        )

    @property
    def auth_flags(self) -> str:
        """The metabase's ``AuthFlags`` value, e.g. ``AuthBasic | AuthNTLM``."""
        on = [name for attr, name in _FLAGS if getattr(self, attr)]
        # An AuthFlags of 0 is written as "0" in MetaBase.xml.
        return " | ".join(on) or "0"

    @classmethod
    def from_flags(cls, text: str) -> IisAuth:
        names = {part.strip().casefold() for part in text.split("|")}
        got = {attr: name.casefold() in names for attr, name in _FLAGS}
        return cls(**got)

    def with_method(self, method: str, enabled: bool) -> IisAuth:
        """A copy with ``method`` (anonymous, basic or windows) switched."""
        values = {"anonymous": self.anonymous, "basic": self.basic, "windows": self.windows}
        if method not in values:
            raise ValueError(f"unknown authentication method {method!r}")
        values[method] = enabled
        return IisAuth(**values)


def vdir_leaf(vdir: VirtualDirectory) -> str:
    """``Microsoft-Server-ActiveSync`` of ``Microsoft-Server-ActiveSync (Default Web Site)``."""
    name = vdir.name
    return name[: name.rindex(" (")] if name.endswith(")") and " (" in name else name


def metabase_location(leaf: str) -> str:
    return f"{ROOT_LOCATION}/{leaf}"


def server_home(lab_dir: Path, name: str) -> Path:
    """The folder of server ``name`` of the lab in ``lab_dir`` (where ``serve`` keeps it)."""
    state = LabState.load(lab_dir)
    if state is not None:
        for rec in state.processes:
            if rec.name.casefold() == name.casefold() and rec.home:
                return Path(rec.home)
    return lab_dir / "servers" / name


class Metabase:
    """One server's ``MetaBase.xml``: read (cached while the file is unchanged) and written."""

    def __init__(self, home: Path) -> None:
        self.path = home / METABASE_FILE
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], dict[str, IisAuth]] | None = None

    # ------------------------------------------------------------------ reading

    def read(self) -> dict[str, IisAuth] | None:
        """Virtual directory (leaf name) -> its settings; None before the first write."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MetabaseError(f"cannot read {self.path}: {exc.strerror}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._cached is not None and self._cached[0] == stamp:
                return dict(self._cached[1])
        entries = self._parse()
        with self._lock:
            self._cached = (stamp, entries)
        return dict(entries)

    def _parse(self) -> dict[str, IisAuth]:
        try:
            root = ET.parse(self.path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise MetabaseError(f"{self.path} is not a readable metabase: {exc}") from None
        out: dict[str, IisAuth] = {}
        prefix = ROOT_LOCATION + "/"
        for node in root.iter(f"{{{_NAMESPACE}}}IIsWebVirtualDir"):
            location = node.get("Location", "")
            if location.startswith(prefix):
                out[location[len(prefix) :]] = IisAuth.from_flags(node.get("AuthFlags", "0"))
        return out

    def effective(self, directory: Directory, server: str) -> dict[str, IisAuth]:
        """What IIS applies: the metabase, or the directory's copy before the first write."""
        written = self.read()
        if written is not None:
            return written
        return {
            vdir_leaf(v): IisAuth.of(v)
            for v in directory.list(VirtualDirectory)
            if v.server.casefold() == server.casefold()
        }

    # ------------------------------------------------------------------ writing

    def write(self, entries: dict[str, IisAuth]) -> None:
        """Replace the file (atomically: IIS never reads half a metabase)."""
        ET.register_namespace("", _NAMESPACE)
        root = ET.Element(f"{{{_NAMESPACE}}}configuration")
        props = ET.SubElement(root, f"{{{_NAMESPACE}}}MBProperty")
        for leaf in sorted(entries, key=str.casefold):
            ET.SubElement(
                props,
                f"{{{_NAMESPACE}}}IIsWebVirtualDir",
                {"Location": metabase_location(leaf), "AuthFlags": entries[leaf].auth_flags},
            )
        ET.indent(root)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
        tmp.replace(self.path)
