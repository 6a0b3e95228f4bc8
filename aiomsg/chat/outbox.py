"""A client's bounded queue of outgoing lines, written out in batches by one task.

Shared by the Streams and anyio chat servers (the Protocol server needs no task:
one loop callback writes out every client's queue). ``anyio.Event`` works on both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import anyio


def wire(lines: list[bytes]) -> bytes:
    """``lines`` as they go out, each ended by ``\n``.

    Not through the framing's encoder: its ``max_size`` is ``max_line``, the limit on
    what clients send, and a line sent out may be longer (the sender's nickname before
    a line of ``max_line`` bytes, ``/who`` in a large room).
    """
    return b"\n".join(lines) + b"\n"


class Outbox:
    """Lines waiting for one client; ``put`` refuses once ``limit`` are waiting."""

    def __init__(self, limit: int, send: Callable[[bytes], Awaitable[None]]) -> None:
        self.limit = limit
        self.send = send
        self.queue: deque[bytes | None] = deque()  # None: stop after what is before it
        self.wakeup = anyio.Event()
        # anyio.Event() looks up the running async library on every call (~5 µs, more
        # than writing a line); the class it returns makes the next ones directly.
        self.new_event = type(self.wakeup)

    def put(self, line: bytes) -> bool:
        """Queue ``line`` (encoded, without its end); return False if the client already
        has ``limit`` lines waiting."""
        queue = self.queue
        if len(queue) >= self.limit:
            return False
        if not queue:  # else the writer was woken already and has not taken the queue yet
            self.wakeup.set()
        queue.append(line)
        return True

    def finish(self, last: str | None = None) -> None:
        """Send what is queued and ``last`` (if any), then let :meth:`write_out` return."""
        if last is not None:
            self.queue.append(last.encode())
        self.queue.append(None)
        self.wakeup.set()

    async def write_out(self) -> None:
        """Write queued lines until :meth:`finish`. Whatever is queued goes out in one
        write: a broadcast to a thousand clients must not cost each a write per line."""
        while True:
            await self.wakeup.wait()
            self.wakeup = self.new_event()
            batch: list[bytes] = []
            while self.queue:
                line = self.queue.popleft()
                if line is None:
                    if batch:
                        await self.send(wire(batch))
                    return
                batch.append(line)
            if batch:
                await self.send(wire(batch))


class QueuedMember:
    """A client as the room sees it, for servers that write through an :class:`Outbox`.

    ``drop`` ends the client at once (a reset, a cancelled scope): it is used for a
    client too slow to read, which would not read a farewell notice either.
    """

    def __init__(
        self,
        limit: int,
        send: Callable[[bytes], Awaitable[None]],
        drop: Callable[[], object],
    ) -> None:
        self.outbox = Outbox(limit, send)
        self.drop = drop
        self.closing = False
        self.done = False  # the server closed the connection, lingering: all went out

    def deliver(self, line: bytes) -> bool:
        return self.outbox.put(line)

    def drained(self) -> bool:
        return self.done  # set by the server once the connection is closed

    def disconnect(self, notice: str | None) -> None:
        self.closing = True
        if notice is None:
            self.drop()
        else:
            self.outbox.finish(notice)
