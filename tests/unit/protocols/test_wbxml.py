"""The ActiveSync WBXML codec: known bytes from MS-ASWBXML, round trips, refusals."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.protocols.wbxml import (
    _PAGES,
    HEADER,
    MAX_DEPTH,
    Element,
    WbxmlError,
    decode,
    el,
    encode,
)

# The initial FolderSync request every device sends (SyncKey 0), byte for byte.
FOLDERSYNC_0 = bytes.fromhex("03016a00000756520330000101")


def test_initial_foldersync_request_bytes() -> None:
    tree = el("FolderHierarchy:FolderSync", el("FolderHierarchy:SyncKey", "0"))
    assert encode(tree) == FOLDERSYNC_0
    assert decode(FOLDERSYNC_0) == tree
    assert decode(FOLDERSYNC_0).findtext("SyncKey") == "0"


def test_pages_switch_only_when_the_namespace_changes() -> None:
    tree = el(
        "AirSync:Sync",
        el(
            "AirSync:ApplicationData",
            el("Email:Subject", "Hi"),
            el("Email:Read", "1"),
            el("AirSyncBase:Body", el("AirSyncBase:Type", "1")),
        ),
    )
    data = encode(tree)
    body = data[len(HEADER) :]
    # Sync, ApplicationData; switch to Email (2); Subject "Hi"; Read "1"; switch to
    # AirSyncBase (17); Body; Type "1"; END x3 ... no switch back for the ENDs.
    assert body == bytes.fromhex("455d0002540348690001550331000100114a4603310001010101")
    assert decode(data) == tree


def test_opaque_data_and_empty_elements() -> None:
    tree = el(
        "AirSync:Sync",
        el("AirSync:GetChanges"),
        el("Email:MIMEData", b"\x00\x01" * 100),
    )
    data = encode(tree)
    assert b"\xc3\x81\x48" in data  # OPAQUE, length 200 as a multi-byte integer
    assert decode(data) == tree


def test_reading_helpers() -> None:
    tree = el(
        "AirSync:Sync",
        el(
            "AirSync:Collections",
            el("AirSync:Collection", el("AirSync:CollectionId", "1")),
            el("AirSync:Collection", el("AirSync:CollectionId", "2")),
        ),
    )
    ids = [c.findtext("CollectionId") for c in tree.findall("Collections/Collection")]
    assert ids == ["1", "2"]
    assert tree.find("Collections/Nope") is None
    assert tree.findtext("Collections/Collection/AirSync:CollectionId") == "1"
    assert tree.findtext("Collections/Collection/Email:CollectionId") is None
    assert el("AirSync:Limit", 5, None).text() == "5"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "ends inside the header"),
        (bytes.fromhex("04016a00") + b"\x45\x01", "version"),
        (bytes.fromhex("0301040000") + b"\x45\x01", "charset"),
        (HEADER, "no root element"),
        (HEADER + b"\x45", "still open"),
        (HEADER + b"\x01", "END without"),
        (HEADER + b"\x45\x01\x45\x01", "after the end of the root"),
        (HEADER + b"\x45\x03abc", "not terminated"),
        (HEADER + b"\x45\x03\xff\x00\x01", "not UTF-8"),
        (HEADER + b"\x45\xc3\x05ab\x01", "claims 5 bytes"),
        (HEADER + b"\x45\xc3\xff\xff\xff\xff\xff\x01", "multi-byte"),
        (HEADER + b"\x00\x03\x45\x01", "code page 3"),
        (HEADER + b"\x7f\x01", "token 0x3F is not known in code page AirSync"),
        (HEADER + b"\xc5\x01", "attributes"),
        (HEADER + b"\x45\x02\x01", "not used by ActiveSync"),
        (HEADER + b"\x03x\x00", "outside an element"),
    ],
)
def test_malformed_documents_are_refused_with_a_reason(data: bytes, words: str) -> None:
    with pytest.raises(WbxmlError, match=words):
        decode(data)


def test_nesting_is_bounded() -> None:
    deep = HEADER + b"\x45" * (MAX_DEPTH + 1)
    with pytest.raises(WbxmlError, match="nested deeper"):
        decode(deep)


def test_trees_that_cannot_be_written() -> None:
    with pytest.raises(WbxmlError, match="no ActiveSync token for Email:Nope"):
        encode(el("Email:Nope"))
    with pytest.raises(WbxmlError, match="NUL"):
        encode(el("Email:Subject", "a\x00b"))
    with pytest.raises(WbxmlError, match="namespace"):
        el("Subject")


# ---------------------------------------------------------------- properties

_NAMES = [(ns, tag) for ns, tags in _PAGES.values() for tag in tags.values()]
_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


def _trees() -> st.SearchStrategy[Element]:
    leaf_name = st.sampled_from(_NAMES)
    leaves = st.builds(
        lambda name, kids: Element(name[0], name[1], tuple(kids)),
        leaf_name,
        st.lists(st.one_of(_text, st.binary(max_size=300)), max_size=3),
    )
    return st.recursive(
        leaves,
        lambda children: st.builds(
            lambda name, kids: Element(name[0], name[1], tuple(kids)),
            leaf_name,
            st.lists(st.one_of(children, _text, st.binary(max_size=50)), max_size=5),
        ),
        max_leaves=30,
    )


@settings(max_examples=300)
@given(_trees())
def test_decode_inverts_encode(tree: Element) -> None:
    assert decode(encode(tree)) == tree


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_no_input_crashes_the_decoder(body: bytes) -> None:
    for data in (body, HEADER + body):
        with contextlib.suppress(WbxmlError):
            decode(data)
