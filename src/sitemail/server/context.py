"""What every process of an organization knows about where it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.directory import Directory
from sitemail.org.model import InternetHost, LabSettings, NetworkPath, Server


@dataclass
class ProcessContext:
    name: str
    site: str
    address: str
    directory: Directory
    directory_url: str
    base_dir: Path  # the lab folder, or the folder of the directory file in a deployment
    home: Path  # this process's own folder (queues, logs, mailbox databases)
    pki_dir: Path
    port_offset: int = 0
    clock: Clock = field(default=SYSTEM_CLOCK)

    def port(self, port: int) -> int:
        """The port actually bound for an Exchange port (the lab may shift them)."""
        return port + self.port_offset

    def address_of(self, host: str) -> str:
        """The address at which this process reaches ``host`` (through the firewalls if any)."""
        path = self.directory.get(NetworkPath, f"{self.site}->{host}")
        if path is not None:
            return path.address
        server = self.directory.get(Server, host)
        if server is not None and server.address:
            return server.address
        internet = self.directory.get(InternetHost, host)
        if internet is not None and internet.address:
            return internet.address
        raise LookupError(f"no address known for {host!r}")


def lab_settings(directory: Directory) -> LabSettings:
    return directory.get(LabSettings, "lab") or LabSettings()
