"""Lab host names for requests-based clients (exchangelib), and a pytest plugin that installs them.

Not a benchmark: it declares no ``BENCHMARK`` (the harness's ``_NOT_BENCHMARKS`` names it).

A lab has no DNS: ``mail.contoso.com`` is EX-NY1's loopback address only in
the lab's topology.  requests resolves names itself, so
:class:`LabNamesAdapter` (exchangelib's ``BaseProtocol.HTTP_ADAPTER_CLS``)
dials the mapped address for a lab name and keeps the name for SNI, the
certificate check and the Host header, as the lab's DNS would.  The unit
tests (``tests/unit/access/test_ews_exchangelib.py``), the lab tests and
``scripts/exchangelib-suite`` share it.

As a pytest plugin (``-p bench.lab_names``), it reads the names from
``SITEMAIL_LAB_NAMES`` (a JSON object: host name -> address) and installs
the adapter in exchangelib before any test runs; trusting the lab CA is left
to ``REQUESTS_CA_BUNDLE``, which requests lets override ``verify=``.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import requests
import urllib3.util.connection
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = [
    "NAMES_VARIABLE",
    "LabNamesAdapter",
    "MappedConnection",
    "install",
    "install_dns",
    "lab_dns_check",
    "pytest_configure",
]

#: The environment variable the plugin reads the name map from.
NAMES_VARIABLE = "SITEMAIL_LAB_NAMES"


def _dial(connection: HTTPConnection) -> Any:
    """Dial the mapped address; the name stays for SNI, the certificate check and Host.

    Any name the map lacks is a bug of the caller (KeyError): never leave loopback.  An
    "address:port" value also maps the port (in-process servers on ephemeral ports, reached
    by URLs that name none, as Autodiscover's answers do).
    """
    address, _, port = MappedConnection.names[connection._dns_host].partition(":")
    return urllib3.util.connection.create_connection(
        (address, int(port) if port else connection.port),
        connection.timeout,
        source_address=connection.source_address,
        socket_options=connection.socket_options,
    )


class MappedConnection(HTTPSConnection):
    names: ClassVar[dict[str, str]] = {}

    def _new_conn(self) -> Any:
        return _dial(self)


class _MappedPool(HTTPSConnectionPool):
    ConnectionCls = MappedConnection


class MappedPlainConnection(HTTPConnection):
    """Plain HTTP to a lab name (Autodiscover's unauthenticated step 3 asks http://)."""

    def _new_conn(self) -> Any:
        return _dial(self)


class _MappedPlainPool(HTTPConnectionPool):
    ConnectionCls = MappedPlainConnection


class LabNamesAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter that dials lab addresses for lab host names, as the lab's DNS would."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"https": _MappedPool, "http": _MappedPlainPool}


def install(names: dict[str, str]) -> None:
    """Make every exchangelib client of this process reach the lab by its host names."""
    from exchangelib.protocol import BaseProtocol

    MappedConnection.names = {k.lower(): v for k, v in names.items()}
    BaseProtocol.HTTP_ADAPTER_CLS = LabNamesAdapter
    install_dns()


def lab_dns_check(self: Any, url: str) -> None:
    """exchangelib's Autodiscover asks DNS for each candidate host before it posts; the lab's
    DNS knows the lab's names and nothing else (a name it lacks is skipped, as one DNS lacks)."""
    del self
    from urllib.parse import urlparse

    from exchangelib.errors import TransportError

    host = (urlparse(url).hostname or "").lower()
    if host not in MappedConnection.names:
        raise TransportError(f"{host!r} has no DNS entry")


def install_dns() -> None:
    from exchangelib.autodiscover.discovery import Autodiscovery

    Autodiscovery._ensure_valid_hostname = lab_dns_check  # type: ignore[method-assign]


def pytest_configure(config: Any) -> None:
    """The plugin's hook: install the names of ``SITEMAIL_LAB_NAMES`` (nothing when unset)."""
    del config
    text = os.environ.get(NAMES_VARIABLE)
    if not text:
        return
    names = json.loads(text)
    if not isinstance(names, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in names.items()
    ):
        raise ValueError(f"{NAMES_VARIABLE} must be a JSON object of host name -> address")
    install(names)
