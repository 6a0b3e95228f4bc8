"""The chat server on the anyio front: a task group per client (reader + writer)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

import aiomsg

from .room import ChatLimits, ChatRoom


class AnyioMember:
    """A client's bounded outgoing queue: a memory object stream read by its writer task."""

    def __init__(self, outbox: MemoryObjectSendStream[bytes], scope: anyio.CancelScope) -> None:
        self.outbox = outbox
        self.scope = scope  # cancels this client's reader and writer
        self.closing = False

    def deliver(self, line: str) -> bool:
        try:
            self.outbox.send_nowait(line.encode())
        except anyio.WouldBlock:
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # on its way out
        return True

    def disconnect(self, notice: str | None) -> None:
        self.closing = True
        if notice is None:  # too slow to read: drop it now
            self.scope.cancel()
            return
        with contextlib.suppress(
            anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
        ):
            self.outbox.send_nowait(notice.encode())
        self.outbox.close()  # the writer ends after what is queued


def chat_handler(room: ChatRoom) -> Callable[[aiomsg.FramedStream], Awaitable[None]]:
    async def handle(stream: aiomsg.FramedStream) -> None:
        outbox, inbox = anyio.create_memory_object_stream[bytes](room.limits.queue_lines)

        async def write_out() -> None:
            async with inbox:
                async for line in inbox:
                    await stream.send(line)

        with anyio.CancelScope() as scope:
            member = AnyioMember(outbox, scope)
            async with anyio.create_task_group() as tg:
                tg.start_soon(write_out)
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
                    outbox.close()
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
