"""A private Postfix instance: its own configuration, queue and mailboxes in one folder.

Used as the lab's Internet host when a topology says ``internet: {engine:
postfix}`` (:mod:`sitemail.internet.postfix_host`), and by the tests and
benchmarks that need a real MTA at the other end of an SMTP connection.

The instance never touches the system's Postfix: ``postfix -c ROOT/etc``
reads ``main.cf`` and ``master.cf`` from the instance's folder, whose
``queue_directory`` and ``data_directory`` are its own.  Postfix runs as
root here (its daemons drop to the ``postfix`` user), without chroot, and
every service listens on the one loopback address it is given.

Folder layout::

    ROOT/etc/main.cf, master.cf, mailboxes, transport, access, ...
    ROOT/queue/          queue_directory
    ROOT/data/           data_directory (owned by postfix)
    ROOT/mail/<domain>/<user>/   a Maildir per mailbox (virtual(8))
    ROOT/maillog         Postfix's own log (postlogd)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Mailbox files belong to this account (virtual(8) refuses root).
MAILBOX_OWNER = "nobody"
START_TIMEOUT = 20.0


class PostfixError(RuntimeError):
    """Postfix could not be set up, started or asked; the message says which and why."""


@dataclass(frozen=True)
class Route:
    """Where mail for a domain goes: ``smtp:[address]:port`` (no DNS in a lab)."""

    address: str
    port: int = 25


@dataclass(frozen=True)
class PostfixConfig:
    """What an instance is: its name and address, its mailboxes, and where other mail goes.

    ``mailboxes`` are the addresses Postfix delivers itself (their domains are its
    ``virtual_mailbox_domains``); ``routes`` send a domain elsewhere (a transport
    map); mail for any other domain bounces, as for a domain without DNS records.
    ``mynetworks`` may relay without authentication.  ``maps`` are extra lookup
    tables written beside main.cf (``texthash:`` files, referenced as
    ``texthash:${config_directory}/NAME``), ``settings`` extra or changed main.cf
    parameters (``message_size_limit``, ``smtpd_recipient_restrictions``, ...).
    """

    hostname: str
    address: str
    smtp_port: int = 25
    submission_port: int | None = None
    mailboxes: Sequence[str] = ()
    routes: Mapping[str, Route] = field(default_factory=dict)
    mynetworks: Sequence[str] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    maps: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, str] = field(default_factory=dict)

    def domains(self) -> list[str]:
        return sorted({a.rpartition("@")[2].lower() for a in self.mailboxes})


def _main_cf(config: PostfixConfig, root: Path, owner: pwd.struct_passwd) -> str:
    domains = config.domains()
    etc = root / "etc"
    params: dict[str, str] = {
        "compatibility_level": "3.6",
        "queue_directory": str(root / "queue"),
        "data_directory": str(root / "data"),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": config.hostname,
        "mydomain": domains[0] if domains else config.hostname,
        "myorigin": "$mydomain",
        # Nothing is local(8): every mailbox is virtual(8), every other domain is routed.
        "mydestination": "",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        # master.cf binds the one address; Postfix accepts only interface addresses here.
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": " ".join(config.mynetworks) or "127.0.0.1/32",
        # Loopback clients have no reverse DNS, and there is no resolver to ask.
        "smtpd_peername_lookup": "no",
        "smtp_dns_support_level": "disabled",
        # Mail leaves from the instance's own address, as from its own host.
        "smtp_bind_address": config.address,
        "virtual_mailbox_domains": " ".join(domains),
        "virtual_mailbox_base": str(root / "mail"),
        "virtual_mailbox_maps": f"texthash:{etc}/mailboxes",
        "virtual_uid_maps": f"static:{owner.pw_uid}",
        "virtual_gid_maps": f"static:{owner.pw_gid}",
        "virtual_minimum_uid": str(min(owner.pw_uid, 100)),
        "transport_maps": f"texthash:{etc}/transport",
        # A domain with no route does not exist in the lab's world.
        "default_transport": "error:5.4.4 Host or domain name not found",
        "smtpd_relay_restrictions": (
            "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
        ),
        # A lab's next hops come back within seconds; do not wait Postfix's 5 minutes.
        "queue_run_delay": "5s",
        "minimal_backoff_time": "5s",
        "maximal_backoff_time": "60s",
        "smtp_tls_security_level": "may",
        "maillog_file": str(root / "maillog"),
        "maillog_file_prefixes": str(root),
        "biff": "no",
    }
    if config.tls_cert is not None and config.tls_key is not None:
        params.update(
            smtpd_tls_cert_file=str(config.tls_cert),
            smtpd_tls_key_file=str(config.tls_key),
            smtpd_tls_security_level="may",
            smtpd_tls_received_header="yes",
        )
    params.update(config.settings)
    return "".join(f"{key} = {value}\n" for key, value in params.items())


# No chroot (the folder is the instance's own); one smtpd per address and port.
_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _master_cf(config: PostfixConfig) -> str:
    lines = [f"{config.address}:{config.smtp_port} inet n - n - - smtpd\n"]
    if config.submission_port is not None:
        # Submission: STARTTLS first, then only the instance's own network may send.
        lines.append(
            f"{config.address}:{config.submission_port} inet n - n - - smtpd\n"
            "  -o smtpd_tls_security_level=encrypt\n"
            "  -o smtpd_client_restrictions=permit_mynetworks,permit_sasl_authenticated,reject\n"
        )
    return "".join(lines) + _SERVICES


class PostfixInstance:
    """One Postfix in ``root``: write its files, start it, ask it, stop it (by PID)."""

    def __init__(self, folder: Path, config: PostfixConfig) -> None:
        self.folder = Path(folder).absolute()
        self.root = _reachable_root(self.folder)
        self.config = config
        self.etc = self.root / "etc"
        self._launcher: subprocess.Popen[bytes] | None = None
        self.master_pid = 0

    # --- files

    def write(self) -> None:
        """The folder, main.cf, master.cf and the lookup tables (rewritten every time)."""
        owner = pwd.getpwnam(MAILBOX_OWNER)
        postfix = pwd.getpwnam("postfix")
        # Postfix's daemons run as the postfix user and must reach the queue.
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if self.root != self.folder and not self.folder.is_symlink():
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            self.folder.symlink_to(self.root, target_is_directory=True)
        for sub in ("etc", "queue", "data", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chown(self.root / "data", postfix.pw_uid, postfix.pw_gid)
        os.chown(self.root / "mail", owner.pw_uid, owner.pw_gid)
        tables = {
            "mailboxes": "".join(f"{a.lower()} {self._maildir_key(a)}\n" for a in self.mailboxes),
            "transport": "".join(
                f"{domain.lower()} smtp:[{route.address}]:{route.port}\n"
                for domain, route in self.config.routes.items()
            ),
            **self.config.maps,
        }
        for name, text in tables.items():
            (self.etc / name).write_text(text)
        (self.etc / "main.cf").write_text(_main_cf(self.config, self.root, owner))
        (self.etc / "master.cf").write_text(_master_cf(self.config))

    @property
    def mailboxes(self) -> list[str]:
        return sorted({a.lower() for a in self.config.mailboxes})

    @staticmethod
    def _maildir_key(address: str) -> str:
        user, _, domain = address.lower().rpartition("@")
        return f"{domain}/{user}/"  # the trailing slash makes virtual(8) write a Maildir

    def maildir(self, address: str) -> Path:
        return self.root / "mail" / self._maildir_key(address)

    def messages(self, address: str) -> list[bytes]:
        """Every message delivered to ``address`` (its Maildir's new/ and cur/), oldest first."""
        box = self.maildir(address)
        files = [p for sub in ("new", "cur") for p in (box / sub).glob("*") if p.is_file()]
        return [p.read_bytes() for p in sorted(files, key=lambda p: p.stat().st_mtime_ns)]

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            text = (self.root / "maillog").read_text(errors="replace").splitlines()
            return " | ".join(text[-lines:])
        return "(no maillog)"

    # --- the process

    def _postfix(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["postfix", "-c", str(self.etc), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Write the files and start ``postfix start-fg``; return once port 25 says 220.

        A master left running by an earlier process of this folder (killed with -9)
        is stopped first: the queue folder is this instance's own.
        """
        self.write()
        if self._postfix("status").returncode == 0:
            self._postfix("stop")
        # start-fg checks the configuration itself and exits on a fatal error.
        self._launcher = subprocess.Popen(
            ["postfix", "-c", str(self.etc), "start-fg"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self.master_pid = self._wait_master(timeout)
            self._wait_banner(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_master(self, timeout: float) -> int:
        """start-fg runs master under the postfix-script shell: master is its child."""
        assert self._launcher is not None
        pid_file = self.root / "queue" / "pid" / "master.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._launcher.poll() is not None:
                raise PostfixError(
                    f"postfix start-fg exited {self._launcher.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                candidate = int(pid_file.read_text().strip())
                if candidate in _children(self._launcher.pid):
                    return candidate
            time.sleep(0.05)
        raise PostfixError(f"Postfix master did not start in {timeout:.0f} s: {self.log_tail()}")

    def _wait_banner(self, timeout: float) -> None:
        """Until port 25 greets with 220 (smtpd is ready), while master runs."""
        address, port = self.config.address, self.config.smtp_port
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline and self.master_pid in self._launcher_children():
            try:
                with socket.create_connection((address, port), timeout=2) as sock:
                    data = sock.recv(512)
                    if data.startswith(b"220"):
                        sock.sendall(b"QUIT\r\n")
                        return
                    last = data[:60]
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise PostfixError(f"Postfix on {address}:{port} did not greet ({last}): {self.log_tail()}")

    def remove(self) -> None:
        """Delete the instance's files (stopped first), and the link to them if any."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.folder.is_symlink():
            self.folder.unlink()

    @property
    def running(self) -> bool:
        return self._launcher is not None and self._launcher.poll() is None

    def processes(self) -> list[int]:
        """The master and every process it runs (smtpd, cleanup, qmgr, ...)."""
        if not self.master_pid:
            return []
        return [self.master_pid, *_children(self.master_pid)]

    def reload(self) -> None:
        """Rewrite the files and have the running master read them again."""
        self.write()
        done = self._postfix("reload")
        if done.returncode != 0:
            raise PostfixError(f"postfix reload: {done.stderr.strip()[-300:]}")

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM master (it stops its children), then wait for the launcher shell."""
        if self.master_pid and self.master_pid in self._launcher_children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.master_pid, signal.SIGTERM)
        launcher, self._launcher = self._launcher, None
        self.master_pid = 0
        if launcher is None:
            return
        try:
            launcher.wait(grace)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()

    def _launcher_children(self) -> list[int]:
        return _children(self._launcher.pid) if self._launcher is not None else []

    def queue(self) -> list[dict[str, Any]]:
        """The instance's queue as ``postqueue -j`` tells it (one object per message)."""
        done = subprocess.run(
            ["postqueue", "-c", str(self.etc), "-j"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise PostfixError(f"postqueue -j: {done.stderr.strip()[-300:]}")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def flush(self) -> None:
        """Try every deferred message now (``postqueue -f``)."""
        subprocess.run(
            ["postqueue", "-c", str(self.etc), "-f"],
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def postfix_version() -> str | None:
    """``Postfix 3.7.11``, or None when Postfix is not installed."""
    try:
        out = subprocess.run(
            ["postconf", "-h", "mail_version"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    version = out.stdout.strip()
    return f"Postfix {version}" if out.returncode == 0 and version else None


def _children(pid: int) -> list[int]:
    """Live direct children of ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


#: Where an instance lives when its folder is out of reach of Postfix's users.
SPOOL = Path("/var/spool/sitemail-postfix")


def _reachable_root(folder: Path) -> Path:
    """``folder`` if the ``postfix`` and mailbox users can reach it, else a folder of SPOOL.

    Postfix's daemons open the queue as the ``postfix`` user and virtual(8)
    writes Maildirs as MAILBOX_OWNER: a lab under ``/root`` (mode 0700), say,
    is out of their reach, so the instance lives in SPOOL under a name made
    from ``folder``, and ``folder`` becomes a link to it.
    """
    if folder.is_symlink():
        return folder.resolve()
    users = [pwd.getpwnam(name) for name in ("postfix", MAILBOX_OWNER)]
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if all(_traversable(p, u) for p in (parent, *parent.parents) for u in users):
        return folder
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    SPOOL.mkdir(mode=0o755, parents=True, exist_ok=True)
    return SPOOL / f"{folder.parent.name}-{digest}"


def _traversable(path: Path, user: pwd.struct_passwd) -> bool:
    st = path.stat()
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid == user.pw_gid:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)
