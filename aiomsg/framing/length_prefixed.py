"""Binary length prefix: an unsigned integer of 1, 2, 4 or 8 bytes, then the message."""

from __future__ import annotations

import functools
import struct
import sys
from collections.abc import Callable, Iterable
from typing import Literal

from ._accelerated import speedups
from ._contract import DEFAULT_MAX_SIZE, Buffer, Scan
from ._header import CountedFraming

__all__ = ["LengthPrefixed"]

_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


class LengthPrefixed(CountedFraming):
    """Each message is preceded by its length as a ``width``-byte unsigned integer.

    ``byteorder`` is ``"big"`` by default: network order, as in
    ``struct.pack(">I", len(m)) + m``, Twisted's ``Int32StringReceiver`` and most
    protocols. ``max_size`` defaults to 16 MiB, or to the largest length the
    width can express if that is smaller (255 for ``width=1``).

    A decoder raises :class:`~aiomsg.MessageTooLarge` as soon as it reads a
    header over ``max_size``, before any of the body arrives.

    Decoding and encoding run in C when aiomsg's optional speedups are built
    (see ``docs/framing.md``); the pure-Python path behaves the same.
    """

    __slots__ = ("_little", "_pack", "_unpack_from", "byteorder", "width")

    #: Bytes in the length header: 1, 2, 4 or 8.
    width: int
    #: ``"big"`` (network order) or ``"little"``.
    byteorder: str
    _little: bool
    _pack: Callable[[int], bytes]
    _unpack_from: Callable[..., tuple[int]]

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
        codec = struct.Struct((">" if byteorder == "big" else "<") + _FORMATS[width])
        self._set(
            width=width,
            byteorder=byteorder,
            _little=byteorder == "little",
            _pack=codec.pack,
            _unpack_from=codec.unpack_from,
        )

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        start = pos + self.width
        if start > len(buf):
            return None
        (size,) = self._unpack_from(buf, pos)
        if size > self.max_size:
            raise self._too_large(size)
        return start, size

    def _key(self) -> tuple[object, ...]:
        return (self.width, self.byteorder, self.max_size)

    def _c_scanner_args(self) -> tuple[object, ...]:
        assert speedups is not None
        return (speedups.K_BINARY, self.max_size, self.width, self._little)

    def _python_scan(self) -> Scan:
        # The most used framing: its own loop is about 2x the generic one in
        # pure Python (100-byte messages), as the per-message _header_at call
        # is most of the cost. It takes well-formed messages only, like the C
        # scanner.
        width = self.width
        unpack_from = self._unpack_from
        max_size = self.max_size

        def scan(buf: bytes, pos: int, out: list[bytes]) -> int:
            append = out.append
            end = len(buf)
            last = end - width  # the last position where a whole header fits
            if end <= max_size:
                # A body that fits in `buf` cannot be over max_size: only a
                # message running past the end needs the size check (~10%).
                while pos <= last:
                    start = pos + width
                    stop = start + unpack_from(buf, pos)[0]
                    if stop > end:
                        break
                    append(buf[start:stop])
                    pos = stop
                return pos
            while pos <= last:
                start = pos + width
                size = unpack_from(buf, pos)[0]
                stop = start + size
                if size > max_size or stop > end:
                    break
                append(buf[start:stop])
                pos = stop
            return pos

        return scan

    def _reencodes(self) -> bool:
        return True

    def encode(self, message: Buffer) -> bytes:
        if speedups is None:
            return self._pack(self._check_size(message)) + message
        wire = speedups.encode(message, self.width, self._little, self.max_size)
        if wire is None:
            raise self._too_large(_nbytes(message))
        return wire

    def encoder(self) -> Callable[[Buffer], bytes]:
        return self.encode if speedups is None else _c_encoder(self)

    def encode_many(self, messages: Iterable[Buffer]) -> bytes:
        if speedups is None:
            return super().encode_many(messages)
        messages = messages if isinstance(messages, list | tuple) else list(messages)
        wire = speedups.encode_many(messages, self.width, self._little, self.max_size)
        if isinstance(wire, int):
            raise self._too_large(_nbytes(messages[wire]))
        return wire

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        return [self._pack(self._check_size(message)), message]

    def __repr__(self) -> str:
        return f"LengthPrefixed({self.width}, {self.byteorder!r}, max_size={self.max_size})"


@functools.lru_cache(maxsize=1024)
def _c_encoder(framing: LengthPrefixed) -> Callable[[Buffer], bytes]:
    # Equal framings (frozen values) share one encoder. No message is longer than
    # sys.maxsize, so a larger max_size (which C cannot hold) changes nothing.
    assert speedups is not None
    max_size = min(framing.max_size, sys.maxsize)
    return speedups.Encoder(framing.width, framing._little, max_size, framing._too_large).encode


def _nbytes(message: Buffer) -> int:
    return message.nbytes if isinstance(message, memoryview) else len(message)
