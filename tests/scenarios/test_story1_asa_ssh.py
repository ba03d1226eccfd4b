"""Story 1's firewall faults, reproduced on the seed lab and found on its own ASAs over SSH.

The network administrator's side of the story (SCENARIOS.md, "around both
stories"): on the lab as ``sitemail lab up`` starts it, the administrator
signs in to ASA-FL with OpenSSH's ``ssh admin@127.2.0.1`` and the lab's
generated password (docs/lab.md), ``enable``s with the same password, and
finds each firewall fault of story 1 with the ASA's own tools:

* Sign-in: the account is saved hashed in each startup-config; a wrong
  password, and a host of the other site, are refused.
* ESMTP inspection: a capture on each interface shows the banner and the EHLO
  reply as EX-FL1 sent them on the inside and masked on the outside;
  packet-tracer shows the flow allowed through an ``inspect esmtp`` phase;
  ``show service-policy inspect esmtp`` counts the masked banner.  The seed's
  lines typed over SSH on both ASAs fix it: the message waiting in Retry is
  delivered once.
* Port 25 closed by an access list on ASA-FL: the deny's hit count goes up
  from 0, packet-tracer drops the flow in its access-list phase, and the
  capture sees the SYN and the reset on the outside and nothing on the
  inside.  Removing the line over SSH delivers the message once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningLab, delivered_once, in_mailbox, submit_as, wait_for
from tests.integration.asa_ssh import answers, frames, ssh
from tests.integration.test_story1_mail_flow import FL1, NY1, SEED_LINES, fl_queue

from sitemail.lab.asa_admin import PASSWORD_FILE

pytestmark = pytest.mark.lab

ASA = ("ASA-NY", "ASA-FL")
FLOW = f"tcp host {NY1} host {FL1} eq smtp"
TRACER = f"packet-tracer input outside tcp {NY1} 1025 {FL1} 25"
NO_INSPECT = SEED_LINES.split("\n")  # the seed's lines
DENY = f"access-list outside_access_in extended deny tcp any host {FL1} eq smtp"


_ENDPOINTS: dict[tuple[Path, str], tuple[str, int]] = {}  # a lab's addresses do not change


def ssh_endpoint(lab: RunningLab, name: str) -> tuple[str, int]:
    """Where ``sitemail lab status`` says the firewall takes SSH (its address, 22 + offset)."""
    if (lab.dir, name) not in _ENDPOINTS:
        for f in lab.status()["firewalls"]:
            address, port = f["endpoints"]["ssh"].rsplit(":", 1)
            _ENDPOINTS[lab.dir, f["name"]] = (address, int(port))
    return _ENDPOINTS[lab.dir, name]


def asa(lab: RunningLab, name: str, *lines: str) -> list[str]:
    """``ssh admin@<ASA>`` as docs/lab.md says, ``enable``, the lines: each one's answer."""
    password_file = lab.dir / PASSWORD_FILE
    password = password_file.read_text().strip()
    typed = ["enable", password, *lines, "exit"]  # the enable password is the same
    session = ssh(*ssh_endpoint(lab, name), *typed, password_file=password_file)
    assert session.returncode == 0, f"{session.stderr}\n{session.stdout}"
    out = answers(session.stdout, name)
    assert len(out) == len(lines) + 1, session.stdout  # and the last: "\nLogoff\n"
    return out[:-1]


def captures(name: str) -> list[str]:
    """Captures of EX-NY1's SMTP to EX-FL1 on ASA-FL: NAME + O outside, NAME + I inside."""
    return [
        f"capture {name}O interface outside match {FLOW}",
        f"capture {name}I interface inside match {FLOW}",
    ]


def in_retry_with(lab: RunningLab, error: str) -> dict[str, Any]:
    queue = wait_for(
        lambda: (q := fl_queue(lab)) and q["Status"] == "Retry" and error in q["LastError"] and q,
        f"the queue for FL in Retry with {error!r}",
        timeout=40,
    )
    return dict(queue)


def retry_and_deliver(lab: RunningLab, queue: dict[str, Any], message_id: str) -> None:
    lab.shell(f"Retry-Queue -Identity {queue['Identity']}")
    delivered_once(
        lab,
        lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", message_id),
        message_id,
        f"adam has {message_id}",
        timeout=40,
    )


def inspection_off(lab: RunningLab) -> None:
    """The seed's lines on each ASA that still inspects ESMTP."""
    for name in ASA:
        if "inspect esmtp" in asa(lab, name, "show running-config policy-map")[0]:
            assert "[OK]" in asa(lab, name, *NO_INSPECT)[-1]


def test_the_lab_admin_signs_in_over_ssh_and_only_so(seed_lab: RunningLab) -> None:
    lab = seed_lab
    password_file = lab.dir / PASSWORD_FILE
    assert password_file.stat().st_mode & 0o777 == 0o600
    password = password_file.read_text().strip()
    # The account is in the saved configuration, hashed; the password is nowhere there.
    for name in ASA:
        saved = (lab.dir / "firewalls" / name / "startup-config").read_text()
        assert re.search(r"\nusername admin password \$sha512\$\S+ pbkdf2 privilege 15\n", saved)
        assert password not in saved
    asa_fl = ssh_endpoint(lab, "ASA-FL")
    assert asa_fl[0] == "127.2.0.1"  # its own address, as docs/lab.md says
    wrong = ssh(*asa_fl, "exit", password="not-the-password")
    assert wrong.returncode != 0 and "Logoff" not in wrong.stdout
    # From a host of the other site: not an address an ssh line lets in on ASA-FL.
    assert ssh(*asa_fl, "exit", source=NY1, password_file=password_file).returncode
    assert ssh(*asa_fl, "exit", source=FL1, password_file=password_file).returncode == 0
    syslog = (lab.dir / "firewalls" / "ASA-FL" / "syslog.log").read_text()
    assert f"%ASA-3-710003: TCP access denied by ACL from {NY1}/" in syslog
    assert "%ASA-6-605004: Login denied from 127.0.0.1/" in syslog


def test_inspection_is_seen_in_a_capture_and_packet_tracer_and_fixed_over_ssh(
    seed_lab: RunningLab,
) -> None:
    lab = seed_lab
    assert asa(lab, "ASA-FL", *captures("CAP")) == ["", ""]
    submit_as("alice", ["adam@contoso.com"], "inspected@asa-ssh")
    queue = in_retry_with(lab, "451 5.7.3 Cannot achieve Exchange Server authentication")

    tracer, outside, inside, policy = asa(
        lab,
        "ASA-FL",
        TRACER,
        "show capture CAPO dump",
        "show capture CAPI dump",
        "show service-policy inspect esmtp",
    )
    assert "Type: INSPECT\nSubtype: inspect-smtp\nResult: ALLOW\n" in tracer, tracer
    assert "  inspect esmtp _default_esmtp_map\n" in tracer
    assert "output-interface: inside\n" in tracer and "Action: allow\n" in tracer
    # EX-FL1's banner and EHLO reply as it sent them (inside), as EX-NY1 got them (outside).
    sent, seen = b"".join(frames(inside)), b"".join(frames(outside))
    assert b"220 ex-fl1.contoso.com Microsoft ESMTP MAIL Service ready at " in sent
    assert b"250-STARTTLS\r\n" in sent and b"250-X-EXPS GSSAPI NTLM\r\n" in sent
    assert re.search(rb"220 \*{20}[*20 ]+\r\n", seen), seen
    assert b"250-XXXXXXXA\r\n" in seen and b"250-XXXXXA GSSAPI NTLM\r\n" in seen
    assert b"Microsoft ESMTP" not in seen and b"STARTTLS" not in seen and b"X-EXPS" not in seen
    assert re.search(r"        mask-banner, count [1-9]", policy), policy

    # The seed's lines, over SSH on each ASA; then the waiting message goes, once.
    for name in ASA:
        assert "[OK]" in asa(lab, name, *NO_INSPECT)[-1]
    assert "inspect esmtp" not in asa(lab, "ASA-FL", "show running-config policy-map")[0]
    retry_and_deliver(lab, queue, "inspected@asa-ssh")


def test_the_port_25_access_list_is_seen_in_its_hit_counts_and_fixed_over_ssh(
    seed_lab: RunningLab,
) -> None:
    lab = seed_lab
    block = [
        "config t",
        DENY,
        "access-list outside_access_in extended permit ip any any",
        "access-group outside_access_in in interface outside",
        "end",
        "wr me",
    ]
    inspection_off(lab)  # the other fault, whether or not the test before fixed it
    assert "[OK]" in asa(lab, "ASA-FL", *block)[-1]
    hits, *capture = asa(lab, "ASA-FL", "show access-list outside_access_in", *captures("ACL"))
    assert re.search(r"line 1 extended deny tcp any host \S+ eq smtp \(hitcnt=0\)", hits), hits
    assert capture == ["", ""]
    submit_as("alice", ["adam@contoso.com"], "blocked@asa-ssh")
    # The firewall resets the hub's connection before the banner.
    queue = in_retry_with(lab, "421 4.4.2 Connection dropped")

    hits, tracer, outside, inside = asa(
        lab,
        "ASA-FL",
        "show access-list outside_access_in",
        TRACER,
        "show capture ACLO",
        "show capture ACLI",
    )
    assert re.search(r"line 1 extended deny tcp any host \S+ eq smtp \(hitcnt=[1-9]", hits), hits
    assert "Type: ACCESS-LIST\nSubtype: log\nResult: DROP\n" in tracer, tracer
    assert f"access-list outside_access_in extended deny tcp any host {FL1} eq smtp" in tracer
    assert "Action: drop\nDrop-reason: (acl-drop) Flow is denied by configured rule\n" in tracer
    # Only SYNs and resets outside; nothing got inside.
    assert re.search(rf"{re.escape(NY1)}\.\d+ > {re.escape(FL1)}\.25: S ", outside), outside
    assert re.search(rf"{re.escape(FL1)}\.25 > {re.escape(NY1)}\.\d+: R ", outside), outside
    assert " P " not in outside
    assert inside.startswith("0 packets captured\n"), inside

    fix = asa(lab, "ASA-FL", "config t", f"no {DENY}", "end", "wr me")
    assert "[OK]" in fix[-1]
    retry_and_deliver(lab, queue, "blocked@asa-ssh")
