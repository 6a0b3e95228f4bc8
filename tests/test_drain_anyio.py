"""``serve_framed(shutdown=event)``: a graceful drain on asyncio, uvloop and trio."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import anyio
import pytest

import aiomsg

pytestmark = pytest.mark.anyio

WAIT = 10.0  # seconds: a bound that only a broken server reaches
FRAMING = aiomsg.LengthPrefixed(4)


async def slow_echo(stream: aiomsg.FramedStream) -> None:
    async for message in stream:
        await anyio.sleep(0.05)  # the answers are still owed when the drain begins
        await stream.send(b"re: " + message)


async def read_all(stream: anyio.abc.ByteStream) -> bytes:
    """Everything until the server's EOF (a reset would raise)."""
    received = b""
    while True:
        try:
            received += await stream.receive()
        except anyio.EndOfStream:
            return received


async def test_messages_received_are_answered_then_eof_and_serving_ends() -> None:
    shutdown = anyio.Event()
    serve = functools.partial(
        aiomsg.serve_framed, slow_echo, "127.0.0.1", 0, framing=FRAMING, shutdown=shutdown
    )
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve)
            busy = await anyio.connect_tcp("127.0.0.1", port)
            idle = await anyio.connect_tcp("127.0.0.1", port)
            wire = b"".join(FRAMING.encode(m) for m in (b"one", b"two", b"three"))
            await busy.send(wire + FRAMING.encode(b"half")[:5])  # and half a message
            await anyio.sleep(0.02)  # they have arrived; the first answer is 50 ms away
            shutdown.set()
            await anyio.sleep(0.05)
            await busy.send(FRAMING.encode(b"half")[5:])  # the message in flight ends
            answers = await read_all(busy)
            assert await read_all(idle) == b""  # nothing in flight: EOF at once
            await busy.aclose()
            await idle.aclose()
        # serve_framed returned by itself: the task group ended
    expected = (b"re: one", b"re: two", b"re: three", b"re: half")
    assert answers == b"".join(FRAMING.encode(m) for m in expected)
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)


async def test_the_drain_timeout_cancels_a_handler_that_never_finishes() -> None:
    shutdown = anyio.Event()
    cancelled = anyio.Event()

    async def stuck(stream: aiomsg.FramedStream) -> None:
        await stream.receive()
        try:
            await anyio.sleep(3600)
        finally:
            cancelled.set()

    serve = functools.partial(
        aiomsg.serve_framed,
        stuck,
        "127.0.0.1",
        0,
        framing=FRAMING,
        options=aiomsg.Options(drain_timeout=0.2),
        shutdown=shutdown,
    )
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve)
            client = await anyio.connect_tcp("127.0.0.1", port)
            await client.send(FRAMING.encode(b"never answered"))
            await anyio.sleep(0.05)
            shutdown.set()
        assert cancelled.is_set()
        await client.aclose()


async def test_a_unix_socket_server_drains_too(tmp_path: Path) -> None:
    path = str(tmp_path / "drain.sock")
    shutdown = anyio.Event()
    serve = functools.partial(
        aiomsg.serve_framed_unix, slow_echo, path, framing=FRAMING, shutdown=shutdown
    )
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            await tg.start(serve)
            client = await anyio.connect_unix(path)
            await client.send(FRAMING.encode(b"hello"))
            await anyio.sleep(0.02)
            shutdown.set()
            answers = await read_all(client)
            await client.aclose()
    assert answers == FRAMING.encode(b"re: hello")
    assert not os.path.exists(path)
