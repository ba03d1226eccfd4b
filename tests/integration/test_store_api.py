"""The store API over real HTTPS on loopback: a hub or CAS client against MSExchangeIS.

The organization: EX-NY1 (site NY, 127.66.1.11) holds database DB-NY with
alice; EX-FL1 (site FL) holds DB-FL with adam.  EX-CAS1 is the calling
server.  Certificates come from the organization CA; a second CA
("Fabrikam") stands for a foreign organization.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.delivery_batch import DELIVER_TO, BatchMessage
from sitemail.mailbox.errors import (
    AccessDenied,
    FolderExists,
    FolderNotFound,
    InvalidRequest,
    MailboxNotFound,
    MessageNotFound,
    MessageTooLarge,
    StoreUnavailable,
)
from sitemail.mailbox.records import Flags, FlagUpdate
from sitemail.mailbox.service import InformationStoreService
from sitemail.mailbox.store_client import StoreClient
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import (
    AcceptedDomain,
    Mailbox,
    MailboxDatabase,
    Organization,
    Server,
    ServerRole,
    Site,
)
from sitemail.org.pki import CertFiles, OrganizationPki, client_ssl_context

NY_ADDRESS = "127.66.1.11"
MB = 1024 * 1024


@dataclass
class Org:
    tmp: Path
    pki: OrganizationPki
    directory: Directory
    foreign: OrganizationPki


@pytest.fixture
def org(tmp_path: Path) -> Org:
    pki = OrganizationPki.open_or_create(tmp_path / "pki", "Contoso")
    pki.ensure_server("EX-NY1", "EX-NY1.contoso.com", addresses=[NY_ADDRESS])
    pki.ensure_server("EX-FL1", "EX-FL1.contoso.com", addresses=["127.66.2.11"])
    pki.ensure_server("EX-CAS1", "EX-CAS1.contoso.com", addresses=["127.66.1.12"])
    pki.ensure_admin()
    foreign = OrganizationPki.open_or_create(tmp_path / "foreign", "Fabrikam")
    foreign.ensure_server("EX-CAS1", "EX-CAS1.contoso.com", addresses=["127.66.1.12"])

    directory = open_directory(str(tmp_path / "d.db"))
    directory.put(
        Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    )
    for site in ("NY", "FL"):
        directory.put(Site(name=site))
    for name, site, address in [
        ("EX-NY1", "NY", NY_ADDRESS),
        ("EX-FL1", "FL", "127.66.2.11"),
        ("EX-CAS1", "NY", "127.66.1.12"),
    ]:
        directory.put(
            Server(
                name=name,
                fqdn=f"{name}.contoso.com",
                site=site,
                roles=[ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS],
                addresses=[address],
            )
        )
    directory.put(MailboxDatabase(name="DB-NY", server="EX-NY1"))
    directory.put(MailboxDatabase(name="DB-FL", server="EX-FL1"))
    directory.put(
        Mailbox(
            alias="alice",
            display_name="Alice",
            primary_smtp_address="alice@contoso.com",
            email_addresses=["a.smith@contoso.com"],
            database="DB-NY",
        )
    )
    directory.put(
        Mailbox(
            alias="adam",
            display_name="Adam",
            primary_smtp_address="adam@contoso.com",
            database="DB-FL",
        )
    )
    return Org(tmp_path, pki, directory, foreign)


def run(scenario: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 60))


@asynccontextmanager
async def store_of_ny(org: Org, **options: Any) -> AsyncIterator[InformationStoreService]:
    service = InformationStoreService(
        "EX-NY1",
        org.directory,
        org.tmp / "servers" / "EX-NY1",
        address=NY_ADDRESS,
        port=0,
        pki_dir=org.tmp / "pki",
        **options,
    )
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def client_for(
    org: Org, service: InformationStoreService, cert: CertFiles | None = None
) -> StoreClient:
    def resolve(server: str) -> tuple[str, int]:
        if server != "EX-NY1":
            raise LookupError(f"{server} is not running in this test")
        return NY_ADDRESS, service.port

    return StoreClient(
        org.directory,
        resolve,
        ca_file=org.pki.ca_file,
        cert_files=cert or org.pki.server_files("EX-CAS1"),
        timeout=10,
    )


async def raw_get(
    org: Org, service: InformationStoreService, path: str, ctx: ssl.SSLContext
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"https://{NY_ADDRESS}:{service.port}{path}",
            ssl=ctx,
            server_hostname="ex-ny1.contoso.com",
        ) as response,
    ):
        return response.status, await response.json()


def message(subject: str, body: str = "Hello\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Bob <bob@contoso.com>"
    msg["To"] = "alice@contoso.com"
    msg["Subject"] = subject
    msg.set_content(body)
    return bytes(msg)


def big_binary_message(size: int) -> bytes:
    head = (
        b"From: hub@contoso.com\r\nSubject: big\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    block = hashlib.sha256(b"seed").digest() + bytes(range(256))
    body = (block * (size // len(block) + 1))[: size - len(head)]
    return head + body


# --- the store API at work -------------------------------------------------------


def test_deliver_list_read_back_flag_and_move(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            raw = message("Quarterly numbers")
            first = await store.deliver("alice@contoso.com", "0001:alice@contoso.com", raw)
            again = await store.deliver("a.smith@contoso.com", "0001:alice@contoso.com", raw)
            assert not first.duplicate and again.duplicate
            assert again.message_id == first.message_id

            page = await store.list_messages("alice", "inbox")
            assert page.total == 1 and page.items[0].subject == "Quarterly numbers"
            assert page.items[0].from_address is not None
            assert page.items[0].from_address.address == "bob@contoso.com"
            assert await store.read_raw("alice", first.message_id) == raw

            flagged = await store.set_flags(
                "alice", first.message_id, FlagUpdate(seen=True, flagged=True)
            )
            assert flagged.flags == Flags(seen=True, flagged=True)
            archive = await store.create_folder("alice", "Archive")
            moved = await store.move("alice", first.message_id, archive.id)
            assert moved.folder_id == archive.id and moved.uid == 1
            folders = {f.path: f for f in await store.list_folders("alice")}
            assert folders["Inbox"].total == 0
            assert (folders["Archive"].total, folders["Archive"].unread) == (1, 0)
            assert (org.tmp / "servers" / "EX-NY1" / "mailbox" / "DB-NY.db").exists()

    run(scenario())


def test_a_5mb_binary_message_streams_both_ways_unchanged(org: Org) -> None:
    async def scenario() -> None:
        raw = big_binary_message(5 * MB)
        spool = org.tmp / "spool.eml"
        spool.write_bytes(raw)
        async with store_of_ny(org) as service, client_for(org, service) as store:
            delivered = await store.deliver("alice", "big:alice@contoso.com", spool)

            received = bytearray()
            largest_chunk = 0
            async with store.open_raw("alice", delivered.message_id) as stream:
                assert stream.size == len(raw)
                async for chunk in stream:
                    largest_chunk = max(largest_chunk, len(chunk))
                    received += chunk
            assert hashlib.sha256(received).digest() == hashlib.sha256(raw).digest()
            assert largest_chunk < 1 * MB  # it came in pieces, not as one buffer

            part = await store.read_raw("alice", delivered.message_id, start=10, length=20)
            assert part == raw[10:30]
            # Short ranges (EWS's header reads) come in one piece; the long ones stream.
            for start, length in ((0, 64 * 1024), (len(raw) - 5, 100), (len(raw) + 9, 10)):
                async with store.open_raw(
                    "alice", delivered.message_id, start=start, length=length
                ) as stream:
                    assert stream.message_size == len(raw)
                    assert await stream.read() == raw[start : start + length]
            assert len(await store.read_raw("alice", delivered.message_id, length=MB)) == MB
            with pytest.raises(MessageNotFound):
                await store.read_raw("alice", 424242, length=100)

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(raw), 100_000):
                    yield raw[start : start + 100_000]

            appended = await store.append("alice", "drafts", chunks(), flags=Flags(draft=True))
            assert await store.read_raw("alice", appended.message_id) == raw

    run(scenario())


def test_parts_folders_search_and_imap_routes(org: Org) -> None:
    async def scenario() -> None:
        msg = EmailMessage()
        msg["Subject"] = "Report with attachment"
        msg["From"] = "carol@contoso.com"
        msg.set_content("See the attached file.\n")
        msg.add_attachment(
            b"\x00\x01binary\xff" * 500, maintype="application", subtype="pdf", filename="r.pdf"
        )
        async with store_of_ny(org) as service, client_for(org, service) as store:
            report = await store.deliver("alice", "r:alice", bytes(msg))
            for n in range(3):
                await store.deliver("alice", f"n{n}:alice", message(f"note {n}"))

            detail = await store.get_message("alice", report.message_id)
            assert detail.has_attachments and [p.part_id for p in detail.structure.walk()] == [
                "",
                "1",
                "2",
            ]
            assert await store.read_part("alice", report.message_id, "2") == (
                b"\x00\x01binary\xff" * 500
            )

            projects = await store.create_folder("alice", "Projects", "inbox")
            with pytest.raises(FolderExists):
                await store.create_folder("alice", "projects", "inbox")
            renamed = await store.rename_folder("alice", projects.id, "Work")
            moved = await store.move_folder("alice", renamed.id, None)
            assert moved.path == "Work"
            assert (await store.find_folder("alice", "work")).id == projects.id
            assert await store.delete_folder("alice", projects.id) == [projects.id]
            # Exchange's own folders, a folder without a class, and a folder's properties.
            every = await store.list_folders("alice", everything=True)
            assert {f.name for f in every if not f.ipm} >= {"Finder", "Deletions"}
            assert all(f.ipm for f in await store.list_folders("alice"))
            plain = await store.create_folder("alice", "Plain", None, "")
            assert plain.folder_class == "" and plain.ipm
            kept = await store.set_folder_properties("alice", plain.id, {"extended": {"k": 1}})
            assert (await store.get_folder_properties("alice", plain.id)) == kept
            assert (
                await store.get_folder("alice", "recoverableitemsdeletions")
            ).name == "Deletions"

            found = await store.search("alice", "ATTACHED", fields=["text"])
            assert [m.id for m in found.items] == [report.message_id]

            uids = await store.uids("alice", "inbox")
            assert [e.uid for e in uids.entries] == [1, 2, 3, 4] and uids.uidnext == 5
            entries = await store.store_flags("alice", "inbox", [2, 3], add=["deleted"])
            assert all(e.flags.deleted for e in entries)
            expunged = await store.expunge("alice", "inbox")
            assert expunged.uids == [2, 3]
            changes = await store.changes("alice", "inbox", uids.modseq)
            assert changes.vanished == [2, 3]

            copy = await store.copy("alice", report.message_id, "sentitems")
            gone = await store.delete("alice", copy.message_id, hard=True)
            assert gone is None
            to_trash = await store.delete("alice", report.message_id)
            assert to_trash is not None
            assert to_trash.folder_id == (await store.get_folder("alice", "deleteditems")).id
            draft = await store.append("alice", "drafts", message("to send"))
            assert (await store.submit("alice", draft.message_id)).folder_id == (
                await store.get_folder("alice", "outbox")
            ).id

    run(scenario())


def test_changes_wait_returns_as_soon_as_a_message_arrives(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            inbox = await store.get_folder("alice", "inbox")
            loop = asyncio.get_running_loop()
            started = loop.time()
            waiting = asyncio.create_task(store.changes("alice", "inbox", inbox.modseq, wait=20))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            delivered = await store.deliver("alice", "w:alice", message("wake up"))
            changes = await waiting
            assert [e.message_id for e in changes.changed] == [delivered.message_id]
            assert loop.time() - started < 5

            quiet = await store.changes("alice", "inbox", changes.modseq, wait=0.2)
            assert quiet.changed == [] and quiet.vanished == []

    run(scenario())


def test_many_concurrent_deliveries_are_all_stored_once(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            results = await asyncio.gather(
                *(
                    store.deliver("alice", f"c{n % 10}:alice", message(f"m{n % 10}"))
                    for n in range(30)
                )
            )
            assert sum(not r.duplicate for r in results) == 10
            assert (await store.get_folder("alice", "inbox")).total == 10

    run(scenario())


def test_a_hub_batch_is_one_request_with_an_answer_per_recipient(org: Org) -> None:
    async def scenario() -> None:
        shared = org.tmp / "shared.eml"
        shared.write_bytes(message("to two names"))
        big = org.tmp / "big.eml"
        big.write_bytes(big_binary_message(2 * MB))
        ok = org.tmp / "ok.eml"
        ok.write_bytes(message("after the big one"))
        async with (
            store_of_ny(org, max_message_size=1 * MB) as service,
            client_for(org, service) as store,
        ):
            await store.deliver("alice", "1:alice", message("earlier"))
            batch = [
                BatchMessage(
                    shared, (("alice@contoso.com", "2:alice"), ("a.smith@contoso.com", "1:alice"))
                ),
                BatchMessage(big, (("alice", "3:alice"),)),
                BatchMessage(ok, (("alice", "4:alice"), ("nobody@contoso.com", "4:nobody"))),
                # adam's database is on EX-FL1, which this test does not run.
                BatchMessage(ok, (("adam", "4:adam"),)),
            ]
            new, duplicate, too_large, after, unknown, elsewhere = await store.deliver_many(batch)
            assert not isinstance(new, Exception) and not new.duplicate
            assert not isinstance(duplicate, Exception) and duplicate.duplicate
            assert isinstance(too_large, MessageTooLarge)
            # The part after an over-size one is still read and stored.
            assert not isinstance(after, Exception) and not after.duplicate
            assert isinstance(unknown, MailboxNotFound)
            assert isinstance(elsewhere, StoreUnavailable)
            page = await store.list_messages("alice", "inbox")
            assert sorted(m.subject for m in page.items) == [
                "after the big one",
                "earlier",
                "to two names",
            ]
            # Many recipients of one message travel in several parts, each answered.
            many = tuple(("alice", f"5:{n:0300d}") for n in range(40))
            answers = await store.deliver_many([BatchMessage(ok, many)])
            assert len(answers) == 40 and all(not isinstance(a, Exception) for a in answers)
            assert sum(not a.duplicate for a in answers if not isinstance(a, Exception)) == 40

    run(scenario())


def test_data_survives_a_service_restart(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            delivered = await store.deliver("alice", "keep:alice", message("kept"))
        async with store_of_ny(org) as service, client_for(org, service) as store:
            assert (await store.get_message("alice", delivered.message_id)).subject == "kept"
            assert (await store.deliver("alice", "keep:alice", message("kept"))).duplicate

    run(scenario())


# --- who may call, and for which mailbox ----------------------------------------------


def test_a_client_without_a_certificate_is_refused_with_403(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service:
            status, body = await raw_get(
                org, service, "/mailboxes/alice/folders", client_ssl_context(org.pki.ca_file)
            )
            assert status == 403 and body["error"] == AccessDenied.code
            assert "server certificate" in body["message"]

    run(scenario())


def test_the_admin_certificate_is_admitted_for_diagnostics(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service:
            ctx = client_ssl_context(org.pki.ca_file, files=org.pki.admin_files())
            status, body = await raw_get(org, service, "/mailboxes/alice/folders", ctx)
            assert status == 200
            assert [f["name"] for f in body["folders"]][:1] == ["Inbox"]

    run(scenario())


def test_a_certificate_of_another_organization_is_refused(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service:
            intruder = client_for(org, service, cert=org.foreign.server_files("EX-CAS1"))
            async with intruder:
                with pytest.raises(StoreUnavailable):
                    await intruder.list_folders("alice")
            async with client_for(org, service) as store:  # the store still serves the others
                assert len(await store.list_folders("alice")) == 17  # the default folders

    run(scenario())


def test_a_mailbox_of_another_server_is_refused_with_409_naming_its_server(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service:
            ctx = client_ssl_context(org.pki.ca_file, files=org.pki.server_files("EX-CAS1"))
            status, body = await raw_get(org, service, "/mailboxes/adam@contoso.com/folders", ctx)
            assert status == 409
            assert body["error"] == "wrong_server"
            assert body["server"] == "EX-FL1" and body["database"] == "DB-FL"
            assert "EX-FL1" in body["message"]
            assert not (org.tmp / "servers" / "EX-NY1" / "mailbox" / "DB-FL.db").exists()

    run(scenario())


def test_a_folder_view_is_the_tree_the_folder_and_its_page_in_one_call(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            for n in range(3):
                raw = message(f"Note {n}")
                await store.deliver("alice", f"view-{n}:alice@contoso.com", raw)
            view = await store.folder_view("alice", "inbox", offset=1, limit=1)
            assert view.folders == await store.list_folders("alice")
            assert view.folder.path == "Inbox" and (view.folder.total, view.folder.unread) == (3, 3)
            assert view.page == await store.list_messages("alice", "inbox", offset=1, limit=1)
            assert [m.subject for m in view.page.items] == ["Note 1"]  # newest first
            archive = await store.create_folder("alice", "Archive")
            by_id = await store.folder_view("alice", archive.id)
            assert by_id.folder == archive and by_id.page.total == 0
            with pytest.raises(FolderNotFound):
                await store.folder_view("alice", 987654)
            with pytest.raises(InvalidRequest):
                await store.folder_view("alice", "inbox", limit=5000)

    run(scenario())


def test_a_kept_folder_view_follows_every_commit_from_any_connection(org: Org) -> None:
    """The store keeps a folder view's answer under the database's version: the
    same page asked again is the same, and anything committed since, by the
    store itself or by another process's connection, shows at once."""

    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            first = await store.deliver("alice", "kept-1:alice@contoso.com", message("One"))
            view = await store.folder_view("alice", "inbox")
            assert await store.folder_view("alice", "inbox") == view
            await store.deliver("alice", "kept-2:alice@contoso.com", message("Two"))
            view = await store.folder_view("alice", "inbox")
            assert [m.subject for m in view.page.items] == ["Two", "One"]
            assert {f.path: f.unread for f in await store.list_folders("alice")}["Inbox"] == 2
            await store.set_flags("alice", first.message_id, FlagUpdate(seen=True))
            assert {f.path: f.unread for f in await store.list_folders("alice")}["Inbox"] == 1
            view = await store.folder_view("alice", "inbox")
            assert view.folder.unread == 1 and view.page.items[1].flags.seen
            path = org.tmp / "servers" / "EX-NY1" / "mailbox" / "DB-NY.db"
            with StoreDatabase(path, name="DB-NY") as other:  # another process's connection
                other.create_folder("alice", "Elsewhere")
                other.set_flags("alice", first.message_id, FlagUpdate(seen=False))
            view = await store.folder_view("alice", "inbox")
            assert "Elsewhere" in [f.path for f in view.folders]
            assert view.folders == await store.list_folders("alice")
            assert view.folder.unread == 2 and not view.page.items[1].flags.seen

    run(scenario())


def test_a_kept_message_page_follows_every_commit_from_any_connection(org: Org) -> None:
    """A folder's message page is kept as a folder view is (EWS FindItem and ActiveSync
    ask for the same page again and again): the same order, offsets and flags as a fresh
    read after any commit, the store's or another process's."""

    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            first = await store.deliver("alice", "page-1:alice@contoso.com", message("One"))
            page = await store.list_messages("alice", "inbox")
            assert await store.list_messages("alice", "inbox") == page
            await store.deliver("alice", "page-2:alice@contoso.com", message("Two"))
            newest = await store.list_messages("alice", "inbox")
            assert [m.subject for m in newest.items] == ["Two", "One"] and newest.total == 2
            oldest = await store.list_messages("alice", "inbox", oldest_first=True)
            assert [m.subject for m in oldest.items] == ["One", "Two"]
            second = await store.list_messages("alice", "inbox", offset=1, limit=1)
            assert [m.subject for m in second.items] == ["One"]
            await store.set_flags("alice", first.message_id, FlagUpdate(seen=True))
            page = await store.list_messages("alice", "inbox")
            assert page.items[1].flags.seen
            path = org.tmp / "servers" / "EX-NY1" / "mailbox" / "DB-NY.db"
            with StoreDatabase(path, name="DB-NY") as other:  # another process's connection
                other.set_flags("alice", first.message_id, FlagUpdate(seen=False))
            page = await store.list_messages("alice", "inbox")
            assert not page.items[1].flags.seen

    run(scenario())


def test_a_folder_view_etag_answers_304_until_a_commit_or_a_restart(org: Org) -> None:
    async def conditional(service: InformationStoreService, tag: str | None) -> tuple[int, str]:
        ctx = client_ssl_context(org.pki.ca_file, files=org.pki.server_files("EX-CAS1"))
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"https://{NY_ADDRESS}:{service.port}/mailboxes/alice/folders/inbox/view",
                ssl=ctx,
                server_hostname="ex-ny1.contoso.com",
                headers={"If-None-Match": tag} if tag else None,
            ) as response,
        ):
            body = await response.read()
            assert (response.status == 304) == (body == b"")
            return response.status, response.headers["ETag"]

    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            # The first look at a mailbox provisions it (a commit): look once before.
            await store.deliver("alice", "tag-0:alice@contoso.com", message("Old"))
            status, first = await conditional(service, None)
            assert status == 200
            assert await conditional(service, first) == (304, first)
            await store.deliver("alice", "tag-1:alice@contoso.com", message("New"))
            status, second = await conditional(service, first)
            assert status == 200 and second != first
        async with store_of_ny(org) as service:  # a restarted store never says "unchanged"
            status, third = await conditional(service, second)
            assert status == 200 and third != second

    run(scenario())


def test_client_errors_name_what_was_wrong(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            with pytest.raises(MailboxNotFound):
                await store.list_folders("nobody@contoso.com")
            with pytest.raises(MessageNotFound):
                await store.get_message("alice", 424242)
            with pytest.raises(InvalidRequest):
                await store.list_messages("alice", "inbox", limit=5000)
            with pytest.raises(InvalidRequest):
                await store.deliver("alice", "", message("no id"))
            with pytest.raises(StoreUnavailable, match="EX-FL1"):
                await store.list_folders("adam")  # its server is not running here

    run(scenario())


def test_a_message_above_the_store_limit_is_refused_with_413(org: Org) -> None:
    async def scenario() -> None:
        async with (
            store_of_ny(org, max_message_size=1 * MB) as service,
            client_for(org, service) as store,
        ):
            with pytest.raises(MessageTooLarge):
                await store.deliver("alice", "huge:alice", big_binary_message(2 * MB))
            assert (await store.get_folder("alice", "inbox")).total == 0

    run(scenario())


# --- bounded inputs, service lifecycle --------------------------------------------------


async def raw_request(
    org: Org, service: InformationStoreService, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    ctx = client_ssl_context(org.pki.ca_file, files=org.pki.server_files("EX-CAS1"))
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"https://{NY_ADDRESS}:{service.port}{path}",
            ssl=ctx,
            server_hostname="ex-ny1.contoso.com",
            **kwargs,
        ) as response,
    ):
        return response.status, await response.json()


def _batch_body(*recipients: str | None) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("mixed")
    for value in recipients:
        writer.append(message("batch"), {} if value is None else {DELIVER_TO: value})
    return writer


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/mailboxes/alice/folders/inbox/messages?limit=abc", {}),
    ("GET", "/mailboxes/alice/folders/inbox/messages?order=sideways", {}),
    ("GET", "/mailboxes/alice/messages/abc", {}),
    ("GET", "/mailboxes/alice/folders/nonsense", {}),
    ("PATCH", "/mailboxes/alice/messages/1", {"json": {"seen": "perhaps"}}),
    ("POST", "/mailboxes/alice/folders", {"json": {"parent": "inbox"}}),
    ("POST", "/mailboxes/alice/folders", {"json": {"name": "a/b"}}),
    ("POST", "/mailboxes/alice/folders", {"data": b"{not json"}),
    ("POST", "/mailboxes/alice/folders", {"json": {"name": "x" * 300_000}}),
    ("POST", "/mailboxes/alice/folders/inbox/flags", {"json": {"uids": [1], "add": ["magic"]}}),
    ("POST", "/mailboxes/alice/folders/inbox/flags", {"json": {"uids": "1:*"}}),
    ("POST", "/mailboxes/alice/folders/inbox/append?received=yesterday", {"data": b"x"}),
    ("GET", "/mailboxes/alice/folders/inbox/changes?wait=3600", {}),
    ("GET", "/mailboxes/alice/search?q=", {}),
    ("GET", "/mailboxes/" + "a" * 400 + "/folders", {}),
    ("POST", "/deliveries", {"data": b"not multipart"}),
    ("POST", "/deliveries", {"data": _batch_body(None)}),
    ("POST", "/deliveries", {"data": _batch_body('{"alice": "1"}')}),
    ("POST", "/deliveries", {"data": _batch_body('[["alice", "1", "extra"]]')}),
    ("POST", "/deliveries", {"data": _batch_body(json.dumps([["alice", "x"] * 4000]))}),
    ("POST", "/deliveries", {"data": _batch_body(*[json.dumps([["alice", "x"]] * 100)] * 11)}),
    ("POST", "/deliveries", {"data": _batch_body(*['[["alice", "x"]]'] * 101)}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), BAD_REQUESTS)
def test_malformed_requests_get_a_400_that_says_what_is_wrong(
    org: Org, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service:
            status, body = await raw_request(org, service, method, path, **kwargs)
            assert status == 400, body
            assert body["error"] == "invalid" and body["message"]

    run(scenario())


def test_stopping_the_service_ends_waiting_requests_promptly(org: Org) -> None:
    async def scenario() -> None:
        service = InformationStoreService(
            "EX-NY1",
            org.directory,
            org.tmp / "servers" / "EX-NY1",
            address=NY_ADDRESS,
            port=0,
            pki_dir=org.tmp / "pki",
        )
        assert service.name == "MSExchangeIS"
        assert service.display_name == "Microsoft Exchange Information Store"
        await service.start()
        assert [d.name for d in service.databases()] == ["DB-NY"]
        async with client_for(org, service) as store:
            waiting = asyncio.create_task(store.changes("alice", "inbox", 10**6, wait=50))
            await asyncio.sleep(0.3)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await service.stop()
            await asyncio.wait([waiting], timeout=10)
            assert loop.time() - started < 5
            assert service.databases() == []

    run(scenario())
