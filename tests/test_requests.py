"""Half-close request/response exchanges, on asyncio and uvloop, with clients nobody here wrote."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme

import aiomsg

from .peers import connect_blocking, exchange, recv_all

pytestmark = pytest.mark.asyncio

def reverse(request: bytes) -> bytes:
    return request[::-1]


@contextlib.asynccontextmanager
async def request_server(handler: Any = reverse, **kw: Any) -> AsyncIterator[tuple[str, int]]:
    async with aiomsg.serve_requests(handler, "127.0.0.1", 0, **kw) as server:
        yield ("127.0.0.1", server.port)


@pytest.mark.parametrize("size", [0, 1, 10 * 1024 * 1024])
async def test_blocking_client_with_shutdown(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    async with request_server() as address:
        assert await asyncio.to_thread(exchange, address, payload) == payload[::-1]


@pytest.mark.parametrize("size", [0, 1, 10 * 1024 * 1024])
async def test_request_function(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    async with request_server() as address:
        assert await aiomsg.request(*address, payload) == payload[::-1]


async def test_async_handler_and_unix_socket() -> None:
    async def shout(request: bytes) -> bytes:
        await asyncio.sleep(0)
        return request.upper()

    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = f"{folder}/s"
        async with aiomsg.serve_requests_unix(shout, path):
            assert await aiomsg.request_unix(path, b"quiet") == b"QUIET"


async def test_200_concurrent_requests() -> None:
    async with request_server() as address:
        payloads = [b"request %d" % i for i in range(200)]
        answers = await asyncio.gather(*(aiomsg.request(*address, p) for p in payloads))
    assert answers == [p[::-1] for p in payloads]


async def test_sender_dribbling_one_byte_at_a_time() -> None:
    payload = b"slowly but surely"

    def dribble(address: tuple[str, int]) -> bytes:
        sock = connect_blocking(address)
        with sock:
            for i in range(len(payload)):
                sock.send(payload[i : i + 1])
            sock.shutdown(socket.SHUT_WR)
            return recv_all(sock)

    async with request_server() as address:
        assert await asyncio.to_thread(dribble, address) == payload[::-1]


def _run_tool(args: list[str], data: bytes) -> bytes:
    return subprocess.run(args, input=data, capture_output=True, timeout=30, check=True).stdout


async def test_netcat_client() -> None:
    nc = shutil.which("nc")
    assert nc, "netcat-openbsd is required (.ci/run installs it)"
    async with request_server() as (host, port):
        out = await asyncio.to_thread(_run_tool, [nc, "-N", host, str(port)], b"hello from nc")
    assert out == b"cn morf olleh"


async def test_socat_client() -> None:
    socat = shutil.which("socat")
    assert socat, "socat is required (.ci/run installs it)"
    async with request_server() as (host, port):
        out = await asyncio.to_thread(
            _run_tool, [socat, "-t", "10", "-", f"TCP:{host}:{port}"], b"hello from socat"
        )
    assert out == b"tacos morf olleh"


async def test_client_that_never_half_closes_times_out_while_others_are_served() -> None:
    async with request_server(timeout=0.5) as address:
        silent = connect_blocking(address)
        try:
            silent.sendall(b"no end in sight")
            # Served meanwhile:
            assert await aiomsg.request(*address, b"abc") == b"cba"

            def wait_for_close() -> bytes:
                try:
                    return recv_all(silent)
                except ConnectionResetError:
                    return b"<reset>"

            assert await asyncio.to_thread(wait_for_close) in (b"", b"<reset>")
        finally:
            silent.close()


async def test_server_that_never_answers_gives_a_timeout_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(TimeoutError):
            host, port = listener.getsockname()
            await aiomsg.request(host, port, b"anyone?", timeout=0.3)
    finally:
        listener.close()


async def test_request_over_max_size_is_refused_without_buffering_it() -> None:
    seen: list[bytes] = []

    def record(request: bytes) -> bytes:
        seen.append(request)
        return b"ok"

    async with request_server(handler=record, max_size=1000) as address:
        with pytest.raises((aiomsg.ConnectionClosed, ConnectionError)):
            # The client's own limit is higher: the server's refusal is what is tested.
            await aiomsg.request(*address, b"x" * 100_000, max_size=200_000)
        assert await aiomsg.request(*address, b"x" * 1000) == b"ok"
    assert seen == [b"x" * 1000]


async def test_request_refuses_payload_over_its_own_max_size() -> None:
    with pytest.raises(aiomsg.MessageTooLarge):
        await aiomsg.request("127.0.0.1", 9, b"x" * 11, max_size=10)


async def test_handler_failure_resets_the_client(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: bytes) -> bytes:
        raise RuntimeError("handler bug")

    async with request_server(handler=broken) as address:
        with pytest.raises((aiomsg.ConnectionClosed, ConnectionError)):
            await aiomsg.request(*address, b"hi")
    assert "handler bug" in caplog.text


@pytest.mark.parametrize("answer", ["text", 5, b"x" * 1025], ids=["str", "int", "too large"])
async def test_an_answer_that_cannot_be_sent_is_a_handler_failure(
    answer: object, caplog: pytest.LogCaptureFixture
) -> None:
    # Not bytes-like, or over max_size: logged once with its traceback, the client reset,
    # and the server goes on serving.
    def handler(request: bytes) -> Any:
        return answer if request == b"bad" else request

    async with request_server(handler=handler, max_size=1024) as address:
        with pytest.raises((aiomsg.ConnectionClosed, ConnectionError)):
            await aiomsg.request(*address, b"bad")
        assert await aiomsg.request(*address, b"good") == b"good"
    assert "request handler failed" in caplog.text


async def test_tls_is_refused_before_anything_is_sent() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(NotImplementedError, match="TLS"):
            host, port = listener.getsockname()
            await aiomsg.request(host, port, b"secret", ssl=True)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody even connected
    finally:
        listener.close()


async def test_send_eof_over_tls_is_a_clear_error_not_a_hang() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    framing = aiomsg.LengthPrefixed(4)
    received: list[bytes] = []

    async def handler(conn: aiomsg.Connection) -> None:
        async for message in conn:
            received.append(message)

    async with aiomsg.serve(handler, "127.0.0.1", 0, framing=framing, ssl=server_ctx) as server:
        conn = await aiomsg.connect("127.0.0.1", server.port, framing=framing, ssl=client_ctx)
        async with conn:
            assert not conn.can_send_eof()
            with pytest.raises(NotImplementedError, match="TLS"):
                await asyncio.wait_for(conn.send_eof(), 5)
            await conn.send(b"still usable")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
    assert received == [b"still usable"]


async def test_send_eof_flushes_many_megabytes_first() -> None:
    payload = bytes(range(256)) * (40 * 4096)  # 40 MiB

    async with request_server(max_size=len(payload)) as address:
        conn = await aiomsg.connect(*address, framing=aiomsg.UntilEOF(max_size=len(payload)))
        async with conn:
            await conn.send(payload)
            await conn.send_eof()  # must not cut the request short
            assert await conn.receive() == payload[::-1]


async def test_the_front_argument_is_deprecated_and_ignored() -> None:
    with pytest.warns(DeprecationWarning, match="front"):
        server = aiomsg.serve_requests(reverse, "127.0.0.1", 0, front="streams")
    async with server:
        assert await aiomsg.request("127.0.0.1", server.port, b"abc") == b"cba"
