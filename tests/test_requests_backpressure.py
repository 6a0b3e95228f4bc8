"""serve_requests under load: clients that never read their response, and a burst of 1,000
concurrent requests (on asyncio and uvloop)."""

from __future__ import annotations

import asyncio
import logging
import socket
import tracemalloc

import pytest

import aiomsg

pytestmark = pytest.mark.asyncio

RESPONSE = bytes(range(256)) * (32 * 1024)  # 8 MiB, one object shared by every answer
HIGH = 64 * 1024
CLIENTS = 200


async def non_reader(address: tuple[str, int]) -> socket.socket:
    """A client that sends its request, half-closes and never reads (a small receive
    buffer, so that the kernel takes little of the response off the server)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, address)
    await loop.sock_sendall(sock, b"give me everything")
    sock.shutdown(socket.SHUT_WR)
    return sock


async def read_to_end(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    chunks = []
    while chunk := await loop.sock_recv(sock, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_200_clients_that_never_read_cost_about_write_high_water_each() -> None:
    """The measure is traced memory (tracemalloc) in this process, which is the server's:
    the clients are raw sockets that hold nothing in Python, and the response is one
    shared object, allocated before tracing starts. What grows is what the server adds
    per client: the transports' write buffers (asyncio copies what the kernel does not
    take into a bytearray) and the per-connection objects. Handing each client the
    whole response would copy up to 8 MiB per client (~1.6 GB); paced writing keeps
    each at about ``write_high_water``: the bound allows 4x that, plus 16 MiB."""
    options = aiomsg.Options(write_high_water=HIGH)
    served = 0

    def handler(request: bytes) -> bytes:
        nonlocal served
        served += 1
        return RESPONSE

    clients: list[socket.socket] = []
    tracemalloc.start()
    try:
        async with aiomsg.serve_requests(handler, "127.0.0.1", 0, options=options) as server:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for _ in range(CLIENTS):
                clients.append(await non_reader(("127.0.0.1", server.port)))
            for _ in range(200):  # at most 20 s for every handler to have run
                if served == CLIENTS:
                    break
                await asyncio.sleep(0.1)
            assert served == CLIENTS
            for _ in range(5):  # a few turns of the loop: every answer writes what it may
                await asyncio.sleep(0.05)
            grown = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            assert grown < CLIENTS * 4 * HIGH + 16 * 1024 * 1024, grown
            # Paced, not dropped: a client that reads now gets the whole response.
            async with asyncio.timeout(60):
                assert await read_to_end(clients[0]) == RESPONSE
    finally:
        tracemalloc.stop()
        for sock in clients:
            sock.close()


async def test_a_client_that_reads_nothing_is_aborted_after_close_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = aiomsg.Options(write_high_water=HIGH, close_timeout=0.5)
    caplog.set_level(logging.INFO, logger="aiomsg")
    async with aiomsg.serve_requests(lambda _: RESPONSE, "127.0.0.1", 0, options=options) as server:
        sock = await non_reader(("127.0.0.1", server.port))
        try:
            for _ in range(200):  # at most 20 s
                if "read none of the last" in caplog.text:
                    break
                await asyncio.sleep(0.1)
            assert "(close_timeout)" in caplog.text
            # What the kernel held arrives, then the reset: never the whole response.
            with pytest.raises(ConnectionResetError):
                async with asyncio.timeout(30):
                    await read_to_end(sock)
        finally:
            sock.close()


async def test_1000_concurrent_requests_are_all_answered() -> None:
    """The listen queue is the documented 1,024: a burst of 1,000 is queued, none refused."""
    async with aiomsg.serve_requests(bytes.upper, "127.0.0.1", 0) as server:
        payloads = [b"request %d" % i for i in range(1000)]
        async with asyncio.timeout(120):
            answers = await asyncio.gather(
                *(aiomsg.request("127.0.0.1", server.port, p, timeout=100) for p in payloads)
            )
    assert answers == [p.upper() for p in payloads]
