"""Helpers for testing your own protocol with aiomsg, in pytest or anywhere (asyncio, uvloop, trio).

``async with running_server(handler, aiomsg.Lines()) as (host, port): ...`` runs
``handler`` (which gets a :class:`~aiomsg.FramedStream`) as a server while the
block runs; ``connected(handler, framing)`` also connects a client to it.
``examples/testing_echo.py`` is a complete pytest module using each helper, on
asyncio and trio (the documentation's how-to "Test your protocol with
aiomsg.testing" explains it).

Everything runs on loopback, on a free port, and is stopped when the block ends.
:func:`running_unix_server` does the same on a Unix socket in a fresh temporary
directory, removed afterwards; ``connected(..., unix=True)`` connects through one.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from .anyio import (
    FramedStream,
    connect_framed,
    connect_framed_unix,
    serve_framed,
    serve_framed_unix,
)
from .framing import Framing

__all__ = ["connected", "running_server", "running_unix_server"]


@asynccontextmanager
async def running_server(
    handler: Callable[[FramedStream], Awaitable[None]],
    framing: Framing,
    *,
    host: str = "127.0.0.1",
    **kwargs: Any,
) -> AsyncIterator[tuple[str, int]]:
    """Run :func:`~aiomsg.serve_framed` with ``handler`` on a free port of ``host`` while the
    block runs; yield ``(host, port)``. ``kwargs`` go to ``serve_framed`` (``options=``,
    ``ssl_context=``...).

    On leaving the block the server is cancelled and its connections closed. An
    exception in the block propagates (wrapped by nothing).
    """
    async with anyio.create_task_group() as tg:
        serve = functools.partial(serve_framed, handler, host, 0, framing=framing, **kwargs)
        port = await tg.start(serve)
        try:
            yield host, port
        finally:
            tg.cancel_scope.cancel()


@asynccontextmanager
async def running_unix_server(
    handler: Callable[[FramedStream], Awaitable[None]], framing: Framing, **kwargs: Any
) -> AsyncIterator[str]:
    """Run :func:`~aiomsg.serve_framed_unix` with ``handler`` on a Unix socket while the block
    runs; yield the socket's path. ``kwargs`` go to ``serve_framed_unix`` (``options=``...).

    The socket lives in a new private temporary directory (short, so that the
    path fits the ~100-byte limit of Unix socket addresses), which is removed
    with everything in it when the block ends, after the server is stopped.
    Connect with :func:`~aiomsg.connect_framed_unix`, :func:`~aiomsg.connect_unix`
    or any Unix-socket client. Raises :class:`OSError` where Unix sockets do not
    exist (Windows).
    """
    directory = tempfile.mkdtemp(prefix="aiomsg-")
    try:
        path = os.path.join(directory, "socket")
        async with anyio.create_task_group() as tg:
            serve = functools.partial(serve_framed_unix, handler, path, framing=framing, **kwargs)
            await tg.start(serve)
            try:
                yield path
            finally:
                tg.cancel_scope.cancel()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def connected(
    handler: Callable[[FramedStream], Awaitable[None]],
    framing: Framing,
    *,
    unix: bool = False,
    **kwargs: Any,
) -> AsyncIterator[FramedStream]:
    """A :func:`running_server` (with ``unix=True``, a :func:`running_unix_server`) with one
    client already connected to it; yield the client. ``kwargs`` go to the server only
    (``options=`` sets the server's limits; the client has the defaults).

    The client is closed, then the server stopped, when the block ends.
    """
    if unix:
        async with (
            running_unix_server(handler, framing, **kwargs) as path,
            connect_framed_unix(path, framing=framing) as client,
        ):
            yield client
        return
    async with (
        running_server(handler, framing, **kwargs) as (host, port),
        connect_framed(host, port, framing=framing) as client,
    ):
        yield client
