"""The Windows services of an Exchange server, as a process hosts them.

Each role contributes services (Exchange 2010 names: MSExchangeTransport for
the Hub, MSExchangeIS for the Mailbox role, W3SVC, MSExchangePOP3 and
MSExchangeIMAP4 for Client Access).  ``Restart-Service`` and the admin API
stop and start one of them without touching the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ServiceStatus(StrEnum):
    STOPPED = "Stopped"
    START_PENDING = "StartPending"
    RUNNING = "Running"
    STOP_PENDING = "StopPending"


class Service(Protocol):
    name: str
    display_name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class IdleService:
    """A service of a role whose behaviour lands later: it runs, it stops, it does nothing."""

    name: str
    display_name: str

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


#: Get-Service's DisplayName for each service sitemail hosts.
DISPLAY_NAMES = {
    "MSExchangeADTopology": "Microsoft Exchange Active Directory Topology",
    "MSExchangeTransport": "Microsoft Exchange Transport",
    "MSExchangeIS": "Microsoft Exchange Information Store",
    "MSExchangeMailSubmission": "Microsoft Exchange Mail Submission",
    "W3SVC": "World Wide Web Publishing Service",
    "MSExchangePOP3": "Microsoft Exchange POP3",
    "MSExchangeIMAP4": "Microsoft Exchange IMAP4",
    "SMTPSVC": "Simple Mail Transfer Protocol (SMTP)",
    "MSExchangeSA": "Microsoft Exchange System Attendant",
}


class ServiceError(Exception):
    pass


class ServiceHost:
    """Starts, stops and restarts the services of one server process, one at a time."""

    def __init__(self) -> None:
        self._services: dict[str, Service] = {}
        self._status: dict[str, ServiceStatus] = {}
        self._lock = asyncio.Lock()

    def add(self, service: Service) -> None:
        key = service.name.lower()
        if key in self._services:
            raise ServiceError(f"service {service.name} is already hosted")
        self._services[key] = service
        self._status[key] = ServiceStatus.STOPPED

    def get(self, name: str) -> Service:
        try:
            return self._services[name.lower()]
        except KeyError:
            known = ", ".join(s.name for s in self._services.values())
            raise ServiceError(
                f"Cannot find any service with service name '{name}'. Services here: {known}"
            ) from None

    def status(self) -> list[tuple[Service, ServiceStatus]]:
        return [(s, self._status[k]) for k, s in self._services.items()]

    async def start_all(self) -> None:
        for key in list(self._services):
            await self._start(key)

    async def stop_all(self) -> None:
        for key in reversed(list(self._services)):
            await self._stop(key)

    async def restart(self, name: str) -> None:
        service = self.get(name)
        async with self._lock:
            await self._stop(service.name.lower())
            await self._start(service.name.lower())

    async def _start(self, key: str) -> None:
        if self._status[key] is ServiceStatus.RUNNING:
            return
        self._status[key] = ServiceStatus.START_PENDING
        try:
            await self._services[key].start()
        except BaseException:
            self._status[key] = ServiceStatus.STOPPED
            raise
        self._status[key] = ServiceStatus.RUNNING

    async def _stop(self, key: str) -> None:
        if self._status[key] is ServiceStatus.STOPPED:
            return
        self._status[key] = ServiceStatus.STOP_PENDING
        try:
            await self._services[key].stop()
        finally:
            self._status[key] = ServiceStatus.STOPPED
