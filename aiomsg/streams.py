"""The asyncio Streams front: ``await conn.receive()`` and ``await conn.send(msg)``.

A :class:`Connection` reads large chunks from a :class:`asyncio.StreamReader`,
decodes them with its framing, and serves ``receive()`` from the decoded batch
without suspending until the batch is used up. ``send()`` writes header and body
in one call. :func:`connect` and :func:`serve` (and their Unix-socket twins) make
connections for you; :class:`Connection` also wraps a ``(reader, writer)`` pair
you already have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl as _ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any

from anyio import BusyResourceError

from .errors import ConnectionClosed, FramingError
from .framing import Buffer, Framing

__all__ = [
    "DEFAULT_READ_SIZE",
    "DEFAULT_WRITE_HIGH_WATER",
    "Connection",
    "Handler",
    "Server",
    "connect",
    "connect_unix",
    "serve",
    "serve_unix",
]

logger = logging.getLogger("aiomsg")

#: Bytes asked for per read: large reads amortise the per-read cost over many messages.
DEFAULT_READ_SIZE = 256 * 1024
#: Unsent bytes above which ``send()`` waits for the peer to catch up.
DEFAULT_WRITE_HIGH_WATER = 256 * 1024
# Messages this large go to writelines() as header + body, not copied into one object.
_COPY_LIMIT = 64 * 1024

Handler = Callable[["Connection"], Awaitable[None]]


class Connection:
    """A framed connection over an asyncio stream pair.

    Make one with :func:`connect` or :func:`serve`, or wrap a pair from
    :func:`asyncio.open_connection` with ``Connection(reader, writer, framing)``.
    Use it as an async context manager (closes on exit) and iterate it with
    ``async for message in conn`` (ends when the peer closes cleanly).

    Only one task may receive at a time: a second concurrent ``receive()``
    raises :class:`anyio.BusyResourceError`. Sending from several tasks is safe
    (each message is written whole).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framing: Framing,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.framing = framing
        self._decoder = framing.decoder()
        self._ready: deque[bytes] = deque()
        self._read_size = read_size
        self._receiving = False
        self._at_eof = False
        self._error: BaseException | None = None  # raised once _ready is drained
        self._closed = False
        writer.transport.set_write_buffer_limits(high=write_high_water)

    # --- receiving ---------------------------------------------------------------

    async def receive(self) -> bytes:
        """Return the next message.

        Served from the batch decoded by the last read when there is one, without
        suspending; otherwise reads until a message is complete.

        Raises:
            ConnectionClosed: the peer closed cleanly after its last message (or
                the connection was closed locally, or reset: then ``__cause__`` is
                the :class:`OSError`). Stop receiving; close the connection.
            IncompleteMessageError: the peer closed in the middle of a message.
            MessageTooLarge, FramingError: the peer broke the framing. Messages
                that arrived before the bad bytes are delivered first. Close the
                connection: the stream cannot be resynchronised.
            anyio.BusyResourceError: another task is already receiving.
        """
        if self._ready:
            return self._ready.popleft()
        return await self._receive_slow()

    async def _receive_slow(self) -> bytes:
        if self._receiving:
            raise BusyResourceError("receiving")
        self._receiving = True
        try:
            while not self._ready:
                if self._error is not None:
                    raise self._error
                if self._closed:
                    raise ConnectionClosed("connection is closed")
                await self._read()
            return self._ready.popleft()
        finally:
            self._receiving = False

    async def _read(self) -> None:
        try:
            chunk = await self._reader.read(self._read_size)
        except OSError as exc:  # reset by the peer, or a socket error
            self._error = ConnectionClosed(f"connection lost: {exc}")
            self._error.__cause__ = exc
            return
        try:
            if chunk:
                self._ready.extend(self._decoder.feed(chunk))
            else:
                self._ready.extend(self._decoder.feed_eof())
                self._error = ConnectionClosed("the peer closed the connection")
        except FramingError as exc:
            # Deliver the good messages first; the error comes after them. Nothing
            # more is read, so the peer is held back until the connection closes.
            self._ready.extend(exc.messages)
            self._error = exc

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        ready = self._ready
        while True:
            while ready:
                yield ready.popleft()
            try:
                yield await self._receive_slow()
            except ConnectionClosed:
                if self._closed or self._error is None or self._error.__cause__ is not None:
                    raise
                return  # clean EOF ends the loop

    # --- sending -----------------------------------------------------------------

    async def send(self, message: Buffer) -> None:
        """Send one message; wait while the peer is behind (write buffer over its high-water mark).

        Raises:
            MessageTooLarge, FramingError: the framing cannot carry ``message``;
                nothing was sent.
            ConnectionClosed: the connection is closed or was lost; the message may
                not have been delivered.
        """
        writer = self._writer
        if writer.transport.is_closing():
            raise ConnectionClosed("cannot send: connection is closed")
        if len(message) < _COPY_LIMIT:
            writer.write(self.framing.encode(message))
        else:
            writer.writelines(self.framing.encode_parts(message))
        await self._drain()

    async def send_many(self, messages: Iterable[Buffer]) -> None:
        """Send several messages with one write; wait while the peer is behind.

        Raises what :meth:`send` raises; if a message cannot be encoded, none is sent.
        """
        if self._writer.transport.is_closing():
            raise ConnectionClosed("cannot send: connection is closed")
        self._writer.write(self.framing.encode_many(messages))
        await self._drain()

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ConnectionClosed(f"connection lost while sending: {exc}") from exc

    def can_send_eof(self) -> bool:
        """Return whether :meth:`send_eof` is possible (False over TLS)."""
        return self._writer.can_write_eof()

    async def send_eof(self) -> None:
        """Half-close: say "done sending, still listening" (``shutdown(SHUT_WR)``).

        Everything already handed to :meth:`send` is sent first; then the peer
        reads end-of-stream. You can still :meth:`receive`. Call it once.

        Raises:
            ConnectionClosed: the connection is closed.
            NotImplementedError: the transport cannot half-close. TLS cannot: its
                close_notify alert closes both directions. Nothing is sent; use a
                framing that marks the end of a message instead.
        """
        if self._writer.transport.is_closing():
            raise ConnectionClosed("cannot send EOF: connection is closed")
        if not self._writer.can_write_eof():
            raise NotImplementedError(
                "this transport cannot half-close (TLS cannot: closing TLS closes both "
                "directions); frame the end of the message instead of using send_eof()"
            )
        await self._drain()
        self._writer.write_eof()

    # --- closing -----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; unsent data is still flushed. Then call :meth:`wait_closed`."""
        self._closed = True
        self._writer.close()

    def abort(self) -> None:
        """Close at once, dropping unsent data; the peer sees a reset."""
        self._closed = True
        self._writer.transport.abort()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed. Never raises for connection errors."""
        with contextlib.suppress(ConnectionError, _ssl.SSLError):
            await self._writer.wait_closed()

    def is_closing(self) -> bool:
        """Return whether the connection is closed or closing."""
        return self._closed or self._writer.transport.is_closing()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()

    # --- information ---------------------------------------------------------------

    @property
    def local_address(self) -> Any:
        """This end's address (``(host, port)`` for TCP, a path for Unix sockets)."""
        return self._writer.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer's address (``(host, port)`` for TCP; often ``""`` for Unix sockets)."""
        return self._writer.get_extra_info("peername")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return transport information, as :meth:`asyncio.BaseTransport.get_extra_info`."""
        return self._writer.get_extra_info(name, default)

    def __repr__(self) -> str:
        return f"<Connection {self.remote_address!r} {self.framing!r}>"


# --- clients ---------------------------------------------------------------------------


async def connect(
    host: str | None,
    port: int | str | None,
    *,
    framing: Framing,
    ssl: _ssl.SSLContext | bool | None = None,
    read_size: int = DEFAULT_READ_SIZE,
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    **kwargs: Any,
) -> Connection:
    """Open a TCP connection and return it framed with ``framing``.

    ``ssl`` and other keyword arguments go to :func:`asyncio.open_connection`.
    Raises :class:`OSError` if the connection cannot be made.
    """
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl, limit=read_size, **kwargs)
    _nodelay(writer)
    return Connection(
        reader, writer, framing, read_size=read_size, write_high_water=write_high_water
    )


async def connect_unix(
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    read_size: int = DEFAULT_READ_SIZE,
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    **kwargs: Any,
) -> Connection:
    """Open a Unix-socket connection and return it framed with ``framing``."""
    reader, writer = await asyncio.open_unix_connection(path, limit=read_size, **kwargs)
    return Connection(
        reader, writer, framing, read_size=read_size, write_high_water=write_high_water
    )


def _nodelay(writer: asyncio.StreamWriter) -> None:
    # Messages are written whole, so Nagle's algorithm only adds latency.
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- servers ---------------------------------------------------------------------------


class Server:
    """A listening server that runs ``handler(connection)`` for every client.

    Returned by :func:`serve`; ``await`` it to start listening, or use
    ``async with`` (which also closes it). An exception in a handler is logged
    and closes that client's connection only; the server goes on. When a
    handler returns, its connection is closed for it.
    """

    def __init__(self, start: Callable[[], Awaitable[asyncio.Server]]) -> None:
        self._start = start
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._connections: set[Connection] = set()

    async def start(self) -> Server:
        """Start listening (done for you by ``await`` and ``async with``)."""
        if self._server is None:
            self._server = await self._start()
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
        """Serve until cancelled or closed."""
        await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise

    def close(self) -> None:
        """Stop listening and close every client connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close()

    async def wait_closed(self) -> None:
        """Wait until the listener is closed and every handler has finished."""
        if self._server is not None:
            await self._server.wait_closed()
        if self._handlers:
            await asyncio.wait(list(self._handlers))

    async def _run_handler(self, handler: Handler, conn: Connection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._connections.add(conn)
        try:
            await handler(conn)
        except (ConnectionClosed, ConnectionError) as exc:
            logger.debug("connection %r ended: %r", conn.remote_address, exc)
        except FramingError as exc:
            logger.warning("closing %r: %s", conn.remote_address, exc)
        except Exception:
            logger.exception("handler failed for %r; closing that connection", conn.remote_address)
        finally:
            self._handlers.discard(task)
            self._connections.discard(conn)
            conn.close()
            await conn.wait_closed()


def serve(
    handler: Handler,
    host: str | None,
    port: int | None,
    *,
    framing: Framing,
    ssl: _ssl.SSLContext | None = None,
    read_size: int = DEFAULT_READ_SIZE,
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    **kwargs: Any,
) -> Server:
    """Serve framed TCP connections: ``async with serve(handler, host, port, framing=...)``.

    ``handler(conn)`` runs in its own task for each client; the connection is
    closed when it returns or raises (exceptions are logged, the server goes on).
    Port 0 picks a free port: read it from ``server.port``. ``ssl`` and other
    keyword arguments go to :func:`asyncio.start_server`.
    """
    server = Server(
        lambda: asyncio.start_server(accept, host, port, ssl=ssl, limit=read_size, **kwargs)
    )

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _nodelay(writer)
        conn = Connection(
            reader, writer, framing, read_size=read_size, write_high_water=write_high_water
        )
        await server._run_handler(handler, conn)

    return server


def serve_unix(
    handler: Handler,
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    read_size: int = DEFAULT_READ_SIZE,
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    **kwargs: Any,
) -> Server:
    """Serve framed connections on a Unix socket at ``path``; otherwise as :func:`serve`."""
    server = Server(lambda: asyncio.start_unix_server(accept, path, limit=read_size, **kwargs))

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(
            reader, writer, framing, read_size=read_size, write_high_water=write_high_water
        )
        await server._run_handler(handler, conn)

    return server
