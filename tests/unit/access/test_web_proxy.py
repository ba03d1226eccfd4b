"""The CAS-to-CAS proxy goes only to directory InternalUrls and sends browsers nowhere else."""

from __future__ import annotations

import ssl

import pytest

from sitemail.access.directory_view import AccessDirectory
from sitemail.access.outcomes import ClientProtocol, Proxy
from sitemail.access.proxy_paths import UnsafeRequestPath
from sitemail.access.web.proxy import ProxyClient, ProxyFailed, ProxyRefused, rewrite_location
from sitemail.org.model import (
    ExchangeVersion,
    Server,
    ServerRole,
    VirtualDirectory,
    VirtualDirectoryKind,
)

FL_OWA = "https://ex-fl1.contoso.com/owa"


def _directory() -> AccessDirectory:
    return AccessDirectory.from_objects(
        [
            Server(
                name="EX-NY1",
                fqdn="ex-ny1.contoso.com",
                site="NY",
                roles=[ServerRole.CLIENT_ACCESS],
            ),
            Server(
                name="EX-FL1",
                fqdn="ex-fl1.contoso.com",
                site="FL",
                roles=[ServerRole.CLIENT_ACCESS],
            ),
            VirtualDirectory(
                server="EX-FL1",
                type=VirtualDirectoryKind.OWA,
                name="owa (Default Web Site)",
                internal_url=FL_OWA,
                external_url="https://mail-fl.contoso.com/owa",
            ),
            VirtualDirectory(
                server="EX-NY1",
                type=VirtualDirectoryKind.OWA,
                name="owa (Default Web Site)",
                internal_url="https://ex-ny1.contoso.com/owa",
            ),
        ]
    )


def _client(addresses: dict[str, str] | None = None) -> ProxyClient:
    known = addresses if addresses is not None else {"EX-FL1": "127.1.2.11"}

    def address_of(server: str) -> str:
        if server not in known:
            raise LookupError(f"no address known for {server!r}")
        return known[server]

    return ProxyClient(
        "EX-NY1",
        snapshot=_directory,
        address_of=address_of,
        port=lambda p: p + 10000,
        ssl_context=ssl.create_default_context(),
    )


def _proxy(url: str | None, server: str = "EX-FL1") -> Proxy:
    return Proxy(
        protocol=ClientProtocol.OWA,
        target_server=server,
        target_version=ExchangeVersion.E2010,
        host="ignored.example",  # the client never dials the outcome's host: only the directory's
        port=1,
        ssl=True,
        target_url=url,
        vdir=f"{server}\\owa (Default Web Site)",
    )


def test_target_is_the_directory_url_dialled_at_the_servers_path_address() -> None:
    target = _client().target(_proxy(FL_OWA), "/owa", "/owa/?ae=Item&id=5")
    assert target.url == "https://ex-fl1.contoso.com/owa/?ae=Item&id=5"
    assert (target.address, target.port) == ("127.1.2.11", 10443)
    assert target.server_hostname == "ex-fl1.contoso.com"
    assert target.host_header == "ex-fl1.contoso.com"


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("https://evil.example/owa", "EX-FL1"),  # not in the directory at all
        ("https://mail-fl.contoso.com/owa", "EX-FL1"),  # an ExternalUrl, not an InternalUrl
        ("https://ex-ny1.contoso.com/owa", "EX-FL1"),  # another server's InternalUrl
        ("https://ex-fl1.contoso.com/owa/", "EX-FL1"),  # not character for character
        (FL_OWA, "EX-XX9"),  # a server that does not hold it
        (None, "EX-FL1"),
    ],
)
def test_the_proxy_refuses_every_url_that_is_not_a_directory_internal_url(
    url: str | None, server: str
) -> None:
    with pytest.raises(ProxyRefused):
        _client().target(_proxy(url, server), "/owa", "/owa/")


@pytest.mark.parametrize(
    "path",
    [
        "/owa/../ecp/",
        "/owa/%2e%2e/x",
        "//evil.example/owa/",
        "/owa\\..\\x",
        "/ecp/",
        "/owa/%2F%2Fevil",
    ],
)
def test_client_paths_cannot_leave_the_virtual_directory(path: str) -> None:
    with pytest.raises(UnsafeRequestPath):
        _client().target(_proxy(FL_OWA), "/owa", path)


def test_a_target_without_a_known_address_fails_cleanly() -> None:
    with pytest.raises(ProxyFailed) as caught:
        _client({}).target(_proxy(FL_OWA), "/owa", "/owa/")
    assert "EX-FL1" in caught.value.message


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("?ae=Folder&id=inbox", "?ae=Folder&id=inbox"),  # relative: the browser stays on CAS1
        ("/ecp/?n=name", "/ecp/?n=name"),
        (FL_OWA + "/?ae=Item", "/owa/?ae=Item"),  # CAS2's own URL, moved onto CAS1's path
        (FL_OWA, "/owa"),
        ("https://evil.example/owa/", None),
        ("https://ex-fl1.contoso.com/ecp/", None),  # outside the virtual directory proxied to
        ("https://ex-fl1.contoso.com:444/owa/", None),
        ("//evil.example/", None),
        ("/owa\\evil", None),
        ("https://ex-fl1.contoso.com/owa/\r\nSet-Cookie: x=y", None),
    ],
)
def test_redirects_from_the_target_never_lead_elsewhere(
    location: str, expected: str | None
) -> None:
    assert rewrite_location(location, FL_OWA, "/owa") == expected
