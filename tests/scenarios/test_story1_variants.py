"""Story 1 and every variant the seed names, diagnosed in the lab and from the logs alone.

One lab for the module.  First the story as it starts (both ASAs inspect
ESMTP); the troubleshooter names the inspection and both firewalls, and its
own fix (the ASA lines, Retry-Queue) delivers the message.  Then each
variant breaks one thing the way the cmdlets would (the directory object
changes, the hubs pick it up), a message from NY to FL shows the variant's
own symptom, ``troubleshoot`` on the live lab and ``troubleshoot --logs`` on
the log rows written meanwhile both name its own cause and no other
connector or path cause, and the change is undone before the next one.

Port 25 blocked: an access list on ASA-FL, typed with ``sitemail asa`` as an
administrator would, refuses SMTP from NY to EX-FL1; the troubleshooter
names the line and its own fix (the ASA lines, then Retry-Queue) delivers
the message.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import (
    EXAMPLES,
    RunningLab,
    in_mailbox,
    lab_directory_args,
    lab_slot,
    sitemail,
    submit_as,
)

from sitemail.org.model import (
    AuthMechanism,
    LoggingLevel,
    Model,
    PermissionGroup,
    ReceiveConnector,
    Server,
    SiteLink,
)
from sitemail.org.pki import admin_cert_files, client_ssl_context
from sitemail.server.console import ConsoleClient

pytestmark = pytest.mark.lab

NY1 = "127.1.0.11"
DEFAULT_FL = "EX-FL1\\Default EX-FL1"
PATH_CAUSES = {
    "esmtp-inspection",
    "connector-remote-ip-ranges",
    "connector-captured",
    "connector-auth-mechanism",
    "connector-permission-groups",
    "port-25-unreachable",
    "no-route",
}


# ------------------------------------------------------------------ lab helpers


def admin(lab: Path, path: str, body: dict[str, Any] | None = None) -> Any:
    ctx = client_ssl_context(lab / "pki" / "ca.pem", files=admin_cert_files(lab / "pki"))
    ctx.check_hostname = False
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"https://{NY1}:8443{path}",
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.loads(resp.read())


def wait_for(predicate: Callable[[], Any], timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


def fl_queue(lab: Path) -> dict[str, Any] | None:
    for q in admin(lab, "/queues"):
        if q["DeliveryType"] == "SmtpRelayToRemoteAdSite" and q["NextHopDomain"] == "FL":
            return q  # type: ignore[no-any-return]
    return None


def change(lab: Path, edit: Callable[[Any], Model | None], cls: type[Model], ident: str) -> Model:
    """Edit one directory object as a Set- cmdlet would; return the original to restore."""
    d = RunningLab(lab).open_directory()
    try:
        obj = d.require(cls, ident)
        original = obj.model_copy(deep=True)
        changed = edit(obj)
        if changed is None:
            d.delete(cls, ident)
        else:
            d.put(changed)
    finally:
        d.close()
    time.sleep(1.5)  # the servers' directory watcher polls every 0.5 s
    return original


def put(lab: Path, *objs: Model, delete: tuple[type[Model], str] | None = None) -> None:
    d = RunningLab(lab).open_directory()
    try:
        for obj in objs:
            d.put(obj)
        if delete is not None:
            d.delete(*delete)
    finally:
        d.close()
    time.sleep(1.5)


def log_sizes(lab: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in lab.glob("servers/*/TransportRoles/Logs/**/*.LOG")}


def copy_new_rows(lab: Path, before: dict[Path, int], dest: Path) -> Path:
    """The log rows written since ``before``, in files laid out as the servers lay them,
    each with its header: what an administrator copies off the servers."""
    for path in lab.glob("servers/*/TransportRoles/Logs/**/*.LOG"):
        data = path.read_bytes()
        start = before.get(path, 0)
        if len(data) <= start:
            continue
        header = b"".join(line for line in data.splitlines(keepends=True) if line[:1] == b"#")
        target = dest / path.relative_to(lab)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(header + data[start:] if start else data)
    return dest


def troubleshoot(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "sitemail.diagnose.cli", "troubleshoot", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def causes(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["cause"]: f for f in report["findings"] if f["severity"] == "error"}


def only_path_cause(report: dict[str, Any], expected: str) -> dict[str, Any]:
    found = causes(report)
    assert expected in found, json.dumps(report, indent=1)[:4000]
    others = (set(found) & PATH_CAUSES) - {expected}
    assert not others, f"{expected} expected alone, also got {others}"
    return found[expected]


def recover(lab: Path, message_id: str) -> None:
    """After undoing a change: retry what waits and see the message delivered."""
    for q in admin(lab, "/queues"):
        if q["Status"] == "Retry":
            admin(lab, "/queues/retry", {"identity": q["Identity"]})
        if q["DeliveryType"] == "Unreachable" and q["MessageCount"]:
            admin(lab, "/queues/retry", {"identity": q["Identity"], "resubmit": True})
    assert wait_for(lambda: in_mailbox(RunningLab(lab), "EX-FL1", "FL-DB1", message_id)) == 1


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    lab_dir = tmp_path_factory.mktemp("story1variants")
    with lab_slot():
        seed = str(EXAMPLES / "seed.yaml")
        sitemail("lab", "up", seed, *lab_directory_args(), "--dir", str(lab_dir))
        try:
            d = RunningLab(lab_dir).open_directory()
            try:
                ny = d.require(Server, "EX-NY1")
                ny.transport.intra_org_connector_protocol_logging_level = LoggingLevel.VERBOSE
                d.put(ny)
                fl = d.require(ReceiveConnector, DEFAULT_FL)
                fl.protocol_logging_level = LoggingLevel.VERBOSE
                d.put(fl)
            finally:
                d.close()
            time.sleep(1.5)
            yield lab_dir
        finally:
            sitemail("lab", "down", "--dir", str(lab_dir), check=False)


# ------------------------------------------------------------------ the story itself


def test_inspection_is_found_named_on_both_firewalls_and_its_fix_works(
    lab: Path, tmp_path: Path
) -> None:
    before = log_sizes(lab)
    submit_as("alice", ["adam@contoso.com"], "inspection@variants")
    queue = wait_for(lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and q)
    assert "451 5.7.3 Cannot achieve Exchange Server authentication" in queue["LastError"]

    live = only_path_cause(troubleshoot("--dir", str(lab)), "esmtp-inspection")
    assert live["subject"] == "NY -> FL"
    asa_fixes = {f["target"]: f["lines"] for f in live["fixes"] if f["kind"] == "asa"}
    seed_lines = [
        "config t",
        "policy-map global_policy",
        "class inspection_default",
        "no inspect esmtp",
        "exit",
        "exit",
        "exit",
        "wr me",
    ]
    assert asa_fixes == {"ASA-NY": seed_lines, "ASA-FL": seed_lines}
    shell = [line for f in live["fixes"] if f["kind"] == "shell" for line in f["lines"]]
    assert f"Retry-Queue -Identity {queue['Identity']}" in shell
    kinds = {e["kind"] for e in live["evidence"]}
    assert {"probe", "firewall", "queue", "log"} <= kinds

    offline = troubleshoot("--logs", str(copy_new_rows(lab, before, tmp_path / "logs")))
    found = only_path_cause(offline, "esmtp-inspection")
    assert any("XXXXXXXA" in e["text"] and e["location"] for e in found["evidence"])

    # The fix, typed as the finding says: the ASA lines on each firewall, then Retry-Queue.
    for target, lines in asa_fixes.items():
        out = sitemail("asa", target, "-c", "\n".join(lines), "--dir", str(lab)).stdout
        assert "[OK]" in out
    admin(lab, "/queues/retry", {"identity": queue["Identity"]})
    assert wait_for(lambda: in_mailbox(RunningLab(lab), "EX-FL1", "FL-DB1", "inspection@variants"))
    after = troubleshoot("--dir", str(lab))
    assert not set(causes(after)) & PATH_CAUSES


# ------------------------------------------------------------------ the variants

SEED_LINES = "\n".join(
    [
        "config t",
        "policy-map global_policy",
        "class inspection_default",
        "no inspect esmtp",
        "exit",
        "exit",
        "exit",
        "wr me",
    ]
)


@pytest.fixture
def clean_path(lab: Path) -> Path:
    """The variants are about other causes: ESMTP inspection is off on both ASAs."""
    for fw in ("ASA-NY", "ASA-FL"):
        with ConsoleClient(lab / "firewalls" / fw / "console.sock") as console:
            if any(console.call("health")["esmtp_inspection"].values()):
                sitemail("asa", fw, "-c", SEED_LINES, "--dir", str(lab))
    return lab


def _ranges(c: ReceiveConnector) -> ReceiveConnector:
    c.remote_ip_ranges = ["10.0.0.0/8"]
    return c


def _no_exchange_server(c: ReceiveConnector) -> ReceiveConnector:
    c.auth_mechanism = [m for m in c.auth_mechanism if m is not AuthMechanism.EXCHANGE_SERVER]
    return c


def _no_authentication(c: ReceiveConnector) -> ReceiveConnector:
    c.auth_mechanism = [AuthMechanism.NONE]
    return c


def _no_exchange_servers(c: ReceiveConnector) -> ReceiveConnector:
    c.permission_groups = [
        g for g in c.permission_groups if g is not PermissionGroup.EXCHANGE_SERVERS
    ]
    return c


VARIANTS = [
    # (id, class, identity, edit, symptom in LastError or None for NDR/Unreachable, cause)
    ("ranges", ReceiveConnector, DEFAULT_FL, _ranges, "421 4.4.2 Connection dropped",
     "connector-remote-ip-ranges"),
    ("auth-exchangeserver", ReceiveConnector, DEFAULT_FL, _no_exchange_server,
     "451 5.7.3 Cannot achieve Exchange Server authentication", "connector-auth-mechanism"),
    ("auth-none", ReceiveConnector, DEFAULT_FL, _no_authentication,
     "451 5.7.3 Cannot achieve Exchange Server authentication", "connector-auth-mechanism"),
    ("permissions", ReceiveConnector, DEFAULT_FL, _no_exchange_servers, None,
     "connector-permission-groups"),
    ("site-link", SiteLink, "NY-FL", lambda _link: None, None, "no-route"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cls", "ident", "edit", "last_error", "cause"),
    [v[1:] for v in VARIANTS],
    ids=[v[0] for v in VARIANTS],
)
def test_variant_has_its_own_symptom_and_finding(
    clean_path: Path,
    tmp_path: Path,
    cls: type[Model],
    ident: str,
    edit: Callable[[Any], Model | None],
    last_error: str | None,
    cause: str,
) -> None:
    lab = clean_path
    message_id = f"{cause}-{''.join(ch if ch.isalnum() else '-' for ch in ident)}@variants"
    before = log_sizes(lab)
    original = change(lab, edit, cls, ident)
    try:
        submit_as("alice", ["adam@contoso.com"], message_id)
        _wait_for_symptom(lab, message_id, last_error, cause)
        live = only_path_cause(troubleshoot("--dir", str(lab)), cause)
        assert live["fixes"], live
        offline = troubleshoot("--logs", str(copy_new_rows(lab, before, tmp_path / "logs")))
        if cause == "no-route":
            # Nothing is sent, so the protocol logs say nothing: only the tracking log's
            # received-and-never-sent message points at routing (low confidence).
            found = causes(offline) | {
                f["cause"]: f for f in offline["findings"] if f["cause"] == "no-route"
            }
            assert "no-route" in found and not set(causes(offline)) & PATH_CAUSES
        else:
            only_path_cause(offline, cause)
    finally:
        put(lab, original)
    if cause != "connector-permission-groups":  # that message was returned with an NDR
        recover(lab, message_id)


def _wait_for_symptom(lab: Path, message_id: str, last_error: str | None, cause: str) -> None:
    if last_error is not None:
        queue = wait_for(
            lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and last_error in q["LastError"]
        )
        assert queue, f"queue for FL never showed {last_error!r}: {fl_queue(lab)}"
    elif cause == "no-route":

        def unreachable() -> bool:
            return any(
                m["Queue"].endswith("\\Unreachable") and m["Subject"] == message_id
                for m in admin(lab, "/messages")
            )

        assert wait_for(unreachable)
    else:
        # Permissions: refused at MAIL FROM with 550 5.7.1, the sender gets an NDR.
        def failed() -> bool:
            rows = admin(lab, "/tracking", {"message_id": f"<{message_id}>"})
            return any(r["EventId"] == "FAIL" for r in rows)

        assert wait_for(failed)


def test_port_25_blocked_by_an_access_list_on_asa_fl_is_found_and_fixed(
    clean_path: Path, tmp_path: Path
) -> None:
    lab = clean_path
    d = RunningLab(lab).open_directory()
    try:
        fl1 = d.require(Server, "EX-FL1").addresses[0]
    finally:
        d.close()
    deny = f"access-list outside_access_in extended deny tcp any host {fl1} eq smtp"
    block = [
        "config t",
        deny,
        "access-list outside_access_in extended permit ip any any",
        "access-group outside_access_in in interface outside",
        "exit",
        "wr me",
    ]
    before = log_sizes(lab)
    sitemail("asa", "ASA-FL", "-c", "\n".join(block), "--dir", str(lab))
    try:
        submit_as("alice", ["adam@contoso.com"], "acl@variants")
        # The firewall resets the hub's connection before the banner.
        queue = wait_for(
            lambda: (
                (q := fl_queue(lab))
                and q["Status"] == "Retry"
                and "421 4.4.2 Connection dropped" in q["LastError"]
                and q
            )
        )
        assert queue, fl_queue(lab)
        live = only_path_cause(troubleshoot("--dir", str(lab)), "port-25-unreachable")
        assert live["subject"] == "NY -> EX-FL1"
        asa_fixes = {f["target"]: f["lines"] for f in live["fixes"] if f["kind"] == "asa"}
        assert asa_fixes == {"ASA-FL": ["config t", f"no {deny}", "exit", "wr me"]}
        assert any(
            e["kind"] == "firewall"
            and f"access-list outside_access_in line 1 {deny.split(' ', 2)[2]}" in e["text"]
            for e in live["evidence"]
        ), live["evidence"]
        hits = sitemail("asa", "ASA-FL", "-c", "show access-list", "--dir", str(lab)).stdout
        assert re.search(r"line 1 extended deny tcp any host \S+ eq smtp \(hitcnt=[1-9]", hits)
        syslog = (lab / "firewalls" / "ASA-FL" / "syslog.log").read_text()
        assert f'dst inside:{fl1}/25 by access-group "outside_access_in"' in syslog

        # From the hubs' logs alone a reset before the banner reads like a receive
        # connector's refusal; the finding names the device on the path as the alternative.
        offline = troubleshoot("--logs", str(copy_new_rows(lab, before, tmp_path / "logs")))
        dropped = causes(offline)["connector-remote-ip-ranges"]
        assert "a device on the path resets them" in dropped["summary"]

        # The fix, typed as the finding says; then Retry-Queue delivers.
        out = sitemail("asa", "ASA-FL", "-c", "\n".join(asa_fixes["ASA-FL"]), "--dir", str(lab))
        assert "[OK]" in out.stdout
        recover(lab, "acl@variants")
        assert not set(causes(troubleshoot("--dir", str(lab)))) & PATH_CAUSES
    finally:
        undo = ["config t", "no access-group outside_access_in in interface outside"]
        undo += ["no access-list outside_access_in", "exit", "wr me"]
        sitemail("asa", "ASA-FL", "-c", "\n".join(undo), "--dir", str(lab), check=False)


def test_narrower_connector_capturing_the_hubs_is_found(clean_path: Path, tmp_path: Path) -> None:
    lab = clean_path
    before = log_sizes(lab)
    relay = ReceiveConnector(
        server="EX-FL1",
        name="Relay EX-FL1",
        remote_ip_ranges=["127.1.0.0/16"],
        auth_mechanism=[AuthMechanism.TLS],
        permission_groups=[PermissionGroup.ANONYMOUS_USERS],
        protocol_logging_level=LoggingLevel.VERBOSE,
    )
    put(lab, relay)
    try:
        submit_as("alice", ["adam@contoso.com"], "captured@variants")
        assert wait_for(
            lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and "5.7.3" in q["LastError"]
        )
        live = only_path_cause(troubleshoot("--dir", str(lab)), "connector-captured")
        assert live["subject"] == "EX-FL1\\Relay EX-FL1"
        lines = [line for f in live["fixes"] for line in f["lines"]]
        assert any(line.startswith('Set-ReceiveConnector "EX-FL1\\Relay EX-FL1"') for line in lines)
        offline = troubleshoot("--logs", str(copy_new_rows(lab, before, tmp_path / "logs")))
        assert only_path_cause(offline, "connector-captured")["subject"] == "EX-FL1\\Relay EX-FL1"
    finally:
        put(lab, delete=(ReceiveConnector, "EX-FL1\\Relay EX-FL1"))
    recover(lab, "captured@variants")
    shutil.rmtree(tmp_path / "logs", ignore_errors=True)
