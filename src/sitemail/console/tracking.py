"""The console's message tracking search: a form's fields as one Get-MessageTrackingLog line.

The console searches the hubs' tracking logs only through the shell's own
cmdlet (which asks every Exchange 2010 hub's admin API and merges the events
in time order), so what a search finds, and how a bad date is refused, is
word for word what ``sitemail shell`` would say.  Every value the browser
sends is bounded and single-quoted into the line: nothing in it is read as
the shell's syntax.
"""

from __future__ import annotations

from collections.abc import Mapping

from .backend import ConsoleInputError, quoted

#: The search form's fields and the cmdlet parameter each one fills, in the form's order.
FIELDS = {
    "sender": "Sender",
    "recipients": "Recipients",
    "subject": "MessageSubject",
    "message_id": "MessageId",
    "start": "Start",
    "end": "End",
}
#: Longer than any address, subject filter or date a person types.
MAX_FIELD = 256
#: At most this many recipients in one search (the form takes them comma-separated).
MAX_RECIPIENTS = 20
#: Events one search shows: a page of them, as the EMC's tracking viewer pages.
RESULT_SIZE = 500


def _value(name: str, raw: str) -> str:
    value = raw.strip()
    # The recipients field holds up to MAX_RECIPIENTS addresses, each as long as a field.
    limit = MAX_FIELD * (MAX_RECIPIENTS + 1) if name == "recipients" else MAX_FIELD
    if len(value) > limit:
        raise ConsoleInputError(
            f"{name}: {len(value)} characters is too long; at most {limit} are taken"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConsoleInputError(f"{name}: control characters are not taken; type plain text")
    return value


def search_criteria(query: Mapping[str, str]) -> dict[str, str]:
    """The form's non-empty fields, checked (an unknown field is ignored, as a form's are)."""
    found = {}
    for name in FIELDS:
        value = _value(name, query.get(name, ""))
        if value:
            found[name] = value
    return found


def tracking_command(criteria: Mapping[str, str], result_size: int = RESULT_SIZE) -> str:
    """``Get-MessageTrackingLog -Sender '...' ... -ResultSize N`` for checked criteria."""
    words = ["Get-MessageTrackingLog"]
    for name, parameter in FIELDS.items():
        value = criteria.get(name)
        if not value:
            continue
        if name == "recipients":
            recipients = [r.strip() for r in value.split(",") if r.strip()]
            if len(recipients) > MAX_RECIPIENTS:
                raise ConsoleInputError(
                    f"recipients: {len(recipients)} addresses; at most {MAX_RECIPIENTS} are taken"
                )
            words.append(f"-{parameter} " + ",".join(quoted(r) for r in recipients))
        else:
            words.append(f"-{parameter} {quoted(value)}")
    words.append(f"-ResultSize {result_size}")
    return " ".join(words)


__all__ = ["FIELDS", "MAX_FIELD", "RESULT_SIZE", "search_criteria", "tracking_command"]
