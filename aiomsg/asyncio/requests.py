"""Half-close request/response exchanges, the HTTP/1.0 way.

The client sends its request and shuts down its write side (``shutdown(SHUT_WR)``):
that end of stream is what tells the server the request is complete. The server
answers and closes, and the close is what tells the client the response is
complete. No length header is needed, so any client that can half-close works:
``nc -N``, ``socat``, or a blocking socket as in Python's Socket Programming HOWTO.

TLS cannot half-close (closing TLS closes both directions), so these calls refuse
TLS with a clear error before sending anything.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import ssl as _ssl
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from .._proxy_accept import (
    DEFAULT_PROXY_MAX_PENDING,
    DEFAULT_PROXY_TIMEOUT,
    ProxyTrusted,
    proxy_settings,
)
from .._unix_socket import DEFAULT_UNIX_MODE
from ..errors import ConnectionClosed, FramingError
from ..framing import DEFAULT_MAX_SIZE, Buffer, UntilEOF
from ..framing.proxy_protocol import ProxyVersion
from ..options import Options, resolve_options
from ._listener import Listener, listen_tcp, listen_unix
from .client import connect, connect_unix
from .connection import Connection
from .protocol import MessageProtocol
from .server import Server

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "RequestHandler",
    "RequestProtocol",
    "request",
    "request_unix",
    "serve_requests",
    "serve_requests_unix",
]

logger = logging.getLogger("aiomsg")

#: Seconds a whole exchange may take, by default: on the client, connect + send +
#: response; on the server, the request's arrival + the handler + the response.
DEFAULT_REQUEST_TIMEOUT = 30.0

# The exchange's `timeout` bounds everything: no separate message timeout.
_REQUEST_OPTIONS = Options(message_timeout=None)

#: ``handler(request) -> response``; it may be a plain function or a coroutine function.
RequestHandler = Callable[[bytes], Buffer | Awaitable[Buffer]]


def _refuse_tls(ssl: object) -> None:
    if ssl:
        raise NotImplementedError(
            "half-close request/response cannot run over TLS: TLS has no way to close one "
            "direction only, so the end of the request cannot be signalled. Use a framing "
            "that marks the end of each message (e.g. LengthPrefixed) with aiomsg.connect()."
        )


async def _exchange(conn: Connection, payload: Buffer) -> bytes:
    async with conn:
        await conn.send(payload)
        await conn.send_eof()  # flushes the request first, then FIN
        try:
            return await conn.receive()
        except ConnectionClosed as exc:
            raise ConnectionClosed("the server closed without a complete response") from exc


async def request(
    host: str,
    port: int,
    payload: Buffer,
    *,
    timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    max_size: int = DEFAULT_MAX_SIZE,
    ssl: _ssl.SSLContext | bool | None = None,
    options: Options | None = None,
    **kwargs: Any,
) -> bytes:
    """Send ``payload``, half-close, and return everything the server sends until it closes.

    ``timeout`` bounds the whole exchange; ``options`` (an :class:`~aiomsg.Options`)
    sets the connection's other limits (by default no ``message_timeout``: the
    exchange's own timeout bounds it). Other keyword arguments go to
    :func:`aiomsg.connect`.

    Raises:
        NotImplementedError: ``ssl`` was given (TLS cannot half-close); nothing was sent.
        TimeoutError: the whole exchange took longer than ``timeout`` seconds.
        MessageTooLarge: ``payload`` or the response is over ``max_size``.
        ConnectionClosed: the server reset the connection or closed it before the
            response was complete (for example because the request was too large).
        OSError: the connection could not be made.
    """
    _refuse_tls(ssl)
    framing = UntilEOF(max_size=max_size)
    framing.encode_parts(payload)  # refuse an oversized payload before connecting
    chosen = resolve_options("request", options or _REQUEST_OPTIONS, framing, kwargs)
    async with asyncio.timeout(timeout):
        conn = await connect(host, port, framing=framing, options=chosen, **kwargs)
        return await _exchange(conn, payload)


async def request_unix(
    path: str | os.PathLike[str],
    payload: Buffer,
    *,
    timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    max_size: int = DEFAULT_MAX_SIZE,
    options: Options | None = None,
    **kwargs: Any,
) -> bytes:
    """:func:`request` over a Unix socket at ``path``."""
    framing = UntilEOF(max_size=max_size)
    framing.encode_parts(payload)  # refuse an oversized payload before connecting
    chosen = resolve_options("request_unix", options or _REQUEST_OPTIONS, framing, kwargs)
    async with asyncio.timeout(timeout):
        conn = await connect_unix(path, framing=framing, options=chosen, **kwargs)
        return await _exchange(conn, payload)


async def _call(handler: RequestHandler, payload: bytes) -> Buffer:
    result = handler(payload)
    if inspect.isawaitable(result):
        return await result
    return result


def serve_requests(
    handler: RequestHandler,
    host: str | None,
    port: int | None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    front: Literal["streams", "protocol"] | None = None,
    options: Options | None = None,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
    **kwargs: Any,
) -> Server:
    """Serve half-close exchanges: read a request until the client's EOF, answer, close.

    ``handler(request)`` returns the response bytes (it may be ``async``). Use the
    result with ``async with`` or ``await`` as :func:`aiomsg.serve`.

    * A request over ``max_size`` is refused as soon as it is known to be too
      large, without buffering it: the connection is aborted (the client sees a
      reset).
    * A client that has not finished its request within ``timeout`` seconds
      (for example, never half-closes) is disconnected; other clients are served
      meanwhile. The timeout also bounds the handler and the response.
    * An exception in the handler is logged and that connection is reset, so the
      client gets an error rather than an empty response.

    ``options`` (an :class:`~aiomsg.Options`) sets each connection's other limits
    and the listen ``backlog`` (its ``message_timeout`` is not used: ``timeout``
    bounds the exchange). Each connection is a :class:`RequestProtocol`.
    ``front`` is deprecated and ignored (there used to be a second, Streams-based
    implementation of the same behaviour). Other keyword arguments go to
    :meth:`asyncio.loop.create_server`. The PROXY keywords are those of
    :func:`aiomsg.serve` (a ``ValueError`` at once when wrong); the request
    starts after the header.
    """
    _warn_front(front)
    proxy = proxy_settings(proxy_protocol, proxy_trusted, proxy_timeout, proxy_max_pending)
    framing = UntilEOF(max_size=max_size)
    chosen = resolve_options("serve_requests", options or _REQUEST_OPTIONS, framing, kwargs)

    def listen(factory: Callable[[], RequestProtocol]) -> Awaitable[Listener | asyncio.Server]:
        return listen_tcp(factory, host, port, backlog=chosen.backlog, proxy=proxy, **kwargs)

    return _listening(listen, handler, framing, timeout, chosen)


def serve_requests_unix(
    handler: RequestHandler,
    path: str | os.PathLike[str],
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    front: Literal["streams", "protocol"] | None = None,
    options: Options | None = None,
    mode: int = DEFAULT_UNIX_MODE,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
    **deprecated: Any,
) -> Server:
    """:func:`serve_requests` on a Unix socket at ``path``.

    The socket file, its permissions ``mode`` (default ``0o660``) and what happens
    to a file already at ``path`` are as for :func:`aiomsg.serve_unix` (a live
    server's socket is refused with ``UnixSocketInUseError``, a stale one
    replaced, anything else refused with ``FileExistsError``); it is removed when
    the server closes. The PROXY keywords are those of :func:`aiomsg.serve_unix`
    (``proxy_trusted=["unix"]``).
    """
    _warn_front(front)
    proxy = proxy_settings(
        proxy_protocol, proxy_trusted, proxy_timeout, proxy_max_pending, unix=True
    )
    framing = UntilEOF(max_size=max_size)
    chosen = resolve_options(
        "serve_requests_unix", options or _REQUEST_OPTIONS, framing, deprecated, strict=True
    )

    async def listen(factory: Callable[[], RequestProtocol]) -> Listener:
        return listen_unix(factory, path, backlog=chosen.backlog, mode=mode, proxy=proxy)

    return _listening(listen, handler, framing, timeout, chosen)


def _listening(
    listen: Callable[[Callable[[], RequestProtocol]], Awaitable[Listener | asyncio.Server]],
    handler: RequestHandler,
    framing: UntilEOF,
    timeout: float | None,
    options: Options,
) -> Server:
    """A :class:`Server` that runs a :class:`RequestProtocol` per client of ``listen``."""

    def factory(server: Server) -> RequestProtocol:
        protocol = RequestProtocol(handler, framing=framing, timeout=timeout, options=options)
        server.adopt(protocol)  # so that Server.drain answers what is in flight
        return protocol

    async def start(server: Server) -> Listener | asyncio.Server:
        return await listen(lambda: factory(server))

    return Server(start, options=options)


def _warn_front(front: object) -> None:
    if front is not None:
        warnings.warn(
            "serve_requests(front=...) is deprecated and ignored: requests are always served "
            "by RequestProtocol",
            DeprecationWarning,
            stacklevel=3,
        )


class RequestProtocol(MessageProtocol):
    """A :class:`MessageProtocol` that serves one half-close exchange per connection.

    The request is the whole stream (:class:`~aiomsg.UntilEOF` framing); when
    the client half-closes, ``handler(request)`` runs, its response is sent, and
    the connection closes. A timer aborts the connection if the exchange is not
    over within ``timeout`` seconds.

    The response is written as the client reads it: at most about
    ``options.write_high_water`` bytes of it are queued at any time (the server
    holds no copy of a large response per slow client, only the object the
    handler returned), and a client that reads none of it for
    ``options.close_timeout`` seconds is aborted (a reset) and logged at INFO.
    """

    def __init__(
        self,
        handler: RequestHandler,
        *,
        framing: UntilEOF,
        timeout: float | None,
        options: Options | None = None,
    ) -> None:
        # Its own timeout bounds the whole exchange: no separate message timeout.
        chosen = options or _REQUEST_OPTIONS
        if chosen.message_timeout is not None:
            chosen = chosen.replace(message_timeout=None)
        super().__init__(framing=framing, options=chosen)
        self._handler = handler
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._timeout is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._timeout, self._exchange_expired)

    def _exchange_expired(self) -> None:
        logger.info("request from %r timed out after %ss", self.remote_address, self._timeout)
        if self._task is not None:
            self._task.cancel()
        self.abort()

    def message_received(self, message: bytes) -> None:
        self._task = asyncio.get_running_loop().create_task(self._answer(message))

    async def _answer(self, payload: bytes) -> None:
        try:
            response = await _call(self._handler, payload)
            self._framing.encode_parts(response)  # over max_size: a failed handler
            view = memoryview(response).cast("B")  # not bytes-like (a str): likewise
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("request handler failed for %r", self.remote_address)
            self.abort()
            return
        try:
            await self._send_paced(view)
        except ConnectionClosed:
            return  # the client left, reset, or read nothing for close_timeout
        self.close()  # flushes the rest, then closes

    async def _send_paced(self, view: memoryview) -> None:
        """Write the response (``view``, its bytes) as the client reads it: at most
        about ``write_high_water`` bytes are queued at a time (the response itself
        stays the caller's object, not a copy per client), and a client that reads
        none of it for ``close_timeout`` seconds is aborted.

        Raises:
            ConnectionClosed: the connection was lost or aborted.
        """
        high = self._write_high_water
        start, end = 0, len(view)
        while start < end:
            transport = self._writable()
            # One byte over the mark at most, so that a client that is behind
            # always pauses the writing (and resume_writing wakes it).
            room = high + 1 - transport.get_write_buffer_size()
            if room <= 0:
                await self._drained_or_abort(transport)
                continue
            transport.write(view[start : start + room])
            start += room
            self._sent = True

    async def _drained_or_abort(self, transport: asyncio.WriteTransport) -> None:
        """Wait for the write buffer to drain; abort a client that reads nothing of it
        for ``close_timeout`` seconds (as a close does: see ``_watch_flush``)."""
        left = transport.get_write_buffer_size()
        try:
            async with asyncio.timeout(self._close_timeout):
                await self.drain()
            return
        except TimeoutError:
            if self._lost is not None or transport.get_write_buffer_size() < left:
                return  # progress (or gone): the loop looks again
        logger.info(
            "aborting connection to %r: the client read none of the last %d bytes of its "
            "response for %g s (close_timeout)",
            self.remote_address,
            left,
            self._close_timeout,
        )
        self.abort()
        raise ConnectionClosed("the client read nothing of its response for close_timeout")

    def peer_closed(self) -> bool:
        return True  # the request is complete; keep the connection to answer it

    def begin_drain(self) -> None:
        """Its server drains (:meth:`Server.drain`): an exchange that has begun is
        answered as usual; a connection with no byte of a request yet is closed
        (the client reads EOF, no response, and may ask elsewhere)."""
        if self._task is None and not self._decoder.buffered and not self._peer_eof:
            self.close(linger=True)

    def framing_error(self, exc: FramingError) -> bool:
        # Refuse with a reset, not the lingering close: a clean close would read
        # as an empty response.
        logger.warning("request from %r refused: %s", self.remote_address, exc)
        self.abort()
        return True  # closed already

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()
