"""The protocol log prefilter: the fast selection equals the full parse, row for row."""

from __future__ import annotations

import random
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitemail.diagnose.logs import (
    LogKind,
    group_sessions,
    hitscan,
    inspect_log_file,
    parallel,
    prefilter,
    read_protocol_file,
)
from sitemail.diagnose.logs.prefilter import (
    EDGE,
    SAMPLES,
    FileScan,
    select_sessions,
    select_sessions_reference,
)
from sitemail.mailflow.log_files import format_row
from sitemail.mailflow.protocol_log import PROTOCOL_LOG_FIELDS

SEND, RECEIVE = LogKind.SMTP_SEND, LogKind.SMTP_RECEIVE


@pytest.fixture(autouse=True, params=["hyperscan", "bytes.find"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both ways of finding the rows: Hyperscan's one pass, and the
    bytes.find searches used where Hyperscan is missing."""
    if request.param == "hyperscan":
        assert hitscan.AVAILABLE, "the hyperscan wheel is a dependency on x86-64 Linux"
    else:
        monkeypatch.setattr(hitscan, "AVAILABLE", False)
    return str(request.param)


FIELDS_LINE = "#Fields: " + ",".join(PROTOCOL_LOG_FIELDS)
HEADER = {
    SEND: [
        "#Software: Microsoft Exchange Server",
        "#Version: 14.0.0.0",
        "#Log-type: SMTP Send Protocol Log",
        "#Date: 2026-03-02T09:00:00.000Z",
        FIELDS_LINE,
    ],
    RECEIVE: [
        "#Software: Microsoft Exchange Server",
        "#Version: 14.0.0.0",
        "#Log-type: SMTP Receive Protocol Log",
        "#Date: 2026-03-02T09:00:00.000Z",
        FIELDS_LINE,
    ],
}
CONNECTOR = {SEND: "Intra-Organization SMTP Send Connector", RECEIVE: "EX-NY1\\Default EX-NY1"}
BANNER = (
    "220 ex-fl1.contoso.com Microsoft ESMTP MAIL Service ready at Fri, 5 Aug 2016 16:24:41 +0000"
)
Row = tuple[str, str, str]  # event, data, context

HEALTHY_SEND: list[Row] = [
    ("*", "", "attempting to connect"),
    ("+", "", ""),
    ("<", BANNER, ""),
    (">", "EHLO ex-ny1.contoso.com", ""),
    ("<", "250-ex-fl1.contoso.com Hello [10.1.0.11]", ""),
    ("<", "250-SIZE", ""),
    ("<", "250 X-ANONYMOUSTLS", ""),
    (">", "X-ANONYMOUSTLS", ""),
    ("<", "220 2.0.0 SMTP server ready", ""),
    ("*", "", "TLS negotiation succeeded, bulk encryption AES, 256 bits"),
    (">", "QUIT", ""),
    ("-", "", "Local"),
]
HEALTHY_RECEIVE: list[Row] = [
    ("+", "", ""),
    ("*", "SMTPSubmit SMTPAcceptAnySender", "Set Session Permissions"),
    (">", BANNER, ""),
    ("<", "EHLO ex-fl1.contoso.com", ""),
    (">", "250-ex-ny1.contoso.com Hello [10.1.0.11]", ""),
    (">", "250 X-ANONYMOUSTLS", ""),
    ("<", "X-ANONYMOUSTLS", ""),
    ("-", "", "Local"),
]


class Session:
    counter = 0x08D0_0000_0000_0000

    def __init__(self, kind: LogKind, rows: Sequence[Row], connector: str = "") -> None:
        Session.counter += 1
        self.sid = f"{Session.counter:016X}"
        self.kind = kind
        self.connector = connector or CONNECTOR[kind]
        self.lines = [
            format_row(
                [
                    f"2026-03-02T09:00:{i % 60:02d}.000Z",
                    self.connector,
                    self.sid,
                    str(i),
                    "10.1.0.11:41234",
                    "10.2.0.11:25",
                    event,
                    data,
                    context,
                ]
            )
            for i, (event, data, context) in enumerate(rows)
        ]


def healthy(kind: LogKind) -> Session:
    return Session(kind, HEALTHY_SEND if kind is SEND else HEALTHY_RECEIVE)


def with_rows(kind: LogKind, *extra: Row, end: bool = True) -> Session:
    base = HEALTHY_SEND if kind is SEND else HEALTHY_RECEIVE
    return Session(kind, [*base[:4], *extra, *base[4 : None if end else -1]])


def log(
    kind: LogKind,
    sessions: Sequence[Session],
    *,
    newline: str = "\r\n",
    interleave: random.Random | None = None,
    header: Sequence[str] | None = None,
) -> bytes:
    """A log of the sessions, one after the other or interleaved (each in its order)."""
    lines = [h + "\r\n" for h in (HEADER[kind] if header is None else header)]
    if interleave is None:
        lines += [line for s in sessions for line in s.lines]
    else:
        queues = [list(s.lines) for s in sessions if s.lines]
        while queues:
            queue = interleave.choice(queues[:4])  # a few sessions open at once
            lines.append(queue.pop(0))
            if not queue:
                queues.remove(queue)
    return "".join(lines).replace("\r\n", newline).encode()


def fillers(kind: LogKind, count: int) -> list[Session]:
    return [healthy(kind) for _ in range(count)]


def middle(kind: LogKind, *special: Session) -> bytes:
    """``special`` after enough healthy sessions to be past the edges and the samples,
    and before enough to be before the tail edge."""
    return log(kind, [*fillers(kind, 120), *special, *fillers(kind, 120)])


def fingerprint(scan: FileScan) -> tuple[Any, ...]:
    return (
        [
            (
                s.session_id,
                s.connector_id,
                s.kind,
                s.complete,
                [(r.values, r.path, r.line, r.kind) for r in s.rows],
            )
            for s in scan.sessions
        ],
        scan.rows,
        scan.sessions_total,
        scan.bytes,
    )


@contextmanager
def fast_only() -> Iterator[None]:
    """select_sessions without the fallback to the full parse."""

    def refuse(data: bytes, label: str, kind: LogKind) -> FileScan:
        raise AssertionError("the fast path fell back to the full parse")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefilter, "select_sessions_reference", refuse)
        yield


def check(data: bytes, kind: LogKind, *, fast: bool = True) -> FileScan:
    """select_sessions equals select_sessions_reference (and took the fast path)."""
    reference = select_sessions_reference(data, "x.LOG", kind)
    if fast:
        with fast_only():
            found = select_sessions(data, "x.LOG", kind)
    else:
        found = select_sessions(data, "x.LOG", kind)
    assert fingerprint(found) == fingerprint(reference)
    return found


def ids(scan: FileScan) -> set[str]:
    return {s.session_id for s in scan.sessions}


# -- each criterion, in the middle of a file ----------------------------------------


@pytest.mark.parametrize(
    ("kind", "row"),
    [
        (SEND, ("*", "", "451 5.7.3 Cannot achieve Exchange Server authentication")),
        (SEND, ("<", "421 4.4.2 Connection dropped", "")),
        (SEND, ("<", "250 XXXXXXXA", "")),
        (SEND, ("<", "220 ************************", "")),
        (SEND, ("*", "", "TLS negotiation failed with error UnknownCredentials")),
        (SEND, ("*", "", "Failed to connect. Winsock error code: 10060")),
        (SEND, ("*", "", "unable to connect")),
        (SEND, ("*", "", "Cannot load Internal Transport Certificate")),
        (RECEIVE, (">", "500 5.3.3 Unrecognized command", "")),
        (RECEIVE, (">", "421 4.3.2 Service not available", "")),
        (RECEIVE, ("*", "", "Connection dropped")),
        (RECEIVE, ("<", '"a, b, and 5.7.1, quoted"', "")),
    ],
)
def test_a_marker_selects_its_session(kind: LogKind, row: Row) -> None:
    special = with_rows(kind, row)
    scan = check(middle(kind, special), kind)
    assert special.sid in ids(scan)
    (session,) = [s for s in scan.sessions if s.session_id == special.sid]
    assert len(session.rows) == len(special.lines) and session.complete


def test_a_marker_in_another_field_selects_too() -> None:
    special = Session(SEND, HEALTHY_SEND, connector="Failed Connectors Ltd")
    scan = check(middle(SEND, special), SEND)
    assert special.sid in ids(scan)


def test_attempting_to_connect_alone_is_no_marker_but_a_second_to_connect_is() -> None:
    plain = healthy(SEND)
    twice = with_rows(SEND, ("*", "", "attempting to connect, then unable to connect"))
    cut = with_rows(SEND, ("*", "", "attempting 9to connect"))
    scan = check(middle(SEND, plain, twice, cut), SEND)
    assert twice.sid in ids(scan) and cut.sid in ids(scan)
    assert plain.sid not in ids(scan)


@pytest.mark.parametrize(
    ("row", "selected"),
    [
        (("<", "QUIT", ""), True),
        (("<", "quit", ""), True),
        (("<", "qUiT now", ""), True),
        (("<", "QUIT, then more", ""), True),
        ((">", "QUIT", ""), False),
        (("<", "NOQUIT", ""), False),
        (("*", "SMTPSubmit SMTPAcceptAnyRecipient", "Set Session Permissions"), True),
        (("<", "SMTPAcceptAnyRecipient", ""), False),
    ],
)
def test_receive_quit_and_any_recipient(row: Row, selected: bool) -> None:
    if row[0] == "*":  # the permissions row, at sequence-number 1
        special = Session(RECEIVE, [HEALTHY_RECEIVE[0], row, *HEALTHY_RECEIVE[2:]])
    else:
        special = with_rows(RECEIVE, row)
    scan = check(middle(RECEIVE, special), RECEIVE)
    assert (special.sid in ids(scan)) is selected


def test_receive_quit_and_any_recipient_late_in_the_session_do_not_select() -> None:
    late = [("<", f"NOOP {i}", "") for i in range(25)]
    quit_late = with_rows(RECEIVE, *late, ("<", "QUIT", ""))
    # at sequence-number 4: too late
    any_late = with_rows(RECEIVE, ("*", "SMTPAcceptAnyRecipient", "Set Session Permissions"))
    scan = check(middle(RECEIVE, quit_late, any_late), RECEIVE)
    assert quit_late.sid not in ids(scan) and any_late.sid not in ids(scan)


def test_a_short_send_session_is_selected_and_a_long_one_not() -> None:
    short = Session(SEND, [("*", "", "attempting to connect"), ("+", "", ""), ("-", "", "Remote")])
    long = healthy(SEND)
    receive_short = Session(RECEIVE, [("+", "", ""), ("-", "", "Remote")])
    scan = check(middle(SEND, short, long), SEND)
    assert short.sid in ids(scan) and long.sid not in ids(scan)
    assert receive_short.sid not in ids(check(middle(RECEIVE, receive_short), RECEIVE))


def test_the_edges_and_the_first_sixteen_sessions_are_selected() -> None:
    sessions = fillers(SEND, 300)
    data = log(SEND, sessions)
    scan = check(data, SEND)
    head = [s for s in sessions if data.find(s.lines[0].encode()) < EDGE]
    tail = [s for s in sessions if data.find(s.lines[-1].encode()) >= len(data) - EDGE]
    first = {s.sid for s in sessions[:SAMPLES]}
    assert ids(scan) == {s.sid for s in head} | {s.sid for s in tail} | first
    middle_one = sessions[150]
    assert middle_one.sid not in ids(scan)  # healthy, not sampled, far from the edges


def test_samples_come_from_past_the_edge_when_the_head_has_few_sessions() -> None:
    long = Session(SEND, [("*", "", "attempting to connect")] + [(">", "NOOP", "")] * 600)
    rest = fillers(SEND, 200)
    data = log(SEND, [long, *rest])
    scan = check(data, SEND)
    starting = [long, *rest]
    assert [s.sid for s in starting[:SAMPLES]] == [
        s.session_id for s in scan.sessions if s.session_id in {x.sid for x in starting[:SAMPLES]}
    ]
    assert starting[SAMPLES + 40].sid not in ids(scan)


def test_a_healthy_session_in_the_middle_of_a_large_file_is_not_selected() -> None:
    target = healthy(RECEIVE)
    data = middle(RECEIVE, target)
    scan = check(data, RECEIVE)
    assert target.sid not in ids(scan)
    assert len(scan.sessions) < 241 * 2 // 3
    assert scan.sessions_total == 241 and scan.rows == 241 * len(HEALTHY_RECEIVE)


# -- the shape of the file ------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_crlf_and_lf_files_interleaved(newline: str) -> None:
    rng = random.Random(7)
    specials = [with_rows(SEND, ("<", "250 XXXXXXXA", "")) for _ in range(3)]
    sessions = [*fillers(SEND, 100), *specials, *fillers(SEND, 100)]
    data = log(SEND, sessions, newline=newline, interleave=rng)
    scan = check(data, SEND)
    assert {s.sid for s in specials} <= ids(scan)


def test_context_with_commas_unquoted_as_exchange_writes_it() -> None:
    special = with_rows(SEND, ("*", "", "TLS negotiation failed, error, UnknownCredentials"))
    plain = with_rows(SEND, ("*", "", "TLS negotiation succeeded, bulk encryption, 256"))
    for session in (special, plain):
        session.lines = [line.replace('"', "") for line in session.lines]
    scan = check(middle(SEND, special, plain), SEND)
    assert special.sid in ids(scan) and plain.sid not in ids(scan)
    (session,) = [s for s in scan.sessions if s.session_id == special.sid]
    assert session.rows[4].context == "TLS negotiation failed, error, UnknownCredentials"


def test_one_reduced_search_finds_quit_in_any_case() -> None:
    for quote in ("", '"'):
        for bits in range(16):
            word = "".join(c.lower() if bits >> i & 1 else c for i, c in enumerate("QUIT"))
            assert prefilter._QUIT_REDUCED in prefilter._reduce(f",<,{quote}{word}".encode())


def test_quoted_values_with_commas_everywhere() -> None:
    quoted = Session(SEND, HEALTHY_SEND, connector="Send, to the branch")
    marked = with_rows(SEND, ("<", '"250 Hello, 5.7.1 \\"friend\\", bye"', "ctx, with, commas"))
    scan = check(middle(SEND, quoted, marked), SEND)
    assert marked.sid in ids(scan) and quoted.sid not in ids(scan)
    (session,) = [s for s in scan.sessions if s.session_id == marked.sid]
    assert session.rows[4].data.startswith('"250 Hello, 5.7.1')
    assert session.rows[4].context == "ctx, with, commas"


def test_a_mid_file_fields_line() -> None:
    first, second = fillers(RECEIVE, 150), fillers(RECEIVE, 150)
    special = with_rows(RECEIVE, ("*", "", "Cannot do that"))
    data = log(RECEIVE, first) + log(RECEIVE, [special, *second], header=[FIELDS_LINE])
    scan = check(data, RECEIVE)
    assert special.sid in ids(scan)
    (session,) = [s for s in scan.sessions if s.session_id == special.sid]
    assert session.rows[0].line == len(HEADER[RECEIVE]) + 150 * len(HEALTHY_RECEIVE) + 2


def test_another_column_order_is_read_by_the_full_parse() -> None:
    order = list(reversed(PROTOCOL_LOG_FIELDS))
    header = [*HEADER[SEND][:-1], "#Fields: " + ",".join(order)]
    special = with_rows(SEND, ("*", "", "451 5.7.3 Cannot achieve"))
    sessions = [*fillers(SEND, 120), special, *fillers(SEND, 120)]
    lines = [
        ",".join(reversed(line.rstrip("\r\n").split(","))) + "\r\n"
        for s in sessions
        for line in s.lines
        if '"' not in line
    ]
    data = ("\r\n".join(header) + "\r\n" + "".join(lines)).encode()
    scan = check(data, SEND, fast=False)
    (session,) = [s for s in scan.sessions if s.session_id == special.sid]
    assert session.rows[0].event == "*" and session.rows[0].context == "attempting to connect"
    midfile = log(SEND, fillers(SEND, 5)) + ("#Fields: " + ",".join(order) + "\r\n").encode()
    check(midfile, SEND, fast=False)


def test_a_session_split_at_the_file_boundary() -> None:
    cut_start, cut_end = healthy(SEND), healthy(SEND)
    cut_start.lines = cut_start.lines[5:]
    cut_end.lines = cut_end.lines[:6]
    sessions = [cut_start, *fillers(SEND, 200), cut_end]
    data = log(SEND, sessions, interleave=random.Random(3))
    scan = check(data, SEND)
    found = {s.session_id: s for s in scan.sessions}
    assert not found[cut_end.sid].complete and len(found[cut_end.sid].rows) == 6
    assert found[cut_start.sid].complete and len(found[cut_start.sid].rows) == 7


def test_a_last_row_cut_short_and_odd_lines() -> None:
    sessions = fillers(RECEIVE, 200)
    data = log(RECEIVE, sessions) + b"2026-03-02T09:00:00.000Z,EX\\A,08D0FFFF00000001,0"
    check(data, RECEIVE)
    cut_row = sessions[100].lines[3].encode()
    data = log(RECEIVE, sessions).replace(cut_row, cut_row[:60] + b"\r\n")
    check(data, RECEIVE)
    empty = log(RECEIVE, sessions).replace(cut_row, cut_row + b"\r\n")
    check(empty, RECEIVE, fast=False)
    across = log(RECEIVE, sessions).replace(b"Fri, 5 Aug", b"Fri,\r\n 5 Aug", 1)
    check(across, RECEIVE, fast=False)
    bom = b"\xef\xbb\xbf" + log(RECEIVE, sessions)
    check(bom, RECEIVE)
    check(b"", RECEIVE)
    check(log(RECEIVE, []), RECEIVE)


def test_the_reference_reads_rows_as_the_log_reader_does(tmp_path: Path) -> None:
    specials = [with_rows(SEND, ("*", "", "451 5.7.3 Cannot achieve")) for _ in range(3)]
    sessions = [*fillers(SEND, 60), *specials, *fillers(SEND, 60)]
    data = log(SEND, sessions, interleave=random.Random(5))
    data += b'2026-03-02T09:00:00.000Z,X,08D0FFFF00000002,0,a,b,*,"open\r\nquote",c\r\n'
    path = tmp_path / "SEND20260302-1.LOG"
    path.write_bytes(data)
    by_id = {s.session_id: s for s in group_sessions(read_protocol_file(inspect_log_file(path)))}
    scan = select_sessions_reference(data, str(path), SEND)
    assert scan.sessions
    for session in scan.sessions:
        assert session.rows == by_id[session.session_id].rows


# -- random interleavings -------------------------------------------------------------

VOCABULARY: list[Row] = [
    (">", "250-SIZE", ""),
    ("<", "EHLO a.contoso.com", ""),
    ("<", "MAIL FROM:<a@contoso.com>", ""),
    (">", BANNER, ""),
    ("*", "", "TLS negotiation succeeded, with commas, in context"),
    ("*", "SMTPSubmit SMTPAcceptAnySender", "Set Session Permissions"),
    ("<", "250 XXXXXXXA", ""),
    ("*", "", "451 5.7.3 Cannot achieve Exchange Server authentication"),
    ("<", "421 4.4.2 Connection dropped", ""),
    ("*", "", "attempting to connect"),
    ("*", "", "Failed to connect"),
    (">", "500 5.3.3 Unrecognized command", ""),
    ("<", "QUIT", ""),
    ("<", "quit", ""),
    ("*", "SMTPAcceptAnyRecipient", "Set Session Permissions"),
    ("<", '"quoted, 5.7.1, data"', ""),
    ("<", "+", ""),  # not a connect: field 7
    ("<", "a,+,b", ""),  # quoted: not a connect either
    ("*", "-", ""),  # not a disconnect
    ("<", "x,0,y", ""),
    ("*", "", "Connection dropped"),
]


@st.composite
def random_log(draw: Callable[..., Any]) -> tuple[bytes, LogKind]:
    kind = draw(st.sampled_from([SEND, RECEIVE]))
    rng = draw(st.randoms(use_true_random=False))
    sessions = []
    for _ in range(draw(st.integers(0, 14))):
        middle_rows = draw(st.lists(st.sampled_from(VOCABULARY), max_size=8))
        first = ("*", "", "attempting to connect") if kind is SEND else ("+", "", "")
        session = Session(kind, [first, *middle_rows, ("-", "", "Local")])
        cut = draw(st.sampled_from(["none", "none", "start", "end"]))
        if cut == "start":
            session.lines = session.lines[draw(st.integers(1, len(session.lines))) :]
        elif cut == "end":
            session.lines = session.lines[: draw(st.integers(0, len(session.lines) - 1))]
        sessions.append(session)
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    data = log(kind, sessions, newline=newline, interleave=rng)
    if draw(st.booleans()) and sessions:
        lines = data.split(b"\n")
        at = draw(st.integers(len(HEADER[kind]), len(lines) - 1))
        lines.insert(at, FIELDS_LINE.encode() + newline.encode()[:-1])
        data = b"\n".join(lines)
    return data, kind


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_log(), st.sampled_from([64, 300, 5000]), st.integers(1, 4))
def test_random_interleavings(case: tuple[bytes, LogKind], edge: int, samples: int) -> None:
    data, kind = case
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefilter, "EDGE", edge)
        patch.setattr(prefilter, "SAMPLES", samples)
        patch.setattr(prefilter, "CHUNK", 40)
        check(data, kind)


# -- the process pool -----------------------------------------------------------------


def test_scan_files_in_order_in_a_pool(tmp_path: Path) -> None:
    items = []
    expected = []
    for i in range(5):
        kind = SEND if i % 2 else RECEIVE
        data = middle(kind, with_rows(kind, ("*", "", "451 5.7.3 Cannot achieve")))
        path = tmp_path / f"f{i}.LOG"
        path.write_bytes(data)
        items.append((str(path), parallel.FileBytes(path), kind))
        expected.append(fingerprint(select_sessions(data, str(path), kind)))
    archive = tmp_path / "logs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tmp_path / "f0.LOG", "SmtpReceive/f0.LOG")
    items.append(("zip!f0", parallel.ZipMemberBytes(archive, "SmtpReceive/f0.LOG"), RECEIVE))
    expected.append(
        fingerprint(select_sessions((tmp_path / "f0.LOG").read_bytes(), "zip!f0", RECEIVE))
    )
    for workers in (1, 2):
        seen: list[int] = []
        scans = list(parallel.scan_files(items, workers=workers, progress=seen.append))
        assert [fingerprint(s) for s in scans] == expected
        assert seen == sorted(seen) and seen[-1] == sum(s.bytes for s in scans)
