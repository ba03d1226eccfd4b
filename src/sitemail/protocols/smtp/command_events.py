"""The typed meaning of one command line, without any session state.

:func:`parse_command` turns ``MAIL FROM:<a@b> SIZE=10`` into
``Mail(address="a@b", params={"SIZE": "10"})``, and a malformed line into
:class:`BadSyntax` or :class:`Unknown`, each with the reply the grammar
alone calls for.  The server connection adds what the session state says
(``503 5.5.2 Send hello first`` ...) on top; log readers and the firewall
can call it directly on a logged or relayed line.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from . import replies
from .address import (
    MAIL_PARAMETERS,
    RCPT_PARAMETERS,
    PathArgument,
    is_domain,
    parse_mail_argument,
    parse_rcpt_argument,
)
from .command import parse_command_line
from .errors import AddressSyntaxError, SmtpSyntaxError
from .events import (
    Auth,
    BadSyntax,
    Bdat,
    Command,
    Data,
    Ehlo,
    Helo,
    Help,
    Lhlo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTls,
    Unknown,
    Vrfy,
    XAnonymousTls,
    XExps,
    XQDiscard,
    XShadow,
)
from .reply import Reply
from .shadow import MAX_DISCARD_IDS
from .text import strip_eol

_BDAT_ARGUMENT = re.compile(r"([0-9]{1,20})(?: +(LAST))?", re.IGNORECASE)
# RFC 5321 and RFC 3207 give these no argument; one is a syntax error.
_NO_ARGUMENT = {"DATA": Data, "RSET": Rset, "QUIT": Quit}
_TLS = {"STARTTLS": StartTls, "X-ANONYMOUSTLS": XAnonymousTls}


def parse_command(
    line: str,
    *,
    lmtp: bool = False,
    mail_parameters: frozenset[str] = MAIL_PARAMETERS,
    rcpt_parameters: frozenset[str] = RCPT_PARAMETERS,
    max_message_size: int | None = None,
) -> Command | Bdat:
    """Parse one command line (line end optional) into its event; never raises.

    ``lmtp`` swaps HELO/EHLO for LHLO (the other greetings become
    :class:`Unknown`).  MAIL/RCPT parameters outside ``mail_parameters`` /
    ``rcpt_parameters`` get ``501 5.5.4 Unrecognized parameter`` suggested,
    and a MAIL ``SIZE`` over ``max_message_size`` gets the 552 (RFC 1870).
    """
    line = strip_eol(line)
    cmd = parse_command_line(line)
    verb, arg = cmd.verb, cmd.argument
    if verb in ("HELO", "EHLO", "LHLO") and (verb == "LHLO") == lmtp:
        return _hello(verb, arg, line)
    if verb == "MAIL":
        return _path(
            "MAIL",
            arg,
            line,
            parse_mail_argument,
            replies.INVALID_SENDER_ADDRESS,
            mail_parameters,
            max_message_size,
        )
    if verb == "RCPT":
        return _path(
            "RCPT",
            arg,
            line,
            parse_rcpt_argument,
            replies.INVALID_RECIPIENT_ADDRESS,
            rcpt_parameters,
        )
    if verb == "BDAT":
        m = _BDAT_ARGUMENT.fullmatch(arg)
        if m is None:
            return _bad(line, "BDAT", "BDAT takes a size and an optional LAST")
        return Bdat(line=line, size=int(m.group(1)), last=m.group(2) is not None)
    if verb == "AUTH":
        return _auth(arg, line)
    if verb == "X-EXPS":
        return _xexps(arg, line)
    if verb == "XSHADOW":
        if not is_domain(arg):
            return _bad(line, "XSHADOW", "XSHADOW takes the sending server's FQDN")
        return XShadow(line=line, server=arg)
    if verb == "XQDISCARD":
        if not arg.isdigit() or not 1 <= int(arg) <= MAX_DISCARD_IDS:
            return _bad(line, "XQDISCARD", f"XQDISCARD takes a count from 1 to {MAX_DISCARD_IDS}")
        return XQDiscard(line=line, max_ids=int(arg))
    extra = replies.UNRECOGNIZED_PARAMETER if arg else None
    if verb in _NO_ARGUMENT:
        return _NO_ARGUMENT[verb](line=line, suggested_reply=extra)
    if verb in _TLS:
        return _TLS[verb](line=line, suggested_reply=extra)
    if verb == "NOOP":
        return Noop(line=line)
    if verb == "VRFY":
        return Vrfy(line=line, argument=arg)
    if verb == "HELP":
        return Help(line=line, argument=arg)
    return Unknown(line=line, verb=verb, suggested_reply=replies.UNRECOGNIZED_COMMAND)


def _bad(
    line: str, verb: str, reason: str, reply: Reply = replies.UNRECOGNIZED_PARAMETER
) -> BadSyntax:
    return BadSyntax(line=line, verb=verb, reason=reason, suggested_reply=reply)


def _hello(verb: str, arg: str, line: str) -> Command:
    domain = arg.split(" ", 1)[0] if arg else ""
    sugg: Reply | None = None
    if not domain:
        sugg = replies.requires_domain(verb)
    elif not is_domain(domain):
        sugg = replies.INVALID_DOMAIN
    cls = {"HELO": Helo, "EHLO": Ehlo, "LHLO": Lhlo}[verb]
    return cls(line=line, domain=domain, suggested_reply=sugg)


def _path(
    verb: str,
    arg: str,
    line: str,
    parse: Callable[[str], PathArgument],
    bad_address: Reply,
    known: frozenset[str],
    max_size: int | None = None,
) -> Command:
    try:
        parsed = parse(arg)
    except AddressSyntaxError as exc:
        return _bad(line, verb, str(exc), bad_address)
    except SmtpSyntaxError as exc:
        return _bad(line, verb, str(exc))
    sugg = None if set(parsed.params) <= known else replies.UNRECOGNIZED_PARAMETER
    declared = parsed.params.get("SIZE")
    if sugg is None and max_size is not None and declared and int(declared) > max_size:
        # RFC 1870 §6.1: refuse at MAIL when the declared size is already too big.
        sugg = replies.MESSAGE_TOO_BIG
    cls = Mail if verb == "MAIL" else Rcpt
    return cls(line=line, address=parsed.address, params=parsed.params, suggested_reply=sugg)


def _auth(arg: str, line: str) -> Command:
    words = arg.split()
    if not words or len(words) > 2:
        return _bad(line, "AUTH", "AUTH takes a mechanism and an optional initial response")
    initial = words[1] if len(words) == 2 else None
    return Auth(line=line, mechanism=words[0].upper(), initial_response=initial)


def _xexps(arg: str, line: str) -> Command:
    words = arg.split()
    if not words:
        return _bad(line, "X-EXPS", "X-EXPS needs a mechanism")
    mechanism, rest = words[0].upper(), words[1:]
    hash_algorithm = None
    if mechanism == "EXCHANGEAUTH" and rest:
        hash_algorithm, rest = rest[0].upper(), rest[1:]
    if len(rest) > 1:
        return _bad(line, "X-EXPS", "X-EXPS takes at most one blob")
    return XExps(
        line=line,
        mechanism=mechanism,
        hash_algorithm=hash_algorithm,
        blob=rest[0] if rest else None,
    )
