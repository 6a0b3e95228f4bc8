"""What every Unix-socket server does with its socket file: serve_unix and serve_requests_unix
(asyncio, uvloop), serve_framed_unix (asyncio, uvloop, trio). A live server's socket is refused,
a stale one replaced, any other file refused with what it is; the file gets ``mode`` whatever
the umask, and is removed on close only if it is still this server's."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

import aiomsg
from aiomsg._unix_socket import UnixSocketInUseError

ASYNCIO_KINDS = ["serve_unix", "serve_requests_unix"]
FRAMING = aiomsg.Lines()


async def echo(conn: aiomsg.Connection) -> None:
    async for message in conn:
        await conn.send(message)


async def echo_stream(stream: aiomsg.FramedStream) -> None:
    async for message in stream:
        await stream.send(message)


@contextlib.asynccontextmanager
async def running(kind: str, path: str, **kwargs: Any) -> AsyncIterator[None]:
    """A server of ``kind`` on ``path`` while the block runs."""
    if kind == "serve_unix":
        async with aiomsg.serve_unix(echo, path, framing=FRAMING, **kwargs):
            yield
    elif kind == "serve_requests_unix":
        async with aiomsg.serve_requests_unix(bytes.upper, path, **kwargs):
            yield
    else:
        async with anyio.create_task_group() as tg:
            await tg.start(
                functools.partial(
                    aiomsg.serve_framed_unix, echo_stream, path, framing=FRAMING, **kwargs
                )
            )
            yield
            tg.cancel_scope.cancel()


async def answers(kind: str, path: str) -> bool:
    """Whether the server of ``kind`` at ``path`` serves a new client."""
    if kind == "serve_requests_unix":
        return await aiomsg.request_unix(path, b"ping", timeout=30) == b"PING"
    with anyio.fail_after(30):
        stream = await anyio.connect_unix(path)
        async with stream:
            await stream.send(b"ping\n")
            answer = b""
            while not answer.endswith(b"\n"):
                answer += await stream.receive()
    return answer == b"ping\n"


async def start_error(kind: str, path: str, **kwargs: Any) -> BaseException:
    """The error a server of ``kind`` raises when it starts on ``path``."""
    try:
        async with running(kind, path, **kwargs):
            pass
    except BaseException as exc:  # an ExceptionGroup from a task group too
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        return exc
    pytest.fail(f"{kind} started on {path!r}")


@contextlib.contextmanager
def folder() -> Iterator[str]:
    with tempfile.TemporaryDirectory(dir="/tmp") as name:  # short: socket paths are limited
        yield name


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def listening_at(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    return sock


async def check_refuses_a_live_server(kind: str) -> None:
    with folder() as where:
        path = f"{where}/s"
        with listening_at(path) as live:
            error = await start_error(kind, path)
            assert isinstance(error, UnixSocketInUseError), repr(error)
            assert isinstance(error, OSError) and error.errno == errno.EADDRINUSE
            assert repr(path) in str(error) and "a server is listening there" in str(error)
            # The live server's socket is still its own: a client reaches it.
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(path)
                live.accept()[0].close()
        # And an aiomsg server of the same kind is not replaced either.
        async with running(kind, path):
            error = await start_error(kind, path)
            assert isinstance(error, UnixSocketInUseError), repr(error)
            assert await answers(kind, path)


async def check_replaces_a_stale_socket(kind: str) -> None:
    with folder() as where:
        path = f"{where}/s"
        listening_at(path).close()  # its file stays: a socket nobody listens on
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        async with running(kind, path):
            assert await answers(kind, path)


async def check_refuses_other_files(kind: str) -> None:
    with folder() as where:
        path = f"{where}/s"
        with open(path, "w") as file:
            file.write("keep me")
        error = await start_error(kind, path)
        assert isinstance(error, FileExistsError), repr(error)
        assert "a regular file is there, not a socket" in str(error) and repr(path) in str(error)
        with open(path) as file:
            assert file.read() == "keep me"
        os.unlink(path)
        os.mkdir(path)
        error = await start_error(kind, path)
        assert isinstance(error, FileExistsError), repr(error)
        assert "a directory is there, not a socket" in str(error)
        assert os.path.isdir(path)


async def check_mode_and_removal(kind: str) -> None:
    with folder() as where, umask(0):  # the umask would give 0o777: mode decides
        path = f"{where}/s"
        async with running(kind, path):
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660
            assert sorted(os.listdir(where)) == ["s"]  # no private directory left behind
            assert await answers(kind, path)
        assert not os.path.lexists(path)
        async with running(kind, path, mode=0o600):
            assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert not os.path.lexists(path)
        error = await start_error(kind, path, mode=0o1777)
        assert isinstance(error, ValueError) and "0o777" in str(error)


async def check_keeps_a_successors_file(kind: str) -> None:
    with folder() as where:
        path = f"{where}/s"
        async with running(kind, path):
            os.unlink(path)  # an operator removed it, and another server took the path
            successor = listening_at(path)
        with successor:
            assert stat.S_ISSOCK(os.lstat(path).st_mode)  # not removed: not this server's
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(path)


CHECKS = [
    check_refuses_a_live_server,
    check_replaces_a_stale_socket,
    check_refuses_other_files,
    check_mode_and_removal,
    check_keeps_a_successors_file,
]
IDS = [check.__name__.removeprefix("check_") for check in CHECKS]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ASYNCIO_KINDS)
@pytest.mark.parametrize("check", CHECKS, ids=IDS)
async def test_asyncio_unix_servers(kind: str, check: Any) -> None:
    await check(kind)


@pytest.mark.anyio
@pytest.mark.parametrize("check", CHECKS, ids=IDS)
async def test_serve_framed_unix(check: Any) -> None:
    await check("serve_framed_unix")
