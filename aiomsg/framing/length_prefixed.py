"""Binary length prefix: an unsigned integer of 1, 2, 4 or 8 bytes, then the message."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Literal

from ..errors import FramingError
from ._accelerated import speedups
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

    def decoder(self, *, pure_python: bool = False) -> HeaderDecoder:
        if speedups is not None and not pure_python:
            return _AcceleratedDecoder(self)
        return _LengthPrefixedDecoder(self, pure_python=True)

    def encode(self, message: Buffer) -> bytes:
        if speedups is None:
            return self._pack(self._check_size(message)) + message
        wire = speedups.encode(message, self.width, self._little, self.max_size)
        if wire is None:
            raise self._too_large(_nbytes(message))
        return wire

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


def _nbytes(message: Buffer) -> int:
    return message.nbytes if isinstance(message, memoryview) else len(message)


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


class _AcceleratedDecoder(HeaderDecoder):
    """The C loop decodes runs of whole messages; Python handles what spans reads.

    It reads the caller's buffer in place (a BufferedProtocol's memoryview
    included): each message costs one copy, the read as a whole none.
    """

    __slots__ = ("_little", "_max_size", "_scan_c", "_unpack_from", "_width")

    def __init__(self, framing: LengthPrefixed) -> None:
        super().__init__(framing)
        assert speedups is not None
        self._scan_c = speedups.scan
        self._width = framing.width
        self._little = framing._little
        self._max_size = framing.max_size
        self._unpack_from = framing._unpack_from

    def feed(self, data: Buffer) -> list[bytes]:
        # Decoder.feed() and _feed_buffer() in one method: a small message per
        # read (a chat line, an echo) pays for every Python call on this path.
        if self._error is not None or self._finished:
            self._check_usable()
        out: list[bytes] = []
        try:
            if type(data) is memoryview and (data.itemsize != 1 or not data.c_contiguous):
                data = bytes(data)  # the C loop counts bytes in one contiguous block
            pos = self._resume(data, out) if self._body.need or self._head else 0
            pos = self._scan_c(data, pos, self._width, self._little, self._max_size, out)
            if pos < len(data):
                self._stopped_at(data, pos, out)
        except FramingError as exc:
            exc.messages = out
            self._error = str(exc)
            raise
        return out

    def _resume(self, data: Buffer, out: list[bytes]) -> int:
        """Finish the body or header begun in an earlier read; return where data goes on."""
        body = self._body
        if not body.need:
            return self._finish_header(data, out)
        pos = body.fill(data, 0)
        if not body.need:
            out.append(body.finish())
        return pos

    def _finish_header(self, data: Buffer, out: list[bytes]) -> int:
        need = self._width - len(self._head)
        header = self._head + bytes(data[:need])
        if len(header) < self._width:
            self._head = header
            return len(data)
        self._head = b""
        return self._message_at(header, data, need, out)

    def _message_at(self, header: bytes, data: Buffer, pos: int, out: list[bytes]) -> int:
        """``header`` is complete and its body starts at ``data[pos]``: take the message."""
        size: int = self._unpack_from(header)[0]
        if size > self._max_size:
            raise self._framing._too_large(size)
        if len(data) - pos >= size:
            out.append(bytes(data[pos : pos + size]))
            return pos + size
        self._body.start(header, data[pos:], size)
        return len(data)

    def _stopped_at(self, data: Buffer, pos: int, out: list[bytes]) -> None:
        """The C loop stopped before the end: an oversized header, or a message that spans reads."""
        width = self._width
        if len(data) - pos < width:
            self._head = bytes(data[pos:])
            return
        self._message_at(bytes(data[pos : pos + width]), data, pos + width, out)
