"""The asyncio Protocol front: subclass :class:`MessageProtocol`, get ``message_received(msg)``.

Built on :class:`asyncio.BufferedProtocol`: the event loop reads straight into
one reusable buffer, and each read is decoded in one call. This is the fastest
front, for applications happy with callbacks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import operator
import os
import socket
import ssl
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, cast

from .._memory_budget import SMALL, MemoryBudget, budget_for
from .._read_budget import SPENT_READ
from .._read_buffer import shared_read_buffer
from .._socket_options import enable_keepalive, reset_on_close
from ..errors import (
    CloseReason,
    ConnectionClosed,
    ConnectionTimeout,
    FramingError,
    HeartbeatTimeout,
    IdleTimeout,
    MessageTimeout,
    detached,
    first_not_bytes,
    fresh,
    not_bytes,
)
from ..framing import Buffer, Framing
from ..framing.proxy_protocol import ProxyHeader
from ..framing.switch import check_tls_boundary, chosen_framings, switch_decoder
from ..limits import (
    COPY_LIMIT,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_KEEPALIVE,
    DEFAULT_MESSAGE_TIMEOUT,
    DEFAULT_READ_SIZE,
    DEFAULT_WRITE_HIGH_WATER,
)
from ..options import DEFAULT_OPTIONS, Options, resolve_options

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_KEEPALIVE",
    "DEFAULT_MESSAGE_TIMEOUT",
    "DEFAULT_READ_SIZE",
    "DEFAULT_WRITE_HIGH_WATER",
    "MessageProtocol",
]

logger = logging.getLogger("aiomsg")

_OPTION_FIELDS = frozenset(field.name for field in dataclasses.fields(Options))


class MessageProtocol(asyncio.BufferedProtocol):
    """A protocol that speaks in messages. Subclass it and override :meth:`message_received`.

    Give the framing as a class attribute (``framing = aiomsg.Lines()``) or to the
    constructor. Use it like any protocol: ``loop.create_server(Chat, host, port)``
    or ``loop.create_connection(lambda: Chat(framing=...), host, port)``.

    Callbacks you may override:

    * :meth:`message_received` - one complete message (required).
    * :meth:`peer_closed` - the peer half-closed after its last message.
    * :meth:`framing_error` - the peer broke the framing; the connection is then closed.
    * :meth:`connection_timed_out` - the peer was too slow; the connection is then closed.
    * ``connection_made`` / ``connection_lost`` / ``pause_writing`` /
      ``resume_writing`` - as in asyncio; call ``super()``.

    Limits: an :class:`~aiomsg.Options`, as the class attribute ``options``
    (``options = aiomsg.Options(message_timeout=5)``) or the constructor's
    ``options=``; the defaults are safe. What they do on this front:

    * ``read_size`` - bytes per read (the buffer is shared by every connection
      of the thread, so it costs nothing per connection).
    * ``write_high_water`` - unsent bytes above which :meth:`drain` waits and,
      with ``write_backpressure`` (the default), reading from the peer stops
      until the peer has read enough: a peer that sends without reading cannot
      grow the write buffer without bound.
    * ``message_timeout`` (default 60 s) - a message that has begun must
      complete within it; ``idle_timeout`` (default off) - some byte must
      arrive within it. Only time spent reading counts. On expiry the
      connection is closed and :meth:`connection_timed_out` is called.
    * ``keepalive`` (default 60 s) - TCP keepalive, so that a peer that
      vanished (power loss, cable pulled) is found; ``None`` leaves it off.
    * ``heartbeat`` (default off) - seconds: an empty message is sent when
      nothing was sent for that long, empty messages received are swallowed
      (never delivered), and a peer from which nothing at all arrived for
      ``heartbeat_timeout`` seconds (default 3 heartbeats) is closed with
      :class:`~aiomsg.HeartbeatTimeout`. Both sides must have it on. The
      framing must carry empty messages: ``ValueError`` otherwise.
    * ``linger_timeout`` (2 s) - how long a close after an error waits for the
      peer to close too; ``close_timeout`` (30 s) - how long :meth:`close`
      waits for the peer to read what is left to send, without progress,
      before aborting.

    The old class attributes and keywords of the same names (``message_timeout
    = 5`` in a subclass) still work for one release, with a
    :class:`DeprecationWarning`.

    Flow control: :meth:`send` never blocks; ``await`` :meth:`drain` to wait while
    the write buffer is over its high-water mark. Call :meth:`pause_reading`
    while the application is behind, and :meth:`resume_reading` after.
    """

    # Slots, not a __dict__: an instance has more attributes than CPython keeps in a
    # shared-keys dict (30), and then every self.method() call on the hot path is an
    # unspecialised lookup. A subclass gets a __dict__ of its own for its attributes.
    __slots__ = (
        "__weakref__",
        "_app_paused",
        "_batch",
        "_beat_timer",
        "_budget",
        "_budget_limit",
        "_buffer",
        "_close_timeout",
        "_closed",
        "_closed_waiter",
        "_decoder",
        "_delivering",
        "_discarding",
        "_drain_waiters",
        "_encode",
        "_flush_timer",
        "_framing",
        "_heartbeat",
        "_held",
        "_held_back",
        "_held_partial",
        "_held_unread",
        "_held_unsent",
        "_idle_scan",
        "_idle_timeout",
        "_keepalive",
        "_last_read",
        "_linger_left",
        "_linger_timeout",
        "_linger_timer",
        "_loop",
        "_loops_here",
        "_lost",
        "_message_started",
        "_message_timeout",
        "_options",
        "_peer_eof",
        "_read_bytes",
        "_reading_into_body",
        "_reading_paused",
        "_reads",
        "_receive_framing",
        "_redecoded",
        "_sent",
        "_spent_reads",
        "_timer",
        "_timer_when",
        "_timing",
        "_tls_held",
        "_undelivered",
        "_write_backpressure",
        "_write_high_water",
        "_write_paused",
        "budget_held",
        "budget_paused",
        "needs_drain",
        "proxy_header",
        "transport",
    )

    framing: ClassVar[Framing | None] = None
    #: The limits, timeouts and heartbeat of every connection of this class
    #: (the constructor's ``options=`` overrides it for one).
    options: ClassVar[Options] = DEFAULT_OPTIONS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The old way: a class attribute per limit. Folded into `options`, once, here.
        legacy = {name: value for name, value in vars(cls).items() if name in _OPTION_FIELDS}
        if legacy:
            base = cls.__dict__.get("options", cls.options)
            cls.options = resolve_options(f"class {cls.__name__}", base, None, legacy)

    transport: asyncio.Transport | None

    def __init__(
        self,
        *,
        framing: Framing | None = None,
        options: Options | None = None,
        **deprecated: Any,
    ) -> None:
        """Frame the connection with ``framing`` and ``options`` (each defaults to the
        class attribute of the same name).

        Raises:
            TypeError: no framing, neither as an argument nor as a class attribute.
            ValueError: a heartbeat with a framing that cannot carry an empty
                message.
        """
        cls = type(self)
        chosen = framing if framing is not None else cls.framing
        if chosen is None:
            raise TypeError(f"{cls.__name__} needs a framing (class attribute or argument)")
        opts = cls.options if options is None else options
        if deprecated:  # the old keywords, one per limit
            opts = resolve_options(cls.__name__, opts, None, deprecated, strict=True)
        self._options = opts
        self._framing: Framing = chosen  # the send framing
        self._encode = chosen.encoder()  # its encode(), in C where it can be
        self._receive_framing: Framing = chosen
        self._decoder = chosen.decoder()
        self._idle_scan = self._decoder.idle_scanner()  # buffer_updated()'s fast path
        self._buffer = shared_read_buffer(opts.read_size)
        self._reads = self._buffer  # what a read may fill: all of it, unless a subclass limits it
        self._spent_reads = self._buffer[:SPENT_READ]  # while the memory budget is spent
        self._write_high_water = opts.write_high_water
        self._write_backpressure = opts.write_backpressure
        self._message_timeout = opts.message_timeout
        self._idle_timeout = opts.idle_timeout
        self._keepalive = opts.keepalive
        self._linger_timeout = opts.linger_timeout
        self._close_timeout = opts.close_timeout
        self._heartbeat = opts.heartbeat_for(chosen)
        self._beat_timer: asyncio.TimerHandle | None = None
        self._sent = False  # something was sent since the last heartbeat check
        self.transport = None
        #: The PROXY protocol header the load balancer sent ahead of this connection
        #: (on a server with ``proxy_protocol=``; set before :meth:`connection_made`),
        #: or ``None``.
        self.proxy_header: ProxyHeader | None = None
        self._write_paused = False
        #: Whether :meth:`drain` would wait or raise now (the write buffer is over its
        #: high-water mark, or the connection is lost); while ``False`` it returns at
        #: once, so a sender on a hot path can skip the call. Read it; do not set it.
        self.needs_drain = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._app_paused = False  # pause_reading() was called
        self._held_back = False  # not reading by our choice: the clocks stop meanwhile
        self._reading_paused = False  # the transport is not reading (any reason)
        # The server-wide memory budget (see _memory_budget): what this connection
        # holds in it, in parts, and whether the budget paused its reading.
        self._budget: MemoryBudget | None = None
        self._budget_limit = opts.memory_budget
        self.budget_held = 0
        self.budget_paused = False
        self._held_partial = 0  # the unfinished message, counted when over SMALL
        self._held_unread = 0  # decoded messages the application has not taken
        self._held_unsent = 0  # output, counted when the write buffer fills
        self._read_bytes = 0  # the last read's size
        self._lost: ConnectionClosed | None = None
        self._closed = False
        self._closed_waiter: asyncio.Future[None] | None = None
        self._discarding = False
        self._peer_eof = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self._linger_left = 0  # unsent bytes when the lingering close began (or last looked)
        self._batch: list[bytes] = []  # the messages being delivered
        # The default messages_received() loop's iterator: what set_framing() takes
        # back, undelivered, when it is called while a batch is being delivered.
        self._undelivered: Iterator[bytes] = iter(())
        self._delivering = False
        # Whether messages_received() is the default one, whose loop _deliver() runs
        # itself: a Python call per read saved on the request/response path.
        self._loops_here = cls.messages_received is MessageProtocol.messages_received
        self._redecoded: list[bytes] | None = None  # messages a switch re-decoded meanwhile
        self._tls_held: list[list[bytes]] | None = None  # batches held during start_tls()
        self._reading_into_body = False  # get_buffer() handed out the decoder's read window
        # What the decoder holds (0: nothing, no body to read into), as of the last read;
        # or 1 when unknown (after a switch of framing). A 0 is exact: buffer_updated()
        # then decodes a read without the decoder. A stale 1 costs only the decoder's
        # own check.
        self._held = 0  # a new decoder holds nothing
        # The timeout clocks: read on every read only when a timeout is set.
        self._timing = (
            self._message_timeout is not None
            or self._idle_timeout is not None
            or self._heartbeat is not None
        )
        self._last_read = 0.0  # loop time of the last read
        self._message_started: float | None = None  # loop time the unfinished message began
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop  # set by connection_made()

    # --- asyncio callbacks: override the user-facing ones, not these ---------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport, set its limits, start the clocks.

        Call ``super()`` if you override it.
        """
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=self._write_high_water)
        if self._keepalive is not None:
            enable_keepalive(transport.get_extra_info("socket"), self._keepalive)
        # Kept: asking asyncio for the running loop costs a system call
        # (getpid) on Python 3.11, too much for every read.
        self._loop = asyncio.get_running_loop()
        self._budget = budget_for(self._loop, self._budget_limit)
        if self._timing:
            self._last_read = self._loop.time()
            if self._idle_timeout is not None:
                self._arm(self._last_read + self._idle_timeout)
        if self._heartbeat is not None:
            self._arm(self._last_read + self._heartbeat.timeout)
            self._beat_timer = self._loop.call_later(self._heartbeat.interval, self._beat)

    def get_buffer(self, sizehint: int) -> memoryview:
        """``asyncio.BufferedProtocol``'s hook: the buffer the event loop reads into next."""
        budget = self._budget
        if budget is not None and budget.held > budget.limit and budget.lead is not self:
            # The memory budget is spent: take little at a time, so that no
            # connection grows by more than a sip before the budget weighs it.
            self._reading_into_body = False
            return self._spent_reads
        if not self._held:  # no message begun (the common case): no body to read into
            self._reading_into_body = False
            return self._reads
        # Inside a body longer than a read, the loop reads straight into the
        # message being built (with the C speedups): a copy saved per byte.
        window = self._decoder.get_buffer(len(self._buffer))
        self._reading_into_body = window is not None
        return self._reads if window is None else window

    def buffer_updated(self, nbytes: int) -> None:
        """``asyncio.BufferedProtocol``'s hook: ``nbytes`` were read; decode and deliver them."""
        if self._reading_into_body:  # the bytes went straight into the body being built
            self._reading_into_body = False
            messages = self._decoder.buffer_updated(nbytes)
            if self._timing:
                self._last_read = self._loop.time()
            if self._budget is not None:
                self._count_partial(self._decoder.buffered)
            if messages:  # none today (a window never covers a body's last byte)
                self._deliver(messages)
            return
        if self._discarding or self._closed:  # after a framing error or close(): dropped
            return
        self._read_bytes = nbytes  # what the budget weighs a batch by (see _QueueProtocol)
        messages = []
        pos = 0
        scan = self._idle_scan  # a local: a call of an attribute is not specialised
        if not self._held and scan is not None:
            # No message begun: the C scanner takes the read's whole messages where
            # they lie. When they end with the read (one message in flight, the
            # request/response case), the decoder is left as it was, and the rest of
            # the bookkeeping is known: no message begun, nothing held.
            pos = scan(self._buffer, 0, messages, nbytes)
            if pos == nbytes:
                if self._timing:
                    self._last_read = self._loop.time()
                    self._message_started = None
                if self._held_partial:
                    self._count_partial(0)
                self._deliver(messages)
                return
        try:
            messages += self._decoder.feed(self._buffer[pos:nbytes])
        except FramingError as exc:
            self._deliver(messages + exc.messages)
            self._fail(detached(exc))
            return
        if self._timing:
            self._track_message(bool(messages))  # counts the partial message too
        else:
            self._held = self._decoder.buffered
            if self._budget is not None:
                self._count_partial(self._held)
        self._deliver(messages)

    def eof_received(self) -> bool:
        self._peer_eof = True
        self._cancel_timer()  # the peer sends nothing more: nothing to wait for
        if self._discarding:
            return False  # the lingering close is over: let asyncio close
        try:
            messages = self._decoder.feed_eof()
        except FramingError as exc:
            self._fail(detached(exc))
            return False
        self._deliver(messages)
        return bool(self.peer_closed())

    def _deliver(self, messages: list[bytes]) -> None:
        if self._tls_held is not None:  # start_tls() is under way: deliver these after it
            self._tls_held.append(messages)
            return
        if self._heartbeat is not None and messages:
            messages = [m for m in messages if m]  # heartbeats are not the application's
        # When the application closes, _stop_delivery() empties this list, which
        # ends messages_received()'s loop: cheaper than a flag test per message.
        self._batch = messages
        self._delivering = True
        try:
            if self._loops_here:  # messages_received() is ours: its loop, without its call
                self._undelivered = undelivered = iter(messages)
                for message in undelivered:
                    self.message_received(message)  # a specialised call (see __slots__)
            else:
                self.messages_received(messages)
        finally:
            self._delivering = False
        if self._redecoded is not None:  # set_framing() during that batch
            messages, self._redecoded = self._redecoded, None
            self._deliver(messages)

    def _stop_delivery(self) -> None:
        """The application no longer wants messages: drop the rest of this batch."""
        self._closed = True
        self._batch.clear()
        self._cancel_timer()
        self._stop_beating()

    def _fail(self, exc: FramingError) -> None:
        """The peer broke the framing: tell the application, then close (lingering)."""
        self._discarding = True
        keep_open = False
        try:
            keep_open = bool(self.framing_error(exc))
        finally:
            if not keep_open:
                self._linger_close()

    def _linger_close(self) -> None:
        """Close so that what was queued (an error notice) reaches the peer.

        Closing a socket that still has unread input makes the kernel send a
        reset, which can destroy the notice before the peer reads it. So: send
        what is queued, then EOF; read and drop whatever the peer still sends
        until it closes too, or for ``linger_timeout`` seconds at most; then close.
        """
        transport = self.transport
        self._stop_delivery()
        if transport is None or transport.is_closing() or self._linger_timer is not None:
            return  # closed, or lingering already
        if self._peer_eof or not transport.can_write_eof():
            transport.close()
            self._watch_flush()
            return
        self._discarding = True
        if not transport.is_reading():  # paused: the peer's bytes must drain
            transport.resume_reading()
        transport.write_eof()
        self._linger_left = transport.get_write_buffer_size()
        self._linger_timer = self._loop.call_later(self._linger_timeout, self._linger_expired)

    def _linger_expired(self) -> None:
        """The peer had ``linger_timeout`` to close: abort, unless what was queued is still
        going out and the peer is reading it (then give it another interval)."""
        self._linger_timer = None
        transport = self.transport
        left = transport.get_write_buffer_size() if transport is not None else 0
        if 0 < left < self._linger_left:  # progress: the notice is on its way
            self._linger_left = left
            self._linger_timer = self._loop.call_later(self._linger_timeout, self._linger_expired)
            return
        self.abort()

    def pause_writing(self) -> None:
        """The peer is behind: :meth:`drain` waits and reading stops (``write_backpressure``).

        Call ``super()`` if you override it.
        """
        self._write_paused = self.needs_drain = True
        if self._budget is not None and self.transport is not None:
            self._held_unsent = self.transport.get_write_buffer_size()
            self._count_held()
        if self._write_backpressure:
            self._update_reading()

    def resume_writing(self) -> None:
        """The peer caught up: wake :meth:`drain` and read again. Call ``super()`` if overridden."""
        self._write_paused = False
        self.needs_drain = self._lost is not None
        if self._held_unsent:
            self._held_unsent = 0
            self._count_held()
        self._wake_drainers()
        if self._write_backpressure:
            self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake every :meth:`drain` waiter and stop the timers. Call ``super()`` if overridden.

        When the connection was lost because a write failed (the peer closed or reset
        it while this side was still sending), the messages the peer had already sent
        and this side had not yet read are delivered first, here: a server's last
        words ("goodbye: you were flooding") are not lost to a broken pipe.
        """
        if isinstance(exc, OSError) and not self._closed and not self._discarding:
            self._read_what_is_left()
        self._stop_delivery()  # the timers of the clocks and the heartbeat too
        for timer in (self._linger_timer, self._flush_timer):
            if timer is not None:
                timer.cancel()
        self._linger_timer = self._flush_timer = None
        if exc is not None:
            lost = ConnectionClosed(f"connection lost: {exc}", reason="lost")
        elif self._closed:
            lost = ConnectionClosed("connection closed (here)", reason="local")
        else:
            lost = ConnectionClosed("connection closed by the peer", reason="peer")
        # Kept without traceback: its frames would tie this protocol in a cycle.
        lost.__cause__ = detached(exc) if exc is not None else None
        self._lost = lost
        self.needs_drain = True  # drain() raises now
        if self._budget is not None:
            self._budget.release(self)  # what it held goes with it
            self._budget = None
        self._wake_drainers()
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)

    def _read_what_is_left(self) -> None:
        """Decode what the kernel still holds for a connection whose write failed.

        asyncio (and uvloop) tear a transport down as soon as a write fails, without
        reading the bytes that arrived meanwhile, though the socket still holds them
        until the transport closes it, after this callback. Read them through a
        duplicate of its descriptor (transports hand out no socket that can recv).
        Bounded: one read's worth (``read_size``), as the read that did not come would
        have taken; the peer's last words fit, and a flood that the kernel buffered
        (megabytes on loopback) is not decoded into memory at once.
        """
        transport = self.transport
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return  # TLS: the bytes are encrypted, and the TLS layer is gone
        sock = transport.get_extra_info("socket")
        try:
            fd = os.dup(sock.fileno())
        except (AttributeError, OSError, ValueError):
            return
        messages: list[bytes] = []
        left = len(self._buffer)
        with socket.socket(fileno=fd) as dup:
            dup.setblocking(False)
            try:
                while left and (chunk := dup.recv(left)):
                    left -= len(chunk)
                    messages.extend(self._decoder.feed(chunk))
            except FramingError as error:
                messages.extend(error.messages)
            except OSError:  # drained (EAGAIN), or the reset itself: nothing more
                pass
        if messages:
            self._deliver(messages)

    def _wake_drainers(self) -> None:
        # Results only: a waiter holding an exception would hold the frames it
        # is raised through. drain() raises a fresh error when it wakes.
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- timeouts ------------------------------------------------------------------

    def _track_message(self, completed: bool) -> None:
        """After a read: note the time, and when the unfinished message (if any) began."""
        now = self._loop.time()
        self._last_read = now
        self._held = buffered = self._decoder.buffered
        if buffered >= SMALL or self._held_partial:
            self._count_partial(buffered)
        if not buffered:
            self._message_started = None
        elif completed or self._message_started is None:
            # A new message began in this read (one that ended in it was another).
            self._message_started = now
            if self._message_timeout is not None:
                self._arm(now + self._message_timeout)

    # --- the server-wide memory budget -----------------------------------------------

    def _count_partial(self, buffered: int) -> None:
        """After a read: weigh the unfinished message, once it is no longer small."""
        held = buffered if buffered >= SMALL else 0
        if held != self._held_partial:
            self._held_partial = held
            self._count_held()

    def _count_held(self) -> None:
        """Tell the budget what this connection holds now (unread or unsent changed)."""
        if self._budget is not None:
            self._budget.update(self, self._held_partial + self._held_unread + self._held_unsent)

    def budget_pause(self) -> None:
        """The memory budget is spent: stop reading (the message clock keeps running)."""
        self._update_reading()

    def budget_resume(self) -> None:
        """The memory budget has room again: read again."""
        self._update_reading()

    def _arm(self, when: float) -> None:
        """Make sure the timer fires at ``when`` or before (one timer per connection)."""
        if self._timer is not None:
            if self._timer_when <= when:
                return  # it fires earlier and looks again then
            self._timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_at(when, self._check_timeouts)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _beat(self) -> None:
        """Every heartbeat interval: send an empty message if nothing else went out."""
        self._beat_timer = None
        transport = self.transport
        settings = self._heartbeat
        if transport is None or settings is None or transport.is_closing():
            return
        # A flag set by send() rather than a clock read there: one attribute
        # store on the hot path, and a heartbeat still goes out within two
        # intervals of the last message. While the peer is behind (write buffer over its
        # mark) bytes are already on their way: no need to add one.
        if not self._sent and not self._write_paused:
            transport.write(settings.wire)
        self._sent = False
        self._beat_timer = self._loop.call_later(settings.interval, self._beat)

    def _stop_beating(self) -> None:
        if self._beat_timer is not None:
            self._beat_timer.cancel()
            self._beat_timer = None

    def _check_timeouts(self) -> None:
        self._timer = None
        if self._closed or self._peer_eof:
            return
        now = self._loop.time()
        if self._held_back:
            # Not reading is our choice, not the peer's fault: the clocks restart
            # on resume; look again after the shortest timeout.
            heartbeat_timeout = self._heartbeat.timeout if self._heartbeat is not None else None
            shortest = min(
                t
                for t in (self._message_timeout, self._idle_timeout, heartbeat_timeout)
                if t is not None
            )
            self._arm(now + shortest)
            return
        if self.budget_paused:
            # The memory budget holds reading back: the peer may well be sending, so
            # only the message clock runs (idle and heartbeat restart on resume).
            self._last_read = now
        deadline: float | None = None
        expired: ConnectionTimeout | None = None
        if self._idle_timeout is not None:
            deadline = self._last_read + self._idle_timeout
            if now >= deadline:
                expired = IdleTimeout(
                    f"no data from the peer for {self._idle_timeout:g} s (idle_timeout)",
                    timeout=self._idle_timeout,
                )
        if self._heartbeat is not None:
            beat_deadline = self._last_read + self._heartbeat.timeout
            if expired is None and now >= beat_deadline:
                expired = HeartbeatTimeout(
                    f"nothing from the peer, not even a heartbeat, for "
                    f"{self._heartbeat.timeout:g} s (heartbeat_timeout)",
                    timeout=self._heartbeat.timeout,
                )
            deadline = beat_deadline if deadline is None else min(deadline, beat_deadline)
        if self._message_timeout is not None and self._message_started is not None:
            message_deadline = self._message_started + self._message_timeout
            if expired is None and now >= message_deadline:
                expired = MessageTimeout(
                    f"a message begun {now - self._message_started:.3g} s ago is still "
                    f"incomplete ({self._decoder.buffered} bytes; message_timeout="
                    f"{self._message_timeout:g} s)",
                    timeout=self._message_timeout,
                )
            deadline = message_deadline if deadline is None else min(deadline, message_deadline)
        if expired is not None:
            self._expire(expired)
        elif deadline is not None:
            self._arm(deadline)

    def _expire(self, exc: ConnectionTimeout) -> None:
        """The peer was too slow: tell the application, then close (lingering)."""
        self._discarding = True
        try:
            self.connection_timed_out(exc)
        finally:
            self._linger_close()

    def _restart_clocks(self) -> None:
        now = self._loop.time()
        self._last_read = now
        if self._message_started is not None:
            self._message_started = now

    # --- what subclasses override ------------------------------------------------

    def message_received(self, message: bytes) -> None:
        """Called with each complete message, in order. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must define message_received()")

    def messages_received(self, messages: list[bytes]) -> None:
        """Called with the complete messages of one read, in order (often one, often many).

        The default calls :meth:`message_received` for each. Override it to take
        a whole batch at once (a queue's ``extend``, one wake-up per read). The
        list is aiomsg's: after :meth:`close` it is emptied, which ends the
        default loop; keep its messages, not the list.
        """
        received = self.message_received  # _deliver() runs a copy of this loop
        self._undelivered = undelivered = iter(messages)
        for message in undelivered:
            received(message)

    def peer_closed(self) -> bool:
        """Called when the peer half-closed, after its last message was delivered.

        Return ``True`` to keep the connection open for sending (a request/response
        server answers now, then calls :meth:`close`); the default ``False`` lets
        asyncio close the connection.
        """
        return False

    def framing_error(self, exc: FramingError) -> bool | None:
        """Called when the peer broke the framing (``MessageTooLarge``, a bad header...).

        The messages before the bad bytes have already been delivered, and
        nothing more will be: the stream cannot be resynchronised. You may
        :meth:`send` a last notice here. When this returns, the connection is
        closed: what was queued is sent, then EOF, and the peer gets
        ``linger_timeout`` seconds to close its side before the connection is
        aborted. Return ``True`` to close it later yourself instead (with
        :meth:`close`, which then lingers the same way), for example once the
        application has seen the error. The default logs a warning.
        """
        logger.warning("closing connection from %r: %s", self.remote_address, exc)
        return None

    def connection_timed_out(self, exc: ConnectionTimeout) -> None:
        """Called when the peer was too slow: ``exc`` is a :class:`~aiomsg.MessageTimeout`
        (a message begun ``message_timeout`` seconds ago is still incomplete), an
        :class:`~aiomsg.IdleTimeout` (nothing arrived for ``idle_timeout`` seconds)
        or a :class:`~aiomsg.HeartbeatTimeout` (the heartbeat is on and nothing
        arrived for ``heartbeat_timeout`` seconds).

        The messages that arrived before have been delivered; the unfinished one
        is dropped. You may :meth:`send` a last notice here. After this returns
        the connection is closed as after a framing error (what was queued is
        sent, then EOF; aborted after ``linger_timeout`` seconds). The default
        logs at INFO level.
        """
        logger.info("closing connection from %r: %s", self.remote_address, exc)

    # --- changing shape part-way: another framing, raw bytes, TLS ----------------

    @property
    def receive_framing(self) -> Framing:
        """The framing that decodes what the peer sends (see :meth:`set_framing`)."""
        return self._receive_framing

    @property
    def send_framing(self) -> Framing:
        """The framing that :meth:`send` encodes with (see :meth:`set_framing`)."""
        return self._framing

    def set_framing(
        self, framing: Framing | None = None, *, receive: Framing | None = None,
        send: Framing | None = None,
    ) -> None:  # fmt: skip
        """As :meth:`aiomsg.Connection.set_framing`, on the Protocol front: ``framing`` for
        both directions, ``receive`` or ``send`` for one. The new receive framing takes
        over right after the last message delivered:
        the bytes already received behind it (a partial message, or messages of
        the same read not yet delivered, when this is called from
        :meth:`message_received`) are decoded by the new framing, so a peer may
        send the next bytes in the same segment as the message that announced
        the switch. Messages already delivered stay as they were. The heartbeat,
        if on, is checked against the new framings.

        Raises:
            ValueError: messages of the old framing were decoded but not yet
                delivered and the old framing cannot give back their exact bytes
                (``Lines``, ``Varint``); switch after a message that ends a read,
                or read the bytes before the switch raw. Or: a heartbeat the new
                framing cannot carry. Nothing was changed.
            FramingError: the bytes behind the boundary break the new framing
                (as from a read: the connection then closes, lingering).
        """
        opts = self._options
        receive, send = chosen_framings(framing, receive, send, opts.heartbeat_for)
        if send is not None:
            self._framing = send
            self._encode = send.encoder()
            self._heartbeat = opts.heartbeat_for(send)
        if receive is not None:
            self._switch_receive(receive)

    def _switch_receive(self, framing: Framing) -> None:
        pending = self._take_undelivered()
        try:
            self._decoder, messages = switch_decoder(
                self._decoder, self._receive_framing, pending, framing
            )
        except ValueError as exc:
            if not isinstance(exc, FramingError):  # refused: nothing was changed
                self._give_back(pending)
                raise
            self._receive_framing = framing
            self._give_back(exc.messages)
            self._fail(detached(exc))
            raise
        self._receive_framing = framing
        self._idle_scan = self._decoder.idle_scanner()
        self._held = 1  # until the next read says: the new decoder may hold a part
        if self._peer_eof:  # the old decoder had seen the end: so has the new one
            messages += self._decoder.feed_eof()
        if self._timing:
            self._track_message(bool(messages))
        if messages:
            self._give_back(messages)

    def _take_undelivered(self) -> list[bytes]:
        """Decoded messages the application has not had yet (taken out of the way)."""
        return list(self._undelivered)  # the rest of the batch being delivered, if any

    def _give_back(self, messages: list[bytes]) -> None:
        """Deliver ``messages``: after the batch being delivered, or now."""
        if self._delivering:
            self._redecoded = (self._redecoded or []) + messages
        else:
            self._deliver(messages)

    def send_raw(self, data: Buffer) -> None:
        """Queue ``data`` as it is, outside any framing (a protocol header, a one-byte
        answer); never blocks (``await drain()`` for back-pressure).

        Raises:
            ConnectionClosed: the connection is closed or not yet made.
            TypeError: ``data`` is not bytes-like.
        """
        transport = self._writable()
        error = not_bytes(data, "text.encode()")
        if error is not None:
            raise error
        transport.write(data)
        self._sent = True

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
    ) -> asyncio.Task[None]:
        """Upgrade this connection to TLS in place (STARTTLS), at a message boundary;
        ``await`` the task it returns for the handshake.

        Call it once the protocol agreed on it (after sending or receiving the
        message that says so; from :meth:`message_received` is fine): the boundary
        is checked when it is called, and nothing more is delivered in plaintext.
        What was queued before is sent in plaintext first; send nothing else until
        the task is done. The handshake must finish within the options'
        ``tls_handshake_timeout``. Afterwards everything, framing included, runs
        over TLS as before.

        Bytes the peer sent behind its last plaintext message, before the
        handshake, are never decrypted as TLS nor dropped: if any had arrived,
        this raises at once and the connection should be closed (a peer that does
        not wait, or someone injecting plaintext: RFC 3207 section 6 describes the
        attack). Bytes that arrive later break the handshake (``ssl.SSLError``).

        Raises:
            FramingError: the peer had already sent something after the boundary
                (messages of the same read not yet delivered, or a partial one);
                the connection is still plaintext. Close it.
            ConnectionClosed: the connection is closed.

        The task raises ``ssl.SSLError`` or ``TimeoutError`` when the handshake
        fails or takes too long (the connection is then closed), and
        :class:`~aiomsg.ConnectionClosed` when it was lost meanwhile.
        """
        transport = self._writable()
        check_tls_boundary(self._decoder, self._undelivered_count())
        # Nothing more is delivered until the TLS transport is in place: the peer may
        # send right after its handshake, and the TLS layer may hand that to us before
        # loop.start_tls() returns; an answer must never go to the plaintext transport.
        held: list[list[bytes]] = []
        self._tls_held = held  # _deliver() holds each batch here until TLS is up
        return self._loop.create_task(
            self._upgrade(transport, held, ssl_context, server_side, server_hostname)
        )

    async def _upgrade(
        self,
        transport: asyncio.Transport,
        held: list[list[bytes]],
        ssl_context: ssl.SSLContext,
        server_side: bool,
        server_hostname: str | None,
    ) -> None:
        try:
            tls = await self._loop.start_tls(
                transport,
                self,
                ssl_context,
                server_side=server_side,
                server_hostname=server_hostname,
                ssl_handshake_timeout=self._options.tls_handshake_timeout,
            )
        finally:
            self._tls_held = None  # delivered again
        if tls is None:  # the connection was lost during the handshake
            raise self._closed_error("start TLS")
        self.transport = tls
        self.transport.set_write_buffer_limits(high=self._write_high_water)
        self._reading_paused = False  # the TLS transport reads; apply our own pauses
        self._update_reading()
        for messages in held:
            self._deliver(messages)

    def _undelivered_count(self) -> int:
        """How many decoded messages are not yet delivered (the rest of a batch)."""
        return operator.length_hint(self._undelivered)

    # --- what the application calls -----------------------------------------------

    def send(self, message: Buffer) -> None:
        """Queue one message for sending; never blocks (``await drain()`` for back-pressure).

        Raises:
            MessageTooLarge, FramingError: the framing cannot carry it; nothing sent.
            TypeError: ``message`` is not bytes-like (a ``str``: encode it, or use
                the Streams front's ``send_text()``); nothing sent.
            ConnectionClosed: the connection is closed or not yet made.
        """
        transport = self.transport  # _writable(), inlined on this hot path
        if transport is None or transport.is_closing():
            raise self._closed_error("send")
        self._sent = True  # no heartbeat needed this interval
        encode = self._encode  # a local: a call of an attribute is not specialised
        try:
            if len(message) < COPY_LIMIT:
                transport.write(encode(message))
            else:
                transport.writelines(self._framing.encode_parts(message))
        except (TypeError, ValueError) as exc:  # a try costs nothing until it catches
            raise not_bytes(message, "send_text()") or exc from None

    def send_many(self, messages: Iterable[Buffer]) -> None:
        """Queue several messages with one write. Raises what :meth:`send` raises."""
        if not isinstance(messages, (list, tuple)):
            messages = list(messages)  # kept for the error message below
        try:
            data = self._framing.encode_many(messages)
        except (TypeError, ValueError) as exc:
            raise first_not_bytes(messages, "send_text()") or exc from None
        self._writable().write(data)
        self._sent = True

    def send_eof(self) -> None:
        """Half-close after what was queued: ``shutdown(SHUT_WR)``, "done sending, still listening".

        Raises:
            ConnectionClosed: the connection is closed (or was reset).
            NotImplementedError: the transport cannot half-close (TLS cannot);
                nothing is sent.
        """
        transport = self._writable()
        if not transport.can_write_eof():
            raise NotImplementedError(
                "this transport cannot half-close (TLS cannot: closing TLS closes both "
                "directions); frame the end of the message instead of using send_eof()"
            )
        self._stop_beating()  # nothing may follow the EOF, heartbeats included
        try:
            transport.write_eof()
        except OSError as exc:  # the peer reset the connection already
            raise ConnectionClosed(f"cannot half-close: {exc}") from exc

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark.

        Raises:
            ConnectionClosed: the connection was lost; unsent data may be lost.
        """
        if self._lost is None and self._write_paused:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter
        lost = self._lost
        if lost is not None:
            raise fresh(lost) from lost.__cause__

    def pause_reading(self) -> None:
        """Stop reading from the peer until :meth:`resume_reading`; calls may repeat.

        While paused, the timeouts do not run: the silence is the application's.
        """
        self._app_paused = True
        self._update_reading()

    def resume_reading(self) -> None:
        """Read from the peer again after :meth:`pause_reading`; calls may repeat."""
        if self._app_paused:  # every other change of the reading state updates it itself
            self._app_paused = False
            self._update_reading()

    def _update_reading(self) -> None:
        """Read while neither the application, a full write buffer nor the memory budget
        holds reading back."""
        transport = self.transport
        if transport is None or self._closed:
            return
        held_back = self._app_paused or (self._write_paused and self._write_backpressure)
        if held_back != self._held_back:
            self._held_back = held_back
            if not held_back and self._timing:
                self._restart_clocks()  # the silence was ours, not the peer's
        # The budget's pause does not stop the clocks: a peer that cannot finish
        # its message while it waits is ended by message_timeout.
        paused = held_back or self.budget_paused
        if paused == self._reading_paused:
            return
        self._reading_paused = paused
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (``connection_lost`` has run)."""
        if self._lost is not None or self.transport is None:
            return
        if self._closed_waiter is None:
            self._closed_waiter = asyncio.get_running_loop().create_future()
        await self._closed_waiter

    def close(self, *, linger: bool = False) -> None:
        """Close after sending what was queued; no more messages are delivered.

        A peer that stops reading cannot hold the connection open: once nothing
        of what is queued has been sent for ``close_timeout`` seconds, the
        connection is aborted. After the peer broke the framing, the close
        lingers (see :meth:`framing_error`); ``linger=True`` makes any close
        linger so: use it for a last message to a peer that may still be
        sending (a server's goodbye), which a plain close can destroy (closing a
        socket with unread input sends a reset, and the peer's system may drop
        what it had received but not yet handed to the peer's program).
        """
        if self._discarding or linger:
            self._linger_close()
            return
        self._stop_delivery()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            self._watch_flush()

    def _watch_flush(self) -> None:
        """Abort a closing transport whose output makes no progress for ``close_timeout`` s."""
        transport = self.transport
        if transport is None or self._lost is not None or self._flush_timer is not None:
            return
        left = transport.get_write_buffer_size()
        if not left:
            return  # asyncio closes it on its next turn

        def check() -> None:
            self._flush_timer = None
            if self._lost is not None:
                return
            now_left = transport.get_write_buffer_size()
            if now_left and now_left >= left:
                logger.info(
                    "aborting connection to %r: the peer read none of the last %d bytes "
                    "for %g s (close_timeout)",
                    self.remote_address,
                    now_left,
                    self._close_timeout,
                )
                self.abort()
            else:
                self._watch_flush()

        self._flush_timer = asyncio.get_running_loop().call_later(self._close_timeout, check)

    def abort(self) -> None:
        """Close at once, dropping queued data; the peer sees a reset (TCP RST)."""
        self._stop_delivery()
        if self.transport is not None:
            reset_on_close(self.transport.get_extra_info("socket"))
            self.transport.abort()

    @property
    def mid_message(self) -> bool:
        """Whether part of a message has arrived and not its end (a drain waits for it)."""
        return bool(self._decoder.buffered)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this protocol runs on, once connected (kept: asking asyncio
        for the running loop costs a system call on Python 3.11)."""
        return self._loop

    @property
    def close_error(self) -> ConnectionClosed | None:
        """Why the connection ended, once ``connection_lost`` has run (``None`` before).

        Its ``__cause__`` is the :class:`OSError` when there was one (a reset).
        Kept without traceback; raise a copy: ``raise aiomsg.errors.fresh(e) from
        e.__cause__``.
        """
        return self._lost

    @property
    def peer_eof(self) -> bool:
        """Whether the peer has half-closed its side (sent EOF): nothing more will
        arrive, though this side may still send."""
        return self._peer_eof

    def is_closing(self) -> bool:
        """Whether the connection is closed or on its way out (closing, lingering
        after an error or a timeout, or lost): no more messages will be delivered."""
        transport = self.transport
        return self._closed or transport is None or transport.is_closing()

    def _writable(self) -> asyncio.Transport:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise self._closed_error("send")
        return transport

    def _closed_error(self, action: str) -> ConnectionClosed:
        """The error for ``action`` on a closed connection, with the reason it closed."""
        if self._closed:
            reason: CloseReason = "local"
        elif self._lost is not None:
            reason = self._lost.reason
        else:
            reason = "lost"  # the transport is closing and asyncio has not said why yet
        if self.transport is None:
            return ConnectionClosed(f"cannot {action}: not connected yet", reason="local")
        return ConnectionClosed(f"cannot {action}: connection is closed ({reason})", reason=reason)

    @property
    def remote_address(self) -> Any:
        """The peer's address, or ``None`` before the connection is made.

        Behind a PROXY protocol load balancer it is the client's, from
        :attr:`proxy_header` (``(host, port)``, or a path); a ``LOCAL`` header (a
        health check) or an ``UNKNOWN`` one keeps the real peer's. The balancer's
        own address stays ``transport.get_extra_info("peername")``.
        """
        header = self.proxy_header
        if header is not None and header.source is not None:
            return header.source
        return self.transport.get_extra_info("peername") if self.transport else None
