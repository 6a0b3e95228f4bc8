"""The opt-in heartbeat (``heartbeat=`` seconds) on the Streams and Protocol fronts (asyncio and
uvloop) and on the anyio front (asyncio, asyncio+uvloop and trio): a silent peer is closed with
``HeartbeatTimeout``, two heartbeating peers stay connected through silence, heartbeats are never
delivered, and framings that cannot carry one are refused.

Raw peers are plain asyncio or anyio streams (no aiomsg), on loopback. Every wait is bounded by
``asyncio.timeout``; the intervals are short (50 ms) with generous timeouts for a busy machine.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketStream

import aiomsg
from aiomsg.framing import Framing
from aiomsg.testing import running_unix_server

BEAT = 0.05  # seconds between heartbeats
TIMEOUT = 0.5  # ten heartbeats: ample for a busy test machine
FRAMING = aiomsg.LengthPrefixed(4)
Peer = tuple[asyncio.StreamReader, asyncio.StreamWriter]

CARRIERS = [
    pytest.param(aiomsg.LengthPrefixed(4), id="length"),
    pytest.param(aiomsg.Varint(), id="varint"),
    pytest.param(aiomsg.Netstring(), id="netstring"),
    pytest.param(aiomsg.AsciiLengthPrefixed(4), id="ascii"),
    pytest.param(aiomsg.Lines(), id="lines"),
    pytest.param(aiomsg.Delimited(b"\r\n"), id="delimited"),
]
NOT_CARRIERS = [
    pytest.param(aiomsg.FixedLength(4), id="fixed"),
    pytest.param(aiomsg.TypePrefixed({1: 8, 2: 0}), id="typed"),
    pytest.param(aiomsg.UntilEOF(), id="eos"),
]


@asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, list[Peer]]]:
    """A raw server that accepts and sends nothing unless told; yields its port and its peers."""
    peers: list[Peer] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append((reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], peers
    finally:
        for _, writer in peers:
            writer.close()
        server.close()
        await server.wait_closed()


async def read_until_eof(reader: asyncio.StreamReader, framing: Framing) -> list[bytes]:
    """Every message the raw side receives, until the aiomsg side closes."""
    decoder = framing.decoder()
    messages: list[bytes] = []
    while chunk := await reader.read(65536):
        messages += decoder.feed(chunk)
    return messages


@pytest.mark.asyncio
@pytest.mark.parametrize("framing", CARRIERS)
async def test_a_silent_server_is_closed_with_heartbeat_timeout(framing: Framing) -> None:
    async with asyncio.timeout(15), silent_server() as (port, peers):
        conn = await aiomsg.connect(
            "127.0.0.1",
            port,
            framing=framing,
            options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT),
        )
        with pytest.raises(aiomsg.HeartbeatTimeout) as caught:
            await conn.receive()
        assert caught.value.reason == "timeout"
        assert caught.value.timeout == TIMEOUT
        assert isinstance(caught.value, aiomsg.IdleTimeout)  # silence is what it detects
        assert conn.is_closing()
        # What the silent side got: heartbeats, empty messages in the framing, then the end.
        sent = await read_until_eof(peers[0][0], framing)
        assert sent and set(sent) == {b""}
        peers[0][1].close()  # else the lingering close waits for it (linger_timeout)
        await conn.aclose()


@pytest.mark.asyncio
async def test_a_silent_client_is_closed_by_the_server() -> None:
    outcome: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def handler(conn: aiomsg.Connection) -> None:
        try:
            await conn.receive()
        except aiomsg.ConnectionClosed as exc:
            outcome.set_result(exc)
            raise

    async with (
        asyncio.timeout(15),
        aiomsg.serve(
            handler, "127.0.0.1", 0, framing=FRAMING, options=aiomsg.Options(heartbeat=BEAT)
        ) as server,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            error = await outcome
            assert isinstance(error, aiomsg.HeartbeatTimeout)
            assert error.timeout == pytest.approx(3 * BEAT)  # the default: three intervals
            assert set(await read_until_eof(reader, FRAMING)) == {b""}
        finally:
            writer.close()


@pytest.mark.asyncio
async def test_heartbeating_peers_stay_connected_through_silence() -> None:
    received: list[bytes] = []
    done = asyncio.Event()

    async def handler(conn: aiomsg.Connection) -> None:
        async for message in conn:
            received.append(message)
            await conn.send(message)
        done.set()

    server = aiomsg.serve(
        handler,
        "127.0.0.1",
        0,
        framing=FRAMING,
        options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT),
    )
    async with asyncio.timeout(20), server:
        async with await aiomsg.connect(
            "127.0.0.1",
            server.port,
            framing=FRAMING,
            options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT),
        ) as conn:
            # Silent at the application level for four heartbeat timeouts:
            # without the heartbeat both sides would have closed by then.
            receiving = asyncio.create_task(conn.receive())
            await asyncio.sleep(4 * TIMEOUT)
            assert not receiving.done()  # still waiting: no heartbeat was delivered, no timeout
            await conn.send(b"still here")
            assert await receiving == b"still here"
        await done.wait()
    assert received == [b"still here"]


@pytest.mark.asyncio
async def test_heartbeats_are_swallowed_and_other_messages_delivered() -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(FRAMING.encode_many([b"", b"one", b"", b"", b"two", b""]))
        await writer.drain()
        writer.write_eof()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(15):
            async with await aiomsg.connect(
                "127.0.0.1", port, framing=FRAMING, options=aiomsg.Options(heartbeat=10.0)
            ) as conn:
                assert [m async for m in conn] == [b"one", b"two"]
            # With the heartbeat off, an empty message is the application's as before.
            async with await aiomsg.connect("127.0.0.1", port, framing=FRAMING) as conn:
                assert [m async for m in conn] == [b"", b"one", b"", b"", b"two", b""]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_protocol_front_heartbeat_swallows_and_times_out() -> None:
    class Recorder(aiomsg.MessageProtocol):
        framing = FRAMING
        options = aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT)

        def __init__(self) -> None:
            super().__init__()
            self.messages: list[bytes] = []
            self.timed_out: asyncio.Future[aiomsg.ConnectionTimeout] = (
                asyncio.get_running_loop().create_future()
            )

        def message_received(self, message: bytes) -> None:
            self.messages.append(message)

        def connection_timed_out(self, exc: aiomsg.ConnectionTimeout) -> None:
            self.timed_out.set_result(exc)

    loop = asyncio.get_running_loop()
    async with asyncio.timeout(15), silent_server() as (port, peers):
        _, protocol = await loop.create_connection(Recorder, "127.0.0.1", port)
        for _ in range(500):  # the raw server's accept callback runs on a later turn
            if peers:
                break
            await asyncio.sleep(0.01)
        peers[0][1].write(FRAMING.encode_many([b"", b"hi", b""]))
        error = await protocol.timed_out
        assert isinstance(error, aiomsg.HeartbeatTimeout)
        assert protocol.messages == [b"hi"]
        peers[0][1].close()
        await protocol.wait_closed()


@pytest.mark.asyncio
@pytest.mark.parametrize("framing", NOT_CARRIERS)
async def test_a_framing_that_cannot_carry_a_heartbeat_is_refused(framing: Framing) -> None:
    # Refused before connecting or listening: nothing listens on port 9 here.
    with pytest.raises(ValueError, match="cannot carry an empty message"):
        await aiomsg.connect("127.0.0.1", 9, framing=framing, options=aiomsg.Options(heartbeat=1.0))
    with pytest.raises(ValueError, match="cannot carry an empty message"):
        aiomsg.serve(
            lambda conn: conn.aclose(),
            "127.0.0.1",
            0,
            framing=framing,
            options=aiomsg.Options(heartbeat=1.0),
        )
    with pytest.raises(ValueError, match="cannot carry an empty message"):
        aiomsg.MessageProtocol(framing=framing, options=aiomsg.Options(heartbeat=1.0))
    aiomsg.MessageProtocol(framing=framing)  # without a heartbeat it is fine


@pytest.mark.parametrize(
    ("heartbeat", "heartbeat_timeout", "words"),
    [
        (None, 1.0, "heartbeat_timeout needs heartbeat"),
        (0.0, None, "heartbeat must be a positive number"),
        (-1.0, None, "heartbeat must be a positive number"),
        (float("nan"), None, "heartbeat must be a positive number"),
        (1.0, 0.0, "heartbeat_timeout must be a positive number"),
    ],
)
@pytest.mark.asyncio
async def test_bad_heartbeat_settings_are_refused(
    heartbeat: float | None, heartbeat_timeout: float | None, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        await aiomsg.connect(
            "127.0.0.1",
            9,
            framing=FRAMING,
            options=aiomsg.Options(heartbeat=heartbeat, heartbeat_timeout=heartbeat_timeout),
        )


@pytest.mark.asyncio
async def test_no_heartbeat_after_send_eof() -> None:
    async with asyncio.timeout(15), silent_server() as (port, peers):
        async with await aiomsg.connect(
            "127.0.0.1",
            port,
            framing=FRAMING,
            options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=60.0),
        ) as conn:
            await conn.send(b"last")
            await conn.send_eof()
            # The raw side reads everything up to the half-close: no heartbeat
            # may follow the EOF (writing after it would fail), and nothing breaks.
            sent = await read_until_eof(peers[0][0], FRAMING)
            assert sent[-1] == b"last" and set(sent[:-1]) <= {b""}
            await asyncio.sleep(4 * BEAT)
            assert not conn.is_closing()


# --- the anyio front: connect_framed, serve_framed and the Unix twins, on asyncio and trio ------


@asynccontextmanager
async def silent_anyio_server() -> AsyncIterator[tuple[int, list[SocketStream]]]:
    """A raw anyio TCP server that accepts and sends nothing; yields its port and its streams."""
    streams: list[SocketStream] = []

    async def accept(stream: SocketStream) -> None:
        streams.append(stream)
        await anyio.sleep_forever()

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, accept)
        yield listener.extra(anyio.abc.SocketAttribute.local_port), streams
        tg.cancel_scope.cancel()


async def read_stream_until_eof(
    stream: anyio.abc.ByteReceiveStream, framing: Framing
) -> list[bytes]:
    decoder = framing.decoder()
    messages: list[bytes] = []
    try:
        while True:
            messages += decoder.feed(await stream.receive())
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return messages


@pytest.mark.anyio
async def test_anyio_a_silent_server_is_closed_with_heartbeat_timeout() -> None:
    with anyio.fail_after(15):
        async with silent_anyio_server() as (port, streams):
            client = await aiomsg.connect_framed(
                "127.0.0.1",
                port,
                framing=FRAMING,
                options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT),
            )
            with pytest.raises(aiomsg.HeartbeatTimeout) as caught:
                await client.receive()
            assert caught.value.timeout == TIMEOUT
            sent = await read_stream_until_eof(streams[0], FRAMING)
            assert sent and set(sent) == {b""}  # heartbeats went out while it waited
            await streams[0].aclose()
            await client.aclose()


@pytest.mark.anyio
async def test_anyio_heartbeating_peers_stay_connected_through_silence() -> None:
    received: list[bytes] = []

    async def echo(stream: aiomsg.FramedStream) -> None:
        async for message in stream:
            received.append(message)
            await stream.send(message)

    serve = functools.partial(
        aiomsg.serve_framed,
        echo,
        "127.0.0.1",
        0,
        framing=FRAMING,
        options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT),
    )
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve)
            async with await aiomsg.connect_framed(
                "127.0.0.1",
                port,
                framing=FRAMING,
                options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT),
            ) as client:
                answer: list[bytes] = []

                async def receive_one() -> None:
                    answer.append(await client.receive())

                async with anyio.create_task_group() as waiting:
                    waiting.start_soon(receive_one)
                    await anyio.sleep(4 * TIMEOUT)  # silent for four heartbeat timeouts
                    assert answer == []  # no heartbeat delivered, no timeout
                    await client.send(b"still here")
                assert answer == [b"still here"]
            tg.cancel_scope.cancel()
    assert received == [b"still here"]


@pytest.mark.anyio
async def test_anyio_heartbeats_are_swallowed() -> None:
    async def handler(stream: SocketStream) -> None:
        await stream.send(FRAMING.encode_many([b"", b"one", b"", b"two", b""]))
        await stream.send_eof()
        await anyio.sleep_forever()

    with anyio.fail_after(15):
        async with (
            await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(listener.serve, handler)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with await aiomsg.connect_framed(
                "127.0.0.1", port, framing=FRAMING, options=aiomsg.Options(heartbeat=10.0)
            ) as client:
                assert [m async for m in client] == [b"one", b"two"]
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_anyio_unix_server_closes_a_silent_client() -> None:
    outcome: list[aiomsg.HeartbeatTimeout] = []
    done = anyio.Event()

    async def handler(stream: aiomsg.FramedStream) -> None:
        try:
            await stream.receive()
        except aiomsg.HeartbeatTimeout as exc:
            outcome.append(exc)
        done.set()

    with anyio.fail_after(15):
        async with (
            running_unix_server(
                handler, FRAMING, options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT)
            ) as path,
            await anyio.connect_unix(path) as raw,
        ):
            await done.wait()
            assert set(await read_stream_until_eof(raw, FRAMING)) <= {b""}
    assert len(outcome) == 1 and outcome[0].timeout == TIMEOUT


@pytest.mark.anyio
@pytest.mark.parametrize("framing", NOT_CARRIERS)
async def test_anyio_a_framing_that_cannot_carry_a_heartbeat_is_refused(framing: Framing) -> None:
    with pytest.raises(ValueError, match="cannot carry an empty message"):
        await aiomsg.connect_framed(
            "127.0.0.1", 9, framing=framing, options=aiomsg.Options(heartbeat=1.0)
        )
    with pytest.raises(ValueError, match="cannot carry an empty message"):
        await aiomsg.serve_framed(
            aiomsg.FramedStream.aclose, framing=framing, options=aiomsg.Options(heartbeat=1.0)
        )
    with pytest.raises(ValueError, match="cannot carry an empty message"):
        await aiomsg.connect_framed_unix(
            "/nonexistent", framing=framing, options=aiomsg.Options(heartbeat=1.0)
        )


@pytest.mark.anyio
async def test_anyio_a_peer_that_only_receives_still_heartbeats() -> None:
    # The server talks every half interval; the client only listens. Each of its
    # receive() calls is short, yet its heartbeats must still go out, or the
    # server would close it for silence.
    count = int(4 * TIMEOUT / (BEAT / 2))
    server_error: list[BaseException] = []

    async def talker(stream: aiomsg.FramedStream) -> None:
        async def listen() -> None:
            try:
                async for _ in stream:
                    pass
            except aiomsg.ConnectionTimeout as exc:
                server_error.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            for n in range(count):
                await stream.send(b"%d" % n)
                await anyio.sleep(BEAT / 2)
            await stream.send(b"done")
            tg.cancel_scope.cancel()

    serve = functools.partial(
        aiomsg.serve_framed,
        talker,
        "127.0.0.1",
        0,
        framing=FRAMING,
        options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT),
    )
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve)
            async with await aiomsg.connect_framed(
                "127.0.0.1",
                port,
                framing=FRAMING,
                options=aiomsg.Options(heartbeat=BEAT, heartbeat_timeout=TIMEOUT),
            ) as client:
                heard = []
                async for message in client:
                    heard.append(message)
                    if message == b"done":
                        break
            tg.cancel_scope.cancel()
    assert server_error == []
    assert heard == [b"%d" % n for n in range(count)] + [b"done"]
