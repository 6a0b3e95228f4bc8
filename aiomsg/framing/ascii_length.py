"""ASCII length prefix: the length as exactly N decimal digits (the HOWTO's ``00042``)."""

from __future__ import annotations

from ..errors import FramingError
from ._accelerated import speedups
from ._contract import DEFAULT_MAX_SIZE, Buffer, Scan
from ._header import CountedFraming

__all__ = ["AsciiLengthPrefixed"]


class AsciiLengthPrefixed(CountedFraming):
    """Each message is preceded by its length as ``digits`` zero-padded decimal digits.

    ``AsciiLengthPrefixed(5).encode(b"hello") == b"00005hello"``. Only the ASCII
    digits 0-9 are accepted in a header: a sign, a space or an underscore (which
    ``int()`` would take) raises :class:`~aiomsg.FramingError`. ``max_size``
    defaults to 16 MiB, or ``10**digits - 1`` if that is smaller.
    """

    __slots__ = ("digits",)

    #: How many decimal digits every header has.
    digits: int

    def __init__(self, digits: int = 5, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if not isinstance(digits, int) or not 1 <= digits <= 20:
            raise ValueError(f"digits must be an int from 1 to 20, not {digits!r}")
        super().__init__(min(max_size, 10**digits - 1))
        self._set(digits=digits)

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        start = pos + self.digits
        header = buf[pos:start]
        # Check what has arrived even when the header is incomplete, so that
        # garbage is refused at once rather than after `digits` bytes.
        if header and not header.isdigit():
            raise FramingError(f"length header {header!r} is not {self.digits} ASCII digits")
        if start > len(buf):
            return None
        size = int(header)
        if size > self.max_size:
            raise self._too_large(size)
        return start, size

    def _key(self) -> tuple[object, ...]:
        return (self.digits, self.max_size)

    def _c_scanner_args(self) -> tuple[object, ...]:
        assert speedups is not None
        return (speedups.K_ASCII, self.max_size, self.digits)

    def _python_scan(self) -> Scan:
        # Earns its lines in pure Python: about 1.7x the generic loop, whose
        # per-message _header_at call is most of the cost (100-byte messages).
        digits = self.digits
        max_size = self.max_size

        def scan(buf: bytes, pos: int, out: list[bytes]) -> int:
            append = out.append
            end = len(buf)
            while pos + digits <= end:
                start = pos + digits
                header = buf[pos:start]
                if not header.isdigit():
                    break
                size = int(header)
                stop = start + size
                if size > max_size or stop > end:
                    break
                append(buf[start:stop])
                pos = stop
            return pos

        return scan

    def _reencodes(self) -> bool:
        return True  # exactly `digits` digits, no sign or space

    def encode(self, message: Buffer) -> bytes:
        size = self._check_size(message)
        return b"%0*d" % (self.digits, size) + message

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        return [b"%0*d" % (self.digits, self._check_size(message)), message]

    def __repr__(self) -> str:
        return f"AsciiLengthPrefixed({self.digits}, max_size={self.max_size})"
