"""The exceptions aiomsg raises.

Everything aiomsg raises on purpose derives from :class:`AiomsgError`, so one
``except aiomsg.AiomsgError`` catches it all. Bad bytes on the wire are
:class:`FramingError` (also a :class:`ValueError`); a connection that ended is
:class:`ConnectionClosed` (also a :class:`ConnectionError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, TypeVar

__all__ = [
    "AiomsgError",
    "BusyError",
    "CloseReason",
    "ConnectionClosed",
    "ConnectionTimeout",
    "FramingError",
    "HeartbeatTimeout",
    "IdleTimeout",
    "IncompleteMessageError",
    "MessageTimeout",
    "MessageTooLarge",
]


class AiomsgError(Exception):
    """Root of every exception aiomsg raises on purpose."""


class BusyError(AiomsgError, RuntimeError):
    """Another task is already receiving on this connection.

    Raised by the Streams front's ``receive()`` (and ``async for``) when a second
    task calls it while one waits: which of them should get the next message is
    not defined, so aiomsg refuses instead of guessing. Receive from one task and
    hand the messages out yourself (an ``asyncio.Queue``) if several need them.
    The anyio front raises :class:`anyio.BusyResourceError` instead, as anyio's
    contract says.
    """


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
            arrived before the end of the stream. Built when first read, not when
            the error is raised: a server whose clients all leave mid-message
            (a close storm) would otherwise copy every partial body at once,
            doubling its memory for bytes nobody looks at.
        partial_size: how many bytes that is, without building them.
    """

    def __init__(
        self, message: str, *, partial: bytes | Callable[[], bytes], size: int | None = None
    ) -> None:
        super().__init__(message)
        self._partial = partial
        self.partial_size = len(partial) if isinstance(partial, bytes) else (size or 0)

    @property
    def partial(self) -> bytes:
        built = self._partial
        if not isinstance(built, bytes):
            built = self._partial = built()  # once; the decoder's store is let go then
        return built


#: Why a connection is closed: ``"peer"`` (the peer closed it cleanly), ``"local"``
#: (this side closed it: ``close()``, ``abort()``, or after the peer broke the
#: framing), ``"lost"`` (it broke: a reset, a dead peer; ``__cause__`` says how),
#: ``"timeout"`` (aiomsg closed it: the peer was too slow).
CloseReason = Literal["peer", "local", "lost", "timeout"]


class ConnectionClosed(AiomsgError, ConnectionError):
    """The connection is closed: no more messages will arrive or can be sent.

    Raised by ``receive()`` after the peer closed cleanly (all its messages have
    been delivered before this), and by ``send()``/``receive()`` after the
    connection was closed locally or reset by the peer. ``__cause__`` holds the
    underlying :class:`OSError` when there was one.

    Attributes:
        reason: why, as a :data:`CloseReason`: ``"peer"``, ``"local"``,
            ``"lost"`` or ``"timeout"``.
    """

    def __init__(self, *args: object, reason: CloseReason = "lost") -> None:
        super().__init__(*args)
        self.reason: CloseReason = reason


class ConnectionTimeout(ConnectionClosed, TimeoutError):
    """The peer was too slow, so aiomsg closed the connection.

    Raised by ``receive()`` (and it ends ``async for``) on the connection that
    timed out; a :class:`~aiomsg.MessageProtocol` gets it in
    ``connection_timed_out()``. Also a :class:`TimeoutError`. The connection is
    closed already: stop using it.

    Attributes:
        timeout: the limit, in seconds, that expired.
    """

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message, reason="timeout")
        self.timeout = timeout


class MessageTimeout(ConnectionTimeout):
    """A message had begun but did not complete within ``message_timeout`` seconds.

    The peer stalled in the middle of a message (a header without its body,
    half a line...). Only time spent reading counts: while the application has
    paused reading, the clock stops.
    """


class IdleTimeout(ConnectionTimeout):
    """No byte arrived from the peer for ``idle_timeout`` seconds."""


class HeartbeatTimeout(IdleTimeout):
    """The heartbeat is on and nothing (not even a heartbeat) arrived for ``heartbeat_timeout``
    seconds: the peer, or the path to it, is gone or hung.

    An :class:`IdleTimeout` (silence is what it detects), so code that handles
    idle peers handles this one too; its own type says the peer was expected to
    heartbeat. The connection is closed already: reconnect if you need to.
    """


_E = TypeVar("_E", bound=BaseException)


def detached(exc: _E) -> _E:
    """Return ``exc`` with its traceback dropped (and that of its causes), for keeping.

    A caught exception's traceback holds the frames it passed through, and
    those hold their locals: an object that keeps the exception (to raise it
    again later) would sit in a reference cycle that only the cyclic garbage
    collector frees, with every buffer it holds.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return exc


def fresh(exc: _E) -> _E:
    """Return a new exception like a kept one (same type, arguments, attributes), to raise.

    Raising a kept exception again would add to its traceback on every raise
    and tie it to the raiser's frames; raise ``fresh(kept) from kept`` instead.
    """
    cls = type(exc)
    new = cls.__new__(cls, *exc.args)
    new.args = exc.args
    new.__dict__.update(exc.__dict__)
    return new


def not_bytes(message: object, text_method: str) -> TypeError | None:
    """The error for sending ``message`` when it is not a bytes-like object, else ``None``.

    Called only after an encode or a write failed, so the bytes path pays nothing:
    each framing would otherwise fail on a ``str`` with words of its own
    (``'in <string>' requires string as left operand``, ``tuple indices must be
    integers``...), none of which says what to do.
    """
    try:
        memoryview(message)  # type: ignore[arg-type]
    except TypeError:
        kind = type(message).__name__
        hint = f"use {text_method} for text" if isinstance(message, str) else "encode it first"
        return TypeError(f"a message is bytes (or bytearray, memoryview), not {kind}: {hint}")
    return None


def first_not_bytes(messages: Iterable[object], text_method: str) -> TypeError | None:
    """:func:`not_bytes` for the first of ``messages`` that is not bytes-like, else ``None``."""
    for message in messages:
        error = not_bytes(message, text_method)
        if error is not None:
            return error
    return None
