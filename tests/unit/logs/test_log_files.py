"""The one log writer: header, quoting, names, rotation, circular logging."""

from __future__ import annotations

import csv
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from sitemail.clock import ManualClock
from sitemail.mailflow.log_files import (
    LogFileReader,
    LogFileSettings,
    LogLimits,
    LogWriter,
    _split_quoted_slowly,
    format_row,
    format_timestamp,
    parse_log_file_name,
    parse_timestamp,
    quote_value,
    split_row,
)

FIELDS = ("date-time", "connector-id", "data", "context")
START = datetime(2019, 1, 25, 0, 3, 58, 478_000, tzinfo=UTC)


def settings(**limits: object) -> LogFileSettings:
    return LogFileSettings("RECV", "SMTP Receive Protocol Log", FIELDS, LogLimits(**limits))  # type: ignore[arg-type]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def data_rows(path: Path) -> list[str]:
    return [
        line
        for line in path.read_bytes().decode().split("\r\n")
        if line and not line.startswith("#")
    ]


# -- values ----------------------------------------------------------------


def test_timestamp_is_utc_with_milliseconds_and_z() -> None:
    assert format_timestamp(START) == "2019-01-25T00:03:58.478Z"
    plus_two = START.astimezone(__import__("datetime").timezone(timedelta(hours=2)))
    assert format_timestamp(plus_two) == "2019-01-25T00:03:58.478Z"


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, __import__("datetime").timezone(timedelta(hours=-7))]),
    )
)
def test_timestamp_text_is_strftimes(moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    assert format_timestamp(moment) == f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        format_timestamp(datetime(2019, 1, 25))


def test_timestamp_parses_back_also_with_seven_digit_fractions() -> None:
    assert parse_timestamp("2019-01-25T00:03:58.478Z") == START
    assert parse_timestamp("2019-01-25T00:03:58.4780000Z") == START


def test_values_with_comma_quote_or_newline_are_quoted_and_quotes_doubled() -> None:
    assert quote_value("plain text") == "plain text"
    assert quote_value("Tue, 1 Mar 2011") == '"Tue, 1 Mar 2011"'
    assert quote_value('say "hi"') == '"say ""hi"""'
    assert quote_value("two\nlines") == '"two\nlines"'
    assert format_row(["a", "b,c", ""]) == 'a,"b,c",\r\n'


def test_split_row_joins_surplus_into_the_last_field_and_pads_short_rows() -> None:
    assert split_row("a,b,TLS x, MAC y", 3) == ["a", "b", "TLS x, MAC y"]
    assert split_row('a,"b,c",d', 3) == ["a", "b,c", "d"]
    assert split_row("a", 3) == ["a", "", ""]


@given(
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\r\x00")),
        min_size=1,
        max_size=6,
    )
)
def test_split_row_inverts_format_row_for_single_line_values(values: list[str]) -> None:
    values = ["2019-01-25T00:00:00.000Z", *[v.replace("\n", " ") for v in values]]
    line = format_row(values)[:-2]
    assert split_row(line, len(values)) == values


# -- names -------------------------------------------------------------------


def test_file_names_parse_for_2010_daily_and_2013_hourly_shapes() -> None:
    daily = parse_log_file_name("RECV20190221-2.LOG")
    hourly = parse_log_file_name("RECV2023020113-1.LOG")
    assert daily is not None and hourly is not None
    assert (daily.prefix, daily.period_start, daily.number, daily.hourly) == (
        "RECV",
        datetime(2019, 2, 21, tzinfo=UTC),
        2,
        False,
    )
    assert hourly.period_start == datetime(2023, 2, 1, 13, tzinfo=UTC) and hourly.hourly
    assert parse_log_file_name("MSGTRKMD2022091915-1.LOG") is not None
    assert parse_log_file_name("notes.txt") is None
    assert parse_log_file_name("RECV20191399-1.LOG") is None


# -- writing -----------------------------------------------------------------


def test_first_row_creates_the_file_with_the_exact_header(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with LogWriter(tmp_path, settings(), clock) as writer:
        writer.write_row([format_timestamp(clock.now()), "EX\\Default", "Tue, 1 Mar", ""])
    assert names(tmp_path) == ["RECV20190125-1.LOG"]
    assert (tmp_path / "RECV20190125-1.LOG").read_bytes() == (
        b"#Software: Microsoft Exchange Server\r\n"
        b"#Version: 14.0.0.0\r\n"
        b"#Log-type: SMTP Receive Protocol Log\r\n"
        b"#Date: 2019-01-25T00:03:58.478Z\r\n"
        b"#Fields: date-time,connector-id,data,context\r\n"
        b'2019-01-25T00:03:58.478Z,EX\\Default,"Tue, 1 Mar",\r\n'
    )


def test_extension_hourly_names_and_bom_are_settings(tmp_path: Path) -> None:
    from dataclasses import replace

    custom = replace(settings(), extension=".log", hourly=True, byte_order_mark=True)
    with LogWriter(tmp_path, custom, ManualClock(START)) as writer:
        writer.write_row(["x", "y", "z", ""])
    assert names(tmp_path) == ["RECV2019012500-1.log"]
    assert (tmp_path / "RECV2019012500-1.log").read_bytes().startswith(b"\xef\xbb\xbf#Software")


def test_a_file_that_reaches_max_size_is_followed_by_the_next_number(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with LogWriter(tmp_path, settings(max_file_size=600), clock) as writer:
        for i in range(40):
            writer.write_row(["2019-01-25T00:03:58.478Z", "EX\\Default", f"row {i}", ""])
    files = names(tmp_path)
    assert files[:3] == ["RECV20190125-1.LOG", "RECV20190125-2.LOG", "RECV20190125-3.LOG"]
    rows: list[str] = []
    for name in sorted(files, key=lambda n: int(n.split("-")[1].split(".")[0])):
        path = tmp_path / name
        assert path.stat().st_size <= 600
        assert path.read_bytes().startswith(b"#Software: Microsoft Exchange Server\r\n")
        rows += data_rows(path)
    assert [r.split(",")[2] for r in rows] == [f"row {i}" for i in range(40)]


def test_a_row_larger_than_max_size_still_gets_written_once(tmp_path: Path) -> None:
    with LogWriter(tmp_path, settings(max_file_size=100), ManualClock(START)) as writer:
        writer.write_row(["t", "c", "x" * 500, ""])
        writer.write_row(["t", "c", "small", ""])
    assert names(tmp_path) == ["RECV20190125-1.LOG", "RECV20190125-2.LOG"]
    assert data_rows(tmp_path / "RECV20190125-1.LOG") == ["t,c," + "x" * 500 + ","]


def test_a_new_utc_day_starts_at_number_one(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2019, 1, 25, 23, 59, 59, tzinfo=UTC))
    with LogWriter(tmp_path, settings(max_file_size=300), clock) as writer:
        for _ in range(3):
            writer.write_row(["t", "c", "d" * 50, ""])
        clock.advance(2)
        writer.write_row(["t", "c", "next day", ""])
    assert names(tmp_path)[-1] == "RECV20190126-1.LOG"
    assert "#Date: 2019-01-26T00:00:01.000Z" in (tmp_path / "RECV20190126-1.LOG").read_text()


def test_files_older_than_max_age_are_deleted(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2019, 1, 1, 12, tzinfo=UTC))
    with LogWriter(tmp_path, settings(max_age=timedelta(days=2)), clock) as writer:
        for _ in range(5):
            writer.write_row(["t", "c", "d", ""])
            clock.advance(timedelta(days=1))
    # At noon of Jan 5, Jan 2's file (ended Jan 3 00:00) is 2.5 days old.
    assert names(tmp_path) == ["RECV20190103-1.LOG", "RECV20190104-1.LOG", "RECV20190105-1.LOG"]


def test_oldest_files_go_when_the_folder_passes_max_directory_size(tmp_path: Path) -> None:
    (tmp_path / "unrelated.txt").write_text("x" * 5000)  # not ours: never counted or deleted
    limit = 2000
    with LogWriter(
        tmp_path, settings(max_file_size=500, max_directory_size=limit), ManualClock(START)
    ) as writer:
        for i in range(60):
            writer.write_row(["t", "c", f"row {i:03d}" + "x" * 40, ""])
    logs = [p for p in tmp_path.iterdir() if p.suffix == ".LOG"]
    numbers = sorted(int(p.stem.split("-")[1]) for p in logs)
    assert sum(p.stat().st_size for p in logs) <= limit
    assert numbers == list(range(numbers[0], numbers[-1] + 1))  # the newest kept
    assert numbers[0] > 1
    assert "row 059" in (tmp_path / f"RECV20190125-{numbers[-1]}.LOG").read_text()
    assert (tmp_path / "unrelated.txt").exists()


def test_a_restarted_writer_continues_the_newest_file_without_a_new_header(
    tmp_path: Path,
) -> None:
    clock = ManualClock(START)
    with LogWriter(tmp_path, settings(), clock) as first:
        first.write_row(["t", "c", "before", ""])
    with LogWriter(tmp_path, settings(), clock) as second:
        second.write_row(["t", "c", "after", ""])
    text = (tmp_path / "RECV20190125-1.LOG").read_text()
    assert text.count("#Software") == 1
    assert data_rows(tmp_path / "RECV20190125-1.LOG") == ["t,c,before,", "t,c,after,"]


def test_a_restart_takes_the_next_number_when_the_newest_file_is_full(tmp_path: Path) -> None:
    clock = ManualClock(START)
    (tmp_path / "RECV20190125-7.LOG").write_bytes(b"#Software: x\r\n" + b"y" * 700 + b"\r\n")
    with LogWriter(tmp_path, settings(max_file_size=600), clock) as writer:
        writer.write_row(["t", "c", "after restart", ""])
    assert names(tmp_path) == ["RECV20190125-7.LOG", "RECV20190125-8.LOG"]
    assert (tmp_path / "RECV20190125-7.LOG").stat().st_size == len("#Software: x\r\n") + 702


def test_a_row_cut_by_a_crash_is_ended_before_new_rows(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with LogWriter(tmp_path, settings(), clock) as writer:
        writer.write_row(["t", "c", "whole", ""])
    path = tmp_path / "RECV20190125-1.LOG"
    with path.open("ab") as handle:
        handle.write(b"t,c,cut sho")
    with LogWriter(tmp_path, settings(), clock) as writer:
        writer.write_row(["t", "c", "after", ""])
    assert data_rows(path) == ["t,c,whole,", "t,c,cut sho", "t,c,after,"]


def _append_rows(folder: str, worker: int, count: int) -> None:
    clock = ManualClock(START)
    with LogWriter(folder, settings(max_file_size=2000), clock) as writer:
        for i in range(count):
            writer.write_row(["t", f"worker {worker}", f"row {i}", ""])


def test_processes_sharing_a_folder_lose_no_row_and_never_share_a_number(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_rows, args=(str(tmp_path), w, 300)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    rows: list[str] = []
    for path in tmp_path.iterdir():
        text = path.read_bytes().decode()
        assert text.startswith("#Software: Microsoft Exchange Server\r\n")
        assert text.count("#Software") == 1
        assert path.stat().st_size <= 2000
        rows += data_rows(path)
    for w in range(3):
        mine = [r for r in rows if f"worker {w}," in r]
        assert sorted(mine) == sorted(f"t,worker {w},row {i}," for i in range(300))


# -- reading -----------------------------------------------------------------


def test_reader_returns_what_the_writer_wrote_with_line_numbers(tmp_path: Path) -> None:
    values = [
        ["2019-01-25T00:03:58.478Z", "EX\\Default", 'banner "quoted", with comma', ""],
        ["2019-01-25T00:03:58.478Z", "EX\\Default", "multi\nline", "ctx"],
        ["2019-01-25T00:03:58.478Z", "EX\\Default", "", "Local"],
    ]
    with LogWriter(tmp_path, settings(), ManualClock(START)) as writer:
        writer.write_rows(values)
    with LogFileReader(tmp_path / "RECV20190125-1.LOG") as reader:
        header = reader.read_header()
        rows = list(reader)
    assert header.version == "14.0.0.0" and header.fields == FIELDS
    assert header.log_type == "SMTP Receive Protocol Log"
    assert [v for _, v in rows] == values
    assert [n for n, _ in rows] == [6, 7, 9]


def test_new_limits_apply_to_a_running_writer(tmp_path: Path) -> None:
    with LogWriter(tmp_path, settings(), ManualClock(START)) as writer:
        writer.write_row(["t", "c", "x" * 300, ""])
        writer.set_limits(LogLimits(max_file_size=200))
        writer.write_row(["t", "c", "after", ""])
    assert names(tmp_path) == ["RECV20190125-1.LOG", "RECV20190125-2.LOG"]


_VALUE = st.text(st.characters(codec="utf-8", exclude_characters="\r\x00"), max_size=30)


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_VALUE, min_size=3, max_size=3), min_size=1, max_size=8))
def test_rows_with_any_text_read_back_exactly(
    tmp_path_factory: pytest.TempPathFactory, table: list[list[str]]
) -> None:
    folder = tmp_path_factory.mktemp("rt")
    rows = [["2019-01-25T00:03:58.478Z", *values] for values in table]
    with LogWriter(folder, settings(), ManualClock(START)) as writer:
        writer.write_rows(rows)
    with LogFileReader(folder / "RECV20190125-1.LOG") as reader:
        assert [values for _, values in reader] == rows


@hsettings(max_examples=150, deadline=None)
@given(st.text(st.sampled_from(list('ab,"#\r\n\ufeff\xff')), max_size=200))
def test_no_file_content_crashes_the_reader(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "RECV20190125-1.LOG"
    path.write_bytes(("#Fields: a,b,c\n" + text).encode("utf-8", "surrogatepass"))
    with LogFileReader(path) as reader:
        for _, values in reader:
            assert len(values) == len(reader.header.fields) or not reader.header.fields


@given(st.text(st.sampled_from(list('ab,"')), max_size=40))
def test_fallback_splitter_agrees_with_the_csv_module(line: str) -> None:
    assert _split_quoted_slowly(line) == (next(csv.reader((line,))) or [""])


def test_a_stray_carriage_return_does_not_stop_the_read() -> None:
    assert split_row('a\rb,"c, d",e', 3) == ["a\rb", "c, d", "e"]


def test_a_restart_continues_a_file_whose_extension_case_differs(tmp_path: Path) -> None:
    existing = tmp_path / "RECV20190125-3.log"
    existing.write_bytes(b"#Software: Microsoft Exchange Server\r\nold,row,,\r\n")
    with LogWriter(tmp_path, settings(), ManualClock(START)) as writer:
        writer.write_row(["t", "c", "new", ""])
    assert names(tmp_path) == ["RECV20190125-3.log"]
    assert data_rows(existing) == ["old,row,,", "t,c,new,"]
