"""The console's lines inside an ESMTP inspect map: match criteria, parameters, actions.

Functions over the model that :class:`~sitemail.firewall.asa_cli.AsaCli`
calls in its ``policy-map type inspect esmtp`` modes.  A free word the ASA
refuses is reported through ``invalid(column)``, which returns the exception
to raise (the CLI's ``^`` marker under that column).
"""

from __future__ import annotations

from collections.abc import Callable

from sitemail.firewall import asa_cli_trees as trees
from sitemail.firewall.asa_cli_grammar import ARG, Matched
from sitemail.firewall.asa_model import EsmtpInspectMap, EsmtpMatch

__all__ = ["action", "criterion", "parameter"]

Invalid = Callable[[int], Exception]


def criterion(found: Matched, words: tuple[str, ...], invalid: Invalid) -> str:
    """The canonical text of a match criterion, its free words checked."""
    arg_columns = [c for p, c in zip(found.path, found.columns, strict=True) if p == ARG]
    values = iter(zip(found.args, arg_columns, strict=True))
    out: list[str] = []
    for index, keyword in enumerate(words):
        if keyword != ARG:
            out.append(keyword)
            continue
        value, column = next(values)
        previous = words[index - 1]
        if previous == "gt" and not value.isdigit():
            raise invalid(column)
        if previous == "ehlo-reply-parameter":
            offset = 0
            for name in value.split():
                offset = value.index(name, offset)
                if name.lower() not in trees.EHLO_PARAMETERS:
                    raise invalid(column + offset)
            value = " ".join(n.lower() for n in value.split())
        elif previous == "verb":
            value = " ".join(v.upper() for v in value.split())
        out.append(value)
    return " ".join(out)


def parameter(inspect_map: EsmtpInspectMap, found: Matched) -> str:
    """A line of ``parameters``: mask-banner, allow-tls, mail-relay, special-character."""
    path, args = found.path, found.args
    negate = path[0] == "no"
    what = path[1] if negate else path[0]
    if what == "mask-banner":
        inspect_map.mask_banner = not negate
    elif what == "allow-tls":
        inspect_map.allow_tls = not negate
        inspect_map.allow_tls_log = not negate and path[-1] == "log"
    elif what == "mail-relay":
        inspect_map.mail_relay = None if negate else (args[0], path[-1])
    else:
        inspect_map.special_character = None if negate else path[-1]
    return ""


def action(match: EsmtpMatch, found: Matched, invalid: Invalid) -> str:
    """An action under a ``match`` line (drop-connection, mask, reset, log, rate-limit)."""
    path, args = found.path, found.args
    negate = path[0] == "no"
    body = path[1:] if negate else path
    text = " ".join(args[0] if w == ARG else w for w in body)
    masks = match.criterion.startswith(("ehlo-reply-parameter", "cmd verb"))
    if body[0] == "mask" and not masks:
        # "mask" exists only for ehlo-reply-parameter and cmd verb (spec §1.3, 9.x).
        raise invalid(found.columns[1 if negate else 0])
    if body[0] == "rate-limit" and not args[0].isdigit():
        raise invalid(found.columns[-1])
    kind = body[0]
    kept = [a for a in match.actions if a.split()[0] != kind]
    if kind != "rate-limit" and not negate:
        # One enforcing action per match: a new one replaces the old.
        kept = [a for a in kept if a.split()[0] == "rate-limit"]
    match.actions = kept if negate else [*kept, text]
    return ""
