"""The C scanner and the pure-Python decoders agree on everything, for every framing.

Both implementations share one slow path (the framing's ``_header_at``, the
delimiter rules), so they can only disagree if a fast loop takes a message the
rules would refuse, or stops where it should not. These tests look for that:
hypothesis-generated streams, then mutated (bytes flipped, cut short, junk and
oversized headers spliced in), fed whole, byte by byte and at random split
points, as bytes, bytearray or memoryview. Every ``feed()`` must return the same
messages, ``buffered`` must match, and the stream must end the same way: the
same error type with the same text, good messages and partial bytes.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiomsg
from aiomsg.framing import Buffer, Framing, speedups_active

from .strategies import LENGTH_FIELDS, length_field_frame, length_field_frames, length_fields

pytestmark = pytest.mark.skipif(not speedups_active(), reason="the C speedups are not built")

FRAMINGS = [
    aiomsg.LengthPrefixed(1),
    aiomsg.LengthPrefixed(2, "little", max_size=40),
    aiomsg.LengthPrefixed(4),
    aiomsg.LengthPrefixed(8, "big", max_size=60),
    aiomsg.LengthPrefixed(8, "little"),
    aiomsg.AsciiLengthPrefixed(3, max_size=50),
    aiomsg.AsciiLengthPrefixed(20),
    aiomsg.AsciiLengthPrefixed(20, max_size=2**70),  # bodies past what C counts in
    aiomsg.Netstring(),
    aiomsg.Netstring(max_size=30),
    aiomsg.Varint(),
    aiomsg.Varint(max_size=40),
    aiomsg.Varint(max_size=2**70),  # lengths past 64 bits: C stops, Python judges
    aiomsg.FixedLength(1),
    aiomsg.FixedLength(7),
    aiomsg.TypePrefixed(
        {
            1: 4,
            2: aiomsg.LengthPrefixed(2, max_size=50),
            3: aiomsg.Netstring(max_size=20),
            4: aiomsg.Varint(),
            5: 0,
            6: aiomsg.AsciiLengthPrefixed(2),
            7: aiomsg.FixedLength(3),
        },
        max_size=45,
    ),
    aiomsg.Delimited(b"\n"),
    aiomsg.Delimited(b"\r\n", max_size=20),
    aiomsg.Delimited(b"aab", max_size=25),
    aiomsg.Lines(),
    aiomsg.Lines(max_size=15),
    *LENGTH_FIELDS,
]


def encodable(framing: Framing, message: bytes) -> bool:
    try:
        framing.encode(message)
    except aiomsg.FramingError:
        return False
    return True


@st.composite
def wires(draw: st.DrawFn, framing: Framing) -> bytes:
    """Good messages, then perhaps mutated into something a hostile peer sends."""
    limit = min(framing.max_size, 60)
    if isinstance(framing, aiomsg.FixedLength):
        message = st.binary(min_size=framing.size, max_size=framing.size)
    elif isinstance(framing, aiomsg.TypePrefixed):
        kinds = sorted(framing.table)
        message = st.builds(
            lambda kind, body: bytes([kind]) + body, st.sampled_from(kinds), st.binary(max_size=9)
        )
    else:
        alphabet = st.sampled_from(b"ab\r\n\x00\x80\xff:,0123456789")
        message = st.lists(alphabet, max_size=limit).map(bytes)
    if isinstance(framing, aiomsg.LengthField):  # frames of any strip, encodable or not
        wire = bytearray(b"".join(draw(length_field_frames(framing))))
    else:
        messages = draw(st.lists(message.filter(lambda m: encodable(framing, m)), max_size=8))
        wire = bytearray(framing.encode_many(messages))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "cut", "splice", "oversized", "too-large"]))
        at = draw(st.integers(0, len(wire)))
        if op == "flip" and wire:
            at = min(at, len(wire) - 1)
            wire[at] = draw(
                st.sampled_from([0, 1, 9, 0x30, 0x39, 0x3A, 0x2C, 0x0A, 0x0D, 0x7F, 0x80, 0xFF])
            )
        elif op == "cut":
            del wire[at:]
        elif op == "too-large" and framing.max_size <= 100:
            wire[at:at] = over_max_size(framing)
        elif op == "splice":
            wire[at:at] = draw(st.binary(min_size=1, max_size=12))
        else:  # a header announcing more than max_size, or a very long run of digits
            wire[at:at] = draw(
                st.sampled_from(
                    [b"\xff" * 8, b"\x7f" * 4, b"9" * 25, b"0" * 22, b"\x80" * 11, b"1" * 19 + b":"]
                )
            )
    return bytes(wire)


def over_max_size(framing: Framing) -> bytes:
    """A whole message of max_size + 1 bytes, as a peer ignoring the limit sends it."""
    n = framing.max_size + 1
    body = b"z" * n
    if isinstance(framing, aiomsg.LengthPrefixed):
        return n.to_bytes(framing.width, framing.byteorder) + body  # type: ignore[arg-type]
    if isinstance(framing, aiomsg.AsciiLengthPrefixed):
        return b"%0*d" % (framing.digits, n) + body
    if isinstance(framing, aiomsg.Netstring):
        return b"%d:" % n + body + b","
    if isinstance(framing, aiomsg.Varint):
        return aiomsg.framing.encode_varint(n) + body
    if isinstance(framing, aiomsg.TypePrefixed):  # its type 2 is LengthPrefixed(2)
        return b"\x02" + n.to_bytes(2, "big") + body
    if isinstance(framing, aiomsg.LengthField):
        # A message of max_size + 1 bytes: the bytes after the field that make it so.
        width = framing.length_width
        header = framing.length_offset + (width if isinstance(width, int) else 1)
        if framing.strip is None:
            after = n
        elif framing.strip == "field":
            after = n - framing.length_offset
        else:  # an int strip: the message starts strip bytes into the frame
            assert isinstance(framing.strip, int)
            after = n + framing.strip - header
        frame = length_field_frame(framing, b"\x01\x02\x03", b"z" * max(after, 0))
        return frame or b""
        return body + (b"\n" if isinstance(framing, aiomsg.Lines) else framing.delimiter)
    return b""  # FixedLength: every message has its size


def cut_points(data: st.DataObject, wire: bytes) -> list[list[int]]:
    random_cuts = data.draw(st.lists(st.integers(1, max(1, len(wire) - 1)), max_size=10))
    return [[], list(range(1, len(wire))), sorted(set(random_cuts))]


def run(framing: Framing, wire: bytes, cuts: list[int], kind: str, pure: bool) -> list[Any]:
    """Everything observable about decoding ``wire`` cut at ``cuts``."""
    decoder = framing.decoder(pure_python=pure)
    seen: list[Any] = []
    bounds = [0, *[c for c in cuts if 0 < c < len(wire)], len(wire)]
    try:
        for a, b in itertools.pairwise(bounds):
            chunk: Buffer = wire[a:b]
            if kind == "bytearray":
                chunk = bytearray(chunk)
            elif kind == "memoryview":
                chunk = memoryview(wire)[a:b]
            seen.append(("feed", decoder.feed(chunk), decoder.buffered))
        seen.append(("eof", decoder.feed_eof()))
    except aiomsg.FramingError as exc:
        seen.append(
            (
                type(exc),
                str(exc),
                exc.messages,
                getattr(exc, "partial", None),
                getattr(exc, "size", None),
            )
        )
    return seen


@pytest.mark.parametrize("framing", FRAMINGS, ids=repr)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_c_and_python_decoders_agree_on_any_stream(framing: Framing, data: st.DataObject) -> None:
    wire = data.draw(wires(framing))
    kind = data.draw(st.sampled_from(["bytes", "bytearray", "memoryview"]))
    for cuts in cut_points(data, wire):
        c_path = run(framing, wire, cuts, kind, pure=False)
        python_path = run(framing, wire, cuts, kind, pure=True)
        assert c_path == python_path, (wire, cuts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_c_and_python_agree_on_generated_length_field_configurations(
    data: st.DataObject,
) -> None:
    framing = data.draw(length_fields())
    wire = data.draw(wires(framing))
    kind = data.draw(st.sampled_from(["bytes", "bytearray", "memoryview"]))
    for cuts in cut_points(data, wire):
        assert run(framing, wire, cuts, kind, pure=False) == run(
            framing, wire, cuts, kind, pure=True
        ), (framing, wire, cuts)


def test_the_differential_test_can_tell_the_implementations_apart() -> None:
    # The comparison is only worth something if the two decoders are different
    # code: the C one must run the C scanner, the other must not.
    for framing in FRAMINGS:
        c_decoder, py_decoder = framing.decoder(), framing.decoder(pure_python=True)
        c_fast, py_fast = c_decoder._fast, py_decoder._fast  # type: ignore[attr-defined]
        assert type(c_fast).__name__ == "builtin_function_or_method", framing
        assert type(py_fast).__name__ != "builtin_function_or_method", framing


@pytest.mark.parametrize(
    ("framing", "wire"),
    [
        (aiomsg.LengthPrefixed(8, max_size=2**62), b"\xff" * 8),
        (aiomsg.AsciiLengthPrefixed(20), b"9" * 20),
        (aiomsg.Netstring(max_size=2**80), b"9" * 25 + b":"),
        (aiomsg.Varint(max_size=2**64), b"\xff" * 9 + b"\x7f"),  # 2**70 - 1
        (aiomsg.Varint(max_size=2**63 - 1), b"\x80" * 9 + b"\x01"),  # 2**63
    ],
    ids=repr,
)
def test_lengths_past_64_bits_are_refused_not_wrapped(framing: Framing, wire: bytes) -> None:
    # The C scanner must stop (never wrap a length into a small one and emit a
    # message); Python then raises MessageTooLarge with the true size.
    for pure in (False, True):
        with pytest.raises(aiomsg.MessageTooLarge) as info:
            framing.decoder(pure_python=pure).feed(wire + b"x" * 64)
        assert info.value.size is not None and info.value.size > 2**62
        assert info.value.messages == []


def test_a_body_longer_than_c_can_count_is_collected_like_any_other() -> None:
    # max_size over sys.maxsize: a header may announce such a body; both paths
    # wait for it (and report it at EOF) instead of overflowing.
    framing = aiomsg.AsciiLengthPrefixed(20, max_size=2**70)
    for pure in (False, True):
        decoder = framing.decoder(pure_python=pure)
        assert decoder.feed(b"00000000000000000003abc" + b"9" * 20 + b"xy") == [b"abc"]
        assert decoder.buffered == 22  # the header and the body bytes
        with pytest.raises(aiomsg.IncompleteMessageError) as info:
            decoder.feed_eof()
        assert info.value.partial == b"9" * 20 + b"xy"
