"""What Exchange 2010 (and 2007) setup creates for a server, unless the topology says otherwise.

Spec references: receive connectors spec 1.1, virtual directories spec 8.7,
POP3/IMAP4 settings spec 8.6.
"""

from __future__ import annotations

from sitemail.org.model import (
    MB,
    AuthMechanism,
    ExchangeVersion,
    PermissionGroup,
    PopImapSettings,
    ReceiveConnector,
    Server,
    ServerRole,
    SizeEnabled,
    VirtualDirectory,
    VirtualDirectoryKind,
    default_vdir_name,
)


def default_receive_connectors(server: Server) -> list[ReceiveConnector]:
    """``Default <SERVER>`` and ``Client <SERVER>`` of a 2010 Hub Transport server (spec 1.1)."""
    if not server.is_hub:
        return []
    default = ReceiveConnector(
        server=server.name,
        name=f"Default {server.name}",
        bindings=["0.0.0.0:25"],
        remote_ip_ranges=["0.0.0.0-255.255.255.255"],
        auth_mechanism=[
            AuthMechanism.TLS,
            AuthMechanism.INTEGRATED,
            AuthMechanism.BASIC_AUTH,
            AuthMechanism.BASIC_AUTH_REQUIRE_TLS,
            AuthMechanism.EXCHANGE_SERVER,
        ],
        permission_groups=[
            PermissionGroup.EXCHANGE_USERS,
            PermissionGroup.EXCHANGE_SERVERS,
            PermissionGroup.EXCHANGE_LEGACY_SERVERS,
        ],
        # "Internal" usage (spec 1.1, [Decomp] NewReceiveConnector): bare SIZE, 100 % per source.
        size_enabled=SizeEnabled.ENABLED_WITHOUT_VALUE,
        max_inbound_connection_percentage_per_source=100,
        max_message_size=10 * MB,
    )
    client = ReceiveConnector(
        server=server.name,
        name=f"Client {server.name}",
        bindings=["0.0.0.0:587"],
        remote_ip_ranges=["0.0.0.0-255.255.255.255"],
        auth_mechanism=[
            AuthMechanism.TLS,
            AuthMechanism.INTEGRATED,
            AuthMechanism.BASIC_AUTH,
            AuthMechanism.BASIC_AUTH_REQUIRE_TLS,
        ],
        permission_groups=[PermissionGroup.EXCHANGE_USERS],
        size_enabled=SizeEnabled.ENABLED,
        max_message_size=10 * MB,
    )
    return [default, client]


def default_virtual_directories(server: Server) -> list[VirtualDirectory]:
    """The CAS virtual directories with their InternalUrl on the server's FQDN (spec 8.7).

    ExternalUrl is ``$null`` until the topology or Set-*VirtualDirectory gives one.
    """
    if server.version == ExchangeVersion.E2003:
        return exchange2003_virtual_directories(server)
    if ServerRole.CLIENT_ACCESS not in server.roles:
        return []
    base = f"https://{server.fqdn}"
    paths = {
        VirtualDirectoryKind.OWA: "/owa",
        VirtualDirectoryKind.ECP: "/ecp",
        VirtualDirectoryKind.EAS: "/Microsoft-Server-ActiveSync",
        VirtualDirectoryKind.EWS: "/EWS/Exchange.asmx",
        VirtualDirectoryKind.OAB: "/OAB",
        VirtualDirectoryKind.AUTODISCOVER: "/Autodiscover/Autodiscover.xml",
    }
    if server.version == ExchangeVersion.E2007:
        # The Exchange Control Panel came with 2010: 2007's options live inside OWA.
        del paths[VirtualDirectoryKind.ECP]
    out: list[VirtualDirectory] = []
    for kind, path in paths.items():
        fba = kind in (VirtualDirectoryKind.OWA, VirtualDirectoryKind.ECP)
        out.append(
            VirtualDirectory(
                server=server.name,
                type=kind,
                name=default_vdir_name(kind),
                internal_url=base + path,
                external_url=None,
                # OWA/ECP: forms-based sign-in, which implies Basic and no Windows auth
                # (spec 8.7); EAS: Basic; EWS/OAB/Autodiscover: Windows auth.
                forms_authentication=fba,
                basic_authentication=kind
                in (
                    VirtualDirectoryKind.OWA,
                    VirtualDirectoryKind.ECP,
                    VirtualDirectoryKind.EAS,
                    VirtualDirectoryKind.AUTODISCOVER,
                ),
                windows_authentication=not fba and kind != VirtualDirectoryKind.EAS,
            )
        )
    return out


#: Exchange 2003's HTTP virtual directories that Exchange System Manager shows under
#: Protocols > HTTP > Exchange Virtual Server and the System Attendant copies to IIS:
#: (name, kind, anonymous, basic, Integrated Windows).  The six IIS virtual directories
#: of a 2003 server are Exadmin, Exchange, ExchWeb, Microsoft-Server-ActiveSync, OMA and
#: Public (KB 883380); Exadmin and ExchWeb are left out (nothing in sitemail uses them).
#: The authentication defaults are unverified (general knowledge of a 2003 SP2 back-end):
#: Microsoft-Server-ActiveSync with Integrated Windows on is the state the seed asks for
#: (a 2010 Client Access server proxies to it), which the lab starts from.
EXCHANGE2003_VDIRS: tuple[tuple[str, VirtualDirectoryKind, bool, bool, bool], ...] = (
    ("Exchange", VirtualDirectoryKind.OWA, False, True, True),
    ("Public", VirtualDirectoryKind.OWA, False, True, True),
    ("Microsoft-Server-ActiveSync", VirtualDirectoryKind.EAS, False, True, True),
    ("OMA", VirtualDirectoryKind.OMA, False, True, False),
)


def exchange2003_virtual_directories(server: Server) -> list[VirtualDirectory]:
    """The 2003 server's virtual directories as the directory (and so ESM) holds them."""
    return [
        VirtualDirectory(
            server=server.name,
            type=kind,
            name=f"{leaf} (Default Web Site)",
            internal_url=f"https://{server.fqdn}/{leaf}",
            anonymous_authentication=anonymous,
            basic_authentication=basic,
            windows_authentication=windows,
        )
        for leaf, kind, anonymous, basic, windows in EXCHANGE2003_VDIRS
    ]


def default_pop_imap_settings(server: Server) -> list[PopImapSettings]:
    if ServerRole.CLIENT_ACCESS not in server.roles or server.version == ExchangeVersion.E2003:
        return []
    return [
        PopImapSettings(
            server=server.name,
            protocol="POP3",
            unencrypted_or_tls_bindings=["0.0.0.0:110"],
            ssl_bindings=["0.0.0.0:995"],
            proxy_target_port=110,
        ),
        PopImapSettings(
            server=server.name,
            protocol="IMAP4",
            unencrypted_or_tls_bindings=["0.0.0.0:143"],
            ssl_bindings=["0.0.0.0:993"],
            proxy_target_port=143,
        ),
    ]
