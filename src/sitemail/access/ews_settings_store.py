"""The part of the store API that EWS uses for a mailbox's settings (OOF, rules, delegates)."""

from __future__ import annotations

from typing import Any, Protocol

from sitemail.mailbox.mailbox_settings import SettingName

__all__ = ["SettingsStore"]


class SettingsStore(Protocol):
    """:class:`~sitemail.mailbox.store_client_settings.SettingsCalls`, as EWS sees it."""

    async def get_setting(self, mailbox: str, name: SettingName) -> dict[str, Any] | None: ...

    async def put_setting(
        self,
        mailbox: str,
        name: SettingName,
        value: dict[str, Any],
        *,
        expected: dict[str, Any] | None = ...,
    ) -> dict[str, Any]: ...
