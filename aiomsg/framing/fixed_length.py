"""Fixed-length messages: every message is exactly ``size`` bytes (the HOWTO's ``MSGLEN``)."""

from __future__ import annotations

from ..errors import FramingError
from ._base import DEFAULT_MAX_SIZE, Buffer, HeaderDecoder, HeaderFraming

__all__ = ["FixedLength"]


class FixedLength(HeaderFraming):
    """Every message is exactly ``size`` bytes; nothing marks the boundaries.

    ``encode()`` raises :class:`~aiomsg.FramingError` for a message of any other
    size. ``size`` may not exceed ``max_size`` (default 16 MiB), so that a
    mistaken size cannot make a decoder hold gigabytes.
    """

    __slots__ = ("size",)

    #: The size of every message, in bytes.
    size: int

    def __init__(self, size: int, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(max_size)
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, not {size!r}")
        if size > self.max_size:
            raise ValueError(f"size={size} is over max_size={self.max_size}")
        self._set(size=size)

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int]:
        return pos, self.size

    def _key(self) -> tuple[object, ...]:
        return (self.size, self.max_size)

    def decoder(self, *, pure_python: bool = False) -> HeaderDecoder:
        return _FixedLengthDecoder(self, self.size, pure_python=pure_python)

    def encode(self, message: Buffer) -> bytes:
        if len(message) != self.size:
            raise FramingError(
                f"FixedLength({self.size}) cannot carry a message of {len(message)} bytes"
            )
        return bytes(message)

    def __repr__(self) -> str:
        return f"FixedLength({self.size})"


class _FixedLengthDecoder(HeaderDecoder):
    __slots__ = ("_size",)

    def __init__(self, framing: FixedLength, size: int, *, pure_python: bool) -> None:
        super().__init__(framing, pure_python=pure_python)
        self._size = size

    def _scan(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        size = self._size
        end = len(buf)
        whole = pos + (end - pos) // size * size
        out.extend([buf[i : i + size] for i in range(pos, whole, size)])
        if whole < end:
            # The start of the next message: a body collector joins it later,
            # so a large fixed size is never re-copied chunk after chunk.
            self._body.start(b"", memoryview(buf)[whole:], size)
            return end
        return whole
