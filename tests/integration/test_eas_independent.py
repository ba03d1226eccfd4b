"""ActiveSync on the seed lab with code sitemail did not write on the other end.

- **Horde's WBXML codec** (Debian's ``php-horde-activesync``), driven by
  ``tests/clients/eas_horde.php``, encodes every request and decodes every
  answer: Provision in its two phases, FolderSync, Sync (the first SyncKey,
  the messages, a read flag and a deletion from the device, new mail from
  the server) and SendMail.  The trees here use Horde's own tag names
  (``Synchronize``, ``Folder``, ``ServerEntryId``, ``POOMMAIL:Read``), so a
  token sitemail tables differently from MS-ASWBXML does not round-trip.
  adam's mailbox is in FL and his device talks to ``mail.contoso.com``
  (EX-NY1): every command is proxied across the sites; fiona (FL too) is
  the recipient whose own device checks what adam sent.
- **pyactivesync** speaks EAS 16.1 only, which Exchange 2010 does not: the
  OPTIONS answer lists no 16.x, and a 16.1 command is refused
  (:data:`sitemail.access.eas_serve.UNSUPPORTED_VERSION_STATUS`).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from bench.lab_names import LabNamesAdapter, MappedConnection
from pyactivesync import Client
from tests.conftest import RunningLab
from tests.integration.test_ews_eas_lab import PASSWORD, Lab

from sitemail.access.eas_serve import UNSUPPORTED_VERSION_STATUS

pytestmark = [pytest.mark.lab, pytest.mark.slow]

HORDE = Path(__file__).resolve().parent.parent / "clients" / "eas_horde.php"
HOST = "mail.contoso.com"
POLICY_TYPE = "MS-EAS-Provisioning-WBXML"
EXCHANGE2010_VERSIONS = "2.0,2.1,2.5,12.0,12.1,14.0,14.1"

Tree = list[Any]  # [tag, child, ...]: a child is a Tree, text, or {"opaque": base64}


def find(tree: Tree, path: str) -> Tree | None:
    node: Tree | None = tree
    for step in path.split("/"):
        if node is None:
            return None
        node = next((c for c in node[1:] if isinstance(c, list) and c[0] == step), None)
    return node


def findall(tree: Tree, path: str) -> list[Tree]:
    head, _, last = path.rpartition("/")
    parent = find(tree, head) if head else tree
    if parent is None:
        return []
    return [c for c in parent[1:] if isinstance(c, list) and c[0] == last]


def text(tree: Tree | None) -> str | None:
    if tree is None:
        return None
    return "".join(c for c in tree[1:] if isinstance(c, str))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    length: int


@dataclass
class HordeDevice:
    """A device whose WBXML is Horde's: each command runs ``eas_horde.php`` once."""

    lab: Lab
    user: str
    version: str
    device_id: str
    policy_key: str | None = None

    def command(self, cmd: str, body: Tree | None) -> Answer:
        request = {
            "url": self.lab.url(HOST, "/Microsoft-Server-ActiveSync"),
            "resolve": f"{HOST}:{self.lab.port}:{self.lab.addresses['EX-NY1']}",
            "ca": str(self.lab.ca),
            "user": f"contoso\\{self.user}",
            "password": PASSWORD,
            "mailbox": self.user,
            "device_id": self.device_id,
            "device_type": "HordeWbxml",
            "version": self.version,
            "policy_key": self.policy_key,
            "cmd": cmd,
            "body": body,
        }
        result = subprocess.run(
            ["php", str(HORDE)],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return Answer(**json.loads(result.stdout))

    def wbxml(self, cmd: str, body: Tree) -> Tree:
        answer = self.command(cmd, body)
        # An empty 200 is SendMail's success: here a WBXML answer was due.
        wanted = (200, "application/vnd.ms-sync.wbxml")
        assert (answer.status, answer.headers.get("content-type")) == wanted, answer
        assert isinstance(answer.body, list)
        return answer.body

    # ------------------------------------------------------------ commands

    def folders(self) -> dict[str, tuple[str, str]]:
        """FolderSync from scratch: display name -> (ServerId, Type)."""
        tree = self.wbxml(
            "FolderSync",
            ["FolderHierarchy:FolderSync", ["FolderHierarchy:SyncKey", "0"]],
        )
        assert tree[0] == "FolderHierarchy:FolderSync"
        assert text(find(tree, "FolderHierarchy:Status")) == "1"
        assert text(find(tree, "FolderHierarchy:SyncKey"))
        adds = findall(tree, "FolderHierarchy:Changes/FolderHierarchy:Add")
        count = text(find(tree, "FolderHierarchy:Changes/FolderHierarchy:Count"))
        assert count == str(len(adds))
        return {
            text(find(a, "FolderHierarchy:DisplayName")) or "": (
                text(find(a, "FolderHierarchy:ServerEntryId")) or "",
                text(find(a, "FolderHierarchy:Type")) or "",
            )
            for a in adds
        }

    def sync(self, folder: str, key: str, *extra: Tree) -> Tree:
        """One collection's Sync; the answer's Folder element (Horde's name for Collection)."""
        collection: Tree = ["Folder", ["SyncKey", key], ["FolderId", folder], *extra]
        tree = self.wbxml("Sync", ["Synchronize", ["Folders", collection]])
        assert tree[0] == "Synchronize"
        answer = find(tree, "Folders/Folder")
        assert answer is not None, tree
        assert text(find(answer, "FolderId")) == folder
        return answer


def plain_text_options() -> list[Tree]:
    return [
        ["GetChanges"],
        ["WindowSize", "50"],
        [
            "Options",
            ["AirSyncBase:BodyPreference", ["AirSyncBase:Type", "1"]],
        ],
    ]


def subjects(collection: Tree) -> dict[str, str]:
    """The Adds of a Sync answer: subject -> ServerId."""
    return {
        text(find(a, "Data/POOMMAIL:Subject")) or "": text(find(a, "ServerEntryId")) or ""
        for a in findall(collection, "Commands/Add")
    }


def first_sync(device: HordeDevice, folder: str) -> tuple[str, Tree]:
    """SyncKey 0, then the folder's contents: the new key and the answer."""
    start = device.sync(folder, "0")
    assert text(find(start, "Status")) == "1"
    key = text(find(start, "SyncKey")) or ""
    assert key and key != "0"
    assert find(start, "Commands") is None  # the first answer carries no items
    answer = device.sync(folder, key, *plain_text_options())
    assert text(find(answer, "Status")) == "1"
    return text(find(answer, "SyncKey")) or "", answer


def arrives(device: HordeDevice, folder: str, subject: str, seconds: float = 30) -> Tree:
    """A fresh Sync of ``folder`` until ``subject`` is among its messages; that Add."""
    deadline = time.monotonic() + seconds
    while True:
        _, answer = first_sync(device, folder)
        for add in findall(answer, "Commands/Add"):
            if text(find(add, "Data/POOMMAIL:Subject")) == subject:
                return add
        assert time.monotonic() < deadline, f"{subject!r} not in folder {folder} of {device.user}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def lab(seed_lab: RunningLab) -> Lab:
    return Lab(seed_lab)


def test_horde_codec_drives_provision_foldersync_sync_and_sendmail(lab: Lab) -> None:
    adam = HordeDevice(lab, "adam", "14.1", "HORDE1ADAM")

    # Provision, phase 1: the policy and a temporary key; the device information is taken.
    first = adam.wbxml(
        "Provision",
        [
            "Provision:Provision",
            ["Settings:DeviceInformation", ["Settings:Set", ["Settings:Model", "Horde"]]],
            ["Provision:Policies", ["Provision:Policy", ["Provision:PolicyType", POLICY_TYPE]]],
        ],
    )
    assert first[0] == "Provision:Provision"
    assert text(find(first, "Provision:Status")) == "1"
    assert text(find(first, "Settings:DeviceInformation/Settings:Status")) == "1"
    policy = find(first, "Provision:Policies/Provision:Policy")
    assert policy is not None
    assert text(find(policy, "Provision:PolicyType")) == POLICY_TYPE
    assert text(find(policy, "Provision:Status")) == "1"
    assert find(policy, "Provision:Data/Provision:EASProvisionDoc") is not None
    temporary = text(find(policy, "Provision:PolicyKey")) or ""
    assert temporary.isdigit()
    # Phase 2: the device acknowledges under the temporary key and gets its final key.
    adam.policy_key = temporary
    second = adam.wbxml(
        "Provision",
        [
            "Provision:Provision",
            [
                "Provision:Policies",
                [
                    "Provision:Policy",
                    ["Provision:PolicyType", POLICY_TYPE],
                    ["Provision:PolicyKey", temporary],
                    ["Provision:Status", "1"],
                ],
            ],
        ],
    )
    acknowledged = find(second, "Provision:Policies/Provision:Policy")
    assert acknowledged is not None
    assert text(find(acknowledged, "Provision:Status")) == "1"
    final = text(find(acknowledged, "Provision:PolicyKey")) or ""
    assert final.isdigit() and final != temporary
    assert find(acknowledged, "Provision:Data") is None
    adam.policy_key = final

    # FolderSync: the default folders with their MS-ASCMD types (adam's FL store via NY).
    folders = adam.folders()
    assert folders["Inbox"][1] == "2"
    assert folders["Drafts"][1] == "3"
    assert folders["Deleted Items"][1] == "4"
    assert folders["Sent Items"][1] == "5"
    inbox = folders["Inbox"][0]

    # Sync: SyncKey 0, then the Inbox's messages with their plain-text bodies.
    lab.deliver("adam", "EX-FL1", "Horde one", "First body.")
    lab.deliver("adam", "EX-FL1", "Horde two", "Second body.")
    key, answer = first_sync(adam, inbox)
    adds = {text(find(a, "Data/POOMMAIL:Subject")): a for a in findall(answer, "Commands/Add")}
    assert {"Horde one", "Horde two"} <= set(adds)
    one = adds["Horde one"]
    assert text(find(one, "Data/AirSyncBase:Body/AirSyncBase:Type")) == "1"
    assert (text(find(one, "Data/AirSyncBase:Body/AirSyncBase:Data")) or "").strip() == (
        "First body."
    )
    assert text(find(one, "Data/POOMMAIL:Read")) == "0"
    assert "alice@contoso.com" in (text(find(one, "Data/POOMMAIL:From")) or "")
    one_id = text(find(one, "ServerEntryId")) or ""
    two_id = text(find(adds["Horde two"], "ServerEntryId")) or ""

    # The device reads one message and deletes the other.
    answer = adam.sync(
        inbox,
        key,
        [
            "Commands",
            ["Modify", ["ServerEntryId", one_id], ["Data", ["POOMMAIL:Read", "1"]]],
            ["Remove", ["ServerEntryId", two_id]],
        ],
        *plain_text_options(),
    )
    assert text(find(answer, "Status")) == "1"
    key = text(find(answer, "SyncKey")) or ""
    # A second device of adam's sees both changes in the store.
    other = HordeDevice(lab, "adam", "14.0", "HORDE2ADAM")
    _, seen = first_sync(other, inbox)
    now = {text(find(a, "Data/POOMMAIL:Subject")): a for a in findall(seen, "Commands/Add")}
    assert "Horde two" not in now
    assert text(find(now["Horde one"], "Data/POOMMAIL:Read")) == "1"

    # New mail on the server comes to the first device as an Add under its current key.
    lab.deliver("adam", "EX-FL1", "Horde three", "Third body.")
    answer = adam.sync(inbox, key, *plain_text_options())
    assert set(subjects(answer)) == {"Horde three"}
    assert findall(answer, "Commands/Remove") == []

    # SendMail, a copy kept: fiona's own device finds the message in her Inbox.  The MIME
    # goes as text: Horde's encoder writes OPAQUE lengths over 127 the wrong way round.
    mime = (
        "From: Adam Fl <adam@contoso.com>\r\nTo: Fiona Fl <fiona@contoso.com>\r\n"
        "Subject: Sent by Horde\r\nMessage-ID: <horde-sendmail-1@contoso.com>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Over ActiveSync, through EX-NY1.\r\n"
    )

    def send_mail(client_id: str, message: str | dict[str, str]) -> Answer:
        return adam.command(
            "SendMail",
            [
                "ComposeMail:SendMail",
                ["ComposeMail:ClientId", client_id],
                ["ComposeMail:SaveInSentItems"],
                ["ComposeMail:MIME", message],
            ],
        )

    sent = send_mail("horde-1", mime)
    assert (sent.status, sent.length) == (200, 0), sent.body
    fiona = HordeDevice(lab, "fiona", "14.0", "HORDE1FIONA")
    received = arrives(fiona, fiona.folders()["Inbox"][0], "Sent by Horde")
    body = text(find(received, "Data/AirSyncBase:Body/AirSyncBase:Data")) or ""
    assert body.strip() == "Over ActiveSync, through EX-NY1."
    arrives(adam, folders["Sent Items"][0], "Sent by Horde")
    # The same ClientId again is not sent twice; a message without recipients is refused.
    again = adam.wbxml(
        "SendMail",
        [
            "ComposeMail:SendMail",
            ["ComposeMail:ClientId", "horde-1"],
            ["ComposeMail:MIME", mime],
        ],
    )
    assert again[0] == "ComposeMail:SendMail"
    assert text(find(again, "ComposeMail:Status")) == "118"
    # (as OPAQUE, which Horde writes right for data this short)
    short = b"From: adam@contoso.com\r\nSubject: nobody\r\n\r\nx\r\n"
    nobody = send_mail("horde-2", {"opaque": base64.b64encode(short).decode()})
    assert nobody.status == 200
    assert text(find(nobody.body, "ComposeMail:Status")) == "119"


@pytest.fixture
def requests_on_lab(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """requests (under pyactivesync) dials the lab's address for mail.contoso.com."""
    monkeypatch.setattr(MappedConnection, "names", {HOST: lab.addresses["EX-NY1"]})
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(lab.ca))
    yield


def test_a_16_1_client_is_answered_as_exchange_2010_answers_it(
    lab: Lab, requests_on_lab: None
) -> None:
    host = HOST if lab.port == 443 else f"{HOST}:{lab.port}"
    with Client(
        host, "contoso\\alice", PASSWORD, user="alice", device_id="PYAS16ALICE",
        verify_ssl=True,
    ) as client:  # fmt: skip
        # pyactivesync keeps its requests.Session there; the lab's names need the adapter.
        session = client._transport.session
        session.mount("https://", LabNamesAdapter())
        # What the server speaks: Exchange 2010's versions, no 16.x.
        options = session.options(f"https://{host}/Microsoft-Server-ActiveSync", timeout=30)
        assert options.status_code == 200
        assert options.headers["MS-ASProtocolVersions"] == EXCHANGE2010_VERSIONS
        assert "SendMail" in options.headers["MS-ASProtocolCommands"].split(",")
        # pyactivesync sends MS-ASProtocolVersion: 16.1 whatever it is told: refused.
        with pytest.raises(requests.HTTPError) as refused:
            client.provision()
        response = refused.value.response
        assert response is not None
        assert response.status_code == UNSUPPORTED_VERSION_STATUS
        assert response.request.headers["MS-ASProtocolVersion"] == "16.1"
        assert "MS-ASProtocolVersion 16.1 is not spoken here" in response.text
        assert EXCHANGE2010_VERSIONS in response.text
        assert response.headers["MS-Server-ActiveSync"]
