"""What one rude client can do to a server, on every front: it must not keep memory alive,
hold a connection forever, or grow the server without bound.

Every test uses loopback only and is bounded in time (``asyncio.timeout`` / ``anyio.fail_after``)
and in count. Timeouts here are short (a fraction of a second) through the knobs; the
defaults are checked by value.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import tracemalloc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, TypeVar

import anyio
import pytest

import aiomsg
from aiomsg.testing import running_server

_T = TypeVar("_T")

FRAMING = aiomsg.LengthPrefixed(4)
# A header announcing 64 KiB, and half of that body: a message cut short.
HALF_MESSAGE = FRAMING.encode(b"x" * 65536)[: 4 + 32768]


@contextmanager
def gc_disabled() -> Iterator[None]:
    """Only reference counting frees memory here: what a cycle holds stays visible."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``predicate`` (closes finish on later loop turns); bounded in time."""
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return True
        await anyio.sleep(0.01)
    return predicate()


def alive(refs: list[weakref.ref[Any]]) -> list[Any]:
    return [obj for ref in refs if (obj := ref()) is not None]


# --- the Streams and Protocol fronts ---------------------------------------------------


async def raw_client(
    port: int, payload: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP client that sends ``payload``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    return reader, writer


async def raw_clients(port: int, count: int, payload: bytes) -> list[asyncio.StreamWriter]:
    """``count`` plain TCP clients that each send ``payload``."""
    return [(await raw_client(port, payload))[1] for _ in range(count)]


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with suppress(OSError):
            await writer.wait_closed()


@pytest.mark.asyncio
async def test_streams_frees_connections_with_partial_messages_without_gc() -> None:
    refs: list[weakref.ref[Any]] = []
    errors: list[str] = []
    done = asyncio.Event()

    async def handler(conn: aiomsg.Connection) -> None:
        refs.append(weakref.ref(conn))
        try:
            await conn.receive()
        except aiomsg.IncompleteMessageError as exc:
            refs.append(weakref.ref(exc))
            errors.append(type(exc).__name__)
        if len(errors) == 200:
            done.set()

    with gc_disabled():
        async with asyncio.timeout(30):
            async with aiomsg.serve(handler, "127.0.0.1", 0, framing=FRAMING) as server:
                writers = await raw_clients(server.port, 200, HALF_MESSAGE)
                await close_all(writers)
                await done.wait()
                assert await wait_until(lambda: not alive(refs)), alive(refs)[:3]
    assert len(refs) == 400


@pytest.mark.asyncio
async def test_protocol_frees_connections_with_partial_messages_without_gc() -> None:
    refs: list[weakref.ref[Any]] = []
    lost = 0

    class Sink(aiomsg.MessageProtocol):
        framing = FRAMING

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            refs.append(weakref.ref(self))

        def message_received(self, message: bytes) -> None:
            raise AssertionError("no message is complete")

        def framing_error(self, exc: aiomsg.FramingError) -> None:
            assert isinstance(exc, aiomsg.IncompleteMessageError)
            refs.append(weakref.ref(exc))

        def connection_lost(self, exc: Exception | None) -> None:
            nonlocal lost
            super().connection_lost(exc)
            lost += 1

    with gc_disabled():
        async with asyncio.timeout(30):
            loop = asyncio.get_running_loop()
            server = await loop.create_server(Sink, "127.0.0.1", 0)
            async with server:
                port = server.sockets[0].getsockname()[1]
                writers = await raw_clients(port, 200, HALF_MESSAGE)
                await close_all(writers)
                assert await wait_until(lambda: lost == 200)
                assert await wait_until(lambda: not alive(refs)), alive(refs)[:3]
    assert len(refs) == 400


@pytest.mark.asyncio
async def test_kept_errors_are_raised_fresh_each_time() -> None:
    """A stored error raised again must not grow a traceback (or keep the raiser's frames)."""
    received: list[aiomsg.IncompleteMessageError] = []

    async def cut(conn: aiomsg.Connection) -> None:
        assert conn.transport is not None
        conn.transport.write(HALF_MESSAGE)

    async with aiomsg.serve(cut, "127.0.0.1", 0, framing=FRAMING) as server:
        async with await aiomsg.connect("127.0.0.1", server.port, framing=FRAMING) as conn:
            for _ in range(3):
                with pytest.raises(aiomsg.IncompleteMessageError) as info:
                    await conn.receive()
                received.append(info.value)
    assert len({id(e) for e in received}) == 3
    depths = []
    for exc in received:
        tb, depth = exc.__traceback__, 0
        while tb is not None:
            tb, depth = tb.tb_next, depth + 1
        depths.append(depth)
    assert depths[0] == depths[1] == depths[2]
    assert all(e.partial == HALF_MESSAGE for e in received)


# --- timeouts ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_streams_message_timeout_closes_a_stalled_message_only() -> None:
    outcomes: dict[str, Any] = {}

    async def handler(conn: aiomsg.Connection) -> None:
        name = (await conn.receive()).decode()
        try:
            outcomes[name] = await conn.receive()
        except aiomsg.AiomsgError as exc:
            outcomes[name] = exc

    async with asyncio.timeout(20):
        async with aiomsg.serve(
            handler, "127.0.0.1", 0, framing=FRAMING, options=aiomsg.Options(message_timeout=0.3)
        ) as server:
            stalled_reader, stalled = await raw_client(
                server.port, FRAMING.encode(b"stalled") + HALF_MESSAGE
            )
            idle_reader, idle = await raw_client(server.port, FRAMING.encode(b"idle"))
            _, slow = await raw_client(server.port, FRAMING.encode(b"slow") + HALF_MESSAGE[:10])
            await asyncio.sleep(0.15)  # slow but in time: the rest comes within the limit
            slow.write(FRAMING.encode(b"x" * 65536)[10:])
            assert await stalled_reader.read() == b""  # the server closed the stalled client
            await asyncio.sleep(0.5)  # past the message timeout: the idle client stays
            assert not idle_reader.at_eof()
            idle.write(FRAMING.encode(b"still here"))
            await wait_until(lambda: len(outcomes) == 3)
            await close_all([stalled, idle, slow])
    assert isinstance(outcomes["stalled"], aiomsg.MessageTimeout)
    assert isinstance(outcomes["stalled"], TimeoutError)
    assert outcomes["stalled"].timeout == 0.3
    assert outcomes["idle"] == b"still here"
    assert outcomes["slow"] == b"x" * 65536


@pytest.mark.asyncio
async def test_streams_idle_timeout_closes_a_silent_peer_only() -> None:
    outcomes: dict[str, Any] = {}

    async def handler(conn: aiomsg.Connection) -> None:
        name = (await conn.receive()).decode()
        count = 0
        try:
            async for _ in conn:
                count += 1
            outcomes[name] = count
        except aiomsg.IdleTimeout as exc:
            outcomes[name] = exc

    async with asyncio.timeout(20):
        async with aiomsg.serve(
            handler, "127.0.0.1", 0, framing=FRAMING, options=aiomsg.Options(idle_timeout=0.3)
        ) as server:
            silent = await raw_clients(server.port, 1, FRAMING.encode(b"silent"))
            chatty = await raw_clients(server.port, 1, FRAMING.encode(b"chatty"))
            for _ in range(8):  # 0.8 s in all, never 0.3 s of silence
                await asyncio.sleep(0.1)
                chatty[0].write(FRAMING.encode(b"tick"))
            assert await wait_until(lambda: "silent" in outcomes)
            chatty[0].write_eof()
            assert await wait_until(lambda: "chatty" in outcomes)
            await close_all(silent + chatty)
    assert isinstance(outcomes["silent"], aiomsg.IdleTimeout)
    assert outcomes["chatty"] == 8


@pytest.mark.asyncio
async def test_paused_reading_stops_the_message_clock() -> None:
    """While the application is behind, the peer's unread half message is not its fault."""
    got: list[bytes] = []
    first_read = asyncio.Event()

    async def handler(conn: aiomsg.Connection) -> None:
        got.append(await conn.receive())
        first_read.set()
        await asyncio.sleep(0.8)  # behind: reading pauses while messages wait
        got.extend([await conn.receive() for _ in range(3)])

    async with asyncio.timeout(20):
        async with aiomsg.serve(
            handler, "127.0.0.1", 0, framing=FRAMING, options=aiomsg.Options(message_timeout=0.3)
        ) as server:
            (writer,) = await raw_clients(server.port, 1, FRAMING.encode(b"one"))
            await first_read.wait()
            writer.write(FRAMING.encode(b"two"))
            await asyncio.sleep(0.1)
            writer.write(FRAMING.encode(b"three") + HALF_MESSAGE)
            await asyncio.sleep(0.5)  # while the handler sleeps, the message is finished
            writer.write(FRAMING.encode(b"x" * 65536)[len(HALF_MESSAGE) :])
            assert await wait_until(lambda: len(got) == 4)
            await close_all([writer])
    assert got == [b"one", b"two", b"three", b"x" * 65536]


@pytest.mark.asyncio
async def test_protocol_front_gets_connection_timed_out() -> None:
    expired: list[aiomsg.ConnectionTimeout] = []
    closed = asyncio.Event()

    class Sink(aiomsg.MessageProtocol):
        framing = FRAMING
        options = aiomsg.Options(message_timeout=0.3)

        def message_received(self, message: bytes) -> None:
            pass

        def connection_timed_out(self, exc: aiomsg.ConnectionTimeout) -> None:
            expired.append(exc)
            self.send(b"too slow")  # a last notice goes out before the close

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            closed.set()

    async with asyncio.timeout(20):
        server = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HALF_MESSAGE)
            assert await reader.read() == FRAMING.encode(b"too slow")  # then EOF
            writer.close()
            await closed.wait()
    assert len(expired) == 1 and isinstance(expired[0], aiomsg.MessageTimeout)


@pytest.mark.asyncio
async def test_client_message_timeout_on_a_stalled_server() -> None:
    async def stall(conn: aiomsg.Connection) -> None:
        assert conn.transport is not None
        conn.transport.write(HALF_MESSAGE)
        await asyncio.sleep(5)

    async with asyncio.timeout(10):
        async with aiomsg.serve(stall, "127.0.0.1", 0, framing=FRAMING) as server:
            async with await aiomsg.connect(
                "127.0.0.1",
                server.port,
                framing=FRAMING,
                options=aiomsg.Options(message_timeout=0.3),
            ) as conn:
                with pytest.raises(aiomsg.MessageTimeout):
                    await conn.receive()
                with pytest.raises(aiomsg.MessageTimeout):  # and again, not a hang
                    await conn.receive()
                assert conn.is_closing()


@pytest.mark.asyncio
async def test_defaults_and_keepalive_on_accepted_sockets() -> None:
    assert aiomsg.MessageProtocol.options.message_timeout == 60.0
    assert aiomsg.MessageProtocol.options.idle_timeout is None
    options: list[tuple[int, int]] = []

    async def handler(conn: aiomsg.Connection) -> None:
        sock = conn.get_extra_info("socket")
        options.append(
            (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            )
        )

    async with asyncio.timeout(10):
        async with aiomsg.serve(handler, "127.0.0.1", 0, framing=FRAMING) as server:
            async with await aiomsg.connect("127.0.0.1", server.port, framing=FRAMING):
                assert await wait_until(lambda: len(options) == 1)
        async with aiomsg.serve(
            handler, "127.0.0.1", 0, framing=FRAMING, options=aiomsg.Options(keepalive=None)
        ) as server:
            async with await aiomsg.connect("127.0.0.1", server.port, framing=FRAMING):
                assert await wait_until(lambda: len(options) == 2)
    assert options[0] == (1, 60)
    assert options[1][0] == 0


# --- bounded memory against a client that never reads ---------------------------------------


def flood_without_reading(port: int, limit: int = 64 * 1024 * 1024) -> int:
    """Send 1 KiB messages until the server stops taking them (or ``limit``); never read.

    Returns the bytes the server's side accepted. Runs in a thread.
    """
    chunk = FRAMING.encode(b"m" * 1020) * 64
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.5)  # half a second without progress: the server stopped reading
        try:
            while sent < limit:
                sent += sock.send(chunk)
        except TimeoutError:
            pass
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return sent


@asynccontextmanager
async def traced() -> AsyncIterator[Callable[[], int]]:
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# What an echo server may hold for one client that never reads: the write buffer up to
# its high-water mark, two reads' worth of decoded messages, the read buffer, and when
# the client finally resets, one more read of what the kernel held (about 1.5 MiB in
# all), with room for allocator slack and what coverage records meanwhile.
ECHO_BOUND = 4 * 1024 * 1024


@pytest.mark.asyncio
async def test_streams_echo_is_bounded_against_a_client_that_never_reads() -> None:
    async def echo(conn: aiomsg.Connection) -> None:
        async for message in conn:
            await conn.send(message)

    async with asyncio.timeout(30), traced() as peak:
        async with aiomsg.serve(echo, "127.0.0.1", 0, framing=FRAMING) as server:
            sent = await asyncio.to_thread(flood_without_reading, server.port)
        assert sent < 48 * 1024 * 1024  # it was held back...
        assert peak() < ECHO_BOUND  # ...and the server stayed small


@pytest.mark.asyncio
async def test_documented_protocol_echo_is_bounded() -> None:
    class Echo(aiomsg.MessageProtocol):  # as docs/asyncio.md writes it
        framing = FRAMING

        def message_received(self, message: bytes) -> None:
            self.send(message)

    async with asyncio.timeout(30), traced() as peak:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            sent = await asyncio.to_thread(flood_without_reading, port)
        assert sent < 48 * 1024 * 1024
        assert peak() < ECHO_BOUND


@pytest.mark.asyncio
async def test_write_backpressure_can_be_turned_off() -> None:
    """The opt-out: the application then bounds its writes itself (here: it does not)."""

    class Echo(aiomsg.MessageProtocol):
        framing = FRAMING
        options = aiomsg.Options(write_backpressure=False)

        def message_received(self, message: bytes) -> None:
            self.send(message)

    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    async with asyncio.timeout(30), server:
        port = server.sockets[0].getsockname()[1]
        sent = await asyncio.to_thread(flood_without_reading, port, 16 * 1024 * 1024)
    assert sent == 16 * 1024 * 1024  # nothing held the client back


@pytest.mark.asyncio
async def test_idle_connections_hold_no_read_buffer() -> None:
    """An idle connection costs a few KiB of Python memory, not a read buffer each."""

    async def handler(conn: aiomsg.Connection) -> None:
        async for _ in conn:
            pass

    async with asyncio.timeout(30):
        async with aiomsg.serve(handler, "127.0.0.1", 0, framing=FRAMING) as server:
            warm = await raw_clients(server.port, 10, FRAMING.encode(b"warm-up"))
            await asyncio.sleep(0.1)
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                writers = await raw_clients(server.port, 200, b"")
                await asyncio.sleep(0.2)
                per_connection = (tracemalloc.get_traced_memory()[0] - before) / 200
            finally:
                tracemalloc.stop()
            await close_all(warm + writers)
    # The clients' own objects are in this process too: both ends together stay small.
    assert per_connection < 16 * 1024, per_connection


# --- the anyio front, on asyncio, uvloop and trio ---------------------------------------------


@asynccontextmanager
async def framed_server(
    handler: Callable[[aiomsg.FramedStream], Awaitable[None]], **options: Any
) -> AsyncIterator[int]:
    async with running_server(handler, FRAMING, **options) as (_, port):
        yield port


# Stalling after a complete header and no body byte is the cheapest way to hold a message open.
STALLS = {"half a body": HALF_MESSAGE, "a header alone": HALF_MESSAGE[:4]}


@pytest.mark.asyncio
@pytest.mark.parametrize("stall", STALLS.values(), ids=STALLS.keys())
async def test_streams_message_timeout_counts_from_the_header(stall: bytes) -> None:
    outcome: list[BaseException] = []

    async def handler(conn: aiomsg.Connection) -> None:
        try:
            await conn.receive()
        except aiomsg.AiomsgError as exc:
            outcome.append(exc)

    async with asyncio.timeout(20):
        async with aiomsg.serve(
            handler, "127.0.0.1", 0, framing=FRAMING, options=aiomsg.Options(message_timeout=0.3)
        ) as server:
            reader, writer = await raw_client(server.port, stall)
            assert await reader.read() == b""  # the server closed the stalled client
            await close_all([writer])
    assert len(outcome) == 1 and isinstance(outcome[0], aiomsg.MessageTimeout)


@pytest.mark.anyio
@pytest.mark.parametrize("stall", STALLS.values(), ids=STALLS.keys())
async def test_framed_stream_message_timeout(stall: bytes) -> None:
    outcome: list[aiomsg.MessageTimeout] = []
    done = anyio.Event()

    async def handler(stream: aiomsg.FramedStream) -> None:
        try:
            await stream.receive()
        except aiomsg.MessageTimeout as exc:
            outcome.append(exc)
        done.set()

    with anyio.fail_after(20):
        async with framed_server(handler, options=aiomsg.Options(message_timeout=0.3)) as port:
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(stall)
                await done.wait()
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await client.receive()  # the server closed the connection
    assert len(outcome) == 1 and outcome[0].timeout == 0.3


@pytest.mark.anyio
async def test_framed_stream_idle_timeout() -> None:
    outcome: list[Any] = []
    done = anyio.Event()

    async def handler(stream: aiomsg.FramedStream) -> None:
        got = []
        try:
            async for message in stream:
                got.append(message)
        except aiomsg.IdleTimeout as exc:
            outcome.append((got, exc))
        done.set()

    with anyio.fail_after(20):
        async with framed_server(handler, options=aiomsg.Options(idle_timeout=0.3)) as port:
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                for _ in range(5):
                    await client.send(FRAMING.encode(b"tick"))
                    await anyio.sleep(0.1)
                await done.wait()
    assert outcome[0][0] == [b"tick"] * 5


@pytest.mark.anyio
async def test_framed_stream_frees_connections_without_gc() -> None:
    refs: list[weakref.ref[Any]] = []
    count = 0
    done = anyio.Event()

    async def handler(stream: aiomsg.FramedStream) -> None:
        nonlocal count
        refs.append(weakref.ref(stream))
        try:
            await stream.receive()
        except aiomsg.IncompleteMessageError as exc:
            refs.append(weakref.ref(exc))
        count += 1
        if count == 100:
            done.set()

    with gc_disabled(), anyio.fail_after(30):
        async with framed_server(handler) as port:
            for _ in range(100):
                async with await anyio.connect_tcp("127.0.0.1", port) as client:
                    await client.send(HALF_MESSAGE)
            await done.wait()
            assert await wait_until(lambda: not alive(refs)), alive(refs)[:3]
    assert len(refs) == 200


@pytest.mark.anyio
async def test_framed_echo_is_bounded_against_a_client_that_never_reads() -> None:
    async def echo(stream: aiomsg.FramedStream) -> None:
        async for message in stream:
            await stream.send(message)

    with anyio.fail_after(30):
        tracemalloc.start()
        try:
            async with framed_server(echo) as port:
                sent = await anyio.to_thread.run_sync(flood_without_reading, port)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert sent < 48 * 1024 * 1024
    assert peak < ECHO_BOUND


@pytest.mark.anyio
async def test_handler_exception_groups_do_not_end_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(stream: aiomsg.FramedStream) -> None:
        async with anyio.create_task_group() as tg:  # a reset reaches us wrapped in a group
            tg.start_soon(stream.receive)

    with anyio.fail_after(20):
        async with framed_server(handler) as port:
            for _ in range(5):
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    sock.sendall(HALF_MESSAGE[:3])
            await anyio.sleep(0.3)
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.name == "aiomsg"]


def test_threads_do_not_share_a_read_buffer_while_reading() -> None:
    """Two event loops in two threads read at the same time: each has its own buffer."""
    results: list[list[bytes]] = []

    def run() -> None:
        async def main() -> list[bytes]:
            async def echo(conn: aiomsg.Connection) -> None:
                async for message in conn:
                    await conn.send(message)

            messages = [bytes([i % 256]) * 1000 for i in range(2000)]
            async with aiomsg.serve(echo, "127.0.0.1", 0, framing=FRAMING) as server:
                async with await aiomsg.connect("127.0.0.1", server.port, framing=FRAMING) as c:
                    await c.send_many(messages)
                    return [await c.receive() for _ in messages]

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    expected = [bytes([i % 256]) * 1000 for i in range(2000)]
    assert results == [expected, expected]


@pytest.mark.asyncio
async def test_abort_after_the_peer_closed_is_harmless() -> None:
    async def cut(conn: aiomsg.Connection) -> None:
        assert conn.transport is not None
        conn.transport.write(HALF_MESSAGE)

    async with asyncio.timeout(10):
        async with aiomsg.serve(cut, "127.0.0.1", 0, framing=FRAMING) as server:
            conn = await aiomsg.connect("127.0.0.1", server.port, framing=FRAMING)
            with pytest.raises(aiomsg.IncompleteMessageError):
                await conn.receive()
            await conn.wait_closed()
            conn.abort()  # the transport is gone already: nothing to do, nothing raised
            conn.abort()


# --- a write that fails does not lose what had arrived -------------------------------------


def _say_and_close(listener: socket.socket, words: bytes) -> None:
    """A peer that says its last words and closes while the client is still sending (its
    unread input then makes the kernel answer the client's next bytes with a reset)."""
    sock, _ = listener.accept()
    sock.sendall(words)
    sock.close()


async def _send_until_it_fails(send: Callable[[], Awaitable[None]]) -> BaseException:
    for _ in range(2000):  # bounded: a broken pipe comes within a few writes
        try:
            await send()
        except (aiomsg.ConnectionClosed, ConnectionError) as exc:
            return exc
        await asyncio.sleep(0.002)
    raise AssertionError("the writes never failed")


@pytest.mark.asyncio
async def test_streams_deliver_what_arrived_before_a_failed_write() -> None:
    framing = aiomsg.Lines()
    # Two reads' worth, ending at a read's end: reading pauses after it (a message that
    # large does), so the goodbye behind it waits in the kernel.
    big = b"x" * (2 * 4096 - 1)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        async with asyncio.timeout(15):
            async with aiomsg.connect(
                "127.0.0.1", port, framing=framing, options=aiomsg.Options(read_size=4096)
            ) as conn:
                await asyncio.to_thread(_say_and_close, listener, big + b"\n! goodbye\n")
                await _send_until_it_fails(lambda: conn.send(b"y" * 1000))
                assert await conn.receive() == big
                assert await conn.receive() == b"! goodbye"  # not lost to the broken pipe
                with pytest.raises(aiomsg.ConnectionClosed) as caught:
                    await conn.receive()
                assert caught.value.reason == "lost"


async def _paused_until_a_write_fails(
    client: Callable[[], aiomsg.MessageProtocol],
    peer: Callable[[socket.socket], _T],
    lost: asyncio.Future[None],
) -> _T:
    """Connect a ``client`` protocol and pause its reading (the application is busy),
    run ``peer`` in a thread on the listening socket (it sends, then closes), then send
    until a write fails and wait for ``lost``; return what ``peer`` returned."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        async with asyncio.timeout(15):
            _, protocol = await asyncio.get_running_loop().create_connection(
                client, "127.0.0.1", port
            )
            protocol.pause_reading()  # what the peer sends stays in the kernel, unread
            result = await asyncio.to_thread(peer, listener)
            await asyncio.sleep(0.1)

            async def send() -> None:
                protocol.send(b"y" * 1000)

            await _send_until_it_fails(send)
            await lost
    return result


@pytest.mark.asyncio
async def test_protocol_front_delivers_what_arrived_before_a_failed_write() -> None:
    events: list[object] = []
    lost = asyncio.get_running_loop().create_future()

    class Client(aiomsg.MessageProtocol):
        framing = aiomsg.Lines()

        def message_received(self, message: bytes) -> None:
            events.append(message)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            events.append(type(exc))
            lost.set_result(None)

    await _paused_until_a_write_fails(
        Client, lambda listener: _say_and_close(listener, b"! goodbye\n"), lost
    )
    assert events[0] == b"! goodbye"
    assert issubclass(events[-1], OSError)  # type: ignore[arg-type]


def _flood_and_close(listener: socket.socket, line: bytes) -> int:
    """A peer that sends lines until the kernel takes no more, then closes; returns the
    bytes it got out (megabytes on loopback: they wait in the other side's kernel)."""
    sock, _ = listener.accept()
    sock.setblocking(False)
    sent = 0
    try:
        for _ in range(100_000):  # bounded: the kernel's buffers fill within a few MiB
            sent += sock.send(line * 64)
    except BlockingIOError:
        pass
    sock.close()
    return sent


@pytest.mark.asyncio
async def test_a_failed_write_reads_back_one_read_not_the_whole_kernel_buffer() -> None:
    """What the kernel held when the write failed is read back within ``read_size``: a
    peer that flooded and reset cannot make the connection decode megabytes at once."""
    line = b"m" * 99 + b"\n"
    delivered: list[bytes] = []
    lost = asyncio.get_running_loop().create_future()

    class Client(aiomsg.MessageProtocol):
        framing = aiomsg.Lines()
        options = aiomsg.Options(read_size=4096)

        def message_received(self, message: bytes) -> None:
            delivered.append(message)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            lost.set_result(None)

    flooded = await _paused_until_a_write_fails(
        Client, lambda listener: _flood_and_close(listener, line), lost
    )
    assert flooded > 64 * 4096  # the kernel held far more than one read
    assert 0 < len(delivered) <= 4096 // len(line)  # the first read's worth, whole lines
    assert set(delivered) == {line[:-1]}


@pytest.mark.anyio
async def test_anyio_front_delivers_what_arrived_before_a_failed_write() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with anyio.fail_after(15):
            async with aiomsg.connect_framed("127.0.0.1", port, framing=aiomsg.Lines()) as s:
                await anyio.to_thread.run_sync(_say_and_close, listener, b"! goodbye\n")
                await anyio.sleep(0.1)  # the goodbye has arrived; nobody receives yet
                for _ in range(2000):  # bounded: a broken pipe comes within a few writes
                    try:
                        await s.send(b"y" * 1000)
                    except anyio.BrokenResourceError:
                        break
                    await anyio.sleep(0.002)
                else:
                    raise AssertionError("the writes never failed")
                assert await s.receive() == b"! goodbye"
                with pytest.raises((anyio.BrokenResourceError, anyio.EndOfStream)):
                    await s.receive()


# --- a close storm copies nothing -------------------------------------------------------


@pytest.mark.asyncio
async def test_a_close_storm_does_not_copy_the_partial_messages() -> None:
    """200 clients each hold 256 KiB of an unfinished message, then all close at once: the
    server's traced memory must not grow past what it held (IncompleteMessageError used to
    copy every partial body as it was raised, doubling the memory at the worst moment)."""
    clients, part = 200, 256 * 1024
    framing = aiomsg.LengthPrefixed(4)
    wire = framing.encode(b"x" * (4 * part))[: 4 + part]  # a header and a quarter of the body
    ended: list[type[BaseException]] = []
    all_ended = asyncio.Event()

    async def handler(conn: aiomsg.Connection) -> None:
        try:
            await conn.receive()
        except aiomsg.IncompleteMessageError as exc:
            ended.append(type(exc))  # its partial is never asked for
        if len(ended) == clients:
            all_ended.set()

    options = aiomsg.Options(message_timeout=None)
    tracemalloc.start()
    try:
        async with asyncio.timeout(60):
            server = aiomsg.serve(handler, "127.0.0.1", 0, framing=framing, options=options)
            async with server as srv:
                socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(clients)]
                baseline = tracemalloc.get_traced_memory()[0]
                for sock in socks:
                    sock.sendall(wire)
                for _ in range(600):  # bounded: until the server holds every partial
                    if tracemalloc.get_traced_memory()[0] - baseline >= clients * part:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)
                held = tracemalloc.get_traced_memory()[0] - baseline
                tracemalloc.reset_peak()
                for sock in socks:
                    sock.close()  # the storm: every client leaves mid-message at once
                await all_ended.wait()
                peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert ended == [aiomsg.IncompleteMessageError] * clients
    assert held >= clients * part
    assert peak <= 1.2 * held, (peak, held)


# --- decoded but unread messages: bounded by their memory, not their wire bytes ------------

#: Per connection, what decoded messages a slow handler has not taken may cost: about two
#: reads' worth of memory (docs/limits.md), plus a small constant for the connection.
def unread_bound(read_size: int) -> int:
    return 2 * read_size + 64 * 1024


SETTINGS = {
    "default": aiomsg.Options(message_timeout=None),
    "10,000 clients": aiomsg.Options(
        message_timeout=None, read_size=16 * 1024, write_high_water=16 * 1024
    ),
}
TINY = aiomsg.LengthPrefixed(4, max_size=4096)
FLOOD = TINY.encode_many([b"abc"] * 75_000)  # 525 KB of 3-byte messages: 7 bytes each


def _flood(ports: list[int], clients: int) -> list[socket.socket]:
    socks = [socket.create_connection(("127.0.0.1", port)) for port in ports * clients]
    for sock in socks:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.send(FLOOD)  # what the kernel takes; the rest is the peer's to hold
    return socks


async def _settled(baseline: int) -> int:
    """Traced memory above ``baseline`` once it stops growing (bounded wait)."""
    last = -1
    for _ in range(100):
        await anyio.sleep(0.1)
        now = tracemalloc.get_traced_memory()[0] - baseline
        if abs(now - last) < 16 * 1024:
            return now
        last = now
    return now


async def _held_per_client(port: int, clients: int, baseline: int) -> float:
    """Flood ``clients`` connections to ``port`` with tiny messages; the traced memory they
    cost the server each, once it stops growing."""
    socks = await anyio.to_thread.run_sync(_flood, [port], clients)
    try:
        return await _settled(baseline) / clients
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
async def test_streams_unread_tiny_messages_stay_within_the_documented_memory(
    settings: aiomsg.Options,
) -> None:
    async def slow(conn: aiomsg.Connection) -> None:
        await conn.receive()
        await asyncio.sleep(60)  # takes nothing more

    tracemalloc.start()
    try:
        async with asyncio.timeout(60):
            async with aiomsg.serve(slow, "127.0.0.1", 0, framing=TINY, options=settings) as srv:
                held = await _held_per_client(srv.port, 200, tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert held <= unread_bound(settings.read_size), held


@pytest.mark.anyio
@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
async def test_anyio_unread_tiny_messages_stay_within_the_documented_memory(
    settings: aiomsg.Options,
) -> None:
    """On aiomsg's transport (asyncio, uvloop) and on anyio's streams (trio)."""

    async def slow(stream: aiomsg.FramedStream) -> None:
        await stream.receive()
        await anyio.sleep(60)

    tracemalloc.start()
    try:
        with anyio.fail_after(60):
            async with running_server(slow, TINY, options=settings) as (_, port):
                held = await _held_per_client(port, 200, tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert held <= unread_bound(settings.read_size), held
