"""DATA transparency: end-of-data detection, unstuffing, stuffing, smuggling, metering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.protocols.smtp import DotDecoder, DotEncoder, MessageMeter, dot_stuff, dot_unstuff


def decode_in_pieces(wire: bytes, sizes: list[int]) -> tuple[bytes, int, bool]:
    dec = DotDecoder()
    out, consumed, pos = b"", 0, 0
    for size in [*sizes, len(wire)]:
        piece = wire[pos : pos + max(size, 1)]
        pos += len(piece)
        content, used = dec.feed(piece)
        out += content
        consumed += used
        if dec.done or pos >= len(wire):
            break
    return out, consumed, dec.done


@pytest.mark.parametrize(
    ("wire", "content", "consumed"),
    [
        (b".\r\n", b"", 3),
        (b"hello\r\n.\r\nQUIT\r\n", b"hello\r\n", 10),
        (b"..leading dot\r\n.\r\n", b".leading dot\r\n", 18),
        (b"a\r\n...\r\n.\r\n", b"a\r\n..\r\n", 11),
        (b"a\r\n.x\r\n.\r\n", b"a\r\nx\r\n", 10),
        (b"no final crlf.\r\n.\r\n", b"no final crlf.\r\n", 19),
    ],
)
def test_decoder_basics(wire: bytes, content: bytes, consumed: int) -> None:
    assert dot_unstuff(wire) == (content, consumed)


@pytest.mark.parametrize(
    "smuggle",
    [
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\n.\r",
    ],
)
def test_smuggling_sequences_do_not_end_data(smuggle: bytes) -> None:
    injected = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\n"
    wire = b"Subject: a\r\n\r\nbody" + smuggle + injected + b"tail\r\n.\r\n"
    for sizes in ([], [1] * len(wire), [3, 5, 7, 2] * 20):
        content, consumed, done = decode_in_pieces(wire, sizes)
        assert done
        assert consumed == len(wire)
        assert injected in content  # the would-be commands stayed message content


def test_bare_lf_and_cr_are_kept_as_is() -> None:
    assert dot_unstuff(b"a\nb\rc\r\n.\r\n") == (b"a\nb\rc\r\n", 10)


def test_dot_after_bare_lf_is_not_unstuffed() -> None:
    # Only CRLF starts a line, so "\n.." is plain content.
    assert dot_unstuff(b"a\n..b\r\n.\r\n") == (b"a\n..b\r\n", 10)


def test_decoder_holds_at_most_dot_cr_between_calls() -> None:
    dec = DotDecoder()
    assert dec.feed(b"line\r\n.") == (b"line\r\n", 7)
    assert dec.feed(b"\r") == (b"", 1)
    assert dec.feed(b"x\r\n.\r\n") == (b"\rx\r\n", 6)
    assert dec.done


def test_decoder_stops_at_terminator() -> None:
    dec = DotDecoder()
    content, used = dec.feed(b"a\r\n.\r\nMAIL FROM:<x@y>\r\n")
    assert (content, used, dec.done) == (b"a\r\n", 6, True)
    assert dec.feed(b"more") == (b"", 0)


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        (b"", b".\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"a\n.b\r.c\r\n.d", b"a\r\n..b\r\n..c\r\n..d\r\n.\r\n"),
        (b"x\n.\n", b"x\r\n..\r\n.\r\n"),
        (b"x\r\r\n", b"x\r\n\r\n.\r\n"),
    ],
)
def test_encoder(body: bytes, wire: bytes) -> None:
    assert dot_stuff(body) == wire


def test_encoder_keeps_crlf_split_across_chunks() -> None:
    enc = DotEncoder()
    out = enc.encode(b"a\r") + enc.encode(b"\n.b\r") + enc.encode(b"") + enc.encode(b"\n")
    assert out + enc.finish() == b"a\r\n..b\r\n.\r\n"


def test_encoder_refuses_use_after_finish() -> None:
    enc = DotEncoder()
    enc.finish()
    with pytest.raises(ValueError):
        enc.encode(b"x")


def normalise(body: bytes) -> bytes:
    text = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return text if not text or text.endswith(b"\r\n") else text + b"\r\n"


_body = st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b"x y"]), max_size=40)


@given(parts=_body, splits=st.lists(st.integers(1, 9), max_size=30))
@settings(max_examples=150, deadline=None)
def test_stuff_then_unstuff_gives_normalised_body(parts: list[bytes], splits: list[int]) -> None:
    body = b"".join(parts)
    enc = DotEncoder()
    wire, pos = b"", 0
    for size in [*splits, len(body)]:
        wire += enc.encode(body[pos : pos + size])
        pos += size
    wire += enc.finish()
    content, consumed, done = decode_in_pieces(wire + b"QUIT\r\n", splits)
    assert done
    assert consumed == len(wire)
    assert content == normalise(body)


@given(data=st.binary(max_size=200), splits=st.lists(st.integers(1, 9), max_size=40))
@settings(max_examples=150, deadline=None)
def test_decoder_result_does_not_depend_on_splits(data: bytes, splits: list[int]) -> None:
    whole = DotDecoder()
    content, used = whole.feed(data)
    assert decode_in_pieces(data, splits) == (content, used, whole.done)


# --- the message meter ----------------------------------------------------------


def test_meter_finds_header_end_across_chunks() -> None:
    meter = MessageMeter(max_header_size=100)
    for piece in (b"Subject: x\r", b"\n", b"\r", b"\nbody\n"):
        meter.feed(piece)
    meter.finish()
    assert meter.header_size == 12
    assert not meter.header_size_exceeded
    assert meter.size == 19
    assert meter.bare_lf


def test_meter_empty_header_section() -> None:
    meter = MessageMeter()
    meter.feed(b"\r")
    meter.feed(b"\nbody\r\n")
    assert meter.header_size == 0
    assert not meter.bare_lf


def test_meter_header_limit_is_exact() -> None:
    header = b"X: " + b"a" * 95 + b"\r\n"  # exactly 100 octets
    at_limit = MessageMeter(max_header_size=100)
    at_limit.feed(header + b"\r\nbody\r\n")
    assert (at_limit.header_size, at_limit.header_size_exceeded) == (100, False)
    over = MessageMeter(max_header_size=99)
    over.feed(header + b"\r\nbody\r\n")
    assert over.header_size_exceeded


def test_meter_flags_long_header_before_it_ends() -> None:
    meter = MessageMeter(max_header_size=1000)
    for _ in range(20):
        meter.feed(b"X-Filler: " + b"a" * 88 + b"\r\n")
    assert meter.header_size_exceeded  # known mid-stream, without keeping the octets


def test_meter_message_without_blank_line_is_all_header() -> None:
    meter = MessageMeter(max_header_size=10)
    meter.feed(b"X: 12345678\r\n")
    meter.finish()
    assert meter.header_size_exceeded


def test_meter_size_limit() -> None:
    meter = MessageMeter(max_message_size=10)
    meter.feed(b"0123456789")
    assert not meter.size_exceeded
    meter.feed(b"x")
    assert meter.size_exceeded


@given(data=st.binary(max_size=300), splits=st.lists(st.integers(1, 30), max_size=30))
@settings(max_examples=150, deadline=None)
def test_meter_flags_do_not_depend_on_splits(data: bytes, splits: list[int]) -> None:
    whole = MessageMeter(max_header_size=50, max_message_size=100)
    whole.feed(data)
    whole.finish()
    pieces = MessageMeter(max_header_size=50, max_message_size=100)
    pos = 0
    for size in [*splits, len(data)]:
        pieces.feed(data[pos : pos + size])
        pos += size
    pieces.finish()
    assert pieces.size == whole.size == len(data)
    assert pieces.header_size_exceeded == whole.header_size_exceeded
    assert pieces.bare_lf == whole.bare_lf == (data.replace(b"\r\n", b"").count(b"\n") > 0)
