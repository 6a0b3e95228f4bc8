"""Graceful drain for ``serve_framed``/``serve_framed_unix`` on trio: :class:`Drain`.

On asyncio those servers run on :class:`aiomsg.Server` and drain with
:meth:`aiomsg.Server.drain`. On trio they run on anyio's listeners; there each
client's byte stream is wrapped in a :class:`_DrainableStream`, which ends the
input (``anyio.EndOfStream``) at the next message boundary once the server
drains, and whose close half-closes first and waits for the client's own close
(``linger_timeout``), so that the last answers are not destroyed by a reset.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from anyio.abc import ByteStream, Listener

from ..options import Options
from .framed_stream import FramedStream

__all__ = ["Drain"]


class _DrainableStream(ByteStream):
    """A byte stream whose input a drain can end at a message boundary of ``framed``."""

    def __init__(self, inner: ByteStream, linger: float) -> None:
        self._inner = inner
        self._linger = linger
        self.framed: FramedStream | None = None
        self._draining = False
        self._ended = False
        self._scope: anyio.CancelScope | None = None

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._inner.extra_attributes

    def _at_boundary(self) -> bool:
        framed = self.framed
        return framed is None or not framed.mid_message

    def begin_drain(self) -> None:
        self._draining = True
        if self._scope is not None and self._at_boundary():
            self._scope.cancel()  # a receive waiting between messages: the input ends

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._ended or (self._draining and self._at_boundary()):
            self._ended = True
            raise anyio.EndOfStream
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                return await self._inner.receive(max_bytes)
            finally:
                self._scope = None
        self._ended = True  # cancelled by begin_drain, between two messages
        raise anyio.EndOfStream

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        if self._draining:
            # EOF after the answers; drop what the client still sends until it closes
            # (closing with unread input would reset, and could destroy the answers).
            with anyio.move_on_after(self._linger, shield=True):
                try:
                    await self._inner.send_eof()
                    while await self._inner.receive():
                        pass
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    pass
                except anyio.ClosedResourceError:
                    return
        await self._inner.aclose()


class Drain:
    """The connections of one trio server, and how to drain them on ``shutdown``."""

    def __init__(self, options: Options) -> None:
        self._options = options
        self._streams: set[_DrainableStream] = set()
        self._draining = False
        self._idle = anyio.Event()

    @contextlib.asynccontextmanager
    async def serving(
        self, stream: ByteStream, make: Callable[[ByteStream], FramedStream]
    ) -> AsyncIterator[FramedStream]:
        """``make(wrapped)``: ``stream`` framed, wrapped so that a drain can end its input;
        the drain waits for it until the block ends (its handler returns)."""
        wrapped = _DrainableStream(stream, self._options.linger_timeout)
        wrapped.framed = framed = make(wrapped)
        self._streams.add(wrapped)
        if self._draining:
            wrapped.begin_drain()
        try:
            yield framed
        finally:
            self._streams.discard(wrapped)
            if self._draining and not self._streams:
                self._idle.set()

    async def serve(
        self,
        listener: Listener[Any],
        handle: Callable[[ByteStream], Awaitable[None]],
        shutdown: anyio.Event,
    ) -> None:
        """Accept until ``shutdown`` is set; then stop accepting, end each input at its
        next message boundary, give the handlers ``drain_timeout`` seconds, cancel the
        rest, and return."""
        async with anyio.create_task_group() as handlers:
            async with anyio.create_task_group() as accepting:
                accepting.start_soon(listener.serve, handle, handlers)
                await shutdown.wait()
                accepting.cancel_scope.cancel()
            await listener.aclose()  # new clients go elsewhere (or are refused)
            self._draining = True
            for stream in list(self._streams):
                stream.begin_drain()
            if self._streams:
                with anyio.move_on_after(self._options.drain_timeout):
                    await self._idle.wait()
            handlers.cancel_scope.cancel()
