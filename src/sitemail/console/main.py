"""``sitemail console [--lab-dir DIR] [--listen ADDR:PORT] --admin ALIAS...``.

Serves the web console of a running lab over HTTPS, with a certificate the
lab's organization CA issues for the listening address (``<lab>/pki/console.pem``,
made on the first start, renewed like the servers' ones), and prints the
address.  Runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from aiohttp import web

from sitemail.access.web.connection_guard import ConnectionGuard
from sitemail.org.directory import Directory, DirectoryError, open_directory
from sitemail.org.lab_state import lab_directory_url
from sitemail.org.model import Mailbox, Organization
from sitemail.org.pki import (
    OrganizationPki,
    PkiError,
    ca_cert_file,
    server_ssl_context,
    write_chain_file,
)
from sitemail.server.event_loop import run, stop_signal

from .app import make_app
from .auth import Sessions
from .backend import OrganizationBackend

DEFAULT_LISTEN = "127.0.0.1:9443"
#: Seconds a request's headers (and a TLS handshake) may take: an administrator's browser
#: needs well under one; shorter than IIS's 120 s, as nobody but a few browsers comes here.
HEADER_WAIT = 30.0
#: Connections one address may hold at once: a few browsers' worth.
MAX_PER_ADDRESS = 64
#: The name of the console's certificate in the lab's PKI folder.
CERT_NAME = "console"


class ConsoleStartError(Exception):
    """Why the console cannot start, in one line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        default=DEFAULT_LISTEN,
        help=f"where to serve HTTPS (default {DEFAULT_LISTEN}; loopback unless you mean it)",
    )
    parser.add_argument(
        "--admin",
        action="append",
        metavar="ALIAS",
        required=True,
        help="a mailbox account that may sign in (repeat for several): the organization "
        "administrators (docs/console.md)",
    )


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        address = str(ipaddress.ip_address(host.strip("[]")))
        number = int(port)
    except ValueError:
        number = -1
        address = ""
    if not sep or not address or not 0 < number < 65536:
        raise ConsoleStartError(
            f"--listen {text!r}: expected ADDRESS:PORT with an IP address, e.g. {DEFAULT_LISTEN}"
        )
    return address, number


def check_admins(directory: Directory, admins: Sequence[str]) -> frozenset[str]:
    known = {m.alias.casefold(): m.alias for m in directory.list(Mailbox)}
    missing = [a for a in admins if a.casefold() not in known]
    if missing:
        raise ConsoleStartError(
            f"--admin {', '.join(missing)}: no such mailbox account; expected one of "
            f"{', '.join(sorted(known.values())) or 'none'}"
        )
    return frozenset(a.casefold() for a in admins)


def certificate(lab_dir: Path, directory: Directory, address: str) -> Path:
    """The console's certificate from the organization CA, for ``address``."""
    pki_dir = lab_dir / "pki"
    if not ca_cert_file(pki_dir).exists():
        raise ConsoleStartError(
            f"no organization CA in {pki_dir}; start the lab with `sitemail lab up` first"
        )
    orgs = directory.list(Organization)
    if not orgs:
        raise ConsoleStartError(f"the directory of the lab in {lab_dir} holds no organization")
    pki = OrganizationPki.open_or_create(pki_dir, orgs[0].name)
    fqdn = f"console.{orgs[0].default_domain}"
    pki.ensure_web(CERT_NAME, fqdn, addresses=[address], dns_names=["localhost"])
    return pki_dir


async def serve(
    lab_dir: Path, directory_url: str, host: str, port: int, admins: Sequence[str], out: TextIO
) -> None:
    # Two connections to the directory: the sign-in checks run on the event loop, the
    # backend's cmdlets on its worker thread.
    auth_directory = open_directory(directory_url)
    backend_directory = open_directory(directory_url)
    try:
        allowed = check_admins(auth_directory, admins)
        pki_dir = certificate(lab_dir, auth_directory, host)
        context = server_ssl_context(
            write_chain_file(pki_dir, CERT_NAME, pki_dir / f"{CERT_NAME}-chain.pem")
        )
        app = make_app(
            Sessions(auth_directory, allowed), OrganizationBackend(backend_directory, lab_dir)
        )
        # IIS's guards in front, as the Client Access servers have them: a deadline for a
        # request's headers (slowloris) and a bound on one address's connections.
        guard = ConnectionGuard(header_wait=HEADER_WAIT, max_per_address=MAX_PER_ADDRESS)
        app.middlewares.insert(0, guard.middleware)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            assert runner.server is not None
            listener = await asyncio.get_running_loop().create_server(
                guard.wrap(runner.server),
                host,
                port,
                ssl=context,
                ssl_handshake_timeout=HEADER_WAIT,
                backlog=128,
            )
            shown = f"[{host}]" if ":" in host else host
            out.write(
                f"sitemail console: https://{shown}:{port}/ (lab {lab_dir}; sign in as "
                f"{', '.join(admins)}; the certificate is from {ca_cert_file(pki_dir)})\n"
            )
            out.flush()
            await stop_signal().wait()
            listener.close()
        finally:
            await runner.cleanup()
    finally:
        auth_directory.close()
        backend_directory.close()


def console_main(
    argv: Sequence[str],
    lab_dir: Path,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """What ``sitemail console`` runs; 0 after a clean stop, 1 when it cannot start."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = argparse.ArgumentParser(prog="sitemail console")
    add_arguments(parser)
    parser.add_argument("--lab-dir", "--dir", dest="lab_dir", metavar="DIR", help="the lab folder")
    args = parser.parse_args(list(argv))
    lab_dir = Path(args.lab_dir).resolve() if args.lab_dir else lab_dir.resolve()
    url = lab_directory_url(lab_dir)
    try:
        if url is None:
            raise ConsoleStartError(
                f"no lab in {lab_dir} (no lab.json or directory.db); start one with "
                "`sitemail lab up` or pass --lab-dir"
            )
        host, port = parse_listen(args.listen)
        run(serve(lab_dir, url, host, port, args.admin, out))
    except (ConsoleStartError, DirectoryError, PkiError) as error:
        err.write(f"sitemail console: {error}\n")
        return 1
    except OSError as error:
        err.write(f"sitemail console: cannot listen on {args.listen}: {error.strerror}\n")
        return 1
    return 0


__all__ = ["ConsoleStartError", "add_arguments", "console_main", "parse_listen"]
