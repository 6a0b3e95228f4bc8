"""The Protocol chat server's Flusher: every client's lines in one write per interval.

A fake client stands in for ``ChatProtocol`` (its ``flush`` only records when it ran):
what is tested is when the Flusher calls it, on the real event loop. Only lower bounds
on time are asserted (a timer never fires early); "not yet" is checked one loop
iteration after the call, which no load can make wrong."""

from __future__ import annotations

import asyncio

import pytest

from aiomsg.chat.protocol_server import Flusher

pytestmark = pytest.mark.asyncio

INTERVAL = 0.05


class Client:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.flushes: list[float] = []

    def flush(self) -> None:
        self.flushes.append(self.loop.time())


async def test_a_line_after_a_quiet_spell_is_written_at_once() -> None:
    loop = asyncio.get_running_loop()
    flusher, client = Flusher(loop, INTERVAL), Client(loop)
    flusher.add(client)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # one iteration: the next one, as with no interval
    assert len(client.flushes) == 1


async def test_lines_that_keep_coming_wait_for_the_interval_and_share_a_write() -> None:
    loop = asyncio.get_running_loop()
    flusher = Flusher(loop, INTERVAL)
    clients = [Client(loop) for _ in range(3)]
    flusher.add(clients[0])  # type: ignore[arg-type]
    await asyncio.sleep(0)
    first = clients[0].flushes[0]
    for client in clients:  # lines for every client (added once, as ChatProtocol does)
        flusher.add(client)  # type: ignore[arg-type]
    for _ in range(5):  # five loop iterations go by
        await asyncio.sleep(0)
    assert [len(c.flushes) for c in clients] == [1, 0, 0]  # gathering, not written yet
    await asyncio.sleep(2 * INTERVAL)  # its timer, set before this sleep's, fired first
    assert [len(c.flushes) for c in clients] == [2, 1, 1]  # one write each for it all
    assert clients[0].flushes[1] - first >= INTERVAL - 0.001


async def test_interval_zero_writes_every_iteration() -> None:
    loop = asyncio.get_running_loop()
    flusher, client = Flusher(loop, 0.0), Client(loop)
    for _ in range(3):
        flusher.add(client)  # type: ignore[arg-type]
        await asyncio.sleep(0)
    assert len(client.flushes) == 3
