"""The sans-I/O SMTP core (RFC 5321, ESMTP extensions, LMTP RFC 2033), both roles.

No sockets, no asyncio, no clock: :class:`ServerConnection` and
:class:`ClientConnection` turn bytes into events and events into bytes, in
the style of ``h11``.  Shared by the receive connectors, the hub sender,
LMTP delivery, the firewall's ESMTP inspection and the log readers, which
also use the grammar helpers re-exported here.

Modules:

- :mod:`.server`, :mod:`.client` - the two connection objects
- :mod:`.events` - server events, ``NEED_DATA``/``PAUSED``
- :mod:`.reply` - :class:`Reply`, reply line parsing and formatting (codes of raw lines too)
- :mod:`.command` - command line split and formatting (also on raw bytes)
- :mod:`.command_events` - one command line to its typed event, statelessly
- :mod:`.address` - paths (and where the mailbox of a raw line is), ESMTP parameters, xtext
- :mod:`.ehlo` - EHLO reply keywords (and where a raw line's keyword is)
- :mod:`.replies` - Exchange 2010 reply texts
- :mod:`.shadow` - XSHADOW / XQDISCARD (2010 shadow redundancy) wire forms
- :mod:`.dotstuff`, :mod:`.meter`, :mod:`.buffer` - streaming building blocks
- :mod:`.logtext` - protocol-log redaction
"""

from . import replies, shadow
from .address import (
    MAIL_PARAMETERS,
    RCPT_PARAMETERS,
    ParamDict,
    PathArgument,
    check_mailbox,
    format_parameters,
    format_path,
    is_domain,
    parse_mail_argument,
    parse_parameters,
    parse_path,
    parse_rcpt_argument,
    path_mailbox,
    path_span,
    xtext_decode,
    xtext_encode,
)
from .buffer import LineOverflow, ReceiveBuffer
from .client import (
    AUTH_CONTINUATION,
    END_OF_DATA,
    GREETING,
    BadReply,
    ClientConnection,
    ClientSettings,
    ClientState,
    Request,
    Response,
)
from .command import (
    MAX_COMMAND_LINE,
    CommandLine,
    command_verb,
    format_command,
    is_verb,
    leading_verb,
    parse_command_line,
)
from .command_events import parse_command
from .dotstuff import DotDecoder, DotEncoder, dot_stuff, dot_unstuff
from .ehlo import (
    EhloReply,
    ehlo_keyword,
    ehlo_keyword_span,
    greeting_domain,
    parse_ehlo_reply,
    split_ehlo_line,
)
from .errors import (
    AddressSyntaxError,
    LocalProtocolError,
    ParameterSyntaxError,
    SmtpSyntaxError,
)
from .events import (
    AUTH_REDACTED,
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    BadSyntax,
    Bdat,
    BodyChunk,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfMessage,
    Event,
    Helo,
    Help,
    Lhlo,
    LineTooLong,
    Mail,
    NeedsReply,
    Noop,
    Quit,
    Rcpt,
    Rset,
    Sentinel,
    StartTls,
    Unknown,
    Vrfy,
    XAnonymousTls,
    XExps,
    XQDiscard,
    XShadow,
)
from .logtext import command_log_text, reply_log_lines
from .meter import MessageMeter
from .reply import (
    Reply,
    ReplyAssembler,
    ReplyLine,
    format_reply,
    is_enhanced_status,
    is_last_reply_line,
    parse_reply_line,
    reply_code,
    reply_from_lines,
    reply_text,
    split_enhanced,
)
from .server import ServerConnection, ServerSettings, ServerState

__all__ = [
    "AUTH_CONTINUATION",
    "AUTH_REDACTED",
    "END_OF_DATA",
    "GREETING",
    "MAIL_PARAMETERS",
    "MAX_COMMAND_LINE",
    "NEED_DATA",
    "PAUSED",
    "RCPT_PARAMETERS",
    "AddressSyntaxError",
    "Auth",
    "AuthResponse",
    "BadReply",
    "BadSyntax",
    "Bdat",
    "BodyChunk",
    "ClientConnection",
    "ClientSettings",
    "ClientState",
    "Command",
    "CommandLine",
    "ConnectionClosed",
    "Data",
    "DotDecoder",
    "DotEncoder",
    "Ehlo",
    "EhloReply",
    "EndOfChunk",
    "EndOfMessage",
    "Event",
    "Helo",
    "Help",
    "Lhlo",
    "LineOverflow",
    "LineTooLong",
    "LocalProtocolError",
    "Mail",
    "MessageMeter",
    "NeedsReply",
    "Noop",
    "ParamDict",
    "ParameterSyntaxError",
    "PathArgument",
    "Quit",
    "Rcpt",
    "ReceiveBuffer",
    "Reply",
    "ReplyAssembler",
    "ReplyLine",
    "Request",
    "Response",
    "Rset",
    "Sentinel",
    "ServerConnection",
    "ServerSettings",
    "ServerState",
    "SmtpSyntaxError",
    "StartTls",
    "Unknown",
    "Vrfy",
    "XAnonymousTls",
    "XExps",
    "XQDiscard",
    "XShadow",
    "check_mailbox",
    "command_log_text",
    "command_verb",
    "dot_stuff",
    "dot_unstuff",
    "ehlo_keyword",
    "ehlo_keyword_span",
    "format_command",
    "format_parameters",
    "format_path",
    "format_reply",
    "greeting_domain",
    "is_domain",
    "is_enhanced_status",
    "is_last_reply_line",
    "is_verb",
    "leading_verb",
    "parse_command",
    "parse_command_line",
    "parse_ehlo_reply",
    "parse_mail_argument",
    "parse_parameters",
    "parse_path",
    "parse_rcpt_argument",
    "parse_reply_line",
    "path_mailbox",
    "path_span",
    "replies",
    "reply_code",
    "reply_from_lines",
    "reply_log_lines",
    "reply_text",
    "shadow",
    "split_ehlo_line",
    "split_enhanced",
    "xtext_decode",
    "xtext_encode",
]
