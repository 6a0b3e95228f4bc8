"""Netstrings (D. J. Bernstein): ``12:hello world!,``."""

from __future__ import annotations

from ..errors import FramingError, MessageTooLarge
from ._accelerated import speedups
from ._contract import DEFAULT_MAX_SIZE, Buffer, Scan
from ._header import CountedFraming

__all__ = ["Netstring"]

_COMMA = ord(",")
_ZERO = ord("0")
_DIGITS = b"0123456789"
# How many digits a too-large length's error shows at most (it names what it read).
_SHOWN_DIGITS = 40


class Netstring(CountedFraming):
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
        # The one judge of an unusual header (the fast loops take well-formed ones).
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
            raise self._length_too_large(buf, pos)
        if len(digits) < len(head):
            raise FramingError(f"netstring length {head!r} is not decimal digits")
        if colon < 0:
            # Incomplete and valid so far: max_digits + 1 digits would be over max_size.
            return None
        if not digits:
            raise FramingError("netstring has no length before ':'")
        return colon + 1, size

    def _length_too_large(self, buf: bytes, pos: int) -> MessageTooLarge:
        """The error for a length already over max_size, naming every digit at ``pos``.

        Its digits were judged on ``len(str(max_size)) + 1`` of them at most; the
        error reads on (up to ``_SHOWN_DIGITS``) so that it names the number the
        peer sent, not a truncated one. With its ':' the size is exact; without it
        (more digits may follow) the error says so, and ``size`` is a lower bound.
        """
        window = buf[pos : pos + _SHOWN_DIGITS + 1]
        run = window[: len(window) - len(window.lstrip(_DIGITS))]
        shown = run[:_SHOWN_DIGITS]
        size = int(shown)
        if len(run) <= _SHOWN_DIGITS and buf[pos + len(run) : pos + len(run) + 1] == b":":
            return self._too_large(size)
        more = "or more digits" if len(run) > _SHOWN_DIGITS else "digits so far"
        return MessageTooLarge(
            f"netstring length {shown.decode()} ({len(shown)} {more}, no ':' yet) is over "
            f"max_size={self.max_size}: a message of at least {size} bytes",
            size=size,
            max_size=self.max_size,
        )

    def _c_scanner_args(self) -> tuple[object, ...]:
        assert speedups is not None
        # Past 19 digits the C scanner stops (a 64-bit count) and Python judges.
        return (speedups.K_NETSTRING, self.max_size, min(self._max_digits, 19))

    def _python_scan(self) -> Scan:
        # Earns its lines in pure Python: about 1.5x the generic loop (100-byte
        # messages), as a find() for the ':' beats _header_at's careful judging.
        reach = self._max_digits + 1
        max_size = self.max_size

        def scan(buf: bytes, pos: int, out: list[bytes]) -> int:
            find = buf.find
            append = out.append
            end = len(buf)
            while pos < end:
                colon = find(b":", pos, pos + reach)
                digits = buf[pos:colon]
                if colon <= pos or not digits.isdigit() or (digits[0] == _ZERO and colon > pos + 1):
                    break
                size = int(digits)
                start = colon + 1
                stop = start + size
                if size > max_size or stop >= end or buf[stop] != _COMMA:
                    break
                append(buf[start:stop])
                pos = stop + 1
            return pos

        return scan

    def _reencodes(self) -> bool:
        return True  # strict: no leading zeros

    def encode(self, message: Buffer) -> bytes:
        return b"%d:" % self._check_size(message) + message + b","

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        return [b"%d:" % self._check_size(message), message, b","]
