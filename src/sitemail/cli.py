"""The ``sitemail`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sitemail
from sitemail.org.lab_state import default_lab_dir

if TYPE_CHECKING:
    from rich.console import Console

# rich and the lab supervisor are imported by the commands that use them: `sitemail serve`
# runs every server of a lab, and a hub's receive workers share what it imported
# (transport/receive_worker.py), so what it never uses is memory in every one of them.


def _lab_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else default_lab_dir()


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir",
        metavar="DIR",
        help="the lab folder (default: $SITEMAIL_LAB or ~/.sitemail/lab)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sitemail",
        description="A multi-site Exchange 2010-style mail organization: run it, break it, "
        "diagnose it.",
    )
    parser.add_argument("--version", action="version", version=f"sitemail {sitemail.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lab = sub.add_parser("lab", help="start, inspect and stop a lab organization on this machine")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = lab_sub.add_parser("up", help="start an organization (default: the seed's)")
    up.add_argument("topology", nargs="?", help="topology YAML (default: examples/seed.yaml)")
    up.add_argument(
        "--port-offset",
        type=int,
        default=None,
        help="add this to every listening port (default: 0 as root, else 10000)",
    )
    up.add_argument(
        "--directory",
        metavar="WHERE",
        default=None,
        help="embedded (directory.db, the default), ldap (a slapd the lab runs, on "
        "127.0.0.1:389 plus the port offset) or ldap://HOST:PORT/BASE-DN (an LDAP server "
        "you run; docs/directory.md); default: the topology's directory: key",
    )
    up.add_argument(
        "--only-site",
        action="append",
        metavar="SITE",
        help="start only the servers and firewalls of this site (repeat, or SITE,SITE); "
        "another folder runs the rest against the same LDAP directory (docs/lab.md)",
    )
    up.add_argument("--json", action="store_true", help="print the lab's status as JSON")
    _add_dir(up)
    status = lab_sub.add_parser("status", help="show every process of the lab")
    status.add_argument("--json", action="store_true", help="one JSON object")
    _add_dir(status)
    down = lab_sub.add_parser("down", help="stop every process the lab started")
    _add_dir(down)
    restart = lab_sub.add_parser("restart", help="power-cycle one server or firewall")
    restart.add_argument("name")
    _add_dir(restart)

    # `shell` parses its own arguments (main() hands them over before this parser runs);
    # it is listed here for --help.
    sub.add_parser(
        "shell",
        help="the Exchange Management Shell of the lab (-c CMDLETS, --dir DIR, --help)",
        add_help=False,
    )

    # `console` parses its own arguments too (sitemail.console.main).
    sub.add_parser(
        "console",
        help="the web console of the lab over HTTPS (--admin ALIAS, --listen ADDR:PORT, "
        "--lab-dir DIR, --help)",
        add_help=False,
    )

    # `iis` and `esm` parse their own arguments too (sitemail.iis).
    sub.add_parser(
        "iis",
        help="a server's IIS in appcmd's syntax (SERVER [list|set ...], --dir DIR, --help)",
        add_help=False,
    )
    sub.add_parser(
        "esm",
        help="Exchange System Manager of an Exchange 2003 server (EX2003 [show|set ...])",
        add_help=False,
    )

    asa = sub.add_parser("asa", help="the console of a lab firewall (Cisco ASA CLI)")
    from sitemail.firewall.console_cli import add_arguments as add_asa_arguments

    add_asa_arguments(asa)
    _add_dir(asa)

    from sitemail.diagnose import cli as diagnose_cli

    diagnose_cli.add_probe_arguments(
        sub.add_parser("probe", help="tell whether something on an SMTP path inspects it")
    )
    diagnose_cli.add_troubleshoot_arguments(
        sub.add_parser(
            "troubleshoot", help="find what stops mail: in the lab, or in Exchange log files"
        )
    )
    diagnose_cli.add_routing_arguments(
        sub.add_parser("routing", help="sites, links, hubs and the route from every hub")
    )

    _add_serve_arguments(sub.add_parser("serve", help=SERVE_HELP))
    return parser


SERVE_HELP = "run one server, firewall or Internet host"


def _add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("name")
    serve.add_argument(
        "--directory",
        required=True,
        metavar="URL",
        help="directory.db path, or ldap://HOST:PORT/BASE-DN (docs/directory.md)",
    )
    serve.add_argument("--lab-dir", default=None, help="the organization's folder")


def _serve(argv: list[str]) -> int:
    """`sitemail serve`: every process of a lab starts here, so it builds its own parser
    only, without importing the other commands' modules (the ASA console's, the
    troubleshooter's) that the whole parser needs."""
    serve = argparse.ArgumentParser(prog="sitemail serve", description=SERVE_HELP)
    _add_serve_arguments(serve)
    args = serve.parse_args(argv)
    from sitemail.serve import run

    return run(args.name, args.directory, args.lab_dir)


_ROLE_SHORT = {"Mailbox": "MB", "ClientAccess": "CAS", "HubTransport": "HT"}


def _ports(endpoints: dict[str, Any]) -> str:
    """A compact summary of what a server listens on: 'SMTP 25,587 HTTPS 443 ...'."""
    smtp: set[str] = set()
    parts: list[str] = []
    for key, val in endpoints.items():
        if key.startswith("smtp"):
            vals = val if isinstance(val, list) else [val]
            smtp.update(v.rsplit(":", 1)[1] for v in vals)
    if smtp:
        parts.append("SMTP " + ",".join(sorted(smtp, key=int)))
    for key, label in (("https", "HTTPS"), ("pop3", "POP3"), ("imap4", "IMAP4")):
        val = endpoints.get(key)
        if val:
            vals = val if isinstance(val, list) else [val]
            parts.append(label + " " + ",".join(v.rsplit(":", 1)[1] for v in vals))
    return "  ".join(parts)


def _print_status(status: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    slapd = status.get("directory_server")
    if not status["servers"] and not status["firewalls"] and not slapd:
        console.print(f"No lab in {status['lab']}. Start one with [bold]sitemail lab up[/].")
        return
    table = Table(title=f"sitemail lab in {status['lab']}", title_justify="left")
    for col in ("Name", "Site", "Kind", "State", "PID", "Address", "Listens on"):
        table.add_column(col, no_wrap=col in ("Name", "Address", "PID"))
    for s in status["servers"]:
        if s.get("version"):
            roles = ",".join(_ROLE_SHORT.get(r, r) for r in s.get("roles") or [])
            kind = f"Exchange {s['version']} {roles}"
        elif s["kind"] == "internet":
            kind = "Internet mail host" + (" (Postfix)" if s.get("engine") == "postfix" else "")
        else:
            kind = "Exchange (directory not read)"
        table.add_row(
            s["name"],
            s["site"],
            kind,
            _state(s["state"]),
            str(s["pid"] or "-"),
            s["address"],
            _ports(s.get("endpoints", {})),
        )
    for f in status["firewalls"]:
        table.add_row(
            f["name"],
            f["site"],
            "Cisco ASA (emulated)",
            _state(f["state"]),
            str(f["pid"] or "-"),
            f["address"],
            f"console: sitemail asa {f['name']}; SSH {f['endpoints']['ssh'].rsplit(':', 1)[1]}",
        )
    if slapd:
        table.add_row(
            slapd["name"],
            "-",
            "OpenLDAP directory",
            _state(slapd["state"]),
            str(slapd["pid"] or "-"),
            slapd["address"],
            "LDAP " + slapd["endpoints"]["ldap"].rsplit(":", 1)[1],
        )
    console.print(table)
    if status.get("directory_backend") == "ldap":
        console.print(f"Directory: {status['directory']}")
    if status.get("directory_error"):
        console.print(f"[yellow]The directory cannot be read: {status['directory_error']}[/]")
    if status["paths"]:
        console.print("Between sites, through the firewalls (as from a host in the site):")
        for site, targets in sorted(status["paths"].items()):
            for server, p in sorted(targets.items()):
                console.print(f"  {site:>8} -> {server:<9} nc -s {p['source']} {p['address']} 25")
    if status["users"]:
        console.print(
            "Users: "
            + ", ".join(f"{u['address']} ({u['site']}/{u['server']})" for u in status["users"])
        )
    if status.get("port_offset"):
        console.print(f"Ports are shifted by +{status['port_offset']} (not root).")


def _state(state: str) -> str:
    color = {"running": "green", "stopped": "red"}.get(state, "yellow")
    return f"[{color}]{state}[/]"


def _lab(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sitemail.lab.supervisor import Lab, default_topology

    lab = Lab(_lab_dir(args))
    out = Console()
    # Messages go out unwrapped and as written: they hold paths and URLs to copy.
    err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    if args.lab_command == "up":
        topology = Path(args.topology) if args.topology else default_topology()
        code = lab.up(
            topology,
            port_offset=args.port_offset,
            directory=args.directory,
            only_sites=args.only_site,
            say=err.print,
        )
        if code == 0:
            status = lab.status()
            if args.json:
                print(json.dumps(status, indent=2))
            else:
                _print_status(status, out)
                seconds = getattr(lab, "last_up_seconds", None)
                if seconds is not None:
                    out.print(
                        f"Lab up in {seconds:.1f} s. Stop it with [bold]sitemail lab down[/]."
                    )
        return code
    if args.lab_command == "status":
        status = lab.status()
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(status, out)
        # 0 only when every process of the lab runs and answers (scripts and monitors
        # test this); a lab with a process down, or no lab, is 1.
        processes = [*status["servers"], *status["firewalls"]]
        if status.get("directory_server"):
            processes.append(status["directory_server"])
        return 0 if processes and all(p["state"] == "running" for p in processes) else 1
    if args.lab_command == "down":
        stopped = lab.down()
        if stopped:
            out.print(f"Stopped {len(stopped)} processes: {', '.join(stopped)}")
        else:
            out.print(f"Nothing was running in {lab.dir}.")
        return 0
    if args.lab_command == "restart":
        problem = lab.restart(args.name)
        if problem:
            err.print(f"sitemail lab restart: {problem}")
            return 1
        out.print(f"{args.name} restarted.")
        return 0
    raise AssertionError(args.lab_command)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # A report piped into `head` ends quietly, as Unix tools do.  (SIGPIPE itself stays
        # ignored: the commands talk to sockets whose peer may close first.)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["shell"]:
        from sitemail.shell.cmdlets.entry import shell_main

        return shell_main(args_list[1:], default_lab_dir())
    if args_list[:1] == ["console"]:
        from sitemail.console.main import console_main

        return console_main(args_list[1:], default_lab_dir())
    if args_list[:1] == ["iis"]:
        from sitemail.iis.console_cli import iis_main

        return iis_main(args_list[1:], default_lab_dir())
    if args_list[:1] == ["esm"]:
        from sitemail.iis.esm import esm_main

        return esm_main(args_list[1:], default_lab_dir())
    if args_list[:1] == ["serve"]:
        return _serve(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "lab":
        return _lab(args)
    if args.command == "asa":
        from sitemail.firewall.console_cli import main as asa_main

        return asa_main(args.name, args.commands, _lab_dir(args))
    if args.command in ("probe", "troubleshoot", "routing"):
        from sitemail.diagnose import cli as diagnose_cli

        runner = {
            "probe": diagnose_cli.run_probe,
            "troubleshoot": diagnose_cli.run_troubleshoot,
            "routing": diagnose_cli.run_routing,
        }[args.command]
        return runner(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
