"""Reading a long body in place: the decoder's read window, as MessageProtocol drives it.

With the C speedups, while a body longer than a read is arriving, the event loop
reads straight into the message being built (``get_buffer`` / ``buffer_updated``)
instead of into the protocol's buffer (``feed``). Without them no window is
offered and everything goes through ``feed``. Either way the messages must be
the same, memory must grow only as bytes arrive, and misuse must fail loudly.
"""

from __future__ import annotations

import random

import pytest

import aiomsg
from aiomsg.framing import Decoder, Framing

from .conftest import Codec

READ_SIZE = 4096

FRAMINGS = [
    aiomsg.LengthPrefixed(4),
    aiomsg.AsciiLengthPrefixed(8),
    aiomsg.Netstring(),
    aiomsg.Varint(),
    aiomsg.FixedLength(100_000),
    aiomsg.TypePrefixed({1: aiomsg.LengthPrefixed(4), 2: 100_000}),
]


def messages_for(framing: Framing) -> list[bytes]:
    sizes = [100_000, 5, 100_000, 70_000, 0, 100_000]
    if isinstance(framing, aiomsg.FixedLength):
        sizes = [100_000] * 4
    out = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    if isinstance(framing, aiomsg.TypePrefixed):
        out = [b"\x01" + m if len(m) != 100_000 else b"\x02" + m for m in out]
    return out


def drive_like_an_event_loop(decoder: Decoder, wire: bytes, seed: int) -> list[bytes]:
    """Hand ``wire`` over in reads of random sizes, as MessageProtocol does with a loop."""
    rng = random.Random(seed)
    buffer = memoryview(bytearray(READ_SIZE))
    out: list[bytes] = []
    pos = 0
    while pos < len(wire):
        window = decoder.get_buffer(len(buffer))
        target = buffer if window is None else window
        n = min(len(target), len(wire) - pos, rng.randint(1, 3 * READ_SIZE))
        target[:n] = wire[pos : pos + n]
        pos += n
        if window is None:
            out += decoder.feed(buffer[:n])
        else:
            window.release()  # the loop drops its view after buffer_updated()
            out += decoder.buffer_updated(n)
    return out + decoder.feed_eof()


@pytest.mark.parametrize("framing", FRAMINGS, ids=repr)
@pytest.mark.parametrize("seed", range(3))
def test_reading_in_place_gives_the_same_messages(
    codec_implementation: Codec, framing: Framing, seed: int
) -> None:
    messages = messages_for(framing)
    wire = framing.encode_many(messages)
    assert drive_like_an_event_loop(codec_implementation.decoder(framing), wire, seed) == messages


def test_a_window_is_offered_only_with_the_speedups_and_only_inside_a_long_body(
    codec_implementation: Codec,
) -> None:
    framing = aiomsg.LengthPrefixed(4)
    decoder = codec_implementation.decoder(framing)
    assert decoder.get_buffer(READ_SIZE) is None  # between messages
    decoder.feed(framing.encode(b"x" * 50_000)[:10])
    window = decoder.get_buffer(READ_SIZE)
    assert (window is not None) == (codec_implementation.name == "c")
    del window  # the loop's read found nothing after all and dropped the view
    assert decoder.feed(b"y" * 30) == []
    assert decoder.buffered == 40  # the 4-byte header and 36 body bytes


def test_window_grows_only_as_fast_as_bytes_arrive(codec_implementation: Codec) -> None:
    # A peer announcing 16 MiB must not make us allocate 16 MiB before it sends it.
    decoder = codec_implementation.decoder(aiomsg.LengthPrefixed(4))
    decoder.feed((16 * 1024 * 1024).to_bytes(4, "big") + b"z" * 10)
    received = 10
    if codec_implementation.name == "python":  # no window: every byte goes through feed()
        assert decoder.get_buffer(READ_SIZE) is None
        return
    for _ in range(6):
        window = decoder.get_buffer(READ_SIZE)
        assert window is not None
        assert len(window) <= max(READ_SIZE, received)
        window[:] = b"w" * len(window)
        n = len(window)
        window.release()
        decoder.buffer_updated(n)
        received += n
    assert decoder.buffered == 4 + received  # the header counts too


def test_misusing_a_window_fails_loudly_instead_of_corrupting_memory(
    codec_implementation: Codec,
) -> None:
    decoder = codec_implementation.decoder(aiomsg.LengthPrefixed(4))
    decoder.feed((100_000).to_bytes(4, "big") + b"a")
    window = decoder.get_buffer(READ_SIZE)
    if codec_implementation.name == "python":  # no window, so nothing to misuse
        assert window is None
        return
    assert window is not None
    with pytest.raises(BufferError):
        decoder.feed(b"b" * 10)  # the window still holds the body in place
    with pytest.raises(ValueError):
        decoder.buffer_updated(len(window) + 1)
    window.release()


def test_eof_inside_a_body_read_in_place_reports_every_byte(codec_implementation: Codec) -> None:
    framing = aiomsg.Netstring()
    wire = framing.encode(b"q" * 50_000)[:30_000]
    decoder = codec_implementation.decoder(framing)
    with pytest.raises(aiomsg.IncompleteMessageError) as info:
        drive_like_an_event_loop(decoder, wire, seed=1)
    assert info.value.partial == wire


@pytest.mark.parametrize(
    "framing", [*FRAMINGS, aiomsg.Lines(), aiomsg.framing.UntilEOF()], ids=repr
)
def test_buffer_updated_without_a_window_is_refused(
    codec_implementation: Codec, framing: Framing
) -> None:
    # Between messages no window is offered: bytes claimed to be in one are a
    # front's bug, and must not be taken as part of a message.
    decoder = codec_implementation.decoder(framing)
    assert decoder.get_buffer(READ_SIZE) is None
    with pytest.raises(ValueError):
        decoder.buffer_updated(10)
    assert decoder.buffered == 0
