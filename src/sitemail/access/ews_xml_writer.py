"""EWS answers written to bytes in one pass, as ElementTree writes them.

``ElementTree.tostring`` first walks the whole tree for its namespaces, then
writes it through a generic writer: on a FindItem of 20 messages that was a
quarter of a W3SVC worker's time.  :func:`write_xml` writes the same bytes
(the same prefixes, the namespace declarations on the root sorted by prefix,
attributes in their order, ``" />"`` for an empty element, the same escaping)
in one walk, for trees whose namespaces all have a prefix in ``prefixes``.
Anything else (another namespace, a comment, a QName value, a non-text value)
goes to ElementTree itself, so the answer is never different, only faster.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

__all__ = ["write_xml"]


class _Unusual(Exception):
    """A tree this writer leaves to ElementTree."""


def _cdata(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _attribute(text: str) -> str:
    text = _cdata(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def write_xml(root: ET.Element, prefixes: Mapping[str, str]) -> bytes:
    """``ET.tostring(root, encoding="utf-8", xml_declaration=False)``, in one pass."""
    try:
        return _write(root, prefixes)
    except _Unusual:
        written: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
        return written


def _write(root: ET.Element, prefixes: Mapping[str, str]) -> bytes:
    names: dict[str, str] = {}  # "{uri}local" or "local" -> what is written
    used: dict[str, str] = {}  # uri -> prefix, of the namespaces the tree uses
    out: list[str] = [""]  # the root's start tag goes first, once the namespaces are known

    def name(qualified: str) -> str:
        found = names.get(qualified)
        if found is not None:
            return found
        if not isinstance(qualified, str):
            raise _Unusual
        if qualified[:1] == "{":
            uri, _, local = qualified[1:].partition("}")
            prefix = prefixes.get(uri)
            if not prefix:
                raise _Unusual
            used[uri] = prefix
            found = f"{prefix}:{local}"
        else:
            found = qualified
        names[qualified] = found
        return found

    def element(elem: ET.Element, top: bool) -> None:
        tag = elem.tag
        if not isinstance(tag, str):
            raise _Unusual  # a comment or a processing instruction
        start = "<" + name(tag)
        for key, value in elem.attrib.items():
            if not isinstance(value, str):
                raise _Unusual
            start += f' {name(key)}="{_attribute(value)}"'
        text = elem.text
        if top:
            out[0] = start  # the declarations are added in front of the attributes later
            start = ""
        if text is not None and not isinstance(text, str):
            raise _Unusual
        if text or len(elem):
            out.append(start + ">")
            if text:
                out.append(_cdata(text))
            for child in elem:
                element(child, False)
            out.append(f"</{name(tag)}>")
        else:
            out.append(start + " />")
        tail = elem.tail
        if tail:
            if not isinstance(tail, str):
                raise _Unusual
            out.append(_cdata(tail))

    element(root, True)
    head = "<" + name(root.tag)
    declarations = "".join(
        f' xmlns:{prefix}="{_attribute(uri)}"'
        for uri, prefix in sorted(used.items(), key=lambda item: item[1])
    )
    out[0] = head + declarations + out[0][len(head) :]
    return "".join(out).encode("utf-8", "xmlcharrefreplace")
