"""Graceful drain (``Server.drain``, SIGTERM in ``aiomsg serve``): what is in flight is
finished and answered, then EOF; the drain timeout bounds it. Real clients on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

import aiomsg

pytestmark = pytest.mark.asyncio

WAIT = 10.0  # seconds: a bound that only a broken server reaches
FRAMING = aiomsg.LengthPrefixed(4)


async def slow_echo(conn: aiomsg.Connection) -> None:
    """Each message answered after a pause: the answers are still owed when the drain begins."""
    async for message in conn:
        await asyncio.sleep(0.05)
        await conn.send(b"re: " + message)


async def test_messages_received_are_answered_then_eof_and_no_new_client_is_accepted() -> None:
    server = await aiomsg.serve(slow_echo, "127.0.0.1", 0, framing=FRAMING)
    port = server.port
    conn = await aiomsg.connect("127.0.0.1", port, framing=FRAMING)
    idle = await aiomsg.connect("127.0.0.1", port, framing=FRAMING)
    await conn.send_many([b"one", b"two", b"three"])
    await conn.drain()
    await asyncio.sleep(0.02)  # they have arrived; the first answer is 50 ms away
    async with asyncio.timeout(WAIT):
        drained = asyncio.create_task(server.drain())
        assert [await conn.receive() for _ in range(3)] == [b"re: one", b"re: two", b"re: three"]
        assert await conn.receive_or_none() is None  # then EOF, not a reset
        assert await idle.receive_or_none() is None  # an idle client: EOF at once
        await conn.aclose()
        await idle.aclose()
        await drained
    assert server.draining
    with pytest.raises(OSError):
        await aiomsg.connect("127.0.0.1", port, framing=FRAMING)


async def test_a_message_half_received_when_the_drain_begins_is_finished_and_answered() -> None:
    server = await aiomsg.serve(slow_echo, "127.0.0.1", 0, framing=FRAMING)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        wire = FRAMING.encode(b"in flight")
        await loop.sock_sendall(sock, wire[:6])
        await asyncio.sleep(0.05)  # the server holds half the message
        drained = asyncio.create_task(server.drain())
        await asyncio.sleep(0.05)
        await loop.sock_sendall(sock, wire[6:])  # its end: the input ends there
        await asyncio.sleep(0.05)
        await loop.sock_sendall(sock, FRAMING.encode(b"after the boundary"))
        received = b""
        async with asyncio.timeout(WAIT):
            while chunk := await loop.sock_recv(sock, 65536):
                received += chunk
    async with asyncio.timeout(WAIT):
        await drained  # the client closed: the server's lingering close is over
    # The message in flight is answered; the one sent after its end was never read.
    assert received == FRAMING.encode(b"re: in flight")


async def test_the_drain_timeout_bounds_a_handler_that_never_finishes() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(conn: aiomsg.Connection) -> None:
        await conn.receive()
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    options = aiomsg.Options(drain_timeout=0.2)
    server = await aiomsg.serve(stuck, "127.0.0.1", 0, framing=FRAMING, options=options)
    async with aiomsg.connect("127.0.0.1", server.port, framing=FRAMING) as conn:
        await conn.send(b"never answered")
        async with asyncio.timeout(WAIT):
            await started.wait()
            await server.drain()  # options.drain_timeout: 0.2 s, then cancelled
            assert cancelled.is_set()
            with pytest.raises(aiomsg.ConnectionClosed):
                await conn.receive()
    # The argument overrides the option.
    again = await aiomsg.serve(stuck, "127.0.0.1", 0, framing=FRAMING)
    started.clear()
    cancelled.clear()
    async with aiomsg.connect("127.0.0.1", again.port, framing=FRAMING) as conn:
        await conn.send(b"never answered")
        async with asyncio.timeout(WAIT):
            await started.wait()
            await again.drain(timeout=0.1)
            assert cancelled.is_set()


async def test_drain_timeout_is_an_option_checked_when_made() -> None:
    assert aiomsg.Options().drain_timeout == 10.0
    with pytest.raises(ValueError, match="drain_timeout"):
        aiomsg.Options(drain_timeout=0)
    with pytest.raises(TypeError, match="drain_timeout"):
        aiomsg.Options(drain_timeout="5")  # type: ignore[arg-type]


async def test_a_unix_socket_server_drains_too(tmp_path: Path) -> None:
    path = tmp_path / "drain.sock"
    server = await aiomsg.serve_unix(slow_echo, path, framing=FRAMING)
    conn = await aiomsg.connect_unix(path, framing=FRAMING)
    await conn.send(b"hello")
    await asyncio.sleep(0.02)
    async with asyncio.timeout(WAIT):
        drained = asyncio.create_task(server.drain())
        assert await conn.receive() == b"re: hello"
        assert await conn.receive_or_none() is None
        await conn.aclose()
        await drained
    assert not path.exists()


async def test_requests_in_flight_are_answered_and_idle_connections_closed() -> None:
    arrived = asyncio.Event()

    async def slow(request: bytes) -> bytes:
        arrived.set()
        await asyncio.sleep(0.2)
        return request.upper()

    server = await aiomsg.serve_requests(slow, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    idle = socket.create_connection(("127.0.0.1", server.port))
    idle.setblocking(False)

    async def idle_client() -> bytes:
        try:  # what a client does: read until EOF, then close
            return await loop.sock_recv(idle, 100)
        finally:
            idle.close()

    async with asyncio.timeout(WAIT):
        asking = asyncio.create_task(aiomsg.request("127.0.0.1", server.port, b"hello"))
        await arrived.wait()
        idling = asyncio.create_task(idle_client())
        await server.drain()
        assert await asking == b"HELLO"  # answered although the server stopped
        assert await idling == b""  # nothing of a request: EOF, no answer


async def test_aiomsg_serve_drains_on_sigterm_and_exits_cleanly() -> None:
    env = {**os.environ, "AIOMSG_LOOP": aiomsg.loop_name()}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiomsg", "serve", "127.0.0.1", "0", "--framing", "lines", "-v",
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        async with asyncio.timeout(WAIT):
            line = (await process.stderr.readline()).decode()
            port = int(line.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"first\nhalf of a li")  # a line in flight when SIGTERM comes
            await writer.drain()
            assert await reader.readline() == b"first\n"
            await asyncio.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.1)
            writer.write(b"ne\n")  # its end: the input ends there
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(b"never read\n")
            await writer.drain()
            assert await reader.read() == b"half of a line\n"  # answered, then EOF
            writer.close()
            assert await process.wait() == 0
            rest = (await process.stderr.read()).decode()
        assert "stopping: draining the connections" in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        async with asyncio.timeout(WAIT):
            await process.stderr.read()  # to its end: the transport closes with the loop


class Upper(aiomsg.MessageProtocol):
    """Answers each message at once (in ``message_received``)."""

    framing = FRAMING

    def message_received(self, message: bytes) -> None:
        self.send(message.upper())


class LaterUpper(aiomsg.MessageProtocol):
    """Answers each message later, in a task; at the end of input it finishes, then closes."""

    framing = FRAMING

    def __init__(self) -> None:
        super().__init__()
        self.pending: set[asyncio.Task[None]] = set()
        self.ended = False

    def message_received(self, message: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self.answer(message))
        self.pending.add(task)
        task.add_done_callback(self.done)

    async def answer(self, message: bytes) -> None:
        await asyncio.sleep(0.05)
        self.send(message.upper())

    def done(self, task: asyncio.Task[None]) -> None:
        self.pending.discard(task)
        if self.ended and not self.pending:
            self.close()

    def peer_closed(self) -> bool:
        self.ended = True
        if not self.pending:
            self.close()
        return True  # kept open until the answers are out


@pytest.mark.parametrize("protocol", [Upper, LaterUpper])
async def test_a_message_protocol_server_answers_what_it_received_then_eof(
    protocol: type[aiomsg.MessageProtocol],
) -> None:
    server = await aiomsg.serve_protocol(protocol, "127.0.0.1", 0)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        wire = FRAMING.encode(b"in flight")
        await loop.sock_sendall(sock, FRAMING.encode(b"first") + wire[:6])
        await asyncio.sleep(0.05)  # the server holds half a message
        async with asyncio.timeout(WAIT):
            drained = asyncio.create_task(server.drain())
            await asyncio.sleep(0.05)
            await loop.sock_sendall(sock, wire[6:])  # its end: the input ends there
            await asyncio.sleep(0.1)
            with contextlib.suppress(ConnectionError):  # the server may have closed
                await loop.sock_sendall(sock, FRAMING.encode(b"never read"))
            received = b""
            while chunk := await loop.sock_recv(sock, 65536):
                received += chunk
        sock.close()
        async with asyncio.timeout(WAIT):
            await drained
    assert received == FRAMING.encode(b"FIRST") + FRAMING.encode(b"IN FLIGHT")


async def test_serve_forever_lets_a_drain_from_another_task_finish() -> None:
    server = aiomsg.serve(slow_echo, "127.0.0.1", 0, framing=FRAMING)
    serving = asyncio.create_task(server.serve_forever())
    async with asyncio.timeout(WAIT):
        while not server.sockets:
            await asyncio.sleep(0.01)
        conn = await aiomsg.connect("127.0.0.1", server.port, framing=FRAMING)
        await conn.send(b"owed")
        await asyncio.sleep(0.02)
        drained = asyncio.create_task(server.drain())
        assert await conn.receive() == b"re: owed"  # not cancelled by serve_forever's exit
        assert await conn.receive_or_none() is None
        await conn.aclose()
        await drained
        await serving  # returns once the drain is over
