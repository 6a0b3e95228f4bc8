"""Rude TLS clients against every aiomsg TLS server: each server must survive them.

Servers: the Streams front (``aiomsg.serve``) and the Protocol front
(``loop.create_server`` with a ``MessageProtocol``) on asyncio and uvloop, and
the anyio front (``aiomsg.serve_framed``) on asyncio, asyncio+uvloop and trio.

Rude clients are plain blocking sockets run in worker threads (every socket
operation has a timeout; loopback only). They drop the connection without TLS
close_notify, reset it, speak plaintext to the TLS port, or stall in the
handshake. After one of them, and after a swarm of them at once, the server
must (i) still serve a good TLS client, (ii) close every connection it opened
(the process's file descriptors return to their earlier count), (iii) still be
running, and (iv) log nothing at ERROR level (on ``aiomsg``'s logger or any other).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import anyio
import pytest
import trustme
from anyio.abc import TaskStatus

import aiomsg

FRAMING = aiomsg.LengthPrefixed(4)
IO_TIMEOUT = 5.0  # every blocking socket operation of a client
HANDSHAKE_TIMEOUT = 1.0  # the server's TLS handshake timeout
HANGUP_WITHIN = HANDSHAKE_TIMEOUT + 4.0  # how long a stalled client waits to be dropped
FDS_SETTLE_WITHIN = 5.0  # closes are asynchronous: wait this long for the fd count to come back
TEST_TIMEOUT = 20.0  # one whole attack, checks included
SWARM = 20  # rude clients of one kind at once
MIXED_EACH = 4  # rude clients of every kind at once, in the mixed attack
GOOD_MESSAGES = [b"one", b"", b"x" * 100_000, b"last"]


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Contexts:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls() -> Contexts:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return Contexts(server_ctx, client_ctx)


# --- clients (blocking; they run in worker threads) ------------------------------------------


class Stalls:
    """How many stalling clients hold a connection open right now (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def enter(self) -> None:
        with self._lock:
            self.open += 1

    def leave(self) -> None:
        with self._lock:
            self.open -= 1


@dataclass(frozen=True)
class Target:
    port: int
    ctx: ssl.SSLContext  # the client's: trusts the server's certificate
    stalls: Stalls = field(default_factory=Stalls)


def tcp(target: Target) -> socket.socket:
    return socket.create_connection(("127.0.0.1", target.port), timeout=IO_TIMEOUT)


def tls_socket(target: Target) -> ssl.SSLSocket:
    """A TCP connection with a completed TLS handshake."""
    raw = tcp(target)
    try:
        return target.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise


def reset(sock: socket.socket) -> None:
    """Close abortively (SO_LINGER on, linger 0): the server gets a TCP RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def wait_for_hangup(sock: socket.socket, within: float) -> None:
    """Read and drop raw bytes until the server closes (FIN or RST); fail after ``within`` s."""
    deadline = time.monotonic() + within
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return
        except (ConnectionResetError, BrokenPipeError):
            return
        except TimeoutError:
            break
    raise AssertionError(f"the server kept the connection open for more than {within} s")


def client_hello(ctx: ssl.SSLContext) -> bytes:
    """The bytes of a ClientHello, as a real client would send them first."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls_object.do_handshake()
    return outgoing.read()


def good_client(target: Target) -> None:
    """Handshake, echo GOOD_MESSAGES, close politely (close_notify both ways)."""
    with tls_socket(target) as sock:
        sock.sendall(FRAMING.encode_many(GOOD_MESSAGES))
        decoder = FRAMING.decoder()
        got: list[bytes] = []
        while len(got) < len(GOOD_MESSAGES):
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"the server closed after echoing {len(got)} messages")
            got.extend(decoder.feed(chunk))
        assert got == GOOD_MESSAGES
        sock.unwrap()  # sends close_notify and waits for the server's


# Rude clients. Python's SSLSocket.close() does not send close_notify, and
# SSLSocket.shutdown() drops the TLS layer before shutting down the TCP socket.


def close_after_handshake(target: Target) -> None:
    tls_socket(target).close()


def eof_after_handshake(target: Target) -> None:
    with tls_socket(target) as sock:
        sock.shutdown(socket.SHUT_WR)  # a TCP FIN without close_notify
        wait_for_hangup(sock, IO_TIMEOUT)  # the server must not wait for more


def message_then_close(target: Target) -> None:
    sock = tls_socket(target)
    sock.sendall(FRAMING.encode(b"rude"))
    sock.close()  # the echo is on its way to a closed socket


def half_message_then_close(target: Target) -> None:
    sock = tls_socket(target)
    sock.sendall(FRAMING.encode(b"rude message")[:7])
    sock.close()


def reset_after_handshake(target: Target) -> None:
    reset(tls_socket(target))


def reset_after_message(target: Target) -> None:
    sock = tls_socket(target)
    sock.sendall(FRAMING.encode(b"rude"))
    reset(sock)


def reset_before_handshake(target: Target) -> None:
    reset(tcp(target))


def reset_mid_handshake(target: Target) -> None:
    with tcp(target) as sock:
        sock.sendall(client_hello(target.ctx))
        sock.recv(5)  # the server's first flight has started: it waits for our Finished
        reset(sock)


def plaintext(wire: bytes) -> Callable[[Target], None]:
    def send_plaintext(target: Target) -> None:
        with tcp(target) as sock:
            sock.sendall(wire)
            wait_for_hangup(sock, IO_TIMEOUT)  # the server must drop a client that is not TLS

    return send_plaintext


def stall(first_bytes: Callable[[ssl.SSLContext], bytes]) -> Callable[[Target], None]:
    def stall_in_handshake(target: Target) -> None:
        with tcp(target) as sock:
            sock.sendall(first_bytes(target.ctx))
            target.stalls.enter()
            try:
                wait_for_hangup(sock, HANGUP_WITHIN)  # the handshake timeout must drop us
            finally:
                target.stalls.leave()

    return stall_in_handshake


@dataclass(frozen=True)
class Rude:
    name: str
    act: Callable[[Target], None]
    stalls: bool = False  # holds its connection open until the server's handshake timeout


RUDE_CLIENTS = [
    Rude("close_after_handshake", close_after_handshake),
    Rude("eof_after_handshake", eof_after_handshake),
    Rude("message_then_close", message_then_close),
    Rude("half_message_then_close", half_message_then_close),
    Rude("reset_after_handshake", reset_after_handshake),
    Rude("reset_after_message", reset_after_message),
    Rude("reset_before_handshake", reset_before_handshake),
    Rude("reset_mid_handshake", reset_mid_handshake),
    Rude("plaintext_http", plaintext(b"GET / HTTP/1.0\r\n\r\n")),
    Rude("plaintext_message", plaintext(FRAMING.encode(b"hello"))),
    Rude("stall_silent", stall(lambda ctx: b""), stalls=True),
    Rude("stall_in_client_hello", stall(lambda ctx: client_hello(ctx)[:40]), stalls=True),
]
RUDE_PARAMS = [pytest.param(rude, id=rude.name) for rude in RUDE_CLIENTS]


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    is_serving: Callable[[], bool]
    died: list[BaseException] = field(default_factory=list)  # what ended the server, if it did


ServerFactory = Callable[[Contexts], AbstractAsyncContextManager[Server]]


async def streams_echo(conn: aiomsg.Connection) -> None:
    async for message in conn:
        await conn.send(message)


class ProtocolEcho(aiomsg.MessageProtocol):
    framing = FRAMING

    def message_received(self, message: bytes) -> None:
        self.send(message)


@asynccontextmanager
async def streams_server(tls: Contexts) -> AsyncIterator[Server]:
    async with aiomsg.serve(
        streams_echo,
        "127.0.0.1",
        0,
        framing=FRAMING,
        ssl=tls.server,
        options=aiomsg.Options(tls_handshake_timeout=HANDSHAKE_TIMEOUT),
    ) as server:
        yield Server(server.port, lambda: bool(server.sockets))


@asynccontextmanager
async def protocol_server(tls: Contexts) -> AsyncIterator[Server]:
    server = await asyncio.get_running_loop().create_server(
        ProtocolEcho,
        "127.0.0.1",
        0,
        ssl=tls.server,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        yield Server(port, server.is_serving)




async def anyio_echo(stream: aiomsg.FramedStream) -> None:
    async for message in stream:
        await stream.send(message)


class RecordingStatus:
    """A TaskStatus that remembers whether the task reported it had started."""

    def __init__(self, inner: TaskStatus[int]) -> None:
        self.inner = inner
        self.done = False

    def started(self, value: int | None = None) -> None:
        assert value is not None
        self.done = True
        self.inner.started(value)


@asynccontextmanager
async def anyio_server(tls: Contexts) -> AsyncIterator[Server]:
    """serve_framed in a task group. If it ends (it must not), the reason is recorded."""
    died: list[BaseException] = []
    knobs = {"options": aiomsg.Options(tls_handshake_timeout=HANDSHAKE_TIMEOUT)}

    async def run(*, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        status = RecordingStatus(task_status)
        try:
            await aiomsg.serve_framed(
                anyio_echo,
                "127.0.0.1",
                0,
                framing=FRAMING,
                ssl_context=tls.server,
                task_status=status,
                **knobs,  # type: ignore[arg-type]
            )
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            if not status.done:
                raise  # failed to start: the test fails at once
            died.append(exc)
        else:
            died.append(RuntimeError("serve_framed returned"))

    async with anyio.create_task_group() as tg:
        port = await tg.start(run)

        try:
            yield Server(port, lambda: not died, died)
        finally:
            tg.cancel_scope.cancel()


ASYNCIO_SERVERS = [
    pytest.param(streams_server, id="streams"),
    pytest.param(protocol_server, id="protocol"),
]


# --- the attack and the checks ---------------------------------------------------------------


def open_fds() -> dict[str, str]:
    """This process's open file descriptors and what they point at."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return fds


def sockets(fds: dict[str, str]) -> dict[str, str]:
    return {fd: what for fd, what in fds.items() if what.startswith("socket:")}


async def fds_settle(baseline: dict[str, str], what: str, *, sockets_only: bool = False) -> None:
    """Wait (bounded) until no more descriptors (or sockets) are open than in ``baseline``."""
    deadline = time.monotonic() + FDS_SETTLE_WITHIN
    kept = sockets if sockets_only else dict
    baseline = kept(baseline)
    while len(now := kept(open_fds())) > len(baseline):
        if time.monotonic() > deadline:
            extra = sorted(set(now.items()) - set(baseline.items()))
            raise AssertionError(
                f"after {what}: {len(now) - len(baseline)} more file descriptors open than "
                f"before, {FDS_SETTLE_WITHIN} s later: {extra}"
            )
        await anyio.sleep(0.02)


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``'s (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def check_alive(server: Server, what: str, seen: BaseException | None = None) -> None:
    """Fail if the server stopped, with what stopped it as the cause (and what a client saw)."""
    if server.is_serving():
        return
    cause = server.died[0] if server.died else None
    message = f"the server stopped serving during {what}"
    if cause is not None:
        message += ": " + ", ".join(f"{type(e).__name__}: {e}" for e in leaves(cause))
    if seen is not None:
        message += f" (a client saw {seen!r})"
    raise AssertionError(message) from cause


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR records from any logger: aiomsg's, and also anyio's and asyncio's, which log
    nothing at ERROR for these clients unless the server lets them (anyio's TLSListener
    logs every failed handshake at ERROR unless its handle_handshake_error is replaced)."""
    return [
        f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}"
        if r.exc_info
        else f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR
    ]


async def in_thread(
    func: Callable[[Target], None], target: Target, limiter: anyio.CapacityLimiter
) -> None:
    await anyio.to_thread.run_sync(func, target, limiter=limiter)


async def attack(server: Server, tls: Contexts, rudes: list[Rude], each: int) -> None:
    """Run ``each`` of every client in ``rudes`` at once, with a good client among them; check."""
    target = Target(server.port, tls.client)
    stallers = each * sum(rude.stalls for rude in rudes)
    limiter = anyio.CapacityLimiter(each * len(rudes) + 2)
    what = f"{each} x {', '.join(rude.name for rude in rudes)}"
    async with anyio.create_task_group() as tg:
        for rude in rudes:
            for _ in range(each):
                tg.start_soon(in_thread, rude.act, target, limiter)
        if stallers:
            while target.stalls.open < stallers:  # bounded by the test's timeout
                await anyio.sleep(0.01)
        # (i) served while the rude clients misbehave...
        await in_thread(good_client, target, limiter)
        if stallers:
            assert target.stalls.open > 0, "the good client was served only after the stalls ended"
    # ...and after them.
    await in_thread(good_client, target, limiter)
    check_alive(server, what)  # (iii)


async def survive(
    make_server: ServerFactory,
    tls: Contexts,
    rudes: list[Rude],
    counts: tuple[int, ...],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiomsg")
    with anyio.fail_after(TEST_TIMEOUT):
        async with make_server(tls) as server:
            before = open_fds()
            target = Target(server.port, tls.client)
            await in_thread(good_client, target, anyio.CapacityLimiter(1))
            await fds_settle(before, "a good client", sockets_only=True)
            # The first client may open descriptors for good (uvloop's libuv keeps a
            # /dev/null in reserve for running out of descriptors): count from here.
            baseline = open_fds()
            for each in counts:
                what = f"{each} x {', '.join(rude.name for rude in rudes)}"
                try:
                    await attack(server, tls, rudes, each)
                except Exception as exc:
                    # A dying server cancels its connections first, then ends: give it a moment.
                    with anyio.move_on_after(1.0):
                        while server.is_serving():
                            await anyio.sleep(0.01)
                    check_alive(server, what, seen=exc)  # (iii): the likely reason, if any
                    raise
                await fds_settle(baseline, what)  # (ii)
                check_alive(server, what)  # (iii)
    assert logged_errors(caplog) == []  # (iv)


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("rude", RUDE_PARAMS)
@pytest.mark.parametrize("make_server", ASYNCIO_SERVERS)
async def test_asyncio_server_survives(
    make_server: ServerFactory, rude: Rude, tls: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    """One rude client, then SWARM of them at once: the server serves on and leaks nothing."""
    await survive(make_server, tls, [rude], (1, SWARM), caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize("make_server", ASYNCIO_SERVERS)
async def test_asyncio_server_survives_every_kind_at_once(
    make_server: ServerFactory, tls: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    await survive(make_server, tls, RUDE_CLIENTS, (MIXED_EACH,), caplog)


@pytest.mark.anyio
@pytest.mark.parametrize("rude", RUDE_PARAMS)
async def test_serve_framed_survives(
    rude: Rude, tls: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    """One rude client, then SWARM of them at once: the server serves on and leaks nothing."""
    await survive(anyio_server, tls, [rude], (1, SWARM), caplog)


@pytest.mark.anyio
async def test_serve_framed_survives_every_kind_at_once(
    tls: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    await survive(anyio_server, tls, RUDE_CLIENTS, (MIXED_EACH,), caplog)
