"""LengthPrefixed on both codec implementations (pure Python and the C speedups).

The C loop decodes runs of whole messages and hands everything else back to
Python, so these tests aim at the hand-over points: headers and bodies split
across reads, an oversized header after good messages, the caller's buffer
reused between reads, and unusual buffers. Each is checked against a reference
decoder written for clarity, not speed.
"""

from __future__ import annotations

import os
import platform
import shutil
import sysconfig

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiomsg
from aiomsg.framing import speedups_active

from .conftest import Codec


def reference(
    wire: bytes, width: int, byteorder: str, max_size: int
) -> tuple[list[bytes], type[Exception] | None]:
    """The messages in ``wire`` and the error that ends the stream (None: a clean end)."""
    messages: list[bytes] = []
    pos = 0
    while pos < len(wire):
        if len(wire) - pos < width:
            return messages, aiomsg.IncompleteMessageError
        size = int.from_bytes(wire[pos : pos + width], byteorder)  # type: ignore[arg-type]
        if size > max_size:
            return messages, aiomsg.MessageTooLarge
        if len(wire) - pos - width < size:
            return messages, aiomsg.IncompleteMessageError
        messages.append(wire[pos + width : pos + width + size])
        pos += width + size
    return messages, None


@st.composite
def streams(draw: st.DrawFn) -> tuple[aiomsg.LengthPrefixed, bytes, list[int]]:
    """A framing, a wire of good messages perhaps followed by junk, and where to cut it."""
    width = draw(st.sampled_from([1, 2, 4, 8]))
    byteorder = draw(st.sampled_from(["big", "little"]))
    max_size = draw(st.integers(0, 300))
    framing = aiomsg.LengthPrefixed(width, byteorder, max_size=max_size)  # type: ignore[arg-type]
    messages = draw(st.lists(st.binary(max_size=min(max_size, 255)), max_size=10))
    wire = b"".join(len(m).to_bytes(width, byteorder) + m for m in messages)  # type: ignore[arg-type]
    wire += draw(st.binary(max_size=20))  # often an oversized or unfinished message
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(wire) - 1)), max_size=12))))
    return framing, wire, cuts


@settings(max_examples=400, deadline=None)
@given(streams())
def test_decoder_agrees_with_the_reference_at_any_split(
    codec_implementation: Codec,
    case: tuple[aiomsg.LengthPrefixed, bytes, list[int]],
) -> None:
    framing, wire, cuts = case
    expected, error = reference(wire, framing.width, framing.byteorder, framing.max_size)
    decoder = codec_implementation.decoder(framing)
    got: list[bytes] = []
    raised: type[Exception] | None = None
    try:
        for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
            got += decoder.feed(memoryview(wire)[a:b])
        got += decoder.feed_eof()
    except aiomsg.MessageTooLarge as exc:
        got += exc.messages
        raised = aiomsg.MessageTooLarge
    except aiomsg.IncompleteMessageError:
        raised = aiomsg.IncompleteMessageError
    assert got == expected
    assert raised is error


def test_messages_survive_the_callers_buffer_being_reused(codec_implementation: Codec) -> None:
    # A BufferedProtocol reads every chunk into the same bytearray.
    framing = aiomsg.LengthPrefixed(2)
    wire = framing.encode_many([b"first", b"x" * 1000, b"third"])
    buffer = bytearray(64)
    decoder = codec_implementation.decoder(framing)
    got: list[bytes] = []
    for pos in range(0, len(wire), 64):
        chunk = wire[pos : pos + 64]
        buffer[: len(chunk)] = chunk
        got += decoder.feed(memoryview(buffer)[: len(chunk)])
        buffer[:] = b"\xee" * 64
    assert got == [b"first", b"x" * 1000, b"third"]


def test_oversized_header_after_good_messages_keeps_them(codec_implementation: Codec) -> None:
    framing = aiomsg.LengthPrefixed(4, max_size=8)
    decoder = codec_implementation.decoder(framing)
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        decoder.feed(framing.encode(b"one") + framing.encode(b"two") + (9).to_bytes(4, "big"))
    assert info.value.messages == [b"one", b"two"]
    assert (info.value.size, info.value.max_size) == (9, 8)
    with pytest.raises(aiomsg.FramingError, match="failed earlier"):
        decoder.feed(b"\x00")


def test_largest_eight_byte_length_is_refused_not_overflowed(codec_implementation: Codec) -> None:
    decoder = codec_implementation.decoder(aiomsg.LengthPrefixed(8, "little"))
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        decoder.feed(b"\xff" * 8)
    assert info.value.size == 2**64 - 1


def test_unusual_buffers_decode_like_bytes(codec_implementation: Codec) -> None:
    framing = aiomsg.LengthPrefixed(2)
    wire = framing.encode_many([b"ab", b"", b"cdef"])
    strided = memoryview(bytes(b for b in wire for _ in range(2)))[::2]  # not contiguous
    assert codec_implementation.decoder(framing).feed(strided) == [b"ab", b"", b"cdef"]
    shorts = memoryview(wire).cast("H")  # 2-byte items: still counted in bytes
    assert codec_implementation.decoder(framing).feed(shorts) == [b"ab", b"", b"cdef"]
    assert codec_implementation.decoder(framing).feed(bytearray(wire)) == [b"ab", b"", b"cdef"]


def test_encode_takes_any_buffer_and_refuses_oversized_messages() -> None:
    framing = aiomsg.LengthPrefixed(4, "little", max_size=5)
    assert framing.encode(memoryview(b"hello")) == b"\x05\x00\x00\x00hello"
    assert framing.encode(bytearray(b"")) == b"\x00\x00\x00\x00"
    parts: list[bytes | memoryview] = [b"a", memoryview(b"bc")]
    assert framing.encode_many(m for m in parts) == (
        b"\x01\x00\x00\x00a\x02\x00\x00\x00bc"
    )
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        framing.encode(memoryview(b"toolong"))
    assert info.value.size == 7
    with pytest.raises(aiomsg.MessageTooLarge) as info:
        framing.encode_many([b"ok", b"x" * 6, b"ok"])
    assert info.value.size == 6
    with pytest.raises(TypeError):
        framing.encode("text")  # type: ignore[arg-type]


def _compiler() -> str | None:
    # The compiler the build used: $CC when set (setuptools honours it), else Python's own.
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


def test_speedups_are_built_wherever_they_can_be() -> None:
    # The speedups are optional at install time (a machine without a C compiler
    # still gets a working aiomsg), so nothing else would notice a broken build.
    possible = platform.python_implementation() == "CPython" and _compiler() is not None
    wanted = not os.environ.get("AIOMSG_PURE_PYTHON")
    assert speedups_active() == (possible and wanted)


def _decode_all(decoder: aiomsg.framing.Decoder, data: bytes) -> tuple[list[bytes], str | None]:
    """The messages ``data`` completes and the error it raised (its type's name), if any."""
    try:
        return decoder.feed(data), None
    except aiomsg.FramingError as exc:
        return exc.messages, type(exc).__name__


@settings(max_examples=300, deadline=None)
@given(streams(), st.data())
def test_idle_scanner_then_feed_decodes_as_feed_alone(
    case: tuple[aiomsg.LengthPrefixed, bytes, list[int]], data: st.DataObject
) -> None:
    """The contract the fronts' fast path relies on (Decoder.idle_scanner): scan a read
    that ends at ``end`` inside a larger buffer; feed the decoder from where the scan
    stopped; the result is what feeding the whole read gives, bytes past ``end`` unread."""
    framing, wire, _ = case
    scan = framing.decoder().idle_scanner()
    if not speedups_active():
        assert scan is None
        return
    assert scan is not None
    assert framing.decoder(pure_python=True).idle_scanner() is None
    end = data.draw(st.integers(0, len(wire)))
    buffer = bytearray(wire[:end] + b"\x00\x00\x00\x01" + bytes(16))  # junk past the read
    out: list[bytes] = []
    pos = scan(buffer, 0, out, end)
    assert 0 <= pos <= end
    decoder = framing.decoder()
    if pos == end:  # the decoder is not needed: it would have held nothing
        reference_decoder = framing.decoder()
        assert reference_decoder.feed(bytes(buffer[:end])) == out
        assert reference_decoder.buffered == 0
        return
    rest, error = _decode_all(decoder, bytes(buffer[pos:end]))
    assert (out + rest, error) == _decode_all(framing.decoder(), bytes(buffer[:end]))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([1, 2, 4, 8]),
    st.sampled_from(["big", "little"]),
    st.integers(0, 300),
    st.binary(max_size=400),
    st.sampled_from([bytes, bytearray, memoryview]),
)
def test_encoder_encodes_as_encode(
    width: int, byteorder: str, max_size: int, message: bytes, kind: type
) -> None:
    """framing.encoder() (the C encoder with the speedups) gives encode()'s bytes and errors."""
    framing = aiomsg.LengthPrefixed(width, byteorder, max_size=max_size)  # type: ignore[arg-type]
    encode = framing.encoder()
    buffer = kind(message)
    if len(message) > framing.max_size:
        with pytest.raises(aiomsg.MessageTooLarge) as info:
            encode(buffer)
        assert (info.value.size, info.value.max_size) == (len(message), framing.max_size)
        assert str(info.value) == (
            f"message of {len(message)} bytes is over max_size={framing.max_size}"
        )
    else:
        wire = len(message).to_bytes(width, byteorder) + message  # type: ignore[arg-type]
        assert encode(buffer) == wire == framing.encode(buffer)


def test_encoder_refuses_what_encode_refuses_and_is_kept_per_framing() -> None:
    framing = aiomsg.LengthPrefixed(2)
    encode = framing.encoder()
    with pytest.raises(TypeError):
        encode("text")  # type: ignore[arg-type]
    if speedups_active():  # equal framings share one C encoder; without it, encode itself
        assert aiomsg.LengthPrefixed(2).encoder() is encode
    else:
        assert encode == framing.encode
    assert aiomsg.Lines().encoder()(b"hi") == b"hi\n"  # the default: encode itself


@pytest.mark.skipif(not speedups_active(), reason="the C scanner's own arguments")
def test_scan_end_bounds_the_read() -> None:
    from aiomsg.framing._contract import _c_scanner

    scanner = _c_scanner(aiomsg.LengthPrefixed(1))
    assert scanner is not None
    buffer = bytearray(b"\x01a\x01b\x01c")
    out: list[bytes] = []
    assert scanner.scan(buffer, 0, out, 4) == 4
    assert out == [b"a", b"b"]  # nothing past end is read
    with pytest.raises(ValueError, match="end is past the data"):
        scanner.scan(buffer, 0, out, 7)
    with pytest.raises(ValueError, match="pos is outside the data"):
        scanner.scan(buffer, 5, out, 4)
    with pytest.raises(TypeError, match="3 or 4 arguments"):
        scanner.scan(buffer)  # type: ignore[call-arg]
