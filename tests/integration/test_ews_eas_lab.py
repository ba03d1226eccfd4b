"""EWS, ActiveSync and Autodiscover on the seed lab, with real clients: story 2 steps 2, 3 and 5.

- exchangelib signs in as adam at ``https://mail.contoso.com/EWS/Exchange.asmx``
  (EX-NY1, site NY) and reads his Inbox, which is in FL: NY proxies EWS to
  FL's InternalUrl through both firewalls; the availability query answers.
  exchangelib runs on requests, which resolves names itself: the test gives
  it :class:`~bench.lab_names.LabNamesAdapter`
  (exchangelib's ``BaseProtocol.HTTP_ADAPTER_CLS``), which dials the lab
  address for the lab name and keeps the name for SNI, the certificate check
  and the Host header; ``REQUESTS_CA_BUNDLE`` points at the lab CA, since
  the machine's own setting would override ``verify=``.
- curl speaks ActiveSync (WBXML bodies made and read with sitemail's codec)
  with ``--resolve``: proxied while FL's EAS ExternalUrl is $null; after
  ``Set-ActiveSyncVirtualDirectory -ExternalUrl`` a 14.1 device gets
  ``HTTP 451`` with ``X-MS-Location``, a 12.0 device is still proxied; larry
  (Exchange 2003 mailbox) is proxied to EX2003's /Microsoft-Server-ActiveSync.
- curl asks Autodiscover (mobilesync) for adam's ActiveSync URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from bench.lab_names import LabNamesAdapter, MappedConnection
from exchangelib import Account, EWSDateTime, EWSTimeZone, Message
from exchangelib.errors import ErrorDeleteDistinguishedFolder, ErrorFolderExists
from exchangelib.folders import Folder
from exchangelib.protocol import BaseProtocol
from tests.conftest import RunningLab, sitemail
from tests.unit.access.test_ews_exchangelib import ews_account

from sitemail.mailbox.store_client import StoreClient
from sitemail.org.pki import server_cert_files
from sitemail.org.ports import STORE_PORT
from sitemail.protocols.wbxml import Element, decode, el, encode

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PASSWORD = "Pa55word!"
FL_EAS_EXTERNAL = "https://ex-fl1.contoso.com/Microsoft-Server-ActiveSync"


class Lab:
    def __init__(self, running: RunningLab) -> None:
        self.running = running
        status = running.status()
        self.addresses = {s["name"]: s["address"] for s in status["servers"]}
        self.port = 443 + int(status["port_offset"])
        self.ca = running.dir / "pki" / "ca.pem"
        self.raw_head: list[str] = []

    def url(self, host: str, path: str) -> str:
        return f"https://{host}{'' if self.port == 443 else f':{self.port}'}{path}"

    def shell(self, line: str) -> None:
        result = sitemail("shell", "-c", line, "--dir", str(self.running.dir))
        assert result.stderr == "", result.stderr

    def deliver(self, alias: str, server: str, subject: str, body: str) -> None:
        """Mail straight into a mailbox database, as the hub's delivery puts it there."""
        import asyncio

        pki = self.running.dir / "pki"
        directory = self.running.open_directory()  # whichever backend the lab runs on
        raw = (
            f"From: Alice Ny <alice@contoso.com>\r\nTo: {alias}@contoso.com\r\n"
            f"Subject: {subject}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        ).encode()

        async def put() -> None:
            async with StoreClient(
                directory,
                lambda name: (self.addresses[name], STORE_PORT),
                ca_file=pki / "ca.pem",
                cert_files=server_cert_files(pki, server),
            ) as store:
                await store.deliver(alias, f"ews-eas-test:{subject}", raw)

        try:
            asyncio.run(put())
        finally:
            directory.close()

    def curl(
        self, host: str, path: str, user: str, *args: str, server: str = "EX-NY1"
    ) -> tuple[int, dict[str, str], bytes]:
        """curl as a device at ``server`` (where ``host`` resolves): status, headers (lower-case
        names) and body."""
        out = self.running.dir / "curl-body"
        env = dict(os.environ, CURL_CA_BUNDLE=str(self.ca))
        result = subprocess.run(
            [
                "curl", "-sS", "--cacert", str(self.ca),
                "--resolve", f"{host}:{self.port}:{self.addresses[server]}",
                "-u", f"contoso\\{user}:{PASSWORD}",
                "-D", "-", "-o", str(out),
                *args, self.url(host, path),
            ],
            capture_output=True, check=True, timeout=60, env=env,
        )  # fmt: skip
        lines = result.stdout.decode("latin-1").split("\r\n")
        self.raw_head = lines  # the status line and header lines as sent
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return status, headers, out.read_bytes()


@pytest.fixture(scope="module")
def lab(seed_lab: RunningLab) -> Lab:
    return Lab(seed_lab)


@pytest.fixture
def exchangelib_on_lab(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(MappedConnection, "names", {"mail.contoso.com": lab.addresses["EX-NY1"]})
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", LabNamesAdapter)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(lab.ca))
    yield


def decisions(lab: Lab, server: str) -> list[dict[str, object]]:
    folder = lab.running.dir / "servers" / server / "Logging" / "ClientAccess"
    return [
        json.loads(line)
        for path in sorted(folder.glob("Decision*.log"))
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]


def test_story2_ews_and_availability_are_proxied_to_fl(lab: Lab, exchangelib_on_lab: None) -> None:
    # EWS allows Windows authentication only out of the box; clients here use Basic.
    lab.shell(
        'Set-WebServicesVirtualDirectory "EX-NY1\\EWS (Default Web Site)" '
        "-BasicAuthentication $true"
    )
    lab.deliver("adam", "EX-FL1", "Quarterly numbers", "Tampa did well.")
    account = ews_account(
        lab.url("mail.contoso.com", "/EWS/Exchange.asmx"), "contoso\\adam", "adam@contoso.com"
    )
    deadline = time.monotonic() + 15  # the CAS sees the directory change within a second
    while True:
        try:
            inbox = account.inbox
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    items = list(inbox.all())
    (item,) = [i for i in items if i.subject == "Quarterly numbers"]
    assert item.body.strip() == "Tampa did well."
    assert item.sender.email_address == "alice@contoso.com"
    assert b"Subject: Quarterly numbers" in item.mime_content
    start = EWSDateTime(2030, 3, 4, 9, tzinfo=EWSTimeZone("UTC"))
    (view,) = account.protocol.get_free_busy_info(
        accounts=[("fiona@contoso.com", "Required", False)],
        start=start,
        end=start + timedelta(hours=2),
        merged_free_busy_interval=30,
        requested_view="MergedOnly",
    )
    assert view.merged == "0000"
    proxied = [
        d
        for d in decisions(lab, "EX-NY1")
        if d.get("protocol") == "EWS" and d.get("user") == "adam"
    ]
    assert proxied and {d["outcome"] for d in proxied} == {"Proxy"}
    assert {d["target"] for d in proxied} == {"https://ex-fl1.contoso.com/EWS/Exchange.asmx"}


def foldersync(key: str = "0") -> bytes:
    return encode(el("FolderHierarchy:FolderSync", el("FolderHierarchy:SyncKey", key)))


def eas(
    lab: Lab,
    user: str,
    version: str | None,
    cmd: str | None,
    body: bytes | None = None,
    *,
    host: str = "mail.contoso.com",
    server: str = "EX-NY1",
) -> tuple[int, dict[str, str], bytes]:
    path = "/Microsoft-Server-ActiveSync"
    if cmd is not None:
        path += f"?Cmd={cmd}&User={user}&DeviceId=CURL0{user}&DeviceType=curl"
    body_file = lab.running.dir / "curl-request"
    extra: list[str] = []
    if version:
        extra += ["-H", f"MS-ASProtocolVersion: {version}"]
    if cmd is None:
        extra += ["-X", "OPTIONS"]
    else:
        body_file.write_bytes(body or b"")
        extra += [
            "-H", "Content-Type: application/vnd.ms-sync.wbxml",
            "--data-binary", f"@{body_file}",
        ]  # fmt: skip
    return lab.curl(host, path, user, *extra, server=server)


def folders(body: bytes) -> dict[str, Element]:
    tree = decode(body)
    assert tree.findtext("Status") == "1"
    return {a.findtext("DisplayName") or "": a for a in tree.findall("Changes/Add")}


def test_story2_activesync_proxy_then_451_and_legacy_2003(lab: Lab) -> None:
    # FL's EAS ExternalUrl is $null: NY proxies, whatever the device speaks.
    status, headers, body = eas(lab, "adam", "14.1", "FolderSync", foldersync())
    assert status == 200 and "Inbox" in folders(body)
    status, headers, _ = eas(lab, "adam", None, None)
    assert status == 200 and headers["ms-asprotocolversions"] == "2.0,2.1,2.5,12.0,12.1,14.0,14.1"

    # Step 3: Active/Active.
    lab.shell(
        'Set-ActiveSyncVirtualDirectory "EX-FL1\\Microsoft-Server-ActiveSync (Default Web Site)" '
        f"-ExternalUrl {FL_EAS_EXTERNAL}"
    )
    deadline = time.monotonic() + 15
    while True:
        status, headers, body = eas(lab, "adam", "14.1", "FolderSync", foldersync())
        if status == 451 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 451 and headers["x-ms-location"] == FL_EAS_EXTERNAL
    # As IIS 7.5 under Exchange 2010 answers, to the octet: devices and analyzers read it.
    assert lab.raw_head[0] == "HTTP/1.1 451 Redirect"
    assert "Server: Microsoft-IIS/7.5" in lab.raw_head
    assert "X-Powered-By: ASP.NET" in lab.raw_head
    status, headers, _ = eas(lab, "adam", "14.1", None)
    assert status == 451 and headers["x-ms-location"] == FL_EAS_EXTERNAL
    # A device that cannot follow 451 is still proxied.
    status, _, body = eas(lab, "adam", "12.0", "FolderSync", foldersync())
    assert status == 200 and "Inbox" in folders(body)
    # Autodiscover now gives FL's own URL to adam's device.
    request = (
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/'
        'requestschema/2006"><Request><EMailAddress>adam@contoso.com</EMailAddress>'
        "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/"
        "mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>"
    )
    status, _, answer = lab.curl(
        "autodiscover.contoso.com",
        "/Autodiscover/Autodiscover.xml",
        "adam",
        "-H", "Content-Type: text/xml", "--data", request,
    )  # fmt: skip
    assert status == 200 and f"<Url>{FL_EAS_EXTERNAL}</Url>" in answer.decode()

    # Step 5: larry's mailbox is on Exchange 2003: proxied to EX2003's ActiveSync.
    lab.deliver("larry", "EX2003", "Legacy hello", "From the 2003 store.")
    status, headers, _ = eas(lab, "larry", "14.1", None)
    assert status == 200 and headers["ms-asprotocolversions"] == "1.0,2.0,2.1,2.5"
    status, _, body = eas(lab, "larry", "2.5", "FolderSync", foldersync())
    assert status == 200
    inbox = folders(body)["Inbox"].findtext("ServerId") or ""
    sync0 = el(
        "AirSync:Sync",
        el(
            "AirSync:Collections",
            el(
                "AirSync:Collection",
                el("AirSync:SyncKey", "0"),
                el("AirSync:CollectionId", inbox),
            ),
        ),
    )
    status, _, body = eas(lab, "larry", "2.5", "Sync", encode(sync0))
    key = decode(body).findtext("Collections/Collection/SyncKey") or ""
    sync1 = el(
        "AirSync:Sync",
        el(
            "AirSync:Collections",
            el(
                "AirSync:Collection",
                el("AirSync:SyncKey", key),
                el("AirSync:CollectionId", inbox),
            ),
        ),
    )
    status, _, body = eas(lab, "larry", "2.5", "Sync", encode(sync1))
    subjects = [
        a.findtext("ApplicationData/Email:Subject")
        for a in decode(body).findall("Collections/Collection/Commands/Add")
    ]
    assert "Legacy hello" in subjects
    assert any(
        d.get("protocol") == "EAS"
        and d.get("user") == "larry"
        and d.get("target_server") == "EX2003"
        for d in decisions(lab, "EX-NY1")
    )

    # The seed's warning: Windows authentication off in ESM reaches EX2003's IIS through
    # its System Attendant and breaks the proxy; turned on in IIS Manager alone it works
    # again at once (until the next pass, unit-tested); through ESM it is set for good.
    lab_dir = str(lab.running.dir)
    eas_vdir = ["Microsoft-Server-ActiveSync", "windows"]
    sitemail("esm", "--dir", lab_dir, "EX2003", "set", *eas_vdir, "off")
    _eventually(lambda: eas(lab, "larry", "2.5", None)[0] == 502, seconds=10)
    sitemail(
        "iis", "--dir", lab_dir, "EX2003", "set", "config",
        "Default Web Site/Microsoft-Server-ActiveSync",
        "-section:windowsAuthentication", "/enabled:true",
    )  # fmt: skip
    assert eas(lab, "larry", "2.5", None)[0] == 200
    sitemail("esm", "--dir", lab_dir, "EX2003", "set", *eas_vdir, "on")
    esm = sitemail("esm", "--dir", lab_dir, "EX2003", "show", eas_vdir[0]).stdout
    assert "[x] Integrated Windows authentication" in esm and "IIS applies" not in esm


NOTHING_MODIFIED = (
    "WARNING: The command completed successfully but no settings of "
    "'EX-NY1\\EWS (Default Web Site)' have been modified.\n"
)


def _eventually(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.5)


def test_story2_ews_changes_adams_fl_mailbox_through_ny_and_sends(
    lab: Lab, exchangelib_on_lab: None
) -> None:
    # Basic may be on already (the test above turns it on): the shell then only warns.
    result = sitemail(
        "shell",
        "-c",
        'Set-WebServicesVirtualDirectory "EX-NY1\\EWS (Default Web Site)" '
        "-BasicAuthentication $true",
        "--dir",
        str(lab.running.dir),
    )
    assert result.stderr in ("", NOTHING_MODIFIED), result.stderr
    endpoint = lab.url("mail.contoso.com", "/EWS/Exchange.asmx")
    adam = ews_account(endpoint, "contoso\\adam", "adam@contoso.com")
    fiona = ews_account(endpoint, "contoso\\fiona", "fiona@contoso.com")
    _eventually(lambda: _signs_in(adam), 15)
    # Folders: created, renamed, refused twice, deleted, all in FL's store through NY's CAS.
    folder = Folder(parent=adam.inbox, name="Tampa office")
    folder.save()
    folder.name = "Tampa"
    folder.save()
    assert "Tampa" in {f.name for f in adam.inbox.children}
    with pytest.raises(ErrorFolderExists):
        Folder(parent=adam.inbox, name="tampa").save()
    with pytest.raises(ErrorDeleteDistinguishedFolder):
        adam.inbox.delete()
    # A draft saved in the new folder, moved to Drafts, sent from there to fiona (FL).
    draft = Message(
        account=adam,
        folder=folder,
        subject="Lab send",
        body="Over EWS, proxied by EX-NY1.",
        to_recipients=["fiona@contoso.com"],
    )
    draft.save()
    draft.move(adam.drafts)
    draft.send()
    Message(
        account=adam, subject="Lab send, no copy", body="-", to_recipients=["fiona@contoso.com"]
    ).send(save_copy=False)
    folder.delete()
    assert "Tampa" not in {f.name for f in adam.inbox.children}

    def arrived() -> bool:
        return {"Lab send", "Lab send, no copy"} <= {i.subject for i in fiona.inbox.all()}

    _eventually(arrived)
    sent = {i.subject for i in adam.sent.all()}
    assert "Lab send" in sent and "Lab send, no copy" not in sent
    assert "Lab send" not in {i.subject for i in adam.drafts.all()}


def _signs_in(account: Account) -> bool:
    try:
        _ = account.inbox  # the CAS sees the directory change within a second
    except Exception:
        return False
    return True
