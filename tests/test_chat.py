"""The three chat servers, end to end, on asyncio and uvloop: identical behaviour is required."""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator

import pytest

import aiomsg
from aiomsg.chat import ChatLimits
from aiomsg.chat.servers import IMPLS, run_chat_server

from .peers import connect_blocking

pytestmark = [pytest.mark.asyncio, pytest.mark.parametrize("impl", IMPLS)]

WAIT = 10  # seconds: a bound that only a broken server reaches


@contextlib.asynccontextmanager
async def chat_server(impl: str, limits: ChatLimits | None = None) -> AsyncIterator[int]:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_chat_server(impl, "127.0.0.1", 0, limits, ready))
    try:
        yield await asyncio.wait_for(ready, WAIT)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Client:
    """A scripted chat client on the Streams front."""

    def __init__(self, conn: aiomsg.Connection) -> None:
        self.conn = conn
        self.nick = ""  # the server names it on join

    @classmethod
    async def join(cls, port: int) -> Client:
        client = cls(await aiomsg.connect("127.0.0.1", port, framing=aiomsg.Lines()))
        welcome = await client.line()
        assert welcome.startswith("* welcome to aiomsg chat, you are guest")
        client.nick = welcome.split("you are ")[1].split()[0]
        return client

    async def say(self, text: str | bytes) -> None:
        await self.conn.send(text.encode() if isinstance(text, str) else text)

    async def line(self) -> str:
        async with asyncio.timeout(WAIT):
            return (await self.conn.receive()).decode()

    async def expect(self, *lines: str) -> None:
        assert [await self.line() for _ in lines] == list(lines)

    async def closed(self) -> list[str]:
        """Read until the server closes the connection; return what came before."""
        rest = []
        with contextlib.suppress(aiomsg.ConnectionClosed):
            async with asyncio.timeout(WAIT):
                async for line in self.conn:
                    rest.append(line.decode())
        return rest


async def test_three_clients_chat(impl: str) -> None:
    async with chat_server(impl) as port:
        alice = await Client.join(port)
        bob = await Client.join(port)
        await alice.expect(f"* {bob.nick} joined")
        carol = await Client.join(port)
        await alice.expect(f"* {carol.nick} joined")
        await bob.expect(f"* {carol.nick} joined")

        await alice.say("/nick alice")
        await alice.expect("* you are now alice")
        await bob.expect(f"* {alice.nick} is now alice")
        await carol.expect(f"* {alice.nick} is now alice")
        await bob.say("/nick alice")
        await bob.expect("! nickname alice is taken")
        await bob.say("/nick bad name!")
        await bob.expect("! invalid nickname: use 1-24 letters, digits, _ or -")
        await bob.say("/nick bob")
        await bob.expect("* you are now bob")
        await alice.expect(f"* {bob.nick} is now bob")
        await carol.expect(f"* {bob.nick} is now bob")

        await alice.say("hello, wörld")
        await bob.expect("alice: hello, wörld")
        await carol.expect("alice: hello, wörld")
        await bob.say("/me waves")
        await alice.expect("* bob waves")
        await carol.expect("* bob waves")
        await carol.say("/who")
        await carol.expect(f"* online: alice, bob, {carol.nick}")
        await carol.say("/dance")
        await carol.expect("! unknown command /dance (try /nick NAME, /who, /me ACTION, /quit)")
        await bob.say("/quit")
        assert await bob.closed() == ["* bye"]
        await alice.expect("* bob left")
        await carol.expect("* bob left")
        # Nobody saw their own line echoed, and nothing else arrived:
        await carol.say("last")
        await alice.expect(f"{carol.nick}: last")


async def test_netcat_client_joins_and_chats(impl: str) -> None:
    nc = shutil.which("nc")
    assert nc, "netcat-openbsd is required (.ci/run installs it)"
    async with chat_server(impl) as port:
        alice = await Client.join(port)
        proc = await asyncio.create_subprocess_exec(
            nc, "127.0.0.1", str(port), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            welcome = (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode()
            nick = welcome.split("you are ")[1].split()[0]
            await alice.expect(f"* {nick} joined")
            proc.stdin.write(b"hello from nc\r\n")  # telnet-style line end
            await proc.stdin.drain()
            await alice.expect(f"{nick}: hello from nc")
            await alice.say("hi nc")
            assert await asyncio.wait_for(proc.stdout.readline(), WAIT) == b"guest1: hi nc\n"
        finally:
            proc.kill()
            await proc.wait()
        await alice.expect(f"* {nick} left")


async def test_a_thousand_clients_each_receive_a_broadcast(impl: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:  # two descriptors per connection in this one process
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    try:
        await broadcast_to_a_thousand(impl)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def broadcast_to_a_thousand(impl: str) -> None:
    count = 1000
    limits = ChatLimits()
    async with chat_server(impl, limits) as port:
        conns = []
        for _ in range(count // 100):
            conns += await asyncio.gather(
                *(aiomsg.connect("127.0.0.1", port, framing=aiomsg.Lines()) for _ in range(100))
            )
        speaker = await Client.join(port)
        await speaker.say("hello, everyone")

        async def hear(conn: aiomsg.Connection) -> None:
            async for line in conn:
                if line == speaker.nick.encode() + b": hello, everyone":
                    return
            raise AssertionError("connection closed before the broadcast")

        await asyncio.wait_for(asyncio.gather(*(hear(c) for c in conns)), 60)
        for conn in conns:
            conn.close()


async def test_client_that_stops_reading_is_dropped_while_others_receive(impl: str) -> None:
    limits = ChatLimits(queue_lines=500, flood_rate=1e6, flood_burst=10**6)
    async with chat_server(impl, limits) as port:
        stuck = connect_blocking(("127.0.0.1", port))  # never reads again
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            talker = await Client.join(port)
            listener = await Client.join(port)
            await talker.expect(f"* {listener.nick} joined")
            line = "x" * 2000
            total = 3000  # ~6 MB: far more than the stuck client's buffers and queue hold
            heard = notices = 0
            caught_up = asyncio.Event()

            async def talk() -> None:
                for i in range(total):
                    await talker.say(line)
                    # Fast, but never more than 100 lines ahead of the reading client,
                    # however slow the machine: only the stuck client falls behind.
                    while i - heard >= 100:
                        caught_up.clear()
                        await caught_up.wait()

            # The listener, reading all along, gets every line; somewhere along the
            # way the stuck client is dropped, and everyone is told.
            sender = asyncio.create_task(talk())
            while heard < total:
                got = await listener.line()
                if got == f"{talker.nick}: {line}":
                    heard += 1
                    caught_up.set()
                else:
                    assert got.endswith(" left (too slow)")
                    notices += 1
            await sender
            assert notices == 1
        finally:
            stuck.close()


async def test_briefly_slow_client_catches_up_without_losing_lines(impl: str) -> None:
    limits = ChatLimits(queue_lines=10_000, flood_rate=1e6, flood_burst=10**6)
    count = 4000  # ~8 MB while `slow` reads nothing: more than socket buffers hold, so
    # the server side backs up (the transport pauses writing) and must catch up later.
    async with chat_server(impl, limits) as port:
        slow = connect_blocking(("127.0.0.1", port))
        try:
            talker = await Client.join(port)
            line = "y" * 2000
            for _ in range(count):
                await talker.say(line)
            # The server answers in order: once /who is answered, every line has been
            # handed to the slow client's queue, which it has not read yet.
            await talker.say("/who")
            assert (await talker.line()).startswith("* online:")

            def read_all_lines() -> list[bytes]:
                chunks, newlines = [], 0
                while newlines < 2 + count:  # welcome, join notice, the lines
                    chunk = slow.recv(1 << 20)
                    assert chunk, "disconnected"
                    chunks.append(chunk)
                    newlines += chunk.count(b"\n")
                return b"".join(chunks).split(b"\n")[2:-1]

            lines = await asyncio.to_thread(read_all_lines)
            assert lines == [f"{talker.nick}: {line}".encode()] * count
        finally:
            slow.close()


async def test_invalid_utf8_gets_an_error_and_the_client_stays(impl: str) -> None:
    async with chat_server(impl) as port:
        alice = await Client.join(port)
        bob = await Client.join(port)
        await alice.expect(f"* {bob.nick} joined")
        await bob.say(b"caf\xe9 \xff\xfe")
        await bob.expect("! invalid UTF-8: line ignored")
        await bob.say("still here")
        await alice.expect(f"{bob.nick}: still here")


async def test_a_1_mib_line_gets_an_error_and_a_disconnect(impl: str) -> None:
    async with chat_server(impl) as port:
        alice = await Client.join(port)

        def send_huge_line() -> bytes:
            sock = connect_blocking(("127.0.0.1", port))
            with sock:
                sock.recv(1000)  # the welcome
                with contextlib.suppress(OSError):  # the server may stop reading first
                    sock.sendall(b"y" * (1 << 20) + b"\n")
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := sock.recv(65536):
                        data += chunk
                return data

        reply = await asyncio.to_thread(send_huge_line)
        assert reply.endswith(b"! line too long (max 4096 bytes): goodbye\n")
        joined = await alice.line()
        assert joined.endswith(" joined")
        await alice.expect(joined.replace("joined", "left"))
        # And the server goes on serving:
        bob = await Client.join(port)
        await alice.expect(f"* {bob.nick} joined")
        await bob.say("hi")
        await alice.expect(f"{bob.nick}: hi")


async def test_flooding_client_is_disconnected(impl: str) -> None:
    limits = ChatLimits(flood_rate=5, flood_burst=10)
    async with chat_server(impl, limits) as port:
        alice = await Client.join(port)
        flooder = await Client.join(port)
        await alice.expect(f"* {flooder.nick} joined")
        await flooder.conn.send_many([b"spam"] * 50)
        rest = await flooder.closed()
        assert rest[-1] == "! flooding (over 5 lines/s): goodbye"
        lines = [await alice.line() for _ in range(11)]
        assert lines[:10] == [f"{flooder.nick}: spam"] * 10
        assert lines[10] == f"* {flooder.nick} left"


async def test_lines_longer_than_max_line_go_out_whole(impl: str) -> None:
    # What clients may send is limited to max_line; what the server sends is longer:
    # the nickname before a line of max_line bytes. A line ending in \r (sent as
    # \r\r\n) goes out too, without that \r.
    async with chat_server(impl) as port:
        alice = await Client.join(port)
        bob = await Client.join(port)
        await alice.expect(f"* {bob.nick} joined")
        await bob.say("x" * 4096)
        await alice.expect(f"{bob.nick}: " + "x" * 4096)
        transport = bob.conn.transport
        assert transport is not None
        transport.write(b"cr\r\r\n")
        await bob.say("still here")
        await alice.expect(f"{bob.nick}: cr", f"{bob.nick}: still here")
        await bob.say("/who")
        await bob.expect(f"* online: {alice.nick}, {bob.nick}")


#: What a hostile member sends (issue 23), and what the others see instead: every
#: control character as a visible marker, nothing a terminal would act on.
HOSTILE = [
    ("\x1b]52;c;aGVsbG8=\x07", "^[]52;c;aGVsbG8=^G"),  # OSC 52: write the clipboard
    ("\x1b]0;pwned\x07", "^[]0;pwned^G"),  # OSC 0: the window title
    ("\x1b[2J\x1b[H", "^[[2J^[[H"),  # clear the screen
    ("\x1b[1A\x1b[2Kedited", "^[[1A^[[2Kedited"),  # cursor up, erase: rewrite a line
    ("\r\x1b[2Kbob: send me your password", "^M^[[2Kbob: send me your password"),  # forge
    ("\x1b[8mhidden\x1b[0m", "^[[8mhidden^[[0m"),  # SGR 8: invisible text
    ("\x07" * 40, "^G" * 40),  # a BEL flood
    ("\x9b2J", "\\x9b2J"),  # C1 CSI (U+009B): clear the screen on some terminals
    ("\u202etxt.exe", "<U+202E>txt.exe"),  # right-to-left override
    ("a\u2066b\u2069c\u200f", "a<U+2066>b<U+2069>c<U+200F>"),  # isolates, RLM
]
UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


async def test_control_sequences_reach_the_others_as_visible_markers(impl: str) -> None:
    async with chat_server(impl) as port:
        mallory = await Client.join(port)
        alice = await Client.join(port)
        await mallory.expect(f"* {alice.nick} joined")
        for sent, shown in HOSTILE:
            await mallory.say(sent)
            await mallory.say(f"/me {sent}")
            line, action = await alice.line(), await alice.line()
            assert (line, action) == (f"{mallory.nick}: {shown}", f"* {mallory.nick} {shown}")
            assert not UNSAFE.search(line + action)
        # Plain text, tabs and any script pass unchanged; a CRLF line end is still a line end.
        plain = "tab\there, naïve café, Ελληνικά, עברית, 😀"
        await mallory.say(plain)
        await alice.expect(f"{mallory.nick}: {plain}")
        transport = mallory.conn.transport
        assert transport is not None
        transport.write(b"crlf\r\n")
        await alice.expect(f"{mallory.nick}: crlf")
