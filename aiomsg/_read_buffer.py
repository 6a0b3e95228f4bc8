"""One read buffer per thread and size, shared by every connection of that thread.

An event loop (asyncio's ``buffer_updated()``, aiomsg's reader of the trio socket) reads
into it and the decoder takes what it keeps (decoders copy) before anything else runs,
since nothing awaits in between. So an idle connection holds no read buffer at all.
"""

from __future__ import annotations

import threading

__all__ = ["shared_read_buffer"]

_local = threading.local()


def shared_read_buffer(size: int) -> memoryview:
    """This thread's buffer of ``size`` bytes (made on first use, then kept)."""
    buffers: dict[int, memoryview] | None = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    buffer = buffers.get(size)
    if buffer is None:
        buffer = buffers[size] = memoryview(bytearray(size))
    return buffer
