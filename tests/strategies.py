"""The framings under test, each with a hypothesis strategy for messages it can carry."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

import aiomsg
from aiomsg.framing import Framing


def _can_encode(framing: Framing, message: bytes) -> bool:
    try:
        framing.encode(message)
    except aiomsg.FramingError:
        return False
    return True


@dataclass(frozen=True)
class Case:
    name: str
    framing: Framing
    messages: st.SearchStrategy[bytes]

    def __str__(self) -> str:
        return self.name


def _case(name: str, framing: Framing, messages: st.SearchStrategy[bytes] | None = None) -> Case:
    base = messages if messages is not None else st.binary(max_size=300)
    return Case(name, framing, base.filter(lambda m: _can_encode(framing, m)))


_TYPES = aiomsg.TypePrefixed(
    {1: 4, 2: aiomsg.LengthPrefixed(2), 3: aiomsg.Netstring(), 4: aiomsg.Varint(), 5: 0}
)

# Every strategy, with its non-default variants: the single list that every
# parametrized test in the suite (codecs and fronts) draws from.
CASES = [
    _case("fixed", aiomsg.FixedLength(7), st.binary(min_size=7, max_size=7)),
    _case("delimited-crlf", aiomsg.Delimited(b"\r\n")),
    _case("delimited-nul", aiomsg.Delimited(b"\0")),
    _case(
        "delimited-aab",
        aiomsg.Delimited(b"aab"),
        st.binary(max_size=60).map(lambda b: b.replace(b"\0", b"a")),
    ),
    _case("lines", aiomsg.Lines()),
    _case("lines-crlf", aiomsg.Lines(newline=b"\r\n")),
    _case("length1", aiomsg.LengthPrefixed(1)),
    _case("length2-little", aiomsg.LengthPrefixed(2, "little")),
    _case("length4", aiomsg.LengthPrefixed(4)),
    _case("length8", aiomsg.LengthPrefixed(8)),
    _case("ascii5", aiomsg.AsciiLengthPrefixed(5)),
    _case("netstring", aiomsg.Netstring()),
    _case("varint", aiomsg.Varint()),
    _case("lengthfield-3-little", aiomsg.LengthField(3, byteorder="little")),
    _case("lengthfield-counts-itself", aiomsg.LengthField(4, length_adjustment=-4)),
    _case("lengthfield-varint-trailer", aiomsg.LengthField("varint", trailer=b"\xce")),
    _case(
        "typed",
        _TYPES,
        st.one_of(
            st.binary(min_size=4, max_size=4).map(lambda b: b"\x01" + b),
            st.binary(max_size=300).map(lambda b: bytes([2 + len(b) % 3]) + b),
            st.just(b"\x05"),
        ),
    ),
]


# --- LengthField: generated configurations and the frames they read ---------------------

#: Shapes a LengthField may have, with real protocols among them.
LENGTH_FIELDS = [
    aiomsg.LengthField(4, length_offset=1, length_adjustment=-4, strip="field"),  # PostgreSQL
    aiomsg.LengthField(3, byteorder="little", length_adjustment=1),  # MySQL
    aiomsg.LengthField("varint", length_offset=1, strip="field"),  # MQTT
    aiomsg.LengthField(4, length_offset=3, strip="field", trailer=b"\xce"),  # AMQP
    aiomsg.LengthField(2, length_offset=1, length_adjustment=1, strip=3),  # Netty's 6th
    aiomsg.LengthField(2, length_adjustment=-2, strip=0),  # whole frames
    aiomsg.LengthField(3, strip=4),  # tokio's 7th: a byte between field and body
    aiomsg.LengthField("varint", length_offset=2, strip=1, max_size=40, trailer=b"\r\n"),
    aiomsg.LengthField(8, byteorder="little", length_adjustment=5, max_size=50),
    aiomsg.LengthField(1, length_offset=2, length_adjustment=-3, strip="field", max_size=30),
]


@st.composite
def length_fields(draw: st.DrawFn) -> aiomsg.LengthField:
    """Any valid LengthField configuration, small enough for hostile streams to matter."""
    width = draw(st.sampled_from([1, 2, 3, 4, 8, "varint"]))
    assert isinstance(width, int | str)
    offset = draw(st.integers(0, 3))
    header = offset + (width if isinstance(width, int) else 1)
    if width == "varint":
        strip = draw(st.sampled_from([None, "field", *range(offset + 1)]))
    else:
        strip = draw(st.sampled_from([None, "field", *range(header + 3)]))
    try:
        return aiomsg.LengthField(
            width,  # type: ignore[arg-type]
            length_offset=offset,
            length_adjustment=draw(st.integers(-6, 6)),
            strip=strip,
            byteorder=draw(st.sampled_from(["big", "little"])),
            max_size=draw(st.sampled_from([0, 3, 17, 60, aiomsg.DEFAULT_MAX_SIZE])),
            trailer=draw(st.sampled_from([b"", b"\xce", b"\r\n"])),
        )
    except ValueError:  # no frame fits that configuration (a refusal tested elsewhere)
        return aiomsg.LengthField(2, length_offset=offset, strip="field")


def length_field_frame(framing: aiomsg.LengthField, prefix: bytes, after: bytes) -> bytes | None:
    """The frame with these bytes before and after its length field (trailer added), or
    None when its field cannot say that (negative or too wide a value)."""
    value = len(after) - framing.length_adjustment
    if value < 0:
        return None
    if framing.length_width == "varint":
        field = aiomsg.framing.encode_varint(value)
    else:
        width = int(framing.length_width)
        if value >= 1 << (8 * width):
            return None
        field = value.to_bytes(width, framing.byteorder)  # type: ignore[arg-type]
    return prefix[: framing.length_offset] + field + after + framing.trailer


def length_field_message(framing: aiomsg.LengthField, frame: bytes) -> bytes:
    """What a decoder delivers for ``frame`` (from ``length_field_frame``): the reference rule."""
    offset = framing.length_offset
    body = frame[: len(frame) - len(framing.trailer)]
    if framing.length_width == "varint":
        end = offset
        while body[end] & 0x80:
            end += 1
        header = end + 1
    else:
        header = offset + int(framing.length_width)
    if framing.strip == "field":
        return body[:offset] + body[header:]
    if framing.strip is None:
        return body[header:]
    assert isinstance(framing.strip, int)
    return body[framing.strip :]


@st.composite
def length_field_frames(draw: st.DrawFn, framing: aiomsg.LengthField) -> list[bytes]:
    """Well-formed frames of ``framing`` whose messages fit its max_size."""
    frames = []
    for _ in range(draw(st.integers(0, 6))):
        prefix = draw(st.binary(min_size=framing.length_offset, max_size=framing.length_offset))
        after = draw(st.binary(max_size=min(70, framing.max_size + 8)))
        frame = length_field_frame(framing, prefix, after)
        if frame is None:
            continue
        strip = framing.strip
        if isinstance(strip, int) and strip > len(frame) - len(framing.trailer):
            continue
        if len(length_field_message(framing, frame)) <= framing.max_size:
            frames.append(frame)
    return frames
