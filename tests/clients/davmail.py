"""Debian's DavMail (davmail-server) in its EWS mode, started against a running lab.

DavMail is a gateway users run beside Thunderbird, Evolution or any IMAP,
SMTP and CalDAV client: it speaks those protocols on the loopback and
Exchange Web Services to the server, here NY's Client Access server at
``https://mail.contoso.com/EWS/Exchange.asmx`` (adam's mailbox is in FL,
so every call is proxied).  It is set up as its users set it up: a
``davmail.properties`` file, the server's certificate trusted through a Java
trust store (made with the JRE's keytool from the lab CA), and the lab's
names resolved through a hosts file (``jdk.net.hosts.file``), since the lab
is not in DNS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

JAR = Path("/usr/share/davmail/davmail.jar")
STORE_PASSWORD = "sitemail-lab"


@dataclass(frozen=True)
class DavMail:
    host: str
    imap_port: int
    smtp_port: int
    caldav_port: int
    log: Path

    def caldav_url(self, address: str, folder: str = "calendar") -> str:
        return f"http://{self.host}:{self.caldav_port}/users/{address}/{folder}/"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"DavMail exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"DavMail did not listen on {port}: {log.read_text()[-2000:]}")


@contextmanager
def davmail(
    folder: Path, *, ca_file: Path, ews_url: str, names: dict[str, str]
) -> Iterator[DavMail]:
    """DavMail listening on 127.0.0.1 with EWS at ``ews_url``; ``names``: host -> address."""
    java, keytool = shutil.which("java"), shutil.which("keytool")
    assert java and keytool and JAR.exists(), "DavMail needs Debian's davmail-server (a JRE)"
    folder.mkdir(parents=True, exist_ok=True)
    trust = folder / "trust.p12"
    subprocess.run(
        [keytool, "-importcert", "-noprompt", "-alias", "lab-ca", "-file", str(ca_file),
         "-keystore", str(trust), "-storetype", "PKCS12", "-storepass", STORE_PASSWORD],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    hosts = folder / "hosts"
    hosts.write_text("".join(f"{address} {name}\n" for name, address in names.items()))
    host = "127.0.0.1"
    ports = {kind: _free_port(host) for kind in ("imap", "smtp", "caldav", "pop")}
    log = folder / "davmail.log"
    settings = folder / "davmail.properties"
    settings.write_text(
        "\n".join(
            [
                "davmail.server=true",
                "davmail.mode=EWS",
                f"davmail.url={ews_url}",
                f"davmail.bindAddress={host}",
                "davmail.allowRemote=false",
                f"davmail.imapPort={ports['imap']}",
                f"davmail.smtpPort={ports['smtp']}",
                f"davmail.caldavPort={ports['caldav']}",
                f"davmail.popPort={ports['pop']}",
                "davmail.ldapPort=",
                "davmail.disableUpdateCheck=true",
                "davmail.enableKeepAlive=true",
                f"davmail.logFilePath={log}",
                "log4j.logger.davmail=DEBUG",
                "log4j.rootLogger=WARN",
                "",
            ]
        )
    )
    settings.chmod(0o600)
    out = (folder / "davmail.out").open("wb")
    proc = subprocess.Popen(
        [
            java,
            f"-Djdk.net.hosts.file={hosts}",
            f"-Djavax.net.ssl.trustStore={trust}",
            f"-Djavax.net.ssl.trustStorePassword={STORE_PASSWORD}",
            "-Djava.awt.headless=true",
            "-jar",
            str(JAR),
            str(settings),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)},
    )
    try:
        _wait_listening(host, ports["caldav"], proc, folder / "davmail.out")
        yield DavMail(host, ports["imap"], ports["smtp"], ports["caldav"], folder / "davmail.out")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        out.close()
