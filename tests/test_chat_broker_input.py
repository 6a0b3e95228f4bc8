"""The Redis channel is untrusted input: whatever is published there, the room stays whole.

A hypothesis-driven publisher puts arbitrary bytes, arbitrary JSON and nearly-valid
events on a room's channel of a real ``redis-server`` while two real ``aiomsg
chat-server --broker`` processes exchange lines through it. Every real line must
arrive, and the servers' logs stay short.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiomsg.chat.servers import IMPLS

from .processes import stop_process
from .redis_server import RedisServer
from .test_chat import UNSAFE

WAIT = 20.0  # seconds: a bound only a broken server reaches


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


class Server:
    """One ``aiomsg chat-server --broker`` process (blocking API); its log in a file."""

    def __init__(self, impl: str, loop: str, broker: str, room: str) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="aiomsg-chat-", suffix=".log")[1])
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "aiomsg", "chat-server", "--impl", impl,
                    "--port", "0", "--broker", broker, "--room", room,
                    "--broker-heartbeat", "0.25", "--flood-rate", "10000", "--report-port",
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, "AIOMSG_LOOP": loop},
            )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # bounded: the server prints it or exits
        assert line, f"the server did not start: {self.log()}"
        self.port = int(line)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        stop_process(self.process, WAIT)
        assert self.process.stdout is not None
        self.process.stdout.close()


class Member:
    """A chat client on a blocking socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.pending = b""
        welcome = self.line()
        self.nick = welcome.split("you are ")[1].split()[0]

    def say(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\n")

    def line(self) -> str:
        while b"\n" not in self.pending:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode()

    def wait_for(self, wanted: str) -> list[str]:
        """Lines up to and including ``wanted``; none may carry a control character."""
        lines: list[str] = []
        deadline = time.monotonic() + WAIT
        while not lines or lines[-1] != wanted:
            assert time.monotonic() < deadline, f"{wanted!r} never came: {lines[-20:]}"
            lines.append(self.line())
            assert not UNSAFE.search(lines[-1]), lines[-1]
            assert not lines[-1].startswith("* the room is degraded"), lines
        return lines


@contextlib.contextmanager
def two_servers(
    impl: str, loop: str, broker: str, logs: list[str] | None = None
) -> Iterator[tuple[str, Member, Member]]:
    """Two servers on one room; a member on each, each known to the other server.

    ``logs``: filled with the servers' logs once they stopped."""
    room = uuid.uuid4().hex[:8]
    servers = []
    try:
        servers = [Server(impl, loop, broker, room) for _ in range(2)]
        alice, bob = Member(servers[0].port), Member(servers[1].port)
        deadline = time.monotonic() + WAIT
        while True:  # both servers are in the room
            bob.say("/who")
            online = next(line for line in iter(bob.line, None) if line.startswith("* online"))
            if alice.nick in online:
                break
            assert time.monotonic() < deadline, online
            time.sleep(0.05)
        yield f"aiomsg:chat:{room}:events", alice, bob
    finally:
        for server in servers:
            server.close()
        texts = [server.log() for server in servers]
        for server in servers:
            server.log_path.unlink(missing_ok=True)
        if logs is not None:
            logs.extend(texts)
    for log in texts:
        assert "Traceback" not in log, log
        # One line a minute about invalid events, one per unknown version (at most 8),
        # the start-up banner: nothing that grows with the number of payloads.
        assert log.count("dropped") <= 2, log
        assert len(log.splitlines()) <= 12, log


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Values that are nearly right, to reach past the first checks.
FIELD = (
    JSON
    | st.sampled_from(["join", "leave", "rename", "here", "alice", "x" * 70, "\x1b]0;t\x07"])
    | st.lists(
        st.sampled_from(["join", "leave", "rename", "here", "alice", "bob", "bad nick!", ""])
        | JSON,
        max_size=4,
    )
)
EVENT = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 2, 0, -1, True, "1", 1.0, 10**30]) | JSON,
        "from": st.text(max_size=12) | FIELD,
        "line": st.text(max_size=40) | FIELD,
        "presence": FIELD,
        "extra": JSON,
    },
)
PAYLOADS = (
    st.binary(max_size=300)
    | JSON.map(lambda value: json.dumps(value).encode())
    | st.lists(EVENT, max_size=4).map(lambda events: json.dumps(events).encode())
)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("impl", IMPLS)
def test_whatever_is_published_on_the_channel_every_real_line_arrives(
    redis_server: RedisServer, impl: str, loop: str
) -> None:
    publisher = redis.Redis.from_url(redis_server.url)
    counter = itertools.count()
    with two_servers(impl, loop, redis_server.url) as (channel, alice, bob):

        @settings(
            max_examples=50,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(payload=PAYLOADS)
        # What issue 21 found stopping a server's delivery, and other classics:
        @example(payload=b"5")
        @example(payload=b'["x"]')
        @example(payload=b'{"a": 1}')
        @example(payload=b'[{"line": 5}]')
        @example(payload=b'[{"from": "x", "presence": ["rename", "a"]}]')
        @example(payload=b"[" * 100_000 + b"]" * 100_000)  # too deep for the parser
        @example(payload=b"1" * 10_000)  # a number too long to convert
        @example(payload=b"\xff\xfe")  # not UTF-8
        @example(payload=b'[{"v": 2, "from": "x", "line": "from the future"}]')
        @example(payload=b'[{"from": "x", "line": "\\u001b]52;c;aGk=\\u0007"}]')
        def exchange(payload: bytes) -> None:
            publisher.publish(channel, payload)
            # Published before this line left alice's server: heard before it, too.
            k = next(counter)
            alice.say(f"real {k}")
            bob.wait_for(f"{alice.nick}: real {k}")

        exchange()
        bob.say("back")  # and the other way
        alice.wait_for(f"{bob.nick}: back")
    publisher.close()


def test_a_forged_event_s_control_characters_are_neutralised(redis_server: RedisServer) -> None:
    """A line heard through Redis is untrusted too: shown with markers, like a local one."""
    publisher = redis.Redis.from_url(redis_server.url)
    logs: list[str] = []
    with two_servers("protocol", "asyncio", redis_server.url, logs) as (channel, alice, bob):
        forged = [{"v": 1, "from": "intruder", "line": "eve: \x1b[2J\u202ehi"}]
        publisher.publish(channel, json.dumps(forged))
        assert bob.wait_for("eve: ^[[2J<U+202E>hi")[-1] == "eve: ^[[2J<U+202E>hi"
        # A rolling upgrade: a server of before the version field, and one that adds a field.
        old = [{"from": "old-server", "line": "olga: before v", "presence": ["join", "olga"]}]
        publisher.publish(channel, json.dumps(old))
        assert bob.wait_for("olga: before v")[-1] == "olga: before v"
        new = [{"v": 1, "from": "new-server", "line": "nina: hi", "presence": None, "room": 7}]
        publisher.publish(channel, json.dumps(new))
        assert bob.wait_for("nina: hi")[-1] == "nina: hi"
        bob.say("/who")
        online = next(line for line in iter(bob.line, None) if line.startswith("* online"))
        assert "olga" in online.split(": ")[1].split(", ")  # its presence counted too
        # A version-2 event is skipped, with one log line, and the room goes on.
        publisher.publish(channel, json.dumps([{"v": 2, "from": "new", "line": "eve: v2"}]))
        alice.say("after")
        publisher.publish(channel, json.dumps([{"v": 2, "from": "new", "line": "eve: v2 again"}]))
        alice.say("after")
        assert "eve: v2" not in bob.wait_for(f"{alice.nick}: after")
        assert "eve: v2 again" not in bob.wait_for(f"{alice.nick}: after")
    publisher.close()
    for log in logs:
        assert log.count("skipping events of schema version 2") == 1, log
        assert "dropped" not in log  # all of these were valid


@pytest.mark.parametrize("impl", IMPLS)
def test_a_reader_that_dies_degrades_the_room_and_reconnects(
    redis_server: RedisServer, impl: str
) -> None:
    """The subscriptions are killed (CLIENT KILL): members are told, the servers come back."""
    admin = redis.Redis.from_url(redis_server.url)
    with two_servers(impl, "asyncio", redis_server.url) as (_, alice, bob):
        assert admin.client_kill_filter(_type="pubsub") == 2
        for member in (alice, bob):
            lines: list[str] = []
            deadline = time.monotonic() + WAIT
            while not lines or lines[-1] != "* the room is whole again":
                assert time.monotonic() < deadline, lines
                lines.append(member.line())
            assert lines[-2].startswith("* the room is degraded"), lines
        alice.say("whole again")
        deadline = time.monotonic() + WAIT
        while True:  # lines said while the other server was still away are not replayed
            bob.sock.settimeout(1)
            try:
                if bob.line() == f"{alice.nick}: whole again":
                    break
            except TimeoutError:
                alice.say("whole again")
            assert time.monotonic() < deadline
        bob.sock.settimeout(WAIT)
    admin.close()
