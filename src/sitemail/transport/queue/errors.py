"""Errors a queue operation can meet: one line, what was wrong and what to do."""

from __future__ import annotations


class QueueError(Exception):
    """Base of the queue engine's errors (the shell shows the message as is)."""


class QueueNotFoundError(QueueError):
    pass


class MessageNotFoundError(QueueError):
    pass


class InvalidQueueOperationError(QueueError):
    """The operation does not apply to this queue or message in its current state."""


class InvalidIdentityError(QueueError):
    pass


class StoreLockedError(QueueError):
    """Another live process has this queue database open."""


class LeaseError(QueueError):
    """A worker reported on messages it does not hold (a bug in the caller)."""
