"""Out of file descriptors: each server front, on asyncio, uvloop and trio, in a subprocess
whose RLIMIT_NOFILE is 64, with 100 clients connected at once. The server stays up, logs a
bounded number of lines (no traceback per attempt), does not spin, and serves a new client
once the others have closed."""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LIMIT = 64
CLIENTS = 100  # more than LIMIT: some must wait for descriptors

SERVER = r"""
import functools, logging, resource, sys

import anyio

import aiomsg

front, backend, where = sys.argv[1:4]
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
framing = aiomsg.Lines()


async def echo(conn):
    async for message in conn:
        await conn.send(message)


async def echo_stream(stream):
    async for message in stream:
        await stream.send(message)


def ready(value):
    print(value, flush=True)


async def main():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (%(limit)d, hard))
    if front == "serve":
        async with aiomsg.serve(echo, "127.0.0.1", 0, framing=framing) as server:
            ready(server.port)
            await anyio.sleep_forever()
    elif front == "serve_unix":
        async with aiomsg.serve_unix(echo, where, framing=framing):
            ready(where)
            await anyio.sleep_forever()
    elif front == "serve_requests":
        async with aiomsg.serve_requests(bytes.upper, "127.0.0.1", 0) as server:
            ready(server.port)
            await anyio.sleep_forever()
    elif front == "serve_requests_unix":
        async with aiomsg.serve_requests_unix(bytes.upper, where):
            ready(where)
            await anyio.sleep_forever()
    else:
        async with anyio.create_task_group() as tg:
            if front == "serve_framed":
                serve = functools.partial(aiomsg.serve_framed, echo_stream, "127.0.0.1", 0)
            else:
                serve = functools.partial(aiomsg.serve_framed_unix, echo_stream, where)
            ready(await tg.start(functools.partial(serve, framing=framing)))


if backend == "trio":
    anyio.run(main, backend="trio")
else:
    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": backend == "uvloop"})
""".replace("%(limit)d", str(LIMIT))

CASES = [
    ("serve", "asyncio"),
    ("serve", "uvloop"),
    ("serve_unix", "asyncio"),
    ("serve_unix", "uvloop"),
    ("serve_framed", "asyncio"),
    ("serve_framed", "uvloop"),
    ("serve_framed", "trio"),
    ("serve_framed_unix", "asyncio"),
    ("serve_framed_unix", "uvloop"),
    ("serve_framed_unix", "trio"),
    ("serve_requests", "asyncio"),
    ("serve_requests", "uvloop"),
    ("serve_requests_unix", "asyncio"),
    ("serve_requests_unix", "uvloop"),
]


@contextlib.contextmanager
def server(front: str, backend: str, log: Path) -> Iterator[tuple[subprocess.Popen[str], object]]:
    with tempfile.TemporaryDirectory(dir="/tmp") as folder, log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, front, backend, f"{folder}/s"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line, log.read_text()
            address: object = line if front.endswith("_unix") else ("127.0.0.1", int(line))
            yield proc, address
        finally:
            proc.kill()
            proc.wait(timeout=30)


def connect(address: object) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket()
    sock.settimeout(30)
    sock.connect(address)  # type: ignore[arg-type]
    return sock


def served(front: str, address: object) -> bytes:
    """One exchange with the server, as a new client."""
    with connect(address) as sock:
        if front.startswith("serve_requests"):
            sock.sendall(b"hello")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
        sock.sendall(b"hello\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.parametrize(("front", "backend"), CASES)
def test_out_of_descriptors_the_server_waits_logs_once_and_serves_again(
    front: str, backend: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    with server(front, backend, log) as (proc, address):
        clients = [connect(address) for _ in range(CLIENTS)]
        try:
            for _ in range(300):  # at most 30 s for the server to run out
                if "cannot accept connections" in log.read_text():
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"the server never said it ran out:\n{log.read_text()}")
            began = time.monotonic()
            time.sleep(1.0)  # while it lasts, the server retries now and then
            assert proc.poll() is None, log.read_text()
        finally:
            for sock in clients:
                sock.close()
        expected = b"HELLO" if front.startswith("serve_requests") else b"hello\n"
        assert served(front, address) == expected
        elapsed = time.monotonic() - began
        assert proc.poll() is None
    text = log.read_text()
    lines = text.splitlines()
    assert "Traceback" not in text, text
    # One line when it began, one when it ended (the once-a-minute line cannot come yet).
    assert len(lines) <= 3, text
    assert any("cannot accept connections" in line for line in lines), text
    again = re.search(r"accepts connections again \(after (\d+) failed attempts\)", text)
    assert again is not None, text
    # A pause after each failure, not a spin: at most ~4 attempts a second (noise only
    # lowers the count), where a spinning loop makes thousands.
    assert int(again.group(1)) <= 4 * elapsed + 8, text


def test_the_guard_logs_one_line_then_a_count_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line-a-minute rule, without waiting a minute: the interval is the module's."""
    from aiomsg import _accept_guard

    caplog.set_level(logging.WARNING, logger="aiomsg")
    error = OSError(errno.EMFILE, "Too many open files")
    guard = _accept_guard.AcceptGuard("127.0.0.1:9")
    for _ in range(1000):  # within one interval: one line
        assert guard.failed(error) == _accept_guard.ACCEPT_BACKOFF
    assert [r.getMessage() for r in caplog.records] == [
        "server on 127.0.0.1:9 cannot accept connections: Too many open files; clients wait "
        "in the listen queue, accepting is retried every 0.25 s (at most one line a minute "
        "while it lasts)"
    ]
    guard.accepted()
    assert caplog.records[-1].getMessage() == (
        "server on 127.0.0.1:9 accepts connections again (after 1000 failed attempts)"
    )
    guard.accepted()  # and nothing more while all is well
    assert len(caplog.records) == 2

    caplog.clear()
    monkeypatch.setattr(_accept_guard, "REPORT_INTERVAL", 0.0)  # every failure is "a minute on"
    guard = _accept_guard.AcceptGuard("127.0.0.1:9")
    for _ in range(3):
        guard.failed(error)
    assert [r.getMessage() for r in caplog.records][1:] == [
        "server on 127.0.0.1:9 still cannot accept connections (Too many open files); "
        "failed attempts since the last line: 1"
    ] * 2
