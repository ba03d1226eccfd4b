"""The IIS request log's lines: the W3C extended format of IIS 7.5, one file per UTC day."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sitemail.access.web.logs import W3C_FIELDS, AccessLogs


def _request(logs: AccessLogs, when: datetime, **fields: object) -> None:
    values: dict[str, object] = {
        "server_ip": "127.1.0.12",
        "method": "GET",
        "path": "/owa/",
        "query": "",
        "port": 443,
        "user": "CONTOSO\\adam",
        "client_ip": "127.0.0.1",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "status": 200,
        "millis": 7,
    }
    values.update(fields)
    logs.request(when, **values)  # type: ignore[arg-type]


def _lines(home: Path, day: str) -> list[str]:
    path = home / "inetpub" / "logs" / "LogFiles" / "W3SVC1" / f"u_ex{day}.log"
    return path.read_text().splitlines()


def test_a_request_line_is_iis_w3c_with_blanks_as_plus_and_a_file_per_day(tmp_path: Path) -> None:
    logs = AccessLogs(tmp_path)
    try:
        _request(logs, datetime(2026, 12, 7, 9, 5, 3, 123456, tzinfo=UTC))
        _request(
            logs,
            datetime(2026, 12, 7, 23, 59, 59, tzinfo=UTC),
            query="a=1 2",
            user=None,
            user_agent="",
            status=302,
            millis=0,
        )
        _request(logs, datetime(2026, 12, 8, 0, 0, 0, tzinfo=UTC), user="line\r\nbreak")
    finally:
        logs.close()
    first = _lines(tmp_path, "261207")
    assert first[:2] == ["#Software: Microsoft Internet Information Services 7.5", "#Version: 1.0"]
    assert first[2] == "#Date: 2026-12-07 09:05:03"
    assert first[3] == f"#Fields: {W3C_FIELDS}"
    assert first[4:] == [
        "2026-12-07 09:05:03 127.1.0.12 GET /owa/ - 443 CONTOSO\\adam 127.0.0.1 "
        "Mozilla/5.0+(X11;+Linux+x86_64) 200 0 0 7",
        "2026-12-07 23:59:59 127.1.0.12 GET /owa/ a=1+2 443 - 127.0.0.1 - 302 0 0 0",
    ]
    second = _lines(tmp_path, "261208")
    assert second[2] == "#Date: 2026-12-08 00:00:00"
    assert second[4].split(" ")[7] == "line++break"


@given(st.text(max_size=2100))
def test_a_field_has_no_blank_and_at_most_2000_characters(text: str) -> None:
    from sitemail.access.web.logs import _w3c

    field = _w3c(text)
    assert " " not in field and "\n" not in field and "\r" not in field
    assert len(field) <= 2000
    expected = text.replace(" ", "+").replace("\n", "+").replace("\r", "+")[:2000] or "-"
    assert field == expected


def test_decision_lines_are_one_compact_json_object_each_time_first(tmp_path: Path) -> None:
    """The decision log's lines, whether the record was written out for the line or kept
    from an earlier one: the same compact JSON, the time first, as the troubleshooter
    reads them (sitemail.diagnose)."""
    import json

    from sitemail.access.web.logs import json_record

    logs = AccessLogs(tmp_path)
    record = {"protocol": "OWA", "user": "adam", "outcome": "Proxy", "target": "https://x/owa"}
    when = datetime(2026, 12, 7, 9, 5, 3, 250000, tzinfo=UTC)
    try:
        logs.decision(when, record)
        logs.decision_json(when, json_record(record))
    finally:
        logs.close()
    lines = (tmp_path / "Logging" / "ClientAccess" / "Decision20261207.log").read_text()
    expected = json.dumps({"time": when.isoformat(), **record}, separators=(",", ":"))
    assert lines.splitlines() == [expected, expected]
    assert json.loads(expected)["time"] == "2026-12-07T09:05:03.250000+00:00"
