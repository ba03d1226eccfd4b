"""The Exchange cmdlets of ``sitemail shell``, on the shell language of :mod:`sitemail.shell`.

Configuration cmdlets (Get-/Set-ReceiveConnector, Set-TransportServer, Set-TransportConfig,
Set-OwaVirtualDirectory, New-Mailbox, ...) read and write the directory;
running servers see a change within a second.  Runtime cmdlets (Get-Queue,
Retry-Queue, Get-Message, Get-MessageTrackingLog, Get-Service,
Restart-Service) call the servers' admin HTTPS API with the organization's
admin certificate.  Test-NetConnection, Test-SmtpConnectivity and
Test-Mailflow talk SMTP to the servers from a server's own address.

One module per noun family; :func:`exchange_registry` puts them together and
:func:`sitemail.shell.cmdlets.entry.shell_main` runs the shell on a lab.
"""

from __future__ import annotations

from sitemail.shell import CmdletDefinition, Registry

from . import (
    ad_accounts,
    connectivity,
    exchange_servers,
    mailboxes,
    mailflow,
    messages,
    pop_imap,
    queues,
    receive_connectors,
    secure_strings,
    sites,
    tracking,
    transport_config,
    transport_servers,
    virtual_directories,
    windows_services,
)
from .services import ExchangeServices

EXCHANGE_CMDLETS: tuple[CmdletDefinition[ExchangeServices], ...] = (
    *receive_connectors.DEFINITIONS,
    *transport_servers.DEFINITIONS,
    *transport_config.DEFINITIONS,
    *exchange_servers.DEFINITIONS,
    *sites.DEFINITIONS,
    *mailboxes.DEFINITIONS,
    *virtual_directories.DEFINITIONS,
    *pop_imap.DEFINITIONS,
    *queues.DEFINITIONS,
    *messages.DEFINITIONS,
    *tracking.DEFINITIONS,
    *mailflow.DEFINITIONS,
    *connectivity.DEFINITIONS,
    *windows_services.DEFINITIONS,
    *secure_strings.DEFINITIONS,
    *ad_accounts.DEFINITIONS,
)


def exchange_registry() -> Registry[ExchangeServices]:
    """PowerShell's built-ins and every Exchange cmdlet."""
    registry: Registry[ExchangeServices] = Registry()
    registry.extend(EXCHANGE_CMDLETS)
    return registry


__all__ = ["EXCHANGE_CMDLETS", "ExchangeServices", "exchange_registry"]
