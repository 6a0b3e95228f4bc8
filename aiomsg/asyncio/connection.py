"""The Streams front's connection: ``await conn.receive()`` and ``await conn.send(msg)``.

A :class:`Connection` is driven by a small :class:`~aiomsg.MessageProtocol`
that decodes each read as it arrives and queues the messages; ``receive()``
serves them from that queue without suspending while it is not empty. So the
Streams front costs little more than the Protocol front, and much less than a
``StreamReader.readexactly()`` loop. :func:`~aiomsg.connect` and
:func:`~aiomsg.serve` (and their Unix-socket twins) make connections;
:meth:`Connection.wrap` adopts a ``(reader, writer)`` pair from
:func:`asyncio.open_connection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl as _ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any

from .._memory_budget import SMALL
from .._read_budget import MESSAGE_COST, first_read, fit_read, max_batch
from ..errors import BusyError, ConnectionClosed, ConnectionTimeout, FramingError, fresh
from ..framing import Buffer, FixedLength, Framing
from ..framing._accelerated import speedups
from ..options import Options, resolve_options
from .protocol import MessageProtocol

__all__ = ["Connection"]

# `async for` over a connection, in C when the speedups are built: a message that is
# already decoded is handed over without an async generator's step (see _speedups.c).
ReadyIterator = None if speedups is None else speedups.ReadyIterator


class _QueueProtocol(MessageProtocol):
    """Decodes into a queue that a :class:`Connection` reads; wakes the waiting receiver."""

    def __init__(
        self,
        framing: Framing,
        options: Options,
        on_connected: Callable[[_QueueProtocol], None] | None = None,
    ) -> None:
        super().__init__(framing=framing, options=options)
        self._pause_after = options.read_size  # a message this large pauses reading
        # At most this many messages per read, so that a read's messages cost about
        # read_size of memory whatever their size (see _fit_reads).
        self._max_batch = max_batch(options.read_size)
        # A slow start: a first read of tiny messages would cost seven read_sizes.
        self._reads = self._buffer[: first_read(options.read_size)]
        self._reads_shortened = len(self._reads) < len(self._buffer)
        self.ready: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        # Raised (a fresh copy) once `ready` is drained; kept without traceback.
        self.error: BaseException | None = None
        self.at_eof = False
        # Whether resume_reading() has anything to do: reading paused, or unread
        # messages counted in the memory budget. Connection skips the call otherwise.
        self.resume_wanted = False
        self._on_connected = on_connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._on_connected is not None:
            self._on_connected(self)
            self._on_connected = None

    def messages_received(self, messages: list[bytes]) -> None:
        if not messages:  # a read inside a long message: nothing to wake the receiver for
            return
        count = len(messages)
        if count > self._max_batch or (count < self._max_batch >> 2 and self._reads_shortened):
            self._fit_reads(count)
        if self.ready or len(messages[-1]) >= self._pause_after:
            # Stop reading until the application catches up: when it is a batch
            # behind, so that decoded messages never pile up without bound; and
            # after a message as large as a read, so that such messages are not
            # read ahead (several alive at once make the C allocator hand memory
            # back to the OS and fetch it again: half the speed, measured).
            self.pause_reading()
            self.ready.extend(messages)
            if self._budget is not None:
                self._count_unread()
        else:
            self.ready.extend(messages)
            if self._budget is not None:
                # Weighed before the application has had a chance to take them (it
                # may never): by the read's size, not per message, on this hot path.
                # The queue was empty: the earlier ones were all taken.
                held = self._read_bytes + MESSAGE_COST * count
                if held >= SMALL or self._held_unread:
                    self._held_unread = held if held >= SMALL else 0
                    self.resume_wanted = self.resume_wanted or bool(self._held_unread)
                    self._count_held()
        waiter = self.waiter  # wake(), inlined on this hot path
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _count_unread(self) -> None:
        """Reading paused with messages waiting: weigh them in the memory budget (a
        message costs its payload and MESSAGE_COST). Once per pause, not per read: at
        most two reads' worth of messages wait then."""
        ready = self.ready
        self._held_unread = sum(map(len, ready)) + MESSAGE_COST * len(ready)
        self._count_held()

    def pause_reading(self) -> None:
        self.resume_wanted = True
        super().pause_reading()

    def resume_reading(self) -> None:
        if self._held_unread and not self.ready:  # the application took them all
            self._held_unread = 0
            self._count_held()
        self.resume_wanted = bool(self._held_unread)
        super().resume_reading()

    def _fit_reads(self, count: int) -> None:
        """Read less at a time while messages are tiny, more again when they are not
        (see ``_read_budget``): the waiting messages are bounded by their memory."""
        full = len(self._buffer)
        size = fit_read(len(self._reads), full, count)
        self._reads = self._buffer if size >= full else self._buffer[:size]
        self._reads_shortened = size < full

    def peer_closed(self) -> bool:
        self.at_eof = True
        self.wake()
        # Keep the connection open: the application may still send. Not over
        # TLS, where the peer's close_notify closes both directions (asyncio
        # would log a warning for asking).
        return self.transport is not None and self.transport.get_extra_info("sslcontext") is None

    def framing_error(self, exc: FramingError) -> bool:
        # The good messages are queued already; the error comes after them.
        # Nothing more is decoded; the application closes when it meets the
        # error, and that close lingers (see MessageProtocol.framing_error).
        self.error = exc
        self.wake()
        return True

    def connection_timed_out(self, exc: ConnectionTimeout) -> None:
        # The connection closes now; the receiver meets the error after the
        # messages that arrived before it. The server logs it where the
        # handler ends, so nothing is logged here.
        self.error = exc
        self.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.error is None and (exc is not None or not self.at_eof):
            self.error = self.close_error
        self.wake()

    def _take_undelivered(self) -> list[bytes]:
        taken = list(self.ready)  # the messages the application has not received
        self.ready.clear()
        return taken

    def _undelivered_count(self) -> int:
        return len(self.ready)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Connection:
    """A framed connection: send and receive whole messages.

    Make one with :func:`connect` or :func:`serve` (or :meth:`wrap`). Use it as an
    async context manager (closes on exit) and iterate it with
    ``async for message in conn``, which ends when the peer closes cleanly.

    Only one task may receive at a time: a second concurrent ``receive()``
    raises :class:`~aiomsg.BusyError`. Several tasks may send (each
    message is written whole). A cancelled ``receive()`` loses no message.
    """

    def __init__(self, protocol: _QueueProtocol) -> None:
        """Internal: use :func:`connect`, :func:`serve` or :meth:`wrap`."""
        self._protocol = protocol
        self._ready = protocol.ready
        self._loop = protocol.loop  # connected: every maker calls this after connection_made
        self._receiving = False
        self._closed = False

    @classmethod
    def wrap(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framing: Framing,
        *,
        options: Options | None = None,
        **deprecated: Any,
    ) -> Connection:
        """Adopt a connection made by :func:`asyncio.open_connection` (or a server callback).

        The transport is handed to aiomsg; bytes the reader had already buffered
        are decoded first. Do not use ``reader`` or ``writer`` afterwards.
        ``options`` are those of :func:`connect` (``ValueError`` for a heartbeat
        the framing cannot carry, before anything is taken over; the old option
        keywords still work for one release, with a :class:`DeprecationWarning`).
        """
        chosen = resolve_options("Connection.wrap", options, framing, deprecated, strict=True)
        protocol = _QueueProtocol(framing, chosen)
        transport = writer.transport
        # StreamReader keeps what it read but nobody asked for yet in `_buffer`;
        # there is no public way to take it, and it must not be lost.
        pending = bytes(getattr(reader, "_buffer", b""))
        reached_eof = reader.at_eof() or bool(getattr(reader, "_eof", False))
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        buffer = protocol.get_buffer(-1)
        for start in range(0, len(pending), len(buffer)):  # as the event loop would hand it over
            chunk = pending[start : start + len(buffer)]
            buffer[: len(chunk)] = chunk
            protocol.buffer_updated(len(chunk))
        if reached_eof:
            protocol.eof_received()
        elif isinstance(transport, asyncio.ReadTransport) and not transport.is_reading():
            transport.resume_reading()  # StreamReader paused it when its buffer filled
        return cls(protocol)

    # --- receiving ---------------------------------------------------------------

    async def receive(self) -> bytes:
        """Return the next message.

        Served from the messages already decoded when there are some, without
        suspending; otherwise waits until the next one is complete.

        Raises:
            ConnectionClosed: the peer closed cleanly after its last message (or
                the connection was closed locally, or lost: then ``__cause__`` is
                the :class:`OSError`). Stop receiving; close the connection.
            IncompleteMessageError: the peer closed in the middle of a message.
            MessageTooLarge, FramingError: the peer broke the framing. Messages
                that arrived before the bad bytes are delivered first. Close the
                connection: the stream cannot be resynchronised.
            BusyError: another task is already receiving.
        """
        if self._ready:
            return self._ready.popleft()
        if not await self._wait_ready():
            raise ConnectionClosed("the peer closed the connection", reason="peer")
        return self._ready.popleft()

    def receive_nowait(self) -> bytes | None:
        """Return a message that has already arrived, or ``None`` if none is waiting.

        Never waits and never raises: after ``None``, ``await`` :meth:`receive`
        to wait for the next message (or to learn why none will come).
        """
        return self._ready.popleft() if self._ready else None

    async def receive_or_none(self) -> bytes | None:
        """Return the next message, or ``None`` once the peer has closed cleanly.

        The same as :meth:`receive`, except that a clean end of stream returns
        ``None`` (as ``async for`` ends) instead of raising
        :class:`~aiomsg.ConnectionClosed`; everything else raises as there.
        """
        if self._ready:
            return self._ready.popleft()
        if not await self._wait_ready():
            return None
        return self._ready.popleft()

    async def _wait_ready(self) -> bool:
        """Wait until a message is ready (``True``) or the peer closed cleanly (``False``).

        Raises what :meth:`receive` raises for a broken or closed connection.
        """
        if self._receiving:
            raise BusyError("another task is already receiving on this connection")
        protocol = self._protocol
        self._receiving = True
        try:
            while not self._ready:
                error = protocol.error
                if error is not None:
                    # A fresh exception each time: re-raising the kept one would
                    # grow its traceback and tie it to these frames.
                    raise fresh(error) from error.__cause__
                if protocol.at_eof:
                    return False
                if self._closed:
                    raise ConnectionClosed("this side closed the connection", reason="local")
                if protocol.resume_wanted:  # a call per wait saved when it would do nothing
                    protocol.resume_reading()  # caught up: read again
                protocol.waiter = waiter = self._loop.create_future()
                await waiter
            return True
        finally:
            self._receiving = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if ReadyIterator is not None:
            return ReadyIterator(self._ready, self._next_or_end)
        return self._iterate()

    async def _next_or_end(self) -> bytes:
        """The C iterator's way when no message is waiting: wait for one."""
        if not self._ready and not await self._wait_ready():
            raise StopAsyncIteration  # a clean end of stream ends the loop
        return self._ready.popleft()

    async def _iterate(self) -> AsyncIterator[bytes]:
        """The same iteration in pure Python (no C speedups)."""
        ready = self._ready
        while True:
            while ready:
                yield ready.popleft()
            if not await self._wait_ready():
                return  # a clean end of stream ends the loop

    # --- changing shape part-way: another framing, raw bytes, TLS ----------------

    @property
    def framing(self) -> Framing:
        """The framing that decodes what the peer sends (and, unless :meth:`set_framing`
        gave another, encodes what :meth:`send` sends)."""
        return self._protocol.receive_framing

    @property
    def send_framing(self) -> Framing:
        """The framing :meth:`send` encodes with."""
        return self._protocol.send_framing

    def set_framing(
        self,
        framing: Framing | None = None,
        *,
        receive: Framing | None = None,
        send: Framing | None = None,
    ) -> None:
        """Switch to another framing at a message boundary, losing no byte.

        ``framing`` sets both directions; ``receive`` or ``send`` one of them. The
        new receive framing takes over right after the last message
        :meth:`receive` returned: whatever had arrived behind it (messages decoded
        but not yet received, a partial message) is decoded again by the new
        framing, so the peer may send its next bytes in the same segment as the
        message that announced the switch::

            header = await conn.receive_exactly(8)   # AMQP's protocol header, raw
            conn.set_framing(aiomsg.recipes.amqp())  # then frames

        Raises:
            ValueError: messages decoded but not yet received cannot be given back
                exactly by the old framing (``Lines``, ``Varint``): receive them
                first, or read the bytes before the switch with
                :meth:`receive_exactly`. Or: a heartbeat the new framing cannot
                carry. Nothing was changed.
            FramingError: the bytes behind the boundary break the new framing;
                :meth:`receive` then raises it too, after the good messages.
        """
        self._protocol.set_framing(framing, receive=receive, send=send)

    async def receive_exactly(self, n: int) -> bytes:
        """Return the next ``n`` bytes as they are, outside any framing (PostgreSQL's
        one-byte answer to SSLRequest, AMQP's 8-byte protocol header), then go on
        with the framing as before.

        Raises what :meth:`receive` raises (:class:`~aiomsg.IncompleteMessageError`
        if the stream ends first) and :meth:`set_framing`'s ``ValueError``.
        """
        current = self._protocol.receive_framing
        self.set_framing(receive=FixedLength(n))
        try:
            return await self.receive()
        finally:
            if not self._protocol.is_closing():
                self.set_framing(receive=current)

    async def send_raw(self, data: Buffer) -> None:
        """Send ``data`` as it is, outside any framing; wait while the peer is behind.

        Raises:
            ConnectionClosed: the connection is closed.
            TypeError: ``data`` is not bytes-like.
        """
        self._protocol.send_raw(data)
        if self._protocol.needs_drain:
            await self._protocol.drain()

    async def start_tls(
        self,
        ssl_context: _ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
    ) -> None:
        """Upgrade this connection to TLS in place (STARTTLS, PostgreSQL's SSLRequest).

        Call it at the message boundary the protocol agreed on: a client after the
        server said yes, a server (``server_side=True``) after it said yes.
        Everything sent before goes out in plaintext first; afterwards the framing
        runs over TLS as before. ``server_hostname`` is the name a client checks
        the certificate against (when ``ssl_context`` checks it). The handshake
        must finish within the options' ``tls_handshake_timeout``.

        Bytes the peer sent behind the boundary before the handshake are never
        taken as TLS nor silently dropped: this raises instead.

        Raises:
            FramingError: the peer had already sent something after the boundary
                (a peer that did not wait, or injected plaintext); the connection
                is still plaintext: close it.
            ConnectionClosed: the connection is closed.
            ssl.SSLError, TimeoutError: the handshake failed or took too long.
        """
        await self._protocol.start_tls(
            ssl_context, server_side=server_side, server_hostname=server_hostname
        )

    # --- text and JSON (helpers over the bytes path, which they do not slow) ------

    async def receive_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """Return the next message decoded as text.

        Raises what :meth:`receive` raises, and :class:`UnicodeDecodeError` (a
        ``ValueError``) if the message is not valid ``encoding``: that message
        is consumed; the connection is still usable.
        """
        return (await self.receive()).decode(encoding, errors)

    async def send_text(self, text: str, encoding: str = "utf-8") -> None:
        """Send ``text`` encoded as one message. Raises what :meth:`send` raises."""
        await self.send(text.encode(encoding))

    async def receive_json(self) -> Any:
        """Return the next message parsed as JSON (UTF-8).

        Raises what :meth:`receive` raises, and :class:`json.JSONDecodeError` (a
        ``ValueError``) if it is not JSON: that message is consumed; the
        connection is still usable.
        """
        return json.loads(await self.receive())

    async def send_json(self, value: Any) -> None:
        """Send ``value`` as one compact JSON message (UTF-8).

        Raises :class:`TypeError` if it cannot be serialised (nothing is sent),
        and what :meth:`send` raises.
        """
        await self.send(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())

    # --- sending -----------------------------------------------------------------

    async def send(self, message: Buffer) -> None:
        """Send one message; wait while the peer is behind (write buffer over its high-water mark).

        Raises:
            MessageTooLarge, FramingError: the framing cannot carry ``message``;
                nothing was sent.
            ConnectionClosed: the connection is closed or was lost; the message may
                not have been delivered.
        """
        protocol = self._protocol
        protocol.send(message)
        if protocol.needs_drain:
            await protocol.drain()  # a coroutine call costs: skip it when it would return at once

    async def send_many(self, messages: Iterable[Buffer]) -> None:
        """Send several messages with one write; wait while the peer is behind.

        Raises what :meth:`send` raises; if a message cannot be encoded, none is sent.
        """
        self._protocol.send_many(messages)
        await self._protocol.drain()

    async def drain(self) -> None:
        """Wait while the write buffer is over its high-water mark (``send()`` does this).

        Raises:
            ConnectionClosed: the connection was lost.
        """
        await self._protocol.drain()

    @property
    def transport(self) -> asyncio.Transport | None:
        """The asyncio transport (``None`` before the connection is made).

        Bytes written to it directly bypass the framing: the peer must expect them.
        Do not pause or resume its reading: the connection does that.
        """
        return self._protocol.transport

    def can_send_eof(self) -> bool:
        """Return whether :meth:`send_eof` is possible (False over TLS)."""
        transport = self._protocol.transport
        return transport is not None and transport.can_write_eof()

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
        self._protocol.send_eof()
        await self._protocol.drain()

    # --- closing -----------------------------------------------------------------

    def close(self, *, linger: bool = False) -> None:
        """Close the connection; unsent data is still flushed. Then call :meth:`wait_closed`.

        After the peer broke the framing, the close lingers: what was sent (an
        error notice, say) is flushed and followed by EOF, and the peer's further
        bytes are dropped until it closes too (at most ``linger_timeout`` seconds),
        so that a reset does not destroy the notice. ``linger=True`` makes any
        close linger so: for a last message (a goodbye) to a peer that may still
        be sending.
        """
        self._closed = True
        self._protocol.close(linger=linger)
        self._protocol.wake()

    def abort(self) -> None:
        """Close at once, dropping unsent data; the peer sees a reset."""
        self._closed = True
        self._protocol.abort()
        self._protocol.wake()

    async def aclose(self) -> None:
        """Close and wait until closed (:meth:`close`, then :meth:`wait_closed`), as anyio's
        ``aclose()``. Safe to call twice; never raises for connection errors."""
        self.close()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed. Never raises for connection errors."""
        with contextlib.suppress(ConnectionError, _ssl.SSLError):
            await self._protocol.wait_closed()

    def is_closing(self) -> bool:
        """Return whether the connection is closed or closing."""
        return self._closed or self._protocol.is_closing()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- information ---------------------------------------------------------------

    @property
    def local_address(self) -> Any:
        """This end's address (``(host, port)`` for TCP, a path for Unix sockets)."""
        return self.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer's address (``(host, port)`` for TCP; often ``""`` for Unix sockets).

        On a server with ``proxy_protocol=``: the client's address from the PROXY
        header (``get_extra_info("proxy_header")``), or the real peer's for a
        ``LOCAL`` or ``UNKNOWN`` header; ``get_extra_info("peername")`` stays the
        load balancer's.
        """
        return self._protocol.remote_address

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return transport information, as :meth:`asyncio.BaseTransport.get_extra_info`,
        and ``"proxy_header"``: the :class:`~aiomsg.ProxyHeader` the load balancer sent
        (``default`` when there was none)."""
        if name == "proxy_header":
            header = self._protocol.proxy_header
            return default if header is None else header
        transport = self._protocol.transport
        return transport.get_extra_info(name, default) if transport else default

    def __repr__(self) -> str:
        return f"<Connection {self.remote_address!r} {self.framing!r}>"
