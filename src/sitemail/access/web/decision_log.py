"""The front door's decision log: each proxy-or-redirect decision, and each proxy that failed.

One JSON record per decision (:meth:`DecisionLog.decide`): the protocol, the
user, the host name and entry point the client used, the virtual directory,
and the outcome with its target or its reason.  A proxy that was decided but
could not be carried out gets a record of its own (``ProxyFailed``), so the
log shows both what was decided and what happened.  The file is written by
:class:`~.logs.AccessLogs`; a full disk costs the record, never the request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

from sitemail.access.decision import decide
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.outcomes import (
    ClientProtocol,
    Entry,
    Error,
    Legacy,
    Outcome,
    Proxy,
    Redirect,
)
from sitemail.access.web.common import RequestContext
from sitemail.access.web.logs import AccessLogs, json_record
from sitemail.access.web.proxy import ProxyFailed
from sitemail.clock import Clock
from sitemail.lru import LruCache
from sitemail.org.model import Mailbox

__all__ = ["DecisionLog"]

log = logging.getLogger("sitemail.w3svc")


#: Decision log lines kept as JSON, by user and outcome (about 300 bytes each).
KEPT_LINES = 1024


@dataclass
class DecisionLog:
    """Decides for one Client Access server (``server``) and writes the decisions down."""

    server: str
    logs: AccessLogs | None
    clock: Clock
    _lines: LruCache[tuple[object, ...], str] = field(
        default_factory=lambda: LruCache(KEPT_LINES), init=False, repr=False
    )

    def decide(
        self,
        ctx: RequestContext,
        protocol: ClientProtocol,
        mailbox: Mailbox,
        *,
        eas_protocol_version: str | None = None,
    ) -> Outcome:
        """The proxy-or-redirect decision for this request, written to the decision log."""
        outcome = decided(
            ctx.snapshot,
            protocol=protocol,
            cas=self.server,
            mailbox=mailbox,
            entry=ctx.entry.entry,
            eas_protocol_version=eas_protocol_version,
        )
        self._outcome(protocol, mailbox.alias, ctx, outcome)
        return outcome

    def proxy_failed(self, ctx: RequestContext, outcome: Proxy, exc: ProxyFailed) -> None:
        """A decided proxy that could not be carried out."""
        self._write(
            {
                "protocol": str(outcome.protocol),
                "server": self.server,
                "host": ctx.host,
                "outcome": "ProxyFailed",
                "reason": exc.reason,
                "target": outcome.target_url,
                "target_server": outcome.target_server,
                "message": exc.message,
            }
        )

    def _outcome(
        self, protocol: ClientProtocol, alias: str, ctx: RequestContext, outcome: Outcome
    ) -> None:
        if self.logs is None:
            return
        # A user's requests give the same line but for its time: its JSON is kept
        # (outcomes are frozen dataclasses of plain values, so they make keys).
        key = (protocol, alias, ctx.host, ctx.entry.entry, ctx.vdir.identity, outcome)
        body = self._lines.get(key)
        if body is None:
            body = json_record(self._record(protocol, alias, ctx, outcome))
            self._lines.put(key, body)
        try:
            self.logs.decision_json(self.clock.now(), body)
        except OSError as exc:
            log.warning("cannot write the decision log: %s", exc)

    def _record(
        self, protocol: ClientProtocol, alias: str, ctx: RequestContext, outcome: Outcome
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "protocol": str(protocol),
            "server": self.server,
            "user": alias,
            "host": ctx.host,
            "entry": str(ctx.entry.entry),
            "vdir": ctx.vdir.identity,
            "outcome": type(outcome).__name__,
        }
        action = outcome.action if isinstance(outcome, Legacy) else outcome
        if isinstance(action, Proxy):
            record.update(target=action.target_url, target_server=action.target_server)
        elif isinstance(action, Redirect):
            record.update(
                kind=str(action.kind), target=action.url, target_server=action.target_server
            )
        elif isinstance(action, Error):
            record.update(
                reason=str(action.reason),
                message=action.message,
                target_server=action.server,
                target_vdir=action.vdir,
            )
        if isinstance(outcome, Legacy):
            record["legacy"] = str(outcome.kind)
        return record

    def _write(self, record: dict[str, Any]) -> None:
        if self.logs is None:
            return
        try:
            self.logs.decision(self.clock.now(), record)
        except OSError as exc:
            log.warning("cannot write the decision log: %s", exc)


def decided(
    snapshot: AccessDirectory,
    *,
    protocol: ClientProtocol,
    cas: str,
    mailbox: Mailbox,
    entry: Entry,
    eas_protocol_version: str | None = None,
) -> Outcome:
    """:func:`~sitemail.access.decision.decide`, kept with the snapshot.

    The decision reads the snapshot and, of the mailbox, its alias and homeMDB (a
    directory change is a new snapshot); outcomes are frozen, so one may be shared.
    """
    key = ("decide", protocol, cas, mailbox.alias, mailbox.database, entry, eas_protocol_version)
    outcome = cast("Outcome | None", snapshot.memo.get(key))
    if outcome is None:
        outcome = decide(
            snapshot,
            protocol=protocol,
            cas=cas,
            mailbox=mailbox,
            entry=entry,
            eas_protocol_version=eas_protocol_version,
        )
        snapshot.remember(key, outcome)
    return outcome
