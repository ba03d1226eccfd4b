"""QueueStore: the durable queues of one hub transport server.

Files, under the server's home folder::

    <home>/queue/mail.que        SQLite database (WAL, synchronous=FULL)
    <home>/queue/mail.que.lock   held (flock) by the one process that owns the store
    <home>/queue/spool/*.eml     one file per message body

The parts live in their own modules: accept() and group commit
(acceptance), the categorizer's take/route (categorization), the senders'
take/report (delivery), Get-Queue and the cmdlets (admin), expiry and delay
DSNs (sweep), and crash recovery (recovery).  See core.py for threading.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailflow.dsn import default_dsn_from
from sitemail.org.model import TransportSettings

from .acceptance import AcceptanceMixin
from .admin import AdminMixin
from .categorization import CategorizationMixin
from .core import Listener
from .delivery import DeliveryMixin
from .errors import StoreLockedError
from .model import RecoveryReport
from .recovery import RecoveryMixin
from .schema import connect
from .sweep import SweepMixin

QUEUE_SUBDIR = "queue"
DATABASE_NAME = "mail.que"


class QueueStore(
    AcceptanceMixin, CategorizationMixin, DeliveryMixin, AdminMixin, SweepMixin, RecoveryMixin
):
    """The queue engine; implements ``submission.MessageAcceptor``."""

    recovery: RecoveryReport
    _lock_fd: int | None

    @classmethod
    def open(
        cls,
        home: Path | str,
        *,
        server: str,
        fqdn: str,
        clock: Clock = SYSTEM_CLOCK,
        settings: TransportSettings | None = None,
        dsn_from: str | None = None,
        listeners: Iterable[Listener] = (),
    ) -> QueueStore:
        """Open (or create) the store of the server living in ``home``, and recover it.

        ``listeners`` see the events of recovery too (poisoned messages).
        Raises :class:`StoreLockedError` when another live process has it open.
        """
        queue_dir = Path(home) / QUEUE_SUBDIR
        (queue_dir / "spool").mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(queue_dir / f"{DATABASE_NAME}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # flock is released by the kernel when the owner dies, even by SIGKILL.
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StoreLockedError(
                f"{queue_dir / DATABASE_NAME} is in use by another process: stop that "
                "server first (one transport process per queue database)"
            ) from None
        try:
            conn = connect(queue_dir / DATABASE_NAME)
        except BaseException:
            os.close(lock_fd)
            raise
        store = cls(
            conn=conn,
            queue_dir=queue_dir,
            server=server,
            fqdn=fqdn,
            clock=clock,
            settings=settings if settings is not None else TransportSettings(),
            dsn_from=dsn_from or default_dsn_from(fqdn),
            listeners=listeners,
        )
        store._lock_fd = lock_fd
        store._init_acceptance()
        try:
            store.recovery = store._recover()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Give back what workers hold (a clean stop is no crash) and release the files."""
        with self._lock:
            if self._conn is None:
                return
            held = sorted(self._item_lease)
            if held:
                with self._write() as tx:
                    self._unlock_items(tx, held)
            self._leases.clear()
            self._item_lease.clear()
            self._conn.close()
            self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
