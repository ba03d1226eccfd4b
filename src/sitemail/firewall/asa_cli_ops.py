"""The console's commands over the box's run-time state: captures, connections, logging.

``capture``, ``no capture``, ``clear capture``, ``show capture``, ``copy /pcap``,
``show conn``, ``clear conn``, ``show logging``, ``clear logging buffer`` and
``clear service-policy``.  Like the rest of the CLI they are sans-I/O: what
must touch the outside (resetting connections, writing the pcap file) comes
back as an effect for the firewall process to carry out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sitemail.firewall.asa_cli_acl import AclWordError, flow_filter_from_path
from sitemail.firewall.asa_cli_grammar import ARG, Matched
from sitemail.firewall.asa_logging import logging_report
from sitemail.firewall.asa_runtime import AsaRuntime
from sitemail.firewall.capture import Capture, capture_list, capture_report
from sitemail.firewall.conn_table import conn_report
from sitemail.firewall.counters import InspectCounters
from sitemail.firewall.pcap import pcap_file

__all__ = [
    "BadOpsWord",
    "ClearConnections",
    "WriteFile",
    "run",
    "show",
    "shows",
]


@dataclass(frozen=True)
class ClearConnections:
    """``clear conn``: reset every connection through the box."""


@dataclass(frozen=True)
class WriteFile:
    """Write ``data`` as ``name`` in the box's flash folder (``disk0:``)."""

    name: str
    data: bytes


class BadOpsWord(ValueError):
    """A free word the ASA refuses; ``index`` is its place in the matched path."""

    def __init__(self, index: int) -> None:
        super().__init__(f"bad word at {index}")
        self.index = index


# [unv] the console's answers to these commands.
def no_capture(name: str) -> str:
    return f"ERROR: Capture <{name}> does not exist\n"


CAPTURE_NEEDS_INTERFACE = "ERROR: Capture interface must be specified\n"
BAD_TARGET = (
    "ERROR: %Error opening the destination: give a file name in the firewall's flash, "
    "as disk0:/NAME.pcap or NAME.pcap\n"
)
_TARGET = re.compile(r"(?:(?:disk0|flash):/?)?([A-Za-z0-9._-]{1,64})")


def shows(found: Matched) -> bool:
    """Is this ``show`` line one of these commands'?"""
    return found.path[1] in ("capture", "conn", "logging")


def show(found: Matched, runtime: AsaRuntime) -> str:
    what = found.path[1]
    if what == "conn":
        return conn_report(runtime.conns, runtime.clock(), detail="detail" in found.path)
    if what == "logging":
        return logging_report(runtime.log)
    if not found.args:
        return capture_list(runtime.captures)
    capture = runtime.captures.get(found.args[0])
    if capture is None:
        return no_capture(found.args[0])
    return capture_report(capture, detail="detail" in found.path, dump="dump" in found.path)


Effect = ClearConnections | WriteFile


def run(
    found: Matched,
    runtime: AsaRuntime,
    counters: Mapping[str, InspectCounters],
) -> tuple[str, list[Effect]]:
    """A privileged-mode command of this module: (what the console prints, effects)."""
    path, args = found.path, found.args
    head = path[0]
    if head == "capture":
        return _capture(found, runtime), []
    if head == "no":  # no capture NAME
        if not runtime.captures.remove(args[0]):
            return no_capture(args[0]), []
        return "", []
    if head == "copy":
        return _copy(found, runtime)
    what = path[1]  # clear ...
    if what == "conn":
        return "", [ClearConnections()]
    if what == "capture":
        capture = runtime.captures.get(args[0])
        if capture is None:
            return no_capture(args[0]), []
        capture.clear()
        return "", []
    if what == "logging":
        runtime.log.clear()
        return "", []
    for figures in counters.values():  # clear service-policy
        figures.clear()
    return "", []


def _capture(found: Matched, runtime: AsaRuntime) -> str:
    path, args = found.path, iter(found.args)
    name = next(args)
    existing = runtime.captures.get(name)
    interface = existing.interface if existing else None
    buffer = existing.buffer if existing else None
    circular = existing.circular if existing else False
    match = existing.match if existing else None
    i = 2
    while i < len(path):
        word = path[i]
        if word == "interface":
            interface = next(args)
            i += 2
        elif word == "buffer":
            value = next(args)
            if not value.isdigit() or not 1534 <= int(value) <= 33554432:
                raise BadOpsWord(i + 1)
            buffer = int(value)
            i += 2
        elif word == "match":
            try:
                match = flow_filter_from_path(found, i + 1)
            except AclWordError as bad:
                raise BadOpsWord(bad.index) from None
            break
        else:  # type raw-data, circular-buffer
            circular = circular or word == "circular-buffer"
            i += 1
    if interface is None:
        return CAPTURE_NEEDS_INTERFACE
    if existing is not None:
        existing.interface, existing.circular, existing.match = interface, circular, match
        if buffer is not None:
            existing.buffer = buffer
        return ""
    capture = Capture(name, interface, match, circular=circular)
    if buffer is not None:
        capture.buffer = buffer
    runtime.captures.put(capture)
    return ""


def _copy(found: Matched, runtime: AsaRuntime) -> tuple[str, list[Effect]]:
    source, target = found.args
    indexes = [i for i, p in enumerate(found.path) if p == ARG]
    if not source.lower().startswith("capture:"):
        raise BadOpsWord(indexes[0])
    capture = runtime.captures.get(source.split(":", 1)[1])
    if capture is None:
        return no_capture(source.split(":", 1)[1]), []
    named = _TARGET.fullmatch(target)
    if named is None or named.group(1) in (".", ".."):
        return BAD_TARGET, []
    count = len(capture.segments)
    # [unv] the ASA's progress marks and summary.
    output = f"{'!' * max(1, count // 10)}\n{count} packets copied in 0.0 secs\n"
    return output, [WriteFile(named.group(1), pcap_file(capture.segments))]
