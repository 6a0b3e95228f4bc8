"""LengthField: Netty's and tokio's documented examples, real protocols' bytes, the rules.

Every example is decoded whole, byte by byte and at random split points, on
both codec implementations; the recipes are checked on the bytes of real
messages written from each protocol's specification.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiomsg
from aiomsg import LengthField, recipes
from aiomsg.framing import Framing, parse_length_field_spec

from .conftest import Codec
from .strategies import (
    LENGTH_FIELDS,
    length_field_frame,
    length_field_frames,
    length_field_message,
    length_fields,
)


def decode(codec: Codec, framing: Framing, wire: bytes, cuts: list[int]) -> list[bytes]:
    decoder = codec.decoder(framing)
    out: list[bytes] = []
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(wire)}), len(wire)]
    for a, b in itertools.pairwise(bounds):
        out += decoder.feed(wire[a:b])
    assert decoder.buffered == 0
    return out + decoder.feed_eof()


def decodes_everywhere(codec: Codec, framing: Framing, wire: bytes, expected: list[bytes]) -> None:
    """``wire`` decodes to ``expected`` whole, byte by byte, and twice in a row split anywhere."""
    assert decode(codec, framing, wire, []) == expected
    assert decode(codec, framing, wire, list(range(len(wire)))) == expected
    double = wire + wire
    for cut in range(len(double) + 1):
        assert decode(codec, framing, double, [cut]) == expected * 2


HELLO = b"HELLO, WORLD"

# Netty's LengthFieldBasedFrameDecoder Javadoc, its seven examples: (lengthFieldOffset,
# lengthFieldLength, lengthAdjustment, initialBytesToStrip), BEFORE DECODE, AFTER DECODE.
NETTY = {
    "1: 2-byte field, no strip": ((0, 2, 0, 0), b"\x00\x0c" + HELLO, b"\x00\x0c" + HELLO),
    "2: 2-byte field, strip it": ((0, 2, 0, 2), b"\x00\x0c" + HELLO, HELLO),
    "3: field counts the whole frame": ((0, 2, -2, 0), b"\x00\x0e" + HELLO, b"\x00\x0e" + HELLO),
    "4: 3-byte field after a 2-byte header": (
        (2, 3, 0, 0),
        b"\xca\xfe\x00\x00\x0c" + HELLO,
        b"\xca\xfe\x00\x00\x0c" + HELLO,
    ),
    "5: 3-byte field before a 2-byte header": (
        (0, 3, 2, 0),
        b"\x00\x00\x0c\xca\xfe" + HELLO,
        b"\x00\x00\x0c\xca\xfe" + HELLO,
    ),
    "6: field in the middle, strip HDR1 and it": (
        (1, 2, 1, 3),
        b"\xca\x00\x0c\xfe" + HELLO,
        b"\xfe" + HELLO,
    ),
    "7: as 6, the field counts the whole frame": (
        (1, 2, -3, 3),
        b"\xca\x00\x10\xfe" + HELLO,
        b"\xfe" + HELLO,
    ),
}


@pytest.mark.parametrize(("params", "wire", "message"), NETTY.values(), ids=NETTY.keys())
def test_netty_javadoc_examples(
    codec_implementation: Codec, params: tuple[int, int, int, int], wire: bytes, message: bytes
) -> None:
    offset, width, adjustment, strip = params
    framing = LengthField(
        width,  # type: ignore[arg-type]
        length_offset=offset,
        length_adjustment=adjustment,
        strip=strip,
    )
    decodes_everywhere(codec_implementation, framing, wire, [message])
    if strip == 0 or (offset == 0 and strip == width):  # nothing lost that encode must rebuild
        assert framing.encode(message) == wire
    else:
        with pytest.raises(aiomsg.FramingError, match="cannot encode"):
            framing.encode(message)


def test_netty_example_6_with_strip_field_keeps_hdr1_and_encodes() -> None:
    framing = LengthField(2, length_offset=1, length_adjustment=1, strip="field")
    wire = b"\xca\x00\x0c\xfe" + HELLO
    assert framing.decoder().feed(wire) == [b"\xca\xfe" + HELLO]
    assert framing.encode(b"\xca\xfe" + HELLO) == wire


HW = b"Hello world"

# tokio-util's length_delimited module docs, its seven examples: (length_field_offset,
# length_field_length, length_adjustment, num_skip), INPUT, DECODED. The parameters are as
# tokio's code reads them: where num_skip is 0, the adjustment also counts the kept head,
# which the docs' first versions forgot (tokio#2818, #4184, #6604; fixed by tokio#6638).
TOKIO = {
    "1: u16 at 0, head kept": ((0, 2, 2, 0), b"\x00\x0b" + HW, b"\x00\x0b" + HW),
    "2: u16 at 0, head skipped": ((0, 2, 0, None), b"\x00\x0b" + HW, HW),
    "3: field counts the frame": ((0, 2, 0, 0), b"\x00\x0d" + HW, b"\x00\x0d" + HW),
    "4: 3 bytes at 0 of a 5-byte head": (
        (0, 3, 5, 0),
        b"\x00\x00\x0b\xca\xfe" + HW,
        b"\x00\x00\x0b\xca\xfe" + HW,
    ),
    "5: u16 at 1 of a 4-byte head": ((1, 2, 1, 3), b"\xca\x00\x0b\xfe" + HW, b"\xfe" + HW),
    "6: as 5, counting the frame": ((1, 2, -3, 3), b"\xca\x00\x0f\xfe" + HW, b"\xfe" + HW),
    "7: 3 bytes at 0, 4th skipped": ((0, 3, 0, 4), b"\x00\x00\x0b\xff" + HW, HW),
}


@pytest.mark.parametrize(("params", "wire", "message"), TOKIO.values(), ids=TOKIO.keys())
def test_tokio_doc_examples(
    codec_implementation: Codec,
    params: tuple[int, int, int, int | None],
    wire: bytes,
    message: bytes,
) -> None:
    offset, width, adjustment, num_skip = params
    framing = LengthField.from_tokio(
        length_field_offset=offset,
        length_field_length=width,  # type: ignore[arg-type]
        length_adjustment=adjustment,
        num_skip=num_skip,
    )
    decodes_everywhere(codec_implementation, framing, wire, [message])


def test_tokio_encoding_example() -> None:
    assert LengthField.from_tokio(length_field_length=2).encode(b"hello world") == (
        b"\x00\x0bhello world"
    )
    assert LengthField.from_tokio() == LengthField(4)


@pytest.mark.parametrize(
    ("adjustment", "wire", "yielded"),
    [
        (0, b"\x00\x0b" + HW, b"\x00\x0bHello wor"),
        (-2, b"\x00\x0d" + HW, b"\x00\x0dHello wor"),
    ],
)
def test_tokios_old_doc_parameters_give_what_tokio_gave(
    adjustment: int, wire: bytes, yielded: bytes
) -> None:
    # tokio#4184 reported these outputs of the docs' first parameters: from_tokio ports
    # tokio's behaviour, not its old docs.
    framing = LengthField.from_tokio(
        length_field_length=2, length_adjustment=adjustment, num_skip=0
    )
    decoder = framing.decoder()
    assert decoder.feed(wire) == [yielded]
    assert decoder.buffered == 2  # "ld", read next as a header


def test_tokios_old_example_4_parameters_too() -> None:
    framing = LengthField.from_tokio(length_field_length=3, length_adjustment=2, num_skip=0)
    assert framing.decoder().feed(b"\x00\x00\x0b\xca\xfe" + HW) == [b"\x00\x00\x0b\xca\xfeHello wo"]


# --- recipes, on the bytes of real messages ------------------------------------------------

MQTT_PAYLOAD = bytes(range(200))
BIG_PAYLOAD = b"p" * 16_384
RECIPES = {
    "postgres ReadyForQuery": (recipes.postgres(), b"Z\x00\x00\x00\x05I", b"ZI"),
    "postgres AuthenticationOk": (
        recipes.postgres(),
        b"R\x00\x00\x00\x08\x00\x00\x00\x00",
        b"R\x00\x00\x00\x00",
    ),
    "postgres CommandComplete": (
        recipes.postgres(),
        b"C\x00\x00\x00\x0dSELECT 1\x00",
        b"CSELECT 1\x00",
    ),
    "postgres Query": (recipes.postgres(), b"Q\x00\x00\x00\x0fSELECT 1+1\x00", b"QSELECT 1+1\x00"),
    "postgres Terminate": (recipes.postgres(), b"X\x00\x00\x00\x04", b"X"),
    "postgres SSLRequest": (
        recipes.postgres_startup(),
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
        b"\x04\xd2\x16\x2f",
    ),
    "postgres StartupMessage": (
        recipes.postgres_startup(),
        b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00u\x00\x00",
        b"\x00\x03\x00\x00user\x00u\x00\x00",
    ),
    "mysql OK packet": (
        recipes.mysql(),
        b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00",
        b"\x02\x00\x00\x00\x02\x00\x00\x00",
    ),
    "mysql EOF packet": (
        recipes.mysql(),
        b"\x05\x00\x00\x05\xfe\x00\x00\x02\x00",
        b"\x05\xfe\x00\x00\x02\x00",
    ),
    "mysql COM_QUIT": (recipes.mysql(), b"\x01\x00\x00\x00\x01", b"\x00\x01"),
    "mqtt CONNACK": (recipes.mqtt(), b"\x20\x02\x00\x00", b"\x20\x00\x00"),
    "mqtt PINGREQ": (recipes.mqtt(), b"\xc0\x00", b"\xc0"),
    "mqtt PUBLISH, 2-byte remaining length": (
        recipes.mqtt(),
        b"\x30\xcd\x01\x00\x03a/b" + MQTT_PAYLOAD,  # 205 = 2 + 3 + 200
        b"\x30\x00\x03a/b" + MQTT_PAYLOAD,
    ),
    "mqtt PUBLISH, 3-byte remaining length": (
        recipes.mqtt(),
        b"\x30\x85\x80\x01\x00\x03a/b" + BIG_PAYLOAD,  # 16389 = 5 + 16384
        b"\x30\x00\x03a/b" + BIG_PAYLOAD,
    ),
    "amqp heartbeat": (recipes.amqp(), b"\x08\x00\x00\x00\x00\x00\x00\xce", b"\x08\x00\x00"),
    "amqp Connection.Close-Ok": (
        recipes.amqp(),
        b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\xce",  # class 10, method 51
        b"\x01\x00\x00\x00\x0a\x00\x33",
    ),
    "tls alert record": (
        recipes.tls_record(),
        b"\x15\x03\x03\x00\x02\x02\x28",  # fatal handshake_failure
        b"\x15\x03\x03\x02\x28",
    ),
    "tls ChangeCipherSpec": (
        recipes.tls_record(),
        b"\x14\x03\x03\x00\x01\x01",
        b"\x14\x03\x03\x01",
    ),
    "dns query example.com A": (
        recipes.dns_tcp(),
        b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        b"\x07example\x03com\x00\x00\x01\x00\x01",
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
    ),
    "kafka ApiVersions v0": (
        recipes.kafka(),
        b"\x00\x00\x00\x0b\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01a",
        b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01a",
    ),
}


@pytest.mark.parametrize(("framing", "wire", "message"), RECIPES.values(), ids=RECIPES.keys())
def test_recipes_on_real_messages(
    codec_implementation: Codec, framing: Framing, wire: bytes, message: bytes
) -> None:
    if len(wire) < 1000:
        decodes_everywhere(codec_implementation, framing, wire, [message])
    else:
        cuts = list(range(0, 3 * len(wire), 7))
        assert decode(codec_implementation, framing, wire * 3, cuts) == [message] * 3
        assert decode(codec_implementation, framing, wire, []) == [message]
    assert framing.encode(message) == wire


@pytest.mark.parametrize(
    ("remaining", "varint"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_mqtt_remaining_length_table(
    codec_implementation: Codec, remaining: int, varint: bytes
) -> None:
    # The MQTT 3.1.1 spec's table of remaining-length encodings (section 2.2.3).
    framing = recipes.mqtt(max_size=1 + 268_435_455)
    decoder = codec_implementation.decoder(framing)
    assert decoder.feed(b"\x30" + varint) == ([b"\x30"] if remaining == 0 else [])
    # A header parsed: a message in progress (the fronts' message timeout starts).
    assert decoder.buffered == (0 if remaining == 0 else 1 + len(varint))
    if remaining < 100_000:
        assert framing.encode(b"\x30" + b"r" * remaining) == b"\x30" + varint + b"r" * remaining
    # One byte over max_size: too large, or (where that takes one varint byte more than
    # max_size ever needs) a varint too long.
    small = codec_implementation.decoder(recipes.mqtt(max_size=remaining))
    if remaining in (128, 16_384, 2_097_152):
        with pytest.raises(aiomsg.FramingError, match="longer than"):
            small.feed(b"\x30" + varint)
    else:
        with pytest.raises(aiomsg.MessageTooLarge) as info:
            small.feed(b"\x30" + varint)
        assert info.value.size == 1 + remaining


def test_mqtt_refuses_a_fifth_length_byte(codec_implementation: Codec) -> None:
    framing = recipes.mqtt(max_size=1 + 268_435_455)
    for varint in (b"\x80\x80\x80\x80\x01", b"\xff\xff\xff\x80\x00"):
        with pytest.raises(aiomsg.FramingError, match="longer than 4 bytes"):
            codec_implementation.decoder(framing).feed(b"\x30" + varint)


def test_amqp_frame_end_is_checked(codec_implementation: Codec) -> None:
    good = b"\x08\x00\x00\x00\x00\x00\x00\xce"
    for wire in (good + b"\x08\x00\x00\x00\x00\x00\x00\x00", good + good[:-1] + b"x" * 5):
        with pytest.raises(aiomsg.FramingError, match="not followed by") as info:
            codec_implementation.decoder(recipes.amqp()).feed(wire)
        assert info.value.messages == [b"\x08\x00\x00"]
    decoder = codec_implementation.decoder(recipes.amqp())  # the frame-end in a later read
    assert decoder.feed(b"\x01\x00\x01\x00\x00\x00\x02ab") == []
    with pytest.raises(aiomsg.FramingError, match="not followed by"):
        decoder.feed(b"\xcd")


def test_tls_record_over_the_rfc_limit_is_refused_at_its_header(
    codec_implementation: Codec,
) -> None:
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        codec_implementation.decoder(recipes.tls_record()).feed(b"\x17\x03\x03\x48\x01")
    assert info.value.size == 3 + 2**14 + 2049


def test_postgres_startup_limit_is_the_servers() -> None:
    framing = recipes.postgres_startup()
    with pytest.raises(aiomsg.MessageTooLarge):
        framing.decoder().feed((10_001).to_bytes(4, "big"))
    assert framing.decoder().feed((10_000).to_bytes(4, "big")) == []


# --- the rules -----------------------------------------------------------------------------


def test_length_field_4_is_length_prefixed_4(codec_implementation: Codec) -> None:
    for width in (1, 2, 4, 8):
        for order in ("big", "little"):
            field = LengthField(width, byteorder=order)
            prefixed = aiomsg.LengthPrefixed(width, order)
            assert field.max_size == prefixed.max_size
            messages = [b"", b"x", b"hello" * 50]
            wire = prefixed.encode_many(messages)
            assert field.encode_many(messages) == wire
            assert codec_implementation.decoder(field).feed(wire) == messages


def test_max_size_is_capped_at_what_the_field_can_say() -> None:
    assert LengthField(1).max_size == 255
    assert LengthField(1, length_adjustment=-1).max_size == 254
    assert LengthField(1, length_offset=2, strip="field").max_size == 257
    assert LengthField(2, strip=0).max_size == 65_537
    assert LengthField(3, byteorder="little", length_adjustment=1).max_size == 2**24
    assert LengthField("varint").max_size == aiomsg.DEFAULT_MAX_SIZE
    assert LengthField(1, max_size=10).max_size == 10


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"length_width": 5}, "length_width must be 1, 2, 3, 4, 8 or 'varint'"),
        ({"length_width": True}, "length_width must be"),
        ({"length_offset": -1}, "length_offset must be an int >= 0"),
        ({"length_adjustment": 1.5}, "length_adjustment must be an int"),
        ({"strip": -1}, "strip must be None, 'field' or an int >= 0"),
        ({"strip": "header"}, "strip must be None"),
        ({"byteorder": "native"}, "byteorder must be 'big' or 'little'"),
        ({"trailer": "\xce"}, "trailer must be bytes"),
        ({"max_size": -1}, "max_size must be a non-negative int"),
        ({"length_width": "varint", "strip": 2}, "cut into a varint"),
        ({"length_width": 1, "length_adjustment": -300}, "no frame fits"),
    ],
)
def test_bad_configurations_are_refused_with_clear_words(
    kwargs: dict[str, object], words: str
) -> None:
    width = kwargs.pop("length_width", 2)
    with pytest.raises(ValueError, match=words):
        LengthField(width, **kwargs)  # type: ignore[arg-type]


def test_a_frame_shorter_than_its_header_is_corrupt(codec_implementation: Codec) -> None:
    # Netty's CorruptedFrameException: the value + adjustment would end the frame inside
    # its own header.
    framing = LengthField(4, length_adjustment=-4)
    decoder = codec_implementation.decoder(framing)
    with pytest.raises(aiomsg.FramingError, match="3 bytes before its header") as info:
        decoder.feed(b"\x00\x00\x00\x05a\x00\x00\x00\x01")
    assert info.value.messages == [b"a"]
    with pytest.raises(aiomsg.FramingError, match="failed earlier"):
        decoder.feed(b"x")


def test_a_frame_shorter_than_strip_is_corrupt(codec_implementation: Codec) -> None:
    framing = LengthField(1, strip=5)  # strips the field and 4 bytes after it
    assert codec_implementation.decoder(framing).feed(b"\x04abcd") == [b""]
    with pytest.raises(aiomsg.FramingError, match="frame of 4 bytes is shorter than strip=5"):
        codec_implementation.decoder(framing).feed(b"\x03abc")
    decoder = codec_implementation.decoder(framing)
    assert decoder.feed(b"\x06abc") == []  # the stripped bytes are still to come
    assert decoder.buffered == 4
    assert decoder.feed(b"defg") == [b"ef"]


def test_too_large_is_raised_at_the_header_before_any_body_byte(
    codec_implementation: Codec,
) -> None:
    framing = recipes.postgres(max_size=100)
    decoder = codec_implementation.decoder(framing)
    ok = framing.encode(b"D" + b"r" * 99)
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        decoder.feed(ok + b"D\x00\x00\x00\x69")  # 0x69 - 4 + 1 = 102 bytes
    assert (info.value.size, info.value.max_size) == (102, 100)
    assert info.value.messages == [b"D" + b"r" * 99]


def test_huge_fields_are_refused_not_wrapped(codec_implementation: Codec) -> None:
    framing = LengthField(8, length_offset=1, length_adjustment=-(2**40), strip="field")
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        codec_implementation.decoder(framing).feed(b"T" + b"\xff" * 8 + b"x" * 20)
    assert info.value.size == 2**64 - 1 - 2**40 + 1
    varint = LengthField("varint", max_size=2**70)
    with pytest.raises(aiomsg.MessageTooLarge):
        codec_implementation.decoder(varint).feed(b"\xff" * 10 + b"\x7f")


@pytest.mark.parametrize("framing", LENGTH_FIELDS, ids=repr)
def test_incomplete_frames_at_eof_report_every_byte(
    codec_implementation: Codec, framing: LengthField
) -> None:
    message = b"\x01\x02\x03" + b"m" * 20
    frame = length_field_frame(framing, b"\x01\x02\x03", message[3:])
    assert frame is not None
    for cut in range(1, len(frame)):
        decoder = codec_implementation.decoder(framing)
        assert decoder.feed(frame[:cut]) == []
        assert decoder.buffered == cut
        with pytest.raises(aiomsg.IncompleteMessageError) as info:
            decoder.feed_eof()
        assert info.value.partial == frame[:cut]


@pytest.mark.parametrize("framing", LENGTH_FIELDS, ids=repr)
def test_a_long_body_is_read_in_place_like_other_counted_framings(framing: LengthField) -> None:
    # The read-window API: get_buffer() offers a view into the message being built.
    size = min(framing.max_size - 10, 300_000)
    frame = length_field_frame(framing, b"\x07\x08\x09", b"b" * size)
    assert frame is not None
    expected = length_field_message(framing, frame)
    decoder = framing.decoder()
    out = decoder.feed(frame[:64])
    pos = 64
    windows = 0
    while pos < len(frame):
        view = decoder.get_buffer(1024)
        if view is None:
            n = min(1024, len(frame) - pos)
            out += decoder.feed(frame[pos : pos + n])
        else:
            windows += 1
            n = min(len(view), len(frame) - pos)
            view[:n] = frame[pos : pos + n]
            view.release()
            out += decoder.buffer_updated(n)
        pos += n
    assert out == [expected]
    if aiomsg.speedups_active() and size > 10_000:
        assert windows > 0


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_generated_configurations_decode_like_the_reference(
    codec_implementation: Codec, data: st.DataObject
) -> None:
    framing = data.draw(length_fields())
    frames = data.draw(length_field_frames(framing))
    wire = b"".join(frames)
    expected = [length_field_message(framing, f) for f in frames]
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8))
    assert decode(codec_implementation, framing, wire, cuts) == expected
    rebuildable = framing.strip in ("field", 0) or (
        framing.length_offset == 0 and framing.strip in (None, framing.length_width)
    )
    if not rebuildable:
        if expected:
            with pytest.raises(aiomsg.FramingError, match="cannot encode"):
                framing.encode_many(expected)
        return
    assert framing.encode_many(expected) == wire  # encode rebuilds the very frames
    for m in expected:
        assert codec_implementation.decoder(framing).feed(framing.encode(m)) == [m]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_encode_round_trips_every_encodable_configuration(data: st.DataObject) -> None:
    framing = data.draw(length_fields())
    message = data.draw(st.binary(max_size=min(framing.max_size, 90)))
    try:
        wire = framing.encode(message)
    except aiomsg.FramingError:
        return  # a message this configuration cannot carry: the next test says which
    assert framing.decoder().feed(wire) == [message]
    assert framing.decoder(pure_python=True).feed(wire) == [message]
    assert b"".join(bytes(p) for p in framing.encode_parts(message)) == wire


def test_encode_says_why_it_refuses() -> None:
    with pytest.raises(aiomsg.FramingError, match=r"cannot encode.*strip='field'"):
        LengthField(4, length_offset=1).encode(b"abc")
    with pytest.raises(aiomsg.FramingError, match="shorter than its 1-byte prefix"):
        recipes.postgres().encode(b"")
    with pytest.raises(aiomsg.FramingError, match="too short for length_adjustment=1"):
        recipes.mysql().encode(b"")
    with pytest.raises(aiomsg.MessageTooLarge):
        recipes.postgres(max_size=3).encode(b"Qabc")
    whole = LengthField(2, length_adjustment=-2, strip=0)
    assert whole.encode(b"\x00\x04hi") == b"\x00\x04hi"
    with pytest.raises(aiomsg.FramingError, match="frame is 3 bytes long, not 4"):
        whole.encode(b"\x00\x03hi")
    with pytest.raises(aiomsg.FramingError, match="incomplete"):
        whole.encode(b"\x00")


def test_framings_are_values() -> None:
    assert recipes.postgres() == LengthField(
        4, length_offset=1, length_adjustment=-4, strip="field"
    )
    assert recipes.postgres() != recipes.postgres_startup()
    assert len({recipes.mqtt(), recipes.mqtt(), recipes.amqp()}) == 2
    for framing in LENGTH_FIELDS:
        assert eval(repr(framing), {"LengthField": LengthField}) == framing


# --- the command-line spec -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "framing"),
    [
        ("field:4", LengthField(4)),
        ("field:3:little,adjust=1", recipes.mysql()),
        ("field:4,offset=1,adjust=-4,strip=field", recipes.postgres()),
        ("field:varint,offset=1,strip=field", recipes.mqtt()),
        ("field:4, offset=3, strip=field, trailer=CE", recipes.amqp()),
        (
            "field:2,offset=0x1,adjust=-3,strip=3",
            LengthField(2, length_offset=1, length_adjustment=-3, strip=3),
        ),
    ],
)
def test_spec_names_the_framing(spec: str, framing: LengthField) -> None:
    assert parse_length_field_spec(spec) == framing


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("length:4", "use field:WIDTH"),
        ("field:5", "length_width must be"),
        ("field:four", "WIDTH must be a whole number"),
        ("field:4:middle", "byte order must be 'big' or 'little'"),
        ("field:4,offset", "not NAME=VALUE"),
        ("field:4,offset=1,offset=2", "given twice"),
        ("field:4,colour=red", "unknown option 'colour'"),
        ("field:4,trailer=zz", "trailer must be hex digits"),
        ("field:varint,offset=1,strip=2", "cut into a varint"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as info:
        parse_length_field_spec(spec)
    assert repr(spec) in str(info.value)


def test_spec_max_size() -> None:
    assert parse_length_field_spec("field:2", max_size=9).max_size == 9


# --- through a real front ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_postgres_shaped_messages_through_the_streams_front() -> None:
    framing = recipes.postgres()
    messages = [b"Z" + b"I", b"D" + b"x" * 100_000, b"X", b"C" + b"SELECT 1\x00"] * 20

    async def echo(conn: aiomsg.Connection) -> None:
        async for message in conn:
            await conn.send(message)

    async with aiomsg.serve(echo, "127.0.0.1", 0, framing=framing) as server:
        async with await aiomsg.connect("127.0.0.1", server.port, framing=framing) as conn:
            await conn.send_many(messages)
            got = [await asyncio.wait_for(conn.receive(), 30) for _ in messages]
    assert got == messages


def test_a_length_field_nests_in_type_prefixed(codec_implementation: Codec) -> None:
    framing = aiomsg.TypePrefixed(
        {1: LengthField(2, trailer=b"!"), 2: LengthField(2, length_adjustment=-2, strip=0)}
    )
    wire = b"\x01\x00\x02hi!\x02\x00\x04ok"
    assert decode(codec_implementation, framing, wire, list(range(len(wire)))) == [
        b"\x01hi",
        b"\x02\x00\x04ok",
    ]
    assert framing.encode(b"\x01hi") == b"\x01\x00\x02hi!"
    # strip="field" keeps a prefix a TypePrefixed body cannot have: refused, not mangled.
    typed = aiomsg.TypePrefixed({1: recipes.mqtt()})
    with pytest.raises(TypeError, match=r"strip='field'|header Scanner"):
        codec_implementation.decoder(typed).feed(b"\x01\x20\x00")
