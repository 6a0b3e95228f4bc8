"""The anyio front, FramedStream, on asyncio, asyncio+uvloop and trio (anyio's pytest plugin)."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import sniffio
import trustme
from anyio.abc import SocketAttribute

import aiomsg
from aiomsg.framing import Framing
from aiomsg.testing import connected, running_unix_server

from .peers import messages_for
from .strategies import CASES

pytestmark = pytest.mark.anyio

SIZES = (0, 1, 64 * 1024, 1024 * 1024)
SWAP = pytest.mark.parametrize(
    "swap", [False, True], ids=["receiver-on-anyio-socket", "receiver-on-connect-framed"]
)


async def echo(stream: aiomsg.FramedStream) -> None:
    async for message in stream:
        await stream.send(message)


@asynccontextmanager
async def framed_server(
    handler: Callable[[aiomsg.FramedStream], Awaitable[None]],
    framing: Framing,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """Run serve_framed in a task group; yield its port; cancel it on exit."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: aiomsg.serve_framed(
                handler,
                "127.0.0.1",
                0,
                framing=framing,
                ssl_context=ssl_context,
                task_status=task_status,
            )
        )
        yield port
        tg.cancel_scope.cancel()


async def round_trip(
    port: int, framing: Framing, messages: list[bytes], **kw: Any
) -> list[bytes]:
    """Send ``messages`` and half-close while receiving the echo, both in one task group."""
    received: list[bytes] = []
    async with await aiomsg.connect_framed("127.0.0.1", port, framing=framing, **kw) as stream:

        async def send() -> None:
            for message in messages:
                await stream.send(message)
            await stream.send_eof()

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            async for message in stream:
                received.append(message)
    return received


@pytest.mark.parametrize("framing", [pytest.param(c.framing, id=c.name) for c in CASES])
async def test_every_strategy_round_trips(framing: Framing) -> None:
    messages = messages_for(framing, SIZES) + messages_for(framing, (10,) * 1000)
    async with framed_server(echo, framing) as port:
        assert await round_trip(port, framing, messages) == messages


async def test_end_of_stream_request() -> None:
    framing = aiomsg.UntilEOF()

    async def answer(stream: aiomsg.FramedStream) -> None:
        request = await stream.receive()
        await stream.send(request[::-1])

    async with framed_server(answer, framing) as port:
        assert await round_trip(port, framing, [b"hello"]) == [b"olleh"]


async def test_many_connections_from_one_task_group() -> None:
    framing = aiomsg.LengthPrefixed(4)
    results: dict[int, list[bytes]] = {}

    async def client(i: int) -> None:
        msgs = [b"%d-%d" % (i, j) for j in range(20)]
        results[i] = await round_trip(port, framing, msgs)

    async with framed_server(echo, framing) as port:
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(client, i)
    assert results == {i: [b"%d-%d" % (i, j) for j in range(20)] for i in range(100)}


@asynccontextmanager
async def pair(
    framing: Framing, swap: bool = False
) -> AsyncIterator[tuple[aiomsg.FramedStream, aiomsg.FramedStream]]:
    """Two framed streams connected over loopback TCP: one made by connect_framed (on asyncio,
    on aiomsg's transport), one around anyio's accepted socket stream. The first is the
    sender, the second the receiver; ``swap`` exchanges the roles, so that every contract
    test runs against both kinds of receiver."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener:
        port = listener.extra(SocketAttribute.local_port)
        accepted: list[aiomsg.FramedStream] = []

        async def accept() -> None:
            inner = listener.listeners[0]
            assert isinstance(inner, anyio.abc.SocketListener)
            accepted.append(aiomsg.FramedStream(await inner.accept(), framing))

        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            client = await aiomsg.connect_framed("127.0.0.1", port, framing=framing)
        async with client, accepted[0]:
            yield (accepted[0], client) if swap else (client, accepted[0])


@SWAP
async def test_clean_eof_raises_end_of_stream_and_ends_iteration(swap: bool) -> None:
    async with pair(aiomsg.Lines(), swap) as (client, server):
        await client.send(b"one")
        await client.send_eof()
        assert [m async for m in server] == [b"one"]
        with pytest.raises(anyio.EndOfStream):
            await server.receive()


@SWAP
async def test_eof_inside_message_raises_incomplete(swap: bool) -> None:
    async with pair(aiomsg.LengthPrefixed(4), swap) as (client, server):
        await client.transport_stream.send(b"\x00\x00\x00\x09partial")
        await client.send_eof()
        with pytest.raises(aiomsg.IncompleteMessageError) as info:
            await server.receive()
        assert info.value.partial == b"\x00\x00\x00\x09partial"


@SWAP
async def test_framing_error_comes_after_the_good_messages(swap: bool) -> None:
    async with pair(aiomsg.Netstring(), swap) as (client, server):
        await client.transport_stream.send(b"2:ok,x:bad")
        assert await server.receive() == b"ok"
        with pytest.raises(aiomsg.FramingError):
            await server.receive()


@SWAP
async def test_breaking_out_of_async_for_leaves_the_rest_for_the_next_receive(swap: bool) -> None:
    messages = [b"%d" % i for i in range(10)]
    async with pair(aiomsg.LengthPrefixed(4), swap) as (client, server):
        await client.transport_stream.send(aiomsg.LengthPrefixed(4).encode_many(messages))
        first = []
        with anyio.fail_after(10):
            async for message in server:
                first.append(message)
                if len(first) == 3:
                    break
            assert await server.receive() == messages[3]
            rest = [message async for message, _ in zip_count(server, 6)]
    assert first + rest == messages[:3] + messages[4:]


async def zip_count(stream: aiomsg.FramedStream, n: int) -> AsyncIterator[tuple[bytes, int]]:
    """The next ``n`` messages of ``async for`` over ``stream``, numbered."""
    i = 0
    async for message in stream:
        yield message, i
        i += 1
        if i == n:
            return


@SWAP
async def test_async_for_after_aclose_raises_closed_resource(swap: bool) -> None:
    async with pair(aiomsg.LengthPrefixed(4), swap) as (client, server):
        await client.transport_stream.send(aiomsg.LengthPrefixed(4).encode_many([b"a", b"b"]))
        with anyio.fail_after(10):
            assert await server.receive() == b"a"  # b"b" is decoded and waiting
        await server.aclose()
        after: list[bytes] = []
        with pytest.raises(anyio.ClosedResourceError):
            async for message in server:
                after.append(message)
        assert after == []  # what was unread when it closed is not handed out


@SWAP
async def test_a_second_receiver_while_async_for_waits_is_busy(swap: bool) -> None:
    async with pair(aiomsg.LengthPrefixed(4), swap) as (client, server):
        received = []

        async def iterate() -> None:
            async for message in server:
                received.append(message)
                return

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(iterate)
                await anyio.wait_all_tasks_blocked()  # it waits for bytes now
                with pytest.raises(anyio.BusyResourceError):
                    async for _ in server:
                        pass
                await client.send(b"one")
    assert received == [b"one"]


@SWAP
async def test_use_after_close_raises_closed_resource(swap: bool) -> None:
    async with pair(aiomsg.Lines(), swap) as (client, _server):
        await client.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await client.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await client.send(b"late")
        with pytest.raises(anyio.ClosedResourceError):
            await client.send_eof()


@SWAP
async def test_concurrent_receivers_raise_busy(swap: bool) -> None:
    async with pair(aiomsg.Lines(), swap) as (client, server):
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.receive)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await server.receive()
            await client.send(b"wake the first")


@SWAP
async def test_concurrent_senders_each_write_whole_messages(swap: bool) -> None:
    async with pair(aiomsg.LengthPrefixed(4), swap) as (client, server):
        big = {i: bytes([i]) * 300_000 for i in range(8)}
        async with anyio.create_task_group() as tg:
            for message in big.values():
                tg.start_soon(client.send, message)
        await client.send_eof()
        assert sorted([m async for m in server]) == sorted(big.values())


@SWAP
async def test_cancelled_receive_loses_and_duplicates_nothing(swap: bool) -> None:
    framing = aiomsg.LengthPrefixed(4)
    async with pair(framing, swap) as (client, server):
        await client.transport_stream.send(framing.encode_many([b"%d" % i for i in range(100)]))
        assert await server.receive() == b"0"  # the rest of the batch is now buffered
        got = [b"0"]
        # A scope its own task cancelled while messages are buffered. On trio the call is
        # cancelled and the message stays for the next one. On asyncio every FramedStream
        # checks at its next read only (see FramedStream's docstring): it returns the message.
        on_asyncio = sniffio.current_async_library() == "asyncio"
        with anyio.CancelScope() as scope:
            scope.cancel()
            got.append(await server.receive())
        assert scope.cancelled_caught == (not on_asyncio)
        assert got == ([b"0", b"1"] if on_asyncio else [b"0"])
        # Cancelled while waiting for bytes from the peer.
        while len(got) < 100:
            got.append(await server.receive())
        with anyio.move_on_after(0.05) as scope:
            await server.receive()
        assert scope.cancelled_caught
        await client.send(b"after")
        got.append(await server.receive())
        assert got == [b"%d" % i for i in range(100)] + [b"after"]


@SWAP
async def test_cancellation_storm_over_a_trickling_peer(swap: bool) -> None:
    framing = aiomsg.Lines()
    expected = [b"line %d" % i for i in range(300)]
    async with pair(framing, swap) as (client, server):

        async def trickle() -> None:
            wire = framing.encode_many(expected)
            for i in range(0, len(wire), 7):
                await client.transport_stream.send(wire[i : i + 7])
                if i % 70 == 0:
                    await anyio.sleep(0.001)
            await client.send_eof()

        got: list[bytes] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(trickle)
            while True:
                with anyio.move_on_after(0.0005):
                    try:
                        got.append(await server.receive())
                    except anyio.EndOfStream:
                        break
        assert got == expected


@SWAP
async def test_extra_attributes_are_the_inner_streams(swap: bool) -> None:
    async with pair(aiomsg.Lines(), swap) as (client, server):
        assert client.extra(SocketAttribute.remote_address) == server.extra(
            SocketAttribute.local_address
        )


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


async def test_tls_round_trip_and_send_eof_is_a_clear_error(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = tls
    framing = aiomsg.LengthPrefixed(4)

    async def reply(stream: aiomsg.FramedStream) -> None:
        await stream.send((await stream.receive()).upper())

    async with framed_server(reply, framing, ssl_context=server_ctx) as port:
        async with await aiomsg.connect_framed(
            "127.0.0.1", port, framing=framing, ssl_context=client_ctx, tls_hostname="127.0.0.1"
        ) as stream:
            with pytest.raises(NotImplementedError, match="cannot half-close"):
                await stream.send_eof()
            await stream.send(b"secret")
            assert await stream.receive() == b"SECRET"


async def test_handler_error_is_logged_and_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    framing = aiomsg.Lines()
    calls = 0

    async def flaky(stream: aiomsg.FramedStream) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("handler bug")
        await echo(stream)

    async with framed_server(flaky, framing) as port:
        try:  # the server closes at once: the client sees the end, or a broken pipe
            assert await round_trip(port, framing, [b"x"]) == []
        except* anyio.BrokenResourceError:
            pass
        assert await round_trip(port, framing, [b"y"]) == [b"y"]
    assert "handler bug" in caplog.text


async def test_the_testing_helpers_serve_and_connect() -> None:
    async with connected(echo, aiomsg.Lines()) as client:
        await client.send(b"through aiomsg.testing")
        assert await client.receive() == b"through aiomsg.testing"


@pytest.mark.parametrize("framing", [aiomsg.Lines(), aiomsg.LengthPrefixed(4), aiomsg.Netstring()])
async def test_the_testing_helpers_on_a_unix_socket(framing: Framing) -> None:
    messages = [b"", b"over", b"a unix socket", b"x" * 100_000]
    async with connected(echo, framing, unix=True) as client:
        assert client.extra(SocketAttribute.family) == socket.AF_UNIX
        for message in messages:
            await client.send(message)
        assert [await client.receive() for _ in messages] == messages


async def test_running_unix_server_serves_any_client_and_cleans_up() -> None:
    async with running_unix_server(echo, aiomsg.LengthPrefixed(4)) as path:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert len(os.fsencode(path)) < 100  # fits a Unix socket address everywhere
        # aiomsg's own client, and anyio's plain Unix stream speaking the framing by hand.
        async with await aiomsg.connect_framed_unix(path, framing=aiomsg.LengthPrefixed(4)) as c:
            await c.send(b"framed")
            assert await c.receive() == b"framed"
        async with await anyio.connect_unix(path) as raw:
            await raw.send(b"\x00\x00\x00\x03raw")
            assert await raw.receive() == b"\x00\x00\x00\x03raw"
    assert not os.path.exists(os.path.dirname(path))  # the temporary directory is gone


async def test_message_timeout_over_a_unix_socket() -> None:
    outcome: list[aiomsg.MessageTimeout] = []
    done = anyio.Event()

    async def handler(stream: aiomsg.FramedStream) -> None:
        try:
            await stream.receive()
        except aiomsg.MessageTimeout as exc:
            outcome.append(exc)
        done.set()

    framing = aiomsg.LengthPrefixed(4)
    with anyio.fail_after(15):
        async with (
            running_unix_server(
                handler, framing, options=aiomsg.Options(message_timeout=0.2)
            ) as path,
            await anyio.connect_unix(path) as raw,
        ):
            await raw.send(framing.encode(b"cut short")[:6])  # a header and 2 of 9 bytes
            await done.wait()
            # The server closed the stalled connection: the client reads its end.
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                while True:
                    await raw.receive()
    assert len(outcome) == 1 and outcome[0].timeout == 0.2


@SWAP
async def test_small_sends_into_a_full_socket_stay_whole_and_in_order(swap: bool) -> None:
    # Two senders of many 4 KB messages while nobody reads: the socket buffers fill, sends
    # go out in parts and wait (on trio's path, the rest of a partial send holds the lock).
    framing = aiomsg.LengthPrefixed(4)
    per_sender = 1500  # 6 MB each: more than loopback's socket buffers hold
    async with pair(framing, swap) as (client, server):

        async def sender(tag: int) -> None:
            for i in range(per_sender):
                await client.send(b"%d:%06d:" % (tag, i) + bytes(4000))

        got: dict[int, list[int]] = {0: [], 1: []}
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender, 0)
            tg.start_soon(sender, 1)
            await anyio.wait_all_tasks_blocked()  # both wait on a full socket now
            for _ in range(2 * per_sender):
                message = await server.receive()
                tag, number, rest = message.split(b":", 2)
                assert rest == bytes(4000)
                got[int(tag)].append(int(number))
        assert got == {0: list(range(per_sender)), 1: list(range(per_sender))}


async def test_a_sender_cancelled_while_waiting_its_turn_sends_nothing() -> None:
    # A FramedStream around anyio's socket stream; its peer, a plain socket, does not read
    # at first. One sender holds the turn, its message only partly in the full socket; a
    # second waits for the turn and is cancelled. Nothing of the second is sent, the
    # first arrives whole, and the next send (the turn given back) goes out after it.
    # (The peer is wrapped in a stream only then: on asyncio one reads all it gets.)
    framing = aiomsg.LengthPrefixed(4)
    big = bytes(8 << 20)  # more than loopback's socket buffers hold: the send waits
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        sender = aiomsg.FramedStream(await anyio.connect_tcp("127.0.0.1", port), framing)
        peer, _ = listening.accept()  # the kernel completed the handshake: no wait
    peer.setblocking(False)
    async with sender:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sender.send, big)
                await anyio.wait_all_tasks_blocked()  # the first sender waits on the socket
                scope = anyio.CancelScope()
                tg.start_soon(cancelled_send, sender, scope)
                await anyio.wait_all_tasks_blocked()  # the second waits for its turn
                scope.cancel()
                await anyio.wait_all_tasks_blocked()
                peer_stream = await anyio.abc.SocketStream.from_socket(peer)
                receiver = aiomsg.FramedStream(peer_stream, framing)
                assert await receiver.receive() == big
            await sender.send(b"after")
            assert await receiver.receive() == b"after"
            await receiver.aclose()


async def cancelled_send(stream: aiomsg.FramedStream, scope: anyio.CancelScope) -> None:
    with scope:
        await stream.send(b"never sent")


@SWAP
async def test_closing_a_stream_ends_the_receive_another_task_is_waiting_in(swap: bool) -> None:
    async with pair(aiomsg.Lines(), swap) as (_client, server):

        async def close_soon() -> None:
            await anyio.wait_all_tasks_blocked()  # the receiver waits for bytes now
            await server.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(close_soon)
            with pytest.raises(anyio.ClosedResourceError):
                await server.receive()


@SWAP
async def test_sending_to_a_peer_that_reset_raises_broken_resource(swap: bool) -> None:
    async with pair(aiomsg.Lines(), swap) as (client, server):
        raw = server.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await server.aclose()  # a reset (RST), not a clean close
        with pytest.raises(anyio.BrokenResourceError):
            for _ in range(200):  # the first sends may still be accepted by the kernel
                await client.send(b"into the void")
                await anyio.sleep(0.005)
