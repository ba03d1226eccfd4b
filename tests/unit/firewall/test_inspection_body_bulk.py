"""The DATA body goes through in bulk, and the body rules still see every line they match.

The engine forwards whole body lines as one slice (no Python per line) and
sends only the lines a rule may match through the per-line rules.  These
tests hold it to the per-line reading: for any body, any split into segments
gives the same bytes to the server, the same syslog lines in the same order,
and the same end of data, as one byte per segment (which never takes the
bulk path).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.firewall.esmtp_policy import EsmtpPolicy, LimitRule, Outcome
from sitemail.firewall.inspection import (
    Action,
    DropConnection,
    EsmtpInspector,
    InspectState,
    Syslog,
    ToServer,
)

LINES = st.sampled_from(
    [
        b"plain text\r\n",
        b"a" * 998 + b"\r\n",  # at the body line limit: not over it
        b"b" * 999 + b"\r\n",  # one over
        b"c" * 999 + b"\n",  # one over, bare LF
        b"d" * 998 + b"\r\r\n",  # the CR before CRLF is text
        b"Content-Type: application/pdf; name=" + b"n" * 300 + b".pdf\r\n",
        b"Content-Disposition: attachment;\r\n",
        b'\tfilename="' + b"f" * 260 + b'.txt"\r\n',
        b" filename=short.txt\r\n",
        b"content-type : text/plain\r\n",
        b"..stuffed dot\r\n",
        b"line\n.\nsmuggled\r\n",
        b"\r\n",
        b".\r\n",  # the end of data
    ]
)
BODY = st.lists(LINES, max_size=30).map(b"".join)
CUTS = st.lists(st.integers(min_value=0), max_size=12)
FAST = settings(max_examples=150, deadline=None)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def in_body(policy: EsmtpPolicy) -> EsmtpInspector:
    engine = EsmtpInspector(policy)
    engine.feed_server(b"220 mx\r\n")
    engine.feed_client(b"DATA\r\n")
    engine.feed_server(b"354 go\r\n")
    engine.feed_client(b"Subject: x\r\n\r\n")
    assert engine.state is InspectState.DATA_BODY
    return engine


def run(policy: EsmtpPolicy, pieces: list[bytes]) -> tuple[bytes, list[str], bool, str]:
    # Whole-line judgement of commands, so that lines after an end of data mean the
    # same one byte at a time (per segment, a lone "N" would be masked).
    engine = in_body(replace(policy, per_segment_checks=False))
    actions: list[Action] = []
    for piece in pieces:
        actions += engine.feed_client(piece)
    sent = b"".join(a.data for a in actions if isinstance(a, ToServer))
    logs = [a.message for a in actions if isinstance(a, Syslog)]
    dropped = any(isinstance(a, DropConnection) for a in actions)
    return sent, logs, dropped, engine.state.value


POLICIES = st.sampled_from(
    [
        EsmtpPolicy(),
        # A body length limit somewhere inside most bodies, logged.
        replace(EsmtpPolicy(), body_length_max=LimitRule(2000, Outcome("log", True, 9, "b"))),
        # The body line rule dropping the connection instead of logging.
        replace(
            EsmtpPolicy(),
            body_line_max=LimitRule(998, Outcome("drop-connection", True, 3, "body line")),
        ),
        replace(EsmtpPolicy(), body_line_max=None, mime_filename_max=None),
    ]
)


@FAST
@given(POLICIES, BODY, CUTS)
def test_any_split_reads_the_body_as_one_byte_per_segment_does(
    policy: EsmtpPolicy, body: bytes, cuts: list[int]
) -> None:
    data = body + b"tail\r\n.\r\nNOOP\r\n"
    by_byte = run(policy, [data[i : i + 1] for i in range(len(data))])
    got = run(policy, split(data, cuts))
    sent, logs, dropped, state = got
    assert (logs, dropped, state) == by_byte[1:]
    if not dropped:
        assert sent == by_byte[0]
        if b"\r\n.\r\n" not in b"\r\n" + body:
            assert sent == data  # the whole body, then the commands after it, unchanged


def test_one_segment_logs_each_over_long_body_line_once_after_it() -> None:
    engine = in_body(EsmtpPolicy())
    over = b"x" * 999 + b"\r\n"
    actions = engine.feed_client(b"ok\r\n" + over + b"ok\r\n" + over + b".\r\n")
    kinds = [(type(a).__name__, len(a.data) if isinstance(a, ToServer) else 0) for a in actions]
    assert kinds == [
        ("ToServer", 4 + len(over)),
        ("Syslog", 0),
        ("ToServer", 4 + len(over)),
        ("Syslog", 0),
        ("ToServer", 3),
    ]
    assert engine.state is InspectState.CMD


def test_a_long_mime_filename_in_the_body_drops_the_connection() -> None:
    engine = in_body(EsmtpPolicy())
    part = b"--b\r\nContent-Disposition: attachment;\r\n filename=" + b"f" * 256 + b"\r\n\r\n"
    actions = engine.feed_client(b"text\r\n" * 50 + part + b"data\r\n")
    assert isinstance(actions[-1], DropConnection)
    assert "MIME filename length gt 255" in "".join(
        a.message for a in actions if isinstance(a, Syslog)
    )
