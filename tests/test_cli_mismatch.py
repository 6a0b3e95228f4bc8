"""A framing mismatch gets a hint: ``aiomsg connect`` and ``aiomsg request`` against real
aiomsg servers of another framing say "(the server may use another framing than --framing
SPEC)" when the first bytes do not parse, when the server closes inside the first message
or resets, and when it closes without answering; ``aiomsg serve`` says the same of a client.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import aiomsg

from .test_cli import aiomsg_serve, one_error_line, run_cli, run_cli_stdin_open
from .test_cli_quiet import readline_within, rest_of, send_framed, server_process, started


def hint(spec: str, peer: str = "server") -> str:
    return f"(the {peer} may use another framing than --framing {spec})"


@pytest.mark.parametrize(
    ("server", "command", "spec", "status"),
    [
        # The length:4 server reads "hell" as a length far over its limit and closes.
        ("length:4", "connect", "lines", 0),  # connect: a server may close without answering
        ("length:4", "request", "lines", 1),  # request: an answer is the point
        # The lines server never sees a newline: the message is cut short by the half-close.
        ("lines", "connect", "length:4", 0),
        ("lines", "request", "eos", 1),
    ],
)
def test_a_server_of_another_framing_closing_without_answering_gets_the_hint(
    server: str, command: str, spec: str, status: int
) -> None:
    stdin = b"hello\n" if command == "connect" else b"hello"
    with aiomsg_serve(server) as port:
        out = run_cli(command, "127.0.0.1", str(port), "--framing", spec, stdin=stdin)
    assert (out.returncode, out.stdout) == (status, b"")
    assert one_error_line(out.stderr) == (
        f"aiomsg {command}: 127.0.0.1:{port} closed the connection without answering {hint(spec)}\n"
    )


def test_quiet_connect_keeps_the_no_answer_notice_to_itself() -> None:
    # What a server that only listens (serve --mode print) does on purpose.
    with aiomsg_serve("lines", "--mode", "print") as port:
        out = run_cli(
            "connect", "127.0.0.1", str(port), "--framing", "lines", "-q", stdin=b"hello\n"
        )
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")


def test_connect_to_a_server_that_speaks_first_in_another_framing() -> None:
    # The chat server's welcome line, read as a 4-byte length ("* we"): far too large.
    # stdin stays open: a client that half-closes at once may not get the welcome.
    with server_process("chat-server", "--port", "0") as proc:
        port = started(proc)
        returncode, stdout, stderr = run_cli_stdin_open(
            "connect", "127.0.0.1", str(port), "--framing", "length:4"
        )
    assert (returncode, stdout) == (1, b"")
    line = one_error_line(stderr)
    assert line.startswith(f"aiomsg connect: 127.0.0.1:{port} sent a message over the size limit")
    assert line.endswith(f" {hint('length:4')}\n")


def test_connect_notices_bytes_that_never_made_a_message() -> None:
    # length:4 of b"a\nb" is 00000003 61 0a 62: the lines server echoes its first "line"
    # (00000003 61) plus a newline, the header and 2 bytes of a 3-byte body, and drops
    # the unfinished "b" at the half-close: 6 bytes arrive that never make a message.
    with aiomsg_serve("lines") as port:
        hex_input = ["--framing", "length:4", "--input", "hex"]
        out = run_cli("connect", "127.0.0.1", str(port), *hex_input, stdin=b"610a62\n")
    assert (out.returncode, out.stdout) == (1, b"")
    assert one_error_line(out.stderr) == (
        f"aiomsg connect: 127.0.0.1:{port} closed the connection in the middle of a message "
        f"(6 bytes of it had arrived) {hint('length:4')}\n"
    )


def test_request_whose_answer_does_not_parse_says_so() -> None:
    # The key-value example answers raw text ("ERROR ..."), read here as a 4-byte length.
    server = subprocess.Popen(
        [sys.executable, "examples/kv_server.py", "--port", "0"],
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    try:
        port = readline_within(server.stdout).decode().split("127.0.0.1:")[1].split()[0]
        out = run_cli("request", "127.0.0.1", port, "--framing", "length:4", stdin=b"GET x")
    finally:
        server.terminate()
        server.wait(10)
        assert server.stdout is not None
        server.stdout.close()
    assert (out.returncode, out.stdout) == (1, b"")
    line = one_error_line(out.stderr)
    assert line.startswith(f"aiomsg request: 127.0.0.1:{port} sent a message over the size limit")
    assert line.endswith(f" {hint('length:4')}\n")


def test_matching_framings_get_no_hint() -> None:
    with aiomsg_serve("netstring") as port:
        connect = run_cli("connect", "127.0.0.1", str(port), "--framing", "netstring", stdin=b"a\n")
        request = run_cli("request", "127.0.0.1", str(port), "--framing", "netstring", stdin=b"q")
    assert (connect.returncode, connect.stdout, connect.stderr) == (0, b"a\n", b"")
    assert (request.returncode, request.stdout, request.stderr) == (0, b"q", b"")


def test_serve_says_a_client_may_use_another_framing() -> None:
    with server_process("serve", "127.0.0.1", "0", "--framing", "netstring") as proc:
        port = started(proc)
        client, back = send_framed(port, aiomsg.LengthPrefixed(4), b"hello")
        assert back == b""
        line = rest_of(proc, proc.stderr).decode()
    assert line.startswith(f"aiomsg serve: 127.0.0.1:{client} broke the framing (")
    assert line.endswith(f" {hint('netstring', 'client')}\n")
    assert line.count("\n") == 1
