"""The asyncio Protocol front: subclass :class:`MessageProtocol`, get ``message_received(msg)``.

Built on :class:`asyncio.BufferedProtocol`: the event loop reads straight into
one reusable buffer, and each read is decoded in one call. This is the fastest
front, for applications happy with callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Iterable
from typing import Any, ClassVar, cast

from .errors import ConnectionClosed, FramingError
from .framing import Buffer, Framing

__all__ = ["DEFAULT_READ_SIZE", "DEFAULT_WRITE_HIGH_WATER", "MessageProtocol"]

logger = logging.getLogger("aiomsg")

#: Bytes read per system call: large reads amortise the per-read cost over many messages.
DEFAULT_READ_SIZE = 256 * 1024
#: Unsent bytes above which ``drain()`` (and the Streams ``send()``) wait for the peer.
DEFAULT_WRITE_HIGH_WATER = 256 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)
# Messages this large go to writelines() as header + body, not copied into one object.
_COPY_LIMIT = 64 * 1024


class MessageProtocol(asyncio.BufferedProtocol):
    """A protocol that speaks in messages. Subclass it and override :meth:`message_received`.

    Give the framing as a class attribute (``framing = aiomsg.Lines()``) or to the
    constructor. Use it like any protocol: ``loop.create_server(Chat, host, port)``
    or ``loop.create_connection(lambda: Chat(framing=...), host, port)``.

    Callbacks you may override:

    * :meth:`message_received` - one complete message (required).
    * :meth:`peer_closed` - the peer half-closed after its last message.
    * :meth:`framing_error` - the peer broke the framing; the connection is then closed.
    * ``connection_made`` / ``connection_lost`` - as in asyncio; call ``super()``.

    Flow control: :meth:`send` never blocks; ``await`` :meth:`drain` to wait while
    the write buffer is over its high-water mark. Call :meth:`pause_reading`
    while the application is behind, and :meth:`resume_reading` after.
    """

    framing: ClassVar[Framing | None] = None
    read_size: ClassVar[int] = DEFAULT_READ_SIZE
    write_high_water: ClassVar[int] = DEFAULT_WRITE_HIGH_WATER
    #: Seconds a close after a framing error waits for the peer to close too.
    linger_timeout: ClassVar[float] = 2.0

    transport: asyncio.Transport | None

    def __init__(
        self,
        *,
        framing: Framing | None = None,
        read_size: int | None = None,
        write_high_water: int | None = None,
    ) -> None:
        chosen = framing if framing is not None else type(self).framing
        if chosen is None:
            raise TypeError(f"{type(self).__name__} needs a framing (class attribute or argument)")
        self._framing: Framing = chosen
        self._decoder = chosen.decoder()
        self._buffer = memoryview(bytearray(read_size or self.read_size))
        self._write_high_water = write_high_water or self.write_high_water
        self.transport = None
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._reading_paused = False
        self._lost: BaseException | None = None
        self._closed = False
        self._closed_waiter: asyncio.Future[None] | None = None
        self._discarding = False
        self._peer_eof = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self._batch: list[bytes] = []  # the messages being delivered
        self._reading_into_body = False  # get_buffer() handed out the decoder's read window

    # --- asyncio callbacks: override the user-facing ones, not these ---------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport and set the write limit. Call ``super()`` if you override it."""
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=self._write_high_water)

    def get_buffer(self, sizehint: int) -> memoryview:
        # Inside a body longer than a read, the loop reads straight into the
        # message being built (with the C speedups): a copy saved per byte.
        window = self._decoder._read_window(len(self._buffer))
        self._reading_into_body = window is not None
        return self._buffer if window is None else window

    def buffer_updated(self, nbytes: int) -> None:
        if self._reading_into_body:  # the bytes are in the body already; they end no message
            self._reading_into_body = False
            self._decoder._advance(nbytes)
            return
        if self._discarding or self._closed:  # after a framing error or close(): dropped
            return
        try:
            messages = self._decoder.feed(self._buffer[:nbytes])
        except FramingError as exc:
            self._deliver(exc.messages)
            self._fail(exc)
            return
        self._deliver(messages)

    def eof_received(self) -> bool:
        self._peer_eof = True
        if self._discarding:
            return False  # the lingering close is over: let asyncio close
        try:
            messages = self._decoder.feed_eof()
        except FramingError as exc:
            self._fail(exc)
            return False
        self._deliver(messages)
        return bool(self.peer_closed())

    def _deliver(self, messages: list[bytes]) -> None:
        # When the application closes, _stop_delivery() empties this list, which
        # ends the loop: cheaper than testing a flag before every message.
        self._batch = messages
        received = self.message_received
        for message in messages:
            received(message)

    def _stop_delivery(self) -> None:
        """The application no longer wants messages: drop the rest of this batch."""
        self._closed = True
        self._batch.clear()

    def _fail(self, exc: FramingError) -> None:
        """The peer broke the framing: tell the application, then close (lingering)."""
        self._discarding = True
        try:
            self.framing_error(exc)
        finally:
            self._linger_close()

    def _linger_close(self) -> None:
        """Close so that what was queued (an error notice) reaches the peer.

        Closing a socket that still has unread input makes the kernel send a
        reset, which can destroy the notice before the peer reads it. So: send
        what is queued, then EOF; read and drop whatever the peer still sends
        until it closes too, or for ``linger_timeout`` seconds at most; then close.
        """
        transport = self.transport
        self._stop_delivery()
        if transport is None or transport.is_closing():
            return
        if self._peer_eof or not transport.can_write_eof():
            transport.close()
            return
        self._discarding = True
        if not transport.is_reading():  # paused by the application: the peer's bytes must drain
            transport.resume_reading()
        transport.write_eof()
        self._linger_timer = asyncio.get_running_loop().call_later(self.linger_timeout, self.abort)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake every :meth:`drain` waiter. Call ``super()`` if you override it."""
        self._stop_delivery()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        self._lost = ConnectionClosed(f"connection lost: {exc}" if exc else "connection closed")
        self._lost.__cause__ = exc
        self._wake_drainers(self._lost)
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)

    def _wake_drainers(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    # --- what subclasses override ------------------------------------------------

    def message_received(self, message: bytes) -> None:
        """Called with each complete message, in order. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must define message_received()")

    def peer_closed(self) -> bool:
        """Called when the peer half-closed, after its last message was delivered.

        Return ``True`` to keep the connection open for sending (a request/response
        server answers now, then calls :meth:`close`); the default ``False`` lets
        asyncio close the connection.
        """
        return False

    def framing_error(self, exc: FramingError) -> None:
        """Called when the peer broke the framing (``MessageTooLarge``, a bad header...).

        The messages before the bad bytes have already been delivered. You may
        :meth:`send` a last notice here. After this returns the connection is
        closed: the stream cannot be resynchronised, so nothing more is decoded;
        what was queued is sent, then EOF, and the peer gets ``linger_timeout``
        seconds to close its side before the connection is aborted. The default
        logs a warning.
        """
        peer = self.transport.get_extra_info("peername") if self.transport else None
        logger.warning("closing connection from %r: %s", peer, exc)

    # --- what the application calls -----------------------------------------------

    def send(self, message: Buffer) -> None:
        """Queue one message for sending; never blocks (``await drain()`` for back-pressure).

        Raises:
            MessageTooLarge, FramingError: the framing cannot carry it; nothing sent.
            ConnectionClosed: the connection is closed or not yet made.
        """
        transport = self.transport  # _writable(), inlined on this hot path
        if transport is None or transport.is_closing():
            raise ConnectionClosed("cannot send: connection is closed")
        if len(message) < _COPY_LIMIT:
            transport.write(self._framing.encode(message))
        else:
            transport.writelines(self._framing.encode_parts(message))

    def send_many(self, messages: Iterable[Buffer]) -> None:
        """Queue several messages with one write. Raises what :meth:`send` raises."""
        self._writable().write(self._framing.encode_many(messages))

    def send_eof(self) -> None:
        """Half-close after what was queued: ``shutdown(SHUT_WR)``, "done sending, still listening".

        Raises:
            ConnectionClosed: the connection is closed.
            NotImplementedError: the transport cannot half-close (TLS cannot);
                nothing is sent.
        """
        transport = self._writable()
        if not transport.can_write_eof():
            raise NotImplementedError(
                "this transport cannot half-close (TLS cannot: closing TLS closes both "
                "directions); frame the end of the message instead of using send_eof()"
            )
        transport.write_eof()

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark.

        Raises:
            ConnectionClosed: the connection was lost; unsent data may be lost.
        """
        if self._lost is not None:
            raise self._lost
        if not self._write_paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def pause_reading(self) -> None:
        """Stop reading from the peer until :meth:`resume_reading`; calls may repeat."""
        if not self._reading_paused and self.transport is not None and not self._closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the peer again after :meth:`pause_reading`; calls may repeat."""
        if self._reading_paused and self.transport is not None and not self._closed:
            self._reading_paused = False
            self.transport.resume_reading()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (``connection_lost`` has run)."""
        if self._lost is not None or self.transport is None:
            return
        if self._closed_waiter is None:
            self._closed_waiter = asyncio.get_running_loop().create_future()
        await self._closed_waiter

    def close(self) -> None:
        """Close after sending what was queued; no more messages are delivered."""
        self._stop_delivery()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping queued data; the peer sees a reset (TCP RST)."""
        self._stop_delivery()
        if self.transport is not None:
            # Without SO_LINGER=0 a socket whose input was all read closes with a
            # FIN, which the peer cannot tell from a clean (empty) answer.
            sock = self.transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            self.transport.abort()

    def _writable(self) -> asyncio.Transport:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionClosed("cannot send: connection is closed")
        return transport

    @property
    def remote_address(self) -> Any:
        """The peer's address, or ``None`` before the connection is made."""
        return self.transport.get_extra_info("peername") if self.transport else None
