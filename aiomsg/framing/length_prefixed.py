"""Binary length prefix: an unsigned integer of 1, 2, 4 or 8 bytes, then the message."""

from __future__ import annotations

import struct
from typing import Literal

from ._base import DEFAULT_MAX_SIZE, Buffer, HeaderDecoder, HeaderFraming

__all__ = ["LengthPrefixed"]

_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


class LengthPrefixed(HeaderFraming):
    """Each message is preceded by its length as a ``width``-byte unsigned integer.

    ``byteorder`` is ``"big"`` by default: network order, as in
    ``struct.pack(">I", len(m)) + m``, Twisted's ``Int32StringReceiver`` and most
    protocols. ``max_size`` defaults to 16 MiB, or to the largest length the
    width can express if that is smaller (255 for ``width=1``).

    A decoder raises :class:`~aiomsg.MessageTooLarge` as soon as it reads a
    header over ``max_size``, before any of the body arrives.
    """

    __slots__ = ("_pack", "_unpack_from", "byteorder", "width")

    def __init__(
        self,
        width: Literal[1, 2, 4, 8] = 4,
        byteorder: Literal["big", "little"] = "big",
        *,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        if width not in _FORMATS:
            raise ValueError(f"width must be 1, 2, 4 or 8, not {width!r}")
        if byteorder not in ("big", "little"):
            raise ValueError(f"byteorder must be 'big' or 'little', not {byteorder!r}")
        super().__init__(min(max_size, (1 << (8 * width)) - 1))
        self.width = width
        self.byteorder = byteorder
        codec = struct.Struct((">" if byteorder == "big" else "<") + _FORMATS[width])
        self._pack = codec.pack
        self._unpack_from = codec.unpack_from

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        start = pos + self.width
        if start > len(buf):
            return None
        (size,) = self._unpack_from(buf, pos)
        if size > self.max_size:
            raise self._too_large(size)
        return start, size

    def decoder(self) -> HeaderDecoder:
        return _LengthPrefixedDecoder(self)

    def encode(self, message: Buffer) -> bytes:
        return self._pack(self._check_size(message)) + message

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        return [self._pack(self._check_size(message)), message]

    def __repr__(self) -> str:
        return f"LengthPrefixed({self.width}, {self.byteorder!r}, max_size={self.max_size})"


class _LengthPrefixedDecoder(HeaderDecoder):
    __slots__ = ()

    def _scan(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        # The generic loop, inlined: this is the most used framing, and the
        # per-message method call is a large share of its cost.
        framing: LengthPrefixed = self._framing  # type: ignore[assignment]
        width = framing.width
        unpack_from = framing._unpack_from
        append = out.append
        last = len(buf) - width  # the last position where a whole header fits
        if len(buf) <= framing.max_size:
            # A body that fits in `buf` cannot be over max_size: only a message
            # that runs past the end needs the size check (about 10% faster).
            while pos <= last:
                start = pos + width
                stop = start + unpack_from(buf, pos)[0]
                if stop > len(buf):
                    return self._begin_body(buf, pos, start, stop - start)
                append(buf[start:stop])
                pos = stop
            return pos
        max_size = framing.max_size
        while pos <= last:
            start = pos + width
            size = unpack_from(buf, pos)[0]
            if size > max_size:
                raise framing._too_large(size)
            stop = start + size
            if stop > len(buf):
                return self._begin_body(buf, pos, start, size)
            append(buf[start:stop])
            pos = stop
        return pos

    def _begin_body(self, buf: bytes, pos: int, start: int, size: int) -> int:
        framing = self._framing
        if size > framing.max_size:
            raise framing._too_large(size)
        self._body.start(buf[pos:start], memoryview(buf)[start:], size)
        return len(buf)
