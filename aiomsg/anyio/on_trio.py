"""A :class:`FramedStream` that reads the trio socket itself (what ``connect_framed`` and
``serve_framed`` make on trio, for plain TCP and Unix sockets).

anyio's trio ``SocketStream`` hands out one new ``bytes`` per read, through a
resource guard and trio's socket wrapper. This class reads the socket under it
with ``recv_into`` into a buffer shared by the thread's connections (so an idle
connection holds none), and feeds the decoder a view of it. Everything else
(sending, closing, addresses, TLS after ``start_tls``) still goes through the
anyio stream, and the clocks, limits and heartbeat are :class:`FramedStream`'s.

Each read is a full trio checkpoint, as ``trio.socket``'s own ``recv`` is: a
cancellation check before it, and a schedule point after it (or the wait for
the socket to become readable), taken once its messages are queued, so a
cancellation there loses nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import anyio
import trio
from anyio.abc import SocketAttribute, SocketStream

from .._read_budget import SPENT_READ
from .._read_buffer import shared_read_buffer
from ..framing import Buffer, Framing
from ..options import Options
from .framed_stream import FramedStream

__all__ = ["TrioFramedStream", "framed_on_trio"]


def framed_on_trio(stream: Any, framing: Framing, options: Options) -> FramedStream:
    """``stream`` (an anyio stream on trio) framed: on its trio socket when it is a plain
    socket stream, else (TLS) a :class:`FramedStream` around it."""
    sock = stream.extra(SocketAttribute.raw_socket, None)
    # trio's sockets are non-blocking (timeout 0): checked, not assumed.
    plain = isinstance(stream, SocketStream) and isinstance(sock, socket.socket)
    if plain and not sock.gettimeout():
        return TrioFramedStream(stream, framing, sock, options=options)
    return FramedStream(stream, framing, options=options)


class TrioFramedStream(FramedStream):
    """A FramedStream reading its trio socket directly (same contract, fewer calls per read).

    After :meth:`start_tls` the stream reads through anyio's TLS stream, as any
    FramedStream does.
    """

    def __init__(
        self,
        transport_stream: SocketStream,
        framing: Framing,
        sock: socket.socket,
        *,
        options: Options | None = None,
    ) -> None:
        super().__init__(transport_stream, framing, options=options)
        self._own_pull = False  # reads go through _pull() below
        self._socket_stream = transport_stream
        self._sock = sock
        self._buffer = shared_read_buffer(self._read_full)

    async def _pull(self) -> list[bytes]:
        if self.transport_stream is not self._socket_stream:  # TLS since start_tls
            return await super()._pull()
        await trio.lowlevel.checkpoint_if_cancelled()
        sock, decoder = self._sock, self._decoder
        waited = False
        while True:
            # A window only inside a message (the decoder holds a part), and none while
            # the memory budget is spent (reads are small then): a window may be as
            # large as the body received so far.
            window = (
                decoder.get_buffer(self._read_size)
                if self._held and self._read_size > SPENT_READ
                else None
            )
            try:
                if window is not None:  # inside a long body: read straight into it
                    n = sock.recv_into(window)
                else:
                    n = sock.recv_into(self._buffer, self._read_size)
            except BlockingIOError:
                del window
                await self._wait_readable()
                waited = True
                continue
            except OSError as exc:
                del window
                raise self._broken(exc) from exc
            break
        self._read_bytes = n
        if window is not None:
            del window
            messages = decoder.buffer_updated(n)
            self._held = decoder.buffered
        elif n:
            messages = self._decode(self._buffer[:n])
        if not n:
            raise anyio.EndOfStream
        if not waited:  # a schedule point per read, now that its messages are safe
            await trio.lowlevel.cancel_shielded_checkpoint()
        return messages

    async def _send_bytes(self, data: bytes | None, parts: Iterable[Buffer]) -> None:
        # Straight to the socket when no other sender is at it: a send the kernel takes
        # whole cannot interleave with another, so only the rest of a partial one holds
        # the lock. A checkpoint, as trio's send is: cancelled before, nothing is sent.
        if (
            data is None
            or not self._send_lock.value  # another sender holds it
            or self.transport_stream is not self._socket_stream
        ):
            await super()._send_bytes(data, parts)
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise self._broken(exc) from exc
        if sent == len(data):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        # The rest may wait: later senders queue behind. Free (checked above, nothing
        # awaited since), so taken without a cancellation check between the two parts.
        self._send_lock.acquire_nowait()
        try:
            rest = memoryview(data)[sent:]
            while rest:
                try:
                    await trio.lowlevel.wait_writable(self._sock)
                except trio.ClosedResourceError as exc:
                    raise anyio.ClosedResourceError from exc
                try:
                    rest = rest[self._sock.send(rest) :]
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise self._broken(exc) from exc
        finally:
            self._send_lock.release()

    def _broken(self, exc: OSError) -> anyio.ClosedResourceError | anyio.BrokenResourceError:
        """What anyio raises for a failed socket call: closed by us, or broken underneath."""
        if self._closed:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError(str(exc))

    async def _wait_readable(self) -> None:
        try:
            await trio.lowlevel.wait_readable(self._sock)
        except trio.ClosedResourceError as exc:  # closed by another task meanwhile
            raise anyio.ClosedResourceError from exc
