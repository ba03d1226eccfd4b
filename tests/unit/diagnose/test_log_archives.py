"""Logs as administrators send them: a zip of the folders, gzipped files; and what the
command says and exits with for each."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from tests.unit.diagnose.test_logs_offline import write

from sitemail.diagnose import samples
from sitemail.diagnose.cli import troubleshoot_main
from sitemail.diagnose.offline import troubleshoot_logs


def masked(tmp_path: Path) -> Path:
    return write(tmp_path / "org", lambda s, r, _: samples.send_masked(s))


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for path in folder.rglob("*"):
            if path.is_file():
                z.write(path, path.relative_to(folder))
    return target


def test_a_zip_reads_like_its_folder_and_cites_its_members(tmp_path: Path) -> None:
    folder = masked(tmp_path)
    plain = troubleshoot_logs([folder])
    archive = _zip(folder, tmp_path / "logs.zip")
    zipped = troubleshoot_logs([archive])
    assert (
        [(f.cause, f.subject) for f in zipped.findings]
        == [(f.cause, f.subject) for f in plain.findings]
        == [("esmtp-inspection", "EX-NY1 -> EX-FL1")]
    )
    located = [e.location for e in zipped.findings[0].evidence if e.location]
    assert located and all(
        loc.startswith(f"{archive}!EX-NY1/TransportRoles/") for loc in located
    ), located
    assert not list(Path("/tmp").glob("sitemail-logs-*/0/EX-NY1"))  # unpacked copies removed


def test_gzipped_files_in_a_folder_are_read(tmp_path: Path) -> None:
    folder = masked(tmp_path)
    for log in list(folder.rglob("*.LOG")):
        with log.open("rb") as src, gzip.open(log.with_name(log.name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
        log.unlink()
    report = troubleshoot_logs([folder])
    assert [(f.cause, f.subject) for f in report.findings] == [
        ("esmtp-inspection", "EX-NY1 -> EX-FL1")
    ]
    assert any(
        e.location and ".LOG:" in e.location and str(folder) in e.location
        for e in report.findings[0].evidence
    )


def test_a_member_outside_the_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../../escape.LOG", "#Software: Microsoft Exchange Server\n")
    assert troubleshoot_main(["--logs", str(archive)]) == 2
    assert "outside the folder" in capsys.readouterr().err
    assert not (tmp_path.parent / "escape.LOG").exists()


def test_exit_status_says_whether_there_is_something_to_act_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert troubleshoot_main(["--logs", str(masked(tmp_path)), "--json"]) == 1
    capsys.readouterr()
    healthy = write(tmp_path / "healthy")
    assert troubleshoot_main(["--logs", str(healthy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []
    assert troubleshoot_main(["--logs", str(tmp_path / "nothing-here")]) == 2


def test_a_long_scan_says_how_far_it_is_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    from io import StringIO

    from rich.console import Console

    from sitemail.diagnose import cli

    now = [100.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: now[0])
    out = StringIO()
    shown = cli.ScanProgress(Console(file=out, force_terminal=False))
    shown.start()
    shown(50_000_000, 1_000_000_000)  # at once: nothing yet
    assert out.getvalue() == ""
    now[0] += 2.5
    shown(400_000_000, 1_000_000_000)
    assert "scanning logs: 400 of 1,000 MB" in out.getvalue()
    shown.close()


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b"")],
    ids=["utf-16-le-bom", "utf-16-be-bom", "utf-16-le"],
)
def test_logs_saved_as_utf16_by_windows_tools_read_as_exchange_wrote_them(
    tmp_path: Path, encoding: str, bom: bytes
) -> None:
    # PowerShell 5's Out-File and ">" write UTF-16LE; a log copied that way still counts.
    folder = masked(tmp_path)
    plain = troubleshoot_logs([folder])
    copy = shutil.copytree(folder, tmp_path / "utf16")
    for log in copy.rglob("*.LOG"):
        log.write_bytes(bom + log.read_bytes().decode("utf-8-sig").encode(encoding))
    for given in (copy, _zip(copy, tmp_path / "utf16.zip")):
        report = troubleshoot_logs([given])
        assert [(f.cause, f.subject) for f in report.findings] == [
            (f.cause, f.subject) for f in plain.findings
        ]
        assert report.stats["rows"] == plain.stats["rows"] > 0
