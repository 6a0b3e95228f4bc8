"""The Streams front's servers: :func:`serve` and :func:`serve_unix` run a handler per client."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl as _ssl
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from .._connection_end import log_connection_end
from .._proxy_accept import (
    DEFAULT_PROXY_MAX_PENDING,
    DEFAULT_PROXY_TIMEOUT,
    ProxyTrusted,
    proxy_settings,
)
from .._unix_socket import DEFAULT_UNIX_MODE
from ..framing import Framing
from ..framing.proxy_protocol import ProxyVersion
from ..options import DEFAULT_OPTIONS, Options, resolve_options
from ._listener import Listener, listen_tcp, listen_unix
from .connection import Connection, _QueueProtocol
from .protocol import MessageProtocol

__all__ = ["Handler", "Server", "serve", "serve_unix"]

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

#: What :func:`serve` runs for each client.
Handler = Callable[[Connection], Awaitable[None]]


class _ServedProtocol(_QueueProtocol):
    """A server's connection: its input can end at the next message boundary (a drain)."""

    _draining = False

    def begin_drain(self) -> None:
        """End the input once no message is half-received: the handler's ``async for``
        then ends after the messages already decoded, as at the peer's EOF."""
        self._draining = True
        self._end_at_boundary()

    def messages_received(self, messages: list[bytes]) -> None:
        super().messages_received(messages)
        if self._draining:
            self._end_at_boundary()

    def _end_at_boundary(self) -> None:
        if self.at_eof or self.error is not None or self.mid_message:
            return  # ended already, or a message is in flight: its end decides
        self.pause_reading()  # what the peer sends now stays unread (the close drops it)
        self.at_eof = True
        self.wake()


class Server:
    """A listening server that runs ``handler(connection)`` in a task for every client.

    Returned by :func:`serve`; ``await`` it to start listening, or use
    ``async with`` (which also closes it). An exception in a handler is logged
    once and ends that client's connection only; the server goes on. A bug
    (anything but a closed or broken connection, a timeout or a framing error)
    resets the connection, so that the client does not take a clean close for
    a complete answer. When a handler returns, its connection is closed for it.

    Two ways to stop: :meth:`close` (at once: handlers are cancelled) and
    :meth:`drain` (gracefully: what is in flight is finished and answered first).
    """

    def __init__(
        self,
        listen: Callable[[Server], Awaitable[Listener | asyncio.Server]],
        handler: Handler | None = None,
        options: Options | None = None,
    ) -> None:
        """Internal: use :func:`serve` (``listen`` binds and starts accepting)."""
        self._handler = handler
        self._listen = listen
        self._options = options or DEFAULT_OPTIONS
        self._server: Listener | asyncio.Server | None = None
        # Each handler's task and its connection's protocol.
        self._handlers: dict[asyncio.Task[None], _QueueProtocol] = {}
        # Connections served without a handler (serve_requests, serve_protocol): drained too.
        self._protocols: weakref.WeakSet[MessageProtocol] = weakref.WeakSet()
        self._draining = False
        self._lingering = False  # handlers that end close with a lingering close
        self._drained = asyncio.Event()

    async def start(self) -> Server:
        """Start listening (done for you by ``await`` and ``async with``)."""
        if self._server is None:
            self._server = await self._listen(self)
        return self

    def __await__(self) -> Generator[Any, None, Server]:
        return self.start().__await__()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return tuple(self._server.sockets) if self._server else ()

    @property
    def port(self) -> int:
        """The TCP port of the first listening socket (useful after binding port 0)."""
        return int(self.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        """Serve until cancelled, or until a :meth:`drain` (from another task) is over;
        closes the server (and its connections) on the way out."""
        await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
            if self._draining:  # the drain closed the listener: let it finish its work
                await self._drained.wait()
        finally:
            self.close()
            await self.wait_closed()

    @property
    def draining(self) -> bool:
        """Whether :meth:`drain` has begun (the server no longer accepts)."""
        return self._draining

    async def drain(self, timeout: float | None = None) -> None:
        """Stop gracefully, in this order, then return once every connection is closed:

        1. stop accepting (the listening sockets close; with ``SO_REUSEPORT`` the
           other processes on the port take the new clients, and clients still in
           this socket's accept queue are reset by the system);
        2. each connection finishes the message in flight: a handler connection's
           input ends at the next message boundary (``async for`` ends, and
           ``receive()`` raises :class:`~aiomsg.ConnectionClosed`, after the
           messages already received, as at the peer's EOF), so a handler that
           answers each message answers all it was given; a half-close exchange
           (:func:`~aiomsg.serve_requests`) that has begun is answered, one with
           nothing received yet is closed;
        3. when a handler returns, its connection half-closes (EOF after the last
           answer) and waits, up to ``Options.linger_timeout``, for the client to
           close, dropping what it still sends (a plain close could reset and
           destroy the answers);
        4. after ``timeout`` seconds (``None``: the server's
           ``Options.drain_timeout``, 10 s by default) what is left is closed as by
           :meth:`close`: handlers are cancelled, exchanges aborted.

        What a handler received is answered unless it takes longer than
        ``timeout``; what the client sent after the input ended was never read
        (it sees EOF, and may send it again elsewhere). Calling it again waits
        again; :meth:`close` after it does nothing more. Never raises for a
        client's behaviour.
        """
        limit = self._options.drain_timeout if timeout is None else timeout
        self._draining = self._lingering = True
        if self._server is not None:
            self._server.close()
        for protocol in list(self._protocols):
            _begin_drain(protocol)
        for protocol in list(self._handlers.values()):
            _begin_drain(protocol)
        closing = [asyncio.ensure_future(p.wait_closed()) for p in self._protocols]
        waits = [*self._handlers, *closing]
        if waits:
            await asyncio.wait(waits, timeout=limit)
            for waiter in closing:
                waiter.cancel()
        self._lingering = False  # past the deadline: what is left closes as by close()
        for protocol in list(self._protocols):
            if not protocol.is_closing():
                protocol.abort()
        self.close()
        await self.wait_closed()
        self._drained.set()

    def close(self) -> None:
        """Stop listening and cancel every handler (their connections are then closed)."""
        if self._server is not None:
            self._server.close()
        for task in self._handlers:
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the listener is closed and every handler has finished."""
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        if self._server is not None:
            await self._server.wait_closed()

    def accept(self, protocol: _QueueProtocol) -> None:
        """Internal: run the handler for a new connection (called by its protocol)."""
        conn = Connection(protocol)
        task = asyncio.get_running_loop().create_task(self._run_handler(conn))
        self._handlers[task] = protocol
        task.add_done_callback(self._forget)
        if self._draining:  # accepted as the listener closed: no message taken
            _begin_drain(protocol)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._handlers.pop(task, None)

    def adopt(self, protocol: _P) -> _P:
        """Internal: a connection served without a handler, drained by :meth:`drain`
        (a :class:`MessageProtocol`; any other protocol is the application's to stop)."""
        if isinstance(protocol, MessageProtocol):
            self._protocols.add(protocol)
            if self._draining:
                asyncio.get_running_loop().call_soon(_begin_drain, protocol)
        return protocol

    async def _run_handler(self, conn: Connection) -> None:
        assert self._handler is not None
        peer = conn.remote_address  # read now: a closed transport no longer knows it
        try:
            await self._handler(conn)
        except Exception as exc:  # one connection's failure never ends the server
            if log_connection_end(exc, peer):
                conn.abort()  # a failed handler: a reset, not what looks like an answer
        finally:
            # Draining: EOF after the answers, then wait for the client's close (a
            # plain close with unread input would reset, destroying the answers).
            conn.close(linger=self._lingering)
            await conn.wait_closed()


def _begin_drain(protocol: asyncio.BaseProtocol) -> None:
    """Tell one connection that its server drains (see :meth:`Server.drain`)."""
    begin = getattr(protocol, "begin_drain", None)
    if begin is not None:  # _ServedProtocol, RequestProtocol, or the application's own
        begin()
    elif isinstance(protocol, MessageProtocol):
        _end_at_boundary(protocol)


#: Seconds between looks at a MessageProtocol whose message in flight has not ended yet.
_BOUNDARY_POLL = 0.02


def _end_at_boundary(protocol: MessageProtocol) -> None:
    """A :class:`MessageProtocol` of :func:`~aiomsg.serve_protocol`: once no message is
    half-received, reading stops and it is told the input ended, as at the peer's EOF:
    :meth:`~MessageProtocol.peer_closed` returns ``True`` to keep the connection open
    (to finish answering, then close), otherwise it closes (lingering: EOF first)."""
    transport = protocol.transport
    # The peer already sent EOF: peer_closed() was called then.
    if transport is None or protocol.is_closing() or protocol._peer_eof:
        return
    if protocol.mid_message:  # a message in flight: look again once it may be over
        asyncio.get_running_loop().call_later(_BOUNDARY_POLL, _end_at_boundary, protocol)
        return
    protocol.pause_reading()
    if not protocol.peer_closed():
        protocol.close(linger=True)


def serve(
    handler: Handler,
    host: str | None,
    port: int | None,
    *,
    framing: Framing,
    options: Options | None = None,
    ssl: _ssl.SSLContext | None = None,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
    **kwargs: Any,
) -> Server:
    """Serve framed TCP connections: ``async with serve(handler, host, port, framing=...)``.

    ``handler(conn)`` runs in its own task for each client; the connection is
    closed when it returns or raises (exceptions are logged, the server goes on).
    Port 0 picks a free port: read it from ``server.port``. ``options`` (an
    :class:`~aiomsg.Options`) sets each connection's limits and heartbeat, as for
    :func:`connect`, the listen queue (``backlog``) and, with ``ssl``, the time a
    client has to finish its TLS handshake (``tls_handshake_timeout``). A
    heartbeat the framing cannot carry raises ``ValueError`` here, before
    listening. ``ssl`` is served with :meth:`asyncio.loop.connect_accepted_socket`;
    the other keywords of :meth:`asyncio.loop.create_server` that choose the
    sockets (``sock``, ``reuse_port``, ``reuse_address``, ``family``, ``flags``)
    are taken as there, anything else is a ``TypeError`` when it starts. The old
    option keywords still work for one release, with a :class:`DeprecationWarning`.

    aiomsg accepts with a loop of its own: when ``accept()`` fails because the
    process is out of file descriptors (or the system out of memory), the server
    logs one line (then at most one a minute, with a count), stops accepting for
    a quarter of a second and tries again; the clients wait in the listen queue
    and are served once descriptors are free. It never exits for it.

    Behind a load balancer that speaks the PROXY protocol (HAProxy's
    ``send-proxy``/``send-proxy-v2``, nginx ``proxy_protocol on``, AWS NLB):
    ``proxy_protocol`` (``"v1"``, ``"v2"`` or ``"any"``) makes every connection
    start with a PROXY header, read before TLS and before the framing, and
    ``proxy_trusted`` (required with it) lists the networks of the balancers
    (``["10.0.0.0/8", "127.0.0.1/32"]``). A peer outside them is closed before a
    byte is read (a WARNING once a minute per address); a trusted peer that does
    not send a valid header within ``proxy_timeout`` seconds is closed (one
    WARNING a minute, with a count); at most ``proxy_max_pending`` connections
    wait for their header at once (one more closes the one that waited longest). A ``LOCAL`` header
    (a health check) or an ``UNKNOWN`` one is served with the real peer's
    address. The handler's ``conn.remote_address`` is the client's address from
    the header; ``conn.get_extra_info("proxy_header")`` the
    :class:`~aiomsg.ProxyHeader` (TLVs included); ``get_extra_info("peername")``
    the balancer's. See docs/howto/load-balancer.md.

    Raises:
        ValueError: a PROXY keyword is wrong (``proxy_protocol`` without
            ``proxy_trusted``, a bad network...), at once, before listening.
    """
    proxy = proxy_settings(proxy_protocol, proxy_trusted, proxy_timeout, proxy_max_pending)
    chosen = resolve_options("serve", options, framing, kwargs, _RENAMED)
    if ssl is not None:
        kwargs.setdefault("ssl_handshake_timeout", chosen.tls_handshake_timeout)

    async def listen(server: Server) -> Listener | asyncio.Server:
        return await listen_tcp(
            lambda: _ServedProtocol(framing, chosen, server.accept),
            host,
            port,
            ssl=ssl,
            backlog=chosen.backlog,
            proxy=proxy,
            **kwargs,
        )

    return Server(listen, handler, chosen)


# The servers' deprecated keyword for what is now Options.tls_handshake_timeout.
_RENAMED = {"ssl_handshake_timeout": "tls_handshake_timeout"}


def serve_unix(
    handler: Handler,
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    options: Options | None = None,
    mode: int = DEFAULT_UNIX_MODE,
    ssl: _ssl.SSLContext | None = None,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
    **deprecated: Any,
) -> Server:
    """Serve framed connections on a Unix socket at ``path``; otherwise as :func:`serve`.

    The socket file is created with permissions ``mode`` (default ``0o660``: its
    owner and group may connect; ``0o600`` for the owner only, ``0o666`` for
    everyone), with no moment in which it has others, and removed when the
    server closes (if it is still the file this server made). When it starts:

    Raises:
        UnixSocketInUseError: (an :class:`OSError`, ``errno.EADDRINUSE``) a server
            answers on the socket at ``path``; it is left alone. A stale socket
            (its server is gone) is replaced.
        FileExistsError: something that is not a socket is at ``path`` (the message
            says what: a regular file, a directory...); it is left alone.
        ValueError: ``mode`` is not permission bits (``0`` to ``0o777``).
        OSError: the socket could not be made (no such directory, permission denied).

    The PROXY keywords are those of :func:`serve` (a ``ValueError`` at once when
    wrong), except that a Unix socket's peers have no network address: with
    ``proxy_trusted=["unix"]`` every peer of the socket may send a header (the
    socket file's ``mode`` decides who can connect), and it is required.
    """
    proxy = proxy_settings(
        proxy_protocol, proxy_trusted, proxy_timeout, proxy_max_pending, unix=True
    )
    chosen = resolve_options("serve_unix", options, framing, deprecated, _RENAMED, strict=True)

    async def listen(server: Server) -> Listener:
        return listen_unix(
            lambda: _ServedProtocol(framing, chosen, server.accept),
            path,
            backlog=chosen.backlog,
            mode=mode,
            ssl=ssl,
            ssl_handshake_timeout=chosen.tls_handshake_timeout,
            proxy=proxy,
        )

    return Server(listen, handler, chosen)
