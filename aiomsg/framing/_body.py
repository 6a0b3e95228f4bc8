"""Long message bodies, collected as they arrive across reads.

The store grows with the bytes received, never to the announced size up front,
and is the C ``BodyBuffer`` (the message itself, read into in place) when the
speedups are active, a ``bytearray`` otherwise.
"""

from __future__ import annotations

import sys
from typing import TypeAlias

from ..errors import FramingError
from ._accelerated import speedups
from ._contract import Buffer

__all__ = ["BodyCollector"]


class _GrowingBody:
    """The pure-Python body store: a bytearray, copied into ``bytes`` when complete."""

    __slots__ = ("buffer", "total")

    def __init__(self, total: int) -> None:
        self.buffer = bytearray()
        self.total = total

    @property
    def size(self) -> int:
        return len(self.buffer)

    @property
    def need(self) -> int:
        return self.total - len(self.buffer)

    def fill(self, data: Buffer, pos: int) -> int:
        take = min(self.total - len(self.buffer), len(data) - pos)
        with memoryview(data) as view:
            self.buffer += view[pos : pos + take]
        return pos + take

    def window(self, limit: int) -> memoryview | None:
        return None  # reading in place needs the C BodyBuffer

    def advance(self, n: int) -> None:
        raise ValueError("more bytes than the window holds (no window was offered)")

    def finish(self) -> bytes:
        return bytes(self.buffer)

    def partial(self) -> bytes:
        return bytes(self.buffer)


# What a collector holds between bodies: nothing ever fills it (its need is 0),
# so one instance serves every collector and finishing a body allocates nothing.
_NO_BODY = _GrowingBody(0)


_Body: TypeAlias = "_GrowingBody | speedups.BodyBuffer"


class BodyCollector:
    """A body that spans several reads, collected as it arrives.

    The store grows as bytes arrive (never to the announced size up front: a
    peer announcing 16 MiB and sending 4 bytes must cost 4 bytes), filled
    straight from each read, a ``memoryview`` of the protocol's own buffer
    included. With the C speedups the store is the ``bytes`` object handed
    over at the end (no final copy), and an event loop may read into it
    directly (:meth:`window`); without them it is a bytearray, copied once.
    A trailer (the ``,`` of a netstring) is kept apart, so the body is never
    sliced off it.
    """

    __slots__ = ("_body", "_keep", "_new_body", "_tail", "header", "need", "size", "trailer")

    def __init__(self, *, pure_python: bool = False) -> None:
        self._new_body: type[_Body] = (
            _GrowingBody if pure_python or speedups is None else speedups.BodyBuffer
        )
        self.header = b""  # kept only to report it in IncompleteMessageError
        self._body: _Body = _NO_BODY
        self._tail = b""  # the trailer bytes received so far
        self._keep = 0  # header bytes that also begin the body (see start)
        self.size = 0  # bytes received (body and trailer)
        self.need = 0  # bytes still to come (body and trailer)
        self.trailer = b""

    def start(
        self, header: bytes, first: Buffer, total: int, trailer: bytes = b"", keep: int = 0
    ) -> None:
        """Begin a body of ``total`` bytes (trailer included); ``first`` is what has arrived.

        ``keep``: the body begins with the first ``keep`` bytes of ``header``
        (counted in ``total``), as a LengthField message keeps the bytes
        before its length field. They count once in ``size`` and ``partial()``.
        """
        self.header = header
        self.trailer = trailer
        self._tail = b""
        size = total - len(trailer)
        # The C buffer counts in ssize_t; a body past that (only a max_size
        # over sys.maxsize allows it) can never arrive anyway.
        self._body = self._new_body(size) if size <= sys.maxsize else _GrowingBody(size)
        self._keep = keep
        self.size = 0
        self.need = total
        if keep:
            self._body.fill(header[:keep], 0)
            self.need -= keep
        self.fill(first, 0)

    def fill(self, data: Buffer, pos: int) -> int:
        """Take what the body still needs from ``data[pos:]``; return the new position.

        The body is complete when ``need`` is 0 afterwards.
        """
        body = self._body
        end = body.fill(data, pos) if body.need else pos
        missing = len(self.trailer) - len(self._tail)
        if missing and end < len(data):
            stop = min(len(data), end + missing)
            self._tail += bytes(data[end:stop])
            end = stop
        self.size += end - pos
        self.need -= end - pos
        return end

    def window(self, minimum: int) -> memoryview | None:
        """A writable view to read the next body bytes into, or ``None``.

        Offered only while more than ``minimum`` body bytes are to come, and
        never over the body's last byte: the read that completes a message
        always goes through :meth:`fill`, so the window is released by then.
        The window is at most ``max(minimum, bytes received)`` long: memory
        still grows only as fast as bytes arrive. Report what was read with
        :meth:`advance`.
        """
        body = self._body
        if body.need <= minimum:
            return None
        return body.window(min(body.need - 1, max(minimum, body.size)))

    def advance(self, n: int) -> None:
        """Record ``n`` bytes read into the view from :meth:`window`."""
        self._body.advance(n)
        self.size += n
        self.need -= n

    def finish(self) -> bytes:
        """Return the complete message, the trailer checked and removed."""
        if self._tail != self.trailer:
            raise FramingError(f"message is not followed by {self.trailer!r}")
        message = self._body.finish()
        self.header, self._body, self._tail, self.size, self._keep = b"", _NO_BODY, b"", 0, 0
        return message

    def partial(self) -> bytes:
        """The header and the body bytes received so far (each received byte once)."""
        return self.header + self._body.partial()[self._keep :] + self._tail
