"""The chat server on the Protocol front: callbacks only, no task per client."""

from __future__ import annotations

import asyncio
from collections import deque

import aiomsg
from aiomsg.limits import DEFAULT_BACKLOG

from .room import ChatLimits, ChatRoom


class ChatProtocol(aiomsg.MessageProtocol):
    """One client. Its outgoing queue is the transport's buffer, then a bounded backlog
    of lines kept while the transport says the client is not keeping up."""

    def __init__(self, room: ChatRoom) -> None:
        limits = room.limits
        super().__init__(
            framing=aiomsg.Lines(max_size=limits.max_line),
            message_timeout=limits.message_timeout,
            idle_timeout=limits.idle_timeout,
            linger_timeout=limits.linger,
        )
        self.room = room
        self.backlog: deque[bytes] = deque()
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
        self.room.leave(self)

    # --- what the room calls ---------------------------------------------------

    def deliver(self, line: str) -> bool:
        if self.is_closing():
            return True  # on its way out (closed, or reset by the peer): nothing more to send
        if self.paused:
            if len(self.backlog) >= self.room.limits.queue_lines:
                return False
            self.backlog.append(line.encode())
        else:
            self.send(line.encode())
        return True

    def disconnect(self, notice: str | None) -> None:
        if notice is None:
            self.abort()  # too slow to read: reset now
            return
        self.send(notice.encode())
        self.close()

    # --- flow control from the transport -----------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused = False
        if self.backlog and not self.is_closing():
            backlog, self.backlog = list(self.backlog), deque()
            self.send_many(backlog)


async def serve_chat(
    host: str | None,
    port: int,
    limits: ChatLimits | None = None,
    *,
    room: ChatRoom | None = None,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Start the chat server on the Protocol front; returns the listening asyncio server.

    ``room``: serve this room (one shared through a broker, say) instead of a new one."""
    shared = room or ChatRoom(limits or ChatLimits())
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: ChatProtocol(shared),
        host,
        port,
        backlog=DEFAULT_BACKLOG,
        reuse_port=reuse_port or None,
    )
