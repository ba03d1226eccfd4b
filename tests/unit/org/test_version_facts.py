"""What a client or peer sees differ between an Exchange 2007 SP3 and a 2010 SP3 server."""

from __future__ import annotations

import contextvars
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sitemail.access.eas_request import EXCHANGE2007, EXCHANGE2010
from sitemail.access.ews_soap import (
    SERVER_VERSION,
    SoapFault,
    check_schema,
    envelope,
    m,
    t,
)
from sitemail.mailflow.protocol_log import ProtocolLog
from sitemail.mailflow.tracking_log import MessageTrackingLog
from sitemail.org.defaults import default_pop_imap_settings, default_virtual_directories
from sitemail.org.model import ExchangeVersion, Server, ServerRole, VirtualDirectoryKind
from sitemail.org.version_facts import facts_for

E07, E10 = ExchangeVersion.E2007, ExchangeVersion.E2010


def as_server(version: ExchangeVersion, work: Callable[[], object]) -> object:
    """Run ``work`` as the EWS handler of a server of ``version`` runs a request."""

    def run() -> object:
        SERVER_VERSION.set(version)
        return work()

    return contextvars.copy_context().run(run)


def server_version_info(version: ExchangeVersion) -> dict[str, str]:
    body = as_server(version, lambda: envelope(ET.Element(m("GetFolderResponse"))))
    assert isinstance(body, bytes)
    header = ET.fromstring(body).find(f".//{t('ServerVersionInfo')}")
    assert header is not None
    return dict(header.attrib)


def test_ews_server_version_info_of_2007_sp3_and_2010_sp3() -> None:
    info = server_version_info(E07)
    assert (info["MajorVersion"], info["MinorVersion"], info["Version"]) == (
        "8",
        "3",
        "Exchange2007_SP1",
    )
    info = server_version_info(E10)
    assert (info["MajorVersion"], info["MinorVersion"], info["Version"]) == (
        "14",
        "3",
        "Exchange2010_SP2",
    )


@pytest.mark.parametrize("schema", ["Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2"])
def test_2007_refuses_the_schemas_of_2010(schema: str) -> None:
    with pytest.raises(SoapFault) as refused:
        as_server(E07, lambda: check_schema(schema))
    assert refused.value.response_code == "ErrorInvalidServerVersion"
    as_server(E10, lambda: check_schema(schema))  # 2010 takes them


@pytest.mark.parametrize("schema", ["Exchange2007", "Exchange2007_SP1", None])
def test_2007_takes_its_own_schemas(schema: str | None) -> None:
    as_server(E07, lambda: check_schema(schema))


def test_a_request_of_another_server_keeps_its_own_version() -> None:
    # The version is the request's (a context variable), not the process's.
    as_server(E07, lambda: None)
    assert server_version_info(E10)["MajorVersion"] == "14"


def test_activesync_banners() -> None:
    assert EXCHANGE2007.protocol_versions == ("2.0", "2.1", "2.5", "12.0", "12.1")
    assert EXCHANGE2007.server_version == "8.3"
    assert EXCHANGE2010.protocol_versions[-1] == "14.1"
    assert (
        EXCHANGE2007.headers()["MS-ASProtocolCommands"]
        == EXCHANGE2010.headers()["MS-ASProtocolCommands"]
    )


def test_names_logs_and_shadow_redundancy() -> None:
    assert facts_for(E07).owa_product == "Outlook Web Access"
    assert facts_for(E10).owa_product == "Outlook Web App"
    assert (facts_for(E07).log_version, facts_for(E10).log_version) == ("8.0.0.0", "14.0.0.0")
    assert not facts_for(E07).shadow_redundancy and facts_for(E10).shadow_redundancy


def test_a_2007_server_has_the_2010_roles_but_no_ecp() -> None:
    roles = [ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT]
    e07 = Server(name="EX07", fqdn="ex07.contoso.com", site="HQ", version=E07, roles=roles)
    assert e07.is_hub
    kinds = {v.type for v in default_virtual_directories(e07)}
    assert VirtualDirectoryKind.OWA in kinds and VirtualDirectoryKind.ECP not in kinds
    assert {s.protocol for s in default_pop_imap_settings(e07)} == {"POP3", "IMAP4"}


def test_log_headers_carry_the_version_given(tmp_path: Path) -> None:
    created = datetime(2026, 12, 7, tzinfo=UTC)
    tracking = MessageTrackingLog(tmp_path / "t", version=facts_for(E07).log_version)
    receive = ProtocolLog.receive(tmp_path / "r", version=facts_for(E07).log_version)
    for settings in (tracking.settings, receive.settings):
        assert "#Version: 8.0.0.0" in settings.header(created).lines()
    assert (
        "#Version: 14.0.0.0" in MessageTrackingLog(tmp_path / "x").settings.header(created).lines()
    )
