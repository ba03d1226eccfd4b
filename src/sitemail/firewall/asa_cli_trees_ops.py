"""What can be typed for the box's run-time state: captures, connections, logging, copy.

Kept apart from :mod:`.asa_cli_trees` (the configuration's commands); the
privileged tree and ``show``/``clear`` take these pieces.
"""

from __future__ import annotations

from sitemail.firewall.asa_cli_grammar import Node, leaf, node, stub, word


def _address(then: Node) -> Node:
    """``any``, ``any4``, ``host A`` or ``A MASK``, then ``then`` (as in an access list)."""
    return node({"any": then, "any4": then, "host": word(then)}, arg=word(then))


def capture_match() -> Node:
    """``match tcp SRC [eq P] DST [eq P]`` or ``match ip SRC DST``: the end of a capture line."""
    tcp_destination = _address(node({"eq": word()}, end=True))
    after_source = node(
        {"eq": word(tcp_destination), **tcp_destination.words}, arg=tcp_destination.arg
    )
    return node({"tcp": _address(after_source), "ip": _address(_address(leaf()))})


def capture() -> Node:
    """``capture NAME [type raw-data] interface IF [buffer N] [circular-buffer] [match ...]``.

    The options may come in any order, as on the ASA; ``match`` ends the line.
    """
    options = Node(end=True)
    options.words.update(
        {
            "type": node({"raw-data": options}),
            "interface": word(options),
            "buffer": word(options),
            "circular-buffer": options,
            "match": capture_match(),
            **{name: stub() for name in ("access-list", "packet-length", "headers-only")},
            **{name: stub() for name in ("real-time", "trace", "ethernet-type")},
        }
    )
    return word(options)


def show_capture() -> Node:
    return node(arg=node({"detail": leaf(), "dump": leaf()}, end=True), end=True)


def show_conn() -> Node:
    return node({"detail": leaf(), "count": stub(), "address": stub(), "all": stub()}, end=True)


def copy() -> Node:
    """``copy [/noconfirm] /pcap capture:NAME TARGET``."""
    pcap = node({"/pcap": word(word())})
    others = ("running-config", "startup-config", "disk0:", "flash:", "tftp:", "ftp:", "system:")
    return node({"/noconfirm": pcap, **pcap.words, **{name: stub() for name in others}})


def clear_words() -> dict[str, Node]:
    """``clear conn|capture NAME|logging buffer|service-policy``."""
    return {
        "conn": node({"all": leaf(), "address": stub()}, end=True),
        "capture": word(),
        "logging": node({"buffer": leaf()}),
        "service-policy": leaf(),
    }


def show_words() -> dict[str, Node]:
    return {"capture": show_capture(), "conn": show_conn(), "logging": leaf()}


def privileged_words() -> dict[str, Node]:
    return {"capture": capture(), "copy": copy(), "no": node({"capture": word()})}
