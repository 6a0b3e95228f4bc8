"""The sans-I/O codecs: round trips (whole, byte by byte, random splits), limits, bad input."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiomsg
from aiomsg.framing import Framing

from .strategies import CASES, Case

pytestmark = pytest.mark.usefixtures("codec_implementation")


def feed_in_pieces(framing: Framing, wire: bytes, cuts: list[int]) -> list[bytes]:
    """Decode ``wire`` cut at ``cuts``, then at EOF; check nothing is left over."""
    decoder = framing.decoder()
    out: list[bytes] = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(wire))), len(wire)]
    for a, b in itertools.pairwise(bounds):
        out += decoder.feed(wire[a:b])
    if not isinstance(framing, aiomsg.EndOfStream):  # which holds everything until EOF
        assert decoder.buffered == 0
    out += decoder.feed_eof()
    return out


@pytest.mark.parametrize("case", CASES, ids=str)
class TestRoundTrip:
    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_whole(self, case: Case, data: st.DataObject) -> None:
        messages = data.draw(st.lists(case.messages, max_size=20))
        wire = case.framing.encode_many(messages)
        assert feed_in_pieces(case.framing, wire, []) == messages

    @settings(max_examples=30, deadline=None)
    @given(data=st.data())
    def test_byte_by_byte(self, case: Case, data: st.DataObject) -> None:
        messages = data.draw(st.lists(case.messages, max_size=8))
        wire = case.framing.encode_many(messages)
        assert feed_in_pieces(case.framing, wire, list(range(len(wire)))) == messages

    @settings(max_examples=150, deadline=None)
    @given(data=st.data())
    def test_random_splits(self, case: Case, data: st.DataObject) -> None:
        messages = data.draw(st.lists(case.messages, max_size=20))
        wire = case.framing.encode_many(messages)
        cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30))
        assert feed_in_pieces(case.framing, wire, cuts) == messages

    @settings(max_examples=20, deadline=None)
    @given(data=st.data())
    def test_encode_many_is_concatenated_encode(self, case: Case, data: st.DataObject) -> None:
        messages = data.draw(st.lists(case.messages, min_size=1, max_size=5))
        framing = case.framing
        assert framing.encode_many(messages) == b"".join(map(framing.encode, messages))
        for m in messages:
            assert b"".join(bytes(p) for p in framing.encode_parts(m)) == framing.encode(m)

    @settings(max_examples=20, deadline=None)
    @given(data=st.data())
    def test_accepts_bytearray_and_memoryview(self, case: Case, data: st.DataObject) -> None:
        messages = data.draw(st.lists(case.messages, min_size=1, max_size=5))
        wire = case.framing.encode_many(messages)
        half = len(wire) // 2
        decoder = case.framing.decoder()
        chunk = bytearray(wire[:half])
        out = decoder.feed(chunk)
        chunk[:] = b"\xff" * len(chunk)  # the caller reuses its buffer: the decoder kept a copy
        out += decoder.feed(memoryview(wire)[half:])
        assert out == messages
        assert case.framing.encode(bytearray(messages[0])) == case.framing.encode(messages[0])

    def test_large_message_in_small_chunks(self, case: Case) -> None:
        framing = case.framing
        size = min(1 << 20, framing.max_size)
        if isinstance(framing, aiomsg.FixedLength):
            framing = aiomsg.FixedLength(size)
        prefix = b"\x03" if isinstance(framing, aiomsg.TypePrefixed) else b""  # 3: netstring body
        big = prefix + b"z" * (size - len(prefix))
        wire = framing.encode(big) + framing.encode(big)
        assert feed_in_pieces(framing, wire, list(range(0, len(wire), 4096))) == [big, big]


def test_end_of_stream_round_trip() -> None:
    framing = aiomsg.EndOfStream()
    for payload in (b"", b"x", b"hello\nworld\0" * 1000):
        assert feed_in_pieces(
            framing, framing.encode(payload), list(range(0, len(payload), 7))
        ) == [payload]


# --- interoperability vectors -------------------------------------------------------


def test_length_prefixed_matches_struct_pack() -> None:
    for m in (b"", b"x", b"hello" * 100):
        assert aiomsg.LengthPrefixed(4).encode(m) == struct.pack(">I", len(m)) + m
        assert aiomsg.LengthPrefixed(2, "little").encode(m) == struct.pack("<H", len(m)) + m
        assert aiomsg.LengthPrefixed(8).encode(m) == struct.pack(">Q", len(m)) + m
    assert aiomsg.LengthPrefixed(4).decoder().feed(struct.pack(">I", 3) + b"abc") == [b"abc"]


def test_netstring_matches_spec() -> None:
    assert aiomsg.Netstring().encode(b"hello world!") == b"12:hello world!,"
    assert aiomsg.Netstring().encode(b"") == b"0:,"
    assert aiomsg.Netstring().decoder().feed(b"12:hello world!,0:,") == [b"hello world!", b""]


def test_varint_matches_protobuf() -> None:
    assert aiomsg.framing.encode_varint(300) == b"\xac\x02"
    assert aiomsg.framing.encode_varint(0) == b"\x00"
    assert aiomsg.framing.encode_varint(127) == b"\x7f"
    assert aiomsg.framing.encode_varint(128) == b"\x80\x01"
    assert aiomsg.Varint().encode(b"x" * 300)[:2] == b"\xac\x02"
    assert aiomsg.Varint().decoder().feed(b"\xac\x02" + b"y" * 300) == [b"y" * 300]


def test_ascii_length_matches_howto() -> None:
    assert aiomsg.AsciiLengthPrefixed(5).encode(b"hello") == b"00005hello"
    assert aiomsg.AsciiLengthPrefixed(5).decoder().feed(b"00005hello00000") == [b"hello", b""]


def test_lines_accepts_lf_and_crlf() -> None:
    assert aiomsg.Lines().decoder().feed(b"one\r\ntwo\n\r\nthree\r\r\n") == [
        b"one",
        b"two",
        b"",
        b"three\r",
    ]
    assert aiomsg.Lines(newline=b"\r\n").encode(b"hi") == b"hi\r\n"


def test_delimiter_split_across_reads() -> None:
    decoder = aiomsg.Delimited(b"<END>").decoder()
    assert decoder.feed(b"abc<E") == []
    assert decoder.feed(b"N") == []
    assert decoder.feed(b"D>de") == [b"abc"]
    assert decoder.buffered == 2
    assert decoder.feed(b"f<END><END>") == [b"def", b""]


def test_type_prefixed_messages_keep_their_type() -> None:
    framing = aiomsg.TypePrefixed({1: 2, 2: aiomsg.LengthPrefixed(2)})
    assert framing.encode(b"\x01ab") == b"\x01ab"
    assert framing.encode(b"\x02hello") == b"\x02\x00\x05hello"
    assert framing.decoder().feed(b"\x01ab\x02\x00\x05hello") == [b"\x01ab", b"\x02hello"]


# --- limits ---------------------------------------------------------------------------

LIMIT = 10


def _limited() -> list[tuple[str, Framing, bytes]]:
    """Each framing with max_size=LIMIT, and the wire of a LIMIT+1 message's header only."""
    return [
        ("length4", aiomsg.LengthPrefixed(4, max_size=LIMIT), struct.pack(">I", LIMIT + 1)),
        ("ascii5", aiomsg.AsciiLengthPrefixed(5, max_size=LIMIT), b"00011"),
        ("netstring", aiomsg.Netstring(max_size=LIMIT), b"11:"),
        ("varint", aiomsg.Varint(max_size=LIMIT), b"\x0b"),
        ("typed", aiomsg.TypePrefixed({7: aiomsg.LengthPrefixed(1)}, max_size=LIMIT), b"\x07\x0b"),
        ("delimited", aiomsg.Delimited(b"\r\n", max_size=LIMIT), b"x" * (LIMIT + 2)),
        ("lines", aiomsg.Lines(max_size=LIMIT), b"x" * (LIMIT + 2)),
        ("eos", aiomsg.EndOfStream(max_size=LIMIT), b"x" * (LIMIT + 1)),
    ]


@pytest.mark.parametrize(
    ("name", "framing", "oversized_start"), _limited(), ids=[c[0] for c in _limited()]
)
def test_max_size_accepted_and_max_size_plus_one_refused(
    name: str, framing: Framing, oversized_start: bytes
) -> None:
    prefix = b"\x07" if name == "typed" else b""
    fits = prefix + b"y" * LIMIT
    assert feed_in_pieces(framing, framing.encode(fits), []) == [fits]
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        framing.encode(fits + b"y")
    assert info.value.max_size == LIMIT
    # The decoder refuses as soon as the header (or LIMIT+1 unterminated bytes) arrive:
    # it does not wait for, or buffer, the announced body.
    decoder = framing.decoder()
    with pytest.raises(aiomsg.MessageTooLarge):
        decoder.feed(oversized_start)


def test_header_announcing_huge_message_raises_without_allocating() -> None:
    decoder = aiomsg.LengthPrefixed(8).decoder()
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        decoder.feed(struct.pack(">Q", 2**62))
    assert info.value.size == 2**62
    assert info.value.max_size == aiomsg.DEFAULT_MAX_SIZE


def test_delimited_allows_a_partial_delimiter_at_the_limit() -> None:
    decoder = aiomsg.Delimited(b"\r\n", max_size=LIMIT).decoder()
    assert decoder.feed(b"x" * LIMIT + b"\r") == []
    assert decoder.feed(b"\n") == [b"x" * LIMIT]


def test_width_caps_max_size() -> None:
    assert aiomsg.LengthPrefixed(1).max_size == 255
    assert aiomsg.AsciiLengthPrefixed(2).max_size == 99
    with pytest.raises(aiomsg.MessageTooLarge):
        aiomsg.LengthPrefixed(1).encode(b"x" * 256)


# --- hostile and malformed input ----------------------------------------------------------

HOSTILE = [
    ("ascii-letters", aiomsg.AsciiLengthPrefixed(5), b"00a05hello"),
    ("ascii-sign", aiomsg.AsciiLengthPrefixed(5), b"+0005hello"),
    ("ascii-space", aiomsg.AsciiLengthPrefixed(5), b" 0005hello"),
    ("ascii-partial-garbage", aiomsg.AsciiLengthPrefixed(5), b"0x"),
    ("netstring-no-colon", aiomsg.Netstring(), b"5hello,"),
    ("netstring-no-comma", aiomsg.Netstring(), b"5:hello;"),
    ("netstring-empty-length", aiomsg.Netstring(), b":hello,"),
    ("netstring-leading-zero", aiomsg.Netstring(), b"05:hello,"),
    ("netstring-endless-digits", aiomsg.Netstring(), b"9" * 30),
    ("varint-11-bytes", aiomsg.Varint(max_size=2**70), b"\x80" * 10 + b"\x01"),
    ("typed-unknown", aiomsg.TypePrefixed({1: 3}), b"\x01abc\x09"),
]


@pytest.mark.parametrize(("name", "framing", "wire"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_malformed_input_raises_framing_error(name: str, framing: Framing, wire: bytes) -> None:
    with pytest.raises(aiomsg.FramingError):
        framing.decoder().feed(wire)
    # Byte by byte, too: the error comes at the latest with the last byte.
    decoder = framing.decoder()
    with pytest.raises(aiomsg.FramingError):
        for i in range(len(wire)):
            decoder.feed(wire[i : i + 1])


ENCODE_REFUSED = [
    (aiomsg.Delimited(b"\r\n"), b"a\r\nb"),
    (aiomsg.Delimited(b"aa"), b"xa"),  # would decode as b"x" + leftover
    (aiomsg.Lines(), b"a\nb"),
    (aiomsg.Lines(), b"ends with cr\r"),
    (aiomsg.FixedLength(4), b"abc"),
    (aiomsg.TypePrefixed({1: 2}), b"\x01abc"),
    (aiomsg.TypePrefixed({1: 2}), b"\x03ab"),
    (aiomsg.TypePrefixed({1: 2}), b""),
]


@pytest.mark.parametrize(("framing", "message"), ENCODE_REFUSED, ids=repr)
def test_encode_refuses_what_the_format_cannot_carry(framing: Framing, message: bytes) -> None:
    with pytest.raises(aiomsg.FramingError):
        framing.encode(message)


def test_error_carries_the_good_messages_before_it_and_decoder_stays_failed() -> None:
    framing = aiomsg.Netstring()
    decoder = framing.decoder()
    with pytest.raises(aiomsg.FramingError) as info:
        decoder.feed(b"1:a,2:bc,x:")
    assert info.value.messages == [b"a", b"bc"]
    with pytest.raises(aiomsg.FramingError, match="failed earlier"):
        decoder.feed(b"1:a,")
    with pytest.raises(aiomsg.FramingError, match="failed earlier"):
        decoder.feed_eof()


@pytest.mark.parametrize(
    ("framing", "wire"),
    [
        (aiomsg.LengthPrefixed(4), b"\x00\x00"),
        (aiomsg.LengthPrefixed(4), b"\x00\x00\x00\x05hel"),
        (aiomsg.Lines(), b"no newline"),
        (aiomsg.Netstring(), b"5:hello"),
        (aiomsg.Varint(), b"\x05he"),
        (aiomsg.FixedLength(4), b"abc"),
        (aiomsg.TypePrefixed({1: aiomsg.LengthPrefixed(2)}), b"\x01\x00\x09abc"),
    ],
    ids=repr,
)
def test_eof_inside_a_message_raises_incomplete_with_partial_bytes(
    framing: Framing, wire: bytes
) -> None:
    decoder = framing.decoder()
    for i in range(len(wire)):
        assert decoder.feed(wire[i : i + 1]) == []
    assert decoder.buffered > 0
    with pytest.raises(aiomsg.IncompleteMessageError) as info:
        decoder.feed_eof()
    assert info.value.partial
    assert wire.endswith(info.value.partial[-2:])


def test_feed_after_eof_is_an_error() -> None:
    decoder = aiomsg.LengthPrefixed(4).decoder()
    assert decoder.feed_eof() == []
    with pytest.raises(aiomsg.FramingError, match="end of the stream"):
        decoder.feed(b"\x00\x00\x00\x00")


def test_errors_form_one_tree() -> None:
    assert issubclass(aiomsg.MessageTooLarge, aiomsg.FramingError)
    assert issubclass(aiomsg.IncompleteMessageError, aiomsg.FramingError)
    assert issubclass(aiomsg.FramingError, ValueError)
    assert issubclass(aiomsg.FramingError, aiomsg.AiomsgError)
    assert issubclass(aiomsg.ConnectionClosed, aiomsg.AiomsgError)


@pytest.mark.parametrize(
    "make",
    [
        lambda: aiomsg.LengthPrefixed(3),  # type: ignore[arg-type]
        lambda: aiomsg.LengthPrefixed(4, "middle"),  # type: ignore[arg-type]
        lambda: aiomsg.Delimited(b""),
        lambda: aiomsg.FixedLength(0),
        lambda: aiomsg.FixedLength(100, max_size=10),
        lambda: aiomsg.TypePrefixed({}),
        lambda: aiomsg.TypePrefixed({256: 1}),
        lambda: aiomsg.Lines(newline=b"\r"),
        lambda: aiomsg.Varint(max_size=-1),
    ],
)
def test_bad_configuration_is_refused(make: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        make()  # type: ignore[operator]
