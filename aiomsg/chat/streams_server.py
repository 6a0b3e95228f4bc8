"""The chat server on the Streams front: one task reads, one task writes, per client."""

from __future__ import annotations

import asyncio
from collections import deque

import aiomsg

from .room import ChatLimits, ChatRoom


class StreamsMember:
    """A client's outgoing queue (bounded) and the task that writes it out."""

    def __init__(self, conn: aiomsg.Connection, limits: ChatLimits) -> None:
        self.conn = conn
        self.limits = limits
        self.queue: deque[bytes | None] = deque()  # None: close after what is before it
        self.wakeup = asyncio.Event()
        self.closing = False

    def deliver(self, line: str) -> bool:
        if len(self.queue) >= self.limits.queue_lines:
            return False
        self.queue.append(line.encode())
        self.wakeup.set()
        return True

    def disconnect(self, notice: str | None) -> None:
        self.closing = True
        if notice is None:  # too slow to read: reset now, the backlog is dropped
            self.conn.abort()
            return
        self.queue.append(notice.encode())
        self.queue.append(None)
        self.wakeup.set()

    def finish(self) -> None:
        """The client left: write what is queued, then stop."""
        self.queue.append(None)
        self.wakeup.set()

    async def write_out(self) -> None:
        """Send queued lines in batches (one write per batch) until told to stop."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            batch: list[bytes] = []
            while self.queue:
                line = self.queue.popleft()
                if line is None:
                    await self.conn.send_many(batch)
                    return
                batch.append(line)
            await self.conn.send_many(batch)


def chat_handler(room: ChatRoom) -> aiomsg.streams.Handler:
    async def handle(conn: aiomsg.Connection) -> None:
        member = StreamsMember(conn, room.limits)
        writer = asyncio.create_task(member.write_out())
        room.join(member)
        try:
            async for line in conn:
                room.receive(member, line)
                if member.closing:
                    break
        except aiomsg.MessageTooLarge:
            room.line_too_long(member)
        except (aiomsg.ConnectionClosed, aiomsg.FramingError):
            pass
        finally:
            room.leave(member)
            if not member.closing:
                member.finish()
            try:
                await asyncio.wait_for(writer, room.limits.linger)
            except (TimeoutError, aiomsg.ConnectionClosed):
                conn.abort()
        # The server closes the connection when this returns.

    return handle


def serve_chat(
    host: str | None, port: int | None, limits: ChatLimits | None = None
) -> aiomsg.Server:
    """The chat server on the Streams front; ``await`` it or use ``async with``."""
    room = ChatRoom(limits or ChatLimits())
    framing = aiomsg.Lines(max_size=room.limits.max_line)
    return aiomsg.serve(chat_handler(room), host, port, framing=framing)
