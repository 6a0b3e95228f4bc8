"""Delimited messages: each message ends with a delimiter (``\\n``, ``\\r\\n``, ``\\0``...)."""

from __future__ import annotations

import functools
import warnings
from typing import ClassVar

from ..errors import FramingError, IncompleteMessageError
from ._accelerated import speedups
from ._contract import DEFAULT_MAX_SIZE, Buffer, Decoder, Framing, _as_bytes, _tail

__all__ = ["Delimited", "Lines"]


class Delimited(Framing):
    """Each message is followed by ``delimiter`` (one or more bytes), which it may not contain.

    A delimiter split across two reads is found. The search resumes where the last
    one stopped, so a long message fed in small chunks costs O(size). As soon as
    more than ``max_size`` bytes have arrived without a delimiter, the decoder
    raises :class:`~aiomsg.MessageTooLarge`: a peer that never sends one cannot
    make it buffer without bound. (Last bytes that may begin the delimiter are
    not counted until the next bytes tell; ``feed_eof()`` counts them.)
    ``encode()`` refuses a message that contains the delimiter.
    """

    __slots__ = ("delimiter",)

    #: The bytes that end every message.
    delimiter: bytes

    def __init__(self, delimiter: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if not isinstance(delimiter, bytes) or not delimiter:
            raise ValueError(f"delimiter must be non-empty bytes, not {delimiter!r}")
        super().__init__(max_size)
        self._set(delimiter=delimiter)

    def _key(self) -> tuple[object, ...]:
        return (self.delimiter, self.max_size)

    def decoder(self, *, pure_python: bool = False) -> DelimitedDecoder:
        return DelimitedDecoder(
            self.delimiter, self.max_size, strip_cr=False, framing=self, pure_python=pure_python
        )

    def _c_scanner_args(self) -> tuple[object, ...]:
        assert speedups is not None
        return (speedups.K_DELIMITED, self.max_size, 0, False, self.delimiter)

    def _reencodes(self) -> bool:
        return True

    def encode(self, message: Buffer) -> bytes:
        self._check_message(message)
        return bytes(message) + self.delimiter

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        self._check_message(message)
        return [message, self.delimiter]

    def _check_message(self, message: Buffer) -> None:
        self._check_size(message)
        if self.delimiter in message:
            raise FramingError(f"message contains the delimiter {self.delimiter!r}")
        # A delimiter could also straddle the end of the message and the
        # delimiter appended to it (b"a\r" + b"\r\n" contains no "\r\n" at the
        # join, but b"\r" + b"\n\r" would): decode would cut it early.
        dl = len(self.delimiter)
        if dl > 1 and self.delimiter in bytes(message[-dl:]) + self.delimiter[:-1]:
            raise FramingError(f"message ends with a prefix of the delimiter {self.delimiter!r}")

    def __repr__(self) -> str:
        return f"Delimited({self.delimiter!r}, max_size={self.max_size})"


class Lines(Delimited):
    """Text lines: each message ends with ``\\n``; a ``\\r`` before it is removed too.

    Decoding accepts both ``\\n`` and ``\\r\\n`` endings (what ``nc`` and
    ``telnet`` send) and returns the line without them. ``encode()`` appends
    ``newline`` (``b"\\n"`` by default, or ``b"\\r\\n"``) and refuses a message
    that contains ``\\n`` or ends with ``\\r``. ``max_size`` counts the line
    without its ending. Messages are bytes: decode them as UTF-8 yourself, so that
    invalid text is your decision, not a framing error.

    ``endings`` tells what decoding accepts, ``newline`` what encoding appends.
    (The ``delimiter`` inherited from :class:`Delimited` said ``b"\\n"`` even
    for ``newline=b"\\r\\n"``: it is deprecated.)
    """

    __slots__ = ("newline",)

    #: The line endings decoding accepts and removes: ``\r\n`` and ``\n``.
    endings: ClassVar[tuple[bytes, ...]] = (b"\r\n", b"\n")

    #: What ``encode()`` appends: ``b"\n"`` or ``b"\r\n"``.
    newline: bytes

    def __init__(self, *, newline: bytes = b"\n", max_size: int = DEFAULT_MAX_SIZE) -> None:
        if newline not in (b"\n", b"\r\n"):
            raise ValueError(f"newline must be b'\\n' or b'\\r\\n', not {newline!r}")
        Framing.__init__(self, max_size)  # not Delimited's: a line has two endings
        self._set(newline=newline)

    @property
    def delimiter(self) -> bytes:  # type: ignore[override]
        """Deprecated: always ``b"\\n"``, which misleads; use ``endings`` or ``newline``."""
        warnings.warn(
            "Lines.delimiter is deprecated: it is b'\\n' whatever the line ending;"
            " use Lines.endings (what decoding accepts) or Lines.newline (what"
            " encode() appends)",
            DeprecationWarning,
            stacklevel=2,
        )
        return b"\n"

    def _key(self) -> tuple[object, ...]:
        return (self.newline, self.max_size)

    def decoder(self, *, pure_python: bool = False) -> DelimitedDecoder:
        return DelimitedDecoder(
            b"\n", self.max_size, strip_cr=True, framing=self, pure_python=pure_python
        )

    def _c_scanner_args(self) -> tuple[object, ...]:
        assert speedups is not None
        return (speedups.K_DELIMITED, self.max_size, 0, True, b"\n")

    def _reencodes(self) -> bool:
        return False  # a line may have ended with \n or \r\n

    def encode(self, message: Buffer) -> bytes:
        self._check_message(message)
        return bytes(message) + self.newline

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        self._check_message(message)
        return [message, self.newline]

    def _check_message(self, message: Buffer) -> None:
        self._check_size(message)
        if b"\n" in message:
            raise FramingError("a line cannot contain b'\\n'")
        if message[-1:] == b"\r":
            raise FramingError(
                "a line cannot end with b'\\r' (it would be read as part of its end)"
            )

    def __repr__(self) -> str:
        return f"Lines(newline={self.newline!r}, max_size={self.max_size})"


class DelimitedDecoder(Decoder):
    """Decoder for :class:`Delimited` and :class:`Lines`."""

    __slots__ = (
        "_delimiter",
        "_fast",
        "_framing",
        "_max_size",
        "_pending",
        "_resume",
        "_strip_cr",
    )

    def __init__(
        self,
        delimiter: bytes,
        max_size: int,
        *,
        strip_cr: bool,
        framing: Framing,
        pure_python: bool = False,
    ) -> None:
        super().__init__()
        self._framing = framing
        # The C scanner, which reads the caller's buffer in place; None in pure
        # Python, where _scan's bytes.find() loop is the fast path.
        fast, in_place = framing._scanner(pure_python)
        self._fast = fast if in_place else None
        self._delimiter = delimiter
        self._max_size = max_size
        self._strip_cr = strip_cr
        # The bytes of an unfinished message, grown in place (amortised O(1) per
        # byte, where `bytes + bytes` would copy everything again each time).
        self._pending = bytearray()
        # Where the next search in _pending starts: a delimiter cannot begin
        # before the last len(delimiter) - 1 bytes already searched.
        self._resume = 0

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def _feed_buffer(self, data: Buffer, out: list[bytes]) -> None:
        fast = self._fast
        if fast is None or self._pending:
            self._feed(_as_bytes(data), out)
            return
        if type(data) is memoryview and (
            data.itemsize != 1 or data.ndim != 1 or not data.c_contiguous
        ):
            data = data.tobytes()  # the scanner counts bytes in one contiguous block
        pos = fast(data, 0, out)
        if pos < len(data):  # no delimiter after pos, or a message over max_size
            self._scan(_tail(data, pos), 0, out)

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        pos = 0
        pending = self._pending
        if pending:
            # Finish the unfinished message first; the delimiter may straddle the join.
            before = len(pending)
            pending += data
            idx = pending.find(self._delimiter, self._resume)
            if idx < 0:
                self._resume = max(0, len(pending) - len(self._delimiter) + 1)
                self._check_pending()
                return
            stop = idx
            if self._strip_cr and idx and pending[idx - 1] == 13:
                stop -= 1
            if stop > self._max_size:
                raise self._framing._too_large(stop)
            with memoryview(pending) as view:
                out.append(bytes(view[:stop]))
            pos = idx + len(self._delimiter) - before
            pending.clear()
            self._resume = 0
            if self._fast is not None and pos < len(data):
                pos = self._fast(data, pos, out)
        self._scan(data, pos, out)

    def _scan(self, buf: bytes, pos: int, out: list[bytes]) -> None:
        # The rules (max_size, the "\r" of Lines, what is kept) in one place:
        # in pure Python the whole loop, with the C scanner only what it left.
        delimiter = self._delimiter
        dl = len(delimiter)
        max_size = self._max_size
        strip_cr = self._strip_cr
        find = buf.find
        append = out.append
        while True:
            idx = find(delimiter, pos)
            if idx < 0:
                break
            stop = idx
            if strip_cr and stop > pos and buf[stop - 1] == 13:
                stop -= 1
            if stop - pos > max_size:
                raise self._framing._too_large(stop - pos)
            append(buf[pos:stop])
            pos = idx + dl
        if pos < len(buf):
            self._pending += memoryview(buf)[pos:]
            self._resume = max(0, len(self._pending) - dl + 1)
            self._check_pending()

    def _check_pending(self) -> None:
        # Once per feed(), never per message.
        if len(self._pending) > self._max_size:
            self._check_long_pending()

    def _check_long_pending(self) -> None:
        # Over max_size bytes without a delimiter: too large, unless the last
        # ones may begin the delimiter (or be the "\r" of a "\r\n" line end),
        # which leaves a message of at most max_size if the rest of it follows.
        pending = self._pending
        opening = b"\r" if self._strip_cr else self._delimiter[:-1]
        n = len(opening)  # the longest end of pending that may begin the delimiter
        while n and not pending.endswith(opening[:n]):
            n -= 1
        if len(pending) - n > self._max_size:
            raise self._framing._too_large(len(pending) - n)

    def _feed_eof(self) -> list[bytes]:
        if len(self._pending) > self._max_size:  # what _check_pending let wait for its end
            raise self._framing._too_large(len(self._pending))
        if self._pending:
            raise IncompleteMessageError(
                f"stream ended inside a message ({len(self._pending)} bytes, no delimiter)",
                partial=functools.partial(bytes, self._pending),  # built if asked for
                size=len(self._pending),
            )
        return []
