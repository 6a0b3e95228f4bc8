"""Netstrings (D. J. Bernstein): ``12:hello world!,``."""

from __future__ import annotations

from ..errors import FramingError
from ._base import DEFAULT_MAX_SIZE, Buffer, HeaderDecoder, HeaderFraming

__all__ = ["Netstring"]

_COMMA = ord(",")
_ZERO = ord("0")
_DIGITS = b"0123456789"


class Netstring(HeaderFraming):
    """Each message is sent as ``<decimal length>:<message>,``.

    Strict, as the spec asks: the length has no sign, no spaces and no leading
    zero (``0:,`` is the empty message); a missing ``:`` or ``,`` raises
    :class:`~aiomsg.FramingError`. A length is refused as soon as its first
    digits prove it wrong, without waiting for the ``:``: ``03`` raises
    :class:`~aiomsg.FramingError` (a leading zero, however many digits follow),
    and digits worth more than ``max_size`` (``301`` for ``max_size=300``) raise
    :class:`~aiomsg.MessageTooLarge`.
    """

    __slots__ = ("_max_digits",)

    _max_digits: int

    _trailer = b","

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(max_size)
        self._set(_max_digits=len(str(self.max_size)))

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        # The slow path (the decoder's _scan takes well-formed headers itself).
        # Faults are judged in the order of their bytes, so that a header fed
        # whole or byte by byte raises the same error: a leading zero (its second
        # byte), then digits already over max_size, then a byte that is not a digit.
        colon = buf.find(b":", pos, pos + self._max_digits + 1)
        head = buf[pos:colon] if colon >= 0 else buf[pos : pos + self._max_digits + 1]
        digits = head if head.isdigit() else head[: len(head) - len(head.lstrip(_DIGITS))]
        if len(digits) > 1 and digits[0] == _ZERO:
            raise FramingError(
                f"netstring length {digits!r} has a leading zero (only b'0:' may start with 0)"
            )
        size = int(digits) if digits else 0
        if size > self.max_size:  # more digits can only make it larger
            raise self._too_large(size)
        if len(digits) < len(head):
            raise FramingError(f"netstring length {head!r} is not decimal digits")
        if colon < 0:
            # Incomplete and valid so far: max_digits + 1 digits would be over max_size.
            return None
        if not digits:
            raise FramingError("netstring has no length before ':'")
        return colon + 1, size

    def decoder(self, *, pure_python: bool = False) -> HeaderDecoder:
        return _NetstringDecoder(self, pure_python=pure_python)

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
