"""Story 1 and every variant the seed names, diagnosed in the lab and from the logs alone.

One lab for the module.  First the story as it starts (both ASAs inspect
ESMTP); the troubleshooter names the inspection and both firewalls, and its
own fix (the ASA lines, Retry-Queue) delivers the message.  Then each
variant breaks one thing with the cmdlet an administrator would type
(``Set-ReceiveConnector``, ``New-ReceiveConnector`` through ``sitemail
shell``) and waits until the hubs have applied it, a message from NY to FL
shows the variant's own symptom, ``troubleshoot`` on the live lab and
``troubleshoot --logs`` on the log rows written meanwhile both name its own
cause and no other connector or path cause, and the change is undone (by the
cmdlet again) before the next one.

Port 25 blocked: an access list on ASA-FL, typed with ``sitemail asa`` as an
administrator would, refuses SMTP from NY to EX-FL1; the troubleshooter
names the line and its own fix (the ASA lines, then Retry-Queue) delivers
the message.  One variant has no cmdlet and changes the directory itself:
no route, the site link goes (AD Sites and Services, not the Exchange
shell, removes one).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import (
    EXAMPLES,
    RunningLab,
    delivered_once,
    in_mailbox,
    lab_directory_args,
    lab_slot,
    sitemail,
    submit_as,
    wait_for,
)

from sitemail.org.model import Model, ReceiveConnector, Server, SiteLink
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


def shell(lab: Path, line: str) -> list[dict[str, Any]]:
    """A line of the Exchange Management Shell on the lab (``sitemail shell``)."""
    return RunningLab(lab).shell(line)


def configure(lab: Path, line: str) -> None:
    """A Set-/New-/Remove- line, then until every hub has applied it."""
    shell(lab, line)
    RunningLab(lab).changes_live()


def send(message_id: str) -> None:
    submit_as("alice", ["adam@contoso.com"], message_id)


def fl_queue(lab: Path) -> dict[str, Any] | None:
    """EX-NY1's queue for site FL, as Get-Queue shows it."""
    for q in shell(lab, "Get-Queue -Server EX-NY1"):
        if q["DeliveryType"] == "SmtpRelayToRemoteAdSite" and q["NextHopDomain"] == "FL":
            return q
    return None


def default_fl(lab: Path) -> Model:
    """FL's Default connector as the directory holds it (a read, to check an undo)."""
    d = RunningLab(lab).open_directory()
    try:
        return d.require(ReceiveConnector, DEFAULT_FL)
    finally:
        d.close()


def edit_directory(
    lab: Path, cls: type[Model], ident: str, edit: Callable[[Any], Model | None]
) -> Callable[[], None]:
    """For the variants no cmdlet makes: edit one object in the directory itself, then
    until the hubs have applied it; returns what puts the original back."""
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
    RunningLab(lab).changes_live()

    def undo() -> None:
        d = RunningLab(lab).open_directory()
        try:
            d.put(original)
        finally:
            d.close()
        RunningLab(lab).changes_live()

    return undo


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
    """After undoing a change: retry what waits and see the message delivered, once."""
    for q in shell(lab, "Get-Queue -Server EX-NY1"):
        if q["Status"] == "Retry":
            shell(lab, f"Retry-Queue -Identity {q['Identity']}")
        if q["DeliveryType"] == "Unreachable" and q["MessageCount"]:
            shell(lab, f"Retry-Queue -Identity {q['Identity']} -Resubmit $true")
    running = RunningLab(lab)
    delivered_once(
        running,
        lambda: in_mailbox(running, "EX-FL1", "FL-DB1", message_id),
        message_id,
        f"adam has {message_id}",
        timeout=40,
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    lab_dir = tmp_path_factory.mktemp("story1variants")
    with lab_slot():
        seed = str(EXAMPLES / "seed.yaml")
        sitemail("lab", "up", seed, *lab_directory_args(), "--dir", str(lab_dir))
        try:
            shell(
                lab_dir, "Set-TransportServer EX-NY1 -IntraOrgConnectorProtocolLoggingLevel Verbose"
            )
            configure(lab_dir, f'Set-ReceiveConnector "{DEFAULT_FL}" -ProtocolLoggingLevel Verbose')
            yield lab_dir
        finally:
            sitemail("lab", "down", "--dir", str(lab_dir), check=False)


# ------------------------------------------------------------------ the story itself


def test_inspection_is_found_named_on_both_firewalls_and_its_fix_works(
    lab: Path, tmp_path: Path
) -> None:
    before = log_sizes(lab)
    send("inspection@variants")
    queue = wait_for(
        lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and q, "the FL queue in Retry"
    )
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
    shell_fix = [line for f in live["fixes"] if f["kind"] == "shell" for line in f["lines"]]
    assert f"Retry-Queue -Identity {queue['Identity']}" in shell_fix
    kinds = {e["kind"] for e in live["evidence"]}
    assert {"probe", "firewall", "queue", "log"} <= kinds

    offline = troubleshoot("--logs", str(copy_new_rows(lab, before, tmp_path / "logs")))
    found = only_path_cause(offline, "esmtp-inspection")
    assert any("XXXXXXXA" in e["text"] and e["location"] for e in found["evidence"])

    # The fix, typed as the finding says: the ASA lines on each firewall, then Retry-Queue.
    for target, lines in asa_fixes.items():
        out = sitemail("asa", target, "-c", "\n".join(lines), "--dir", str(lab)).stdout
        assert "[OK]" in out
    shell(lab, f"Retry-Queue -Identity {queue['Identity']}")
    wait_for(
        lambda: in_mailbox(RunningLab(lab), "EX-FL1", "FL-DB1", "inspection@variants"),
        "adam has it",
    )
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


# What Exchange setup gives the Default connector (docs/topology.md): each variant's undo.
DEFAULT_AUTH = "Tls,Integrated,BasicAuth,BasicAuthRequireTLS,ExchangeServer"
DEFAULT_GROUPS = "ExchangeUsers,ExchangeServers,ExchangeLegacyServers"
DEFAULT_RANGES = "0.0.0.0-255.255.255.255"


def _connector(setting: str, broken: str, default: str) -> Callable[[Path], Callable[[], None]]:
    """A variant made by Set-ReceiveConnector on FL's Default connector, and its undo."""

    def apply(lab: Path) -> Callable[[], None]:
        configure(lab, f'Set-ReceiveConnector "{DEFAULT_FL}" -{setting} {broken}')
        return lambda: configure(lab, f'Set-ReceiveConnector "{DEFAULT_FL}" -{setting} {default}')

    return apply


def _no_site_link(lab: Path) -> Callable[[], None]:
    return edit_directory(lab, SiteLink, "NY-FL", lambda _link: None)


VARIANTS = [
    # (id, change, symptom in LastError or None for NDR/Unreachable, cause)
    ("ranges", _connector("RemoteIPRanges", "10.0.0.0/8", DEFAULT_RANGES),
     "421 4.4.2 Connection dropped", "connector-remote-ip-ranges"),
    ("auth-exchangeserver",
     _connector("AuthMechanism", "Tls,Integrated,BasicAuth,BasicAuthRequireTLS", DEFAULT_AUTH),
     "451 5.7.3 Cannot achieve Exchange Server authentication", "connector-auth-mechanism"),
    ("auth-none", _connector("AuthMechanism", "None", DEFAULT_AUTH),
     "451 5.7.3 Cannot achieve Exchange Server authentication", "connector-auth-mechanism"),
    ("permissions",
     _connector("PermissionGroups", "ExchangeUsers,ExchangeLegacyServers", DEFAULT_GROUPS),
     None, "connector-permission-groups"),
    ("site-link", _no_site_link, None, "no-route"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "apply", "last_error", "cause"), VARIANTS, ids=[v[0] for v in VARIANTS]
)
def test_variant_has_its_own_symptom_and_finding(
    clean_path: Path,
    tmp_path: Path,
    name: str,
    apply: Callable[[Path], Callable[[], None]],
    last_error: str | None,
    cause: str,
) -> None:
    lab = clean_path
    message_id = f"{name}@variants"
    before = log_sizes(lab)
    connector_before = default_fl(lab)
    undo = apply(lab)
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
        undo()
    # The undo put the connector back as it was, for the next variant.
    assert default_fl(lab) == connector_before
    if cause != "connector-permission-groups":  # that message was returned with an NDR
        recover(lab, message_id)


def _wait_for_symptom(lab: Path, message_id: str, last_error: str | None, cause: str) -> None:
    if last_error is not None:
        try:
            wait_for(
                lambda: (
                    (q := fl_queue(lab)) and q["Status"] == "Retry" and last_error in q["LastError"]
                ),
                f"the queue for FL shows {last_error!r}",
                timeout=40,
            )
        except AssertionError as exc:
            # What the queue and the sender saw instead, for whoever reads the failure.
            logs = lab / "servers" / "EX-NY1" / "TransportRoles" / "Logs" / "ProtocolLogs"
            tail = "".join(p.read_text() for p in sorted((logs / "SmtpSend").glob("*.LOG")))
            raise AssertionError(
                f"{exc}; the queue for FL: {fl_queue(lab)}; EX-NY1's send log ends: {tail[-1500:]}"
            ) from None
    elif cause == "no-route":

        def unreachable() -> bool:
            return any(
                m["Queue"].endswith("\\Unreachable") and m["Subject"] == message_id
                for m in shell(lab, "Get-Message -Server EX-NY1")
            )

        wait_for(unreachable, "the message in EX-NY1's Unreachable queue", timeout=40)
    else:
        # Permissions: refused at MAIL FROM with 550 5.7.1, the sender gets an NDR.
        def failed() -> bool:
            rows = shell(lab, f"Get-MessageTrackingLog -MessageId {message_id} -Server EX-NY1")
            return any(r["EventId"] == "FAIL" for r in rows)

        wait_for(failed, "a FAIL in EX-NY1's tracking log", timeout=40)


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
        try:
            wait_for(
                lambda: (
                    (q := fl_queue(lab))
                    and q["Status"] == "Retry"
                    and "421 4.4.2 Connection dropped" in q["LastError"]
                ),
                "the queue for FL in Retry with 421 4.4.2 Connection dropped",
                timeout=40,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the queue for FL: {fl_queue(lab)}") from None
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
    configure(
        lab,
        'New-ReceiveConnector "Relay EX-FL1" -Server EX-FL1 -Bindings 0.0.0.0:25 '
        "-RemoteIPRanges 127.1.0.0/16 -AuthMechanism Tls -PermissionGroups AnonymousUsers "
        "-ProtocolLoggingLevel Verbose",
    )
    try:
        send("captured@variants")
        wait_for(
            lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and "5.7.3" in q["LastError"],
            "the queue for FL in Retry with 5.7.3",
            timeout=40,
        )
        live = only_path_cause(troubleshoot("--dir", str(lab)), "connector-captured")
        assert live["subject"] == "EX-FL1\\Relay EX-FL1"
        lines = [line for f in live["fixes"] for line in f["lines"]]
        assert any(line.startswith('Set-ReceiveConnector "EX-FL1\\Relay EX-FL1"') for line in lines)
        offline = troubleshoot("--logs", str(copy_new_rows(lab, before, tmp_path / "logs")))
        assert only_path_cause(offline, "connector-captured")["subject"] == "EX-FL1\\Relay EX-FL1"
    finally:
        configure(lab, 'Remove-ReceiveConnector "EX-FL1\\Relay EX-FL1" -Confirm:$false')
    recover(lab, "captured@variants")
    shutil.rmtree(tmp_path / "logs", ignore_errors=True)
