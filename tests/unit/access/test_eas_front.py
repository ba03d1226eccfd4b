"""ActiveSync on two in-process Client Access servers and an Exchange 2003 back-end, over TLS.

EX-NY1 (NY), EX-FL1 (FL) are the front doors of
:mod:`tests.unit.access.test_web_front` with the ActiveSync handler plugged
in; EX2003 runs :class:`Exchange2003WebService` on its own port.  A device
is an aiohttp client speaking WBXML with Basic credentials.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from tests.unit.access.test_ews_exchangelib import EwsTestStore
from tests.unit.access.test_web_front import PASSWORD, Lab, browser, run, running

from sitemail.access.eas_handler import EasHandler
from sitemail.access.eas_legacy import Exchange2003ActiveSyncProxy
from sitemail.access.exchange2003_web import Exchange2003WebService
from sitemail.exchange2003.metabase import IisAuth, Metabase
from sitemail.mailbox.database import StoreDatabase
from sitemail.org.model import VirtualDirectoryKind
from sitemail.protocols.wbxml import Element, decode, el, encode
from sitemail.server.context import ProcessContext

NY_EAS = "EX-NY1\\Microsoft-Server-ActiveSync (Default Web Site)"
FL_EAS = "EX-FL1\\Microsoft-Server-ActiveSync (Default Web Site)"
EX2003_EAS = "EX2003\\Microsoft-Server-ActiveSync (Default Web Site)"
WBXML = "application/vnd.ms-sync.wbxml"


@dataclass
class EasLab:
    lab: Lab
    legacy: Exchange2003WebService
    legacy_store: StoreDatabase


@asynccontextmanager
async def eas_lab(tmp: Path, *, legacy_windows_auth: bool | None = None) -> AsyncIterator[EasLab]:
    async with running(tmp) as lab:
        db = StoreDatabase(tmp / "EX2003.db")
        ctx = ProcessContext(
            name="EX2003",
            site="NY",
            address="127.0.0.1",
            directory=lab.directory,
            directory_url="",
            base_dir=tmp,
            home=tmp / "EX2003",
            pki_dir=lab.pki.ca_file.parent,
        )
        legacy = Exchange2003WebService(
            ctx, port=0, windows_authentication=legacy_windows_auth, store=EwsTestStore(db)
        )
        await legacy.start()
        for name in ("EX-NY1", "EX-FL1"):
            door = lab.doors[name]
            store = EwsTestStore(lab.stores[name])
            handler = EasHandler(
                lambda d=door: d,
                lambda s=store: s,
                Exchange2003ActiveSyncProxy(
                    address_of=lambda server: "127.0.0.1", port=lambda port: legacy.port
                ),
            )
            door.register(VirtualDirectoryKind.EAS, handler)
        # NY is the Internet-facing site for ActiveSync too.
        lab.set_vdir(NY_EAS, external_url="https://mail.contoso.com/Microsoft-Server-ActiveSync")
        try:
            yield EasLab(lab, legacy, db)
        finally:
            await legacy.stop()
            db.close()


def auth(user: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"contoso\\{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Device:
    def __init__(self, s: aiohttp.ClientSession, url: str, user: str, version: str) -> None:
        self.s, self.url, self.user, self.version = s, url, user, version

    async def command(self, cmd: str, body: Element) -> tuple[aiohttp.ClientResponse, Element]:
        r = await self.s.post(
            f"{self.url}?Cmd={cmd}&User={self.user}&DeviceId=TESTDEV1&DeviceType=SmartPhone",
            data=encode(body),
            headers={
                **auth(self.user),
                "MS-ASProtocolVersion": self.version,
                "Content-Type": WBXML,
            },
            allow_redirects=False,
        )
        data = await r.read()
        assert r.status == 200, (r.status, data[:500])
        assert r.headers["Content-Type"] == WBXML
        return r, decode(data)

    async def folder_sync(self, key: str = "0") -> Element:
        return (
            await self.command(
                "FolderSync", el("FolderHierarchy:FolderSync", el("FolderHierarchy:SyncKey", key))
            )
        )[1]

    async def sync(self, collection: str, key: str, *extra: Element) -> Element:
        body = el(
            "AirSync:Sync",
            el(
                "AirSync:Collections",
                el(
                    "AirSync:Collection",
                    el("AirSync:SyncKey", key),
                    el("AirSync:CollectionId", collection),
                    *extra,
                ),
            ),
        )
        return (await self.command("Sync", body))[1].find("Collections/Collection") or el(
            "AirSync:Collection"
        )


def deliver(db: StoreDatabase, alias: str, subject: str, body: str = "Hello") -> None:
    raw = (
        f"From: Bob <bob@contoso.com>\r\nTo: {alias}@contoso.com\r\n"
        f"Subject: {subject}\r\n\r\n{body}\r\n"
    )
    db.deliver(alias, f"eas:{subject}", raw.encode())


def test_options_foldersync_and_sync_in_the_mailbox_site(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with eas_lab(tmp_path) as t, browser(t.lab) as s:
            for i in range(5):
                deliver(t.lab.stores["EX-FL1"], "adam", f"Note {i}", f"Text {i}")
            url = t.lab.url("ex-fl1.contoso.com", "/Microsoft-Server-ActiveSync")
            r = await s.options(url)
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
            r = await s.options(url, headers=auth("adam"))
            assert r.status == 200
            assert r.headers["MS-ASProtocolVersions"] == "2.0,2.1,2.5,12.0,12.1,14.0,14.1"
            assert "FolderSync" in r.headers["MS-ASProtocolCommands"].split(",")

            device = Device(s, url, "adam", "14.1")
            hierarchy = await device.folder_sync()
            assert hierarchy.findtext("Status") == "1"
            adds = {a.findtext("DisplayName"): a for a in hierarchy.findall("Changes/Add")}
            assert (
                adds["Inbox"].findtext("Type") == "2" and adds["Sent Items"].findtext("Type") == "5"
            )
            key = hierarchy.findtext("SyncKey") or ""
            again = await device.folder_sync(key)
            assert again.findtext("Changes/Count") == "0"
            assert (await device.folder_sync("{bogus}7")).findtext("Status") == "9"

            inbox = adds["Inbox"].findtext("ServerId") or ""
            first = await device.sync(inbox, "0")
            assert first.findtext("Status") == "1" and first.find("Commands") is None
            window = el("AirSync:WindowSize", "3")
            prefs = el(
                "AirSync:Options",
                el("AirSyncBase:BodyPreference", el("AirSyncBase:Type", "1")),
            )
            page1 = await device.sync(inbox, first.findtext("SyncKey") or "", window, prefs)
            added = page1.findall("Commands/Add")
            assert len(added) == 3 and page1.find("MoreAvailable") is not None
            subjects = [a.findtext("ApplicationData/Email:Subject") for a in added]
            assert subjects == ["Note 4", "Note 3", "Note 2"]  # newest first
            assert (
                added[0].findtext("ApplicationData/AirSyncBase:Body/Data") or ""
            ).strip() == "Text 4"
            page2 = await device.sync(inbox, page1.findtext("SyncKey") or "", window, prefs)
            assert len(page2.findall("Commands/Add")) == 2 and page2.find("MoreAvailable") is None
            # The device marks one read; a new message arrives; the next Sync has it.
            read_id = added[0].findtext("ServerId") or ""
            change = el(
                "AirSync:Commands",
                el(
                    "AirSync:Change",
                    el("AirSync:ServerId", read_id),
                    el("AirSync:ApplicationData", el("Email:Read", "1")),
                ),
            )
            key2 = page2.findtext("SyncKey") or ""
            after = await device.sync(inbox, key2, change)
            assert after.find("Commands") is None
            message_id = int(read_id.split(":")[1])
            assert t.lab.stores["EX-FL1"].get_message("adam", message_id).flags.seen
            deliver(t.lab.stores["EX-FL1"], "adam", "Late news")
            late = await device.sync(inbox, after.findtext("SyncKey") or "")
            assert [
                a.findtext("ApplicationData/Email:Subject") for a in late.findall("Commands/Add")
            ] == ["Late news"]
            # A lost answer: the previous key still works and gives the same change.
            retry = await device.sync(inbox, after.findtext("SyncKey") or "")
            assert len(retry.findall("Commands/Add")) == 1
            assert (await device.sync(inbox, "{bogus}3")).findtext("Status") == "3"
            assert (await device.sync("999", "0")).findtext("Status") == "8"

    run(scenario())


def test_cross_site_451_for_new_devices_proxy_for_old_ones(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with eas_lab(tmp_path) as t, browser(t.lab) as s:
            url = t.lab.url("mail.contoso.com", "/Microsoft-Server-ActiveSync")
            # FL has no ExternalUrl: NY proxies, whatever the device speaks.
            device = Device(s, url, "adam", "14.1")
            assert (await device.folder_sync()).findtext("Status") == "1"
            # Active/Active: FL gets an ExternalUrl.
            fl_url = "https://ex-fl1.contoso.com/Microsoft-Server-ActiveSync"
            t.lab.set_vdir(FL_EAS, external_url=fl_url)
            for version in ("14.1", "12.1"):
                r = await s.post(
                    f"{url}?Cmd=FolderSync&User=adam&DeviceId=TESTDEV1&DeviceType=SmartPhone",
                    data=encode(
                        el("FolderHierarchy:FolderSync", el("FolderHierarchy:SyncKey", "0"))
                    ),
                    headers={
                        **auth("adam"),
                        "MS-ASProtocolVersion": version,
                        "Content-Type": WBXML,
                    },
                )
                assert r.status == 451 and r.headers["X-MS-Location"] == fl_url
                # MS-ASHTTP's phrase, and IIS's name (not aiohttp's).
                assert r.reason == "Redirect" and r.headers["Server"] == "Microsoft-IIS/7.5"
            r = await s.options(url, headers={**auth("adam"), "MS-ASProtocolVersion": "14.0"})
            assert r.status == 451 and r.headers["X-MS-Location"] == fl_url
            # A 12.0 device cannot follow 451: proxied.
            old = Device(s, url, "adam", "12.0")
            assert (await old.folder_sync()).findtext("Status") == "1"
            # Windows authentication off on FL's EAS: proxying fails the way Exchange's does.
            t.lab.set_vdir(FL_EAS, windows_authentication=False)
            r = await s.options(url, headers=auth("adam"))
            assert r.status == 500
            assert "Integrated Windows authentication is off" in await r.text()

    run(scenario())


def test_exchange2003_mailbox_is_proxied_to_the_back_end(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with eas_lab(tmp_path) as t, browser(t.lab) as s:
            deliver(t.legacy_store, "larry", "From the old days")
            url = t.lab.url("mail.contoso.com", "/Microsoft-Server-ActiveSync")
            r = await s.options(url, headers={**auth("larry"), "MS-ASProtocolVersion": "14.1"})
            assert r.status == 200
            assert r.headers["MS-ASProtocolVersions"] == "1.0,2.0,2.1,2.5"  # EX2003 answered
            device = Device(s, url, "larry", "2.5")
            hierarchy = await device.folder_sync()
            inbox = next(
                a.findtext("ServerId")
                for a in hierarchy.findall("Changes/Add")
                if a.findtext("Type") == "2"
            )
            assert inbox
            first = await device.sync(inbox, "0")
            items = await device.sync(inbox, first.findtext("SyncKey") or "")
            (add,) = items.findall("Commands/Add")
            assert add.findtext("ApplicationData/Email:Subject") == "From the old days"
            assert (add.findtext("ApplicationData/Email:Body") or "").strip() == "Hello"
            # EX2003 itself takes no device: Basic or anonymous gets 401.
            direct = f"https://ex2003.contoso.com:{t.legacy.port}/Microsoft-Server-ActiveSync"
            for headers in ({}, auth("larry")):
                r = await s.options(direct, headers=headers)
                assert r.status == 401 and "Negotiate" in r.headers.getall("WWW-Authenticate")

    run(scenario())


def test_exchange2003_without_windows_authentication_refuses_the_proxy(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with eas_lab(tmp_path, legacy_windows_auth=False) as t, browser(t.lab) as s:
            url = t.lab.url("mail.contoso.com", "/Microsoft-Server-ActiveSync")
            r = await s.options(url, headers=auth("larry"))
            text = await r.text()
            assert r.status == 502, text
            assert "Exchange 2003 mailbox on EX2003" in text
            assert "Integrated Windows authentication" in text

    run(scenario())


def test_exchange2003_serves_what_its_metabase_says_not_the_directory(tmp_path: Path) -> None:
    # A change made in IIS Manager only (the metabase) is served at once; the
    # directory (ESM) is what the System Attendant puts back later.
    async def scenario() -> None:
        async with eas_lab(tmp_path) as t, browser(t.lab) as s:
            url = t.lab.url("mail.contoso.com", "/Microsoft-Server-ActiveSync")
            metabase = Metabase(tmp_path / "EX2003")
            served = metabase.effective(t.lab.directory, "EX2003")
            assert served["Microsoft-Server-ActiveSync"].windows  # the directory's copy
            t.lab.set_vdir(EX2003_EAS, windows_authentication=False)
            r = await s.options(url, headers=auth("larry"))
            assert r.status == 502 and "sitemail esm EX2003" in await r.text()
            served["Microsoft-Server-ActiveSync"] = IisAuth(False, True, True)
            metabase.write(served)
            r = await s.options(url, headers=auth("larry"))
            assert r.status == 200 and r.headers["MS-ASProtocolVersions"] == "1.0,2.0,2.1,2.5"

    run(scenario())


@pytest.mark.parametrize("version", ["9.9", "abc"])
def test_versions_the_server_does_not_speak_are_refused(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        async with eas_lab(tmp_path) as t, browser(t.lab) as s:
            url = t.lab.url("ex-fl1.contoso.com", "/Microsoft-Server-ActiveSync")
            r = await s.post(
                f"{url}?Cmd=FolderSync&User=adam&DeviceId=X1&DeviceType=P",
                data=b"",
                headers={**auth("adam"), "MS-ASProtocolVersion": version},
            )
            assert r.status == 400
            r = await s.post(
                f"{url}?Cmd=Search&User=adam&DeviceId=X1&DeviceType=P",
                data=b"",
                headers={**auth("adam"), "MS-ASProtocolVersion": "14.1"},
            )
            assert r.status == 501

    run(scenario())


def test_sendmail_of_an_eas_12_device_is_its_mime_with_save_in_sent(tmp_path: Path) -> None:
    """Before EAS 14.0 the request body is the message itself and SaveInSent=T keeps a copy."""

    async def scenario() -> None:
        async with eas_lab(tmp_path) as t, browser(t.lab) as s:
            url = t.lab.url("ex-fl1.contoso.com", "/Microsoft-Server-ActiveSync")
            db = t.lab.stores["EX-FL1"]

            async def send(
                subject: str, query: str, to: str = "To: fiona@contoso.com\r\n"
            ) -> tuple[int, bytes]:
                raw = f"From: adam@contoso.com\r\n{to}Subject: {subject}\r\n\r\nHi\r\n"
                r = await s.post(
                    f"{url}?Cmd=SendMail&User=adam&DeviceId=OLD1&DeviceType=P{query}",
                    data=raw.encode(),
                    headers={
                        **auth("adam"),
                        "MS-ASProtocolVersion": "12.1",
                        "Content-Type": "message/rfc822",
                    },
                )
                return r.status, await r.read()

            # Sent: HTTP 200 and no body.
            assert await send("Kept", "&SaveInSent=T") == (200, b"")
            assert await send("Not kept", "") == (200, b"")
            # Submitted: in the Outbox for Mail Submission, which files or drops each.
            outbox = {m.subject: m for m in db.list_messages("adam", "outbox").items}
            assert set(outbox) == {"Kept", "Not kept"}
            assert not outbox["Kept"].flags.deleted and outbox["Not kept"].flags.deleted
            status, text = await send("Nobody", "", to="")
            assert status == 400 and b"no recipient in To, Cc or Bcc" in text
            # The Exchange 2003 back-end has no Mail Submission: it does not offer SendMail.
            r = await s.options(
                t.lab.url("mail.contoso.com", "/Microsoft-Server-ActiveSync"),
                headers=auth("larry"),
            )
            assert r.headers["MS-ASProtocolCommands"] == "Sync,FolderSync,Provision"

    run(scenario())
