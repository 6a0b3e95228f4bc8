"""Chat servers sharing one room through a real Redis: several processes, one room.

Each server is a real ``aiomsg chat-server --broker`` process on the same event
loop as the test (asyncio or uvloop); Redis is a real ``redis-server`` on a
free loopback port. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

import aiomsg
from aiomsg.chat.servers import IMPLS

from . import test_chat
from .redis_server import RedisServer, free_port

pytestmark = pytest.mark.asyncio

HEARTBEAT = 0.25  # seconds; a killed server's members leave within 4 heartbeats
WAIT = 20  # seconds: a bound that only a broken server reaches


class Client(test_chat.Client):
    @classmethod
    async def join(cls, port: int) -> Client:
        client = await super().join(port)
        assert isinstance(client, Client)
        return client

    async def wait_for(self, *prefixes: str) -> str:
        """Skip lines until one starts with one of ``prefixes``; return it."""
        return (await self.lines_until(*prefixes))[-1]

    async def lines_until(self, *prefixes: str) -> list[str]:
        """Lines up to and including the first that starts with one of ``prefixes``."""
        lines: list[str] = []
        async with asyncio.timeout(WAIT):
            while not (lines and lines[-1].startswith(prefixes)):
                lines.append(await self.line())
        return lines


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


class ChatServer:
    """One ``aiomsg chat-server --broker`` process; its log goes to a file."""

    def __init__(self, impl: str, broker: str, room: str, *extra: str) -> None:
        self.impl = impl
        self.args = [
            "--impl", impl, "--host", "127.0.0.1", "--port", "0", "--broker", broker,
            "--room", room, "--broker-heartbeat", str(HEARTBEAT), "--flood-rate", "1000",
            "--report-port", *extra,
        ]  # fmt: skip
        self.log_path = Path(tempfile.mkstemp(prefix="aiomsg-chat-", suffix=".log")[1])
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self.saved_log = ""
        self.stdout = ""

    async def start(self) -> int:
        env = {**os.environ, "AIOMSG_LOOP": aiomsg.loop_name()}
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "aiomsg", "chat-server", *self.args,
                stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
            )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            line = await self.process.stdout.readline()
        assert line, f"the server did not start: {self.log()}"
        self.port = int(line)
        self.stdout = line.decode()
        return self.port

    def log(self) -> str:
        if self.log_path.exists():
            self.saved_log = self.log_path.read_text(errors="replace")
        return self.saved_log

    async def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            async with asyncio.timeout(WAIT):
                status = await self.process.wait()
                assert self.process.stdout is not None
                self.stdout += (await self.process.stdout.read()).decode(errors="replace")
                return status
        except TimeoutError:
            self.process.kill()
            raise AssertionError(f"the {self.impl} server did not stop: {self.log()}") from None

    def output(self) -> str:
        """Everything the server printed: stdout, and stderr (its log)."""
        return self.stdout + self.log()

    def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
        self.log()
        self.log_path.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def chat_servers(impls: list[str], broker: str) -> AsyncIterator[list[ChatServer]]:
    """Servers on one broker, in a room of their own (tests do not share rooms)."""
    room = uuid.uuid4().hex[:8]
    servers = [ChatServer(impl, broker, room) for impl in impls]
    try:
        await asyncio.gather(*(s.start() for s in servers))
        yield servers
    finally:
        for server in servers:
            if server.process is not None and server.process.returncode is None:
                await server.stop()
            assert "Traceback" not in server.log(), server.log()
            server.close()


async def named(port: int, nick: str) -> Client:
    client = await Client.join(port)
    await client.say(f"/nick {nick}")
    await client.wait_for(f"* you are now {nick}")
    client.nick = nick
    return client


async def who(client: Client) -> list[str]:
    await client.say("/who")
    line = await client.wait_for("* online: ")
    return line.removeprefix("* online: ").split(", ")


async def test_every_line_reaches_every_client_once_in_order(redis_server: RedisServer) -> None:
    """One server per front, three clients on each: each line reaches the 8 others once."""
    async with chat_servers(list(IMPLS), redis_server.url) as servers:
        clients = [
            await named(server.port, f"{server.impl}{i}") for server in servers for i in range(3)
        ]
        for client in clients:  # everyone is known everywhere before anyone talks
            async with asyncio.timeout(WAIT):
                while len(await who(client)) < len(clients):
                    await asyncio.sleep(0.05)
        count = 20
        await asyncio.gather(*(c.say(f"{c.nick} line {k}") for c in clients for k in range(count)))

        async def heard(client: Client) -> dict[str, list[int]]:
            lines: dict[str, list[int]] = {}
            expected = count * (len(clients) - 1)
            while sum(map(len, lines.values())) < expected:
                line = await client.line()
                match = re.fullmatch(r"(\w+): (\w+) line (\d+)", line)
                if match:
                    assert match[1] == match[2]
                    lines.setdefault(match[1], []).append(int(match[3]))
            return lines

        received = await asyncio.gather(*(heard(c) for c in clients))
        for client, lines in zip(clients, received, strict=True):
            assert lines == {o.nick: list(range(count)) for o in clients if o is not client}


async def test_who_and_nick_hold_across_servers(redis_server: RedisServer) -> None:
    async with chat_servers(["streams", "protocol"], redis_server.url) as (one, two):
        alice = await named(one.port, "alice")
        bob = await Client.join(two.port)
        async with asyncio.timeout(WAIT):  # each server hears of the other's member
            while len(await who(alice)) < 2 or len(await who(bob)) < 2:
                await asyncio.sleep(0.05)
        assert await who(alice) == await who(bob) == sorted(["alice", bob.nick])
        await bob.say("/nick alice")
        await bob.expect("! nickname alice is taken")
        await bob.say("/nick bob")
        await bob.expect("* you are now bob")
        await alice.wait_for(f"* {bob.nick} is now bob")

        # A second /nick before the first is decided is refused, not lost.
        await bob.conn.send_many([b"/nick b2", b"/nick b3"])  # one write: read together
        answers = [await bob.wait_for("* you are now", "!") for _ in range(2)]
        assert answers[0] == "! a nickname change is already on its way: wait for its answer"
        assert answers[1] == "* you are now b2"

        # Two servers, one name, the same moment: exactly one member gets it.
        first, second = await Client.join(one.port), await Client.join(two.port)
        await asyncio.gather(first.say("/nick carol"), second.say("/nick carol"))
        answers = [
            await c.wait_for("* you are now carol", "! nickname carol is taken")
            for c in (first, second)
        ]
        assert sorted(answers) == ["! nickname carol is taken", "* you are now carol"]


async def test_a_killed_server_s_members_leave_everywhere_once(redis_server: RedisServer) -> None:
    async with chat_servers(["streams", "protocol", "anyio"], redis_server.url) as servers:
        doomed, one, two = servers
        victims = [await named(doomed.port, f"victim{i}") for i in range(2)]
        watchers = [await named(one.port, "w1"), await named(two.port, "w2")]
        for watcher in watchers:
            async with asyncio.timeout(WAIT):
                while len(await who(watcher)) < 4:
                    await asyncio.sleep(0.05)
        await doomed.stop(signal.SIGKILL)
        for victim in victims:
            victim.conn.abort()
        # The documented bound: 4 heartbeats (with slack for a loaded machine).
        for watcher in watchers:
            async with asyncio.timeout(4 * HEARTBEAT + 5):
                got = {await watcher.wait_for("* victim") for _ in victims}
            assert got == {f"* victim{i} left (server lost)" for i in range(2)}
        await asyncio.sleep(4 * HEARTBEAT)  # time for a second announcement, if any
        for watcher in watchers:
            await watcher.say("/who")
            rest = await watcher.lines_until("* online: ")
            assert not [line for line in rest if line.startswith("* victim")]
            assert sorted(rest[-1].removeprefix("* online: ").split(", ")) == ["w1", "w2"]


async def test_servers_recover_when_redis_restarts(redis_server: RedisServer) -> None:
    async with chat_servers(["streams", "anyio"], redis_server.url) as (one, two):
        a = await named(one.port, "a")
        b1, b2 = await named(two.port, "b1"), await named(two.port, "b2")
        async with asyncio.timeout(WAIT):
            while len(await who(a)) < 3:
                await asyncio.sleep(0.05)

        guest = await Client.join(one.port)  # keeps its guest name through the outage
        redis_server.stop()
        for client in (a, b1, b2, guest):
            await client.wait_for("* the room is degraded")
        meanwhile = await Client.join(one.port)
        assert re.fullmatch(r"guest\d+-\w+", meanwhile.nick)  # unique without Redis
        await b1.say("still here")  # the local room goes on
        await b2.wait_for("b1: still here")
        await a.say("/nick z")
        await a.wait_for("! nicknames cannot change while the room is degraded")

        redis_server.start()  # empty: the servers must register their members again
        for client in (a, b1, b2):
            async with asyncio.timeout(WAIT):
                await client.wait_for("* the room is whole again")
        everyone = sorted(["a", "b1", "b2", guest.nick, meanwhile.nick])
        async with asyncio.timeout(WAIT):
            while sorted(await who(a)) != everyone:
                await asyncio.sleep(0.1)
        # Redis restarted empty: new guests on either server still get names nobody has.
        newcomers = [await Client.join(s.port) for s in (one, two) for _ in range(3)]
        names = [c.nick for c in newcomers]
        assert len(set(names)) == len(names) and not set(names) & set(everyone)
        await a.say("back")
        for client in (b1, b2):
            await client.wait_for("a: back")
    for server in (one, two):
        assert server.log().count("unreachable") == 1, server.log()


async def test_resets_during_a_shared_broadcast_cost_no_one_a_line(
    redis_server: RedisServer,
) -> None:
    """200 clients reset while a line goes out to them and through Redis to another server."""
    async with chat_servers(["protocol", "streams"], redis_server.url) as (one, two):
        talker = await named(one.port, "talker")
        listener = await named(two.port, "listener")
        async with asyncio.timeout(WAIT):
            while len(await who(listener)) < 2:
                await asyncio.sleep(0.05)
        rude = [await asyncio.open_connection("127.0.0.1", one.port) for _ in range(200)]
        for i in range(50):
            await talker.say(f"line {i}")
            for _, writer in rude[4 * i : 4 * i + 4]:  # a reset (RST), not a close
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
        heard = [await listener.wait_for("talker: ") for _ in range(50)]
        assert heard == [f"talker: line {i}" for i in range(50)]
        await talker.say("/who")  # the server that took the resets still answers
        await talker.wait_for("* online: ")
    # chat_servers asserts that no server logged a traceback


async def test_sigterm_says_goodbye_and_its_members_leave_cleanly(
    redis_server: RedisServer,
) -> None:
    """``docker stop`` and systemd send SIGTERM: a clean stop, not a dead server."""
    async with chat_servers(["streams", "protocol"], redis_server.url) as (one, two):
        leaving = await named(one.port, "leaving")
        watcher = await named(two.port, "watcher")
        async with asyncio.timeout(WAIT):
            while len(await who(watcher)) < 2:
                await asyncio.sleep(0.05)
        assert await one.stop(signal.SIGTERM) == 0
        assert (await leaving.closed())[-1:] == ["* the server is shutting down: goodbye"]
        assert await watcher.wait_for("* leaving") == "* leaving left"


async def test_a_server_starts_while_redis_is_away() -> None:
    redis = RedisServer(free_port())  # not started yet
    try:
        async with chat_servers(["protocol"], redis.url) as (server,):
            client = await Client.join(server.port)
            await client.wait_for("* the room is degraded")
            await client.say("/who")
            await client.expect(f"* online: {client.nick}")
            redis.start()
            async with asyncio.timeout(WAIT):
                await client.wait_for("* the room is whole again")
        assert server.log().count("unreachable") == 1
    finally:
        redis.close()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def _sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT as on Linux")
@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
async def test_workers_share_one_port_and_stop_on_ctrl_c_or_sigterm(
    redis_server: RedisServer, stop: int, status: int
) -> None:
    """Ctrl-C: status 130, as every command; SIGTERM (docker stop, systemd): a clean 0."""
    env = {**os.environ, "AIOMSG_LOOP": aiomsg.loop_name()}
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiomsg", "chat-server", "--workers", "2", "--port", "0",
        "--broker", redis_server.url, "--room", uuid.uuid4().hex[:8],
        "--flood-rate", "1000", stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert parent.stderr is not None
    try:
        banner = ""
        async with asyncio.timeout(WAIT):  # each worker's line, then the parent's
            while not (match := re.search(r"listening on 127\.0\.0\.1:(\d+) \(2 workers", banner)):
                banner = (await parent.stderr.readline()).decode()
                assert banner, "the parent exited"
        workers = _children(parent.pid)
        assert len(workers) == 2
        before = {pid: _sockets(pid) for pid in workers}
        clients = [await named(int(match[1]), f"c{i}") for i in range(12)]
        assert all(_sockets(pid) > before[pid] for pid in workers)  # both serve clients
        async with asyncio.timeout(WAIT):
            while len(await who(clients[0])) < len(clients):
                await asyncio.sleep(0.05)
        for client in clients:
            await client.say(f"hi from {client.nick}")
        for client in clients:
            heard = {await client.wait_for("c") for _ in range(len(clients) - 1)}
            assert heard == {f"{o.nick}: hi from {o.nick}" for o in clients if o is not client}

        parent.send_signal(stop)
        async with asyncio.timeout(WAIT):
            assert await parent.wait() == status
        for pid in workers:  # gone, not left behind
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )
        for client in clients:  # each worker said goodbye and closed as it stopped
            rest = await client.closed()
            assert rest[-1:] == ["* the server is shutting down: goodbye"], rest
    finally:
        if parent.returncode is None:
            parent.kill()  # its workers see their stdin close and stop
            async with asyncio.timeout(WAIT):
                await parent.wait()


# --- a broker behind a password, an ACL user, TLS; its secret never printed --------------------


CHAT_ONLY = "~aiomsg:chat:* &aiomsg:chat:* +@all -@dangerous"


def secret() -> str:
    """A password unlikely to show up anywhere by chance, with characters URLs must quote."""
    return f"pw-{uuid.uuid4().hex}:/@x"


def printed_secrets(text: str, *passwords: str) -> list[str]:
    """Which of ``passwords`` (as written or as quoted in a URL) appear in ``text``."""
    forms = {form for p in passwords for form in (p, urllib.parse.quote(p, safe=""), p[:19])}
    return sorted(form for form in forms if form in text)


@pytest.mark.parametrize("how", ["acl user", "password and TLS"])
async def test_a_broker_with_a_login_or_tls_shares_the_room_and_keeps_its_secret(how: str) -> None:
    password = secret()
    redis = (
        # The user may touch the chat's keys and channels only, and no dangerous command.
        RedisServer(user="chat", password=password, acl=CHAT_ONLY)
        if how == "acl user"
        else RedisServer(password=password, tls=True)
    )
    redis.start()
    try:
        async with chat_servers(["streams", "anyio"], redis.url) as (one, two):
            a, b = await named(one.port, "a"), await named(two.port, "b")
            async with asyncio.timeout(WAIT):
                while len(await who(a)) < 2:
                    await asyncio.sleep(0.05)
            await a.say("through the broker")
            await b.wait_for("a: through the broker")
            # An outage and a return: the lines that name the broker.
            redis.stop()
            await a.wait_for("* the room is degraded")
            redis.start()
            async with asyncio.timeout(WAIT):
                for client in (a, b):
                    await client.wait_for("* the room is whole again")
        for server in (one, two):
            output = server.output()
            assert "unreachable" in output and "is back" in output, output
            assert ":***@127.0.0.1" in output  # the URL is shown, its password hidden
            assert printed_secrets(output, password) == [], output
    finally:
        redis.close()


@pytest.mark.parametrize("wrong", ["password", "CA"])
async def test_a_wrong_password_or_ca_gives_one_clear_line_and_a_local_room(wrong: str) -> None:
    password, guess = secret(), secret()
    redis = RedisServer(user="chat", password=password, tls=True)
    redis.start()
    other_ca = Path(tempfile.mkdtemp(prefix="aiomsg-ca-")) / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    url = (
        redis.url_with(password=guess) if wrong == "password" else redis.url_with(ca_path=other_ca)
    )
    try:
        async with chat_servers(["protocol"], url) as (server,):
            client = await Client.join(server.port)
            await client.wait_for("* the room is degraded")
            await client.say("/who")  # the local room works
            await client.expect(f"* online: {client.nick}")
            await asyncio.sleep(2)  # a few more attempts (back-off 0.25 s, 0.5 s, 1 s)
            await client.say("/who")
            await client.expect(f"* online: {client.nick}")  # nothing more was said to it
        output = server.output()
        about_the_broker = [line for line in output.splitlines() if "chat broker" in line]
        assert len(about_the_broker) == 1, output  # one line, however many attempts
        expected = "refused this server's login" if wrong == "password" else "TLS handshake"
        assert expected in about_the_broker[0], about_the_broker
        assert printed_secrets(output, password, guess) == [], output
    finally:
        redis.close()
        shutil.rmtree(other_ca.parent, ignore_errors=True)


class Member:
    """What a server front gives the room for one connection; here, a list of lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.arrived = asyncio.Event()

    def deliver(self, line: bytes) -> bool:
        self.lines.append(line.decode())
        self.arrived.set()
        return True

    def disconnect(self, notice: str | None) -> None:
        pass

    def drained(self) -> bool:
        return True

    async def wait_for(self, line: str) -> None:
        async with asyncio.timeout(WAIT):
            while line not in self.lines:
                self.arrived.clear()
                await self.arrived.wait()


async def test_a_broker_session_that_fails_for_another_reason_degrades_the_room_and_comes_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No payload kills the reader (the hypothesis tests); a bug still might: the members
    are told, as when Redis goes away, and the broker starts a new session."""
    from redis.asyncio import Redis

    from aiomsg.chat import ChatRoom
    from aiomsg.chat.redis_broker import RedisBroker
    from aiomsg.chat.room import DEGRADED, WHOLE

    class Buggy(RedisBroker):  # a bug where no payload can reach: in the reader itself
        def _received(self, data: object) -> None:
            if data == b"trigger the bug":
                raise RuntimeError("a bug in the reader")
            super()._received(data)

    room = ChatRoom()
    broker = Buggy(redis_server.url, room, room_name=uuid.uuid4().hex[:8], heartbeat=HEARTBEAT)
    await broker.start()
    assert not broker.degraded
    member = Member()
    room.join(member)
    publisher = Redis.from_url(redis_server.url)
    try:
        assert await publisher.publish(broker._channel, b"trigger the bug") == 1
        await member.wait_for(DEGRADED)
        await member.wait_for(WHOLE)
        assert not broker.degraded
    finally:
        await publisher.aclose()
        await broker.aclose()
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(failures) == 1 and failures[0].exc_info is not None  # the bug, with its traceback
    assert "the session failed; reconnecting" in failures[0].getMessage()


async def test_the_broker_shows_its_url_without_the_password() -> None:
    from aiomsg.chat import ChatRoom
    from aiomsg.chat.redis_broker import RedisBroker

    password = secret()
    quoted = urllib.parse.quote(password, safe="")
    for url in (
        f"redis://chat:{quoted}@127.0.0.1:6379/0",
        f"rediss://:{quoted}@127.0.0.1:6380/0?ssl_ca_certs=/tmp/ca.pem",
        f"unix:///run/redis.sock?db=0&password={quoted}",
    ):
        broker = RedisBroker(url, ChatRoom())
        shown = f"{broker!r} {broker.url}"
        assert printed_secrets(shown, password) == [], shown
        assert "***" in broker.url
