"""Three aiomsg backends behind a real HAProxy (``mode tcp``, ``send-proxy-v2``, health
checks): one SIGKILLed, and a rolling restart under a steady stream of requests.

The backends are ``tests/lb_backend.py`` processes (an echo server that writes each
request it handles on stdout, and drains on SIGTERM); the clients run in the test.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import aiomsg

from .haproxy import HAProxy
from .real_servers import free_port

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="HAProxy from Debian"),
]

WAIT = 30.0  # seconds: a bound that only a broken server (or HAProxy set-up) reaches
BACKEND = Path(__file__).with_name("lb_backend.py")
FRAMING = aiomsg.Lines()


class Backend:
    """One ``lb_backend.py`` process on a fixed port; restartable. ``handled`` collects,
    across restarts, every request line the processes handled."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: asyncio.subprocess.Process | None = None
        self.handled: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {**os.environ, "AIOMSG_LOOP": aiomsg.loop_name()}
        self.process = process = await asyncio.create_subprocess_exec(
            sys.executable, str(BACKEND), str(self.port), stdout=asyncio.subprocess.PIPE, env=env
        )
        assert process.stdout is not None
        async with asyncio.timeout(WAIT):
            assert await process.stdout.readline() == b"ready\n"
        self._reader = asyncio.create_task(self._collect(process.stdout))

    async def _collect(self, stdout: asyncio.StreamReader) -> None:
        while line := await stdout.readline():
            self.handled.append(line.decode().rstrip("\n").split(" ", 1)[1])

    async def stop(self, how: int = signal.SIGTERM) -> int:
        """Send ``how``; the exit status once it has exited and its output is read."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(how)
        async with asyncio.timeout(WAIT):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code


@contextlib.asynccontextmanager
async def behind_haproxy(count: int) -> AsyncIterator[tuple[HAProxy, list[Backend]]]:
    backends = [Backend(free_port()) for _ in range(count)]
    try:
        for backend in backends:
            await backend.start()
        proxy = HAProxy([("127.0.0.1", b.port) for b in backends], send_proxy="v2")
        await asyncio.to_thread(proxy.start)
        try:
            await asyncio.to_thread(proxy.wait_all_up)
            yield proxy, backends
        finally:
            await asyncio.to_thread(proxy.stop)
    finally:
        for backend in backends:
            if backend.process is not None and backend.process.returncode is None:
                await backend.stop(signal.SIGKILL)


async def echoes(conn: aiomsg.Connection, line: str) -> bool:
    """Whether ``conn`` still answers ``line`` (False: closed or reset, as HAProxy passes it)."""
    try:
        await conn.send(line.encode())
        return await conn.receive_or_none() == line.encode()
    except (aiomsg.ConnectionClosed, OSError):
        return False


async def test_a_sigkilled_backend_is_routed_around_and_the_other_clients_keep_service() -> None:
    async with behind_haproxy(3) as (proxy, backends):
        conns = []
        for i in range(30):  # roundrobin: 10 connections on each backend
            conn = await aiomsg.connect("127.0.0.1", proxy.port, framing=FRAMING)
            assert await echoes(conn, f"hello {i}")
            conns.append(conn)
        async with asyncio.timeout(WAIT):  # their stdout lines follow the answers closely
            while [len(b.handled) for b in backends] != [10, 10, 10]:
                await asyncio.sleep(0.01)

        assert await backends[1].stop(signal.SIGKILL) == -signal.SIGKILL
        async with asyncio.timeout(WAIT):
            kept = [await echoes(conn, f"still {i}") for i, conn in enumerate(conns)]
        assert kept.count(True) == 20  # the other backends' clients: served throughout
        assert all(kept[i] == (i % 3 != 1) for i in range(30))
        async with asyncio.timeout(WAIT):  # new clients: HAProxy sends them elsewhere
            for i in range(30):
                async with aiomsg.connect("127.0.0.1", proxy.port, framing=FRAMING) as conn:
                    assert await echoes(conn, f"new {i}")
            await asyncio.to_thread(proxy.wait_status, "s1", "DOWN")
        for backend in (backends[0], backends[2]):
            await backend.stop()
        # 10 hellos and 10 stills each, then the 30 newcomers between them.
        assert len(backends[0].handled) + len(backends[2].handled) == 20 + 20 + 30
        for conn in conns:
            conn.abort()


class Client:
    """Sends requests (``NAME-SEQ``, a window of 4 in flight) through HAProxy until told to
    stop; after an EOF or a reset it reconnects and sends again what was not answered."""

    WINDOW = 4

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.issued: list[str] = []
        self.answers: collections.Counter[str] = collections.Counter()
        self.reconnects = 0

    async def run(self, stop: asyncio.Event) -> None:
        queue: collections.deque[str] = collections.deque()
        in_flight: collections.deque[str] = collections.deque()
        seq = 0
        for _ in range(1000):  # connections: a few reconnects per backend restart
            try:
                async with aiomsg.connect("127.0.0.1", self.port, framing=FRAMING) as conn:
                    while not (stop.is_set() and not queue and not in_flight):
                        while len(in_flight) < self.WINDOW and (queue or not stop.is_set()):
                            if not queue:
                                queue.append(f"{self.name}-{seq}")
                                self.issued.append(queue[-1])
                                seq += 1
                            in_flight.append(queue.popleft())
                            await conn.send(in_flight[-1].encode())
                        answer = (await conn.receive()).decode()
                        assert answer == in_flight[0], (answer, in_flight)  # in order
                        self.answers[in_flight.popleft()] += 1
                        await asyncio.sleep(0.002)  # a steady stream, not a flood
                    return
            except (aiomsg.ConnectionClosed, OSError):
                self.reconnects += 1
                queue.extendleft(reversed(in_flight))  # not answered: ask again
                in_flight.clear()
                await asyncio.sleep(0.01)
        raise AssertionError(f"{self.name} reconnected 1000 times")


async def test_a_rolling_restart_under_load_loses_no_request_and_answers_none_twice() -> None:
    async with behind_haproxy(3) as (proxy, backends):
        stop = asyncio.Event()
        clients = [Client(f"c{i}", proxy.port) for i in range(9)]
        running = [asyncio.create_task(client.run(stop)) for client in clients]
        try:
            await asyncio.sleep(0.3)  # the stream is flowing on every backend
            codes = []
            for name, backend in zip(proxy.names, backends, strict=True):
                async with asyncio.timeout(WAIT):
                    await asyncio.to_thread(proxy.disable_server, name)  # no new connection
                    await asyncio.to_thread(proxy.wait_status, name, "MAINT")
                    codes.append(await backend.stop(signal.SIGTERM))  # drains, then exits
                    await backend.start()
                    await asyncio.to_thread(proxy.enable_server, name)
                    await asyncio.to_thread(proxy.wait_status, name, "UP")
                    await asyncio.sleep(0.3)  # it takes new clients again
            stop.set()
            async with asyncio.timeout(WAIT):
                await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
        for backend in backends:
            await backend.stop(signal.SIGTERM)
    assert codes == [0, 0, 0]  # each drained and exited cleanly
    issued = [request for client in clients for request in client.issued]
    answered = collections.Counter[str]()
    for client in clients:
        answered.update(client.answers)
    handled = collections.Counter(line for backend in backends for line in backend.handled)
    assert len(issued) == len(set(issued)) > 1000  # a stream, not a trickle
    assert set(answered) == set(issued)  # no request lost
    assert set(answered.values()) == {1}  # none answered twice
    assert handled == collections.Counter(issued)  # each handled once, by one backend
    assert sum(client.reconnects for client in clients) >= 9  # each client was moved
