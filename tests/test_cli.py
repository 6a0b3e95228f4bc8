"""The ``aiomsg`` command, driven as a user would (subprocesses, real sockets): ``serve`` with
any framing spec, the framed client ``connect``, ``request``, errors, ``--version``, ``--help``.

Quietness, ``-v``/``-q`` and ``serve --format``: tests/test_cli_quiet.py; bad specs:
tests/test_cli_specs.py; the framing-mismatch hints: tests/test_cli_mismatch.py."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

import aiomsg
from aiomsg.framing import parse_framing

from .peers import exchange


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("lines", aiomsg.Lines()),
        ("delimited:\\r\\n", aiomsg.Delimited(b"\r\n")),
        ("length:4", aiomsg.LengthPrefixed(4)),
        ("length:2:little", aiomsg.LengthPrefixed(2, "little")),
        ("ascii:5", aiomsg.AsciiLengthPrefixed(5)),
        ("fixed:16", aiomsg.FixedLength(16)),
        ("netstring", aiomsg.Netstring()),
        ("varint", aiomsg.Varint()),
        ("eos", aiomsg.UntilEOF()),
        ("typed:1=8", aiomsg.TypePrefixed({1: 8})),
        (
            "typed:1=8,2=length:2,0x10=netstring",
            aiomsg.TypePrefixed({1: 8, 2: aiomsg.LengthPrefixed(2), 16: aiomsg.Netstring()}),
        ),
        ("typed:0=0,255=varint", aiomsg.TypePrefixed({0: 0, 255: aiomsg.Varint()})),
        (
            "typed:7=length:4:little,8=ascii:3,9=fixed:2",
            aiomsg.TypePrefixed(
                {
                    7: aiomsg.LengthPrefixed(4, "little"),
                    8: aiomsg.AsciiLengthPrefixed(3),
                    9: aiomsg.FixedLength(2),
                }
            ),
        ),
    ],
)
def test_framing_specs(spec: str, expected: aiomsg.Framing) -> None:
    assert repr(parse_framing(spec)) == repr(expected)


def aiomsg_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "aiomsg", *args]


LISTENING = re.compile(r"aiomsg (serve|chat-server): listening on 127\.0\.0\.1:(\d+)\n")


def listening_port(line: str) -> int:
    """The port in a server's one default line, ``aiomsg serve: listening on HOST:PORT``."""
    match = LISTENING.fullmatch(line)
    assert match is not None, line
    return int(match[2])


@contextlib.contextmanager
def aiomsg_serve(spec: str, *options: str) -> Iterator[int]:
    """``aiomsg serve 127.0.0.1 0 --framing SPEC`` in a subprocess; yield the port it printed."""
    proc = subprocess.Popen(
        aiomsg_cmd("serve", "127.0.0.1", "0", "--framing", spec, *options),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        yield listening_port(proc.stderr.readline())
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def netstring_server() -> Iterator[int]:
    with aiomsg_serve("netstring") as port:
        yield port


def run_cli(
    *args: str, stdin: bytes = b"", timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(aiomsg_cmd(*args), input=stdin, capture_output=True, timeout=timeout)


def run_cli_stdin_open(*args: str, timeout: float = 30) -> tuple[int, bytes, bytes]:
    """Run with a stdin that stays open: the command must end by itself (the server's doing)."""
    proc = subprocess.Popen(
        aiomsg_cmd(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        proc.wait(timeout)
        assert proc.stdout is not None and proc.stderr is not None
        return proc.returncode, proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()


def one_error_line(stderr: bytes) -> str:
    """The one line a failing command prints, checked to be one line and no traceback."""
    text = stderr.decode()
    assert "Traceback" not in text
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text


@contextlib.contextmanager
def raw_server(behave: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection server on loopback, in a thread: ``behave(conn)`` then close."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(30)
                behave(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(30)


def free_port() -> int:
    """A loopback port where nothing listens (it was free a moment ago)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
    return port


def test_serve_echoes_any_framing(netstring_server: int) -> None:
    wire = exchange(("127.0.0.1", netstring_server), b"5:hello,0:,3:abc,")
    assert wire == b"5:hello,0:,3:abc,"


def test_request_command_half_closes_stdin(tmp_path: object) -> None:
    server = subprocess.Popen(
        [sys.executable, "examples/kv_server.py", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().split(":")[1].split()[0]
        out = subprocess.run(
            aiomsg_cmd("request", "127.0.0.1", port),
            input=b"SET x 1",
            capture_output=True,
            timeout=30,
            check=True,
        )
        assert (out.stdout, out.stderr) == (b"OK\n", b"")
    finally:
        server.terminate()
        server.wait(10)


COMMANDS = ["chat-server", "chat", "connect", "request", "serve", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    out = subprocess.run(aiomsg_cmd(command, "--help"), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout.startswith(f"usage: aiomsg {command}")
    assert "--version" in out.stdout


@pytest.mark.parametrize(
    ("command", "default"),
    [
        ("chat-server", "(default: 7777)"),
        ("connect", "(default: 5.0)"),
        ("connect", "(default: text)"),
        ("request", "(default: eos)"),
        ("serve", "(default: echo)"),
        ("demo", "(default: streams)"),
    ],
)
def test_help_shows_defaults(command: str, default: str) -> None:
    out = subprocess.run(aiomsg_cmd(command, "--help"), capture_output=True, text=True, timeout=30)
    assert default in " ".join(out.stdout.split())


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_version_everywhere(command: list[str]) -> None:
    out = subprocess.run(
        aiomsg_cmd(*command, "--version"), capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    assert re.fullmatch(r"aiomsg (\S+) \((uvloop|asyncio)\)\n", out.stdout)
    assert out.stdout.split()[1] == aiomsg.__version__
    assert out.stderr == ""


# --- aiomsg connect against aiomsg serve ----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "options", "stdin", "stdout"),
    [
        ("lines", [], b"hello\n\nworld\n", b"hello\n\nworld\n"),
        ("delimited:\\0", [], b"a b\nc", b"a b\nc\n"),
        ("length:4", [], b"hello\nworld\n", b"hello\nworld\n"),
        ("length:2:little", [], "h\u00e9llo\n".encode(), "h\u00e9llo\n".encode()),
        ("ascii:5", [], b"one\ntwo\n", b"one\ntwo\n"),
        ("fixed:3", [], b"abc\ndef\n", b"abc\ndef\n"),
        ("netstring", [], b"5:hello,\n", b"5:hello,\n"),
        ("varint", [], b"x" * 300 + b"\n", b"x" * 300 + b"\n"),
        ("eos", [], b"all of it", b"all of it\n"),
        (
            "typed:1=8,2=length:2",
            ["--input", "hex", "--format", "hex"],
            b"01 3132333435363738\n026869\n02\n",
            b"013132333435363738\n026869\n02\n",
        ),
        ("typed:1=8,2=length:2", [], b"\x01abcdefgh\n\x02hi\n", b"\x01abcdefgh\n\x02hi\n"),
        ("typed:0x41=3,66=netstring", [], b"Axyz\nB\nBbody\n", b"Axyz\nB\nBbody\n"),
    ],
)
def test_connect_exchanges_messages_with_serve(
    spec: str, options: list[str], stdin: bytes, stdout: bytes
) -> None:
    with aiomsg_serve(spec) as port:
        out = run_cli("connect", "127.0.0.1", str(port), "--framing", spec, *options, stdin=stdin)
    assert (out.returncode, out.stdout, out.stderr) == (0, stdout, b"")


@pytest.mark.parametrize(
    ("fmt", "stdout"),
    [
        ("text", "caf\u00e9 \ufffd\ttab\nnext line\n".encode()),
        ("hex", b"636166c3a920ff09746162\n6e657874206c696e65\n"),
        ("json", b'"caf\\u00e9 \\ufffd\\ttab"\n"next line"\n'),
    ],
)
def test_connect_formats(fmt: str, stdout: bytes) -> None:
    with aiomsg_serve("length:4") as port:
        out = run_cli(
            "connect",
            "127.0.0.1",
            str(port),
            "--framing",
            "length:4",
            "--format",
            fmt,
            stdin="caf\u00e9 ".encode() + b"\xff\ttab\nnext line\n",
        )
    assert (out.returncode, out.stdout, out.stderr) == (0, stdout, b"")


def test_json_format_keeps_a_message_with_newlines_on_one_line() -> None:
    framing = aiomsg.LengthPrefixed(4)

    def send_two_lines(conn: socket.socket) -> None:
        conn.sendall(framing.encode(b"two\nlines\r\n"))

    with raw_server(send_two_lines) as port:
        returncode, stdout, stderr = run_cli_stdin_open(
            "connect", "127.0.0.1", str(port), "--framing", "length:4", "--format", "json"
        )
    assert (returncode, stdout, stderr) == (0, b'"two\\nlines\\r\\n"\n', b"")


# --- aiomsg connect when things go wrong ----------------------------------------------------------


def test_connect_to_nothing_listening() -> None:
    port = free_port()
    out = run_cli("connect", "127.0.0.1", str(port), "--framing", "lines", stdin=b"hi\n")
    assert out.returncode == 1
    assert out.stdout == b""
    assert one_error_line(out.stderr) == (
        f"aiomsg connect: cannot connect to 127.0.0.1:{port} (connection refused)\n"
    )


def test_connect_to_unknown_host() -> None:
    out = run_cli(
        "connect", "nosuchhost.invalid", "7", "--framing", "lines", "--timeout", "10", stdin=b""
    )
    assert out.returncode == 1
    line = one_error_line(out.stderr)
    assert line.startswith("aiomsg connect: ")
    assert "nosuchhost.invalid" in line


def test_server_closing_early_is_a_clean_end() -> None:
    with raw_server(lambda conn: conn.sendall(b"bye\n")) as port:
        returncode, stdout, stderr = run_cli_stdin_open(
            "connect", "127.0.0.1", str(port), "--framing", "lines"
        )
    assert (returncode, stdout, stderr) == (0, b"bye\n", b"")


def test_server_closing_in_a_message_is_an_error() -> None:
    with raw_server(lambda conn: conn.sendall(struct.pack(">I", 16) + b"abc")) as port:
        returncode, stdout, stderr = run_cli_stdin_open(
            "connect", "127.0.0.1", str(port), "--framing", "length:4"
        )
    assert (returncode, stdout) == (1, b"")
    assert one_error_line(stderr) == (
        f"aiomsg connect: 127.0.0.1:{port} closed the connection in the middle of a message"
        " (7 bytes of it had arrived)"
        " (the server may use another framing than --framing length:4)\n"
    )


def test_server_breaking_the_framing_is_an_error() -> None:
    with raw_server(lambda conn: conn.sendall(b"2:ok,x:abc,")) as port:
        returncode, stdout, stderr = run_cli_stdin_open(
            "connect", "127.0.0.1", str(port), "--framing", "netstring"
        )
    assert (returncode, stdout) == (1, b"ok\n")  # the good message first
    line = one_error_line(stderr)
    assert line.startswith(f"aiomsg connect: 127.0.0.1:{port} broke the framing")
    assert "another framing" not in line  # a message parsed: the framing is right


def test_server_announcing_too_large_a_message_is_an_error() -> None:
    # What `aiomsg request` used to do to a length:4 server: raw text read as a length.
    with raw_server(lambda conn: conn.sendall(b"hello")) as port:
        returncode, stdout, stderr = run_cli_stdin_open(
            "connect", "127.0.0.1", str(port), "--framing", "length:4"
        )
    assert (returncode, stdout) == (1, b"")
    assert "sent a message over the size limit" in one_error_line(stderr)


def test_server_resetting_is_an_error() -> None:
    def reset(conn: socket.socket) -> None:
        conn.recv(100)  # the client's first line: it is connected and running
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with raw_server(reset) as port:
        proc = subprocess.Popen(
            aiomsg_cmd("connect", "127.0.0.1", str(port), "--framing", "lines"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdin is not None
            proc.stdin.write(b"hello\n")
            proc.stdin.flush()  # stdin stays open: only the reset ends the client
            proc.wait(30)
            assert proc.stdout is not None and proc.stderr is not None
            returncode, stderr = proc.returncode, proc.stderr.read()
        finally:
            proc.kill()
            proc.wait(10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                assert stream is not None
                stream.close()
    assert returncode == 1
    assert one_error_line(stderr) == (
        f"aiomsg connect: connection to 127.0.0.1:{port} lost (connection reset by peer)"
        " (the server may use another framing than --framing lines)\n"
    )


def test_wait_bounds_a_server_that_never_closes() -> None:
    done = threading.Event()

    def stay(conn: socket.socket) -> None:
        conn.sendall(b"still here\n")
        done.wait(30)

    try:
        with raw_server(stay) as port:
            out = run_cli(
                "connect",
                "127.0.0.1",
                str(port),
                "--framing",
                "lines",
                "--wait",
                "0.5",
                stdin=b"x\n",
                timeout=20,
            )
            done.set()
    finally:
        done.set()
    assert (out.returncode, out.stdout, out.stderr) == (0, b"still here\n", b"")


def test_a_line_the_framing_cannot_carry_is_an_error() -> None:
    with aiomsg_serve("fixed:4") as port:
        out = run_cli(
            "connect", "127.0.0.1", str(port), "--framing", "fixed:4", stdin=b"four\nabc\n"
        )
    assert out.returncode == 1
    assert out.stdout in (b"", b"four\n")  # the echo of line 1 may not have come back yet
    assert one_error_line(out.stderr).startswith("aiomsg connect: cannot send line 2 of stdin: ")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_exits_130_without_a_traceback() -> None:
    with aiomsg_serve("lines") as port:
        proc = subprocess.Popen(
            aiomsg_cmd("connect", "127.0.0.1", str(port), "--framing", "lines"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"ping\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == b"ping\n"  # running, past the set-up
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
            assert proc.stderr is not None
            assert (proc.returncode, proc.stderr.read()) == (130, b"")
        finally:
            proc.kill()
            proc.wait(10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                assert stream is not None
                stream.close()


def test_serve_on_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = run_cli("serve", "127.0.0.1", str(port), "--framing", "lines")
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        f"aiomsg serve: cannot listen on 127.0.0.1:{port} (address already in use)\n"
    )


def test_chat_to_nothing_listening() -> None:
    port = free_port()
    out = run_cli("chat", "127.0.0.1", str(port))
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        f"aiomsg chat: cannot connect to 127.0.0.1:{port} (connection refused)\n"
    )


# --- usage errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["connect", "127.0.0.1", "99999", "--framing", "lines"],
            "a port must be 1-65535, not 99999",
        ),
        (["connect", "127.0.0.1", "0", "--framing", "lines"], "a port must be 1-65535, not 0"),
        (["connect", "127.0.0.1", "http", "--framing", "lines"], "not a port number: 'http'"),
        (
            ["serve", "127.0.0.1", "65536", "--framing", "lines"],
            "a port must be 0-65535, not 65536",
        ),
        (["chat-server", "--port", "-1"], "a port must be 0-65535, not -1"),
        (["request", "127.0.0.1", "7", "--timeout", "-1"], "a timeout must be 0 or more seconds"),
        (["connect", "127.0.0.1", "7", "--framing", "lines", "--wait", "soon"], "not a number"),
        (
            ["connect", "127.0.0.1", "7", "--framing", "typed:1=lines"],
            "bad --framing 'typed:1=lines': type 1: 'lines' does not announce its length",
        ),
        (
            ["request", "127.0.0.1", "7", "--framing", "ascii:x"],
            "bad --framing 'ascii:x': DIGITS must be a whole number, not 'x' (ascii:DIGITS)",
        ),
        (["connect", "127.0.0.1", "7"], "the following arguments are required: --framing"),
        (["chat-server", "--broker", "redis://127.0.0.1:notaport/0"], "not a Redis URL"),
        (["chat-server", "--broker", "http://127.0.0.1:6379/0"], "not a Redis URL"),
        (["chat-server", "--workers", "2"], "--workers needs --broker"),
        (["chat-server", "--workers", "0"], "must be 1-256, not 0"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(args: list[str], words: str) -> None:
    out = run_cli(*args)
    assert out.returncode == 2
    assert words in out.stderr.decode()
    assert "Traceback" not in out.stderr.decode()


# --- aiomsg request ---------------------------------------------------------------------------


def test_request_with_a_framing_against_serve() -> None:
    with aiomsg_serve("length:4") as port:
        out = run_cli("request", "127.0.0.1", str(port), "--framing", "length:4", stdin=b"hello")
    assert (out.returncode, out.stdout, out.stderr) == (0, b"hello", b"")


def test_request_typed_against_serve() -> None:
    spec = "typed:1=8,2=length:2"
    with aiomsg_serve(spec) as port:
        out = run_cli("request", "127.0.0.1", str(port), "--framing", spec, stdin=b"\x02hello")
    assert (out.returncode, out.stdout) == (0, b"\x02hello")


def test_request_the_framing_cannot_carry() -> None:
    out = run_cli("request", "127.0.0.1", "7", "--framing", "fixed:4", stdin=b"hello")
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        "aiomsg request: the request (5 bytes) cannot be sent:"
        " FixedLength(4) cannot carry a message of 5 bytes\n"
    )


def test_request_to_a_server_that_closes_without_answering() -> None:
    def read_then_close(conn: socket.socket) -> None:
        while conn.recv(65536):
            pass

    with raw_server(read_then_close) as port:
        out = run_cli("request", "127.0.0.1", str(port), stdin=b"question")
    assert (out.returncode, out.stdout) == (1, b"")
    assert one_error_line(out.stderr) == (
        f"aiomsg request: 127.0.0.1:{port} closed the connection without answering"
        " (the server may use another framing than --framing eos)\n"
    )


def test_request_to_a_server_that_does_not_answer_in_time() -> None:
    done = threading.Event()

    def never_answer(conn: socket.socket) -> None:
        done.wait(30)

    try:
        with raw_server(never_answer) as port:
            out = run_cli("request", "127.0.0.1", str(port), "--timeout", "0.5", stdin=b"q")
            done.set()
    finally:
        done.set()
    assert (out.returncode, out.stdout) == (1, b"")
    assert one_error_line(out.stderr) == (
        f"aiomsg request: no answer from 127.0.0.1:{port} within 0.5 s\n"
    )


def test_request_to_nothing_listening() -> None:
    port = free_port()
    out = run_cli("request", "127.0.0.1", str(port), stdin=b"hello")
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        f"aiomsg request: cannot connect to 127.0.0.1:{port} (connection refused)\n"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_request_with_a_terminal_connects_before_reading_it() -> None:
    # Nothing is ever typed: the refused connection must be reported at once anyway.
    port = free_port()
    master, slave = pty.openpty()
    try:
        out = subprocess.run(
            aiomsg_cmd("request", "127.0.0.1", str(port)),
            stdin=slave,
            capture_output=True,
            timeout=30,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert out.returncode == 1
    assert one_error_line(out.stderr) == (
        f"aiomsg request: cannot connect to 127.0.0.1:{port} (connection refused)\n"
    )


def test_unknown_framing_spec_is_a_clear_error() -> None:
    out = subprocess.run(
        aiomsg_cmd("serve", "127.0.0.1", "0", "--framing", "morse"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == (
        "aiomsg serve: error: bad --framing 'morse': unknown framing 'morse'; expected one of "
        "lines, delimited:TEXT, length:WIDTH[:little], ascii:DIGITS, fixed:SIZE, netstring, "
        "varint, eos, typed:TYPE=BODY,..., "
        "field:WIDTH[:little][,offset=N][,adjust=N][,strip=N|field][,trailer=HEX]"
    )


@pytest.mark.parametrize("args", [[], ["127.0.0.1"], ["127.0.0.1", "port"]])
def test_blocking_front_example_without_host_and_port_prints_its_usage(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "examples/blocking_front.py", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == "usage: python examples/blocking_front.py HOST PORT [MESSAGE ...]\n"
