"""The read fast path of every front: the C scanner on a read while no message is begun.

When the decoder holds nothing, a front hands the read's bytes to the C scanner itself
and skips the decoder when they were whole messages (one message in flight). These
tests drive the reads where that shortcut must hand over to the decoder: whole
messages followed by a header's first bytes, by a header over ``max_size``, and a read
that completes a message begun in the last one. Each first chunk is in the socket
before the front reads, so it arrives as one read. Every front, on every loop: the
MessageProtocol and Streams fronts on asyncio and uvloop, FramedStream (around anyio's
socket stream, and on aiomsg's own reader) on asyncio, uvloop and trio.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import cast

import anyio
import pytest
import sniffio
from anyio.abc import UNIXSocketStream

import aiomsg
from aiomsg.anyio.on_trio import framed_on_trio

FRAMING = aiomsg.LengthPrefixed(4, max_size=1000)
# A's body from its 27th byte on reads as a whole message of its own: a front that
# scanned the read completing A as if no message were begun would deliver that.
A = b"a" * 26 + FRAMING.encode(b"x" * 70)
B, C = b"b" * 7, b"c" * 300
WIRE_A, WIRE_B, WIRE_C = (FRAMING.encode(m) for m in (A, B, C))
TOO_LARGE = (5000).to_bytes(4, "big")  # a header over max_size

# (first read, what follows once its messages are in, all the messages, the error)
Scenario = tuple[bytes, bytes, list[bytes], type[Exception] | None]
SCENARIOS: dict[str, Scenario] = {
    # The scan takes A and B and stops inside C's header: the decoder takes it from there.
    "whole-then-header-begun": (WIRE_A + WIRE_B + WIRE_C[:2], WIRE_C[2:], [A, B, C], None),
    # ... and inside C's body.
    "whole-then-body-begun": (WIRE_A + WIRE_C[:50], WIRE_C[50:] + WIRE_B, [A, C, B], None),
    # The scan stops at a header it does not take; the decoder refuses it, after A and B.
    "whole-then-too-large": (WIRE_A + WIRE_B + TOO_LARGE, b"", [A, B], aiomsg.MessageTooLarge),
    # A message begun: the next read goes to the decoder, then the scan runs again.
    "begun-then-whole": (WIRE_A[:30], WIRE_A[30:] + WIRE_B, [A, B], None),
}
SCENARIO = pytest.mark.parametrize("scenario", list(SCENARIOS))


def prefilled(first: bytes) -> tuple[socket.socket, socket.socket]:
    """(the front's end, the peer's end), ``first`` already in the front's socket."""
    front, peer = socket.socketpair()
    peer.sendall(first)
    return front, peer


def unread(sock: socket.socket) -> int:
    """Bytes in ``sock``'s receive buffer that its reader has not taken yet."""
    count: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
    return count


async def check(
    scenario: str,
    front: socket.socket,
    receive: Callable[[], Awaitable[bytes]],
    send_rest: Callable[[bytes], Awaitable[object]],
) -> None:
    """Receive every message (then the error) while the rest is sent, once the front has
    read the first chunk: so the first chunk is one read, and the rest comes after."""
    _, rest, expected, error = SCENARIOS[scenario]
    got: list[bytes] = []

    async def receive_all() -> None:
        while len(got) < len(expected):
            got.append(await receive())
        if error is not None:
            with pytest.raises(error):
                await receive()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive_all)
            while unread(front):  # at most 10 s (fail_after)
                await anyio.sleep(0.001)
            if rest:
                await send_rest(rest)
    assert got == expected


# --- asyncio: MessageProtocol and Streams, on the stdlib loop and uvloop --------------


class Collecting(aiomsg.MessageProtocol):
    framing = FRAMING

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def message_received(self, message: bytes) -> None:
        self.queue.put_nowait(message)

    def framing_error(self, exc: aiomsg.FramingError) -> bool:
        self.queue.put_nowait(exc)
        return False


@pytest.mark.asyncio
@SCENARIO
async def test_message_protocol(scenario: str) -> None:
    front, peer = prefilled(SCENARIOS[scenario][0])
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(Collecting, sock=front)

    async def receive() -> bytes:
        item = await protocol.queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def send_rest(rest: bytes) -> None:
        await loop.sock_sendall(peer, rest)

    peer.setblocking(False)
    try:
        await check(scenario, front, receive, send_rest)
    finally:
        transport.close()
        peer.close()


@pytest.mark.asyncio
@SCENARIO
async def test_streams(scenario: str) -> None:
    front, peer = prefilled(SCENARIOS[scenario][0])
    loop = asyncio.get_running_loop()
    # asyncio's create_connection takes an open socket with no host and port.
    conn = await aiomsg.connect(cast(str, None), cast(int, None), framing=FRAMING, sock=front)
    peer.setblocking(False)
    try:
        await check(scenario, front, conn.receive, lambda rest: loop.sock_sendall(peer, rest))
    finally:
        conn.abort()
        peer.close()


# --- anyio: FramedStream around anyio's socket stream, and on aiomsg's own reader ------


@pytest.mark.anyio
@pytest.mark.parametrize("reader", ["anyio-stream", "aiomsg-reader"])
@SCENARIO
async def test_framed_stream(scenario: str, reader: str) -> None:
    front, peer_sock = prefilled(SCENARIOS[scenario][0])
    peer = await UNIXSocketStream.from_socket(peer_sock)
    framed: aiomsg.FramedStream
    if reader == "anyio-stream":
        framed = aiomsg.FramedStream(await UNIXSocketStream.from_socket(front), FRAMING)
    elif sniffio.current_async_library() == "trio":  # the stream reading its trio socket
        stream = await UNIXSocketStream.from_socket(front)
        framed = framed_on_trio(stream, FRAMING, aiomsg.Options())
        assert type(framed).__name__ == "TrioFramedStream"
    else:  # asyncio: aiomsg's transport, as connect_framed makes it
        framed = await aiomsg.connect_framed(
            cast(str, None), cast(int, None), framing=FRAMING, sock=front
        )
    async with framed, peer:
        await check(scenario, front, framed.receive, peer.send)
