"""The chat server on the Protocol front: callbacks only, no task per client."""

from __future__ import annotations

import asyncio
import logging

import aiomsg
from aiomsg.limits import DEFAULT_BACKLOG

from .._proxy_accept import ProxyTrusted
from ..framing.proxy_protocol import ProxyVersion
from .connection_options import connection_options
from .outbox import wire
from .room import ChatLimits, ChatRoom

logger = logging.getLogger("aiomsg.chat")


class Flusher:
    """Writes out every client's waiting lines, at most once per ``interval`` seconds.

    A line broadcast to a thousand clients must not cost each a write (a system
    call) per line: lines wait in their client's queue until the loop has handled
    what it read, then each client gets one write of all its lines. While lines keep
    coming, the next write waits until ``interval`` has passed since the last one, so
    that the lines of several short loop iterations share it (a worker of several,
    whose lines arrive from its own clients and from the broker in turns, would
    otherwise write half-empty batches); after a quiet spell a line goes out at once.
    One callback serves every client with lines waiting.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.0) -> None:
        self.loop = loop
        self.interval = interval
        self.waiting: list[ChatProtocol] = []
        self.last = float("-inf")  # when the last flush ran

    def add(self, client: ChatProtocol) -> None:
        if not self.waiting:
            delay = self.last + self.interval - self.loop.time()
            if delay > 0:
                self.loop.call_later(delay, self.flush)
            else:
                self.loop.call_soon(self.flush)
        self.waiting.append(client)

    def flush(self) -> None:
        self.last = self.loop.time()
        waiting, self.waiting = self.waiting, []
        for client in waiting:
            try:
                client.flush()
            except Exception:  # its connection broke under it: that client only
                logger.debug("dropping a chat client whose write failed", exc_info=True)
                client.abort()


class ChatProtocol(aiomsg.MessageProtocol):
    """One client. Its lines wait in a bounded queue until the :class:`Flusher` writes
    them, or, while the transport says the client is not keeping up, until it has read."""

    def __init__(self, room: ChatRoom, flusher: Flusher) -> None:
        limits = room.limits
        super().__init__(
            framing=aiomsg.Lines(max_size=limits.max_line), options=connection_options(limits)
        )
        self.room = room
        self.queue_lines = limits.queue_lines
        self.flusher = flusher
        self.queue: list[bytes] = []
        self.flushing = False  # in the flusher's list
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.room.join(self)

    def message_received(self, message: bytes) -> None:
        self.room.receive(self, message)

    def framing_error(self, exc: aiomsg.FramingError) -> None:
        if isinstance(exc, aiomsg.MessageTooLarge):
            self.room.line_too_long(self)  # queues the notice; the close lingers to deliver it

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.queue.clear()
        self.room.leave(self)

    # --- what the room calls ---------------------------------------------------

    def deliver(self, line: bytes) -> bool:
        queue = self.queue
        if len(queue) >= self.queue_lines:
            return False
        queue.append(line)
        if not self.flushing and not self.paused:
            self.flushing = True
            self.flusher.add(self)
        return True

    def disconnect(self, notice: str | None) -> None:
        if notice is None:
            self.abort()  # too slow to read: reset now
            return
        # What is queued, then the notice (even over the high-water mark: the queue is
        # bounded); the close waits for them to be sent.
        self.queue.append(notice.encode())
        self.write_queue()
        self.close(linger=True)  # a client still sending must not turn it into a reset

    def drained(self) -> bool:
        return self.close_error is not None  # connection_lost has run

    def flush(self) -> None:
        self.flushing = False
        if not self.paused:
            self.write_queue()

    def write_queue(self) -> None:
        lines, self.queue = self.queue, []
        if lines and not self.is_closing():  # closing or reset: nothing more to send
            assert self.transport is not None
            self.transport.write(wire(lines))  # not send_many(): see wire()

    # --- flow control from the transport -----------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused = False
        self.write_queue()


async def serve_chat(
    host: str | None,
    port: int,
    limits: ChatLimits | None = None,
    *,
    room: ChatRoom | None = None,
    reuse_port: bool = False,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
) -> aiomsg.Server:
    """Start the chat server on the Protocol front; returns the listening server.

    ``room``: serve this room (one shared through a broker, say) instead of a new one.
    It runs on :func:`aiomsg.serve_protocol` (aiomsg's accept loop).

    ``proxy_protocol``/``proxy_trusted``: behind a PROXY protocol load balancer
    (see :func:`aiomsg.serve`)."""
    shared = room or ChatRoom(limits or ChatLimits())
    loop = asyncio.get_running_loop()
    flusher = Flusher(loop, shared.limits.flush_interval)
    return await aiomsg.serve_protocol(
        lambda: ChatProtocol(shared, flusher),
        host,
        port,
        options=aiomsg.Options(backlog=DEFAULT_BACKLOG),
        reuse_port=reuse_port or None,
        proxy_protocol=proxy_protocol,
        proxy_trusted=proxy_trusted,
    )
