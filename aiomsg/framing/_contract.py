"""The codec contract: a :class:`Framing` describes a wire format, a :class:`Decoder`
holds one connection's state and is driven by a front through ``feed()``,
``feed_eof()``, ``get_buffer()`` and ``buffer_updated()``.

No sockets and no event loop here: bytes go in, complete messages come out, and
whatever follows the last complete message is kept for the next ``feed()``.

Why the decoders look the way they do (this is the hot path of the library):

* They parse by offset over the chunk they were given. The only bytes they
  keep between calls are a partial header (a few bytes) or the parts of an
  unfinished body, collected once (``_body.py``). So a 64 MiB message fed in
  4 KiB chunks costs O(size), never O(size²).
* A complete message costs one slice of the received chunk: one copy.
* Runs of whole messages go through one fast loop per framing (the C scanner,
  or a Python loop), which stops at anything unusual; the framing's own rule
  judges it there. This module chooses that loop, once per decoder.
"""

from __future__ import annotations

import functools
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import FramingError, IncompleteMessageError, MessageTooLarge
from ._accelerated import speedups

__all__ = ["DEFAULT_MAX_SIZE", "Buffer", "Decoder", "Framing", "IdleScan", "Scan"]

#: The default ``max_size`` of every framing: 16 MiB.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024

#: What ``feed()`` and ``encode()`` accept.
Buffer: TypeAlias = bytes | bytearray | memoryview

#: A framing's fast decode loop: ``scan(data, pos, out) -> stop``. It appends
#: every whole, well-formed message of ``data[pos:]`` to ``out`` and returns
#: where it stopped: the end, or the first message it does not take
#: (incomplete, malformed, too large), which the decoder's slow path judges.
#: It never raises for the data, so the error rules live in one place.
#: ``data`` is ``bytes`` for the Python loops, any contiguous buffer for the C one.
Scan: TypeAlias = Callable[[Any, int, list[bytes]], int]

#: The C scanner's own signature, ``scan(data, pos, out, end)``: as :data:`Scan`
#: over ``data[pos:end]``, with no slice made (see :meth:`Decoder.idle_scanner`).
IdleScan: TypeAlias = Callable[[Buffer, int, list[bytes], int], int]


def _as_bytes(data: Buffer) -> bytes:
    # bytes are immutable, so a decoder may keep slices of them; a bytearray or a
    # memoryview may be reused by the caller (a BufferedProtocol's buffer is), so
    # it is copied once here.
    return data if type(data) is bytes else bytes(data)


def _check_max_size(max_size: int) -> int:
    if not isinstance(max_size, int) or max_size < 0:
        raise ValueError(f"max_size must be a non-negative int, not {max_size!r}")
    return max_size


class Framing(ABC):
    """A message-boundary strategy: how messages are laid out on a byte stream.

    A framing is immutable and can be shared by any number of connections; it
    makes a fresh :class:`Decoder` for each one with :meth:`decoder`.
    """

    __slots__ = ("max_size",)

    #: The largest message, in bytes, that this framing encodes or decodes.
    max_size: int

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self._set(max_size=_check_max_size(max_size))

    # --- immutability -------------------------------------------------------------
    # A decoder copies what it needs from its framing when it is made (the C
    # scanner does too), so a framing changed afterwards would make the decoders
    # it already made disagree with the new ones, and the C path with the
    # Python one. Hence frozen: attributes are set once, in __init__, by _set().

    def _set(self, **values: object) -> None:
        """Set attributes while constructing (the only way: see ``__setattr__``)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    if not TYPE_CHECKING:  # hidden from type checkers, which then flag unknown names

        def __setattr__(self, name: str, value: object) -> None:
            raise AttributeError(
                f"{type(self).__name__} is immutable: cannot set {name!r};"
                " make a new framing with the value you want"
            )

        def __delattr__(self, name: str) -> None:
            raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def _key(self) -> tuple[object, ...]:
        """What makes two framings of one class equal: their parameters."""
        return (self.max_size,)

    # --- the decode loops, chosen here and nowhere else ------------------------------

    def _scanner(self, pure_python: bool) -> tuple[Scan | None, bool]:
        """The fast loop for a new decoder, and whether it reads any buffer in place.

        The C scanner when the speedups are active and ``pure_python`` is
        false; otherwise the framing's own Python loop, if it has one.
        """
        if speedups is not None and not pure_python:
            scanner = _c_scanner(self)
            if scanner is not None:
                return scanner.scan, True
        return self._python_scan(), False

    def _c_scanner_args(self) -> tuple[object, ...] | None:
        """The arguments of this framing's C ``Scanner`` (None: it has none)."""
        return None

    def _python_scan(self) -> Scan | None:
        """A pure-Python fast loop (over ``bytes``), where the benchmark shows it pays."""
        return None

    def _reencodes(self) -> bool:
        """Whether ``encode(m)`` gives back the exact bytes every decoded ``m`` came from.

        True where the wire has one spelling per message (a fixed width, strict
        digits, one delimiter), so the bytes of messages decoded but not yet used can
        be recovered when the connection switches framing (see ``set_framing()`` on
        the fronts). False where it has several (``Lines``: ``\n`` or ``\r\n``;
        ``Varint``: padded varints), or where ``encode`` cannot rebuild what was
        stripped.
        """
        return False

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Framing)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    @abstractmethod
    def decoder(self, *, pure_python: bool = False) -> Decoder:
        """Return a new decoder, with an empty buffer, for one connection.

        The decoder uses the C speedups when they are active (see
        :func:`speedups_active`); ``pure_python=True`` builds the pure-Python
        one instead, which behaves the same, only slower. That keyword is there
        to compare the two (the test suite runs every codec test on both);
        applications leave it alone.
        """

    @abstractmethod
    def encode(self, message: Buffer) -> bytes:
        """Return the wire bytes of one message.

        Raises:
            MessageTooLarge: the message is longer than ``max_size`` or than the
                header can express.
            FramingError: the format cannot carry this message (it contains the
                delimiter, has the wrong size...).
        """

    def encoder(self) -> Callable[[Buffer], bytes]:
        """Return a function that does what :meth:`encode` does, as fast as this framing can.

        For a sender that encodes message after message (each front's ``send()``):
        the same bytes, the same errors, in one C call per message where the C
        speedups have an encoder for this framing (:class:`~aiomsg.LengthPrefixed`),
        else :meth:`encode` itself. Get it once and keep it; it holds no state.
        """
        return self.encode

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        """Return buffers whose concatenation is ``encode(message)``.

        Hand them to ``writelines()`` to send a large message without copying
        it into a new bytes object. Raises what :meth:`encode` raises.
        """
        return [self.encode(message)]

    def encode_many(self, messages: Iterable[Buffer]) -> bytes:
        """Return the wire bytes of several messages, in order, as one object.

        Writing a batch with one call costs one system call instead of one per
        message. Raises what :meth:`encode` raises; nothing is returned then.
        """
        return b"".join([part for m in messages for part in self.encode_parts(m)])

    def _too_large(self, size: int) -> MessageTooLarge:
        return MessageTooLarge(
            f"message of {size} bytes is over max_size={self.max_size}",
            size=size,
            max_size=self.max_size,
        )

    def _check_size(self, message: Buffer) -> int:
        size = len(message) if not isinstance(message, memoryview) else message.nbytes
        if size > self.max_size:
            raise self._too_large(size)
        return size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_size={self.max_size})"


@functools.lru_cache(maxsize=1024)
def _c_scanner(framing: Framing) -> speedups.Scanner | None:
    # Equal framings (they are frozen values) share one scanner.
    args = framing._c_scanner_args()
    if args is None:
        return None
    # A max_size beyond what C counts in: the scanner stops at lengths past
    # sys.maxsize, and Python judges them, so nothing changes but the speed.
    kind, max_size, *rest = args
    assert isinstance(max_size, int)
    return speedups.Scanner(kind, min(max_size, sys.maxsize), *rest)  # type: ignore[arg-type]


class Decoder(ABC):
    """One connection's decoding state: bytes in, complete messages out.

    Call :meth:`feed` with every chunk read from the connection, in order, and
    handle the messages it returns. When the peer closes its side (a read of 0
    bytes), call :meth:`feed_eof` once.

    Error contract: a :class:`~aiomsg.FramingError` from ``feed()`` carries, in
    ``.messages``, the good messages that came before the bad bytes in that call.
    The decoder is then *failed*: the stream has lost its boundaries, and every
    later call raises :class:`~aiomsg.FramingError`. Close the connection. After
    ``feed_eof()`` the decoder is *finished*: later calls raise
    :class:`~aiomsg.FramingError` too.
    """

    __slots__ = ("_error", "_finished")

    def __init__(self) -> None:
        # Why the decoder failed, as text: keeping the exception itself would tie
        # it, its traceback and every frame in it (this decoder included) in a
        # reference cycle that only the cyclic GC frees.
        self._error: str | None = None
        self._finished = False

    def feed(self, data: Buffer) -> list[bytes]:
        """Add bytes received from the peer; return the messages they complete.

        Returns every message completed by ``data``, in order (often none, often
        many). The bytes after the last complete message are kept.

        Raises:
            MessageTooLarge: a header announced, or the bytes without a delimiter
                reached, more than ``max_size``. Raised at once, before the body.
            FramingError: the bytes are malformed, or the decoder had failed or
                finished earlier.
        """
        if self._error is not None or self._finished:
            self._check_usable()
        out: list[bytes] = []
        if data:
            try:
                self._feed_buffer(data, out)
            except FramingError as exc:
                exc.messages = out
                self._error = str(exc)
                raise
        return out

    def feed_eof(self) -> list[bytes]:
        """Tell the decoder that the peer closed its side; return the last messages.

        Returns the messages that only the end of the stream completes (the one
        message of :class:`~aiomsg.UntilEOF`; nothing for the other framings).

        Raises:
            IncompleteMessageError: the stream ended inside a message; its
                ``partial`` attribute holds the bytes that had arrived.
            FramingError: the decoder had failed or finished earlier.
        """
        self._check_usable()
        self._finished = True
        try:
            return self._feed_eof()
        except FramingError as exc:
            self._error = str(exc)
            raise

    def take_leftover(self) -> bytes:
        """Hand back the bytes held after the last message, and retire this decoder.

        For a change of framing part-way through a stream (a protocol header, then
        frames; a request, then a body; plaintext, then TLS): the result is exactly
        the bytes received after the last message :meth:`feed` returned (a partial
        header or message, or ``b""``), untouched. Feed them to the next framing's
        decoder, then go on feeding that one. Afterwards this decoder is finished:
        later calls raise :class:`~aiomsg.FramingError`.

        Raises:
            FramingError: the decoder had failed or finished already.
            BufferError: a view from :meth:`get_buffer` is still held.
        """
        self._check_usable()
        try:
            messages = self._feed_eof()
        except IncompleteMessageError as exc:  # every framing keeps the raw bytes there
            leftover = exc.partial
        else:  # UntilEOF: its message so far is the raw bytes
            leftover = b"".join(messages)
        self._finished = True
        return leftover

    @property
    @abstractmethod
    def buffered(self) -> int:
        """How many received bytes are held that are not yet part of a returned message.

        A parsed header counts, so 0 means "between messages": the fronts start a
        message's ``message_timeout`` when this leaves 0."""

    # --- the driving API for event-loop fronts (asyncio.BufferedProtocol's shape) ---

    def get_buffer(self, sizehint: int) -> memoryview | None:
        """Return a writable view to read the next bytes into, or ``None``.

        For fronts that read into a buffer of their own (``recv_into``,
        :class:`asyncio.BufferedProtocol`): ``sizehint`` is how many bytes that
        buffer holds. Inside a message body with more than ``sizehint`` bytes
        still to come (and only with the C speedups), the view is a window
        inside the message being built, so the bytes are read where they stay:
        one copy saved per byte. The window is at most ``max(sizehint, bytes of
        the body received so far)`` long, and never reaches the body's last byte.

        What the caller does next:

        * ``None``: read into your own buffer and pass the bytes to :meth:`feed`.
        * a view: read at most ``len(view)`` bytes into it, release the view
          (or drop it), then call :meth:`buffer_updated` with the number of
          bytes read, instead of :meth:`feed`. Until then, any other call on the
          decoder raises :class:`BufferError` rather than move the memory under
          the view. If nothing was read (EOF, an error), drop the view and go on.

        A failed or finished decoder returns ``None``.

        Raises:
            BufferError: the view from the previous call is still held (release
                it, or drop it, first).
            MemoryError: the body's store could not grow to the window.
        """
        return None

    def buffer_updated(self, nbytes: int) -> list[bytes]:
        """Record that ``nbytes`` were read into the view from :meth:`get_buffer`.

        Returns the messages those bytes completed: today always ``[]``, since
        a window never covers a body's last byte, but call it as if it could
        return messages and deliver them, in order, before the next read.

        Raises:
            ValueError: ``nbytes`` is negative or larger than the view, or no
                view was handed out since the last call.
        """
        raise ValueError("buffer_updated() without a view from get_buffer()")

    def idle_scanner(self) -> IdleScan | None:
        """Return the C loop that may decode a read without this decoder, or ``None``.

        For an I/O front's fast path when one message is in flight (every read then
        starts and ends with whole messages; aiomsg's fronts use it). Only while
        :attr:`buffered` is 0 (no message begun; not after an error or the end):
        ``pos = scan(buffer, 0, out, nbytes)`` appends the whole messages of
        ``buffer[:nbytes]`` to the list ``out``. If ``pos == nbytes`` that was all:
        this decoder is as :meth:`feed` would have left it. Otherwise feed it
        ``buffer[pos:nbytes]`` and add what that returns (or, on a
        :class:`~aiomsg.FramingError`, its ``messages``) to ``out``. ``None`` (the
        default, and without the C speedups): always :meth:`feed`.
        """
        return None

    def _check_usable(self) -> None:
        if self._error is not None:
            raise FramingError(f"decoder failed earlier: {self._error}")
        if self._finished:
            raise FramingError("decoder already saw the end of the stream")

    def _feed_buffer(self, data: Buffer, out: list[bytes]) -> None:
        """Decode ``data`` as given; decoders that can use a memoryview override this."""
        self._feed(_as_bytes(data), out)

    @abstractmethod
    def _feed(self, data: bytes, out: list[bytes]) -> None:
        """Decode ``data`` (non-empty), appending complete messages to ``out``."""

    @abstractmethod
    def _feed_eof(self) -> list[bytes]:
        """Finish the stream (see :meth:`feed_eof`)."""


def _tail(data: Buffer, pos: int) -> bytes:
    """``bytes(data[pos:])`` with one copy, whatever the buffer type."""
    if type(data) is bytes:
        return data[pos:] if pos else data
    with memoryview(data) as view:
        return bytes(view[pos:])
