"""The events of the IMAP4rev1 core (:mod:`sitemail.protocols.imap`).

Every :class:`Command` is answered with exactly one tagged reply.
``suggested`` is what the grammar and the session state alone say that
reply must be (``BAD Command received in Invalid state.``...); ``None``
means "nothing wrong that they can see: policy decides".  ``log_text`` is
the command as a log may show it (passwords left out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sitemail.protocols.imap_syntax import FetchAttribute, SearchKey, SequenceSet


@dataclass(frozen=True, slots=True)
class Suggested:
    """What the grammar and the state say the tagged answer must be."""

    status: str  # "BAD" | "NO"
    text: str


# ============================================================== events


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The client closed its side; nothing follows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(Event):
    """A complete command: answer it with one :meth:`ImapServer.send_tagged`."""

    tag: str
    name: str
    suggested: Suggested | None = None
    log_text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Capability(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Logout(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTls(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Login(Command):
    user: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Authenticate(Command):
    """AUTHENTICATE; with no ``initial`` response, send a continuation to get one."""

    mechanism: str = ""
    initial: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticateResponse(Event):
    """The client's line after an AUTHENTICATE continuation (base64; ``*`` cancels)."""

    tag: str
    data: bytes = field(repr=False)

    @property
    def cancelled(self) -> bool:
        return self.data.strip() == b"*"


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Select(Command):
    """SELECT, or EXAMINE (``readonly``)."""

    mailbox: str = ""
    readonly: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Create(Command):
    mailbox: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(Command):
    mailbox: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rename(Command):
    mailbox: str = ""
    new_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribe(Command):
    """SUBSCRIBE or UNSUBSCRIBE (``name`` says which)."""

    mailbox: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListMailboxes(Command):
    """LIST, or LSUB (``name`` says which)."""

    reference: str = ""
    pattern: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Status(Command):
    mailbox: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Append(Command):
    """APPEND: the message follows as :class:`AppendData` chunks, then :class:`AppendEnd`.

    Accept or reject it like a :class:`LiteralRequest` first (``size`` octets).
    """

    mailbox: str = ""
    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None
    size: int = 0
    synchronizing: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendData(Event):
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEnd(Event):
    """The whole message arrived; answer the APPEND with :meth:`ImapServer.send_tagged`.

    ``suggested`` is set when what followed the message was not a plain line end.
    """

    tag: str
    suggested: Suggested | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Check(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Close(Command):
    """CLOSE, or UNSELECT (``name`` says which: UNSELECT expunges nothing)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE with ``uids``."""

    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Search(Command):
    uid: bool = False
    charset: str | None = None
    criteria: tuple[SearchKey, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch(Command):
    uid: bool = False
    sequence: SequenceSet
    attributes: tuple[FetchAttribute, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Store(Command):
    uid: bool = False
    sequence: SequenceSet
    mode: str = ""  # "+" add, "-" remove, "" replace
    silent: bool = False
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Copy(Command):
    uid: bool = False
    sequence: SequenceSet
    mailbox: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Idle(Command):
    """IDLE: send the continuation; the core then waits for the client's ``DONE``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleDone(Event):
    """The line that ends IDLE; ``suggested`` is set when it was not ``DONE``."""

    tag: str
    suggested: Suggested | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownCommand(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class BadCommand(Command):
    """A command that does not parse (``tag`` is ``*`` when not even a tag was found)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LiteralRequest(Event):
    """A command line announced ``{size}``: accept or reject before the octets are read."""

    tag: str
    size: int
    synchronizing: bool
    suggested: Suggested | None = None
