"""The log corpus generator's own checks: deterministic, well-formed logs as Exchange
writes them, every cause family in every variant, truth kept apart from the logs."""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest
from tests.corpus import CAUSES, VARIANTS, Truth, all_variants, generate_corpus, generate_org
from tests.corpus.accuracy import evaluate, score_org, truth_report
from tests.corpus.middlebox import Middlebox, mask_banner

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
SID = re.compile(r"[0-9A-F]{16}")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
PROTOCOL_FIELDS = (
    "date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context"
)


def _files(truth: Truth) -> dict[str, bytes]:
    """Every log file of an org as (relative name without .gz, bytes), whatever its packing."""
    path = Path(truth.path)
    out: dict[str, bytes] = {}
    if truth.zipped == "zip":
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                out[name] = zf.read(name)
        return out
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = str(file.relative_to(path))
        data = file.read_bytes()
        if rel.endswith(".gz"):
            rel, data = rel[:-3], gzip.decompress(data)
        out[rel] = data
    return out


def _check_protocol_file(name: str, data: bytes, sessions: dict) -> int:
    text = data.decode("utf-8")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", ""), name
    lines = text.split("\r\n")
    assert lines[-1] == ""
    head = lines[:5]
    assert head[0] == "#Software: Microsoft Exchange Server"
    assert re.fullmatch(r"#Version: (8|14|15)\.\d+\.\d+\.\d+", head[1]), head[1]
    assert re.fullmatch(r"#Log-[tT]ype: SMTP (Receive|Send) Protocol Log", head[2]), head[2]
    assert STAMP.fullmatch(head[3].removeprefix("#Date: ")), head[3]
    assert head[4] == "#Fields: " + PROTOCOL_FIELDS
    rows = list(csv.reader(io.StringIO("\n".join(lines[5:-1]))))
    last = ""
    for row in rows:
        assert len(row) == 9, (name, row)
        stamp, _, sid, seq = row[:4]
        assert STAMP.fullmatch(stamp), (name, row)
        assert stamp >= last, (name, row)
        last = stamp
        assert SID.fullmatch(sid), (name, row)
        assert row[6] in "+-<>*" and len(row[6]) == 1, (name, row)
        key = (str(Path(name).parent), sid)
        expected = sessions.get(key, -1) + 1
        assert int(seq) == expected, (name, row, expected)
        sessions[key] = int(seq)
    return len(rows)


def _sort_key(name: str) -> tuple[str, str, int]:
    m = re.search(r"(RECV|SEND|MSGTRK)(\d+)-(\d+)\.LOG$", name)
    assert m, name
    return (str(Path(name).parent) + m.group(1), m.group(2), int(m.group(3)))


def _parse_org(truth: Truth) -> tuple[int, dict]:
    files = _files(truth)
    assert files
    sessions: dict = {}
    rows = 0
    for name in sorted(files, key=_sort_key):
        data = files[name]
        if "MSGTRK" in name:
            text = data.decode("utf-8").split("\r\n")
            fields = text[4].removeprefix("#Fields: ").split(",")
            assert text[2].endswith("Message Tracking Log")
            for row in csv.reader(io.StringIO("\n".join(text[5:-1]))):
                assert len(row) == len(fields), (name, row)
            continue
        rows += _check_protocol_file(name, data, sessions)
    return rows, files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Truth]:
    root = tmp_path_factory.mktemp("corpus")
    return generate_corpus(root, len(all_variants()) + 3, seed=5, healthy=3, size="tiny")


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    for zipped in (None, "zip", "gz"):
        a = generate_org(
            tmp_path / f"a{zipped}", 42, "esmtp-inspection", 0, size="tiny", zipped=zipped
        )
        b = generate_org(
            tmp_path / f"b{zipped}", 42, "esmtp-inspection", 0, size="tiny", zipped=zipped
        )
        assert a.to_json() | {"path": ""} == b.to_json() | {"path": ""}
        if zipped == "zip":
            assert Path(a.path).read_bytes() == Path(b.path).read_bytes()
        assert _files(a) == _files(b)
    c = generate_org(tmp_path / "c", 43, "esmtp-inspection", 0, size="tiny")
    assert c.name != a.name or _files(c) != _files(a)


def test_every_family_and_variant_is_generated(corpus: list[Truth]) -> None:
    made = {(t.cause, t.variant) for t in corpus if not t.healthy}
    assert made == set(all_variants())
    assert {c for c, _ in made} == set(CAUSES)
    assert sum(t.healthy for t in corpus) >= 3
    for t in corpus:
        assert t.healthy == (t.cause is None)
        if not t.healthy:
            assert t.subjects and t.visible_in in ("send", "recv", "both")
            assert t.variant in VARIANTS[t.cause]  # type: ignore[index]


def test_logs_parse_as_exchange_writes_them(corpus: list[Truth]) -> None:
    total = 0
    for truth in corpus:
        rows, _ = _parse_org(truth)
        total += rows
    assert total > 10_000


def test_sessions_interleave_and_cross_rotated_files(corpus: list[Truth]) -> None:
    files = {f"{t.name}/{n}": d for t in corpus for n, d in _files(t).items()}
    interleaved = False
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, data in files.items():
        if "MSGTRK" in name:
            continue
        sids = [ln.split(",")[2] for ln in data.decode().split("\r\n")[5:-1]]
        for sid in set(sids):
            owners[(str(Path(name).parent), sid)].add(name)
        seen: set[str] = set()
        prev = ""
        for sid in sids:
            if sid != prev and sid in seen:
                interleaved = True
            seen.add(sid)
            prev = sid
    split = any(len(v) > 1 for v in owners.values())
    assert split and interleaved


def test_zipped_and_gzipped_organizations_open(tmp_path: Path) -> None:
    z = generate_org(tmp_path, 11, "certificate", 0, size="tiny", zipped="zip")
    assert Path(z.path).suffix == ".zip" and zipfile.is_zipfile(z.path)
    with zipfile.ZipFile(z.path) as zf:
        names = zf.namelist()
    assert names and all(n.startswith(z.name + "/") for n in names)
    assert all(n.endswith(".LOG") for n in names)
    g = generate_org(tmp_path, 12, "certificate", 1, size="tiny", zipped="gz")
    gz = list(Path(g.path).rglob("*.LOG.gz"))
    assert gz and not list(Path(g.path).rglob("*.LOG"))
    assert gzip.decompress(gz[0].read_bytes()).startswith(b"#Software: Microsoft Exchange")
    _parse_org(z)
    _parse_org(g)


def test_truth_files_are_outside_the_log_folders(corpus: list[Truth]) -> None:
    root = Path(corpus[0].path).parent
    for truth in corpus:
        path = Path(truth.path)
        assert path.parent == root
        truth_file = root / f"{truth.name}.truth.json"
        assert truth_file.exists()
        assert path not in truth_file.parents
        assert Truth.load(truth_file) == truth
        names = _files(truth)
        assert not [n for n in names if "truth" in n.lower()]


def test_the_fault_shows_in_the_logs_it_claims(corpus: list[Truth]) -> None:
    send_sign = {
        "esmtp-inspection": "451 5.7.3 Cannot achieve",
        "connector-auth-mechanism": "451 5.7.3 Cannot achieve",
        "connector-permission-groups": " 5.7.1 ",
        "connector-captured": "451 5.7.3 Cannot achieve",
        "connector-remote-ip-ranges": "attempting to connect",
        "port-25-unreachable": "attempting to connect",
        "open-relay": "250 2.1.5 Ok",
        "certificate": "",
    }
    for truth in corpus:
        if truth.healthy:
            continue
        files = _files(truth)
        sends = "".join(d.decode() for n, d in files.items() if "SEND" in Path(n).name)
        recvs = "".join(d.decode() for n, d in files.items() if "RECV" in Path(n).name)
        if truth.visible_in in ("send", "both"):
            assert send_sign[truth.cause] in sends, truth.name  # type: ignore[index]
        if truth.visible_in in ("recv", "both") and truth.cause in (
            "connector-auth-mechanism",
            "connector-captured",
            "open-relay",
            "connector-permission-groups",
        ):
            connector = truth.subjects[0].split("\\", 1)[1]
            assert connector in recvs, truth.name
        if truth.cause == "certificate" and truth.visible_in != "recv":
            assert re.search("UnknownCredentials|Cannot load|LogonDenied|454 4.7.0", sends)


def test_no_sitemail_import() -> None:
    for path in CORPUS.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+sitemail", text, re.M), path
        assert len(text.splitlines()) < 600, path


def test_asa_masks_as_the_spec_says() -> None:
    banner = (
        "220 mx20.example.org Microsoft ESMTP MAIL Service ready at Tue, 20 Oct 2020 10:02:03 +0000"
    )
    assert mask_banner(banner) == (
        "220 **20********************************************************20 ****2020 *0*02*0***0000"
    )
    lines = [
        "250-host Hello [10.0.0.1]",
        "250-SIZE",
        "250-STARTTLS",
        "250-X-ANONYMOUSTLS",
        "250-AUTH NTLM",
        "250-X-EXPS GSSAPI NTLM",
        "250 XSHADOW",
    ]
    assert Middlebox("asa").ehlo(lines) == [
        "250-host Hello [10.0.0.1]",
        "250-SIZE",
        "250-XXXXXXXA",
        "250-XXXXXXXXXXXXXA",
        "250-AUTH NTLM",
        "250-XXXXXA GSSAPI NTLM",
        "250 XXXXXXA",
    ]
    stripped = Middlebox("strip").ehlo(lines)
    assert stripped == ["250-host Hello [10.0.0.1]", "250-SIZE", "250-AUTH NTLM", "250 XSHADOW"]


def test_the_answer_key_scores_perfectly(corpus: list[Truth]) -> None:
    result = evaluate(corpus, lambda p: truth_report(next(t for t in corpus if Path(t.path) == p)))
    assert result["ranked_first"] == result["faulty"]
    assert result["false_alarms"] == result["wrong_subjects"] == 0
    healthy = next(t for t in corpus if t.healthy)
    alarm = score_org(healthy, {"findings": [{"cause": "x", "severity": "warning"}]})
    assert alarm["false_alarm"] and not alarm["ranked_first"]
    faulty = next(t for t in corpus if not t.healthy)
    wrong = score_org(
        faulty, {"findings": [{"cause": faulty.cause, "severity": "error", "subject": "nobody"}]}
    )
    assert wrong["ranked_first"] and wrong["wrong_subject"]


def test_the_benchmark_scores_the_corpus_beside_its_answer_key(tmp_path: Path) -> None:
    from bench import diagnosis_accuracy
    from bench.harness import load_benchmark

    bench = load_benchmark("diagnosis_accuracy")
    assert [p.name for p in bench.peers] == ["answer-key"]
    assert {"ranked_first", "false_alarms", "wrong_subjects", "orgs", "healthy"} <= set(
        bench.metrics
    )
    assert bench.parameters["orgs"] >= 60 and bench.parameters["healthy"] >= 10
    assert bench.__class__.__module__ == "bench.harness" and diagnosis_accuracy.__doc__
    with pytest.raises(ValueError):
        diagnosis_accuracy.corpus(dict(bench.parameters, orgs=10, cache_dir=str(tmp_path)))
