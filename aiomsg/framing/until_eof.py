"""Until EOF: the message is everything the peer sends before it half-closes."""

from __future__ import annotations

from ._contract import DEFAULT_MAX_SIZE, Buffer, Decoder, Framing

__all__ = ["UntilEOF"]


class UntilEOF(Framing):
    """One message per direction: all the bytes until the peer shuts down its side.

    This is the HTTP/1.0-like exchange: the client sends its request and calls
    ``shutdown(SHUT_WR)``; the server knows the request is complete when it reads
    EOF. ``feed()`` never returns a message; ``feed_eof()`` returns exactly one
    (possibly empty). More than ``max_size`` bytes raise
    :class:`~aiomsg.MessageTooLarge` as soon as they arrive. ``encode()`` returns
    the message unchanged: the sender must half-close after writing it.

    Named for its boundary rule (formerly ``EndOfStream``, a name that clashed
    with :class:`anyio.EndOfStream`, the exception ``FramedStream`` raises at
    EOF; the old name still works, with a :class:`DeprecationWarning`).
    """

    __slots__ = ()

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        super().__init__(max_size)

    def decoder(self, *, pure_python: bool = False) -> Decoder:
        # One implementation: the whole stream is one message, nothing to scan.
        return _UntilEOFDecoder(self)

    def encode(self, message: Buffer) -> bytes:
        self._check_size(message)
        return bytes(message)

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        self._check_size(message)
        return [message]


class _UntilEOFDecoder(Decoder):
    __slots__ = ("_framing", "_parts", "_size")

    def __init__(self, framing: UntilEOF) -> None:
        super().__init__()
        self._framing = framing
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def buffered(self) -> int:
        return self._size

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        self._size += len(data)
        if self._size > self._framing.max_size:
            raise self._framing._too_large(self._size)
        self._parts.append(data)

    def _feed_eof(self) -> list[bytes]:
        message = b"".join(self._parts)
        self._parts, self._size = [], 0
        return [message]
