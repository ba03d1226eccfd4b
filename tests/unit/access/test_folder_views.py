"""What IMAP4 and OWA show of a mailbox's folders: the Top of Information Store only.

Exchange's own folders beside it (Common Views, Recoverable Items ...) are
EWS's alone; inside it, IMAP shows every folder, as Exchange 2010's IMAP4
does, and OWA's mail view the folders of a mail class.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.access.test_web_front import DatabaseStore

from sitemail.access.imap_mailbox import StoreImap
from sitemail.access.web.owa_list import FolderPages, ordered_folders
from sitemail.mailbox.database import StoreDatabase
from sitemail.protocols.imap import ImapServer


async def _nothing(data: bytes) -> None:
    return None


def test_imap_finds_the_top_of_the_store_and_not_exchanges_own_folders(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    imap = StoreImap(DatabaseStore(db), "adam", ImapServer(), _nothing)  # type: ignore[arg-type]

    async def scenario() -> None:
        names = {f.path for f in await imap.folders()}
        assert {"Sync Issues/Conflicts", "RSS Feeds", "Calendar"} <= names
        assert not names & {"Common Views", "Recoverable Items", "Recoverable Items/Deletions"}
        assert await imap.find("Recoverable Items/Deletions") is None
        assert await imap.find("sync issues/conflicts") is not None

    asyncio.run(scenario())


def test_owa_lists_the_mail_folders_only(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    db.create_folder("adam", "Plain", None, "")
    shown = [f.path for f in ordered_folders(db.list_folders("adam"))]
    assert shown[:6] == ["Inbox", "Drafts", "Sent Items", "Deleted Items", "Junk E-Mail", "Outbox"]
    assert {"RSS Feeds", "Sync Issues", "Sync Issues/Conflicts", "Plain"} <= set(shown)
    hidden = {"Calendar", "Contacts", "Conversation Action Settings"}
    assert not hidden & set(shown)


def test_a_folder_page_is_made_again_for_every_new_store_answer(tmp_path: Path) -> None:
    """The store client hands back the same answer object while the store says nothing
    changed; anything else, even an equal answer, is rendered again."""
    db = StoreDatabase(tmp_path / "db.sqlite")
    db.deliver("adam", "1:adam", b"From: bob@contoso.com\r\nSubject: <First>\r\n\r\nHi\r\n")
    pages = FolderPages()
    view = db.folder_view("adam", "inbox")
    title, content, tree = pages.render("adam", "inbox", 1, None, view)
    assert title == "Inbox" and "&lt;First&gt;" in content and "Items 1 to 1 of 1" in content
    again = pages.render("Adam", "inbox", 1, None, view)
    assert again[1] is content and again[2] is tree  # kept: the same answer
    equal = db.folder_view("adam", "inbox")
    assert equal == view and pages.render("adam", "inbox", 1, None, equal)[1] is not content
    assert "Your message was sent." in pages.render("adam", "inbox", 1, "sent", equal)[1]
    db.deliver("adam", "2:adam", b"From: bob@contoso.com\r\nSubject: Second\r\n\r\nHi\r\n")
    newer = pages.render("adam", "inbox", 1, None, db.folder_view("adam", "inbox"))[1]
    assert "Second" in newer and "Items 1 to 2 of 2" in newer


def test_ews_reads_a_messages_header_once_per_worker(tmp_path: Path) -> None:
    """FindItem's default shape needs each message's header (Importance, Sensitivity);
    a stored message never changes, so a worker reads it from the store once."""
    from sitemail.access.ews_mailbox import EwsMailbox
    from sitemail.access.ews_message_fields import KeptHeaders
    from sitemail.org.model import Mailbox

    db = StoreDatabase(tmp_path / "db.sqlite")
    raw = b"From: bob@contoso.com\r\nSubject: Hi\r\nImportance: high\r\n\r\nHi\r\n"
    db.deliver("adam", "1:adam", raw)
    reads: list[int] = []

    class Counting(DatabaseStore):
        async def read_raw(self, mailbox: str, message_id: int, **kwargs: object) -> bytes:
            reads.append(message_id)
            return self.db.read_raw(mailbox, message_id)

    kept = KeptHeaders()
    adam = Mailbox(
        alias="adam", display_name="Adam", primary_smtp_address="adam@contoso.com", database="DB"
    )

    async def scenario() -> None:
        for _ in range(3):  # three requests, each with its own EwsMailbox
            box = EwsMailbox(Counting(db), adam, [adam], kept)  # type: ignore[arg-type]
            item = db.list_messages("adam", "inbox").items[0]
            assert (await box.header_of(item)).importance == "High"
        assert len(reads) == 1
        db.deliver("adam", "2:adam", raw.replace(b"high", b"low"))
        newer = db.list_messages("adam", "inbox").items[0]
        box = EwsMailbox(Counting(db), adam, [adam], kept)  # type: ignore[arg-type]
        assert (await box.header_of(newer)).importance == "Low" and len(reads) == 2

    asyncio.run(scenario())
