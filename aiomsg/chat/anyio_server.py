"""The chat server on the anyio front: a task group per client (reader + writer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

import aiomsg

from .outbox import Outbox
from .room import ChatLimits, ChatRoom


class AnyioMember:
    """One client as the room sees it: a bounded outbox, written out by a task of its group."""

    def __init__(self, stream: aiomsg.FramedStream, limits: ChatLimits) -> None:
        self.outbox = Outbox(limits.queue_lines, stream.send_many)
        self.scope = anyio.CancelScope()  # cancels this client's reader and writer
        self.closing = False

    def deliver(self, line: str) -> bool:
        return self.outbox.put(line)

    def disconnect(self, notice: str | None) -> None:
        self.closing = True
        if notice is None:  # too slow to read: drop it now, backlog and all
            self.scope.cancel()
        else:
            self.outbox.finish(notice)


def chat_handler(room: ChatRoom) -> Callable[[aiomsg.FramedStream], Awaitable[None]]:
    async def handle(stream: aiomsg.FramedStream) -> None:
        member = AnyioMember(stream, room.limits)
        with member.scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(member.outbox.write_out)
                room.join(member)
                try:
                    async for line in stream:
                        room.receive(member, line)
                        if member.closing:
                            break
                except aiomsg.MessageTooLarge:
                    room.line_too_long(member)
                except (aiomsg.FramingError, anyio.BrokenResourceError, OSError):
                    pass
                finally:
                    room.leave(member)
                    if not member.closing:
                        member.outbox.finish()
            await _linger(stream, room.limits.linger)

    return handle


async def _linger(stream: aiomsg.FramedStream, seconds: float) -> None:
    """Send EOF and drop what the client still sends until it closes (or time runs out),
    so that closing with unread input does not reset the connection and lose the last lines."""
    with anyio.move_on_after(seconds):
        try:
            await stream.send_eof()
            while await stream.transport_stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


async def serve_chat(
    host: str | None,
    port: int,
    limits: ChatLimits | None = None,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve chat until cancelled; ``await tg.start(serve_chat, host, port)`` gives the port."""
    room = ChatRoom(limits or ChatLimits())
    framing = aiomsg.Lines(max_size=room.limits.max_line)
    await aiomsg.serve_framed(
        chat_handler(room), host, port, framing=framing, task_status=task_status
    )
