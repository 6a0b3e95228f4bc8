"""The chat server on the Streams front: one task reads, one task writes, per client."""

from __future__ import annotations

import asyncio

import aiomsg

from .outbox import Outbox
from .room import ChatLimits, ChatRoom


class StreamsMember:
    """One client as the room sees it: a bounded outbox, written out by its own task."""

    def __init__(self, conn: aiomsg.Connection, limits: ChatLimits) -> None:
        self.conn = conn
        self.outbox = Outbox(limits.queue_lines, conn.send_many)
        self.closing = False

    def deliver(self, line: str) -> bool:
        return self.outbox.put(line)

    def disconnect(self, notice: str | None) -> None:
        self.closing = True
        if notice is None:  # too slow to read: reset now, the backlog is dropped
            self.conn.abort()
        else:
            self.outbox.finish(notice)


def chat_handler(room: ChatRoom) -> aiomsg.streams.Handler:
    async def handle(conn: aiomsg.Connection) -> None:
        member = StreamsMember(conn, room.limits)
        writer = asyncio.create_task(member.outbox.write_out())
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
                member.outbox.finish()
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
