"""The ``aiomsg`` command: ``serve`` with any framing spec, ``request``, ``--help``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

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
    ],
)
def test_framing_specs(spec: str, expected: aiomsg.Framing) -> None:
    assert repr(parse_framing(spec)) == repr(expected)


@pytest.mark.parametrize("spec", ["", "length", "length:3", "fixed:x", "morse", "lines:1"])
def test_bad_framing_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_framing(spec)


def aiomsg_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "aiomsg", *args]


@pytest.fixture
def netstring_server() -> Iterator[int]:
    proc = subprocess.Popen(
        aiomsg_cmd("serve", "127.0.0.1", "0", "--framing", "netstring"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = (
            proc.stderr.readline()
        )  # "echo server, Netstring(...), on 127.0.0.1:PORT, event loop X"
        assert "event loop" in line
        yield int(line.split("127.0.0.1:")[1].split(",")[0])
    finally:
        proc.terminate()
        proc.wait(10)


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
        assert out.stdout == b"OK\n"
        assert b"event loop" in out.stderr
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("command", ["chat-server", "chat", "request", "serve", "demo"])
def test_every_command_has_help(command: str) -> None:
    out = subprocess.run(aiomsg_cmd(command, "--help"), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout.startswith(f"usage: aiomsg {command}")


def test_unknown_framing_spec_is_a_clear_error() -> None:
    out = subprocess.run(
        aiomsg_cmd("serve", "127.0.0.1", "0", "--framing", "morse"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "unknown framing spec 'morse'" in out.stderr
