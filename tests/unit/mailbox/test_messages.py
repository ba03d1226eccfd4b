"""The streaming message scanner: summary fields, MIME part offsets, decoding, bounds."""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
import tracemalloc
from datetime import UTC, datetime
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.mailbox.messages import (
    MAX_HEADER_BYTES,
    PREVIEW_CHARS,
    MessageScanner,
    ParsedMessage,
    TransferDecoder,
    parse_message,
)
from sitemail.mailbox.records import Address, MimePart


def rich_message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jürgen Müller <juergen@contoso.com>"
    msg["To"] = "Ann <ann@contoso.com>, bob@fabrikam.com"
    msg["Cc"] = "carl@contoso.com"
    msg["Subject"] = "Quartalszahlen für Köln"
    msg["Date"] = "Tue, 03 Mar 2026 10:00:00 +0100"
    msg["Message-ID"] = "<q1@contoso.com>"
    msg["In-Reply-To"] = "<q0@contoso.com>"
    msg.set_content("Hallo Ann,\nanbei die Zahlen für Köln.\n")
    msg.add_alternative("<p>Hallo Ann,<br>anbei die <b>Zahlen</b></p>", subtype="html")
    msg.add_attachment(
        bytes(range(256)) * 40, maintype="application", subtype="pdf", filename="Bericht Köln.pdf"
    )
    return bytes(msg)


def leaf_payloads(raw: bytes) -> list[bytes]:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    out = []
    for part in parsed.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out.append(payload)
    return out


def decoded_body(raw: bytes, part: MimePart) -> bytes:
    decoder = TransferDecoder(part.transfer_encoding)
    body = raw[part.body_offset : part.body_offset + part.body_size]
    return decoder.feed(body) + decoder.flush()


def leaves(part: MimePart) -> list[MimePart]:
    return [p for p in part.walk() if not p.children and not p.is_multipart]


# --- summary ------------------------------------------------------------------


def test_summary_fields_are_decoded_from_the_top_header() -> None:
    parsed = parse_message(rich_message())

    assert parsed.subject == "Quartalszahlen für Köln"
    assert parsed.from_address == Address(name="Jürgen Müller", address="juergen@contoso.com")
    assert parsed.to == [
        Address(name="Ann", address="ann@contoso.com"),
        Address(name="", address="bob@fabrikam.com"),
    ]
    assert parsed.cc == [Address(name="", address="carl@contoso.com")]
    assert parsed.sent_at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert parsed.internet_message_id == "<q1@contoso.com>"
    assert parsed.in_reply_to == "<q0@contoso.com>"
    assert parsed.has_attachments is True
    assert parsed.preview == "Hallo Ann, anbei die Zahlen für Köln."


def test_parts_are_numbered_like_imap_and_their_offsets_hold_their_bodies() -> None:
    raw = rich_message()
    parsed = parse_message(raw)

    tree = parsed.structure
    assert tree.part_id == "" and tree.content_type == "multipart/mixed"
    assert [p.part_id for p in tree.walk()] == ["", "1", "1.1", "1.2", "2"]
    assert [p.content_type for p in leaves(tree)] == ["text/plain", "text/html", "application/pdf"]
    attachment = tree.find("2")
    assert attachment is not None and attachment.filename == "Bericht Köln.pdf"
    assert [decoded_body(raw, p) for p in leaves(tree)] == leaf_payloads(raw)
    assert raw[: parsed.header_size].endswith(b"\n\n")
    assert parsed.size == len(raw)


def test_single_part_message_body_is_part_1_and_line_count_matches() -> None:
    raw = b"Subject: hi\r\nFrom: a@b\r\n\r\nline one\r\nline two\r\n"
    parsed = parse_message(raw)

    assert parsed.structure.part_id == "1"
    assert parsed.structure.body_lines == 2
    assert raw[parsed.structure.body_offset :] == b"line one\r\nline two\r\n"
    assert parsed.has_attachments is False


def test_eight_bit_headers_and_rfc2231_filenames_read_as_utf8() -> None:
    raw = (
        "From: Zoë <zoe@contoso.com>\r\nSubject: Café\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        "--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve.txt\r\n\r\nxyz\r\n"
        "--b--\r\n"
    ).encode()
    parsed = parse_message(raw)

    assert parsed.subject == "Café"
    assert parsed.from_address == Address(name="Zoë", address="zoe@contoso.com")
    attachment = parsed.structure.find("2")
    assert attachment is not None and attachment.filename == "naïve.txt"
    assert raw[attachment.body_offset : attachment.body_offset + attachment.body_size] == b"xyz"


def test_html_only_message_previews_its_text_without_markup_or_scripts() -> None:
    raw = (
        b"Subject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style><script>alert(1)</script></head>"
        b"<body><p>Hello&nbsp;<b>world</b></p></body></html>\r\n"
    )
    assert parse_message(raw).preview == "Hello world"


def test_preview_is_capped_and_inline_images_are_not_attachments() -> None:
    msg = EmailMessage()
    msg["Subject"] = "long"
    msg.set_content("word " * 1000)
    msg.add_related(b"\x89PNG...", maintype="image", subtype="png", cid="<logo@x>")
    parsed = parse_message(bytes(msg))

    assert len(parsed.preview) == PREVIEW_CHARS
    assert parsed.has_attachments is False


def test_missing_blank_line_and_missing_headers_are_tolerated() -> None:
    assert parse_message(b"").size == 0
    headers_only = parse_message(b"Subject: only headers\r\n")
    assert headers_only.subject == "only headers"
    assert headers_only.header_size == headers_only.size
    defect = parse_message(b"Subject: s\r\nthis is no header\r\nbody\r\n")
    assert defect.subject == "s" and defect.preview == "this is no header body"


def test_header_kept_is_capped_at_max_header_size() -> None:
    raw = b"Subject: " + b"a" * (2 * MAX_HEADER_BYTES) + b"\r\nFrom: late@x\r\n\r\nbody\r\n"
    parsed = parse_message(raw)

    assert len(parsed.subject) < MAX_HEADER_BYTES
    assert parsed.from_address is None  # beyond the cap: not parsed, but not a crash either
    assert raw[parsed.header_size :] == b"body\r\n"


def test_scanning_a_large_message_uses_bounded_memory() -> None:
    line = base64.b64encode(b"\xff" * 57) + b"\r\n"
    head = b"Subject: big\r\nContent-Type: application/octet-stream\r\n"
    head += b"Content-Transfer-Encoding: base64\r\n\r\n"
    chunk = line * 800  # ~62 KB
    count = 80  # ~5 MB in all
    scanner = MessageScanner()
    tracemalloc.start()
    try:
        scanner.feed(head)
        for _ in range(count):
            scanner.feed(chunk)
        parsed = scanner.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed.size == len(head) + count * len(chunk)
    assert peak < 1024 * 1024


# --- properties ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_result_does_not_depend_on_how_the_message_is_split(data: st.DataObject) -> None:
    raw = rich_message()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=30)))
    scanner = MessageScanner()
    last = 0
    for cut in [*cuts, len(raw)]:
        scanner.feed(raw[last:cut])
        last = cut
    assert scanner.close() == parse_message(raw)


message_bytes = st.one_of(
    st.binary(max_size=3000),
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=q\r\n",
                b"Content-Type: text/plain\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"Subject: =?utf-8?b?w6k=?=\r\n",
                b"From: =?bogus?q?x?= <a@b>\r\n",
                b"\r\n",
                b"--q\r\n",
                b"--q--\r\n",
                b"AAAA\r\n",
                b"text\n",
                b"\xff\xfe\r\n",
            ]
        ),
        max_size=60,
    ).map(b"".join),
)


@settings(max_examples=300, deadline=None)
@given(message_bytes)
def test_no_input_crashes_the_scanner_and_offsets_stay_inside(raw: bytes) -> None:
    parsed: ParsedMessage = parse_message(raw)

    assert parsed.size == len(raw)
    assert 0 <= parsed.header_size <= len(raw)
    for part in parsed.structure.walk():
        assert 0 <= part.header_offset <= part.body_offset <= len(raw)
        assert part.body_offset + part.body_size <= len(raw)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4000), st.integers(1, 300))
def test_base64_decoding_in_chunks_equals_decoding_at_once(data: bytes, step: int) -> None:
    encoded = base64.encodebytes(data)
    decoder = TransferDecoder("base64")
    out = b"".join(decoder.feed(encoded[i : i + step]) for i in range(0, len(encoded), step))
    assert out + decoder.flush() == data


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4000), st.integers(1, 300))
def test_quoted_printable_decoding_in_chunks_equals_decoding_at_once(
    data: bytes, step: int
) -> None:
    encoded = quopri.encodestring(data)
    decoder = TransferDecoder("Quoted-Printable")
    out = b"".join(decoder.feed(encoded[i : i + step]) for i in range(0, len(encoded), step))
    assert out + decoder.flush() == quopri.decodestring(encoded)


def test_a_subject_is_unfolded_but_keeps_its_spaces() -> None:
    parsed = parse_message(b"Subject: Two  spaces\r\n and a fold\r\n\r\nbody\r\n")
    assert parsed.subject == "Two  spaces and a fold"
