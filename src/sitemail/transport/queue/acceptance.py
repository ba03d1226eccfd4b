"""accept(): making a received message durable, with group commit.

A body of at most 64 KiB (one that never left the session's memory) is made
durable by the queue database itself: its bytes go into the ``bodies`` table
in the same commit as its envelope, and nothing else is written; its spool
file is made from there when a reader first needs one (``_body_path``).  A larger body
is streamed to its spool file and fsynced there before the commit, and the
group's directory entries with one directory fsync.

The receive server calls ``accept`` from worker threads, one call per
message; the callers that arrive together share one database commit (one WAL
fsync): the first to find no commit in progress becomes the leader and
commits everybody waiting, the others sleep until their row is in.  Nobody
waits on purpose, so a lone message pays exactly one commit, and under load
the fsync cost is shared.  Receive worker processes hand their messages over
in groups already (:meth:`accept_spooled_group`).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from sitemail.mailflow.envelope import AcceptError, Envelope, SpoolWriter
from sitemail.mailflow.tracking_log import TrackingEventId, TrackingSource

from .core import StoreCore
from .identity import queue_identity
from .model import SUBMISSION, DeliveryType, QueueEvent, QueueEventKind
from .spool import SPOOL_SUFFIX, SpoolFile, fsync_directory, unlink_quietly

# A bound on one group, so that a flood still commits in reasonable steps.
MAX_GROUP = 256


@dataclass(frozen=True)
class SealedSpool:
    """A body ready to commit: fsynced in the spool folder, or ``inline`` (its bytes)."""

    name: str
    path: Path
    size: int
    inline: bytes | None = None


# What a receive worker may name: the files SpoolFile creates, nothing with a path in it.
_SPOOL_NAME = re.compile(r"[0-9a-f]{32}" + re.escape(SPOOL_SUFFIX))


@dataclass
class _Pending:
    spool: SealedSpool
    envelope: Envelope
    internal_id: int | None = None
    error: BaseException | None = None
    done: bool = False


class AcceptanceMixin(StoreCore):
    _group_cond: threading.Condition
    _group_pending: list[_Pending]
    _group_leader: bool

    def _init_acceptance(self) -> None:
        self._group_cond = threading.Condition(threading.Lock())
        self._group_pending = []
        self._group_leader = False

    def open_spool(self) -> SpoolFile:
        """A writer that streams a message body to a new spool file."""
        self._db()  # refuse early when closed
        return SpoolFile(self.spool_dir)

    def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        """Make the message durable and queue it in Submission; returns its InternalId.

        Returns only after the body, its directory entry and the message row
        are fsynced.  Raises :class:`AcceptError` when that could not be done;
        the spool file is then deleted.
        """
        if not isinstance(spool, SpoolFile) or spool.path.parent != self.spool_dir:
            raise AcceptError("this spool writer was not opened by this queue store")
        if not envelope.recipients:
            spool.abort()
            raise AcceptError("a message needs at least one recipient")
        inline = spool.take_inline()
        if inline is not None:
            return self._accept_sealed(
                SealedSpool(spool.name, spool.path, len(inline), inline), envelope
            )
        try:
            spool.seal()
        except Exception as exc:
            spool.abort()
            raise AcceptError(f"could not write the message to disk: {exc}") from exc
        return self._accept_sealed(SealedSpool(spool.name, spool.path, spool.size), envelope)

    def accept_spooled(
        self, name: str, size: int, envelope: Envelope, inline: bytes | None = None
    ) -> int:
        """:meth:`accept` for a body handed over by another process.

        A receive worker process (:mod:`sitemail.transport.receive_worker`)
        either sends a small body's bytes (``inline``) or streams and fsyncs a
        large one into the spool folder itself and names it; the queue
        database stays this process's.
        """
        return self._accept_sealed(self._spooled(name, size, envelope, inline), envelope)

    def accept_spooled_group(
        self, items: list[tuple[str, int, Envelope, bytes | None]]
    ) -> list[int | AcceptError]:
        """:meth:`accept_spooled` for many messages at once: one commit for all.

        The caller has gathered the group (the receive workers' requests of one
        moment), so nobody waits here for others; each item gets its InternalId
        or the reason it was refused, and a refused item's file is removed.
        """
        results: list[int | AcceptError] = [AcceptError("not committed")] * len(items)
        group: list[_Pending] = []
        where: list[int] = []
        for index, (name, size, envelope, inline) in enumerate(items):
            try:
                group.append(_Pending(self._spooled(name, size, envelope, inline), envelope))
                where.append(index)
            except AcceptError as exc:
                results[index] = exc
        for start in range(0, len(group), MAX_GROUP):
            self._commit_group(group[start : start + MAX_GROUP])
        for index, pending in zip(where, group, strict=True):
            if pending.error is not None or pending.internal_id is None:
                unlink_quietly(pending.spool.path)
                results[index] = AcceptError(
                    f"the queue database could not take the message: {pending.error}"
                )
            else:
                results[index] = pending.internal_id
        return results

    def _spooled(
        self, name: str, size: int, envelope: Envelope, inline: bytes | None = None
    ) -> SealedSpool:
        if not _SPOOL_NAME.fullmatch(name):
            raise AcceptError(f"{name!r} is not the name of a spool file")
        path = self.spool_dir / name
        if not envelope.recipients:
            unlink_quietly(path)
            raise AcceptError("a message needs at least one recipient")
        if inline is not None:
            if len(inline) != size:
                raise AcceptError(f"the message has {len(inline)} bytes, not {size}")
            return SealedSpool(name, path, size, inline)
        try:
            actual = os.stat(path).st_size
        except OSError as exc:
            raise AcceptError(f"the spooled message is not on disk: {exc}") from exc
        if actual != size:
            unlink_quietly(path)
            raise AcceptError(f"the spooled message has {actual} bytes, not {size}")
        return SealedSpool(name, path, size)

    def _accept_sealed(self, spool: SealedSpool, envelope: Envelope) -> int:
        pending = _Pending(spool, envelope)
        cond = self._group_cond
        with cond:
            self._group_pending.append(pending)
            while not pending.done:
                if self._group_leader:
                    cond.wait()
                    continue
                self._group_leader = True
                group = self._group_pending[:MAX_GROUP]
                del self._group_pending[:MAX_GROUP]
                cond.release()
                try:
                    self._commit_group(group)
                finally:
                    cond.acquire()
                    self._group_leader = False
                    for item in group:
                        item.done = True
                    cond.notify_all()
        if pending.error is not None or pending.internal_id is None:
            unlink_quietly(spool.path)
            raise AcceptError(
                f"the queue database could not take the message: {pending.error}"
            ) from pending.error
        return pending.internal_id

    def _commit_group(self, group: list[_Pending]) -> None:
        try:
            self._commit_all(group)
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            # One bad envelope must not cost the others their acceptance.
            for item in group:
                try:
                    self._commit_all([item])
                except Exception as single:
                    item.error = single

    def _commit_all(self, group: list[_Pending]) -> None:
        if any(item.spool.inline is None for item in group):
            # One directory fsync covers every new spool file name in the group.
            fsync_directory(self.spool_dir)
        with self._write() as tx:
            submission = queue_identity(self.server, SUBMISSION)
            ids = []
            for item in group:
                env = item.envelope
                internal_id = self._insert_message(tx, env, item.spool.name, item.spool.size)
                if item.spool.inline is not None:
                    tx.execute(
                        "INSERT INTO bodies(message_id, data) VALUES(?, ?)",
                        (internal_id, item.spool.inline),
                    )
                ids.append(internal_id)
                tx.events.append(
                    QueueEvent(
                        kind=QueueEventKind.RECEIVED,
                        time=tx.now,
                        tracking=TrackingEventId.RECEIVE,
                        source=_tracking_source(env.source),
                        internal_id=internal_id,
                        internet_message_id=env.internet_message_id,
                        sender=env.mail_from,
                        recipients=tuple(r.address for r in env.recipients),
                        size=item.spool.size,
                        subject=env.subject,
                        queue=submission,
                        delivery_type=DeliveryType.UNDEFINED,
                        client_ip=env.client_ip,
                        client_hostname=env.client_hostname,
                        connector_id=env.connector_id,
                    )
                )
        for item, internal_id in zip(group, ids, strict=True):
            item.internal_id = internal_id


def _tracking_source(source: str) -> TrackingSource:
    try:
        return TrackingSource(source.upper())
    except ValueError:
        return TrackingSource.SMTP
