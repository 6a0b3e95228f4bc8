"""The server-wide memory budget (``Options.memory_budget``): many peers that each hold a
little cannot add up to more than the budget, and a good client is served throughout.

The servers run in subprocesses (their RSS is what is measured); the rude peers are
plain sockets driven from this process, each loop bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from aiomsg._memory_budget import SMALL, MemoryBudget

MiB = 1024 * 1024

SERVER = r"""
import asyncio, sys
import aiomsg

front, loop_name, budget, timeout, reading = sys.argv[1:6]
options = aiomsg.Options(
    memory_budget=None if budget == "none" else int(budget),
    message_timeout=float(timeout),
)
framing = aiomsg.LengthPrefixed(4)

def ready(port):
    print(port, flush=True)

async def serve_anyio():
    import anyio

    async def handle(stream):
        echo = reading == "yes"
        async for message in stream:
            echo = echo or message == b"good"
            if not echo:
                await anyio.sleep(3600)  # takes nothing more
            await stream.send(message)

    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: aiomsg.serve_framed(
                handle, "127.0.0.1", 0, framing=framing, options=options,
                task_status=task_status,
            )
        )
        ready(port)

if front == "trio":
    import anyio
    anyio.run(serve_anyio, backend="trio")
    raise SystemExit

class Echo(aiomsg.MessageProtocol):
    def message_received(self, message):
        self.send(message)

async def main():
    if front == "protocol":
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Echo(framing=framing, options=options), "127.0.0.1", 0
        )
        ready(server.sockets[0].getsockname()[1])
        await server.serve_forever()
    elif front == "streams":
        async def handle(conn):
            echo = reading == "yes"
            async for message in conn:
                echo = echo or message == b"good"
                if not echo:
                    await asyncio.sleep(3600)  # takes nothing more
                await conn.send(message)

        async with aiomsg.serve(handle, "127.0.0.1", 0, framing=framing, options=options) as srv:
            ready(srv.port)
            await srv.serve_forever()
    else:  # anyio's front on aiomsg's transport
        await serve_anyio()

import os
os.environ["AIOMSG_LOOP"] = loop_name
aiomsg.run(main())
"""


@contextlib.contextmanager
def _server(
    front: str, loop: str, budget: int | None, *, timeout: float = 60, reading: bool = True
) -> Iterator[tuple[int, int]]:
    """Start a server; yield (its pid, its port); kill it."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVER,
            front,
            loop,
            str(budget or "none"),
            str(timeout),
            "yes" if reading else "no",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"the server did not start: {line!r}"
        yield proc.pid, int(line)
    finally:
        proc.kill()
        proc.wait(10)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _GoodClient:
    """A client that sends a small message and reads its echo, over and over."""

    def __init__(self, port: int, *, hello: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.answered = 0
        if hello:  # the servers that take nothing answer a client that says "good"
            self.sock.sendall(struct.pack(">I", 4) + b"good")
            assert self.sock.recv(8) == struct.pack(">I", 4) + b"good"

    def round_trip(self) -> None:
        payload = b"hello %d" % self.answered
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)
        want = 4 + len(payload)
        got = b""
        while len(got) < want:
            chunk = self.sock.recv(want - len(got))
            assert chunk, "the server closed the good client"
            got += chunk
        assert got[4:] == payload
        self.answered += 1


def _flood(
    port: int, peers: int, each: int, announce: int, good: _GoodClient
) -> list[socket.socket]:
    """Open ``peers`` connections that each announce ``announce`` bytes and send ``each``
    of them (as fast as the server takes them); a round trip of the good client between
    passes. Returns the sockets (still open) once no one makes progress for 1 s."""
    socks = []
    for _ in range(peers):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        socks.append(sock)
    sent = [0] * peers
    header = struct.pack(">I", announce)
    chunk = bytes(64 * 1024)
    for sock in socks:
        sock.send(header)
    still = time.monotonic()
    deadline = still + 60
    while time.monotonic() < deadline and time.monotonic() - still < 1.0:
        moved = False
        for i, sock in enumerate(socks):
            left = each - sent[i]
            if left <= 0:
                continue
            try:
                n = sock.send(chunk[: min(left, len(chunk))])
            except BlockingIOError:
                continue
            sent[i] += n
            moved = True
        if moved:
            still = time.monotonic()
        else:
            time.sleep(0.05)
        good.round_trip()
    return socks


PARTIAL_FRONTS = [
    ("streams", "asyncio"),
    ("streams", "uvloop"),
    ("protocol", "asyncio"),
    ("protocol", "uvloop"),
    ("anyio", "asyncio"),
    ("anyio", "uvloop"),
    ("trio", "trio"),  # serve_framed on trio: aiomsg's reader of the trio socket
]


@pytest.mark.parametrize(("front", "loop"), PARTIAL_FRONTS)
def test_unfinished_messages_of_many_peers_stay_within_the_budget(front: str, loop: str) -> None:
    """400 peers announce 16 MiB and send 3 MiB each (1.2 GB): the server grows by less
    than the budget plus 64 KiB a peer, and the good client is answered throughout."""
    budget = 96 * MiB
    with _server(front, loop, budget) as (pid, port):
        good = _GoodClient(port)
        good.round_trip()
        before = _rss(pid)
        socks = _flood(port, 400, 3 * MiB, 16 * MiB, good)
        try:
            grown = _rss(pid) - before
            for _ in range(20):
                good.round_trip()
            # A newcomer is accepted and served while the budget is spent.
            late = _GoodClient(port)
            late.round_trip()
            late.sock.close()
        finally:
            for sock in socks:
                sock.close()
        assert good.answered >= 22
        assert grown < budget + 400 * (SMALL + 16 * 1024) + 16 * MiB, grown / MiB


def test_without_the_budget_the_same_peers_hold_far_more() -> None:
    """The control: the flood above does grow a server that has no budget."""
    with _server("streams", "asyncio", None) as (pid, port):
        good = _GoodClient(port)
        good.round_trip()
        before = _rss(pid)
        socks = _flood(port, 400, 3 * MiB, 16 * MiB, good)
        try:
            grown = _rss(pid) - before
        finally:
            for sock in socks:
                sock.close()
    assert grown > 96 * MiB + 400 * (SMALL + 16 * 1024) + 16 * MiB, grown / MiB


@pytest.mark.parametrize(("front", "loop"), PARTIAL_FRONTS[:2] + PARTIAL_FRONTS[4:])
def test_paused_peers_are_ended_by_message_timeout_and_large_messages_then_flow(
    front: str, loop: str
) -> None:
    """Peers paused by the budget keep their message clock: they are closed after
    message_timeout, what they held is freed, and a large message completes after."""
    budget = 32 * MiB
    with _server(front, loop, budget, timeout=3) as (_pid, port):
        good = _GoodClient(port)
        socks = _flood(port, 100, 2 * MiB, 16 * MiB, good)
        try:
            closed = 0
            deadline = time.monotonic() + 30
            while closed < len(socks) and time.monotonic() < deadline:
                closed = 0
                for sock in socks:
                    try:
                        if sock.recv(1) == b"":
                            closed += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed += 1
                time.sleep(0.2)
            assert closed == len(socks)
        finally:
            for sock in socks:
                sock.close()
        big = os.urandom(8 * MiB)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(struct.pack(">I", len(big)) + big)
            got = bytearray()
            while len(got) < 4 + len(big):
                chunk = sock.recv(1 << 20)
                assert chunk
                got += chunk
        assert bytes(got[4:]) == big


class _Peer:
    """A connection as the budget sees it, recording what the budget tells it."""

    def __init__(self) -> None:
        self.budget_held = 0
        self.budget_paused = False
        self.reading = True

    def budget_pause(self) -> None:
        self.reading = False

    def budget_resume(self) -> None:
        self.reading = True


def test_the_budget_pauses_the_growing_holders_and_lets_one_lead() -> None:
    budget = MemoryBudget(10 * SMALL)
    peers = [_Peer() for _ in range(4)]
    for peer in peers:
        budget.update(peer, 3 * SMALL)  # 12 SMALL > 10: the fourth crosses
    assert budget.held == 12 * SMALL
    assert [p.reading for p in peers] == [True, True, True, True]  # the fourth leads
    assert budget.lead is peers[3]
    budget.update(peers[0], 4 * SMALL)  # grows while over: waits
    assert not peers[0].reading
    small = _Peer()
    budget.update(small, SMALL - 1)  # small holders are never paused
    assert small.reading
    budget.update(peers[3], 0)  # the lead's message is done
    assert budget.lead is not peers[3]
    assert peers[0].reading  # the first to wait goes on, and leads
    assert budget.lead is peers[0]


def test_a_closed_holder_frees_its_share_and_wakes_the_waiting() -> None:
    budget = MemoryBudget(4 * SMALL)
    lead, waiting = _Peer(), _Peer()
    budget.update(lead, 5 * SMALL)
    budget.update(waiting, 2 * SMALL)
    assert budget.lead is lead and not waiting.reading
    budget.release(lead)
    assert waiting.reading and budget.held == 2 * SMALL
    budget.release(waiting)
    assert budget.held == 0 and budget.lead is None


def _flood_tiny(port: int, peers: int, good: _GoodClient) -> list[socket.socket]:
    """Open ``peers`` connections that each send 1 MiB of 3-byte messages, as far as the
    server takes them; a round trip of the good client between passes."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(peers)]
    for sock in socks:
        sock.setblocking(False)
    chunk = (struct.pack(">I", 3) + b"abc") * (64 * 1024 // 7)
    sent = [0] * peers
    still = time.monotonic()
    deadline = still + 60
    while time.monotonic() < deadline and time.monotonic() - still < 1.0:
        moved = False
        for i, sock in enumerate(socks):
            if sent[i] >= MiB:
                continue
            try:
                sent[i] += sock.send(chunk)
            except BlockingIOError:
                continue
            moved = True
        if moved:
            still = time.monotonic()
        else:
            time.sleep(0.05)
        good.round_trip()
    return socks


@pytest.mark.parametrize(
    ("front", "loop"), [("streams", "asyncio"), ("anyio", "uvloop"), ("trio", "trio")]
)
@pytest.mark.parametrize("budget", [16 * MiB, None], ids=["budget", "control"])
def test_messages_a_handler_never_takes_stay_within_the_budget(
    front: str, loop: str, budget: int | None
) -> None:
    """400 peers flood 3-byte messages at handlers that take none: with a 16 MiB budget the
    server grows by less than the budget plus 80 KiB a peer (without one, by far more),
    and a good client is answered throughout."""
    bound = 16 * MiB + 400 * (SMALL + 16 * 1024)  # 16 KiB: a connection of its own
    with _server(front, loop, budget, reading=False) as (pid, port):
        good = _GoodClient(port, hello=True)  # its handler does answer
        before = _rss(pid)
        socks = _flood_tiny(port, 400, good)
        try:
            grown = _rss(pid) - before
            late = _GoodClient(port, hello=True)
            late.round_trip()
            late.sock.close()
        finally:
            for sock in socks:
                sock.close()
    if budget is None:
        assert grown > bound, grown / MiB
    else:
        assert grown < bound, grown / MiB
