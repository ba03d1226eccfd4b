"""MSExchangeSA, the Exchange 2003 System Attendant: its DS2MB pass over the IIS metabase.

At start and then every ``system_attendant_interval`` (the lab's setting,
15 minutes by default: see :class:`~sitemail.org.model.LabSettings`) the
System Attendant copies the directory's record of the server's HTTP virtual
directories (what Exchange System Manager set) over the IIS metabase
(:mod:`.metabase`).  The copy goes one way only, so a change made in IIS
Manager alone (``sitemail iis EX2003 set config ...``) works until the next
pass and is then put back: the seed's warning.  Each virtual directory the
pass puts back after a change made in IIS is written to the server's
application event log (:mod:`.event_log`), so the administrator can see when
and what; a change made in ESM reaches IIS quietly.

The passes are driven by the process clock (``ctx.clock``): the service
checks every :data:`POLL_SECONDS` whether one is due, and tests call
:meth:`SystemAttendantService.tick` with a manual clock instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sitemail.exchange2003.event_log import EventLog, EventType
from sitemail.exchange2003.metabase import (
    IisAuth,
    Metabase,
    MetabaseError,
    metabase_location,
    vdir_leaf,
)
from sitemail.org.model import VirtualDirectory
from sitemail.server.context import ProcessContext, lab_settings

__all__ = ["MetabaseChange", "SystemAttendantService"]

log = logging.getLogger("sitemail.e2003.sa")

SERVICE_NAME = "MSExchangeSA"
DISPLAY_NAME = "Microsoft Exchange System Attendant"
#: What the last pass copied (sitemail's stand-in for DS2MB's own metabase key).
DS2MB_STATE = Path("inetsrv") / "DS2MB.json"
#: How often the running service looks whether a pass is due (the interval is minutes).
POLL_SECONDS = 1.0
#: The application log entry of a metabase setting put back.  Exchange 2003 logs DS2MB
#: under the System Attendant's source; the category and the event id are unverified.
EVENT_SOURCE = "MSExchangeSA"
EVENT_CATEGORY = "Metabase Update"  # unverified
EVENT_ID_METABASE_UPDATED = 1005  # unverified


@dataclass(frozen=True, slots=True)
class MetabaseChange:
    """One virtual directory whose metabase settings a pass replaced."""

    leaf: str
    before: IisAuth | None
    after: IisAuth
    #: True when IIS held a change of its own (IIS Manager), which the pass overwrote.
    reverted: bool = False

    def description(self, server: str) -> str:
        was = self.before.auth_flags if self.before is not None else "(not in the metabase)"
        return (
            f"The directory service to metabase replication (DS2MB) updated "
            f"{metabase_location(self.leaf)} on {server}: AuthFlags was {was} and is now "
            f"{self.after.auth_flags}, as the virtual directory's settings in Active Directory "
            "(Exchange System Manager) say. Changes made in Internet Information Services "
            "Manager to Exchange virtual directories are overwritten; make them in Exchange "
            "System Manager."
        )


class SystemAttendantService:
    """The System Attendant of one Exchange 2003 server (its DS2MB part)."""

    name = SERVICE_NAME
    display_name = DISPLAY_NAME

    def __init__(self, ctx: ProcessContext, *, interval: timedelta | None = None) -> None:
        self.ctx = ctx
        self.metabase = Metabase(ctx.home)
        self.event_log = EventLog(ctx.home)
        self._state = ctx.home / DS2MB_STATE
        # None: the lab's setting, read again at each pass (it may be changed live).
        self._interval = interval
        self._due: float | None = None
        self._replicated: dict[str, IisAuth] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> timedelta:
        if self._interval is not None:
            return self._interval
        return lab_settings(self.ctx.directory).system_attendant_interval

    # ------------------------------------------------------------------ a pass

    def _wanted(self) -> dict[str, IisAuth]:
        server = self.ctx.name.casefold()
        return {
            vdir_leaf(v): IisAuth.of(v)
            for v in self.ctx.directory.list(VirtualDirectory)
            if v.server.casefold() == server
        }

    def _last_copied(self) -> dict[str, IisAuth] | None:
        """What the previous pass copied (DS2MB keeps its own state, a key of the
        metabase; here a file beside it), to tell IIS changes from directory ones."""
        try:
            data = json.loads(self._state.read_text(encoding="utf-8"))
            return {str(k): IisAuth.from_flags(str(v)) for k, v in data.items()}
        except (OSError, ValueError, AttributeError):
            return None

    def replicate(self, wanted: dict[str, IisAuth] | None = None) -> list[MetabaseChange]:
        """One DS2MB pass: the directory's settings over the metabase; what it changed."""
        server = self.ctx.name
        if wanted is None:
            wanted = self._wanted()
        self._replicated = wanted
        try:
            current = self.metabase.read()
        except MetabaseError as exc:
            # A damaged metabase is rewritten whole, as DS2MB re-creates its keys.
            log.warning("%s: %s; writing it again from the directory", server, exc)
            current = {}
        have = current or {}
        last = self._last_copied() or have
        changes = [
            # Reverted: IIS held something else than the last copy (changed in IIS Manager).
            MetabaseChange(leaf, have.get(leaf), auth, reverted=have.get(leaf) != last.get(leaf))
            for leaf, auth in sorted(wanted.items(), key=lambda kv: kv[0].casefold())
            if have.get(leaf) != auth
        ]
        if changes or current is None or last != wanted:
            self.metabase.write({**have, **wanted})
            self._state.parent.mkdir(parents=True, exist_ok=True)
            state = {leaf: auth.auth_flags for leaf, auth in wanted.items()}
            self._state.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        when = self.ctx.clock.now()
        for change in changes:
            if not change.reverted or current is None:
                continue  # a change made in ESM, or the first copy: nothing overwritten
            self.event_log.write(
                when,
                EventType.INFORMATION,
                EVENT_SOURCE,
                EVENT_CATEGORY,
                EVENT_ID_METABASE_UPDATED,
                change.description(server),
            )
            log.info("%s: DS2MB put back %s", server, metabase_location(change.leaf))
        return [] if current is None else changes

    def tick(self) -> list[MetabaseChange]:
        """Run a pass if one is due by the clock (the first one at once), or if the
        directory's settings changed since the last one: DS2MB also follows the
        directory's change notifications, so a change made in ESM reaches IIS at once
        (general knowledge, unverified), while one made in IIS waits for the interval."""
        now = self.ctx.clock.monotonic()
        wanted = self._wanted()
        due = self._due is None or now >= self._due
        if not due and wanted == self._replicated:
            return []
        if due:
            self._due = now + self.interval.total_seconds()
        return self.replicate(wanted)

    # ------------------------------------------------------------------ service

    async def start(self) -> None:
        if self._task is not None:
            return
        await asyncio.to_thread(self.tick)
        self._task = asyncio.create_task(self._run(), name=f"{self.ctx.name} DS2MB")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # a pass that fails is tried again at the next one
                log.exception("%s: the DS2MB pass failed", self.ctx.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
