"""A :class:`FramedStream` on aiomsg's own asyncio transport (what ``connect_framed`` and
``serve_framed`` make on asyncio): the Streams front's :class:`~aiomsg.Connection` reads,
decodes, bounds memory and keeps the timeouts; this class speaks anyio's contract."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute

from ..asyncio.connection import Connection
from ..errors import BusyError, ConnectionClosed, ConnectionTimeout
from ..framing import Buffer
from .framed_stream import FramedStream, ReadyIterator
from .proxied import ProxyAttribute

__all__ = ["ConnectionFramedStream"]


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
        header = conn.get_extra_info("proxy_header")
        if header is not None:  # remote_address is already the client's: add the rest
            peer = _address(conn.get_extra_info("peername"))
            attributes.update(
                {ProxyAttribute.header: lambda: header, ProxyAttribute.proxy_address: lambda: peer}
            )
            if isinstance(header.source, str):  # an AF_UNIX client has no port
                attributes.pop(SocketAttribute.remote_port, None)
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


class ConnectionFramedStream(FramedStream):
    """A FramedStream on aiomsg's transport protocol (asyncio): same contract, bounded reads.

    The Streams :class:`~aiomsg.Connection` does the reading, decoding, limits
    and timeouts; this class only speaks anyio's exception contract.
    """

    def __init__(self, conn: Connection) -> None:
        # Not FramedStream.__init__: its decoder, queue and send lock would go
        # unused here (the Connection has its own), at a few KiB per connection.
        self.transport_stream = _ConnectionBytes(conn)
        self.framing = conn.framing
        self.send_framing = conn.send_framing
        self._conn = conn
        self._take = conn.receive_nowait
        self._closed = False

    @property
    def connection(self) -> Connection:
        """The Streams connection this stream speaks anyio's contract for."""
        return self._conn

    async def receive(self) -> bytes:
        # Served from the messages already decoded without a cancellation check:
        # see the class docstring. (anyio's check costs 2 us per message here,
        # four times everything else.)
        if not self._closed:
            message = self._take()
            if message is not None:
                return message
            try:  # the wait, here rather than in a coroutine of its own: one fewer
                message = await self._conn.receive_or_none()
            except BusyError as exc:  # anyio's contract names its own error
                raise anyio.BusyResourceError("receiving from") from exc
            except ConnectionTimeout:
                raise
            except ConnectionClosed as exc:
                if self._closed:
                    raise anyio.ClosedResourceError from None
                raise anyio.BrokenResourceError(str(exc)) from exc.__cause__
            if message is not None:
                if self._conn._ready:  # this read brought more: the peer may keep it full
                    await self._let_cancellation_in(message)
                return message
            raise anyio.EndOfStream
        raise anyio.ClosedResourceError

    async def _let_cancellation_in(self, message: bytes) -> None:
        """A bare yield to the loop, after a read that brought more than one message.

        Why: anyio on asyncio delivers a cancellation (a scope cancelled from inside
        its task, a deadline already past) by retrying once per loop turn, and skips
        a task whose wait is already answered. A peer that keeps the socket full
        answers the receiver's wait before every retry (the loop runs I/O first),
        so without this yield the cancellation would wait for the peer to pause.
        While the task yields it waits on nothing, and the retry cancels it. Once
        per read, not per message: a read that brings one message costs nothing.
        If cancelled here, the message goes back to the front of the queue.
        """
        try:
            await asyncio.sleep(0)
        except BaseException:
            self._conn._ready.appendleft(message)
            raise

    def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        if ReadyIterator is not None:  # in C, as Connection's own (aclose() empties the queue)
            return ReadyIterator(self._conn._ready, self.receive, None, anyio.EndOfStream)
        # An async generator, as Connection's own: resuming one costs less than
        # the coroutine per message of ObjectReceiveStream.__anext__.
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        take = self._take
        while True:
            message = None if self._closed else take()
            if message is None:
                try:
                    message = await self.receive()
                except anyio.EndOfStream:
                    return
            yield message

    async def send(self, item: Buffer) -> None:
        # _anyio_errors(), inlined: a generator-based context manager costs three calls
        # per message here.
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            await self._conn.send(item)
        except ConnectionClosed as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc.__cause__

    async def send_many(self, items: Iterable[Buffer]) -> None:
        with self._anyio_errors():
            await self._conn.send_many(items)

    async def send_eof(self) -> None:
        with self._anyio_errors():
            await self._conn.send_eof()

    def set_framing(self, *args: Any, **kwargs: Any) -> None:  # FramedStream's, on conn
        self._conn.set_framing(*args, **kwargs)
        self.framing, self.send_framing = self._conn.framing, self._conn.send_framing

    async def receive_exactly(self, n: int) -> bytes:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            message = await self._conn.receive_exactly(n)
        except BusyError as exc:
            raise anyio.BusyResourceError("receiving from") from exc
        except ConnectionTimeout:
            raise
        except ConnectionClosed as exc:
            if exc.reason == "peer":  # a clean end before any of the n bytes
                raise anyio.EndOfStream from None
            raise anyio.BrokenResourceError(str(exc)) from exc.__cause__
        self.framing = self._conn.framing
        return message

    async def send_raw(self, data: Buffer) -> None:
        with self._anyio_errors():
            await self._conn.send_raw(data)

    async def start_tls(  # FramedStream's, on the Connection
        self, ssl_context: ssl.SSLContext, *, server_side: bool = False, **kwargs: Any
    ) -> None:
        # asyncio's TLS always sends close_notify and accepts a peer that does not:
        # standard_compatible does not apply here.
        hostname = kwargs.get("hostname")
        with self._anyio_errors():
            await self._conn.start_tls(
                ssl_context, server_side=server_side, server_hostname=hostname
            )

    @contextlib.contextmanager
    def _anyio_errors(self) -> Iterator[None]:
        """Speak anyio's contract: closed here, or broken underneath."""
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            yield
        except ConnectionClosed as exc:
            raise anyio.BrokenResourceError(str(exc)) from exc.__cause__

    async def aclose(self) -> None:
        self._closed = True
        self._conn._ready.clear()  # unread messages are dropped, as FramedStream's aclose() does
        self._conn.close()
        await self._conn.wait_closed()
