"""The servers' admin HTTPS API, as the runtime cmdlets call it.

Every server process answers on ``https://<address>:<port>`` (8443 plus the
lab's port offset: the caller passes the port it computed) and only to the
organization's admin certificate (``<lab>/pki/admin.pem``).  Servers are
reached by address, so the host name is not checked; the chain to the
organization CA still is.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from sitemail.org.pki import PkiError, admin_cert_files, client_ssl_context


class AdminError(Exception):
    """A call that failed; ``message`` is the server's own words when it gave some."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AdminClient:
    def __init__(self, pki_dir: Path, *, timeout: float = 30.0) -> None:
        self.pki_dir = pki_dir
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                context = client_ssl_context(
                    self.pki_dir / "ca.pem", files=admin_cert_files(self.pki_dir)
                )
            except (OSError, ssl.SSLError, PkiError) as error:
                raise AdminError(
                    f"The admin certificate in {self.pki_dir} cannot be loaded ({error}); "
                    "start the lab with `sitemail lab up` to create it."
                ) from None
            context.check_hostname = False  # reached by address; the chain is still checked
            self._context = context
        return self._context

    def get(self, server: str, address: str, port: int, path: str) -> object:
        return self._call(server, address, port, path, None)

    def post(
        self, server: str, address: str, port: int, path: str, body: dict[str, object]
    ) -> object:
        return self._call(server, address, port, path, body)

    def _call(
        self, server: str, address: str, port: int, path: str, body: dict[str, object] | None
    ) -> object:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            f"https://{address}:{port}{path}",
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self._ssl(), timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as error:
            raise AdminError(_error_text(error.read()), error.code) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AdminError(
                f"Server {server} ({address}:{port}) did not answer its admin API ({reason}). "
                "Is it running? `sitemail lab status` shows the lab."
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")


def _error_text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return text
