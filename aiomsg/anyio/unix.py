"""Unix sockets for the anyio front: :func:`connect_framed_unix` and :func:`serve_framed_unix`.

The twins of ``connect_framed`` / ``serve_framed``: on asyncio they run on
aiomsg's own transport protocol (the Streams front's ``connect_unix`` /
``serve_unix``, bounded memory), on trio on anyio's Unix streams.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import ByteStream, TaskStatus

from .._heartbeat import heartbeat_settings
from ..asyncio.client import connect_unix
from ..asyncio.connection import Connection
from ..asyncio.server import serve_unix
from ..framing import Framing
from ..limits import DEFAULT_BACKLOG, DEFAULT_MESSAGE_TIMEOUT, DEFAULT_READ_SIZE
from .framed_stream import FramedStream
from .on_asyncio import ConnectionFramedStream
from .tcp import _on_asyncio, _serve_one

__all__ = ["connect_framed_unix", "serve_framed_unix"]


async def connect_framed_unix(
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    read_size: int = DEFAULT_READ_SIZE,
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
    idle_timeout: float | None = None,
    heartbeat: float | None = None,
    heartbeat_timeout: float | None = None,
) -> FramedStream:
    """Connect to the Unix socket at ``path`` and frame the stream with ``framing``.

    The limits and the heartbeat are those of :func:`~aiomsg.connect_framed`.
    Raises :class:`OSError` if the connection fails (``FileNotFoundError`` when
    nothing is at ``path``, ``ConnectionRefusedError`` when nothing listens
    there), :class:`ValueError` before connecting for a heartbeat the framing
    cannot carry.
    """
    heartbeat_settings(framing, heartbeat, heartbeat_timeout)
    if _on_asyncio():
        conn = await connect_unix(
            path,
            framing=framing,
            read_size=read_size,
            message_timeout=message_timeout,
            idle_timeout=idle_timeout,
            heartbeat=heartbeat,
            heartbeat_timeout=heartbeat_timeout,
        )
        return ConnectionFramedStream(conn)
    stream = await anyio.connect_unix(os.fspath(path))
    return FramedStream(
        stream,
        framing,
        read_size=read_size,
        message_timeout=message_timeout,
        idle_timeout=idle_timeout,
        heartbeat=heartbeat,
        heartbeat_timeout=heartbeat_timeout,
    )


async def serve_framed_unix(
    handler: Callable[[FramedStream], Awaitable[None]],
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    read_size: int = DEFAULT_READ_SIZE,
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
    idle_timeout: float | None = None,
    heartbeat: float | None = None,
    heartbeat_timeout: float | None = None,
    backlog: int = DEFAULT_BACKLOG,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve framed connections on a Unix socket at ``path`` until cancelled, in a task group.

    ``await tg.start(functools.partial(serve_framed_unix, handler, path,
    framing=...))`` returns ``path`` (as a string) once the server listens.
    Each client runs ``handler(stream)`` in a task of its own, as with
    :func:`serve_framed`: whatever one client does is logged once and ends
    that connection only. The socket file is created (a stale socket file at
    ``path`` is replaced, as asyncio and anyio do; any other file there is an
    :class:`OSError`) and is left in place afterwards: remove it, or its
    directory, yourself (``aiomsg.testing.running_unix_server`` does). The
    limits and the heartbeat are those of :func:`~aiomsg.serve_framed`.
    """
    heartbeat_settings(framing, heartbeat, heartbeat_timeout)  # refuse now, not per client
    where = os.fspath(path)
    if _on_asyncio():

        async def run(conn: Connection) -> None:
            await _serve_one(handler, ConnectionFramedStream(conn), where)

        server = serve_unix(
            run,
            where,
            framing=framing,
            read_size=read_size,
            message_timeout=message_timeout,
            idle_timeout=idle_timeout,
            heartbeat=heartbeat,
            heartbeat_timeout=heartbeat_timeout,
            backlog=backlog,
        )
        async with server:
            task_status.started(where)
            await anyio.sleep_forever()
        return

    async def run_stream(stream: ByteStream) -> None:
        framed = FramedStream(
            stream,
            framing,
            read_size=read_size,
            message_timeout=message_timeout,
            idle_timeout=idle_timeout,
            heartbeat=heartbeat,
            heartbeat_timeout=heartbeat_timeout,
        )
        await _serve_one(handler, framed, where)

    async with await anyio.create_unix_listener(where, backlog=backlog) as listener:
        task_status.started(where)
        await listener.serve(run_stream)
