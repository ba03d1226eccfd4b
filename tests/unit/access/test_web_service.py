"""The W3SVC service: HTTPS on the server's address, restartable, certificate reloaded on change."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from sitemail.access.web.common import AppUser, RequestContext
from sitemail.access.web.service import W3svcService
from sitemail.org.defaults import default_virtual_directories
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import (
    AcceptedDomain,
    Mailbox,
    MailboxDatabase,
    Organization,
    Server,
    ServerRole,
    Site,
    VirtualDirectory,
    VirtualDirectoryKind,
)
from sitemail.org.passwords import hash_password
from sitemail.org.pki import OrganizationPki
from sitemail.server.context import ProcessContext
from sitemail.server.watcher import DirectoryWatcher

NY_OWA = "EX-NY1\\owa (Default Web Site)"
PASSWORD = "P@ssw0rd-1"


def _org(tmp: Path) -> tuple[Directory, OrganizationPki, Server]:
    d = open_directory(str(tmp / "directory.db"))
    d.put(
        Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    )
    d.put(Site(name="NY"))
    server = Server(
        name="EX-NY1",
        fqdn="ex-ny1.contoso.com",
        site="NY",
        roles=[ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS],
        addresses=["127.0.0.1"],
    )
    d.put(server)
    for v in default_virtual_directories(server):
        if v.type == VirtualDirectoryKind.OWA:
            v = v.model_copy(update={"external_url": "https://mail.contoso.com/owa"})
        if v.type == VirtualDirectoryKind.EWS:
            # The front door signs every request in: the EWS client below uses Basic.
            v = v.model_copy(update={"basic_authentication": True})
        d.put(v)
    d.put(MailboxDatabase(name="NY-DB1", server="EX-NY1"))
    d.put(
        Mailbox(
            alias="alice",
            display_name="Alice User",
            primary_smtp_address="alice@contoso.com",
            database="NY-DB1",
            password_hash=hash_password(PASSWORD),
        )
    )
    pki = OrganizationPki.open_or_create(tmp / "pki", "Contoso")
    pki.ensure_server(
        "EX-NY1",
        server.fqdn,
        urls=["https://mail.contoso.com/owa", "https://ex-ny1.contoso.com/owa"],
    )
    return d, pki, server


def _context(tmp_path: Path, directory: Directory) -> ProcessContext:
    return ProcessContext(
        name="EX-NY1",
        site="NY",
        address="127.0.0.1",
        directory=directory,
        directory_url=str(tmp_path / "directory.db"),
        base_dir=tmp_path,
        home=tmp_path / "servers" / "EX-NY1",
        pki_dir=tmp_path / "pki",
    )


class _Loopback(AbstractResolver):
    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


async def _get(
    pki: OrganizationPki,
    host: str,
    port: int,
    path: str = "/owa/auth/logon.aspx",
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    connector = aiohttp.TCPConnector(ssl=ctx, resolver=_Loopback(), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as s:
        r = await s.get(f"https://{host}:{port}{path}", headers=headers)
        await r.read()
        return r


def test_w3svc_serves_restarts_and_reloads_its_certificate(tmp_path: Path) -> None:
    directory, pki, server = _org(tmp_path)
    ctx = _context(tmp_path, directory)

    async def scenario() -> None:
        watcher = DirectoryWatcher(directory)
        service = W3svcService(ctx, watcher, port=0, workers=0)
        assert (service.name, service.display_name) == (
            "W3SVC",
            "World Wide Web Publishing Service",
        )
        await service.start()
        try:
            r = await _get(pki, "mail.contoso.com", service.port)
            assert r.status == 200 and "Sign in" in await r.text()

            # Set-OwaVirtualDirectory gives a new name; the certificate is reissued for it.
            v = directory.require(VirtualDirectory, NY_OWA)
            directory.put(v.model_copy(update={"external_url": "https://webmail.contoso.com/owa"}))
            pki.ensure_server(
                "EX-NY1", server.fqdn, urls=["https://webmail.contoso.com/owa", v.internal_url]
            )
            await watcher.check()  # what the watcher's loop does within half a second
            r = await _get(pki, "webmail.contoso.com", service.port)  # checks the new name
            assert r.status == 200

            async def ews(
                request: web.Request, ctx: RequestContext, user: AppUser
            ) -> web.StreamResponse:
                return web.Response(text=f"EWS on {ctx.vdir.identity} for {user.alias}")

            service.register(VirtualDirectoryKind.EWS, ews)
            await service.stop()  # Restart-Service W3SVC
            await service.start()
            r = await _get(pki, "webmail.contoso.com", service.port)
            assert r.status == 200
            r = await _get(pki, "ex-ny1.contoso.com", service.port, "/EWS/Exchange.asmx")
            assert r.status == 401  # the front door signs the user in before the handler
            token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
            r = await _get(
                pki,
                "ex-ny1.contoso.com",
                service.port,
                "/EWS/Exchange.asmx",
                headers={"Authorization": f"Basic {token}"},
            )
            # kept across restart
            assert await r.text() == "EWS on EX-NY1\\EWS (Default Web Site) for alice"
        finally:
            await service.stop()
        logs = list((ctx.home / "inetpub" / "logs" / "LogFiles" / "W3SVC1").glob("u_ex*.log"))
        lines = logs[0].read_text().splitlines()
        assert lines[0] == "#Software: Microsoft Internet Information Services 7.5"
        assert any(" GET /owa/auth/logon.aspx - " in line and " 200 " in line for line in lines)

    asyncio.run(asyncio.wait_for(scenario(), 60))


async def _tls_client(
    pki: OrganizationPki, port: int, source: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    return await asyncio.open_connection(
        "127.0.0.1",
        port,
        ssl=ctx,
        server_hostname="mail.contoso.com",
        local_addr=(source, 0),
    )


REQUEST = b"GET /owa/auth/logon.aspx HTTP/1.1\r\nHost: mail.contoso.com\r\n\r\n"


async def _response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:"))
                 .split(b":")[1])  # fmt: skip
    await reader.readexactly(length)
    return head


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        pass
    return True


def test_slow_request_headers_are_cut_off_and_one_address_holds_few_connections(
    tmp_path: Path,
) -> None:
    directory, pki, _ = _org(tmp_path)
    ctx = _context(tmp_path, directory)

    async def scenario() -> None:
        service = W3svcService(
            ctx, port=0, header_wait=1.5, max_connections_per_address=3, workers=0
        )
        await service.start()
        try:
            port = service.port
            # Slowloris: a header line every 0.3 s never completes the request.
            reader, writer = await _tls_client(pki, port, "127.0.0.5")
            writer.write(b"GET /owa/auth/logon.aspx HTTP/1.1\r\nHost: mail.contoso.com\r\n")
            started = asyncio.get_running_loop().time()
            closed = False
            for n in range(20):
                await asyncio.sleep(0.3)
                if reader.at_eof():
                    closed = True
                    break
                try:
                    writer.write(f"X-Slow-{n}: 1\r\n".encode())
                    await writer.drain()
                except (ConnectionError, ssl.SSLError):
                    closed = True
                    break
            closed = closed or await _closed_within(reader, 1.0)
            elapsed = asyncio.get_running_loop().time() - started
            assert closed and elapsed < 3.5, elapsed
            writer.close()

            # A keep-alive client quiet longer than the header wait between two requests
            # is not cut off: the next request's time starts with its first octet.
            reader, writer = await _tls_client(pki, port, "127.0.0.5")
            writer.write(REQUEST)
            assert (await _response(reader)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(2.0)
            writer.write(REQUEST)
            assert (await _response(reader)).startswith(b"HTTP/1.1 200")
            writer.close()

            # Three idle connections from one address; the fourth is refused at once,
            # while another address is served.
            held = [await _tls_client(pki, port, "127.0.0.6") for _ in range(3)]
            await asyncio.sleep(0.1)
            try:
                extra = await _tls_client(pki, port, "127.0.0.6")
                refused = await _closed_within(extra[0], 1.0)
            except (ConnectionError, ssl.SSLError):
                refused = True
            assert refused
            reader, writer = await _tls_client(pki, port, "127.0.0.7")
            writer.write(REQUEST)
            assert (await _response(reader)).startswith(b"HTTP/1.1 200")
            writer.close()
            # Connections that send nothing are closed at the header wait too.
            assert all([await _closed_within(r, 3.0) for r, _ in held])
            assert service.guard is not None and service.guard.closed_for_headers >= 4
        finally:
            await service.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
