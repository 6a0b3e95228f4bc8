"""How much to read at a time so that the messages one read decodes cost about ``read_size``
of memory, whatever their size: shared by the fronts that queue decoded messages.

A decoded message costs about :data:`MESSAGE_COST` bytes as a Python object on top of its
payload, so a read's worth of 3-byte messages costs seven times the bytes read. The fronts
start reading an eighth of ``read_size`` at a time and let :func:`fit_read` move it: less
while messages are tiny, back up (doubling) while they are not.
"""

from __future__ import annotations

__all__ = ["MESSAGE_COST", "MIN_READ", "SPENT_READ", "first_read", "fit_read", "max_batch"]

#: What one decoded message costs besides its payload: a bytes object's header (33
#: bytes), the allocator's rounding, its slot in the queue.
MESSAGE_COST = 64
#: The smallest read while messages are tiny.
MIN_READ = 4096
#: The read while the server-wide memory budget is spent (see ``_memory_budget``).
SPENT_READ = 1024


def max_batch(read_size: int) -> int:
    """How many messages one read may decode before the next read is made smaller."""
    return max(1, read_size // MESSAGE_COST)


def first_read(read_size: int) -> int:
    """The size of a connection's first reads (a slow start)."""
    return min(read_size, max(MIN_READ, read_size // 8))


def fit_read(current: int, read_size: int, count: int) -> int:
    """The next read's size, after a read of ``current`` bytes decoded ``count`` messages."""
    if not count:
        return current
    size = current * max_batch(read_size) // count
    return max(min(MIN_READ, read_size), min(read_size, size, 2 * current))
