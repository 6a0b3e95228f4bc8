"""The examples, run as a user would: a real process, real clients."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def kv_server() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "kv_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "key-value store on 127.0.0.1:PORT (uvloop)"
        yield int(line.split(":")[1].split()[0])
    finally:
        proc.terminate()
        proc.wait(10)


def nc(port: int, request: bytes) -> bytes:
    netcat = shutil.which("nc")
    assert netcat, "netcat-openbsd is required (.ci/run installs it)"
    return subprocess.run(
        [netcat, "-N", "127.0.0.1", str(port)], input=request, capture_output=True, timeout=30
    ).stdout


def test_kv_server_with_netcat(kv_server: int) -> None:
    assert nc(kv_server, b"GET colour") == b"ERROR no such key\n"
    assert nc(kv_server, b"SET colour blue") == b"OK\n"
    assert nc(kv_server, b"GET colour") == b"blue"
    assert nc(kv_server, b"DEL colour") == b"OK\n"
    assert nc(kv_server, b"GET colour") == b"ERROR no such key\n"
    assert nc(kv_server, b"FLY away").startswith(b"ERROR")


def test_kv_server_with_the_request_function(kv_server: int) -> None:
    import asyncio

    import aiomsg

    async def talk() -> list[bytes]:
        await aiomsg.request("127.0.0.1", kv_server, b"SET k " + json.dumps([1, 2]).encode())
        return [await aiomsg.request("127.0.0.1", kv_server, b"GET k")]

    assert asyncio.run(talk()) == [b"[1, 2]"]
