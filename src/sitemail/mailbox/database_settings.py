"""Mailbox settings in a mailbox database: one JSON document per mailbox and name.

The documents (:mod:`.mailbox_settings`) are small and read whole: a
setting is replaced, never patched, so the one who changes it (EWS's
UpdateInboxRules, SetUserOofSettings ...) reads it, changes its copy and
writes it back; ``expected`` makes that write refuse a document someone
else changed meanwhile (Conflict), so two Client Access servers cannot
lose each other's rule.

Delivery asks :meth:`SettingsOperations._rules_for` where a message goes
by the mailbox's Inbox rules, and :meth:`SettingsOperations._auto_reply`
for the automatic reply it gets, inside the delivery's transaction: the
reply goes to the Outbox in the same commit as the message, and the
senders answered (``oof_history``) with it, so a crash cannot answer twice
nor lose a reply.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sitemail.mailbox import folder_tree as tree
from sitemail.mailbox.database_core import DatabaseCore
from sitemail.mailbox.errors import Conflict, InvalidRequest
from sitemail.mailbox.inbox_rules import Disposition, RuleMessage, disposition
from sitemail.mailbox.item_records import ItemKind
from sitemail.mailbox.mailbox_settings import (
    MAX_OOF_SENDERS,
    InboxRules,
    OofHistory,
    OofSettings,
    SettingName,
    parse_setting,
)
from sitemail.mailbox.messages import ParsedMessage
from sitemail.mailbox.oof_reply import (
    MAX_HEADER_READ,
    OofContext,
    oof_audience,
    oof_reply_message,
    parse_header,
    reply_wanted,
)
from sitemail.mailbox.records import Flags, WellKnownFolder
from sitemail.mailbox.rows import MailboxRow, from_us
from sitemail.mailbox.rule_forward import MAX_FORWARDED, forward_message, forwarded_before
from sitemail.mailbox.rule_marks import MAX_MARKED, marked

__all__ = ["MAX_SETTING_SIZE", "SettingsOperations"]

log = logging.getLogger("sitemail.mailbox.settings")

#: Largest setting document, in bytes of JSON.
MAX_SETTING_SIZE = 192 * 1024
#: Most contacts read to tell whether a sender is known to the mailbox.
MAX_KNOWN_CONTACTS = 5000


class SettingsOperations(DatabaseCore):
    def get_setting(self, mailbox: str, name: SettingName) -> dict[str, Any] | None:
        """The mailbox's ``name`` document, None when it was never written."""
        box = self._mailbox(mailbox)
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM mailbox_settings WHERE mailbox_id=? AND name=?",
                (box.id, name.value),
            ).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put_setting(
        self,
        mailbox: str,
        name: SettingName,
        value: dict[str, Any],
        *,
        expected: dict[str, Any] | None = None,
        check: bool = False,
    ) -> dict[str, Any]:
        """Write the ``name`` document (validated); with ``check``, only over ``expected``."""
        model = parse_setting(name, value)
        data = model.model_dump_json()
        if len(data) > MAX_SETTING_SIZE:
            raise InvalidRequest(f"mailbox setting {name.value} is over {MAX_SETTING_SIZE} bytes")
        box = self._mailbox(mailbox)
        with self._write() as conn:
            if check:
                row = conn.execute(
                    "SELECT data FROM mailbox_settings WHERE mailbox_id=? AND name=?",
                    (box.id, name.value),
                ).fetchone()
                current = None if row is None else json.loads(row[0])
                if current != expected:
                    raise Conflict(f"mailbox setting {name.value} changed meanwhile: read it again")
            conn.execute(
                "INSERT INTO mailbox_settings(mailbox_id, name, data) VALUES (?, ?, ?) "
                "ON CONFLICT(mailbox_id, name) DO UPDATE SET data=excluded.data",
                (box.id, name.value, data),
            )
            if name is SettingName.OOF:
                # New automatic replies answer every sender once again.
                conn.execute(
                    "DELETE FROM mailbox_settings WHERE mailbox_id=? AND name=?",
                    (box.id, SettingName.OOF_HISTORY.value),
                )
        stored: dict[str, Any] = json.loads(data)
        return stored

    # ------------------------------------------------- rules at delivery

    def _rules_for(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        stream: IO[bytes],
        start: int,
        parsed: ParsedMessage,
        inbox: int,
    ) -> RulePlacement:
        """Where a delivery goes by the mailbox's Inbox rules (:mod:`.inbox_rules`).

        A folder a rule names that is gone leaves the message where it would
        have gone without it; rules that cannot be read or a forward that
        cannot be built leave it in the Inbox: a rule never costs a message.
        """
        try:
            return self._placement(conn, box, stream, start, parsed, inbox)
        except sqlite3.Error:
            raise  # the database's own failure fails the delivery, to be retried
        except Exception:
            log.exception("Inbox rules of %s not applied to a delivery", box.name)
            return RulePlacement(inbox)

    def _placement(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        stream: IO[bytes],
        start: int,
        parsed: ParsedMessage,
        inbox: int,
    ) -> RulePlacement:
        row = self._setting_row(conn, box, SettingName.INBOX_RULES)
        rules = InboxRules.model_validate_json(row) if row is not None else None
        if rules is None or not rules.rules:
            return RulePlacement(inbox)
        me = tuple(rules.owner_addresses)
        outcome = disposition(rules, _rule_message(parsed, from_us(self._now_us()), me))
        flags = Flags(seen=outcome.mark_as_read)
        sends = self._forwards(stream, start, parsed, outcome, me)
        if outcome.permanent_delete:
            return RulePlacement(None, flags, sends=sends)
        target = inbox
        if outcome.delete:
            target = tree.folder_id(conn, box, WellKnownFolder.DELETED_ITEMS.value)
        elif outcome.move_to is not None and self._has_folder(conn, box, outcome.move_to):
            target = outcome.move_to
        copies = tuple(f for f in outcome.copy_to if f != target and self._has_folder(conn, box, f))
        content = None
        if (outcome.categories or outcome.importance) and parsed.size <= MAX_MARKED:
            stream.seek(start)
            data = stream.read(parsed.size)
            content = marked(data, parsed.header_size, outcome.categories, outcome.importance)
        return RulePlacement(target, flags, copies, sends, content)

    def _forwards(
        self,
        stream: IO[bytes],
        start: int,
        parsed: ParsedMessage,
        outcome: Disposition,
        me: tuple[str, ...],
    ) -> tuple[bytes, ...]:
        """The forwards the rules send (:mod:`.rule_forward`), unless this mailbox sent it."""
        wanted = (outcome.forward_to, False), (outcome.forward_as_attachment_to, True)
        if not me or not any(to for to, _ in wanted) or parsed.size > MAX_FORWARDED:
            return ()
        stream.seek(start)
        original = stream.read(parsed.size)
        if forwarded_before(parse_header(original[: parsed.header_size]), me):
            return ()
        now = from_us(self._now_us())
        return tuple(
            forward_message(original, me[0], list(to), as_attachment=attach, now=now)
            for to, attach in wanted
            if to
        )

    def _has_folder(self, conn: sqlite3.Connection, box: MailboxRow, folder: int) -> bool:
        found = conn.execute(
            "SELECT 1 FROM folders WHERE id=? AND mailbox_id=?", (folder, box.id)
        ).fetchone()
        return found is not None

    # ------------------------------------------------ automatic replies

    def _auto_reply(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        stream: IO[bytes],
        start: int,
        parsed: ParsedMessage,
    ) -> bytes | None:
        """The automatic reply a delivery gets (:mod:`.oof_reply`), remembered as sent."""
        try:
            return self._oof_reply(conn, box, stream, start, parsed)
        except sqlite3.Error:
            raise
        except Exception:
            log.exception("no automatic reply of %s to a delivery", box.name)
            return None

    def _oof_reply(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        stream: IO[bytes],
        start: int,
        parsed: ParsedMessage,
    ) -> bytes | None:
        row = self._setting_row(conn, box, SettingName.OOF)
        if row is None:
            return None
        settings = OofSettings.model_validate_json(row)
        owner = settings.owner
        sender = (parsed.from_address.address if parsed.from_address else "").lower()
        now = from_us(self._now_us())
        if owner is None or not sender or not settings.active(now):
            return None
        if parsed.header_size > MAX_HEADER_READ:
            return None
        stream.seek(start)
        header = parse_header(stream.read(parsed.header_size))
        context = OofContext(
            owner.address, owner.name, tuple(owner.addresses), tuple(owner.internal_domains)
        )
        if not reply_wanted(header, sender, context):
            return None
        history_row = self._setting_row(conn, box, SettingName.OOF_HISTORY)
        history = OofHistory.model_validate_json(history_row) if history_row else OofHistory()
        if sender in history.senders:
            return None
        known = settings.external_audience == "Known" and self._in_contacts(conn, box, sender)
        text = oof_audience(settings, sender, context, known=known)
        if text is None:
            return None
        senders = [*history.senders, sender][-MAX_OOF_SENDERS:]
        conn.execute(
            "INSERT INTO mailbox_settings(mailbox_id, name, data) VALUES (?, ?, ?) "
            "ON CONFLICT(mailbox_id, name) DO UPDATE SET data=excluded.data",
            (box.id, SettingName.OOF_HISTORY.value, OofHistory(senders=senders).model_dump_json()),
        )
        return oof_reply_message(header, sender, context, text, now)

    def _setting_row(
        self, conn: sqlite3.Connection, box: MailboxRow, name: SettingName
    ) -> str | None:
        row = conn.execute(
            "SELECT data FROM mailbox_settings WHERE mailbox_id=? AND name=?",
            (box.id, name.value),
        ).fetchone()
        return None if row is None else str(row[0])

    def _in_contacts(self, conn: sqlite3.Connection, box: MailboxRow, address: str) -> bool:
        """Whether a contact of the mailbox has ``address`` (ExternalAudience Known)."""
        rows = conn.execute(
            "SELECT r.record FROM messages m JOIN item_records r ON r.content_id = m.content_id "
            "WHERE m.mailbox_id=? AND r.kind=? LIMIT ?",
            (box.id, ItemKind.CONTACT.value, MAX_KNOWN_CONTACTS),
        ).fetchall()
        for (record,) in rows:
            emails = json.loads(record).get("emails") or {}
            if any(str(e).strip().lower() == address for e in emails.values()):
                return True
        return False


@dataclass(frozen=True)
class RulePlacement:
    """Where a delivery goes (None: not kept), its flags, its copies, what the rules send."""

    target: int | None
    flags: Flags = field(default_factory=Flags)
    copies: tuple[int, ...] = ()
    sends: tuple[bytes, ...] = ()
    content: bytes | None = None  # the message as the rules marked it (None: as it came)


def _rule_message(parsed: ParsedMessage, received: datetime, me: tuple[str, ...]) -> RuleMessage:
    sender = parsed.from_address
    return RuleMessage(
        sender=(sender.address if sender else "").lower(),
        sender_name=sender.name if sender else "",
        to=tuple(a.address.lower() for a in parsed.to),
        cc=tuple(a.address.lower() for a in parsed.cc),
        recipient_names=tuple(a.name for a in (*parsed.to, *parsed.cc) if a.name),
        subject=parsed.subject,
        body=parsed.search_text,
        has_attachments=parsed.has_attachments,
        size=parsed.size,
        received=received,
        me=me,
    )
