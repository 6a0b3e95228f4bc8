"""The chat server on the anyio front: a task group per client (reader + writer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

import aiomsg

from .._proxy_accept import ProxyTrusted
from ..anyio.on_asyncio import ConnectionFramedStream
from ..framing.proxy_protocol import ProxyVersion
from .connection_options import connection_options
from .outbox import QueuedMember
from .room import ChatLimits, ChatRoom


def chat_handler(room: ChatRoom) -> Callable[[aiomsg.FramedStream], Awaitable[None]]:
    async def handle(stream: aiomsg.FramedStream) -> None:
        scope = anyio.CancelScope()  # dropping a slow client cancels its reader and writer
        # Lines already ended (see outbox.wire()) go straight to the byte stream.
        member = QueuedMember(room.limits.queue_lines, stream.transport_stream.send, scope.cancel)
        with scope:
            async with anyio.create_task_group() as tg:
                reading = anyio.CancelScope()

                async def write_then_stop_reading() -> None:
                    try:  # the writer ends after a goodbye: then nothing more is read
                        await member.outbox.write_out()
                    finally:
                        reading.cancel()

                tg.start_soon(write_then_stop_reading)
                room.join(member)
                try:
                    with reading:
                        while not member.closing:  # (closing at once: a goodbye on joining)
                            try:
                                line = await stream.receive()
                            except anyio.EndOfStream:
                                break
                            room.receive(member, line)
                except aiomsg.MessageTooLarge:
                    room.line_too_long(member)
                except (aiomsg.FramingError, anyio.BrokenResourceError, OSError):
                    pass
                finally:
                    room.leave(member)
                    if not member.closing:
                        member.outbox.finish()
            try:
                await _linger(stream, room.limits.linger)
            finally:
                member.done = True  # a stopping server waits for this (servers._say_goodbye)

    return handle


async def _linger(stream: aiomsg.FramedStream, seconds: float) -> None:
    """Send EOF and drop what the client still sends until it closes (or time runs out),
    so that closing with unread input does not reset the connection and lose the last lines.

    On asyncio the stream runs on aiomsg's transport, which cannot hand out raw
    bytes: there the connection's own lingering close does it."""
    if isinstance(stream, ConnectionFramedStream):
        stream.connection.close(linger=True)  # aiomsg's own stream: its Connection lingers
        with anyio.move_on_after(seconds + 1):
            await stream.connection.wait_closed()
        return
    with anyio.move_on_after(seconds):
        try:
            await stream.send_eof()
            while await stream.transport_stream.receive():
                pass
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
            NotImplementedError,
        ):
            pass


async def serve_chat(
    host: str | None,
    port: int,
    limits: ChatLimits | None = None,
    *,
    room: ChatRoom | None = None,
    reuse_port: bool = False,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve chat until cancelled; ``await tg.start(serve_chat, host, port)`` gives the port.

    ``room``: serve this room (one shared through a broker, say) instead of a new one.

    ``proxy_protocol``/``proxy_trusted``: behind a PROXY protocol load balancer
    (see :func:`aiomsg.serve`)."""
    room = room or ChatRoom(limits or ChatLimits())
    framing = aiomsg.Lines(max_size=room.limits.max_line)
    await aiomsg.serve_framed(
        chat_handler(room),
        host,
        port,
        framing=framing,
        options=connection_options(room.limits),
        reuse_port=reuse_port,
        proxy_protocol=proxy_protocol,
        proxy_trusted=proxy_trusted,
        task_status=task_status,
    )
