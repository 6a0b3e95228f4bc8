"""The anyio front: :class:`FramedStream`, an ``ObjectStream[bytes]`` for task groups.

Wrap any anyio byte stream (TCP, Unix, TLS, or your own) and send and receive
whole messages, on asyncio, asyncio+uvloop or trio. :func:`connect_framed` and
:func:`serve_framed` are the conveniences for TCP.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
from anyio.abc import ByteStream, ObjectStream, TaskStatus
from anyio.lowlevel import checkpoint_if_cancelled
from anyio.streams.tls import TLSListener

from .errors import FramingError
from .framing import Buffer, Framing
from .protocol import _COPY_LIMIT, DEFAULT_READ_SIZE

__all__ = ["DEFAULT_READ_SIZE", "FramedStream", "connect_framed", "serve_framed"]

logger = logging.getLogger("aiomsg")


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
      :class:`anyio.BrokenResourceError` if the connection broke,
      :class:`anyio.BusyResourceError` if another task is already receiving.
    * ``send()``/``receive()`` after :meth:`aclose` raise
      :class:`anyio.ClosedResourceError`.
    * Concurrent ``send()`` calls are allowed: each message is written whole, in
      turn.

    Checkpoints: a ``receive()`` that reads from the connection is a full
    checkpoint (the inner ``receive()`` is). A ``receive()`` served from messages
    already decoded checks for cancellation (``checkpoint_if_cancelled``) but
    does not yield to the event loop: a full checkpoint per buffered message
    would cost most of the throughput (measured with ``benchmarks/fronts.py``:
    about 2.5x fewer messages per second on asyncio). Other tasks still run at
    least once per read, so a busy receiver delays them by at most one read's
    worth of messages. Cancelling a ``receive()`` never loses or duplicates a
    message: the next call gets it.
    """

    def __init__(
        self, transport_stream: ByteStream, framing: Framing, *, read_size: int = DEFAULT_READ_SIZE
    ) -> None:
        self.transport_stream = transport_stream
        self.framing = framing
        self._decoder = framing.decoder()
        self._ready: deque[bytes] = deque()
        self._read_size = read_size
        self._error: BaseException | None = None  # raised once `_ready` is drained
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
            while not self._ready:
                if self._error is not None:
                    raise self._error
                await self._read()
            return self._ready.popleft()
        finally:
            self._receiving = False

    async def _read(self) -> None:
        try:
            chunk = await self.transport_stream.receive(self._read_size)
        except anyio.EndOfStream:
            try:
                self._ready.extend(self._decoder.feed_eof())
            except FramingError as exc:
                self._error = exc
                return
            self._error = anyio.EndOfStream()
            return
        try:
            self._ready.extend(self._decoder.feed(chunk))
        except FramingError as exc:
            self._ready.extend(exc.messages)
            self._error = exc

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
            if len(parts) == 1 or len(item) < _COPY_LIMIT:
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
        """Close this stream and the inner one. Later calls raise ``ClosedResourceError``."""
        self._closed = True
        await self.transport_stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.transport_stream.extra_attributes


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
    **kwargs: Any,
) -> FramedStream:
    """Connect with :func:`anyio.connect_tcp` (TLS options passed on) and frame the stream.

    Raises :class:`OSError` if the connection fails (and ``ssl.SSLError`` for a
    failed TLS handshake).
    """
    stream: ByteStream
    if tls or ssl_context is not None:
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
    return FramedStream(stream, framing, read_size=read_size)


async def serve_framed(
    handler: Callable[[FramedStream], Awaitable[None]],
    local_host: str | None = None,
    local_port: int = 0,
    *,
    framing: Framing,
    ssl_context: ssl.SSLContext | None = None,
    tls_standard_compatible: bool = True,
    read_size: int = DEFAULT_READ_SIZE,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve framed TCP connections until cancelled; use it inside a task group.

    ``await tg.start(serve_framed, handler, "127.0.0.1", 0, framing=...)`` returns
    the bound port once the server listens. Each client runs ``handler(stream)``
    in a task of its own; the stream is closed when the handler returns. An
    exception in one handler is logged and ends that connection only.
    ``ssl_context`` serves TLS; ``tls_standard_compatible`` is passed to
    :class:`anyio.streams.tls.TLSListener`.
    """
    listener: Any = await anyio.create_tcp_listener(local_host=local_host, local_port=local_port)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    if ssl_context is not None:
        listener = TLSListener(listener, ssl_context, standard_compatible=tls_standard_compatible)

    async def run(stream: ByteStream) -> None:
        framed = FramedStream(stream, framing, read_size=read_size)
        try:
            await handler(framed)
        except anyio.get_cancelled_exc_class():
            raise
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            logger.debug("connection ended", exc_info=True)
        except FramingError as exc:
            logger.warning("closing connection: %s", exc)
        except Exception:
            logger.exception("handler failed; closing that connection")
        finally:
            with anyio.CancelScope(shield=True):
                await framed.aclose()

    async with listener:
        task_status.started(port)
        await listener.serve(run)
