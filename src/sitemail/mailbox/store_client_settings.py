"""The store client's calls for mailbox settings (:mod:`.store_api_settings`' routes).

A mix-in of :class:`~sitemail.mailbox.store_client.StoreClient`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sitemail.mailbox.errors import StoreUnavailable
from sitemail.mailbox.mailbox_settings import SettingName

__all__ = ["SettingsCalls"]

#: What ``expected`` is when the caller does not ask for a checked write.
UNCHECKED: Any = object()


class SettingsCalls:
    """Calls on a mailbox's settings documents, over the client's request plumbing."""

    #: StoreClient._json: (method, mailbox, path, params=, json_body=) -> the JSON answer.
    _json: Callable[..., Awaitable[Any]]

    async def get_setting(self, mailbox: str, name: SettingName) -> dict[str, Any] | None:
        return _value(await self._json("GET", mailbox, f"/settings/{name.value}"), True)

    async def put_setting(
        self,
        mailbox: str,
        name: SettingName,
        value: dict[str, Any],
        *,
        expected: dict[str, Any] | None = UNCHECKED,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"value": value}
        if expected is not UNCHECKED:
            body["expected"] = expected
        answer = await self._json("PUT", mailbox, f"/settings/{name.value}", json_body=body)
        stored = _value(answer, False)
        assert stored is not None
        return stored


def _value(answer: Any, may_be_none: bool) -> dict[str, Any] | None:
    value = answer.get("value") if isinstance(answer, dict) else None
    if isinstance(value, dict) or (value is None and may_be_none and isinstance(answer, dict)):
        return value
    raise StoreUnavailable("the store answered a malformed mailbox setting")
