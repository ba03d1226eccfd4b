"""Mailbox settings in a mailbox database: one JSON document per mailbox and name.

The documents (:mod:`.mailbox_settings`) are small and read whole: a
setting is replaced, never patched, so the one who changes it (EWS's
UpdateInboxRules, SetUserOofSettings ...) reads it, changes its copy and
writes it back; ``expected`` makes that write refuse a document someone
else changed meanwhile (Conflict), so two Client Access servers cannot
lose each other's rule.
"""

from __future__ import annotations

import json
from typing import Any

from sitemail.mailbox.database_core import DatabaseCore
from sitemail.mailbox.errors import Conflict, InvalidRequest
from sitemail.mailbox.mailbox_settings import SettingName, parse_setting

__all__ = ["MAX_SETTING_SIZE", "SettingsOperations"]

#: Largest setting document, in bytes of JSON.
MAX_SETTING_SIZE = 192 * 1024


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
        stored: dict[str, Any] = json.loads(data)
        return stored
