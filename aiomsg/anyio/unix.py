"""Unix sockets for the anyio front: :func:`connect_framed_unix` and :func:`serve_framed_unix`.

The twins of ``connect_framed`` / ``serve_framed``: on asyncio they run on
aiomsg's own transport protocol (the Streams front's ``connect_unix`` /
``serve_unix``, bounded memory), on trio on anyio's Unix streams.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener, TaskStatus

from .._opening import Opening
from .._proxy_accept import (
    DEFAULT_PROXY_MAX_PENDING,
    DEFAULT_PROXY_TIMEOUT,
    ProxyTrusted,
    proxy_settings,
)
from .._unix_socket import DEFAULT_UNIX_MODE, bind_unix
from ..asyncio.client import connect_unix
from ..asyncio.connection import Connection
from ..asyncio.server import serve_unix
from ..framing import Framing
from ..framing.proxy_protocol import ProxyVersion
from ..options import Options, resolve_options
from ._accepting import GuardedListener
from ._draining import Drain
from .framed_stream import FramedStream
from .on_asyncio import ConnectionFramedStream
from .tcp import _on_asyncio, _serve_one

__all__ = ["connect_framed_unix", "serve_framed_unix"]


def connect_framed_unix(
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    options: Options | None = None,
    **deprecated: Any,
) -> Opening[FramedStream]:
    """Connect to the Unix socket at ``path`` and frame the stream with ``framing``:
    ``async with connect_framed_unix(...) as stream`` or ``await connect_framed_unix(...)``.

    ``options`` are those of :func:`~aiomsg.connect_framed` (keepalive aside).

    Raises:
        OSError: the connection failed (``FileNotFoundError`` when nothing is at
            ``path``, ``ConnectionRefusedError`` when nothing listens there).
        TimeoutError: no connection within ``connect_timeout``.
        ValueError: a heartbeat the framing cannot carry; raised by this call.
    """
    chosen = resolve_options("connect_framed_unix", options, framing, deprecated, strict=True)
    return Opening(_connect_framed_unix(os.fspath(path), framing, chosen))


async def _connect_framed_unix(path: str, framing: Framing, options: Options) -> FramedStream:
    if _on_asyncio():
        return ConnectionFramedStream(await connect_unix(path, framing=framing, options=options))
    with anyio.fail_after(options.connect_timeout):
        stream = await anyio.connect_unix(path)
    from .on_trio import framed_on_trio  # imports trio: only here, on trio

    return framed_on_trio(stream, framing, options)


async def serve_framed_unix(
    handler: Callable[[FramedStream], Awaitable[None]],
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    options: Options | None = None,
    mode: int = DEFAULT_UNIX_MODE,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
    shutdown: anyio.Event | None = None,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    **deprecated: Any,
) -> None:
    """Serve framed connections on a Unix socket at ``path`` until cancelled, in a task group.

    ``await tg.start(functools.partial(serve_framed_unix, handler, path,
    framing=...))`` returns ``path`` (as a string) once the server listens.
    Each client runs ``handler(stream)`` in a task of its own, as with
    :func:`serve_framed`: whatever one client does is logged once and ends
    that connection only, and running out of file descriptors pauses accepting
    (see :func:`~aiomsg.serve_framed`). ``options`` are those of
    :func:`~aiomsg.serve_framed`; setting ``shutdown`` drains the server as there.

    The socket file is created with permissions ``mode`` (default ``0o660``: its
    owner and group may connect), with no moment in which it has others, and is
    removed when the server stops (if it is still the file this server made), on
    every backend alike. Before it listens it raises what :func:`aiomsg.serve_unix`
    raises: :class:`~aiomsg.UnixSocketInUseError` when a server answers at ``path``
    (a stale socket is replaced), :class:`FileExistsError` when something else is
    there, ``ValueError`` for a ``mode`` that is not permission bits, and
    :class:`OSError` when the socket cannot be made.

    The PROXY keywords are those of :func:`aiomsg.serve_unix`
    (``proxy_trusted=["unix"]``: every peer of the socket may send a header).
    """
    proxy = proxy_settings(
        proxy_protocol, proxy_trusted, proxy_timeout, proxy_max_pending, unix=True
    )
    chosen = resolve_options("serve_framed_unix", options, framing, deprecated, strict=True)
    where = os.fspath(path)
    if _on_asyncio():

        async def run(conn: Connection) -> None:
            await _serve_one(handler, ConnectionFramedStream(conn), conn.remote_address or where)

        proxied: dict[str, Any] = {}
        if proxy is not None:
            proxied = {
                "proxy_protocol": proxy.version,
                "proxy_trusted": ["unix"],
                "proxy_timeout": proxy.timeout,
                "proxy_max_pending": proxy.max_pending,
            }
        async with serve_unix(
            run, where, framing=framing, options=chosen, mode=mode, **proxied
        ) as server:
            task_status.started(where)
            if shutdown is None:
                await anyio.sleep_forever()
            else:
                await shutdown.wait()
                await server.drain()
        return

    from .on_trio import framed_on_trio  # imports trio: only here, on trio

    drain = Drain(chosen) if shutdown is not None else None

    async def run_stream(stream: ByteStream) -> None:
        peer = stream.extra(SocketAttribute.remote_address, None) if proxy else None
        if drain is None:
            await _serve_one(handler, framed_on_trio(stream, framing, chosen), peer or where)
            return
        async with drain.serving(stream, lambda s: framed_on_trio(s, framing, chosen)) as f:
            await _serve_one(handler, f, peer or where)

    sock, created = bind_unix(where, mode=mode, backlog=chosen.backlog)
    try:
        raw = await SocketListener.from_socket(sock)
    except BaseException:
        created.remove()
        sock.close()
        raise
    async with GuardedListener(raw, created.path, on_close=created.remove, proxy=proxy) as listener:
        task_status.started(where)
        if shutdown is None or drain is None:
            await listener.serve(run_stream)
        else:
            await drain.serve(listener, run_stream, shutdown)
