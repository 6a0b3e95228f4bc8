"""The ``aiomsg`` command is quiet in the Unix way: data on stdout, nothing else by default;
``-v`` adds the chatter on stderr, ``-q`` silences a server's ``listening on`` line; and
``serve --mode print`` prints each message as ``HOST:PORT MESSAGE`` in ``--format``.

Every command runs as a subprocess against real servers on loopback.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import IO

import pytest

import aiomsg

from .redis_server import RedisServer
from .test_cli import aiomsg_cmd, aiomsg_serve, free_port, listening_port, one_error_line, run_cli

LOOP = r"event loop (uvloop|asyncio)"


def readline_within(stream: IO[bytes] | None, timeout: float = 30) -> bytes:
    """One line from an unbuffered pipe, or fail after ``timeout`` seconds."""
    assert stream is not None
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no whole line within {timeout} s: {line!r}"
        byte = stream.read(1)
        if not byte:
            break
        line += byte
    return line


@contextlib.contextmanager
def server_process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    """An ``aiomsg`` server in a subprocess (unbuffered pipes), stopped at the end."""
    proc = subprocess.Popen(
        aiomsg_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()


def rest_of(proc: subprocess.Popen[bytes], stream: IO[bytes] | None) -> bytes:
    """Stop ``proc`` (SIGTERM), then all it wrote on ``stream`` after what was read."""
    assert stream is not None
    proc.terminate()
    proc.wait(10)
    return stream.read()


def started(proc: subprocess.Popen[bytes]) -> int:
    """The port of a server started without -q: its one line on stderr."""
    return listening_port(readline_within(proc.stderr).decode())


def send_framed(port: int, framing: aiomsg.Framing, *messages: bytes) -> tuple[int, bytes]:
    """Send ``messages`` from a blocking socket, half-close, read until the server closes.

    Returns the client's own port (what ``serve`` shows as the peer) and what came back.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for message in messages:
            sock.sendall(framing.encode(message))
        sock.shutdown(socket.SHUT_WR)
        back = b""
        while chunk := sock.recv(65536):
            back += chunk
        client_port: int = sock.getsockname()[1]
    return client_port, back


# --- clients: nothing but data by default ---------------------------------------------------


def test_connect_and_request_print_only_data_by_default() -> None:
    with aiomsg_serve("length:4") as port:
        connect = run_cli(
            "connect", "127.0.0.1", str(port), "--framing", "length:4", stdin=b"one\ntwo\n"
        )
        request = run_cli("request", "127.0.0.1", str(port), "--framing", "length:4", stdin=b"q")
    assert (connect.returncode, connect.stdout, connect.stderr) == (0, b"one\ntwo\n", b"")
    assert (request.returncode, request.stdout, request.stderr) == (0, b"q", b"")


def test_verbose_connect_says_where_the_framing_and_the_loop_on_stderr() -> None:
    with aiomsg_serve("lines") as port:
        out = run_cli(
            "connect", "127.0.0.1", str(port), "--framing", "lines", "-v", stdin=b"a\nb\n"
        )
    assert (out.returncode, out.stdout) == (0, b"a\nb\n")  # the data is the same
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 2, lines
    assert re.fullmatch(
        rf"aiomsg connect: connected to 127\.0\.0\.1:{port}, Lines\(.*\), {LOOP}", lines[0]
    )
    assert lines[1] == (
        f"aiomsg connect: 127.0.0.1:{port} closed the connection; 2 messages sent, 2 received"
    )


def test_verbose_request_says_the_size_and_the_loop_on_stderr() -> None:
    with aiomsg_serve("eos") as port:
        out = run_cli("request", "127.0.0.1", str(port), "--verbose", stdin=b"hello")
    assert (out.returncode, out.stdout) == (0, b"hello")
    lines = out.stderr.decode().splitlines()
    assert re.fullmatch(
        rf"aiomsg request: request of 5 bytes to 127\.0\.0\.1:{port}, UntilEOF\(.*\), {LOOP}",
        lines[0],
    )
    assert lines[1:] == ["aiomsg request: answer of 5 bytes"]


def test_quiet_still_says_why_a_command_failed() -> None:
    port = free_port()
    out = run_cli("connect", "127.0.0.1", str(port), "--framing", "lines", "-q", stdin=b"x\n")
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        f"aiomsg connect: cannot connect to 127.0.0.1:{port} (connection refused)\n"
    )


def test_verbose_and_quiet_exclude_each_other() -> None:
    out = run_cli("serve", "127.0.0.1", "0", "--framing", "lines", "-v", "-q")
    assert out.returncode == 2
    assert "not allowed with argument" in out.stderr.decode()


# --- servers: one line to say where they listen; -q silences it -------------------------------


def test_serve_says_only_where_it_listens_by_default() -> None:
    with server_process("serve", "127.0.0.1", "0", "--framing", "netstring") as proc:
        port = started(proc)
        assert send_framed(port, aiomsg.Netstring(), b"hi")[1] == b"2:hi,"
        assert rest_of(proc, proc.stderr) == b""  # no chatter per connection


def test_verbose_serve_says_the_loop_and_each_connection() -> None:
    with server_process("serve", "127.0.0.1", "0", "--framing", "lines", "-v") as proc:
        port = started(proc)
        assert re.fullmatch(
            rf"aiomsg serve: echo server, Lines\(.*\), {LOOP}\n",
            readline_within(proc.stderr).decode(),
        )
        client, back = send_framed(port, aiomsg.Lines(), b"a", b"b")
        assert back == b"a\nb\n"
        assert (
            readline_within(proc.stderr) == f"aiomsg serve: 127.0.0.1:{client} connected\n".encode()
        )
        assert readline_within(proc.stderr) == (
            f"aiomsg serve: 127.0.0.1:{client} closed the connection after 2 messages\n".encode()
        )


def wait_until_listening(port: int, tries: int = 200) -> None:
    """Connect (and close) until ``port`` accepts: a quiet server says nothing when ready."""
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except ConnectionRefusedError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {tries} tries")


def test_quiet_serve_prints_nothing_at_all() -> None:
    port = free_port()
    with server_process("serve", "127.0.0.1", str(port), "--framing", "lines", "-q") as proc:
        wait_until_listening(port)
        assert send_framed(port, aiomsg.Lines(), b"x")[1] == b"x\n"
        assert rest_of(proc, proc.stderr) == b""


def test_chat_server_says_where_it_listens_and_quiet_silences_it() -> None:
    with server_process("chat-server", "--port", "0") as proc:
        started(proc)
        assert rest_of(proc, proc.stderr) == b""
    port = free_port()
    with server_process("chat-server", "--port", str(port), "-q") as proc:
        wait_until_listening(port)
        assert rest_of(proc, proc.stderr) == b""


def test_verbose_chat_server_shows_the_broker_without_its_password() -> None:
    redis = RedisServer()
    redis.start()
    try:
        # Redis' default user takes any password: the URL works, and must not be shown.
        url = f"redis://default:s3cret-pw@127.0.0.1:{redis.port}/0"
        with server_process("chat-server", "--port", "0", "--broker", url, "-v") as proc:
            started(proc)
            line = readline_within(proc.stderr).decode()
            rest = rest_of(proc, proc.stderr).decode()
    finally:
        redis.close()
    assert re.fullmatch(
        rf"aiomsg chat-server: streams front, room 'lobby' shared through "
        rf"redis://default:\*\*\*@127\.0\.0\.1:{redis.port}/0, {LOOP}\n",
        line,
    )
    assert "s3cret-pw" not in line + rest


def test_the_broker_s_own_warnings_hide_its_password() -> None:
    url = f"redis://default:s3cret-pw@127.0.0.1:{free_port()}/0"  # nothing listens there
    with server_process("chat-server", "--port", "0", "--broker", url) as proc:
        lines = [readline_within(proc.stderr).decode() for _ in range(2)]
        rest = rest_of(proc, proc.stderr).decode()
    assert any(line.startswith("aiomsg chat-server: listening on ") for line in lines), lines
    shown = url.replace(":s3cret-pw@", ":***@")
    assert any(f"chat broker {shown} unreachable" in line for line in lines), lines
    assert "s3cret-pw" not in "".join(lines) + rest


def test_a_bad_broker_url_is_refused_without_showing_its_password() -> None:
    out = run_cli("chat-server", "--broker", "http://me:s3cret-pw@127.0.0.1:6379/0")
    assert out.returncode == 2
    assert "not a Redis URL" in out.stderr.decode()
    assert "http://me:***@127.0.0.1:6379/0" in out.stderr.decode()
    assert b"s3cret-pw" not in out.stderr


def test_demo_prints_the_transcript_only_and_verbose_says_ok() -> None:
    out = run_cli("demo", timeout=60)
    assert out.returncode == 0
    assert b"alice: hello everyone!" in out.stdout
    assert out.stderr == b""
    verbose = run_cli("demo", "-v", timeout=60)
    assert verbose.returncode == 0
    lines = verbose.stderr.decode().splitlines()
    assert re.fullmatch(
        rf"aiomsg demo: chat server \(streams front\) on loopback, {LOOP}", lines[0]
    )
    assert lines[1:] == ["aiomsg demo: ok: every client saw what it should"]


def test_piped_chat_prints_only_the_room_and_verbose_says_where() -> None:
    with server_process("chat-server", "--port", "0") as proc:
        port = started(proc)
        quiet = run_cli("chat", "127.0.0.1", str(port), stdin=b"/who\n")
        verbose = run_cli("chat", "127.0.0.1", str(port), "-v", stdin=b"")
    assert quiet.returncode == 0
    assert b"* online: " in quiet.stdout
    assert quiet.stderr == b""
    assert verbose.returncode == 0
    assert re.fullmatch(
        rf"aiomsg chat: connected to 127\.0\.0\.1:{port}, {LOOP}\n", verbose.stderr.decode()
    )


# --- serve --mode print --format -------------------------------------------------------------

MESSAGES = [b"hello", "caf\u00e9 \U0001f600".encode(), b"two\nlines", b"\xff\x00bin", b""]


@pytest.mark.parametrize(
    ("fmt", "shown"),
    [
        ("text", ["hello", "caf\u00e9 \U0001f600", "two", "lines", "\ufffd\x00bin", ""]),
        ("hex", ["68656c6c6f", "636166c3a920f09f9880", "74776f0a6c696e6573", "ff0062696e", ""]),
        (
            "json",
            [
                '"hello"',
                '"caf\\u00e9 \\ud83d\\ude00"',
                '"two\\nlines"',
                '"\\ufffd\\u0000bin"',
                '""',
            ],
        ),
    ],
)
def test_serve_print_shows_the_peer_then_each_message_in_the_format(
    fmt: str, shown: list[str]
) -> None:
    args = ["serve", "127.0.0.1", "0", "--framing", "length:2", "--mode", "print"]
    with server_process(*args, "--format", fmt) as proc:
        port = started(proc)
        client, back = send_framed(port, aiomsg.LengthPrefixed(2), *MESSAGES)
        assert back == b""  # print mode answers nothing
        output = rest_of(proc, proc.stdout).decode()
        assert rest_of(proc, proc.stderr) == b""
    peer = f"127.0.0.1:{client}"
    if fmt == "text":  # a newline in a message breaks its line: what --format json is for
        expected = (
            f"{peer} hello\n{peer} {shown[1]}\n{peer} two\nlines\n{peer} {shown[4]}\n{peer} \n"
        )
        assert output == expected
    else:
        assert output == "".join(f"{peer} {s}\n" for s in shown)
        assert [line.partition(" ")[0] for line in output.splitlines()] == [peer] * len(shown)
