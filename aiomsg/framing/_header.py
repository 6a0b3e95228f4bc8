"""Counted framings: the body's length is known before it arrives (a header, a fixed size).

:class:`CountedFraming` is what they share: one rule, ``_header_at``, per
framing; :class:`CountedDecoder` runs it wherever the fast loop stops.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import cast

from ..errors import FramingError, IncompleteMessageError
from ._body import BodyCollector
from ._contract import Buffer, Decoder, Framing, IdleScan, _tail

__all__ = ["CountedDecoder", "CountedFraming"]


class CountedFraming(Framing):
    """A framing whose bodies are counted, not searched: their length is known up front.

    A length header says it (:class:`~aiomsg.LengthPrefixed`,
    :class:`~aiomsg.Netstring`...), or the framing fixes it
    (:class:`~aiomsg.FixedLength`; :class:`~aiomsg.TypePrefixed`, by the type
    byte). Subclasses implement :meth:`_header_at`; the shared
    :class:`CountedDecoder` does the rest. :class:`~aiomsg.TypePrefixed` nests
    any of them. (Formerly ``HeaderFraming``: not all of them have a header.)
    """

    __slots__ = ()

    #: Bytes that must follow every body (the ``,`` of a netstring).
    _trailer: bytes = b""

    @abstractmethod
    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        """Parse the header starting at ``buf[pos]``.

        Returns ``(body_start, body_length)``, or ``None`` when ``buf`` ends inside
        the header (and what is there so far is valid). Raises
        :class:`MessageTooLarge` for a length over ``max_size`` and
        :class:`FramingError` for a malformed header, as early as the bytes allow.
        """

    def decoder(self, *, pure_python: bool = False) -> CountedDecoder:
        return CountedDecoder(self, pure_python=pure_python)


class CountedDecoder(Decoder):
    """Decoder for every :class:`CountedFraming`: parse a header, count the body, repeat.

    Runs of whole messages go through the framing's fast loop (:data:`Scan`:
    the C scanner, or a Python loop where one earns its lines); wherever it
    stops, :meth:`_scan` takes over with the framing's ``_header_at``, the one
    place that decides what an unusual header means.
    """

    __slots__ = ("_body", "_fast", "_framing", "_head", "_in_place")

    def __init__(self, framing: CountedFraming, *, pure_python: bool = False) -> None:
        super().__init__()
        self._framing = framing
        self._head = b""  # an incomplete header, kept until the rest arrives
        self._body = BodyCollector(pure_python=pure_python)
        self._fast, self._in_place = framing._scanner(pure_python)

    @property
    def buffered(self) -> int:
        # A parsed header counts: a peer that sent one and stalls is inside a message
        # (the fronts' message_timeout starts on it), and the bytes are held for
        # IncompleteMessageError.partial.
        return len(self._head) + len(self._body.header) + self._body.size

    def get_buffer(self, sizehint: int) -> memoryview | None:
        if self._error is not None or self._finished:
            return None
        return self._body.window(sizehint)

    def buffer_updated(self, nbytes: int) -> list[bytes]:
        self._body.advance(nbytes)
        return []

    def idle_scanner(self) -> IdleScan | None:
        # Only the C scanner reads in place, and it takes an end.
        return cast(IdleScan, self._fast) if self._in_place else None

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        self._feed_buffer(data, out)

    def _feed_buffer(self, data: Buffer, out: list[bytes]) -> None:
        if type(data) is memoryview and (
            data.itemsize != 1 or data.ndim != 1 or not data.c_contiguous
        ):
            data = data.tobytes()  # the loops count bytes in one contiguous block
        pos = 0
        body = self._body
        if body.need:  # inside a long body: copy straight from the caller's buffer
            pos = body.fill(data, 0)
            if body.need:
                return
            out.append(body.finish())
            if pos == len(data):
                return
        if self._head:  # a header begun in the last read
            data = self._head + _tail(data, pos)
            self._head = b""
            pos = 0
        fast = self._fast
        if self._in_place:  # the C scanner reads any buffer where it is
            assert fast is not None
            pos = fast(data, pos, out)
            if pos == len(data):
                return
            if type(data) is not bytes:
                data, pos = _tail(data, pos), 0
        else:
            if type(data) is not bytes:
                data, pos = _tail(data, pos), 0
            if fast is not None:
                pos = fast(data, pos, out)
        assert type(data) is bytes
        pos = self._scan(data, pos, out)
        if pos < len(data):
            self._head = data[pos:]

    def _scan(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        """Decode ``buf[pos:]`` by the framing's rules; return where an incomplete header starts.

        The slow path, for whatever the fast loop left: a header or body that
        runs past the end of ``buf`` (the body moves into the body collector, and
        the whole buffer counts as consumed), or a header that ``_header_at``
        refuses, raising :class:`MessageTooLarge` or :class:`FramingError`.
        """
        header_at = self._framing._header_at
        trailer = self._framing._trailer
        tl = len(trailer)
        end = len(buf)
        append = out.append
        while pos < end:
            header = header_at(buf, pos)
            if header is None:
                break
            start, size = header
            stop = start + size
            if stop + tl > end:
                self._body.start(buf[pos:start], memoryview(buf)[start:], size + tl, trailer)
                return end
            if tl and buf[stop : stop + tl] != trailer:
                raise FramingError(f"message is not followed by {trailer!r}")
            append(buf[start:stop])
            pos = stop + tl
        return pos

    def _feed_eof(self) -> list[bytes]:
        if self._body.need:
            raise IncompleteMessageError(
                f"stream ended inside a message ({self._body.need} bytes missing)",
                partial=self._body.partial,  # built if someone asks: see the error
                size=self.buffered,
            )
        if self._head:
            raise IncompleteMessageError(
                f"stream ended inside a header ({len(self._head)} bytes)", partial=self._head
            )
        return []
