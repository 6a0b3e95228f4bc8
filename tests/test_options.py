"""One settings object (``aiomsg.Options``) on every front; ``connect()`` as ``await`` and as
``async with``; ``send()`` of a ``str`` refused with one clear error on every front and framing;
the old keywords still honoured, with a DeprecationWarning."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import re
import socket
import ssl
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import aiomsg
from aiomsg.framing import Framing
from aiomsg.testing import connected, running_server

from .peers import messages_for
from .strategies import CASES

ALL_FRAMINGS = [pytest.param(c.framing, id=c.name) for c in CASES]
NOT_BYTES = re.escape(
    "a message is bytes (or bytearray, memoryview), not str: use send_text() for text"
)


# --- the object itself ----------------------------------------------------------------


def test_defaults_are_the_documented_limits() -> None:
    options = aiomsg.Options()
    assert options.message_timeout == aiomsg.limits.DEFAULT_MESSAGE_TIMEOUT == 60.0
    assert options.idle_timeout is None and options.heartbeat is None
    assert options.keepalive == aiomsg.limits.DEFAULT_KEEPALIVE
    assert options.read_size == aiomsg.limits.DEFAULT_READ_SIZE
    assert options.write_high_water == aiomsg.limits.DEFAULT_WRITE_HIGH_WATER
    assert options.connect_timeout == aiomsg.limits.DEFAULT_CONNECT_TIMEOUT
    assert options.backlog == aiomsg.limits.DEFAULT_BACKLOG


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"message_timeout": "5"}, TypeError, "message_timeout must be a number of seconds"),
        ({"message_timeout": 0}, ValueError, "positive number of seconds"),
        ({"idle_timeout": float("inf")}, ValueError, "positive number of seconds"),
        ({"linger_timeout": None}, TypeError, "linger_timeout must be a number of seconds"),
        ({"read_size": 0}, ValueError, "read_size must be at least 1"),
        ({"backlog": 1.5}, TypeError, "backlog must be a whole number"),
        ({"write_high_water": True}, TypeError, "write_high_water must be a whole number"),
        ({"write_backpressure": 1}, TypeError, "write_backpressure must be True or False"),
        ({"heartbeat_timeout": 3.0}, ValueError, "heartbeat_timeout needs heartbeat"),
        ({"heartbeat": -1}, ValueError, "positive number of seconds"),
    ],
)
def test_bad_values_are_refused_when_made(
    changes: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        aiomsg.Options(**changes)
    with pytest.raises(error, match=words):  # and when derived
        aiomsg.Options().replace(**changes)


def test_options_are_frozen_and_replace_makes_a_variant() -> None:
    base = aiomsg.Options(message_timeout=5)
    variant = base.replace(idle_timeout=30)
    assert (base.idle_timeout, variant.idle_timeout, variant.message_timeout) == (None, 30, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.message_timeout = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        base.replace(no_such_option=1)
    with pytest.raises(TypeError):
        aiomsg.Options(5)  # type: ignore[call-arg]  # keywords only: no positional mix-ups


def test_options_that_are_not_options_are_refused() -> None:
    with pytest.raises(TypeError, match=r"takes an aiomsg\.Options"):
        aiomsg.serve(_echo, "127.0.0.1", 0, framing=aiomsg.Lines(), options={"backlog": 5})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "framing", [aiomsg.FixedLength(4), aiomsg.UntilEOF()], ids=["fixed", "eos"]
)
def test_a_heartbeat_the_framing_cannot_carry_is_refused_by_every_entry_point(
    framing: Framing,
) -> None:
    beat = aiomsg.Options(heartbeat=1.0)
    calls: list[Callable[[], object]] = [
        lambda: aiomsg.connect("127.0.0.1", 9, framing=framing, options=beat),
        lambda: aiomsg.connect_unix("/nonexistent", framing=framing, options=beat),
        lambda: aiomsg.serve(_echo, "127.0.0.1", 0, framing=framing, options=beat),
        lambda: aiomsg.serve_unix(_echo, "/nonexistent", framing=framing, options=beat),
        lambda: aiomsg.connect_framed("127.0.0.1", 9, framing=framing, options=beat),
        lambda: aiomsg.connect_framed_unix("/nonexistent", framing=framing, options=beat),
        lambda: aiomsg.MessageProtocol(framing=framing, options=beat),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="cannot carry an empty message"):
            call()  # refused by the call itself: nothing connects, nothing listens


# --- the options reach every front ------------------------------------------------------


async def _echo(conn: aiomsg.Connection) -> None:
    async for message in conn:
        await conn.send(message)


@pytest.mark.asyncio
async def test_one_options_object_sets_server_and_client_limits() -> None:
    """A stalled half message meets the server's message_timeout; the client's idle_timeout
    closes a connection to a silent server: both from one Options."""
    options = aiomsg.Options(message_timeout=0.3, idle_timeout=0.9)
    outcome: list[BaseException] = []

    async def handler(conn: aiomsg.Connection) -> None:
        try:
            await conn.receive()
        except aiomsg.ConnectionTimeout as exc:
            outcome.append(exc)

    framing = aiomsg.LengthPrefixed(4)
    async with asyncio.timeout(20):
        async with aiomsg.serve(handler, "127.0.0.1", 0, framing=framing, options=options) as srv:
            for opening in (framing.encode(b"never finished")[:6], b""):  # stalled, silent
                reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
                writer.write(opening)
                assert await reader.read() == b""  # the server gave up on it and closed
                writer.close()
            # Checked before the aiomsg client below: its idle_timeout, the same, may
            # fire first on a loaded machine and close before the server's does.
            assert [type(e) for e in outcome] == [aiomsg.MessageTimeout, aiomsg.IdleTimeout]
            async with aiomsg.connect(
                "127.0.0.1", srv.port, framing=framing, options=options
            ) as conn:
                with pytest.raises(aiomsg.IdleTimeout):
                    await conn.receive()  # the server says nothing unasked


@pytest.mark.asyncio
async def test_protocol_front_takes_options_as_class_attribute_and_argument() -> None:
    timed_out: asyncio.Queue[aiomsg.ConnectionTimeout] = asyncio.Queue()

    class Sink(aiomsg.MessageProtocol):
        framing = aiomsg.Lines()
        options = aiomsg.Options(idle_timeout=0.2)

        def message_received(self, message: bytes) -> None:
            pass

        def connection_timed_out(self, exc: aiomsg.ConnectionTimeout) -> None:
            timed_out.put_nowait(exc)

    loop = asyncio.get_running_loop()
    quick = aiomsg.Options(message_timeout=0.2)
    for factory, expected in (
        (Sink, aiomsg.IdleTimeout),
        (lambda: Sink(options=quick), aiomsg.MessageTimeout),  # the argument wins
    ):
        server = await loop.create_server(factory, "127.0.0.1", 0)
        async with server, asyncio.timeout(10):
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"half a line")  # begun, never finished, then silence
            assert isinstance(await timed_out.get(), expected)
            writer.close()


@pytest.mark.anyio
async def test_anyio_front_takes_options() -> None:
    async def handler(stream: aiomsg.FramedStream) -> None:
        with pytest.raises(aiomsg.MessageTimeout):
            await stream.receive()

    framing = aiomsg.LengthPrefixed(4)
    options = aiomsg.Options(message_timeout=0.3)
    with anyio.fail_after(10):
        async with running_server(handler, framing, options=options) as (host, port):
            async with await anyio.connect_tcp(host, port) as raw:
                await raw.send(framing.encode(b"cut short")[:6])
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await raw.receive()  # the server closed it


@asynccontextmanager
async def tls_server_that_never_answers() -> AsyncIterator[int]:
    """A TCP server that accepts and then says nothing: a TLS client waits for the
    server's hello for ever, unless its handshake is bounded."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield listener.getsockname()[1]  # the kernel completes the TCP handshake for us
    finally:
        listener.close()


@pytest.mark.anyio
async def test_connect_timeout_bounds_the_tls_handshake_on_every_backend() -> None:
    """trio's connect_framed used to wait for ever for a silent TLS server."""
    context = ssl.create_default_context()
    options = aiomsg.Options(connect_timeout=0.5)
    with anyio.fail_after(10):
        async with tls_server_that_never_answers() as port:
            with pytest.raises(TimeoutError):
                await aiomsg.connect_framed(
                    "127.0.0.1", port, framing=aiomsg.Lines(), ssl_context=context,
                    tls_hostname="localhost", options=options,
                )  # fmt: skip


@pytest.mark.asyncio
async def test_connect_timeout_bounds_the_tls_handshake_on_the_streams_front() -> None:
    context = ssl.create_default_context()
    async with asyncio.timeout(10), tls_server_that_never_answers() as port:
        with pytest.raises(TimeoutError):
            await aiomsg.connect(
                "127.0.0.1", port, framing=aiomsg.Lines(), ssl=context,
                server_hostname="localhost", options=aiomsg.Options(connect_timeout=0.5),
            )  # fmt: skip


@pytest.mark.asyncio
async def test_servers_listen_with_the_options_backlog() -> None:
    """The listen queue is the field's: ss shows it as the socket's Send-Q."""
    async with aiomsg.serve(
        _echo, "127.0.0.1", 0, framing=aiomsg.Lines(), options=aiomsg.Options(backlog=7)
    ) as server:
        assert _listen_backlog(server.port) == 7
    requests = aiomsg.serve_requests(lambda req: req, "127.0.0.1", 0)
    async with requests:
        assert _listen_backlog(requests.port) == aiomsg.limits.DEFAULT_BACKLOG


def _listen_backlog(port: int) -> int:
    """The backlog of the listening socket on ``port``, from /proc/net/tcp's sibling, ss."""
    import subprocess

    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[2])  # State Recv-Q Send-Q ...: Send-Q is the backlog of a listener


# --- connect() as await and as async with, on every front --------------------------------


@pytest.mark.asyncio
async def test_streams_connect_works_with_await_and_with_async_with() -> None:
    async with aiomsg.serve(_echo, "127.0.0.1", 0, framing=aiomsg.Lines()) as server:
        async with aiomsg.connect("127.0.0.1", server.port, framing=aiomsg.Lines()) as conn:
            await conn.send(b"with")
            assert await conn.receive() == b"with"
        assert conn.is_closing()  # the block closed it
        conn = await aiomsg.connect("127.0.0.1", server.port, framing=aiomsg.Lines())
        await conn.send(b"await")
        assert await conn.receive() == b"await"
        await conn.aclose()
        async with await aiomsg.connect(  # the older spelling still works
            "127.0.0.1", server.port, framing=aiomsg.Lines()
        ) as conn:
            await conn.send(b"both")
            assert await conn.receive() == b"both"


@pytest.mark.asyncio
async def test_unix_connect_works_with_await_and_with_async_with() -> None:
    with tempfile.TemporaryDirectory(prefix="aiomsg-") as directory:
        path = os.path.join(directory, "s")
        async with aiomsg.serve_unix(_echo, path, framing=aiomsg.Lines()):
            async with aiomsg.connect_unix(path, framing=aiomsg.Lines()) as conn:
                await conn.send(b"with")
                assert await conn.receive() == b"with"
            assert conn.is_closing()
            conn = await aiomsg.connect_unix(path, framing=aiomsg.Lines())
            await conn.send(b"await")
            assert await conn.receive() == b"await"
            await conn.aclose()


@pytest.mark.asyncio
async def test_async_with_connect_closes_on_an_exception_too() -> None:
    async with aiomsg.serve(_echo, "127.0.0.1", 0, framing=aiomsg.Lines()) as server:
        opened: list[aiomsg.Connection] = []
        with pytest.raises(KeyError):
            async with aiomsg.connect("127.0.0.1", server.port, framing=aiomsg.Lines()) as c:
                opened.append(c)
                raise KeyError("the block failed")
        assert opened[0].is_closing()
    with pytest.raises(OSError):  # a failed connect raises from the async with itself
        async with aiomsg.connect("127.0.0.1", _free_port(), framing=aiomsg.Lines()):
            pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _anyio_echo(stream: aiomsg.FramedStream) -> None:
    async for message in stream:
        await stream.send(message)


@pytest.mark.anyio
async def test_connect_framed_works_with_await_and_with_async_with() -> None:
    framing = aiomsg.Lines()
    with anyio.fail_after(10):
        async with running_server(_anyio_echo, framing) as (host, port):
            async with aiomsg.connect_framed(host, port, framing=framing) as stream:
                await stream.send(b"with")
                assert await stream.receive() == b"with"
            with pytest.raises(anyio.ClosedResourceError):  # closed by the block
                await stream.send(b"after")
            stream = await aiomsg.connect_framed(host, port, framing=framing)
            await stream.send(b"await")
            assert await stream.receive() == b"await"
            await stream.aclose()


@pytest.mark.anyio
async def test_connect_framed_unix_works_with_await_and_with_async_with() -> None:
    framing = aiomsg.Lines()
    with anyio.fail_after(10):
        async with aiomsg.testing.running_unix_server(_anyio_echo, framing) as path:
            async with aiomsg.connect_framed_unix(path, framing=framing) as stream:
                await stream.send(b"with")
                assert await stream.receive() == b"with"
            stream = await aiomsg.connect_framed_unix(path, framing=framing)
            await stream.send(b"await")
            assert await stream.receive() == b"await"
            await stream.aclose()


# --- send("text") -------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("framing", ALL_FRAMINGS)
async def test_streams_send_of_a_str_is_one_clear_type_error(framing: Framing) -> None:
    async with aiomsg.serve(_echo, "127.0.0.1", 0, framing=framing) as server:
        async with aiomsg.connect("127.0.0.1", server.port, framing=framing) as conn:
            with pytest.raises(TypeError, match=NOT_BYTES):
                await conn.send("text")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=NOT_BYTES):
                await conn.send_many([b"ok", "text"])  # type: ignore[list-item]
            with pytest.raises(TypeError, match="not int: encode it first"):
                await conn.send(5)  # type: ignore[arg-type]
            # Nothing was half-sent: the connection still works.
            (message,) = messages_for(framing, (10,))
            await conn.send(message)
            if not isinstance(framing, aiomsg.UntilEOF):  # (that echo answers after EOF)
                assert await conn.receive() == message


@pytest.mark.parametrize("framing", ALL_FRAMINGS)
def test_protocol_send_of_a_str_is_one_clear_type_error(framing: Framing) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        made: asyncio.Future[aiomsg.MessageProtocol] = loop.create_future()

        class Peer(aiomsg.MessageProtocol):
            def message_received(self, message: bytes) -> None:
                pass

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                made.set_result(self)

        server = await loop.create_server(lambda: Peer(framing=framing), "127.0.0.1", 0)
        async with server, asyncio.timeout(10):
            port = server.sockets[0].getsockname()[1]
            _, client = await loop.create_connection(
                lambda: Peer(framing=framing), "127.0.0.1", port
            )
            with pytest.raises(TypeError, match=NOT_BYTES):
                client.send("text")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=NOT_BYTES):
                client.send_many(iter([b"ok", "text"]))  # type: ignore[arg-type]
            client.close()
            (await made).close()

    for loop_factory in _loops():
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())


def _loops() -> list[Callable[[], asyncio.AbstractEventLoop]]:
    from .conftest import LOOPS

    return list(LOOPS.values())


@pytest.mark.anyio
@pytest.mark.parametrize("framing", ALL_FRAMINGS)
async def test_anyio_send_of_a_str_is_one_clear_type_error(framing: Framing) -> None:
    """On aiomsg's transport (asyncio) and on anyio's streams (trio), and on a FramedStream
    around any byte stream."""

    async def idle(stream: aiomsg.FramedStream) -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with connected(idle, framing) as client:
            with pytest.raises(TypeError, match=NOT_BYTES):
                await client.send("text")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=NOT_BYTES):
                await client.send_many(["text"])  # type: ignore[list-item]
        sender, receiver = _byte_pair()
        framed = aiomsg.FramedStream(sender, framing)
        with pytest.raises(TypeError, match=NOT_BYTES):
            await framed.send("text")  # type: ignore[arg-type]
        await framed.aclose()
        await receiver.aclose()


def _byte_pair() -> tuple[anyio.abc.ByteStream, anyio.abc.ByteStream]:
    a, b = socket.socketpair()
    return _SocketBytes(a), _SocketBytes(b)


class _SocketBytes(anyio.abc.ByteStream):
    """A tiny byte stream over a socket pair end, enough to wrap in a FramedStream."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.wait_readable(self._sock)
        return self._sock.recv(max_bytes)

    async def send(self, item: bytes) -> None:
        self._sock.sendall(item)

    async def send_eof(self) -> None:
        self._sock.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        self._sock.close()


@pytest.mark.anyio
async def test_framed_stream_send_text_and_receive_text() -> None:
    async def upper(stream: aiomsg.FramedStream) -> None:
        async for message in stream:
            await stream.send_text(message.decode().upper())

    with anyio.fail_after(10):
        async with connected(upper, aiomsg.Lines()) as client:
            await client.send_text("héllo")
            assert await client.receive_text() == "HÉLLO"


# --- the old keywords ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_old_keywords_still_work_with_a_deprecation_warning() -> None:
    framing = aiomsg.LengthPrefixed(4)
    with pytest.warns(DeprecationWarning, match=r"serve\(\): the keywords message_timeout="):
        server = aiomsg.serve(_echo, "127.0.0.1", 0, framing=framing, message_timeout=0.3)
    with pytest.warns(DeprecationWarning, match=r"Options\(connect_timeout=5\)"):
        opening = aiomsg.connect("127.0.0.1", 1, framing=framing, timeout=5)
    opening._connecting.close()  # never awaited: say so to no one
    async with asyncio.timeout(10), server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(framing.encode(b"stalled")[:5])
        assert await reader.read() == b""  # the deprecated knob was honoured
        writer.close()


def test_old_class_attributes_still_work_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="class Old: the class attributes idle_timeout"):

        class Old(aiomsg.MessageProtocol):
            framing = aiomsg.Lines()
            idle_timeout = 7.0

    assert Old.options.idle_timeout == 7.0
    assert Old.options.message_timeout == 60.0  # the rest stays as it was
    with pytest.warns(DeprecationWarning, match="MessageProtocol"):
        protocol = aiomsg.MessageProtocol(framing=aiomsg.Lines(), keepalive=None)
    assert protocol._keepalive is None
    with pytest.raises(TypeError, match="unexpected keyword arguments: no_such"):
        aiomsg.MessageProtocol(framing=aiomsg.Lines(), no_such=1)


@pytest.mark.anyio
async def test_old_anyio_keywords_still_work_with_a_deprecation_warning() -> None:
    async def handler(stream: aiomsg.FramedStream) -> None:
        await stream.receive()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                serve = functools.partial(
                    aiomsg.serve_framed, handler, "127.0.0.1", 0,
                    framing=aiomsg.Lines(), ssl_handshake_timeout=3.0, backlog=10,
                )  # fmt: skip
                await tg.start(serve)
                tg.cancel_scope.cancel()
    words = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert any("Options(tls_handshake_timeout=3.0, backlog=10)" in w for w in words), words
    with pytest.raises(TypeError, match="unexpected keyword arguments: nonsense"):
        await aiomsg.serve_framed(handler, framing=aiomsg.Lines(), nonsense=1)
