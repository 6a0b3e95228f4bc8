"""The chat server on the Streams front: one task reads, one task writes, per client."""

from __future__ import annotations

import asyncio

import aiomsg

from .._proxy_accept import ProxyTrusted
from ..framing.proxy_protocol import ProxyVersion
from .connection_options import connection_options
from .outbox import QueuedMember
from .room import ChatLimits, ChatRoom


def chat_handler(room: ChatRoom) -> aiomsg.asyncio.Handler:
    async def handle(conn: aiomsg.Connection) -> None:
        async def send(data: bytes) -> None:  # lines already ended: see outbox.wire()
            transport = conn.transport
            if transport is None or conn.is_closing():
                raise aiomsg.ConnectionClosed("the connection is closed")
            transport.write(data)
            await conn.drain()

        member = QueuedMember(room.limits.queue_lines, send, conn.abort)

        async def read_lines() -> None:
            try:
                while not member.closing:  # (closing at once: told goodbye as it joined)
                    line = await conn.receive_or_none()
                    if line is None:
                        break
                    room.receive(member, line)
            except aiomsg.MessageTooLarge:
                room.line_too_long(member)
            except (aiomsg.ConnectionClosed, aiomsg.FramingError):
                pass

        writer = asyncio.create_task(member.outbox.write_out())
        room.join(member)
        reader = asyncio.create_task(read_lines())
        try:
            # The client leaves (the reader ends), or is told goodbye (the writer ends
            # after the notice): then nothing more is read; the lingering close drops it.
            await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            room.leave(member)
            if not member.closing:
                member.outbox.finish()
            try:
                await asyncio.wait_for(writer, room.limits.drain)
            except (TimeoutError, aiomsg.ConnectionClosed):
                conn.abort()
            else:  # the last line (a goodbye) is written: a lingering close keeps it
                conn.close(linger=True)  # from a reset, if the client is still sending
                await conn.wait_closed()
            finally:
                member.done = True  # a stopping server waits for this (servers._say_goodbye)

    return handle


def serve_chat(
    host: str | None,
    port: int | None,
    limits: ChatLimits | None = None,
    *,
    room: ChatRoom | None = None,
    reuse_port: bool = False,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
) -> aiomsg.Server:
    """The chat server on the Streams front; ``await`` it or use ``async with``.

    ``room``: serve this room (one shared through a broker, say) instead of a new one.

    ``proxy_protocol``/``proxy_trusted``: behind a PROXY protocol load balancer
    (see :func:`aiomsg.serve`)."""
    room = room or ChatRoom(limits or ChatLimits())
    framing = aiomsg.Lines(max_size=room.limits.max_line)
    return aiomsg.serve(
        chat_handler(room),
        host,
        port,
        framing=framing,
        options=connection_options(room.limits),
        reuse_port=reuse_port or None,
        proxy_protocol=proxy_protocol,
        proxy_trusted=proxy_trusted,
    )
