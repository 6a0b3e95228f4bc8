"""The anyio front: :class:`FramedStream`, an ``ObjectStream[bytes]`` for task groups.

Wrap any anyio byte stream (TCP, Unix, TLS, or your own) and send and receive
whole messages, on asyncio, asyncio+uvloop or trio. :func:`connect_framed` and
:func:`serve_framed` are the conveniences for TCP. On asyncio they run on
aiomsg's own transport protocol (the Streams front) instead of anyio's socket
streams: its reading stops while the application is behind, so memory stays
bounded whatever the peer does (anyio 4's asyncio sockets read on into a queue
without bound), and a read costs fewer Python calls. On trio they use anyio's
streams, which read only when asked.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
from anyio.abc import ByteStream, ObjectStream, SocketAttribute, TaskStatus
from anyio.lowlevel import checkpoint_if_cancelled
from anyio.streams.tls import TLSAttribute, TLSListener

from ._connection_end import log_connection_end
from ._socket_options import enable_keepalive
from .errors import (
    BusyError,
    ConnectionClosed,
    ConnectionTimeout,
    FramingError,
    IdleTimeout,
    MessageTimeout,
    detached,
    fresh,
)
from .framing import Buffer, Framing
from .limits import (
    COPY_LIMIT,
    DEFAULT_BACKLOG,
    DEFAULT_KEEPALIVE,
    DEFAULT_MESSAGE_TIMEOUT,
    DEFAULT_READ_SIZE,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
)
from .streams import Connection, connect, serve

__all__ = ["DEFAULT_READ_SIZE", "FramedStream", "connect_framed", "serve_framed"]

logger = logging.getLogger("aiomsg")

# How a peer can end an anyio stream without anyone's code being wrong.
_ANYIO_ORDINARY: tuple[type[BaseException], ...] = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
)


class FramedStream(ObjectStream[bytes]):
    """Whole messages over an anyio byte stream.

    ``FramedStream(byte_stream, framing)`` owns ``byte_stream``: closing one closes
    the other. Extra attributes (addresses, TLS details...) are those of the inner
    stream. ``async for message in stream`` ends at a clean end of stream.

    Exception contract, as for every anyio object stream:

    * ``receive()`` raises :class:`anyio.EndOfStream` after the peer closed its
      side cleanly (every message before it was delivered),
      :class:`~aiomsg.IncompleteMessageError` if it closed inside a message,
      :class:`~aiomsg.FramingError` / :class:`~aiomsg.MessageTooLarge` when it
      broke the framing (the good messages before come first; then close),
      :class:`~aiomsg.MessageTimeout` / :class:`~aiomsg.IdleTimeout` (both
      :class:`TimeoutError`) when the peer was too slow (the inner stream is
      closed then), :class:`anyio.BrokenResourceError` if the connection broke,
      :class:`anyio.BusyResourceError` if another task is already receiving.
    * ``send()``/``receive()`` after :meth:`aclose` raise
      :class:`anyio.ClosedResourceError`.
    * Concurrent ``send()`` calls are allowed: each message is written whole, in
      turn.

    Limits: ``message_timeout`` (default 60 s): a message that has begun must
    complete within it, counting only time spent in ``receive()``;
    ``idle_timeout`` (default off): some byte must arrive within it while
    receiving. ``None`` turns either off. Memory: decoded messages wait here
    only while fewer than one read's worth (``read_size``) is queued, since the
    inner stream is read only when the queue is empty; what the *inner* stream
    buffers is its own affair (anyio's asyncio sockets buffer without bound:
    prefer :func:`connect_framed`/:func:`serve_framed`, which avoid them).

    Checkpoints: a ``receive()`` that reads from the connection is a full
    checkpoint (the inner ``receive()`` is). A ``receive()`` served from messages
    already decoded checks for cancellation (``checkpoint_if_cancelled``) but
    does not yield to the event loop: a full checkpoint per buffered message
    would cost most of the throughput (measured with ``benchmarks/fronts.py``:
    about 2.5x fewer messages per second on asyncio). Other tasks still run at
    least once per read, so a busy receiver delays them by at most one read's
    worth of messages. Cancelling a ``receive()`` never loses or duplicates a
    message: the next call gets it.

    The streams :func:`connect_framed` and :func:`serve_framed` make on asyncio
    (on aiomsg's transport) skip that check too, like the Streams front: a
    buffered message is returned without looking at cancel scopes, and
    cancellation arrives at the next ``receive()`` that waits, at most one
    read's worth of messages later. This changes only one case: a task that
    cancels its own scope and then receives gets a buffered message instead of
    the cancellation (a scope cancelled by another task, or by its deadline,
    is delivered when the receiver last waited). The check cost 2 µs per
    message, four times everything else.
    """

    def __init__(
        self,
        transport_stream: ByteStream,
        framing: Framing,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
        idle_timeout: float | None = None,
    ) -> None:
        self.transport_stream = transport_stream
        self.framing = framing
        self._decoder = framing.decoder()
        self._ready: deque[bytes] = deque()
        self._read_size = read_size
        self._message_timeout = message_timeout
        self._idle_timeout = idle_timeout
        self._message_started: float | None = None
        self._last_read = 0.0
        # Raised (a fresh copy) once `_ready` is drained; kept without traceback.
        self._error: BaseException | None = None
        self._closed = False
        self._receiving = False
        # fast_acquire: an uncontended send does not pay an extra event-loop round trip.
        self._send_lock = anyio.Lock(fast_acquire=True)

    async def receive(self) -> bytes:
        """Return the next message. Raises as the class docstring says."""
        if self._ready and not self._receiving and not self._closed:
            await checkpoint_if_cancelled()  # cancelled: the message stays queued
            return self._ready.popleft()
        return await self._receive_slow()

    async def _receive_slow(self) -> bytes:
        # A plain flag rather than anyio.ResourceGuard: this runs per message.
        if self._receiving:
            raise anyio.BusyResourceError("reading from")
        self._receiving = True
        try:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._ready:
                await checkpoint_if_cancelled()
            since = anyio.current_time()  # the clocks count only while receiving
            while not self._ready:
                error = self._error
                if error is not None:
                    raise fresh(error) from error.__cause__
                await self._read(since)
            return self._ready.popleft()
        finally:
            self._receiving = False

    def _time_left(self, since: float) -> tuple[float, ConnectionTimeout] | None:
        """The nearest deadline as (seconds left, the error it raises), or ``None``."""
        nearest: tuple[float, ConnectionTimeout] | None = None
        now = anyio.current_time()
        if self._idle_timeout is not None:
            left = max(self._last_read, since) + self._idle_timeout - now
            nearest = (left, IdleTimeout(
                f"no data from the peer for {self._idle_timeout:g} s (idle_timeout)",
                timeout=self._idle_timeout,
            ))
        if self._message_timeout is not None and self._message_started is not None:
            left = max(self._message_started, since) + self._message_timeout - now
            if nearest is None or left < nearest[0]:
                nearest = (left, MessageTimeout(
                    f"a message is still incomplete after {self._message_timeout:g} s "
                    f"({self._decoder.buffered} bytes; message_timeout)",
                    timeout=self._message_timeout,
                ))
        return nearest

    async def _read(self, since: float) -> None:
        limit = self._time_left(since)
        try:
            if limit is None:
                chunk = await self.transport_stream.receive(self._read_size)
            else:
                with anyio.move_on_after(max(limit[0], 0)):
                    chunk = await self.transport_stream.receive(self._read_size)
                    limit = None
                if limit is not None:  # the peer was too slow: close, and say why
                    self._error = limit[1]
                    await anyio.aclose_forcefully(self.transport_stream)
                    return
        except anyio.EndOfStream:
            try:
                self._ready.extend(self._decoder.feed_eof())
            except FramingError as exc:
                self._error = detached(exc)
                return
            self._error = anyio.EndOfStream()
            return
        try:
            messages = self._decoder.feed(chunk)
        except FramingError as exc:
            self._ready.extend(exc.messages)
            self._error = detached(exc)
            return
        if self._message_timeout is not None or self._idle_timeout is not None:
            self._track_message(bool(messages))
        self._ready.extend(messages)

    def _track_message(self, completed: bool) -> None:
        now = anyio.current_time()
        self._last_read = now
        if not self._decoder.buffered:
            self._message_started = None
        elif completed or self._message_started is None:
            self._message_started = now  # a new message began in this read

    async def send(self, item: Buffer) -> None:
        """Send one message (waits its turn behind other senders).

        Raises:
            MessageTooLarge, FramingError: the framing cannot carry ``item``;
                nothing was sent.
            anyio.ClosedResourceError: this stream was closed.
            anyio.BrokenResourceError: the connection broke.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        parts = self.framing.encode_parts(item)
        async with self._send_lock:
            if len(parts) == 1 or len(item) < COPY_LIMIT:
                await self.transport_stream.send(b"".join(parts))
            else:  # large: do not copy the body into a new object
                for part in parts:
                    await self.transport_stream.send(part)  # type: ignore[arg-type]

    async def send_many(self, items: Iterable[Buffer]) -> None:
        """Send several messages with one write to the inner stream, in order.

        Raises what :meth:`send` raises; if one cannot be encoded, none is sent.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        data = self.framing.encode_many(items)
        async with self._send_lock:
            await self.transport_stream.send(data)

    async def send_eof(self) -> None:
        """Half-close: "done sending, still listening" (``shutdown(SHUT_WR)``).

        Raises:
            NotImplementedError: the inner stream cannot half-close. A TLS stream
                cannot: TLS has no way to end one direction only. Nothing is sent;
                mark the end of your message with the framing instead.
            anyio.ClosedResourceError: this stream was closed.
            anyio.BrokenResourceError: the connection broke.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        async with self._send_lock:
            try:
                await self.transport_stream.send_eof()
            except NotImplementedError as exc:
                raise NotImplementedError(
                    f"{type(self.transport_stream).__name__} cannot half-close (TLS cannot "
                    f"end one direction only): {exc}"
                ) from exc
            except OSError as exc:  # the trio backend lets ENOTCONN through
                raise anyio.BrokenResourceError(f"cannot half-close: {exc}") from exc

    async def aclose(self) -> None:
        """Close this stream and the inner one. Later calls raise ``ClosedResourceError``.

        Errors of the close itself (a TLS peer that left without close_notify)
        are the inner stream's and propagate; the stream is closed anyway.
        """
        self._closed = True
        self._ready.clear()
        await self.transport_stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.transport_stream.extra_attributes


class _ConnectionBytes(ByteStream):
    """The ``transport_stream`` of a FramedStream on aiomsg's transport.

    It gives the connection's extra attributes and writes raw bytes (they
    bypass the framing), but cannot be read: aiomsg's protocol reads and
    decodes the connection itself, so there are no raw bytes to hand out.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise NotImplementedError(
            "aiomsg's protocol reads this connection itself: receive from the FramedStream"
        )

    async def send(self, item: bytes) -> None:
        transport = self._conn.transport
        if transport is None or transport.is_closing():
            raise anyio.BrokenResourceError("the connection is closed")
        transport.write(item)
        try:
            await self._conn.drain()
        except ConnectionClosed as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc.__cause__

    async def send_eof(self) -> None:
        await self._conn.send_eof()

    async def aclose(self) -> None:
        self._conn.close()
        await self._conn.wait_closed()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        conn = self._conn
        sock = conn.get_extra_info("socket")
        attributes: dict[Any, Callable[[], Any]] = {}
        if sock is not None:
            attributes[SocketAttribute.family] = lambda: sock.family
            attributes[SocketAttribute.raw_socket] = lambda: sock
            attributes[SocketAttribute.local_address] = lambda: _address(conn.local_address)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                attributes[SocketAttribute.local_port] = lambda: conn.local_address[1]
                attributes[SocketAttribute.remote_port] = lambda: conn.remote_address[1]
            attributes[SocketAttribute.remote_address] = lambda: _address(conn.remote_address)
        ssl_object = conn.get_extra_info("ssl_object")
        if ssl_object is not None:
            attributes.update(
                {
                    TLSAttribute.ssl_object: lambda: ssl_object,
                    TLSAttribute.alpn_protocol: ssl_object.selected_alpn_protocol,
                    TLSAttribute.cipher: ssl_object.cipher,
                    TLSAttribute.peer_certificate: lambda: ssl_object.getpeercert(False),
                    TLSAttribute.peer_certificate_binary: lambda: ssl_object.getpeercert(True),
                    TLSAttribute.server_side: lambda: ssl_object.server_side,
                    TLSAttribute.shared_ciphers: lambda: (
                        ssl_object.shared_ciphers() if ssl_object.server_side else None
                    ),
                    TLSAttribute.tls_version: ssl_object.version,
                    TLSAttribute.standard_compatible: lambda: True,
                }
            )
        return attributes


def _address(address: Any) -> Any:
    # anyio reports IPv6 addresses as (host, port), without flowinfo and scope id.
    return tuple(address[:2]) if isinstance(address, tuple) else address


class _ConnectionFramedStream(FramedStream):
    """A FramedStream on aiomsg's transport protocol (asyncio): same contract, bounded reads.

    The Streams :class:`~aiomsg.Connection` does the reading, decoding, limits
    and timeouts; this class only speaks anyio's exception contract.
    """

    def __init__(self, conn: Connection) -> None:
        # Not FramedStream.__init__: its decoder, queue and send lock would go
        # unused here (the Connection has its own), at a few KiB per connection.
        self.transport_stream = _ConnectionBytes(conn)
        self.framing = conn.framing
        self._conn = conn
        self._take = conn.receive_nowait
        self._closed = False

    async def receive(self) -> bytes:
        # Served from the messages already decoded without a cancellation check:
        # see the class docstring. (anyio's check costs 2 us per message here,
        # four times everything else.)
        if not self._closed:
            message = self._take()
            if message is not None:
                return message
        return await self._receive_slow()

    def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        # An async generator, as Connection's own: resuming one costs less than
        # the coroutine per message of ObjectReceiveStream.__anext__.
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        take = self._take
        while True:
            message = None if self._closed else take()
            if message is None:
                try:
                    message = await self._receive_slow()
                except anyio.EndOfStream:
                    return
            yield message

    async def _receive_slow(self) -> bytes:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            message = await self._conn.receive_or_none()
        except BusyError as exc:  # anyio's contract names its own error
            raise anyio.BusyResourceError("receiving from") from exc
        except ConnectionTimeout:
            raise
        except ConnectionClosed as exc:
            if self._closed:
                raise anyio.ClosedResourceError from None
            raise anyio.BrokenResourceError(str(exc)) from exc.__cause__
        if message is None:
            raise anyio.EndOfStream
        return message

    async def send(self, item: Buffer) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            await self._conn.send(item)
        except ConnectionClosed as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc.__cause__

    async def send_many(self, items: Iterable[Buffer]) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            await self._conn.send_many(items)
        except ConnectionClosed as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc.__cause__

    async def send_eof(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            await self._conn.send_eof()
        except ConnectionClosed as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc.__cause__

    async def aclose(self) -> None:
        self._closed = True
        self._conn.close()
        await self._conn.wait_closed()


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
    keepalive: float | None = DEFAULT_KEEPALIVE,
    **kwargs: Any,
) -> FramedStream:
    """Connect over TCP (TLS with ``tls`` or ``ssl_context``) and frame the stream.

    On asyncio the connection runs on aiomsg's transport protocol (bounded
    reads; ``tls_standard_compatible`` does not apply: asyncio always sends
    close_notify and accepts a peer that does not); on trio, on
    :func:`anyio.connect_tcp` (with ``kwargs`` passed on). The limits are those
    of :class:`FramedStream`; ``keepalive`` as for :func:`aiomsg.connect`.

    Raises :class:`OSError` if the connection fails (and ``ssl.SSLError`` for a
    failed TLS handshake).
    """
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
            keepalive=keepalive,
            **kwargs,
        )
        return _ConnectionFramedStream(conn)
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
        log_connection_end(exc, peer, _ANYIO_ORDINARY)
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
    keepalive: float | None = DEFAULT_KEEPALIVE,
    backlog: int = DEFAULT_BACKLOG,
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
    """
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
            keepalive=keepalive,
            backlog=backlog,
            task_status=task_status,
        )
        return
    listener: Any = await anyio.create_tcp_listener(
        local_host=local_host, local_port=local_port, backlog=backlog
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
    keepalive: float | None,
    backlog: int,
    task_status: TaskStatus[int],
) -> None:
    async def run(conn: Connection) -> None:
        await _serve_one(handler, _ConnectionFramedStream(conn), conn.remote_address)

    where: dict[str, Any] = {"host": local_host, "port": local_port}
    if local_host is None:
        # One socket for IPv4 and IPv6 where possible, so that port 0 gives one
        # port (as anyio's listener does), not one per address family.
        if socket.has_dualstack_ipv6():
            sock = socket.create_server(
                ("", local_port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=backlog
            )
        else:
            sock = socket.create_server(("", local_port), backlog=backlog)
        where.update(host=None, port=None, sock=sock)
    if ssl_context is not None:
        where.update(ssl=ssl_context, ssl_handshake_timeout=ssl_handshake_timeout)
    server = serve(
        run,
        framing=framing,
        read_size=read_size,
        message_timeout=message_timeout,
        idle_timeout=idle_timeout,
        keepalive=keepalive,
        **where,
    )
    async with server:
        task_status.started(server.port)
        await anyio.sleep_forever()
