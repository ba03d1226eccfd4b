"""Exchange Web Services with exchangelib, on two in-process Client Access servers over TLS.

EX-NY1 (site NY) and EX-FL1 (site FL) run the front door of
:mod:`tests.unit.access.test_web_front` with the EWS handler plugged in.
exchangelib (requests underneath) reaches them by name through
:class:`bench.lab_names.LabNamesAdapter`, which dials the mapped address and keeps the name
for SNI, the certificate check and the Host header; it trusts the test CA
through ``REQUESTS_CA_BUNDLE``, which requests lets override ``verify=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bench.lab_names import LabNamesAdapter, MappedConnection
from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    Version,
)
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorFolderNotFound,
    ErrorNameResolutionNoResults,
    UnauthorizedError,
)
from exchangelib.protocol import BaseProtocol
from tests.unit.access.test_web_front import PASSWORD, DatabaseStore, Lab, running

from sitemail.access.autodiscover_handler import AutodiscoverHandler
from sitemail.access.ews_handler import EwsHandler
from sitemail.access.ews_ids import folder_id
from sitemail.access.ews_mailbox import EwsStore
from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.database_reads import SEARCH_FIELDS
from sitemail.mailbox.records import (
    Flags,
    Folder,
    FolderChanges,
    FolderUids,
    ItemProperties,
    MessagePage,
    Placement,
)
from sitemail.org.model import VirtualDirectoryKind

NY_EWS = "EX-NY1\\EWS (Default Web Site)"
FL_EWS = "EX-FL1\\EWS (Default Web Site)"


@pytest.fixture
def lab_names(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    names: dict[str, str] = {}
    monkeypatch.setattr(MappedConnection, "names", names)
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", LabNamesAdapter)
    yield names


def ews_account(url: str, user: str, address: str, *, password: str = PASSWORD) -> Account:
    config = Configuration(
        service_endpoint=url,
        credentials=Credentials(user, password),
        auth_type=BASIC,
        version=Version(build=Build(14, 3, 123, 4)),
    )
    return Account(address, config=config, autodiscover=False, access_type=DELEGATE)


# ------------------------------------------------------------------ the servers


class EwsTestStore(DatabaseStore):
    async def read_raw(
        self, mailbox: str, message_id: int, *, start: int = 0, length: int | None = None
    ) -> bytes:
        data = self.db.read_raw(mailbox, message_id)
        return data[start : None if length is None else start + length]

    async def copy(self, mailbox: str, message_id: int, folder: int | str) -> Placement:
        return self.db.copy(mailbox, message_id, folder)

    async def append(
        self,
        mailbox: str,
        folder: int | str,
        message: bytes,
        *,
        flags: Flags | None = None,
        received_at: datetime | None = None,
    ) -> Placement:
        return self.db.append(mailbox, folder, message, flags=flags, received_at=received_at)

    async def replace(self, mailbox: str, message_id: int, message: bytes) -> Placement:
        return self.db.replace(mailbox, message_id, message)

    async def get_properties(self, mailbox: str, message_id: int) -> ItemProperties:
        return self.db.get_properties(mailbox, message_id)

    async def set_properties(
        self, mailbox: str, message_id: int, properties: dict[str, Any]
    ) -> ItemProperties:
        return self.db.set_properties(mailbox, message_id, properties)

    async def create_folder(
        self,
        mailbox: str,
        name: str,
        parent: int | str | None = None,
        folder_class: str | None = None,
    ) -> Folder:
        if folder_class is None:
            return self.db.create_folder(mailbox, name, parent)
        return self.db.create_folder(mailbox, name, parent, folder_class)

    async def get_folder_properties(self, mailbox: str, folder: int | str) -> ItemProperties:
        return self.db.get_folder_properties(mailbox, folder)

    async def set_folder_properties(
        self, mailbox: str, folder: int | str, properties: dict[str, Any]
    ) -> ItemProperties:
        return self.db.set_folder_properties(mailbox, folder, properties)

    async def rename_folder(self, mailbox: str, folder: int | str, name: str) -> Folder:
        return self.db.rename_folder(mailbox, folder, name)

    async def move_folder(
        self, mailbox: str, folder: int | str, parent: int | str | None
    ) -> Folder:
        return self.db.move_folder(mailbox, folder, parent)

    async def delete_folder(self, mailbox: str, folder: int | str) -> list[int]:
        return self.db.delete_folder(mailbox, folder)

    async def search(
        self,
        mailbox: str,
        query: str,
        *,
        folder: int | str | None = None,
        fields: Collection[str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> MessagePage:
        chosen = SEARCH_FIELDS if fields is None else fields
        return self.db.search(
            mailbox, query, folder=folder, fields=chosen, offset=offset, limit=limit
        )

    async def uids(
        self, mailbox: str, folder: int | str, *, since: int = 0, limit: int | None = None
    ) -> FolderUids:
        if limit is None:
            return self.db.uids(mailbox, folder, since=since)
        return self.db.uids(mailbox, folder, since=since, limit=limit)

    async def changes(
        self, mailbox: str, folder: int | str, since_modseq: int, *, wait: float = 0.0
    ) -> FolderChanges:
        found = self.db.changes(mailbox, folder, since_modseq)
        if not wait or found.changed or found.vanished:
            return found
        # The store API's long poll: wait for the database's next commit, then look again.
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        stop = self.db.subscribe(lambda _: loop.call_soon_threadsafe(changed.set))
        try:
            found = self.db.changes(mailbox, folder, since_modseq)
            if not (found.changed or found.vanished):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait)
                found = self.db.changes(mailbox, folder, since_modseq)
        finally:
            stop()
        return found


def plug_ews(lab: Lab) -> None:
    for name in ("EX-NY1", "EX-FL1"):
        store: EwsStore = EwsTestStore(lab.stores[name])
        door = lab.doors[name]
        door.register(VirtualDirectoryKind.EWS, EwsHandler(lambda d=door: d, lambda s=store: s))
        door.register(VirtualDirectoryKind.AUTODISCOVER, AutodiscoverHandler(lambda d=door: d))


class Running:
    """The two servers on an event loop in a thread, while exchangelib runs in the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.lab: Lab | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running(self.tmp) as lab:
            plug_ews(lab)
            self.lab = lab
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Lab:
        self._thread.start()
        assert self._ready.wait(30), "the servers did not start"
        assert self.lab is not None
        return self.lab

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def servers(
    tmp_path: Path, lab_names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Lab]:
    with Running(tmp_path) as lab:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.pki.ca_file))
        monkeypatch.setenv("CURL_CA_BUNDLE", str(lab.pki.ca_file))
        for host in ("mail.contoso.com", "ex-ny1.contoso.com", "ex-fl1.contoso.com"):
            lab_names[host] = "127.0.0.1"
        # The test front doors listen on ephemeral ports: one per server.
        yield lab


def url(lab: Lab, host: str) -> str:
    return lab.url(host, "/EWS/Exchange.asmx")


def mime(subject: str, body: str, to: str = "adam@contoso.com") -> bytes:
    return (
        f"From: Bob Ny <bob@contoso.com>\r\nTo: Adam Fl <{to}>\r\nCc: Carl <carl@contoso.com>\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{abs(hash(subject))}@contoso.com>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


def test_exchangelib_reads_the_inbox_of_a_mailbox_in_the_same_site(servers: Lab) -> None:
    lab = servers
    lab.set_vdir(FL_EWS, basic_authentication=True)
    db: StoreDatabase = lab.stores["EX-FL1"]
    for i in range(7):
        db.deliver("adam", f"ews:{i}", mime(f"Report {i}", f"Body number {i} \u2713"))
    account = ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")
    inbox = account.inbox
    assert inbox.name == "Inbox" and inbox.total_count == 7 and inbox.unread_count == 7
    items = list(inbox.all().order_by("-datetime_received"))
    assert sorted(i.subject for i in items) == sorted(f"Report {i}" for i in range(7))
    first = next(i for i in items if i.subject == "Report 3")
    assert first.body.strip() == "Body number 3 \u2713"
    assert first.sender.email_address == "bob@contoso.com"
    assert [r.email_address for r in first.to_recipients] == ["adam@contoso.com"]
    assert [r.email_address for r in first.cc_recipients] == ["carl@contoso.com"]
    assert b"Subject: Report 3" in first.mime_content
    assert first.is_read is False
    # Paging: three at a time, through the whole folder.
    page = list(inbox.all().only("subject")[2:5])
    assert len(page) == 3
    assert {f.name for f in account.root.tois.children} >= {"Inbox", "Sent Items", "Drafts"}


def test_basic_sign_in_rules(servers: Lab) -> None:
    lab = servers
    endpoint = url(lab, "ex-fl1.contoso.com")
    # Out of the box, EWS allows Windows authentication only.
    with pytest.raises(UnauthorizedError):
        _ = ews_account(endpoint, "contoso\\adam", "adam@contoso.com").inbox
    lab.set_vdir(FL_EWS, basic_authentication=True)
    with pytest.raises(UnauthorizedError):
        _ = ews_account(endpoint, "contoso\\adam", "adam@contoso.com", password="nope").inbox
    # The ids of another user's folders are refused, and so is their mailbox by address.
    adam = ews_account(endpoint, "contoso\\adam", "adam@contoso.com")
    fiona = ews_account(endpoint, "contoso\\adam", "fiona@contoso.com")
    with pytest.raises((ErrorAccessDenied, ErrorFolderNotFound)):
        _ = fiona.inbox
    assert adam.inbox.name == "Inbox"


def test_ews_is_proxied_to_the_mailbox_site_and_availability_answers(servers: Lab) -> None:
    lab = servers
    lab.set_vdir(
        NY_EWS,
        basic_authentication=True,
        external_url="https://mail.contoso.com/EWS/Exchange.asmx",
    )
    lab.stores["EX-FL1"].deliver("adam", "ews:proxied", mime("Across sites", "Tampa"))
    account = ews_account(url(lab, "mail.contoso.com"), "contoso\\adam", "adam@contoso.com")
    items = list(account.inbox.all())
    assert [i.subject for i in items] == ["Across sites"]
    assert items[0].body.strip() == "Tampa"
    tz = EWSTimeZone("UTC")
    start = EWSDateTime(2030, 1, 7, 8, tzinfo=tz)
    views = list(
        account.protocol.get_free_busy_info(
            accounts=[(account, "Required", False), ("alice@contoso.com", "Optional", False)],
            start=start,
            end=start + timedelta(hours=4),
            merged_free_busy_interval=30,
            requested_view="MergedOnly",
        )
    )
    assert [v.merged for v in views] == ["0" * 8, "0" * 8]
    # Names resolve against the directory's mailboxes; one that matches none is said to.
    names = account.protocol.resolve_names(["ali"])
    assert [n.email_address for n in names] == ["alice@contoso.com"]
    (nothing,) = account.protocol.resolve_names(["zzz"])
    assert isinstance(nothing, ErrorNameResolutionNoResults)


def test_convert_id_names_the_mailbox_and_round_trips_every_format(servers: Lab) -> None:
    # DavMail learns the signed-in user's address by converting the root folder's id
    # (EwsId to EwsId) and reading the answer's Mailbox; MAPI tools convert to HexEntryId.
    from exchangelib.properties import ID_FORMATS, AlternateId

    lab = servers
    lab.set_vdir(
        NY_EWS,
        basic_authentication=True,
        external_url="https://mail.contoso.com/EWS/Exchange.asmx",
    )
    account = ews_account(url(lab, "mail.contoso.com"), "contoso\\adam", "adam@contoso.com")
    root = account.root.id
    converted = list(
        account.protocol.convert_ids(
            [AlternateId(id=root, format="EwsId", mailbox="blah@blah.com")], "EwsId"
        )
    )
    assert [(c.id, c.format, c.mailbox) for c in converted] == [(root, "EwsId", "adam@contoso.com")]
    for fmt in ID_FORMATS:
        (there,) = account.protocol.convert_ids(
            [AlternateId(id=root, format="EwsId", mailbox="adam@contoso.com")], fmt
        )
        assert there.format == fmt and there.mailbox == "adam@contoso.com"
        (back,) = account.protocol.convert_ids(
            [AlternateId(id=there.id, format=fmt, mailbox="adam@contoso.com")], "EwsId"
        )
        assert back.id == root, fmt
    # An Exchange id (the layout Exchange 2007 SP1 and later write) is re-laid out: its
    # EntryId is the MAPI store id it carries.
    exchange = (
        "AAMkADIxNDdkMTI4LTMxNTgtNGYzYy1iMGFlLWQxOTIzYTVlNTAwMgAuAAAAAAC"
        "QxfuhknwST6zPr7QuwK7BAQDtzmFCgwmzTq/6+pzfxPNiAAAAAAEBAAA="
    )
    (hexed,) = account.protocol.convert_ids(
        [AlternateId(id=exchange, format="EwsId", mailbox="adam@contoso.com")], "HexEntryId"
    )
    assert hexed.id.startswith("0000000090C5FBA1927C124FACCFAFB42EC0AEC1") and len(hexed.id) == 92
    # Another user's id is refused, not converted.
    alice_root = folder_id("alice", "root")
    with pytest.raises(ErrorAccessDenied):
        list(
            account.protocol.convert_ids(
                [AlternateId(id=alice_root, format="EwsId", mailbox="adam@contoso.com")], "EwsId"
            )
        )


def test_soap_autodiscover_gives_exchangelib_the_ews_url_and_version(
    servers: Lab, lab_names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # exchangelib 5 (like the EWS Managed API) asks SOAP Autodiscover first:
    # https://autodiscover.contoso.com/autodiscover/autodiscover.svc, GetUserSettings.
    import requests
    from bench.lab_names import lab_dns_check
    from exchangelib.autodiscover import clear_cache
    from exchangelib.autodiscover.discovery import Autodiscovery

    lab = servers
    ews = "https://mail.contoso.com/EWS/Exchange.asmx"
    lab.set_vdir(NY_EWS, basic_authentication=True, external_url=ews)
    port = lab.ports["EX-NY1"]
    lab_names.update(
        {"autodiscover.contoso.com": f"127.0.0.1:{port}", "mail.contoso.com": f"127.0.0.1:{port}"}
    )
    monkeypatch.setattr(Autodiscovery, "_ensure_valid_hostname", lab_dns_check)
    clear_cache()
    lab.stores["EX-FL1"].deliver("adam", "ews:autodiscover", mime("Found by Autodiscover", "x"))
    account = Account(
        "adam@contoso.com",
        credentials=Credentials("contoso\\adam", PASSWORD),
        autodiscover=True,
        access_type=DELEGATE,
    )
    assert account.protocol.service_endpoint == ews
    assert account.version.api_version == "Exchange2010_SP2"
    assert [i.subject for i in account.inbox.all()] == ["Found by Autodiscover"]
    clear_cache()

    # Per user and per setting: what the server has, what it has not, what it does not know.
    a = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
    users = "".join(
        f"<a:User><a:Mailbox>{u}</a:Mailbox></a:User>"
        for u in ("adam@contoso.com", "alice@contoso.com")
    )
    settings = "".join(
        f"<a:Setting>{s}</a:Setting>"
        for s in ("UserDisplayName", "ExternalEwsUrl", "ExternalUMUrl", "NoSuchSetting")
    )
    request = (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope '
        f'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="{a}"><s:Header>'
        "<a:RequestedServerVersion>Exchange2010</a:RequestedServerVersion></s:Header><s:Body>"
        f"<a:GetUserSettingsRequestMessage><a:Request><a:Users>{users}</a:Users>"
        f"<a:RequestedSettings>{settings}</a:RequestedSettings></a:Request>"
        "</a:GetUserSettingsRequestMessage></s:Body></s:Envelope>"
    )
    session = requests.Session()
    session.mount("https://", LabNamesAdapter())
    reply = session.post(
        lab.url("autodiscover.contoso.com", "/autodiscover/autodiscover.svc"),
        data=request.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=("contoso\\adam", PASSWORD),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    root = ET.fromstring(reply.content)
    adam, alice = root.iter(f"{{{a}}}UserResponse")
    assert alice.findtext(f"{{{a}}}ErrorCode") == "InvalidUser"  # only one's own addresses
    assert alice.findtext(f"{{{a}}}ErrorMessage") == "Invalid user 'alice@contoso.com'."
    assert adam.findtext(f"{{{a}}}ErrorCode") == "NoError"
    values = {
        s.findtext(f"{{{a}}}Name"): s.findtext(f"{{{a}}}Value")
        for s in adam.iter(f"{{{a}}}UserSetting")
    }
    assert values == {"UserDisplayName": "Adam User", "ExternalEwsUrl": ews}
    errors = {
        e.findtext(f"{{{a}}}SettingName"): e.findtext(f"{{{a}}}ErrorCode")
        for e in adam.iter(f"{{{a}}}UserSettingError")
    }
    assert errors == {"ExternalUMUrl": "SettingIsNotAvailable", "NoSuchSetting": "InvalidSetting"}
