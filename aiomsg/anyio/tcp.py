"""TCP for the anyio front: :func:`connect_framed` and :func:`serve_framed`.

On asyncio they run on aiomsg's own transport protocol (the Streams front)
instead of anyio's socket streams: its reading stops while the application is
behind, so memory stays bounded whatever the peer does (anyio 4's asyncio
sockets read on into a queue without bound), and a read costs fewer Python
calls. On trio they read the trio socket under anyio's streams themselves (``on_trio``),
only when asked; over TLS, through anyio's ``TLSStream``.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener, TaskStatus
from anyio.streams.stapled import MultiListener
from anyio.streams.tls import TLSListener, TLSStream

from .._connection_end import log_connection_end
from .._opening import Opening
from .._proxy_accept import (
    DEFAULT_PROXY_MAX_PENDING,
    DEFAULT_PROXY_TIMEOUT,
    ProxySettings,
    ProxyTrusted,
    proxy_settings,
)
from .._proxy_connect import proxy_wire
from .._socket_options import enable_keepalive, reset_on_close
from ..asyncio.client import connect
from ..asyncio.connection import Connection
from ..asyncio.server import serve
from ..framing import Framing
from ..framing.proxy_protocol import ProxyHeader, ProxyVersion
from ..options import Options, resolve_options
from ._accepting import GuardedListener
from ._draining import Drain
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


def connect_framed(
    remote_host: str,
    remote_port: int,
    *,
    framing: Framing,
    options: Options | None = None,
    tls: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    tls_hostname: str | None = None,
    proxy_header: ProxyHeader | bytes | None = None,
    **kwargs: Any,
) -> Opening[FramedStream]:
    """Connect over TCP (TLS with ``tls`` or ``ssl_context``) and frame the stream:
    ``async with connect_framed(...) as stream``, or ``stream = await connect_framed(...)``.

    On asyncio the connection runs on aiomsg's transport protocol (bounded
    reads; ``tls_standard_compatible`` does not apply: asyncio always sends
    close_notify and accepts a peer that does not); on trio, on
    :func:`anyio.connect_tcp` (with ``kwargs`` passed on). ``options`` (an
    :class:`~aiomsg.Options`) gives the limits of :class:`FramedStream`,
    ``keepalive`` as for :func:`aiomsg.connect`, and ``connect_timeout``, which
    bounds the connection and the TLS handshake together on every backend. With
    ``heartbeat`` on asyncio, heartbeats go out and silence is timed whether or
    not a task is receiving (aiomsg's transport keeps the clocks); on trio, while
    one is (see :class:`FramedStream`). The old option keywords still work for
    one release, with a :class:`DeprecationWarning`.

    ``proxy_header`` is written first, before TLS, as for :func:`aiomsg.connect`
    (on trio, ``local_host`` still applies).

    Raises:
        OSError: the connection failed (``ssl.SSLError`` for a failed TLS handshake).
        TimeoutError: no connection (handshake included) within ``connect_timeout``.
        ValueError: a heartbeat the framing cannot carry; raised by this call,
            before connecting.
    """
    chosen = resolve_options("connect_framed", options, framing, kwargs, _CONNECT_RENAMED)
    if proxy_header is not None:
        kwargs["proxy_header"] = proxy_wire(proxy_header)  # encoded (and refused) now
    if tls and ssl_context is None:
        ssl_context = ssl.create_default_context()
    return Opening(
        _connect_framed(
            remote_host,
            remote_port,
            framing,
            chosen,
            ssl_context,
            tls_standard_compatible,
            tls_hostname,
            kwargs,
        )
    )


# connect_framed's deprecated keyword for what is now Options.connect_timeout.
_CONNECT_RENAMED = {"timeout": "connect_timeout"}


async def _connect_framed(
    remote_host: str,
    remote_port: int,
    framing: Framing,
    options: Options,
    ssl_context: ssl.SSLContext | None,
    tls_standard_compatible: bool,
    tls_hostname: str | None,
    kwargs: dict[str, Any],
) -> FramedStream:
    if _on_asyncio():
        conn = await connect(
            remote_host,
            remote_port,
            framing=framing,
            options=options,
            ssl=ssl_context,
            server_hostname=(tls_hostname or remote_host) if ssl_context is not None else None,
            **kwargs,
        )
        return ConnectionFramedStream(conn)
    stream: ByteStream
    wire = kwargs.pop("proxy_header", None)
    # anyio's connect_tcp has no timeout of its own, and none for the TLS handshake.
    with anyio.fail_after(options.connect_timeout):
        if wire is not None:
            stream = await anyio.connect_tcp(remote_host, remote_port, **kwargs)
            try:
                await stream.send(wire)  # before TLS, as a load balancer writes it
                if ssl_context is not None:
                    stream = await TLSStream.wrap(
                        stream,
                        hostname=tls_hostname or remote_host,
                        ssl_context=ssl_context,
                        standard_compatible=tls_standard_compatible,
                    )
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
        elif ssl_context is not None:
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
    if options.keepalive is not None:
        enable_keepalive(stream.extra(SocketAttribute.raw_socket), options.keepalive)
    from .on_trio import framed_on_trio  # imports trio: only here, on trio

    return framed_on_trio(stream, framing, options)


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
    options: Options | None = None,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    reuse_port: bool = False,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
    shutdown: anyio.Event | None = None,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    **deprecated: Any,
) -> None:
    """Serve framed TCP connections until cancelled (or drained); use it inside a task group.

    ``await tg.start(functools.partial(serve_framed, handler, "127.0.0.1", 0,
    framing=...))`` returns the bound port once the server listens. Each client
    runs ``handler(stream)`` in a task of its own; the stream is closed when the
    handler returns. Whatever one client does (reset, TLS without close_notify,
    a failed handshake, bad framing) and whatever its handler raises is logged
    once and ends that connection only, never the server. Neither does running
    out of file descriptors: a failed accept is logged once (then once a minute
    with a count), accepting pauses for a quarter of a second and goes on, and
    the clients waiting meanwhile are served once descriptors are free.

    ``ssl_context`` serves TLS; a client must finish its handshake within
    ``options.tls_handshake_timeout`` seconds. ``options`` (an
    :class:`~aiomsg.Options`) gives the per-connection limits of
    :class:`FramedStream` and :func:`aiomsg.serve`, and the listen ``backlog``.
    On asyncio the server runs on aiomsg's transport protocol (see
    :func:`connect_framed`); on trio, on anyio's listener
    (``tls_standard_compatible`` goes to its TLSListener). ``reuse_port`` sets
    ``SO_REUSEPORT`` (Linux, BSD): several processes may listen on one port and
    the kernel spreads the connections over them. A heartbeat the framing cannot
    carry raises ``ValueError`` before listening. The old option keywords
    (``ssl_handshake_timeout=``, ``backlog=``...) still work for one release,
    with a :class:`DeprecationWarning`.

    The PROXY keywords (``proxy_protocol``, ``proxy_trusted``, ``proxy_timeout``,
    ``proxy_max_pending``) are those of :func:`aiomsg.serve`, on every backend: the
    header is read before TLS; ``stream.extra(SocketAttribute.remote_address)`` is
    then the client's, ``stream.extra(aiomsg.ProxyAttribute.header)`` the header
    and ``ProxyAttribute.proxy_address`` the load balancer's address. A wrong one
    raises ``ValueError`` before listening.

    Cancelling it stops at once (the handlers are cancelled). Setting the
    ``shutdown`` event stops gracefully, as :meth:`aiomsg.Server.drain` does on
    every backend: accepting stops, each stream's ``receive()`` raises
    ``anyio.EndOfStream`` at its next message boundary (after the messages
    already received), a handler that returns has its stream half-closed and
    closed once the client closes (at most ``options.linger_timeout`` later),
    handlers still running after ``options.drain_timeout`` seconds are
    cancelled, and ``serve_framed`` returns.
    """
    proxy = proxy_settings(proxy_protocol, proxy_trusted, proxy_timeout, proxy_max_pending)
    chosen = resolve_options("serve_framed", options, framing, deprecated, _RENAMED, strict=True)
    if _on_asyncio():
        await _serve_framed_asyncio(
            handler,
            local_host,
            local_port,
            framing=framing,
            options=chosen,
            ssl_context=ssl_context,
            reuse_port=reuse_port,
            proxy=proxy,
            shutdown=shutdown,
            task_status=task_status,
        )
        return
    from .on_trio import framed_on_trio  # imports trio: only here, on trio

    listener: Any = await anyio.create_tcp_listener(
        local_host=local_host, local_port=local_port, backlog=chosen.backlog, reuse_port=reuse_port
    )
    port = listener.extra(SocketAttribute.local_port)
    listener = _guarded(listener, f"{local_host or '*'}:{port}", proxy)
    if ssl_context is not None:
        listener = _QuietTLSListener(
            listener,
            ssl_context,
            standard_compatible=tls_standard_compatible,
            handshake_timeout=chosen.tls_handshake_timeout,
        )

    drain = Drain(chosen) if shutdown is not None else None

    async def run(stream: ByteStream) -> None:
        peer = stream.extra(SocketAttribute.remote_address, None)
        if chosen.keepalive is not None:
            enable_keepalive(stream.extra(SocketAttribute.raw_socket), chosen.keepalive)
        if drain is None:
            await _serve_one(handler, framed_on_trio(stream, framing, chosen), peer)
            return
        async with drain.serving(stream, lambda s: framed_on_trio(s, framing, chosen)) as f:
            await _serve_one(handler, f, peer)

    async with listener:
        task_status.started(port)
        if shutdown is None or drain is None:
            await listener.serve(run)
        else:
            await drain.serve(listener, run, shutdown)


def _guarded(listener: Any, name: str, proxy: ProxySettings | None = None) -> Any:
    """``listener`` (one socket, or anyio's MultiListener of several) that outlives
    failed accepts and reads PROXY headers with ``proxy`` (see :class:`GuardedListener`)."""
    if isinstance(listener, MultiListener):
        return MultiListener(
            [
                GuardedListener(cast(SocketListener, one), name, proxy=proxy)
                for one in listener.listeners
            ]
        )
    return GuardedListener(listener, name, proxy=proxy)


# serve_framed's deprecated keyword for what is now Options.tls_handshake_timeout.
_RENAMED = {"ssl_handshake_timeout": "tls_handshake_timeout"}


async def _serve_framed_asyncio(
    handler: Callable[[FramedStream], Awaitable[None]],
    local_host: str | None,
    local_port: int,
    *,
    framing: Framing,
    options: Options,
    ssl_context: ssl.SSLContext | None,
    reuse_port: bool,
    proxy: ProxySettings | None,
    shutdown: anyio.Event | None,
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
                backlog=options.backlog,
                reuse_port=reuse_port,
            )
        else:
            sock = socket.create_server(
                ("", local_port), backlog=options.backlog, reuse_port=reuse_port
            )
        where.update(host=None, port=None, sock=sock)
    elif reuse_port:
        where.update(reuse_port=True)
    if ssl_context is not None:
        where.update(ssl=ssl_context)
    if proxy is not None:
        where.update(
            proxy_protocol=proxy.version,
            proxy_trusted=list(proxy.networks),
            proxy_timeout=proxy.timeout,
            proxy_max_pending=proxy.max_pending,
        )
    async with serve(run, framing=framing, options=options, **where) as server:
        task_status.started(server.port)
        if shutdown is None:
            await anyio.sleep_forever()
        else:
            await shutdown.wait()
            await server.drain()
