"""The part of the store API that EWS uses for a mailbox's settings (OOF, rules, delegates)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sitemail.mailbox.errors import Conflict
from sitemail.mailbox.mailbox_settings import SettingName

__all__ = ["SettingsStore", "update_setting"]


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


#: How often a read-change-write of a setting is tried when others change it meanwhile.
_ATTEMPTS = 3


async def update_setting(
    store: SettingsStore,
    mailbox: str,
    name: SettingName,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Read the ``name`` document, change it and write it back over what was read.

    Two Client Access servers changing the same mailbox's rules at once must
    not lose one of the changes: the write is checked (the store's 409), and
    on a conflict the change is made again on what is there now.
    """
    for attempt in range(_ATTEMPTS):
        current = await store.get_setting(mailbox, name)
        try:
            return await store.put_setting(mailbox, name, change(current or {}), expected=current)
        except Conflict:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
