"""FramedStream's checkpoint rule (its docstring, "Checkpoints"), on asyncio, uvloop and trio,
for the streams connect_framed makes (on trio, the fast path on the trio socket) and for a
FramedStream around anyio's own socket stream:

* other tasks run, and deadlines are noticed, at least once per read, however fast the
  peer sends (a receiver that never has to wait still lets them in);
* on trio every receive() is a cancellation point, even for a message already decoded
  and even in a scope its own task has just cancelled; on asyncio that case gets the
  buffered message, and the cancellation arrives at the next read;
* a cancelled receive() loses and duplicates nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
import sniffio
from anyio.abc import SocketAttribute, SocketStream

import aiomsg
from aiomsg.anyio.on_trio import TrioFramedStream

pytestmark = pytest.mark.anyio

FRAMING = aiomsg.LengthPrefixed(4)
SIZE = 100  # bytes per message: a message is its number, zero-padded
WIRE = 4 + SIZE
BATCH = 1000  # messages per send of the flooding peer
LIMIT = 200 * BATCH  # the peer stops (and half-closes) after these: no test can hang
READ_SIZE = 64 * 1024  # so that one read holds at most READ_SIZE // WIRE messages
# The deadline tests set theirs DEADLINE seconds after their PASSES_AT-th message, when
# the loop runs at full speed. (A deadline of 50 ms from the start once let a loop
# faster than the peer take all LIMIT messages first.)
PASSES_AT = 10 * (READ_SIZE // WIRE)
DEADLINE = 0.001
KINDS = pytest.mark.parametrize("kind", ["connect-framed", "around-anyio-socket"])
# What only trio promises (asyncio serves buffered messages without a check: tested above).
TRIO_ONLY = pytest.mark.parametrize("anyio_backend", [("trio", {})], ids=["trio"])


def number(i: int) -> bytes:
    return b"%0*d" % (SIZE, i)


@asynccontextmanager
async def flooded(
    kind: str, total: int = LIMIT, eof: bool = True
) -> AsyncIterator[aiomsg.FramedStream]:
    """A framed stream whose peer sends messages numbered 0.. as fast as it can, ``total``
    of them (then half-closes, with ``eof``), while the block runs."""
    options = aiomsg.Options(read_size=READ_SIZE)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        port = listener.extra(SocketAttribute.local_port)
        accepted: list[SocketStream] = []

        async def accept() -> None:
            inner = listener.listeners[0]
            assert isinstance(inner, anyio.abc.SocketListener)
            accepted.append(await inner.accept())

        async with anyio.create_task_group() as accepting:
            accepting.start_soon(accept)
            if kind == "connect-framed":
                stream = await aiomsg.connect_framed(
                    "127.0.0.1", port, framing=FRAMING, options=options
                )
            else:
                raw = await anyio.connect_tcp("127.0.0.1", port)
                stream = aiomsg.FramedStream(raw, FRAMING, options=options)
        if kind == "connect-framed" and sniffio.current_async_library() == "trio":
            assert isinstance(stream, TrioFramedStream)  # the fast path is what is tested
        peer = accepted[0]

        async def flood() -> None:
            try:
                for start in range(0, total, BATCH):
                    batch = [number(i) for i in range(start, min(total, start + BATCH))]
                    await peer.send(FRAMING.encode_many(batch))
                if eof:
                    await peer.send_eof()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the test closed its end first

        tg.start_soon(flood)
        async with stream, peer:
            yield stream
            tg.cancel_scope.cancel()


async def check_the_rest(stream: aiomsg.FramedStream, got: int, total: int = LIMIT) -> None:
    """Every message after the first ``got`` arrives once, in order: nothing was lost."""
    for i in range(got, total):
        assert await stream.receive() == number(i)


@KINDS
async def test_a_deadline_ends_a_receiver_that_is_never_short_of_messages(kind: str) -> None:
    async with flooded(kind) as stream:
        got = 0
        with anyio.move_on_after(3600) as scope:
            async for message in stream:
                assert message == number(got)
                got += 1
                if got == PASSES_AT:
                    scope.deadline = anyio.current_time() + DEADLINE
        # The deadline ended the loop, not the end of the peer's messages.
        assert scope.cancelled_caught, f"received all {got} messages: the deadline never hit"
        assert PASSES_AT < got < LIMIT
        await check_the_rest(stream, got)


@KINDS
@pytest.mark.parametrize("how", ["cancel", "past-deadline"])
async def test_a_cancellation_from_inside_the_loop_ends_it_while_the_peer_floods(
    kind: str, how: str
) -> None:
    """The task cancels its own scope (or sets its deadline to a time already past) while
    the peer keeps the socket full: the loop ends within a read or two, not when the
    peer pauses, and nothing is lost."""
    async with flooded(kind) as stream:
        got = 0
        with anyio.CancelScope() as scope:
            async for message in stream:
                assert message == number(got)
                got += 1
                if got == PASSES_AT:
                    if how == "cancel":
                        scope.cancel()
                    else:
                        scope.deadline = anyio.current_time()
        assert scope.cancelled_caught, f"received all {got} messages: never cancelled"
        assert got < PASSES_AT + 3 * (READ_SIZE // WIRE + 1)
        await check_the_rest(stream, got)


@KINDS
async def test_fail_after_raises_in_a_receive_loop_and_loses_nothing(kind: str) -> None:
    async with flooded(kind) as stream:
        got = 0
        with pytest.raises(TimeoutError):
            with anyio.fail_after(3600) as scope:
                while True:  # bounded: the peer's LIMIT messages, then EndOfStream
                    assert await stream.receive() == number(got)
                    got += 1
                    if got == PASSES_AT:  # as above
                        scope.deadline = anyio.current_time() + DEADLINE
        assert PASSES_AT < got < LIMIT
        await check_the_rest(stream, got)


@KINDS
async def test_other_tasks_run_at_least_once_per_read(kind: str) -> None:
    async with flooded(kind) as stream:
        got = 0
        seen_by_other: list[int] = []  # how many messages were received each time it ran
        done = False

        async def other() -> None:
            for _ in range(LIMIT):  # bounded; ends long before
                if done:
                    return
                seen_by_other.append(got)
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            async for message in stream:
                assert message == number(got)
                got += 1
                if got == 20 * (READ_SIZE // WIRE):
                    break
            done = True
        # A read completes at most READ_SIZE // WIRE + 1 messages. Trio shuffles the
        # tasks it runs in each round, so the receiver may run twice in a row, once at
        # the end of a round and once at the start of the next: two reads.
        gaps = [b - a for a, b in itertools.pairwise(seen_by_other)]
        assert len(seen_by_other) > 1 and max(gaps) <= 2 * (READ_SIZE // WIRE + 1), max(gaps)


@KINDS
async def test_a_task_that_cancels_itself_is_cancelled_at_its_next_receive(kind: str) -> None:
    on_trio = sniffio.current_async_library() == "trio"
    # No end of stream behind the messages: on asyncio the loop must wait, and be cancelled.
    async with flooded(kind, total=300, eof=False) as stream:
        got = 0
        with anyio.CancelScope() as scope:
            async for message in stream:
                assert message == number(got)
                got += 1
                if got == 10:
                    scope.cancel()  # messages are already decoded behind this one
        assert scope.cancelled_caught
        if on_trio:  # the very next receive() was the cancellation point
            assert got == 10
        else:  # served what was decoded; cancelled at the next read
            assert got > 10
        await check_the_rest(stream, got, total=300)


@KINDS
async def test_receive_in_a_scope_cancelled_just_before_is_cancelled_on_trio(kind: str) -> None:
    """receive() rather than ``async for``, in a scope entered (and cancelled) after the
    last read: on trio the buffered message stays queued and Cancelled is raised."""
    on_trio = sniffio.current_async_library() == "trio"
    async with flooded(kind, total=300, eof=False) as stream:
        assert await stream.receive() == number(0)  # a read: more are decoded behind it
        taken: list[bytes] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            taken.append(await stream.receive())
        assert scope.cancelled_caught == on_trio
        # On asyncio the buffered message is served (cancelled at the next read instead).
        assert taken == ([] if on_trio else [number(1)])
        await check_the_rest(stream, 1 + len(taken), total=300)


async def _receive_in(stream: aiomsg.FramedStream, cancelled: bool, got: list[bytes]) -> None:
    with anyio.CancelScope() as scope:
        if cancelled:
            scope.cancel()
        got.append(await stream.receive())


@TRIO_ONLY
@KINDS
async def test_each_task_is_checked_for_its_own_cancellation(kind: str) -> None:
    """On trio the check follows the task that receives: after task A took a message, a
    cancelled task B is cancelled on a buffered message, and a live task C is served."""
    async with flooded(kind, total=300, eof=False) as stream:
        assert await stream.receive() == number(0)
        got: list[bytes] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_receive_in, stream, True, got)
        assert got == []  # B was cancelled, and took nothing
        async with anyio.create_task_group() as tg:
            tg.start_soon(_receive_in, stream, False, got)
        assert got == [number(1)]
        # An iterator started in this task and resumed in a cancelled one: the message
        # stays queued. (Cancelled ends an async generator; the C iterator stays usable.)
        messages = stream.__aiter__()
        assert await messages.__anext__() == number(2)

        async def resume() -> None:
            with anyio.CancelScope() as scope:
                scope.cancel()
                got.append(await messages.__anext__())

        async with anyio.create_task_group() as tg:
            tg.start_soon(resume)
        assert got == [number(1)]
        await check_the_rest(stream, 3, total=300)


@TRIO_ONLY
async def test_trio_check_is_made_inline_on_this_trio() -> None:
    """The inline check reads trio's private names; on a trio that renamed them it falls
    back to the public call (correct, slower): this test says so when it happens."""
    from aiomsg.anyio._trio_cancel import cancel_check_context, current_task_of

    context = cancel_check_context()
    assert context is not None, "trio's private names changed: update aiomsg/anyio/_trio_cancel.py"
    task, coro = current_task_of(context)
    assert coro.cr_running and not task._cancel_status.effectively_cancelled
    with anyio.CancelScope() as scope:
        scope.cancel()
        assert current_task_of(context)[0]._cancel_status.effectively_cancelled
        await anyio.sleep(0)
