"""Varint length prefix: the length as an unsigned LEB128 integer (protobuf, libp2p)."""

from __future__ import annotations

from ..errors import FramingError
from ._accelerated import speedups
from ._contract import DEFAULT_MAX_SIZE, Buffer
from ._header import CountedFraming

__all__ = ["Varint", "encode_varint"]

_MAX_VARINT_BYTES = 10  # enough for any 64-bit value; more is malformed


def encode_varint(value: int) -> bytes:
    """Return ``value`` (a non-negative int) as unsigned LEB128: ``300 -> b"\\xac\\x02"``."""
    if value < 0:
        raise ValueError("a varint is unsigned")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Varint(CountedFraming):
    """Each message is preceded by its length as an unsigned LEB128 varint.

    This is protobuf's length-delimited encoding (``writeDelimitedTo``) and
    libp2p's ``unsigned-varint`` prefix: 7 bits per byte, least significant group
    first, the high bit set on every byte but the last. A varint of more than 10
    bytes raises :class:`~aiomsg.FramingError`; a length over ``max_size`` raises
    :class:`~aiomsg.MessageTooLarge` as soon as the bytes read so far prove it.
    Non-minimal encodings (``b"\\x80\\x00"`` for 0) are accepted, as protobuf does.
    """

    __slots__ = ()

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(max_size)

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        size = 0
        shift = 0
        end = len(buf)
        i = pos
        while i < end:
            byte = buf[i]
            size |= (byte & 0x7F) << shift
            i += 1
            if size > self.max_size:
                raise self._too_large(size)
            if byte < 0x80:
                return i, size
            shift += 7
            if i - pos >= _MAX_VARINT_BYTES:
                raise FramingError(f"varint length header longer than {_MAX_VARINT_BYTES} bytes")
        return None

    def _c_scanner_args(self) -> tuple[object, ...]:
        assert speedups is not None
        return (speedups.K_VARINT, self.max_size)

    def encode(self, message: Buffer) -> bytes:
        return encode_varint(self._check_size(message)) + message

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        return [encode_varint(self._check_size(message)), message]
