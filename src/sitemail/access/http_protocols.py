"""Plugging Exchange Web Services, ActiveSync and Autodiscover into a 2010 (or 2007) CAS's W3SVC.

The W3SVC service builds its front door when it starts (and again after a
restart), so each handler asks the service for the current front door and
its store client at request time.
"""

from __future__ import annotations

import hashlib

from sitemail.access.autodiscover_handler import AutodiscoverHandler
from sitemail.access.eas_handler import EasHandler
from sitemail.access.eas_legacy import Exchange2003ActiveSyncProxy
from sitemail.access.eas_state import SyncStates
from sitemail.access.ews_handler import EwsHandler
from sitemail.access.ews_subscriptions import Subscriptions
from sitemail.access.owa_availability import OwaAvailability
from sitemail.access.web.front import FrontDoor
from sitemail.access.web.service import W3svcService
from sitemail.mailbox.store_client import StoreClient
from sitemail.org.model import VirtualDirectoryKind
from sitemail.org.pki.files import server_cert_files
from sitemail.server.context import ProcessContext

__all__ = ["register_http_protocols"]


def register_http_protocols(service: W3svcService) -> None:
    """Serve /EWS, /Microsoft-Server-ActiveSync and /Autodiscover on ``service``'s web site."""

    def door() -> FrontDoor | None:
        return service.front

    def store() -> StoreClient | None:
        front = service.front
        # The front door's store is the W3SVC's StoreClient (the mailbox servers of its site).
        found = front.owa.store if front is not None else None
        return found if isinstance(found, StoreClient) else None

    ctx = service.ctx
    legacy = Exchange2003ActiveSyncProxy(address_of=ctx.address_of, port=ctx.port)
    shared = service.shared
    # EWS subscriptions live in a file the W3SVC's workers share, as ActiveSync's states do.
    subscriptions = Subscriptions(
        path=shared.folder / "ews-subscriptions.db" if shared is not None else None
    )
    service.register(
        VirtualDirectoryKind.EWS,
        EwsHandler(door, store, state_key=_state_key(ctx), subscriptions=subscriptions),
    )
    # A W3SVC worker shares the devices' sync states with its siblings.
    states = SyncStates(path=shared.sync_states_file) if shared is not None else None
    service.register(VirtualDirectoryKind.EAS, EasHandler(door, store, legacy, states=states))
    service.register(VirtualDirectoryKind.AUTODISCOVER, AutodiscoverHandler(door, clock=ctx.clock))
    # OWA's Scheduling Assistant reads free/busy through the same availability service.
    service.availability = OwaAvailability(door, store)


def _state_key(ctx: ProcessContext) -> bytes | None:
    """The key that seals this server's EWS SyncStates: derived from its private key, so that a
    state outlives a restart and every worker process agrees; ``None`` (a key of the process)
    when the server has no key yet."""
    try:
        secret = server_cert_files(ctx.pki_dir, ctx.name).key.read_bytes()
    except OSError:
        return None
    return hashlib.sha256(b"sitemail EWS SyncState\n" + secret).digest()
