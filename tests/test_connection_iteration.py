"""``async for message in conn``: every message once, in order, whatever the loop is interrupted by.

With the C speedups the iteration is ``ReadyIterator`` (``_speedups.c``), which hands over
messages already decoded without an async generator's step, and awaits a Python coroutine
when none is waiting; without them it is an async generator. Both must behave alike:
breaking out of the loop, cancelling a task that waits in it, a second receiver, a framing
error, the end of the stream. CPython drives an awaitable through another door while a
tracer is set (coverage sets one), so the last test runs the same checks in a fresh
process without a tracer, on both loops.

The anyio front's ``async for`` is the same iterator, whose slow path is the read itself
(``anyio.EndOfStream`` ends the loop), and on trio makes trio's cancellation test before
each message: its checks here run without a tracer too, on asyncio and trio.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
import sniffio

import aiomsg

FRAMING = aiomsg.LengthPrefixed(4, max_size=1000)
MESSAGES = [b"%d" % i for i in range(10)]


async def connected(wire: bytes = b"") -> tuple[aiomsg.Connection, socket.socket]:
    """A connection over a socket pair whose peer has already sent ``wire``."""
    front, peer = socket.socketpair()
    peer.sendall(wire)
    return await aiomsg.connect(None, None, framing=FRAMING, sock=front), peer  # type: ignore[arg-type]


async def wait_until_waiting(conn: aiomsg.Connection) -> None:
    """Let the loop run until a receiver waits on ``conn`` (bounded: 100 turns)."""
    for _ in range(100):
        await asyncio.sleep(0)
        if conn._protocol.waiter is not None and not conn._protocol.waiter.done():
            return
    raise AssertionError("no receiver started waiting")


async def collect(conn: aiomsg.Connection, into: list[bytes], first_only: bool = False) -> None:
    """``async for`` over ``conn`` into ``into``: to the end, or its first message only."""
    async for message in conn:
        into.append(message)
        if first_only:
            return


@pytest.mark.asyncio
async def test_async_for_yields_every_message_in_order_and_ends_at_a_clean_close() -> None:
    wire = FRAMING.encode_many(MESSAGES)
    conn, peer = await connected()
    with peer:
        async with conn:
            received: list[bytes] = []
            task = asyncio.create_task(collect(conn, received))
            for i in range(len(wire)):  # a byte at a time: every header and body split
                peer.send(wire[i : i + 1])
                await asyncio.sleep(0)
            peer.shutdown(socket.SHUT_WR)
            await asyncio.wait_for(task, 10)
    assert received == MESSAGES


@pytest.mark.asyncio
async def test_breaking_out_of_async_for_leaves_the_rest_for_the_next_receiver() -> None:
    conn, peer = await connected(FRAMING.encode_many(MESSAGES))
    with peer:
        async with conn:
            first = []
            async for message in conn:
                first.append(message)
                if len(first) == 3:
                    break
            assert await conn.receive() == MESSAGES[3]
            rest = []
            async for message in conn:
                rest.append(message)
                if len(rest) == 6:
                    break
    assert first + rest == MESSAGES[:3] + MESSAGES[4:]


@pytest.mark.asyncio
async def test_an_anext_that_is_not_awaited_takes_no_message() -> None:
    conn, peer = await connected(FRAMING.encode_many(MESSAGES))
    with peer:
        async with conn:
            assert await conn.receive() == MESSAGES[0]  # the batch is decoded and waiting
            iterator = aiter(conn)
            pending = anext(iterator)
            assert await conn.receive() == MESSAGES[1]
            assert await pending == MESSAGES[2]  # awaited later: the next one then


@pytest.mark.asyncio
async def test_an_anext_awaited_after_the_queue_emptied_waits_and_can_be_stopped() -> None:
    conn, peer = await connected()
    with peer:
        async with conn:

            async def next_after_the_queue_empties() -> object:
                """An ``anext()`` made while a message waited, which someone else then took."""
                peer.sendall(FRAMING.encode(b"taken"))
                assert await asyncio.wait_for(conn.receive(), 10) == b"taken"
                peer.sendall(FRAMING.encode(b"taken"))
                for _ in range(1000):  # until it is read and decoded (bounded: 10 s)
                    await asyncio.sleep(0.01)
                    if conn._ready:
                        break
                pending = anext(aiter(conn))
                assert conn.receive_nowait() == b"taken"
                return pending

            async def wait(pending: object) -> bytes:
                return await pending  # type: ignore[misc, no-any-return]

            # Awaited: it waits for the next message, which comes later.
            task = asyncio.create_task(wait(await next_after_the_queue_empties()))
            await wait_until_waiting(conn)
            peer.sendall(FRAMING.encode(b"later"))
            assert await asyncio.wait_for(task, 10) == b"later"
            # Cancelled while waiting: the cancellation reaches the wait (no busy flag left).
            # (Each awaitable is kept alive: freeing it would also end the wait.)
            pending = await next_after_the_queue_empties()
            task = asyncio.create_task(wait(pending))
            await wait_until_waiting(conn)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            peer.sendall(FRAMING.encode(b"after a cancel"))
            assert await asyncio.wait_for(conn.receive(), 10) == b"after a cancel"
            # Closed while waiting (a coroutine dropped mid-await): the same.
            pending = await next_after_the_queue_empties()
            coroutine = wait(pending)
            coroutine.send(None)  # runs to the wait, and suspends there
            coroutine.close()
            if not aiomsg.speedups_active():
                # An async generator is not closed with the coroutine that awaits it,
                # only once it is freed, and then by the loop: a few turns later.
                del pending
                for _ in range(100):
                    if not conn._receiving:
                        break
                    await asyncio.sleep(0)
            peer.sendall(FRAMING.encode(b"after a close"))
            assert await asyncio.wait_for(conn.receive(), 10) == b"after a close"


@pytest.mark.asyncio
async def test_cancelling_a_task_waiting_in_async_for_loses_nothing() -> None:
    conn, peer = await connected()
    with peer:
        async with conn:

            async def first_message() -> bytes:
                async for message in conn:
                    return message
                raise AssertionError("the stream ended")

            task = asyncio.create_task(first_message())
            await wait_until_waiting(conn)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            peer.sendall(FRAMING.encode_many(MESSAGES[:2]))
            # The cancelled wait left nothing behind: no busy flag, no message taken.
            assert await asyncio.wait_for(first_message(), 10) == MESSAGES[0]
            assert await conn.receive() == MESSAGES[1]


@pytest.mark.asyncio
async def test_a_second_receiver_while_async_for_waits_is_busy() -> None:
    conn, peer = await connected()
    with peer:
        async with conn:
            received: list[bytes] = []
            task = asyncio.create_task(collect(conn, received, first_only=True))
            await wait_until_waiting(conn)
            with pytest.raises(aiomsg.BusyError):
                async for _ in conn:
                    pass
            with pytest.raises(aiomsg.BusyError):
                await conn.receive()
            peer.sendall(FRAMING.encode(b"one"))
            await asyncio.wait_for(task, 10)
    assert received == [b"one"]


@pytest.mark.asyncio
async def test_async_for_raises_a_framing_error_after_the_good_messages() -> None:
    too_long = (5000).to_bytes(4, "big")  # over max_size
    conn, peer = await connected(FRAMING.encode_many(MESSAGES[:2]) + too_long)
    with peer:
        async with conn:
            received = []
            with pytest.raises(aiomsg.MessageTooLarge):
                async for message in conn:
                    received.append(message)
    assert received == MESSAGES[:2]


@pytest.mark.asyncio
async def test_async_for_after_the_end_of_the_stream_ends_at_once() -> None:
    conn, peer = await connected(FRAMING.encode(b"last"))
    peer.shutdown(socket.SHUT_WR)
    with peer:
        async with conn:
            assert [m async for m in conn] == [b"last"]
            assert [m async for m in conn] == []
            with pytest.raises(aiomsg.ConnectionClosed):
                await conn.receive()


async def framed_pair(wire: bytes, eof: bool = True) -> tuple[aiomsg.FramedStream, socket.socket]:
    """A FramedStream around anyio's stream over a socket pair, whose peer has sent
    ``wire`` (and half-closed, with ``eof``)."""
    front, peer = socket.socketpair()
    peer.sendall(wire)
    if eof:
        peer.shutdown(socket.SHUT_WR)
    front.setblocking(False)
    return aiomsg.FramedStream(await anyio.abc.SocketStream.from_socket(front), FRAMING), peer


@pytest.mark.anyio
async def test_framed_async_for_ends_at_the_end_of_the_stream_and_stays_ended() -> None:
    stream, peer = await framed_pair(FRAMING.encode_many(MESSAGES))
    with peer:
        async with stream:
            assert [m async for m in stream] == MESSAGES
            assert [m async for m in stream] == []
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()


@pytest.mark.anyio
async def test_framed_async_for_raises_a_framing_error_after_the_good_messages() -> None:
    too_long = (5000).to_bytes(4, "big")  # over max_size
    stream, peer = await framed_pair(FRAMING.encode_many(MESSAGES[:2]) + too_long)
    received = []
    with peer:
        async with stream:
            with pytest.raises(aiomsg.MessageTooLarge):
                async for message in stream:
                    received.append(message)
    assert received == MESSAGES[:2]


@pytest.mark.anyio
async def test_framed_async_for_in_a_scope_cancelled_by_its_task() -> None:
    """On trio the next message is a cancellation point, and it stays queued; on asyncio
    the messages already decoded are served, and the loop is cancelled at the next read."""
    stream, peer = await framed_pair(FRAMING.encode_many(MESSAGES), eof=False)
    on_trio = sniffio.current_async_library() == "trio"
    received = []
    with peer:
        async with stream:
            with anyio.CancelScope() as scope:
                async for message in stream:
                    received.append(message)
                    if len(received) == 3:
                        scope.cancel()
            assert scope.cancelled_caught
            assert received == MESSAGES[: 3 if on_trio else len(MESSAGES)]
            rest = [await stream.receive() for _ in range(len(MESSAGES) - len(received))]
    assert received + rest == MESSAGES


# The checks above, run in a process with no tracer: CPython then awaits ReadyIterator
# through its am_send slot, not through __next__ and send() as under coverage.
UNTRACED = textwrap.dedent(
    """
    import asyncio, sys
    import anyio, uvloop
    sys.path.insert(0, {root!r})
    from tests import test_connection_iteration as t

    CHECKS = [
        t.test_async_for_yields_every_message_in_order_and_ends_at_a_clean_close,
        t.test_breaking_out_of_async_for_leaves_the_rest_for_the_next_receiver,
        t.test_an_anext_that_is_not_awaited_takes_no_message,
        t.test_an_anext_awaited_after_the_queue_emptied_waits_and_can_be_stopped,
        t.test_cancelling_a_task_waiting_in_async_for_loses_nothing,
        t.test_a_second_receiver_while_async_for_waits_is_busy,
        t.test_async_for_raises_a_framing_error_after_the_good_messages,
        t.test_async_for_after_the_end_of_the_stream_ends_at_once,
    ]
    FRAMED = [
        t.test_framed_async_for_ends_at_the_end_of_the_stream_and_stays_ended,
        t.test_framed_async_for_raises_a_framing_error_after_the_good_messages,
        t.test_framed_async_for_in_a_scope_cancelled_by_its_task,
    ]
    assert sys.gettrace() is None
    for run in (asyncio.run, uvloop.run):
        for check in CHECKS:
            run(asyncio.wait_for(check(), 30))
    for backend in ("asyncio", "trio"):
        for check in FRAMED:
            anyio.run(check, backend=backend)
    print("passed", len(CHECKS) * 2 + len(FRAMED) * 2)
    """
)


def test_iteration_behaves_the_same_without_a_tracer() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    # Without coverage's variables: its subprocess patch would trace this process too.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    done = subprocess.run(
        [sys.executable, "-c", UNTRACED.format(root=root)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["passed", "22"]
