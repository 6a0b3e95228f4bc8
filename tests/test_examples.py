"""The examples, run as a user would: a real process, real clients."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aiomsg

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


# --- the blocking-socket front of docs/architecture.md ------------------------------------

BLOCKING_FRONT = ROOT / "examples" / "blocking_front.py"


def load_blocking_front() -> Any:
    spec = importlib.util.spec_from_file_location("blocking_front", BLOCKING_FRONT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def echo(conn: aiomsg.Connection) -> None:
    async for message in conn:
        await conn.send(message)


@pytest.mark.asyncio
async def test_blocking_front_script_against_an_aiomsg_server() -> None:
    framing = aiomsg.LengthPrefixed(4)
    messages = ["hello", "world", "x" * 100_000]
    async with aiomsg.serve(echo, "127.0.0.1", 0, framing=framing) as server:
        command = [sys.executable, str(BLOCKING_FRONT), "127.0.0.1", str(server.port), *messages]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == messages


@pytest.mark.asyncio
async def test_blocking_front_keeps_leftovers_and_reports_a_cut_message() -> None:
    framing = aiomsg.LengthPrefixed(4)
    wire = framing.encode_many([b"one", b"two" * 1000, b"three"]) + framing.encode(b"cut")[:5]

    async def trickle(conn: aiomsg.Connection) -> None:
        assert conn.transport is not None
        for i in range(0, len(wire), 7):  # half headers, bodies across reads
            conn.transport.write(wire[i : i + 7])
            await asyncio.sleep(0)

    front = load_blocking_front()

    def client(port: int) -> tuple[list[bytes], BaseException | None]:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        framed = front.BlockingFramedSocket(sock, framing, read_size=16)
        got: list[bytes] = []
        try:
            while (message := framed.receive()) is not None:
                got.append(message)
        except aiomsg.IncompleteMessageError as exc:
            return got, exc
        finally:
            framed.close()
        return got, None

    async with aiomsg.serve(trickle, "127.0.0.1", 0, framing=framing) as server:
        got, error = await asyncio.to_thread(client, server.port)
    assert got == [b"one", b"two" * 1000, b"three"]
    assert isinstance(error, aiomsg.IncompleteMessageError)
    assert error.partial == framing.encode(b"cut")[:5]
