"""TCP for the anyio front: :func:`connect_framed` and :func:`serve_framed`.

On asyncio they run on aiomsg's own transport protocol (the Streams front)
instead of anyio's socket streams: its reading stops while the application is
behind, so memory stays bounded whatever the peer does (anyio 4's asyncio
sockets read on into a queue without bound), and a read costs fewer Python
calls. On trio they use anyio's streams, which read only when asked.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskStatus
from anyio.streams.tls import TLSListener

from .._connection_end import log_connection_end
from .._heartbeat import heartbeat_settings
from .._socket_options import enable_keepalive, reset_on_close
from ..asyncio.client import connect
from ..asyncio.connection import Connection
from ..asyncio.server import serve
from ..framing import Framing
from ..limits import (
    DEFAULT_BACKLOG,
    DEFAULT_KEEPALIVE,
    DEFAULT_MESSAGE_TIMEOUT,
    DEFAULT_READ_SIZE,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
)
from .framed_stream import FramedStream
from .on_asyncio import ConnectionFramedStream

__all__ = ["connect_framed", "serve_framed"]

logger = logging.getLogger("aiomsg")

# How a peer can end an anyio stream without anyone's code being wrong.
_ANYIO_ORDINARY: tuple[type[BaseException], ...] = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
)


def _on_asyncio() -> bool:
    """Whether the caller runs on asyncio (uvloop included), as anyio itself tells."""
    try:
        import sniffio
    except ImportError:  # no trio either (trio needs sniffio): asyncio it is
        return True
    return sniffio.current_async_library() == "asyncio"


async def connect_framed(
    remote_host: str,
    remote_port: int,
    *,
    framing: Framing,
    tls: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    tls_hostname: str | None = None,
    read_size: int = DEFAULT_READ_SIZE,
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
    idle_timeout: float | None = None,
    heartbeat: float | None = None,
    heartbeat_timeout: float | None = None,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    **kwargs: Any,
) -> FramedStream:
    """Connect over TCP (TLS with ``tls`` or ``ssl_context``) and frame the stream.

    On asyncio the connection runs on aiomsg's transport protocol (bounded
    reads; ``tls_standard_compatible`` does not apply: asyncio always sends
    close_notify and accepts a peer that does not); on trio, on
    :func:`anyio.connect_tcp` (with ``kwargs`` passed on). The limits are those
    of :class:`FramedStream`; ``keepalive`` as for :func:`aiomsg.connect`. With
    ``heartbeat`` on asyncio, heartbeats go out and silence is timed whether or
    not a task is receiving (aiomsg's transport keeps the clocks); on trio, while
    one is (see :class:`FramedStream`).

    Raises :class:`OSError` if the connection fails (and ``ssl.SSLError`` for a
    failed TLS handshake); :class:`ValueError` before connecting for a heartbeat
    the framing cannot carry.
    """
    heartbeat_settings(framing, heartbeat, heartbeat_timeout)  # refuse before connecting
    if tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    if _on_asyncio():
        conn = await connect(
            remote_host,
            remote_port,
            framing=framing,
            ssl=ssl_context,
            server_hostname=(tls_hostname or remote_host) if ssl_context is not None else None,
            read_size=read_size,
            message_timeout=message_timeout,
            idle_timeout=idle_timeout,
            heartbeat=heartbeat,
            heartbeat_timeout=heartbeat_timeout,
            keepalive=keepalive,
            **kwargs,
        )
        return ConnectionFramedStream(conn)
    stream: ByteStream
    if ssl_context is not None:
        stream = await anyio.connect_tcp(
            remote_host,
            remote_port,
            tls=True,
            ssl_context=ssl_context,
            tls_standard_compatible=tls_standard_compatible,
            tls_hostname=tls_hostname,
            **kwargs,
        )
    else:
        stream = await anyio.connect_tcp(remote_host, remote_port, **kwargs)
    if keepalive is not None:
        enable_keepalive(stream.extra(SocketAttribute.raw_socket), keepalive)
    return FramedStream(
        stream,
        framing,
        read_size=read_size,
        message_timeout=message_timeout,
        idle_timeout=idle_timeout,
        heartbeat=heartbeat,
        heartbeat_timeout=heartbeat_timeout,
    )


class _QuietTLSListener(TLSListener):
    """A TLSListener that logs a failed handshake (a port scanner, a plaintext client,
    a client that gave up) at DEBUG level, not as an ERROR with a traceback."""

    @staticmethod
    async def handle_handshake_error(exc: BaseException, stream: anyio.abc.AnyByteStream) -> None:
        await anyio.aclose_forcefully(stream)
        if not isinstance(exc, Exception) or isinstance(exc, anyio.get_cancelled_exc_class()):
            raise exc
        logger.debug("TLS handshake failed: %r", exc)


async def _serve_one(
    handler: Callable[[FramedStream], Awaitable[None]], framed: FramedStream, peer: Any
) -> None:
    """Run ``handler`` for one connection; whatever happens, the server goes on."""
    try:
        await handler(framed)
    except Exception as exc:
        if log_connection_end(exc, peer, _ANYIO_ORDINARY):
            # A failed handler: the close below is a reset, not what looks like an answer.
            reset_on_close(framed.extra(SocketAttribute.raw_socket, None))
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await framed.aclose()
            except Exception as exc:  # e.g. a TLS peer that left without close_notify
                log_connection_end(exc, peer, _ANYIO_ORDINARY)


async def serve_framed(
    handler: Callable[[FramedStream], Awaitable[None]],
    local_host: str | None = None,
    local_port: int = 0,
    *,
    framing: Framing,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    ssl_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    read_size: int = DEFAULT_READ_SIZE,
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
    idle_timeout: float | None = None,
    heartbeat: float | None = None,
    heartbeat_timeout: float | None = None,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    backlog: int = DEFAULT_BACKLOG,
    reuse_port: bool = False,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve framed TCP connections until cancelled; use it inside a task group.

    ``await tg.start(functools.partial(serve_framed, handler, "127.0.0.1", 0,
    framing=...))`` returns the bound port once the server listens. Each client
    runs ``handler(stream)`` in a task of its own; the stream is closed when the
    handler returns. Whatever one client does (reset, TLS without close_notify,
    a failed handshake, bad framing) and whatever its handler raises is logged
    once and ends that connection only, never the server.

    ``ssl_context`` serves TLS; a client must finish its handshake within
    ``ssl_handshake_timeout`` seconds. The per-connection limits are those of
    :class:`FramedStream` and :func:`aiomsg.serve`. On asyncio the server runs
    on aiomsg's transport protocol (see :func:`connect_framed`); on trio, on
    anyio's listener (``tls_standard_compatible`` goes to its TLSListener).
    ``reuse_port`` sets ``SO_REUSEPORT`` (Linux, BSD): several processes may
    listen on one port and the kernel spreads the connections over them.
    The heartbeat is :func:`connect_framed`'s (``ValueError`` before listening
    for one the framing cannot carry).
    """
    heartbeat_settings(framing, heartbeat, heartbeat_timeout)  # refuse now, not per client
    if _on_asyncio():
        await _serve_framed_asyncio(
            handler,
            local_host,
            local_port,
            framing=framing,
            ssl_context=ssl_context,
            ssl_handshake_timeout=ssl_handshake_timeout,
            read_size=read_size,
            message_timeout=message_timeout,
            idle_timeout=idle_timeout,
            heartbeat=heartbeat,
            heartbeat_timeout=heartbeat_timeout,
            keepalive=keepalive,
            backlog=backlog,
            reuse_port=reuse_port,
            task_status=task_status,
        )
        return
    listener: Any = await anyio.create_tcp_listener(
        local_host=local_host, local_port=local_port, backlog=backlog, reuse_port=reuse_port
    )
    port = listener.extra(SocketAttribute.local_port)
    if ssl_context is not None:
        listener = _QuietTLSListener(
            listener,
            ssl_context,
            standard_compatible=tls_standard_compatible,
            handshake_timeout=ssl_handshake_timeout,
        )

    async def run(stream: ByteStream) -> None:
        peer = stream.extra(SocketAttribute.remote_address, None)
        if keepalive is not None:
            enable_keepalive(stream.extra(SocketAttribute.raw_socket), keepalive)
        framed = FramedStream(
            stream,
            framing,
            read_size=read_size,
            message_timeout=message_timeout,
            idle_timeout=idle_timeout,
            heartbeat=heartbeat,
            heartbeat_timeout=heartbeat_timeout,
        )
        await _serve_one(handler, framed, peer)

    async with listener:
        task_status.started(port)
        await listener.serve(run)


async def _serve_framed_asyncio(
    handler: Callable[[FramedStream], Awaitable[None]],
    local_host: str | None,
    local_port: int,
    *,
    framing: Framing,
    ssl_context: ssl.SSLContext | None,
    ssl_handshake_timeout: float,
    read_size: int,
    message_timeout: float | None,
    idle_timeout: float | None,
    heartbeat: float | None,
    heartbeat_timeout: float | None,
    keepalive: float | None,
    backlog: int,
    reuse_port: bool,
    task_status: TaskStatus[int],
) -> None:
    async def run(conn: Connection) -> None:
        await _serve_one(handler, ConnectionFramedStream(conn), conn.remote_address)

    where: dict[str, Any] = {"host": local_host, "port": local_port}
    if local_host is None:
        # One socket for IPv4 and IPv6 where possible, so that port 0 gives one
        # port (as anyio's listener does), not one per address family.
        if socket.has_dualstack_ipv6():
            sock = socket.create_server(
                ("", local_port),
                family=socket.AF_INET6,
                dualstack_ipv6=True,
                backlog=backlog,
                reuse_port=reuse_port,
            )
        else:
            sock = socket.create_server(("", local_port), backlog=backlog, reuse_port=reuse_port)
        where.update(host=None, port=None, sock=sock)
    elif reuse_port:
        where.update(reuse_port=True)
    if ssl_context is not None:
        where.update(ssl=ssl_context, ssl_handshake_timeout=ssl_handshake_timeout)
    server = serve(
        run,
        framing=framing,
        read_size=read_size,
        message_timeout=message_timeout,
        idle_timeout=idle_timeout,
        heartbeat=heartbeat,
        heartbeat_timeout=heartbeat_timeout,
        keepalive=keepalive,
        backlog=backlog,
        **where,
    )
    async with server:
        task_status.started(server.port)
        await anyio.sleep_forever()
