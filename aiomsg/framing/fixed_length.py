"""Fixed-length messages: every message is exactly ``size`` bytes (the HOWTO's ``MSGLEN``)."""

from __future__ import annotations

from ..errors import FramingError
from ._accelerated import speedups
from ._contract import DEFAULT_MAX_SIZE, Buffer, Scan
from ._header import CountedFraming

__all__ = ["FixedLength"]


class FixedLength(CountedFraming):
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

    def _c_scanner_args(self) -> tuple[object, ...]:
        assert speedups is not None
        return (speedups.K_FIXED, self.max_size, self.size)

    def _python_scan(self) -> Scan:
        size = self.size

        def scan(buf: bytes, pos: int, out: list[bytes]) -> int:
            # No header to read: one comprehension slices every whole message
            # (about 2x the generic loop in pure Python).
            whole = pos + (len(buf) - pos) // size * size
            out.extend([buf[i : i + size] for i in range(pos, whole, size)])
            return whole

        return scan

    def _reencodes(self) -> bool:
        return True

    def encode(self, message: Buffer) -> bytes:
        if len(message) != self.size:
            raise FramingError(
                f"FixedLength({self.size}) cannot carry a message of {len(message)} bytes"
            )
        return bytes(message)

    def __repr__(self) -> str:
        return f"FixedLength({self.size})"
