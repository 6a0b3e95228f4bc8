"""The sans-I/O codecs: round trips (whole, byte by byte, random splits), limits, bad input."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiomsg
from aiomsg.framing import Decoder, Framing

from .conftest import Codec
from .strategies import CASES, Case


def feed_in_pieces(codec: Codec, framing: Framing, wire: bytes, cuts: list[int]) -> list[bytes]:
    """Decode ``wire`` cut at ``cuts``, then at EOF; check nothing is left over."""
    decoder = codec.decoder(framing)
    out: list[bytes] = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(wire))), len(wire)]
    for a, b in itertools.pairwise(bounds):
        out += decoder.feed(wire[a:b])
    if not isinstance(framing, aiomsg.framing.UntilEOF):  # which holds everything until EOF
        assert decoder.buffered == 0
    out += decoder.feed_eof()
    return out


@pytest.mark.parametrize("case", CASES, ids=str)
class TestRoundTrip:
    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_whole(self, codec_implementation: Codec, case: Case, data: st.DataObject) -> None:
        messages = data.draw(st.lists(case.messages, max_size=20))
        wire = case.framing.encode_many(messages)
        assert feed_in_pieces(codec_implementation, case.framing, wire, []) == messages

    @settings(max_examples=30, deadline=None)
    @given(data=st.data())
    def test_byte_by_byte(
        self, codec_implementation: Codec, case: Case, data: st.DataObject
    ) -> None:
        messages = data.draw(st.lists(case.messages, max_size=8))
        wire = case.framing.encode_many(messages)
        assert (
            feed_in_pieces(codec_implementation, case.framing, wire, list(range(len(wire))))
            == messages
        )

    @settings(max_examples=150, deadline=None)
    @given(data=st.data())
    def test_random_splits(
        self, codec_implementation: Codec, case: Case, data: st.DataObject
    ) -> None:
        messages = data.draw(st.lists(case.messages, max_size=20))
        wire = case.framing.encode_many(messages)
        cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30))
        assert feed_in_pieces(codec_implementation, case.framing, wire, cuts) == messages

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
    def test_accepts_bytearray_and_memoryview(
        self, codec_implementation: Codec, case: Case, data: st.DataObject
    ) -> None:
        messages = data.draw(st.lists(case.messages, min_size=1, max_size=5))
        wire = case.framing.encode_many(messages)
        half = len(wire) // 2
        decoder = codec_implementation.decoder(case.framing)
        chunk = bytearray(wire[:half])
        out = decoder.feed(chunk)
        chunk[:] = b"\xff" * len(chunk)  # the caller reuses its buffer: the decoder kept a copy
        out += decoder.feed(memoryview(wire)[half:])
        assert out == messages
        assert case.framing.encode(bytearray(messages[0])) == case.framing.encode(messages[0])

    def test_large_message_in_small_chunks(self, codec_implementation: Codec, case: Case) -> None:
        framing = case.framing
        size = min(1 << 20, framing.max_size)
        if isinstance(framing, aiomsg.FixedLength):
            framing = aiomsg.FixedLength(size)
        prefix = b"\x03" if isinstance(framing, aiomsg.TypePrefixed) else b""  # 3: netstring body
        big = prefix + b"z" * (size - len(prefix))
        wire = framing.encode(big) + framing.encode(big)
        assert feed_in_pieces(
            codec_implementation, framing, wire, list(range(0, len(wire), 4096))
        ) == [big, big]


def test_end_of_stream_round_trip(codec_implementation: Codec) -> None:
    framing = aiomsg.framing.UntilEOF()
    for payload in (b"", b"x", b"hello\nworld\0" * 1000):
        assert feed_in_pieces(
            codec_implementation, framing, framing.encode(payload), list(range(0, len(payload), 7))
        ) == [payload]


# --- interoperability vectors -------------------------------------------------------


def test_length_prefixed_matches_struct_pack(codec_implementation: Codec) -> None:
    for m in (b"", b"x", b"hello" * 100):
        assert aiomsg.LengthPrefixed(4).encode(m) == struct.pack(">I", len(m)) + m
        assert aiomsg.LengthPrefixed(2, "little").encode(m) == struct.pack("<H", len(m)) + m
        assert aiomsg.LengthPrefixed(8).encode(m) == struct.pack(">Q", len(m)) + m
    assert codec_implementation.decoder(aiomsg.LengthPrefixed(4)).feed(
        struct.pack(">I", 3) + b"abc"
    ) == [b"abc"]


def test_netstring_matches_spec(codec_implementation: Codec) -> None:
    assert aiomsg.Netstring().encode(b"hello world!") == b"12:hello world!,"
    assert aiomsg.Netstring().encode(b"") == b"0:,"
    assert codec_implementation.decoder(aiomsg.Netstring()).feed(b"12:hello world!,0:,") == [
        b"hello world!",
        b"",
    ]


def test_varint_matches_protobuf(codec_implementation: Codec) -> None:
    assert aiomsg.framing.encode_varint(300) == b"\xac\x02"
    assert aiomsg.framing.encode_varint(0) == b"\x00"
    assert aiomsg.framing.encode_varint(127) == b"\x7f"
    assert aiomsg.framing.encode_varint(128) == b"\x80\x01"
    assert aiomsg.Varint().encode(b"x" * 300)[:2] == b"\xac\x02"
    assert codec_implementation.decoder(aiomsg.Varint()).feed(b"\xac\x02" + b"y" * 300) == [
        b"y" * 300
    ]


def test_ascii_length_matches_howto(codec_implementation: Codec) -> None:
    assert aiomsg.AsciiLengthPrefixed(5).encode(b"hello") == b"00005hello"
    assert codec_implementation.decoder(aiomsg.AsciiLengthPrefixed(5)).feed(b"00005hello00000") == [
        b"hello",
        b"",
    ]


def test_lines_accepts_lf_and_crlf(codec_implementation: Codec) -> None:
    assert codec_implementation.decoder(aiomsg.Lines()).feed(b"one\r\ntwo\n\r\nthree\r\r\n") == [
        b"one",
        b"two",
        b"",
        b"three\r",
    ]
    assert aiomsg.Lines(newline=b"\r\n").encode(b"hi") == b"hi\r\n"


def test_delimiter_split_across_reads(codec_implementation: Codec) -> None:
    decoder = codec_implementation.decoder(aiomsg.Delimited(b"<END>"))
    assert decoder.feed(b"abc<E") == []
    assert decoder.feed(b"N") == []
    assert decoder.feed(b"D>de") == [b"abc"]
    assert decoder.buffered == 2
    assert decoder.feed(b"f<END><END>") == [b"def", b""]


def test_type_prefixed_messages_keep_their_type(codec_implementation: Codec) -> None:
    framing = aiomsg.TypePrefixed({1: 2, 2: aiomsg.LengthPrefixed(2)})
    assert framing.encode(b"\x01ab") == b"\x01ab"
    assert framing.encode(b"\x02hello") == b"\x02\x00\x05hello"
    assert codec_implementation.decoder(framing).feed(b"\x01ab\x02\x00\x05hello") == [
        b"\x01ab",
        b"\x02hello",
    ]


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
        ("delimited", aiomsg.Delimited(b"\r\n", max_size=LIMIT), b"x" * (LIMIT + 1)),
        ("lines", aiomsg.Lines(max_size=LIMIT), b"x" * (LIMIT + 1)),
        ("eos", aiomsg.framing.UntilEOF(max_size=LIMIT), b"x" * (LIMIT + 1)),
    ]


@pytest.mark.parametrize(
    ("name", "framing", "oversized_start"), _limited(), ids=[c[0] for c in _limited()]
)
def test_max_size_accepted_and_max_size_plus_one_refused(
    codec_implementation: Codec, name: str, framing: Framing, oversized_start: bytes
) -> None:
    prefix = b"\x07" if name == "typed" else b""
    fits = prefix + b"y" * LIMIT
    assert feed_in_pieces(codec_implementation, framing, framing.encode(fits), []) == [fits]
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        framing.encode(fits + b"y")
    assert info.value.max_size == LIMIT
    # The decoder refuses as soon as the header (or LIMIT+1 unterminated bytes) arrive:
    # it does not wait for, or buffer, the announced body.
    decoder = codec_implementation.decoder(framing)
    with pytest.raises(aiomsg.MessageTooLarge):
        decoder.feed(oversized_start)


def test_header_announcing_huge_message_raises_without_allocating(
    codec_implementation: Codec,
) -> None:
    decoder = codec_implementation.decoder(aiomsg.LengthPrefixed(8))
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        decoder.feed(struct.pack(">Q", 2**62))
    assert info.value.size == 2**62
    assert info.value.max_size == aiomsg.DEFAULT_MAX_SIZE


def test_delimited_allows_a_partial_delimiter_at_the_limit(codec_implementation: Codec) -> None:
    decoder = codec_implementation.decoder(aiomsg.Delimited(b"\r\n", max_size=LIMIT))
    assert decoder.feed(b"x" * LIMIT + b"\r") == []
    assert decoder.feed(b"\n") == [b"x" * LIMIT]


# Each delimited framing with max_size=LIMIT, and the delimiter a peer ends a message with.
DELIMITED = [
    ("lines", aiomsg.Lines(max_size=LIMIT), b"\n"),
    ("lines-crlf", aiomsg.Lines(max_size=LIMIT), b"\r\n"),
    ("delimited-lf", aiomsg.Delimited(b"\n", max_size=LIMIT), b"\n"),
    ("delimited-crlf", aiomsg.Delimited(b"\r\n", max_size=LIMIT), b"\r\n"),
    ("delimited-end", aiomsg.Delimited(b"<END>", max_size=LIMIT), b"<END>"),
]
DELIMITED_IDS = [d[0] for d in DELIMITED]


def short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "..."


def feed_steps(decoder: Decoder, steps: list[bytes | None], pieces: str) -> list[bytes]:
    """Feed each step (``None``: EOF) in one chunk, or byte by byte; "one chunk" joins them."""
    if pieces == "one chunk":
        data = [s for s in steps if s is not None]
        steps = [b"".join(data), *(None for s in steps if s is None)]
    out: list[bytes] = []
    for step in steps:
        if step is None:
            out += decoder.feed_eof()
        elif pieces == "byte by byte":
            for i in range(len(step)):
                out += decoder.feed(step[i : i + 1])
        else:
            out += decoder.feed(step)
    return out


@pytest.mark.parametrize("pieces", ["one chunk", "chunks", "byte by byte"])
@pytest.mark.parametrize("then", ["delimiter", "eof", "more"])
@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT, LIMIT + 1])
@pytest.mark.parametrize(("name", "framing", "end"), DELIMITED, ids=DELIMITED_IDS)
def test_delimited_refuses_more_than_max_size_bytes_whatever_comes_next(
    codec_implementation: Codec,
    name: str,
    framing: Framing,
    end: bytes,
    size: int,
    then: str,
    pieces: str,
) -> None:
    # More than max_size bytes without a delimiter are MessageTooLarge, raised by the
    # feed() that brings byte max_size+1, before any delimiter, EOF or more bytes.
    message = b"x" * size
    steps = [message, {"delimiter": end, "eof": None, "more": b"y"}[then]]
    unterminated = size + 1 if then == "more" else size
    decoder = codec_implementation.decoder(framing)
    if unterminated > LIMIT:
        # One chunk reports all its bytes; smaller feeds stop at byte max_size+1.
        reported = unterminated if pieces == "one chunk" else LIMIT + 1
        with pytest.raises(
            aiomsg.MessageTooLarge, match=f"^message of {reported} bytes is over max_size={LIMIT}$"
        ) as info:
            feed_steps(decoder, steps, pieces)
        assert (info.value.size, info.value.max_size) == (reported, LIMIT)
        with pytest.raises(aiomsg.FramingError, match="failed earlier"):
            decoder.feed_eof()
    elif then == "eof":
        with pytest.raises(
            aiomsg.IncompleteMessageError,
            match=rf"^stream ended inside a message \({size} bytes, no delimiter\)$",
        ) as incomplete:
            feed_steps(decoder, steps, pieces)
        assert incomplete.value.partial == message
    elif then == "delimiter":
        assert feed_steps(decoder, steps, pieces) == [message]
        assert decoder.feed_eof() == []
    else:
        assert feed_steps(decoder, steps, pieces) == []
        assert decoder.buffered == LIMIT
        assert decoder.feed(end) == [message + b"y"]


@pytest.mark.parametrize("pieces", ["one chunk", "chunks", "byte by byte"])
@pytest.mark.parametrize(
    ("name", "framing", "end"),
    [d for d in DELIMITED if len(d[2]) > 1],
    ids=[d[0] for d in DELIMITED if len(d[2]) > 1],
)
def test_delimited_partial_delimiter_after_max_size_bytes_waits_for_the_next_byte(
    codec_implementation: Codec, name: str, framing: Framing, end: bytes, pieces: str
) -> None:
    # max_size bytes and the start of a delimiter (for Lines, the "\r" of "\r\n") may
    # still be a message of max_size bytes: the next byte, or EOF, decides.
    fits = b"x" * LIMIT
    started = fits + end[:-1]
    assert feed_steps(codec_implementation.decoder(framing), [started, end[-1:], None], pieces) == [
        fits
    ]
    outcomes: list[tuple[list[bytes | None], int]] = [
        ([started, None], LIMIT + len(end) - 1),  # EOF: those bytes are the message
        ([started, b"y"], LIMIT + len(end)),  # not the delimiter after all
        ([started, end[:1]], LIMIT + len(end) - 1),  # a delimiter may begin again
    ]
    for steps, size in outcomes:
        with pytest.raises(
            aiomsg.MessageTooLarge, match=f"^message of {size} bytes is over max_size={LIMIT}$"
        ) as info:
            feed_steps(codec_implementation.decoder(framing), steps, pieces)
        assert info.value.size == size


NETSTRING_TOO_LARGE = [
    # wire; size reported when fed whole; (index of the byte that proves it, size then)
    (b"301:" + b"y" * 301 + b",", 301, (2, 301)),
    (b"301", 301, (2, 301)),  # without its ':': more digits could only add to it
    (b"1000:", 1000, (3, 1000)),
    (b"3011:", 3011, (2, 301)),  # byte by byte, a lower bound
    (b"9" * 30, int("9" * 30), (2, 999)),  # whole: every digit it holds, no ':' yet
    (b"9" * 20 + b":", int("9" * 20), (2, 999)),  # the digits sent, not a truncated number
]


def netstring_too_large(size: int, *, exact: bool) -> str:
    """The error's text: exact once the ':' is read, else a lower bound naming the digits."""
    if exact:
        return f"^message of {size} bytes is over max_size=300$"
    digits = len(str(size))
    return (
        rf"^netstring length {size} \({digits} digits so far, no ':' yet\) is over "
        rf"max_size=300: a message of at least {size} bytes$"
    )


@pytest.mark.parametrize(("wire", "size", "first"), NETSTRING_TOO_LARGE, ids=short_repr)
def test_netstring_length_over_max_size_is_refused_as_soon_as_its_digits_prove_it(
    codec_implementation: Codec, wire: bytes, size: int, first: tuple[int, int]
) -> None:
    framing = aiomsg.Netstring(max_size=300)
    exact = b":" in wire
    for prefix in (b"", b"2:ok,"):  # at the start of the scan, and after a good message
        with pytest.raises(
            aiomsg.MessageTooLarge, match=netstring_too_large(size, exact=exact)
        ) as info:
            codec_implementation.decoder(framing).feed(prefix + wire)
        assert (info.value.size, info.value.max_size) == (size, 300)
        assert info.value.messages == ([b"ok"] if prefix else [])
    at, size_then = first
    decoder = codec_implementation.decoder(framing)
    for i in range(at):
        assert decoder.feed(wire[i : i + 1]) == []
    with pytest.raises(
        aiomsg.MessageTooLarge, match=netstring_too_large(size_then, exact=False)
    ) as info:
        decoder.feed(wire[at : at + 1])
    assert info.value.size == size_then


NETSTRING_LEADING_ZERO = [
    (b"03", b"03"),
    (b"00:,", b"00"),
    (b"01:a,", b"01"),
    (b"0300:" + b"y" * 300 + b",", b"0300"),  # 300 fits: the zero is the fault, not the size
    (b"03000:", b"0300"),  # also too many digits for max_size=300: still a leading zero
    (b"0999999999:", b"0999"),  # also over max_size
    (b"0" * 30, b"0000"),
]


@pytest.mark.parametrize(("wire", "shown"), NETSTRING_LEADING_ZERO, ids=short_repr)
def test_netstring_length_with_a_leading_zero_is_refused_with_its_second_byte(
    codec_implementation: Codec, wire: bytes, shown: bytes
) -> None:
    framing = aiomsg.Netstring(max_size=300)
    text = f"^netstring length {shown!r} has a leading zero \\(only b'0:' may start with 0\\)$"
    for prefix in (b"", b"2:ok,"):  # at the start of the scan, and after a good message
        with pytest.raises(aiomsg.FramingError, match=text) as info:
            codec_implementation.decoder(framing).feed(prefix + wire)
        assert type(info.value) is aiomsg.FramingError  # not MessageTooLarge
        assert info.value.messages == ([b"ok"] if prefix else [])
    decoder = codec_implementation.decoder(framing)
    assert decoder.feed(wire[:1]) == []  # b"0" may still be b"0:"
    with pytest.raises(aiomsg.FramingError, match="has a leading zero") as info:
        decoder.feed(wire[1:2])
    assert type(info.value) is aiomsg.FramingError
    assert f"{wire[:2]!r}" in str(info.value)


AGREEMENT = [
    (aiomsg.Netstring(max_size=30), [b"0", b"1", b"3", b"9", b":", b",", b"x", b"2:ab,"]),
    (aiomsg.Lines(max_size=5), [b"a", b"\r", b"\n", b"\r\n", b"abcde\n"]),
    (aiomsg.Delimited(b"<E>", max_size=5), [b"a", b"<", b"E", b">", b"<E>", b"abcde<E>"]),
]


@pytest.mark.parametrize(("framing", "tokens"), AGREEMENT, ids=["netstring", "lines", "delimited"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_whole_and_byte_by_byte_give_the_same_messages_and_error(
    codec_implementation: Codec, framing: Framing, tokens: list[bytes], data: st.DataObject
) -> None:
    # The fast loop (C or Python) stops where the header parser must judge, whatever the cuts.
    wire = b"".join(data.draw(st.lists(st.sampled_from(tokens), max_size=12)))

    def decode(chunks: list[bytes]) -> tuple[list[bytes], type[Exception] | None]:
        decoder = codec_implementation.decoder(framing)
        out: list[bytes] = []
        try:
            for chunk in chunks:
                out += decoder.feed(chunk)
            out += decoder.feed_eof()
        except aiomsg.FramingError as exc:
            return out + exc.messages, type(exc)
        return out, None

    assert decode([wire]) == decode([wire[i : i + 1] for i in range(len(wire))])


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


def test_error_carries_the_good_messages_before_it_and_decoder_stays_failed(
    codec_implementation: Codec,
) -> None:
    framing = aiomsg.Netstring()
    decoder = codec_implementation.decoder(framing)
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
    codec_implementation: Codec, framing: Framing, wire: bytes
) -> None:
    decoder = codec_implementation.decoder(framing)
    for i in range(len(wire)):
        assert decoder.feed(wire[i : i + 1]) == []
    assert decoder.buffered > 0
    with pytest.raises(aiomsg.IncompleteMessageError) as info:
        decoder.feed_eof()
    assert info.value.partial
    assert wire.endswith(info.value.partial[-2:])


def test_feed_after_eof_is_an_error(codec_implementation: Codec) -> None:
    decoder = codec_implementation.decoder(aiomsg.LengthPrefixed(4))
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
