"""Netstrings (D. J. Bernstein): ``12:hello world!,``."""

from __future__ import annotations

from ..errors import FramingError
from ._base import DEFAULT_MAX_SIZE, Buffer, HeaderDecoder, HeaderFraming

__all__ = ["Netstring"]

_COMMA = ord(",")
_ZERO = ord("0")


class Netstring(HeaderFraming):
    """Each message is sent as ``<decimal length>:<message>,``.

    Strict, as the spec asks: the length has no sign, no spaces and no leading
    zero (``0:,`` is the empty message); a missing ``:`` or ``,`` raises
    :class:`~aiomsg.FramingError`. A length with more digits than ``max_size``
    has raises :class:`~aiomsg.MessageTooLarge` without waiting for the ``:``.
    """

    __slots__ = ("_max_digits",)

    _trailer = b","

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(max_size)
        self._max_digits = len(str(self.max_size))

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        colon = buf.find(b":", pos, pos + self._max_digits + 1)
        digits = buf[pos:colon] if colon >= 0 else buf[pos : pos + self._max_digits + 1]
        if digits and not digits.isdigit():
            raise FramingError(f"netstring length {digits!r} is not decimal digits")
        if colon < 0:
            if len(digits) > self._max_digits:
                raise self._too_large(int(digits))
            return None
        if not digits:
            raise FramingError("netstring has no length before ':'")
        if len(digits) > 1 and digits[0] == _ZERO:
            raise FramingError(f"netstring length {digits!r} has a leading zero")
        size = int(digits)
        if size > self.max_size:
            raise self._too_large(size)
        return colon + 1, size

    def decoder(self) -> HeaderDecoder:
        return _NetstringDecoder(self)

    def encode(self, message: Buffer) -> bytes:
        return b"%d:" % self._check_size(message) + message + b","

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        return [b"%d:" % self._check_size(message), message, b","]


class _NetstringDecoder(HeaderDecoder):
    __slots__ = ()

    def _scan(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        # The generic loop, inlined for the well-formed case; anything unusual
        # (an incomplete or malformed header) goes to _header_at, which decides.
        framing: Netstring = self._framing  # type: ignore[assignment]
        reach = framing._max_digits + 1
        max_size = framing.max_size
        find = buf.find
        append = out.append
        end = len(buf)
        while pos < end:
            colon = find(b":", pos, pos + reach)
            digits = buf[pos:colon]
            if colon <= pos or not digits.isdigit() or (digits[0] == _ZERO and colon - pos > 1):
                if framing._header_at(buf, pos) is not None:  # raises, or None: incomplete
                    raise AssertionError("netstring header checks disagree")  # pragma: no cover
                return pos
            size = int(digits)
            if size > max_size:
                raise framing._too_large(size)
            start = colon + 1
            stop = start + size
            if stop >= end:  # the body, or its comma, is still to come
                self._body.start(buf[pos:start], memoryview(buf)[start:], size + 1, b",")
                return end
            if buf[stop] != _COMMA:
                raise FramingError("message is not followed by b','")
            append(buf[start:stop])
            pos = stop + 1
        return pos
