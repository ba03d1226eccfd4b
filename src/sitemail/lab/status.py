"""``sitemail lab status``: what a lab folder supervises, and what the directory says of it.

The processes come from the folder's ``lab.json``; addresses, endpoints, paths
and users from the directory.  When the directory cannot be read (the lab's
slapd is stopped, an LDAP server is away) the processes are still shown, with
the reason the rest is missing.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

from sitemail.lab.slapd import SLAPD_PORT
from sitemail.org.directory import Directory, DirectoryError, open_directory
from sitemail.org.lab_state import LabState, ProcessRecord, is_ours
from sitemail.org.model import (
    ExchangeVersion,
    InternetHost,
    Mailbox,
    MailboxDatabase,
    NetworkPath,
    PopImapSettings,
    ReceiveConnector,
    Server,
    ServerRole,
    VirtualDirectory,
)
from sitemail.org.pki import admin_cert_files, client_ssl_context
from sitemail.org.ports import ADMIN_PORT, SSH_PORT, STORE_PORT
from sitemail.org.topology import Topology, TopologyError
from sitemail.server.console import ConsoleClient, ConsoleError


def admin_context(lab_dir: Path) -> ssl.SSLContext:
    """The lab admin's TLS client context for health checks: build it once for a round of
    probes (loading the key and the chain costs more than a check itself)."""
    pki = lab_dir / "pki"
    ctx = client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))
    ctx.check_hostname = False  # reached by address; the chain is still checked
    return ctx


def probe(
    rec: ProcessRecord,
    lab_dir: Path,
    port_offset: int,
    timeout: float = 2.0,
    context: ssl.SSLContext | None = None,
) -> bool:
    """Does the process answer its health check (on its admin port, shifted by the lab)?

    ``context``: :func:`admin_context`, for a caller that probes many times.
    """
    try:
        if rec.kind == "directory":
            # slapd listens once its database is open: then it answers.
            with socket.create_connection((rec.address, SLAPD_PORT + port_offset), timeout):
                return True
        if rec.kind == "server":
            conn = http.client.HTTPSConnection(
                rec.address,
                ADMIN_PORT + port_offset,
                timeout=timeout,
                context=context or admin_context(lab_dir),
            )
            try:
                conn.request("GET", "/health")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        with ConsoleClient(Path(rec.home) / "console.sock", timeout=timeout) as console:
            return console.call("health").get("status") == "ok"
    except (OSError, ConsoleError, ssl.SSLError, ValueError, http.client.HTTPException):
        return False


def no_lab(lab_dir: Path) -> dict[str, Any]:
    return {
        "lab": str(lab_dir),
        "running": False,
        "servers": [],
        "firewalls": [],
        "directory_server": None,
        "paths": {},
        "users": [],
    }


def lab_status(lab_dir: Path, st: LabState) -> dict[str, Any]:
    """The status of the lab in ``lab_dir`` (``st``: its lab.json)."""
    url = st.directory_url()
    if not st.directory and not Path(url).exists():
        return no_lab(lab_dir)
    out = _processes(lab_dir, st)
    out.update(
        {
            "topology": st.topology,
            "port_offset": st.port_offset,
            "directory": url,
            "directory_backend": "ldap" if st.directory else "embedded",
            "paths": {},
            "users": [],
        }
    )
    # Each failed attempt is logged as a warning for a server's log; here the one line of
    # directory_error says it all.
    quiet = logging.getLogger("sitemail.directory")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        directory = open_directory(url)
    except DirectoryError as exc:
        out["directory_error"] = str(exc)
        return out
    finally:
        quiet.setLevel(level)
    try:
        _add_directory_facts(out, lab_dir, st, directory)
    finally:
        directory.close()
    return out


def _processes(lab_dir: Path, st: LabState) -> dict[str, Any]:
    servers: list[dict[str, Any]] = []
    firewalls: list[dict[str, Any]] = []
    directory_server: dict[str, Any] | None = None
    any_running = False
    context: ssl.SSLContext | None = None
    for rec in st.processes:
        alive = is_ours(rec, lab_dir)
        state = "stopped"
        if alive:
            if rec.kind == "server" and context is None:
                context = admin_context(lab_dir)
            answers = probe(rec, lab_dir, st.port_offset, context=context)
            state = "running" if answers else "unresponsive"
            any_running = True
        entry: dict[str, Any] = {
            "name": rec.name,
            "site": rec.site,
            "kind": rec.kind,
            "state": state,
            "pid": rec.pid if alive else None,
            "address": rec.address,
            "folder": rec.home,
        }
        if rec.kind == "firewall":
            entry["endpoints"] = {"ssh": f"{rec.address}:{SSH_PORT + st.port_offset}"}
            firewalls.append(entry)
        elif rec.kind == "directory":
            entry["endpoints"] = {"ldap": f"{rec.address}:{SLAPD_PORT + st.port_offset}"}
            directory_server = entry
        else:
            servers.append(entry)
    return {
        "lab": str(lab_dir),
        "running": any_running,
        "servers": servers,
        "firewalls": firewalls,
        "directory_server": directory_server,
    }


def _add_directory_facts(
    out: dict[str, Any], lab_dir: Path, st: LabState, directory: Directory
) -> None:
    try:
        topo: Topology | None = Topology.load(st.topology)
    except TopologyError:
        topo = None
    passwords = {u.alias.lower(): u.password for u in topo.spec.users} if topo else {}
    internet = topo.spec.internet if topo else None
    inet_passwords = {u.address.lower(): u.password for u in internet.users} if internet else {}
    records = {r.name: r for r in st.processes}
    for entry in out["servers"]:
        entry.update(_server_details(records[entry["name"]], directory, st.port_offset))
    paths: dict[str, dict[str, dict[str, str]]] = {}
    for p in directory.list(NetworkPath):
        paths.setdefault(p.from_site, {})[p.server] = {"address": p.address, "source": p.source}
    users: list[dict[str, Any]] = []
    dbs = {d.name.lower(): d for d in directory.list(MailboxDatabase)}
    servers = {s.name.lower(): s for s in directory.list(Server)}
    for mbx in directory.list(Mailbox):
        db = dbs.get(mbx.database.lower())
        srv = servers.get(db.server.lower()) if db else None
        users.append(
            {
                "name": mbx.alias,
                "address": mbx.primary_smtp_address,
                "site": srv.site if srv else None,
                "server": srv.name if srv else None,
                "version": srv.version.product if srv else None,
                "password": passwords.get(mbx.alias.lower()),
            }
        )
    for host in directory.list(InternetHost):
        for addr, pw in inet_passwords.items():
            users.append(
                {
                    "name": addr.split("@")[0],
                    "address": addr,
                    "site": host.site,
                    "server": host.name,
                    "version": None,
                    "password": pw,
                }
            )
    out["paths"] = paths
    out["users"] = users


def _server_details(rec: ProcessRecord, directory: Directory, offset: int) -> dict[str, Any]:
    home = Path(rec.home)
    if rec.kind == "internet":
        host = directory.get(InternetHost, rec.name)
        return {
            "roles": ["Internet mail host"],
            "version": None,
            "engine": host.engine if host else None,
            "fqdn": host.fqdn if host else None,
            "domains": host.domains if host else [],
            "endpoints": {
                "smtp": [f"{rec.address}:{25 + offset}", f"{rec.address}:{587 + offset}"]
            },
        }
    server = directory.require(Server, rec.name)
    endpoints: dict[str, Any] = {"admin": f"https://{rec.address}:{ADMIN_PORT + offset}"}
    if ServerRole.MAILBOX in server.roles:
        endpoints["store"] = f"https://{rec.address}:{STORE_PORT + offset}"
    if server.is_hub:
        for rc in directory.list(ReceiveConnector):
            if rc.server.lower() == server.name.lower():
                ports = sorted({p for _, p in rc.ports})
                endpoints[f"smtp ({rc.name})"] = [f"{rec.address}:{p + offset}" for p in ports]
    if server.version is ExchangeVersion.E2003:
        endpoints["smtp (Default SMTP Virtual Server)"] = [f"{rec.address}:{25 + offset}"]
    if ServerRole.CLIENT_ACCESS in server.roles and server.version is not ExchangeVersion.E2003:
        endpoints["https"] = f"{rec.address}:{443 + offset}"
        urls = {}
        for v in directory.list(VirtualDirectory):
            if v.server.lower() == server.name.lower():
                urls[v.type.value] = {"internal": v.internal_url, "external": v.external_url}
        endpoints["urls"] = urls
        for s in directory.list(PopImapSettings):
            if s.server.lower() == server.name.lower():
                key = s.protocol.lower()
                bindings = s.unencrypted_or_tls_bindings + s.ssl_bindings
                endpoints[key] = [
                    f"{rec.address}:{int(b.rsplit(':', 1)[1]) + offset}" for b in bindings
                ]
    return {
        "roles": [r.value for r in server.roles],
        "version": server.version.product,
        "fqdn": server.fqdn,
        "endpoints": endpoints,
        "logs": {
            "SmtpReceive": str(home / (server.transport.receive_protocol_log_path or "")),
            "SmtpSend": str(home / (server.transport.send_protocol_log_path or "")),
            "MessageTracking": str(home / (server.transport.message_tracking_log_path or "")),
        },
    }
