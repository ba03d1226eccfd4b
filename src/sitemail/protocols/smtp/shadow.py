"""The wire text of Exchange 2010 shadow redundancy: XSHADOW and XQDISCARD.

Exchange 2010 documents the verb (a hub advertises ``XSHADOW`` in its EHLO
reply, "Understanding Shadow Redundancy", Exchange 2010 help) but not the
command syntax or the replies.  sitemail's forms, all **unverified**:

- ``XSHADOW <sender fqdn>`` -> ``250 <shadow id>``: the receiver's shadow id
  names its queue database (a new ``mail.que`` gives a new id, which is how a
  sender learns that the hop lost what it had handed over);
- ``XQDISCARD <max>`` -> ``250 <n>[ <id> ...]``: the InternalIds (from the
  receiver's ``250 2.6.0 ... [InternalId=n]``) of the sender's messages the
  receiver has delivered or relayed since it was last asked, at most ``max``.
"""

from __future__ import annotations

import re

from .reply import Reply

#: At most this many ids in one XQDISCARD reply (keeps the line under 1,000 octets
#: with 20-digit ids).  Unverified: a sitemail bound.
MAX_DISCARD_IDS = 40

#: A 2010 hub's answer to XSHADOW/XQDISCARD from a session that is not an
#: Exchange-authenticated hub.  Unverified: modelled on XEXCH50's refusal.
SHADOW_NOT_AUTHORIZED = Reply(504, "5.7.1", ("Not authorized",))

_SHADOW_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")


def xshadow_reply(shadow_id: str) -> Reply:
    """``250 <shadow id>`` (unverified form)."""
    if not _SHADOW_ID.fullmatch(shadow_id):
        raise ValueError(f"not a shadow id: {shadow_id!r}")
    return Reply(250, None, (shadow_id,))


def parse_xshadow_reply(reply: Reply) -> str | None:
    """The peer's shadow id, or None when the reply is not a positive XSHADOW answer."""
    if reply.code != 250 or len(reply.lines) != 1:
        return None
    text = reply.lines[0].strip()
    return text if _SHADOW_ID.fullmatch(text) else None


def xqdiscard_reply(ids: list[int]) -> Reply:
    """``250 <n> <id> ...`` (unverified form)."""
    if len(ids) > MAX_DISCARD_IDS:
        raise ValueError(f"{len(ids)} ids exceed the {MAX_DISCARD_IDS} of one reply")
    return Reply(250, None, (" ".join(str(i) for i in [len(ids), *ids]),))


def parse_xqdiscard_reply(reply: Reply) -> list[int] | None:
    """The ids of an XQDISCARD reply, or None when it is not one (a refusal, garbage)."""
    if reply.code != 250 or len(reply.lines) != 1:
        return None
    words = reply.lines[0].split()
    if not words or not all(w.isdigit() for w in words):
        return None
    count, ids = int(words[0]), [int(w) for w in words[1:]]
    if count != len(ids) or count > MAX_DISCARD_IDS:
        return None
    return ids
