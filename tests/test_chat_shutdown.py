"""A chat server stopped (SIGTERM) while 500 clients are busy talking says goodbye to every
one of them: the goodbye goes out behind what is queued for each, then a lingering close,
so that no client's still-arriving lines make the kernel destroy it with a reset. Each
client says a line every half second: 1,000 lines a second, each relayed to 500 members
(the room's own fan-out, not the shutdown, would be the bottleneck at a higher rate when
the suite runs under coverage)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import pytest

import aiomsg
from aiomsg.chat.room import SHUTDOWN

pytestmark = pytest.mark.asyncio

CLIENTS = 500
# Lines a client may fall behind (1,000 by default: a second of this room's traffic). The
# clients share this process, under coverage on a shared machine: one that stalls for a
# second would be dropped as too slow (a reset, by design; test_chat and test_hardening test that),
# not told goodbye. Ten seconds' worth keeps this test about stopping.
SLACK = "10000"
GOODBYE = SHUTDOWN.encode()


async def _talker(
    port: int, started: asyncio.Event, stop_talking: asyncio.Event
) -> tuple[bytes, bool]:
    """Connect, then send a line every 0.5 s while reading everything until the end; return
    it, and whether the connection was reset. The
    server may not have accepted the connection yet when it is told to stop: the kernel
    queued it (the server is busy); that client must get the goodbye too."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def talk() -> None:
        with contextlib.suppress(ConnectionError):
            for i in range(200):  # bounded: the server stops long before
                writer.write(f"line {i}\n".encode())
                await writer.drain()
                if stop_talking.is_set():
                    return
                await asyncio.sleep(0.5)

    talking = asyncio.create_task(talk())
    started.set()
    reset = False
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionError:
        reset = True  # what arrived before it is in `received`
    finally:
        talking.cancel()
        writer.close()
    return bytes(received), reset


@pytest.mark.parametrize("impl", ["streams", "protocol", "anyio"])
async def test_sigterm_says_goodbye_to_every_busy_client(impl: str) -> None:
    env = {**os.environ, "AIOMSG_LOOP": aiomsg.loop_name()}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiomsg", "chat-server", "--impl", impl, "--host", "127.0.0.1",
        "--port", "0", "--report-port", "--flood-rate", "1000", "--queue-lines", SLACK, "-q",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            assert server.stdout is not None
            port = int(await server.stdout.readline())
            stop_talking = asyncio.Event()
            starts = [asyncio.Event() for _ in range(CLIENTS)]
            clients = [
                asyncio.create_task(_talker(port, started, stop_talking)) for started in starts
            ]
            await asyncio.gather(*(started.wait() for started in starts))
            await asyncio.sleep(1.0)  # every client is mid-conversation
            server.send_signal(signal.SIGTERM)
            transcripts = await asyncio.gather(*clients)
            stop_talking.set()
            assert await server.wait() == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    without = sum(1 for transcript, _ in transcripts if GOODBYE not in transcript)
    assert without == 0, f"{without} of {CLIENTS} clients got no goodbye"
    resets = sum(1 for _, reset in transcripts if reset)
    assert resets == 0, f"{resets} of {CLIENTS} clients were reset (the close did not linger)"
