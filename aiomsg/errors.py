"""The exceptions aiomsg raises.

Everything aiomsg raises on purpose derives from :class:`AiomsgError`, so one
``except aiomsg.AiomsgError`` catches it all. Bad bytes on the wire are
:class:`FramingError` (also a :class:`ValueError`); a connection that ended is
:class:`ConnectionClosed` (also a :class:`ConnectionError`).
"""

from __future__ import annotations

__all__ = [
    "AiomsgError",
    "ConnectionClosed",
    "FramingError",
    "IncompleteMessageError",
    "MessageTooLarge",
]


class AiomsgError(Exception):
    """Root of every exception aiomsg raises on purpose."""


class FramingError(AiomsgError, ValueError):
    """The bytes break the framing's rules, or a message cannot be encoded in it.

    Raised by a decoder when the peer sent a malformed header, an unknown type
    byte, a missing terminator and so on; raised by ``Framing.encode()`` when a
    message cannot be carried (it contains the delimiter, has the wrong size...).

    Attributes:
        messages: the complete messages a decoder found in the same ``feed()``
            call *before* the bad bytes, in order. They are good messages: deliver
            them, then treat the stream as broken. Empty when raised by ``encode``.

    After a decoder raised, the stream has lost its message boundaries and cannot
    be resynchronised: every later ``feed()``/``feed_eof()`` on that decoder
    raises :class:`FramingError` again. Close the connection.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.messages: list[bytes] = []


class MessageTooLarge(FramingError):
    """A message is larger than the framing's ``max_size``.

    A decoder raises it as soon as a header announces a larger message (before the
    body arrives, and without allocating it) or as soon as more than ``max_size``
    bytes arrived without a delimiter. ``encode()`` raises it for a message over
    ``max_size`` or over what the header width can express.

    Attributes:
        size: the announced or observed size in bytes (a lower bound when the
            message has no header), or ``None`` when unknown.
        max_size: the limit that was exceeded.
    """

    def __init__(self, message: str, *, size: int | None, max_size: int) -> None:
        super().__init__(message)
        self.size = size
        self.max_size = max_size


class IncompleteMessageError(FramingError):
    """The stream ended in the middle of a message.

    Attributes:
        partial: the bytes of the unfinished message (header included) that had
            arrived before the end of the stream.
    """

    def __init__(self, message: str, *, partial: bytes) -> None:
        super().__init__(message)
        self.partial = partial


class ConnectionClosed(AiomsgError, ConnectionError):
    """The connection is closed: no more messages will arrive or can be sent.

    Raised by ``receive()`` after the peer closed cleanly (all its messages have
    been delivered before this), and by ``send()``/``receive()`` after the
    connection was closed locally or reset by the peer. ``__cause__`` holds the
    underlying :class:`OSError` when there was one.
    """
