"""Reading stdin without blocking the event loop, and without making Ctrl-C wait."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import AsyncIterator

__all__ = ["read_stdin", "stdin_chunks", "stdin_lines"]

_CHUNK = 64 * 1024


async def stdin_chunks() -> AsyncIterator[bytes]:
    """Yield what arrives on stdin until its end, read by a daemon thread.

    A daemon thread, not the loop's executor: a terminal read cannot be
    interrupted, and the executor's shutdown would wait for it (Ctrl-C would
    hang until Enter). ``os.read`` on the descriptor takes no lock that
    Python's shutdown could need. A bounded queue holds the reader back when
    the connection is slower than stdin. No stdin at all reads as an empty one.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(16)
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # no stdin at all: an empty one
        return

    def read() -> None:
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except OSError:
                chunk = b""
            put = queue.put(chunk)
            try:
                asyncio.run_coroutine_threadsafe(put, loop).result()
            except RuntimeError:  # the loop is closed
                put.close()
                return
            except concurrent.futures.CancelledError:  # the loop ended, cancelling the put
                return
            if not chunk:
                return

    threading.Thread(target=read, name="aiomsg-stdin", daemon=True).start()
    while chunk := await queue.get():
        yield chunk


async def stdin_lines() -> AsyncIterator[bytes]:
    """Yield each line of stdin without its ``\\n``; a last line without one too.

    Read by a daemon thread (see :func:`stdin_chunks`), so Ctrl-C never waits for a line.
    """
    pending = bytearray()
    async for chunk in stdin_chunks():
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            yield bytes(pending[start:end])
            start = end + 1
        del pending[:start]
    if pending:
        yield bytes(pending)


async def read_stdin() -> bytes:
    """All of stdin, until its end."""
    return b"".join([chunk async for chunk in stdin_chunks()])
