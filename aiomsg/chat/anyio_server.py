"""The chat server on the anyio front: a task group per client (reader + writer)."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

import aiomsg

from .room import ChatLimits, ChatRoom


class AnyioMember:
    """A client's bounded outgoing queue, and the task that writes it out in batches."""

    def __init__(self, stream: aiomsg.FramedStream, limits: ChatLimits) -> None:
        self.stream = stream
        self.limits = limits
        self.scope = anyio.CancelScope()  # cancels this client's reader and writer
        self.queue: deque[bytes | None] = deque()  # None: stop after what is before it
        self.wakeup = anyio.Event()
        self.closing = False

    def deliver(self, line: str) -> bool:
        if len(self.queue) >= self.limits.queue_lines:
            return False
        self.queue.append(line.encode())
        self.wakeup.set()
        return True

    def disconnect(self, notice: str | None) -> None:
        self.closing = True
        if notice is None:  # too slow to read: drop it now, backlog and all
            self.scope.cancel()
            return
        self.queue.append(notice.encode())
        self.finish()

    def finish(self) -> None:
        self.queue.append(None)
        self.wakeup.set()

    async def write_out(self) -> None:
        # Whatever is queued goes out in one write: a broadcast to a thousand
        # clients must not cost each of them a write per line.
        while True:
            await self.wakeup.wait()
            self.wakeup = anyio.Event()
            batch: list[bytes] = []
            while self.queue:
                line = self.queue.popleft()
                if line is None:
                    await self.stream.send_many(batch)
                    return
                batch.append(line)
            await self.stream.send_many(batch)


def chat_handler(room: ChatRoom) -> Callable[[aiomsg.FramedStream], Awaitable[None]]:
    async def handle(stream: aiomsg.FramedStream) -> None:
        member = AnyioMember(stream, room.limits)
        with member.scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(member.write_out)
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
                        member.finish()
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
