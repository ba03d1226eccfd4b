"""What the console asks the hubs for one SMTP conversation across the firewalls.

Each hub serves its protocol log sessions through its admin API
(``POST /protocol-log``, the admin certificate only; see
:mod:`sitemail.diagnose.log_routes`), so the console reads no server's file.
A conversation is a session of one hub's SmtpSend log and the session of
another hub's SmtpReceive log that heard it: the receiving hub sees the
sending hub's own address (the lab's firewalls keep it), so it is the
receive session from that address that started nearest in time.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sitemail.org.model import Firewall
from sitemail.shell import CmdletError
from sitemail.shell.cmdlets.admin_client import AdminError
from sitemail.shell.cmdlets.services import ExchangeServices

from .backend import ConsoleInputError

#: A protocol log session id as the hubs write it (hex digits).
SESSION_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
#: Send sessions listed per hub: the newest ones.
LISTED = 30
#: How far apart the two ends' first lines may be (clocks of one machine or NTP'd servers).
SLACK = timedelta(seconds=30)


def checked_session(session_id: str) -> str:
    if not SESSION_ID.match(session_id):
        raise ConsoleInputError(
            f"{session_id[:40]!r} is not a protocol log session id; expected the session-id "
            "column of a SmtpSend log (letters and digits)"
        )
    return session_id


def _ip(endpoint: str) -> str:
    return endpoint.rpartition(":")[0].strip("[]")


def _when(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


class ConversationSource:
    """The hubs' protocol log sessions, through the shell's services (admin API)."""

    def __init__(self, services: ExchangeServices) -> None:
        self.services = services

    def _sessions(self, hub: Any, body: dict[str, object]) -> list[dict[str, Any]]:
        answer = self.services.admin_post(hub, "/protocol-log", body)
        return [s for s in answer if isinstance(s, dict)] if isinstance(answer, list) else []

    def send_sessions(self) -> dict[str, Any]:
        """The newest SmtpSend sessions of every hub, newest first, and the hubs' errors."""
        found: list[dict[str, Any]] = []
        errors: list[str] = []
        for hub in self.services.hubs():
            try:
                sessions = self._sessions(hub, {"kind": "send", "limit": LISTED})
            except AdminError as error:
                errors.append(f"{hub.name}: {error.message}")
                continue
            found += [{"server": hub.name, **s} for s in sessions]
        found.sort(key=lambda s: str(s.get("start") or ""), reverse=True)
        return {"sessions": found, "errors": errors}

    def conversation(self, server: str, session_id: str) -> dict[str, Any]:
        """One send session and the receive session that heard it, with the firewalls of
        both hubs' sites (the ones the conversation crossed)."""
        checked_session(session_id)
        try:
            hub = self.services.server(server)
        except CmdletError as error:
            raise ConsoleInputError(str(error)) from None
        errors: list[str] = []
        try:
            mine = self._sessions(hub, {"kind": "send", "session_id": session_id, "limit": 1})
        except AdminError as error:
            raise ConsoleInputError(f"{hub.name}: {error.message}") from None
        if not mine:
            raise ConsoleInputError(
                f"{hub.name} has no SmtpSend session {session_id} in its protocol logs"
            )
        send = mine[-1]
        receiver, receive = self._heard_by(hub, send, errors)
        sites = [hub.site] + ([receiver.site] if receiver is not None else [])
        firewalls = [
            f.name
            for site in dict.fromkeys(sites)
            for f in self.services.directory.list(Firewall)
            if f.site == site
        ]
        return {
            "sender": hub.name,
            "receiver": receiver.name if receiver is not None else None,
            "send": send,
            "receive": receive,
            "firewalls": firewalls,
            "errors": errors,
        }

    def _heard_by(
        self, hub: Any, send: dict[str, Any], errors: list[str]
    ) -> tuple[Any, dict[str, Any] | None]:
        start, end = _when(send.get("start")), _when(send.get("end"))
        source = _ip(str(send.get("local_endpoint") or ""))
        if start is None or not source:
            return None, None  # it never connected: nobody heard it
        body: dict[str, object] = {
            "kind": "receive",
            "remote_ip": source,
            "start": (start - SLACK).isoformat(),
            "end": ((end or start) + SLACK).isoformat(),
            "limit": 20,
        }
        best: tuple[timedelta, Any, dict[str, Any]] | None = None
        for other in self.services.hubs():
            if other.name == hub.name:
                continue
            try:
                heard = self._sessions(other, body)
            except AdminError as error:
                errors.append(f"{other.name}: {error.message}")
                continue
            for session in heard:
                began = _when(session.get("start"))
                if began is None:
                    continue
                gap = abs(began - start)
                if best is None or gap < best[0]:
                    best = (gap, other, session)
        return (best[1], best[2]) if best is not None else (None, None)


__all__ = ["ConversationSource", "checked_session"]
