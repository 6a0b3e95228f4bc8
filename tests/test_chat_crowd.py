"""A crowd on every chat server (issue 11): 1,000 clients connect at once, 400 of them
misbehaving, while 20 talk. No good client may lose a line, every client is served,
and an ordinary reset logs no traceback."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import resource
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest

from aiomsg.chat import ChatLimits
from aiomsg.chat.servers import IMPLS

from .test_chat import chat_server

pytestmark = [pytest.mark.asyncio, pytest.mark.parametrize("impl", IMPLS)]

CROWD = 1000  # every client, the talkers included
TALKERS = 20
RESETTERS = 200  # reset (SO_LINGER 0) at a random moment of the talk
NON_READERS = 100  # read their welcome, then nothing
BAD_UTF8 = 50  # send one line of invalid UTF-8 and stay
HUGE = 50  # send a 1 MiB line
QUIET = CROWD - TALKERS - RESETTERS - NON_READERS - BAD_UTF8 - HUGE  # read, never speak
ROUNDS = 20  # lines per talker
BARRIER = 2  # round sent only once the whole crowd is in (so it hears the rest)
PAD = b"x" * 500
# The defaults: a crowd needs no special limits. The talkers send 20 lines, within the
# flood burst. The non-readers are held back, not dropped: what they miss (200 KB) fits in
# the kernel's socket buffers, which on Linux loopback grow to MBs (the policy for a
# client that never reads is tested in test_chat.py).
LIMITS = ChatLimits()
WAIT = 90  # seconds for the whole scenario: a bound that only a broken server reaches
ROUND_WAIT = 20  # seconds for one round, likewise

WELCOME = b"* welcome to aiomsg chat, you are "
LINES = [b"%d %s" % (n, PAD) for n in range(ROUNDS)]


async def test_a_crowd_of_1000_with_400_misbehaving_drops_no_good_client(
    impl: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * CROWD + 500:  # both ends of every connection are in this process
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * CROWD), hard))
    try:
        async with chat_server(impl, LIMITS) as port:
            await Crowd(port).run()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    gc.collect()  # "exception never retrieved" is logged when a task or future is freed
    tracebacks = [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or (r.exc_info and r.levelno >= logging.INFO)
    ]
    assert tracebacks == []


class Reader(asyncio.Protocol):
    """A client that reads everything and checks the talkers' lines as they come:
    from each talker, consecutive numbers from the first it hears."""

    def __init__(self, crowd: Crowd) -> None:
        self.crowd = crowd
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.nick = b""
        self.heard: dict[bytes, list[int]] = {}  # talker -> [first number, next number]
        self.other: list[bytes] = []  # notices and errors
        self.wrong: list[bytes] = []  # talkers' lines out of order or garbled
        self.welcomed = asyncio.Event()
        self.progress = asyncio.Event()  # set whenever a line arrives, and on close
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            self.line_received(line)

    def line_received(self, line: bytes) -> None:
        if not self.nick:
            if line.startswith(WELCOME):
                self.nick = line[len(WELCOME) :].split()[0]
                self.crowd.served(self)
            else:
                self.wrong.append(line)
            return
        sender, _, text = line.partition(b": ")
        self.progress.set()
        if sender not in self.crowd.talkers:
            self.other.append(line)
            return
        number = int(text.split(b" ", 1)[0])
        seen = self.heard.setdefault(sender, [number, number])
        if number != seen[1] or text != LINES[number]:
            self.wrong.append(line)
        seen[1] = number + 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)
        self.progress.set()

    def heard_up_to(self, rounds: int, talkers: list[bytes]) -> bool:
        return all(self.heard.get(t, [0, 0])[1] >= rounds for t in talkers)

    async def wait_for_rounds(
        self, rounds: int, talkers: list[bytes], or_lost: bool = False
    ) -> None:
        await self.until(lambda: self.heard_up_to(rounds, talkers), or_lost)

    async def until(self, condition: Callable[[], bool], or_lost: bool = False) -> None:
        """Wait until ``condition()`` holds; with ``or_lost``, or until disconnected."""
        while not condition():
            if self.lost.done():
                assert or_lost, f"{self.nick!r} was disconnected: {self.other[-3:]}"
                return
            self.progress.clear()
            await self.progress.wait()

    def check_heard_all(self, first: int) -> None:
        """Every talker's lines from round ``first`` at the latest to the last, in order."""
        assert self.wrong == []
        talkers = [t for t in self.crowd.talkers if t != self.nick]
        assert {t: self.heard[t][1] for t in talkers} == dict.fromkeys(talkers, ROUNDS)
        assert all(self.heard[t][0] <= first for t in talkers)

    def reset(self) -> None:
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class Crowd:
    def __init__(self, port: int) -> None:
        self.port = port
        self.talkers: dict[bytes, Reader] = {}
        self.welcomed = 0
        self.everyone_in = asyncio.Event()
        self.rounds = [asyncio.Event() for _ in range(ROUNDS)]  # set as each round starts
        self.talk_over = asyncio.Event()  # every talker heard every line
        self.rng = random.Random(11)

    def served(self, reader: Reader) -> None:
        reader.welcomed.set()
        self.count_welcome()

    def count_welcome(self) -> None:
        self.welcomed += 1
        if self.welcomed == CROWD:
            self.everyone_in.set()

    async def connect(self) -> Reader:
        loop = asyncio.get_running_loop()
        _, reader = await loop.create_connection(lambda: Reader(self), "127.0.0.1", self.port)
        await reader.welcomed.wait()
        return reader

    async def run(self) -> None:
        async with asyncio.timeout(WAIT):
            talkers = await asyncio.gather(*(self.connect() for _ in range(TALKERS)))
            self.talkers = {t.nick: t for t in talkers}
            kinds: list[Callable[[], Coroutine[Any, Any, None]]] = (
                [self.quiet] * QUIET
                + [self.resetter] * RESETTERS
                + [self.non_reader] * NON_READERS
                + [self.bad_utf8] * BAD_UTF8
                + [self.huge] * HUGE
            )
            self.rng.shuffle(kinds)
            crowd = [asyncio.create_task(kind()) for kind in kinds]  # all at once
            try:
                await self.talk(talkers)
                self.talk_over.set()
                await asyncio.gather(*crowd)
            finally:
                for task in crowd:
                    task.cancel()
                await asyncio.gather(*crowd, return_exceptions=True)
                for talker in talkers:
                    assert talker.transport is not None
                    talker.transport.close()
            for talker in talkers:
                talker.check_heard_all(first=0)

    async def talk(self, talkers: list[Reader]) -> None:
        """Each round, every talker says its next line, then waits to hear everyone's."""
        nicks = list(self.talkers)
        for n, event in enumerate(self.rounds):
            if n == BARRIER:
                await self.everyone_in.wait()
            event.set()
            for talker in talkers:
                assert talker.transport is not None
                talker.transport.write(LINES[n] + b"\n")
            try:
                async with asyncio.timeout(ROUND_WAIT):
                    for talker in talkers:
                        others = [t for t in nicks if t != talker.nick]
                        await talker.wait_for_rounds(n + 1, others)
            except TimeoutError:
                behind = {
                    t.nick: t.heard
                    for t in talkers
                    if not t.heard_up_to(n + 1, [o for o in nicks if o != t.nick])
                }
                raise AssertionError(f"round {n}: lines lost or stuck: {behind}") from None

    def random_round(self) -> asyncio.Event:
        return self.rounds[self.rng.randrange(ROUNDS)]

    async def quiet(self) -> None:
        reader = await self.connect()
        await reader.wait_for_rounds(ROUNDS, list(self.talkers))
        reader.check_heard_all(first=BARRIER)
        assert reader.transport is not None
        reader.transport.close()

    async def resetter(self) -> None:
        reader = await self.connect()
        await self.random_round().wait()
        reader.reset()

    async def bad_utf8(self) -> None:
        reader = await self.connect()
        await self.random_round().wait()
        assert reader.transport is not None
        reader.transport.write(b"caf\xe9 \xff\xfe\n")
        await reader.until(lambda: b"! invalid UTF-8: line ignored" in reader.other)
        await reader.wait_for_rounds(ROUNDS, list(self.talkers))
        reader.check_heard_all(first=BARRIER)
        reader.transport.close()

    async def huge(self) -> None:
        reader = await self.connect()
        await self.random_round().wait()
        assert reader.transport is not None
        reader.transport.write(b"y" * (1 << 20) + b"\n")
        await reader.lost
        assert reader.other[-1:] == [b"! line too long (max 4096 bytes): goodbye"]

    async def non_reader(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", self.port))
        except BaseException:
            sock.close()
            raise
        _, reader = await loop.create_connection(lambda: Reader(self), sock=sock)
        await reader.welcomed.wait()
        assert reader.transport is not None
        reader.transport.pause_reading()
        # Reads again only once the talk is over. The server held it back meanwhile; it
        # had either to drop it (a reset: its queue was full) or keep every line for it.
        await self.talk_over.wait()
        reader.transport.resume_reading()
        await reader.wait_for_rounds(ROUNDS, list(self.talkers), or_lost=True)
        if reader.lost.done():
            assert isinstance(reader.lost.result(), ConnectionResetError)
        else:
            reader.check_heard_all(first=BARRIER)
            reader.transport.close()
