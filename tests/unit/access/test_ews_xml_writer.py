"""EWS answers written in one pass are byte for byte what ElementTree writes."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

from sitemail.access.ews_soap import MESSAGES_NS, SOAP_NS, TYPES_NS
from sitemail.access.ews_xml_writer import write_xml

PREFIXES = {SOAP_NS: "s", TYPES_NS: "t", MESSAGES_NS: "m"}
TEXTS = ["", "plain", 'a<b & "c" >d', "line\r\nnext\ttab", "Ünïcode ✓", "\u2028", "x" * 300]


def _tree(rng: random.Random, depth: int = 0) -> ET.Element:
    namespace = rng.choice([SOAP_NS, TYPES_NS, MESSAGES_NS, None])
    local = rng.choice(["Item", "Subject", "ItemId", "Body"])
    element = ET.Element(f"{{{namespace}}}{local}" if namespace else local)
    for n in range(rng.randint(0, 3)):
        element.set(rng.choice([f"Attr{n}", f"{{{TYPES_NS}}}Kind{n}"]), rng.choice(TEXTS))
    if rng.random() < 0.5:
        element.text = rng.choice(TEXTS)
    if depth < 4:
        for _ in range(rng.randint(0, 3)):
            child = _tree(rng, depth + 1)
            if rng.random() < 0.2:
                child.tail = rng.choice(TEXTS)
            element.append(child)
    return element


def test_random_trees_are_written_as_elementtree_writes_them() -> None:
    rng = random.Random(21)
    for _ in range(2000):
        root = _tree(rng)
        assert write_xml(root, PREFIXES) == ET.tostring(
            root, encoding="utf-8", xml_declaration=False
        )


def test_what_it_does_not_know_goes_to_elementtree() -> None:
    root = ET.Element(f"{{{SOAP_NS}}}Envelope")
    ET.SubElement(root, "{urn:other}Thing").text = "x"  # a namespace without a prefix here
    root.append(ET.Comment("a comment"))
    written = write_xml(root, PREFIXES)
    assert written == ET.tostring(root, encoding="utf-8", xml_declaration=False)
    assert b"a comment" in written and b"urn:other" in written
