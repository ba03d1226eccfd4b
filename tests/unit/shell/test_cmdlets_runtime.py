"""The runtime cmdlets against a fake admin API, and the SMTP tests against a local socket."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import LabSettings, ReceiveConnector, Server
from sitemail.org.topology import Topology
from sitemail.shell import ScriptResult, run_script
from sitemail.shell.cmdlets import exchange_registry
from sitemail.shell.cmdlets.admin_client import AdminClient, AdminError
from sitemail.shell.cmdlets.connectivity import converse, status_code
from sitemail.shell.cmdlets.services import ExchangeServices

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed.yaml"
LAST_ERROR = (
    '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange '
    'Server authentication." Attempted failover to alternate host, but that did not succeed. '
    "Either there are no alternate hosts, or delivery failed to all alternate hosts."
)


def queue(identity: str, delivery: str, status: str, count: int, hop: str) -> dict[str, object]:
    return {
        "Identity": identity,
        "DeliveryType": delivery,
        "NextHopDomain": hop,
        "Status": status,
        "MessageCount": count,
        "LastError": LAST_ERROR if status == "Retry" else None,
        "RetryCount": 1 if status == "Retry" else 0,
        "LastRetryTime": "2024-01-05T15:04:05+00:00" if status == "Retry" else None,
    }


class FakeAdmin(AdminClient):
    """Canned answers per (server, path); every call is kept."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"))
        self.answers: dict[tuple[str, str], object] = {}
        self.calls: list[tuple[str, str, str, dict[str, object] | None]] = []
        self.ports: set[int] = set()

    def get(self, server: str, address: str, port: int, path: str) -> object:
        self.calls.append((server, address, path, None))
        self.ports.add(port)
        return self._answer(server, path)

    def post(
        self, server: str, address: str, port: int, path: str, body: dict[str, object]
    ) -> object:
        self.calls.append((server, address, path, body))
        self.ports.add(port)
        return self._answer(server, path)

    def _answer(self, server: str, path: str) -> object:
        answer = self.answers.get((server, path), [])
        if isinstance(answer, AdminError):
            raise answer
        return answer


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    d = open_directory(str(tmp_path / "directory.db"))
    with d.transaction():
        for obj in Topology.load(SEED).objects(hash_passwords=False):
            if isinstance(obj, Server):
                obj.addresses = [
                    {"EX-NY1": "127.1.0.11", "EX-FL1": "127.2.0.11"}.get(obj.name, "127.1.0.12")
                ]
            d.put(obj)
    yield d
    d.close()


@pytest.fixture
def admin() -> FakeAdmin:
    fake = FakeAdmin()
    fake.answers[("EX-NY1", "/queues")] = [
        queue("EX-NY1\\Submission", "Undefined", "Ready", 0, "Submission"),
        queue("EX-NY1\\5", "SmtpRelayToRemoteAdSite", "Retry", 1, "FL"),
    ]
    fake.answers[("EX-FL1", "/queues")] = [
        queue("EX-FL1\\Submission", "Undefined", "Ready", 0, "Submission"),
    ]
    return fake


@pytest.fixture
def services(directory: Directory, tmp_path: Path, admin: FakeAdmin) -> ExchangeServices:
    return ExchangeServices(directory, tmp_path, admin, "EX-NY1")


def run(services: ExchangeServices, text: str) -> ScriptResult:
    return run_script(text, services, exchange_registry(), width=250)


def posts(admin: FakeAdmin) -> list[tuple[str, str, str, dict[str, object] | None]]:
    return [c for c in admin.calls if c[3] is not None]


def test_get_queue_asks_every_hub_and_shows_exchanges_columns(
    services: ExchangeServices, admin: FakeAdmin
) -> None:
    result = run(services, "Get-Queue")
    assert not result.failed, result.output
    lines = [line.split() for line in result.output.splitlines() if line.strip()]
    assert lines[0] == ["Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain"]
    assert ["EX-NY1\\5", "SmtpRelayToRemoteAdSite", "Retry", "1", "FL"] in lines
    assert ["EX-FL1\\Submission", "Undefined", "Ready", "0", "Submission"] in lines
    assert {(c[0], c[1]) for c in admin.calls} == {
        ("EX-NY1", "127.1.0.11"),
        ("EX-FL1", "127.2.0.11"),
    }


def test_the_admin_api_is_called_on_the_labs_shifted_port(
    services: ExchangeServices, admin: FakeAdmin, directory: Directory
) -> None:
    assert not run(services, "Get-Queue").failed
    assert admin.ports == {8443}
    directory.put(LabSettings(port_offset=20000))
    admin.ports.clear()
    assert not run(services, "Get-Queue").failed
    assert admin.ports == {28443}


def test_get_queue_format_list_shows_last_error_and_local_times(
    services: ExchangeServices,
) -> None:
    result = run(services, 'Get-Queue -Filter {Status -eq "Retry"} | Format-List')
    text = re.sub(r"\s*\n\s+", " ", result.output)  # unwrap continued values
    assert f"LastError : {LAST_ERROR}" in re.sub(r" {2,}", " ", text)
    assert re.search(r"LastRetryTime\s+: \d{1,2}/\d{1,2}/2024 \d{1,2}:\d\d:05 [AP]M", result.output)
    assert "EX-NY1\\Submission" not in result.output


def test_the_seed_retry_pipeline_retries_only_the_queue_in_retry(
    services: ExchangeServices, admin: FakeAdmin
) -> None:
    result = run(services, 'Get-Queue | Where-Object {$_.Status -eq "Retry"} | Retry-Queue')
    assert not result.failed, result.output
    assert result.output == ""  # Retry-Queue writes nothing, as in Exchange
    assert posts(admin) == [
        ("EX-NY1", "127.1.0.11", "/queues/retry", {"identity": "EX-NY1\\5", "resubmit": False})
    ]


def test_queue_actions_report_refusals_and_go_on(
    services: ExchangeServices, admin: FakeAdmin
) -> None:
    admin.answers[("EX-NY1", "/queues/suspend")] = AdminError(
        "Suspend-Queue can't be used on EX-NY1\\Submission", 409
    )
    result = run(services, "Get-Queue | Suspend-Queue")
    assert result.errors == (
        "Suspend-Queue : Suspend-Queue can't be used on EX-NY1\\Submission",
        "Suspend-Queue : Suspend-Queue can't be used on EX-NY1\\Submission",
    )
    suspended = [c[3]["identity"] for c in posts(admin) if c[3] is not None]
    assert sorted(str(i) for i in suspended) == [
        "EX-FL1\\Submission",
        "EX-NY1\\5",
        "EX-NY1\\Submission",
    ]
    run(services, "Retry-Queue Unreachable -Resubmit $true")
    assert posts(admin)[-1] == (
        "EX-NY1",
        "127.1.0.11",
        "/queues/retry",
        {"identity": "EX-NY1\\Unreachable", "resubmit": True},
    )


def test_a_hub_that_does_not_answer_is_named_and_the_others_still_show(
    services: ExchangeServices, admin: FakeAdmin
) -> None:
    admin.answers[("EX-FL1", "/queues")] = AdminError("Server EX-FL1 (127.2.0.11) did not answer")
    result = run(services, "Get-Queue")
    assert result.errors == ("Get-Queue : Server EX-FL1 (127.2.0.11) did not answer",)
    assert "EX-NY1\\5" in result.output


def test_messages_and_remove_without_ndr(services: ExchangeServices, admin: FakeAdmin) -> None:
    admin.answers[("EX-NY1", "/messages?queue=EX-NY1%5C5")] = [
        {
            "Identity": "EX-NY1\\5\\7",
            "FromAddress": "alice@contoso.com",
            "Status": "Retry",
            "Queue": "EX-NY1\\5",
            "Subject": "hello",
            "Recipients": ["adam@contoso.com"],
        }
    ]
    result = run(services, "Get-Message -Queue EX-NY1\\5")
    assert re.search(r"EX-NY1\\5\\7\s+alice@contoso.com\s+Retry\s+EX-NY1\\5\s+hello", result.output)
    run(services, "Get-Message -Queue EX-NY1\\5 | Remove-Message -WithNDR $false")
    assert posts(admin)[-1] == (
        "EX-NY1",
        "127.1.0.11",
        "/messages/remove",
        {"identity": "EX-NY1\\5\\7", "with_ndr": False},
    )
    run(services, "Remove-Message EX-FL1\\3\\9")
    assert posts(admin)[-1][0] == "EX-FL1"
    assert posts(admin)[-1][3] == {"identity": "EX-FL1\\3\\9", "with_ndr": True}


def test_tracking_merges_the_hubs_in_time_order(
    services: ExchangeServices, admin: FakeAdmin
) -> None:
    def event(event_id: str, when: str) -> dict[str, object]:
        return {
            "Timestamp": when,
            "EventId": event_id,
            "Source": "SMTP",
            "Sender": "alice@contoso.com",
            "Recipients": ["adam@contoso.com"],
            "MessageSubject": "hello",
        }

    admin.answers[("EX-NY1", "/tracking")] = [
        event("RECEIVE", "2024-01-05T15:00:00+00:00"),
        event("SEND", "2024-01-05T15:00:02+00:00"),
    ]
    admin.answers[("EX-FL1", "/tracking")] = [event("DELIVER", "2024-01-05T15:00:03+00:00")]
    result = run(services, "Get-MessageTrackingLog -MessageId '<hello@contoso.com>'")
    events = [line.split()[0] for line in result.output.splitlines()[3:] if line.strip()]
    assert events == ["RECEIVE", "SEND", "DELIVER"]
    bodies = [c[3] for c in posts(admin)]
    assert all(b is not None and b["message_id"] == "<hello@contoso.com>" for b in bodies)
    run(services, "Get-MessageTrackingLog -Server EX-FL1 -EventId deliver -ResultSize 5")
    server, _, _, body = posts(admin)[-1]
    assert server == "EX-FL1"
    assert body is not None and body["event_id"] == "DELIVER" and body["result_size"] == 5
    refused = run(services, "Get-MessageTrackingLog -Server EX2003")
    assert "doesn't have the Exchange 2010 Hub Transport role" in refused.errors[0]


def test_services_of_the_local_server_and_restart(
    services: ExchangeServices, admin: FakeAdmin
) -> None:
    admin.answers[("EX-NY1", "/services")] = [
        {
            "Name": "MSExchangeTransport",
            "DisplayName": "Microsoft Exchange Transport",
            "Status": "Running",
        },
        {"Name": "W3SVC", "DisplayName": "World Wide Web Publishing Service", "Status": "Running"},
    ]
    result = run(services, "Get-Service MSExchange*")
    assert re.search(r"Running\s+MSExchangeTransport\s+Microsoft Exchange Transport", result.output)
    assert "W3SVC" not in result.output
    run(services, "Restart-Service MSExchangeTransport")
    assert posts(admin)[-1] == ("EX-NY1", "127.1.0.11", "/services/MSExchangeTransport/restart", {})
    missing = run(services, "Restart-Service NoSuchService")
    assert missing.errors == (
        "Restart-Service : Cannot find any service with service name 'NoSuchService'.",
    )


# --------------------------------------------------------------- SMTP on a socket


class FakeSmtpServer:
    """Answers each connection with ``banner``, then EHLO and QUIT like an SMTP server."""

    def __init__(self, banner: bytes) -> None:
        self.banner = banner
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.heard: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.banner)
                if not self.banner:
                    continue
                data = conn.recv(1024)
                self.heard.append(data)
                if data.startswith(b"EHLO"):
                    conn.sendall(b"250-fake Hello [127.0.0.1]\r\n250-SIZE\r\n250 XXXXXXXA\r\n")
                    self.heard.append(conn.recv(1024))
                    conn.sendall(b"221 2.0.0 Service closing transmission channel\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def smtp() -> Iterator[FakeSmtpServer]:
    server = FakeSmtpServer(b"220 ****************************************\r\n")
    yield server
    server.close()


def test_converse_reads_banner_and_ehlo_like_telnet(smtp: FakeSmtpServer) -> None:
    talk = converse(
        "127.0.0.1", "127.0.0.1", smtp.port, ehlo_name="ex-ny1.contoso.com", read_banner=True
    )
    assert talk.connected
    assert talk.banner == ["220 ****************************************"]
    assert talk.ehlo == ["250-fake Hello [127.0.0.1]", "250-SIZE", "250 XXXXXXXA"]
    assert smtp.heard == [b"EHLO ex-ny1.contoso.com\r\n", b"QUIT\r\n"]
    assert status_code(talk) == "Success"


@pytest.mark.parametrize(
    ("banner", "status"),
    [
        (b"421 4.3.2 Service not available\r\n", "Transient error"),
        (b"554 5.7.1 Go away\r\n", "Permanent error"),
        (b"", "External error"),
    ],
)
def test_status_codes_of_test_smtp_connectivity(banner: bytes, status: str) -> None:
    server = FakeSmtpServer(banner)
    try:
        talk = converse("127.0.0.1", "127.0.0.1", server.port, ehlo_name=None, read_banner=True)
    finally:
        server.close()
    assert status_code(talk) == status


def test_unable_to_connect() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = int(closed.getsockname()[1])
    closed.close()
    talk = converse("127.0.0.1", "127.0.0.1", port, ehlo_name=None, read_banner=True)
    assert status_code(talk) == "Unable to connect"
    assert talk.error


def test_test_smtp_connectivity_rows(
    services: ExchangeServices, directory: Directory, smtp: FakeSmtpServer
) -> None:
    server = directory.require(Server, "EX-NY1")
    server.addresses = ["127.0.0.1"]
    directory.put(server)
    for c in directory.list(ReceiveConnector):
        if c.server == "EX-NY1":
            directory.delete(ReceiveConnector, c.identity)
    directory.put(
        ReceiveConnector(server="EX-NY1", name="Default EX-NY1", bindings=[f"0.0.0.0:{smtp.port}"])
    )
    result = run(services, "Test-SmtpConnectivity | Format-List")
    assert "ReceiveConnector : Default EX-NY1" in result.output
    assert f"EndPoint         : 127.0.0.1:{smtp.port}" in result.output
    assert "StatusCode       : Success" in result.output
    assert "Details          : 220 ****************************************" in result.output
