"""The anyio front: :class:`FramedStream`, an ``ObjectStream[bytes]`` for task groups.

Wrap any anyio byte stream (TCP, Unix, TLS, or your own) and send and receive
whole messages, on asyncio, asyncio+uvloop or trio. ``connect_framed`` and
``serve_framed`` (``tcp.py``) are the conveniences for TCP.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

import anyio
from anyio.abc import ByteStream, ObjectStream
from anyio.lowlevel import checkpoint_if_cancelled
from anyio.streams.tls import TLSStream

from .._memory_budget import SMALL, MemoryBudget, budget_for
from .._read_budget import MESSAGE_COST, SPENT_READ, first_read, fit_read, max_batch
from ..errors import (
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
from ..framing import Buffer, FixedLength, Framing
from ..framing._accelerated import speedups
from ..framing.switch import check_tls_boundary, chosen_framings, switch_decoder
from ..limits import COPY_LIMIT
from ..options import Options, resolve_options
from ._trio_cancel import NOT_RUNNING, current_task_of

__all__ = ["FramedStream"]

# What a receive() waits for besides data: a limit that expires, or the next heartbeat to send.
_Deadline = Literal["message", "idle", "heartbeat", "beat"]


# `async for` in C when the speedups are built (see Connection's, and _speedups.c).
ReadyIterator = None if speedups is None else speedups.ReadyIterator


def _backend_hooks() -> tuple[Callable[[], Awaitable[None]] | None, Any, Callable[[], float]]:
    """For the running backend: what a receive() served from decoded messages awaits to be
    a cancellation point (``None``: nothing; see "Checkpoints" in FramedStream's
    docstring), trio's run context when that check can be made inline (else
    ``None``; see :mod:`._trio_cancel`), and the clock anyio's
    ``current_time()`` reads, without its look-up of the backend on every call.

    On trio, trio's own ``checkpoint_if_cancelled``, awaited only when the inline
    test says the task is cancelled. On asyncio, nothing: cancellation arrives at
    the next read (anyio's check walks every enclosing cancel scope: 1 us per
    message, 4x the rest).
    """
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        from ._trio_cancel import cancel_check_context

        return trio.lowlevel.checkpoint_if_cancelled, cancel_check_context(), trio.current_time
    if sniffio.current_async_library() == "asyncio":
        return None, None, asyncio.get_running_loop().time  # anyio's current_time() on asyncio
    return checkpoint_if_cancelled, None, anyio.current_time


class FramedStream(ObjectStream[bytes]):
    """Whole messages over an anyio byte stream.

    ``FramedStream(byte_stream, framing)`` owns ``byte_stream``: closing one closes
    the other. Extra attributes (addresses, TLS details...) are those of the inner
    stream. ``async for message in stream`` ends at a clean end of stream.

    Exception contract, as for every anyio object stream:

    * ``receive()`` raises :class:`anyio.EndOfStream` after the peer closed its
      side cleanly (every message before it was delivered),
      :class:`~aiomsg.IncompleteMessageError` if it closed inside a message,
      :class:`~aiomsg.FramingError` / :class:`~aiomsg.MessageTooLarge` when it
      broke the framing (the good messages before come first; then close),
      :class:`~aiomsg.MessageTimeout` / :class:`~aiomsg.IdleTimeout` (both
      :class:`TimeoutError`) when the peer was too slow (the inner stream is
      closed then), :class:`anyio.BrokenResourceError` if the connection broke,
      :class:`anyio.BusyResourceError` if another task is already receiving.
    * ``send()``/``receive()`` after :meth:`aclose` raise
      :class:`anyio.ClosedResourceError`.
    * Concurrent ``send()`` calls are allowed: each message is written whole, in
      turn.

    Limits (fields of ``options``, an :class:`~aiomsg.Options`):
    ``message_timeout`` (default 60 s): a message that has begun must
    complete within it, counting only time spent in ``receive()``;
    ``idle_timeout`` (default off): some byte must arrive within it while
    receiving. ``None`` turns either off. Memory: decoded messages wait here
    only while fewer than one read's worth (``read_size``) is queued, since the
    inner stream is read only when the queue is empty; what the *inner* stream
    buffers is its own affair (anyio's asyncio sockets buffer without bound:
    prefer :func:`connect_framed`/:func:`serve_framed`, which avoid them).

    Heartbeat (off by default): with ``heartbeat`` seconds, an empty message
    is sent when nothing was sent for that long, received empty messages are
    swallowed, and :class:`~aiomsg.HeartbeatTimeout` is raised (the inner
    stream closed) when nothing arrived for ``heartbeat_timeout`` seconds
    (default three intervals). Like the other clocks of this class, it runs
    while a task is in ``receive()``: keep one receiving (an ``async for``).
    The framing must carry empty messages (``ValueError`` otherwise).

    Checkpoints: a ``receive()`` that reads from the connection is a full
    checkpoint (the inner ``receive()`` is): other tasks run, and a cancelled
    scope or an expired deadline (``anyio.fail_after``/``move_on_after``)
    raises there. A ``receive()`` served from messages already decoded does not
    yield to the event loop: a schedule point per buffered message would cost
    most of the throughput. So other tasks run, and deadlines are noticed, at
    least once per read; a busy receiver delays them by at most one read's worth
    of messages (``read_size``). Cancelling a ``receive()`` never loses or
    duplicates a message: the next call gets it.

    Whether a ``receive()`` served from decoded messages is also a cancellation point
    depends on the backend. On trio it is: every ``receive()`` raises ``Cancelled`` in a
    cancelled scope, even one its own task cancelled an instant before (a Ctrl-C pending
    for trio's main task is raised at the next read instead; see
    ``aiomsg/anyio/_trio_cancel.py``). On asyncio it is not: a buffered message is
    returned without looking at cancel scopes, and the cancellation arrives at the next
    ``receive()`` that reads. This changes only one case, a task that cancels its own
    scope and then receives (a scope cancelled by another task, or by its deadline, is
    noticed at the next read either way); anyio's check costs 1 us per message there,
    four times everything else. The streams :func:`connect_framed` and
    :func:`serve_framed` make follow the same rule.
    """

    # Slots: an instance has more attributes than CPython keeps in a shared-keys dict
    # (30), and then every self.method() call on the hot path is an unspecialised
    # lookup. (anyio's base classes still give each instance a __dict__, for a
    # subclass's attributes.)
    __slots__ = (
        "_budget",
        "_check",
        "_checked",
        "_closed",
        "_decoder",
        "_encode",
        "_eof_sent",
        "_error",
        "_heartbeat",
        "_held",
        "_idle_scan",
        "_idle_timeout",
        "_last_read",
        "_last_send",
        "_max_batch",
        "_message_started",
        "_message_timeout",
        "_now",
        "_options",
        "_own_pull",
        "_read_bytes",
        "_read_full",
        "_read_size",
        "_ready",
        "_receiving",
        "_room",
        "_send_framing",
        "_send_lock",
        "_trio",
        "_trio_coro",
        "_trio_task",
        "budget_held",
        "budget_paused",
        "framing",
        "transport_stream",
    )

    def __init__(
        self,
        transport_stream: ByteStream,
        framing: Framing,
        *,
        options: Options | None = None,
        **deprecated: Any,
    ) -> None:
        """Frame ``transport_stream`` with ``framing``.

        ``options`` (an :class:`~aiomsg.Options`): this class uses ``read_size``,
        ``message_timeout``, ``idle_timeout``, ``heartbeat`` and
        ``heartbeat_timeout`` as the class docstring says (keepalive and write
        limits belong to the inner stream). The old keywords of the same names
        still work for one release, with a :class:`DeprecationWarning`.

        Raises:
            ValueError: a heartbeat that ``framing`` cannot carry.
        """
        chosen = resolve_options("FramedStream", options, None, deprecated, strict=True)
        read_size = chosen.read_size
        message_timeout = chosen.message_timeout
        idle_timeout = chosen.idle_timeout
        self._options = chosen
        self._heartbeat = chosen.heartbeat_for(framing)
        self._last_send = 0.0  # when something was last sent (with the heartbeat on)
        self._eof_sent = False
        self.transport_stream = transport_stream
        #: The framing that decodes what the peer sends (see :meth:`set_framing`).
        self.framing = framing
        self.send_framing = framing  # and _encode
        self._decoder = framing.decoder()
        self._idle_scan = self._decoder.idle_scanner()  # _decode()'s fast path
        self._held = 0  # what the decoder holds (exact; see _decode)
        self._ready: deque[bytes] = deque()
        self._read_full = read_size
        self._max_batch = max_batch(read_size)
        # A slow start, then reads fitted to the messages' size: see _read_budget.
        self._read_size = first_read(read_size)
        self._message_timeout = message_timeout
        self._idle_timeout = idle_timeout
        self._message_started: float | None = None
        self._last_read = 0.0
        # Raised (a fresh copy) once `_ready` is drained; kept without traceback.
        self._error: BaseException | None = None
        self._closed = False
        self._receiving = False
        # The cancellation check of a receive() served from decoded messages (None: none),
        # for the backend the first read runs on; anyio's until then.
        self._check: Callable[[], Awaitable[None]] | None = checkpoint_if_cancelled
        # On trio, the inline cancellation check (see _trio_cancel): the run
        # context, and the task of the last check with the coroutine that says it runs.
        self._trio: Any = None
        self._trio_task: Any = None
        self._trio_coro: Any = NOT_RUNNING
        self._now: Callable[[], float] = anyio.current_time  # the backend's own, once known
        self._checked = False
        self._own_pull = True  # _pull() is this class's (a subclass's own sets False)
        # Senders take turns (FIFO). A semaphore of one rather than a Lock: a Lock looks up
        # the current task on each take and release, two calls per message on asyncio.
        # fast_acquire: an uncontended send does not pay an extra event-loop round trip.
        self._send_lock = anyio.Semaphore(1, fast_acquire=True)
        # The memory budget of this event loop (see aiomsg._memory_budget): this
        # stream weighs its unfinished message after each read; paused, it reads
        # no more until there is room (its message clock keeps running).
        self._budget: MemoryBudget | None = budget_for(_loop_key(), chosen.memory_budget)
        self.budget_held = 0
        self.budget_paused = False
        self._room: anyio.Event | None = None  # set while the budget pauses reading
        self._read_bytes = 0  # the last read's size, set by _pull
        if self._budget is not None and self._budget.held > self._budget.limit:
            self._read_size = min(self._read_size, SPENT_READ)

    @property
    def send_framing(self) -> Framing:
        """The framing :meth:`send` encodes with (:meth:`set_framing` changes it)."""
        return self._send_framing

    @send_framing.setter
    def send_framing(self, framing: Framing) -> None:
        self._send_framing = framing
        self._encode = framing.encoder()  # send()'s encode, in C where it can be

    async def receive(self) -> bytes:
        """Return the next message. Raises as the class docstring says."""
        # Not `_closed`: aclose() empties `_ready`, and no read refills it after.
        if self._ready and not self._receiving:
            if self._trio is not None:  # trio's check, inline (see _trio_cancel)
                if not self._trio_coro.cr_running:  # not the task of the last check
                    self._trio_task, self._trio_coro = current_task_of(self._trio)
                if self._trio_task._cancel_status.effectively_cancelled:
                    await self._check()  # type: ignore[misc]  # raises Cancelled
            elif self._check is not None:
                await self._check()  # cancelled: the message stays queued
            return self._ready.popleft()
        return await self._receive_slow()

    def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        if ReadyIterator is not None:
            if not self._checked:  # what the first read would learn
                self._learn_backend()
            if self._check is None or self._trio is not None:
                # In C: a message already decoded costs no generator step. On asyncio
                # there is no check per message; on trio the iterator makes the
                # inline one (see _trio_cancel), so each message is a cancellation point.
                # Its slow path is the read itself; EndOfStream ends the loop.
                return ReadyIterator(
                    self._ready, self._receive_slow, self._trio, anyio.EndOfStream
                )
        # An async generator: resuming it costs less than the two coroutines per
        # message of ObjectReceiveStream.__anext__ and receive().
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        ready = self._ready
        take = ready.popleft
        check, trio_context = self._check, self._trio
        task: Any = None  # the task of the last check, and its coroutine (see _trio_cancel)
        coro: Any = NOT_RUNNING
        while True:
            if ready and not self._receiving:  # as in receive()
                if trio_context is not None:
                    if not coro.cr_running:
                        task, coro = current_task_of(trio_context)
                    if task._cancel_status.effectively_cancelled:
                        await check()  # type: ignore[misc]  # raises Cancelled
                elif check is not None:
                    await check()  # cancelled: the message stays queued
                yield take()
                continue
            try:
                message = await self._receive_slow()
            except anyio.EndOfStream:
                return
            check, trio_context = self._check, self._trio  # the first read sets them
            yield message

    def _learn_backend(self) -> None:
        """Take the running backend's hooks (see ``_backend_hooks``), once per stream."""
        (self._check, self._trio, self._now), self._checked = _backend_hooks(), True

    async def _receive_slow(self) -> bytes:
        # A plain flag rather than anyio.ResourceGuard: this runs per message.
        if self._receiving:
            raise anyio.BusyResourceError("reading from")
        self._receiving = True
        try:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._ready:
                await checkpoint_if_cancelled()
            elif not self._checked:
                self._learn_backend()
            since = self._now()  # the clocks count only while receiving
            while not self._ready:
                error = self._error
                if error is not None:
                    raise fresh(error) from error.__cause__
                if (  # no deadline can fall in this read, no pause: read here
                    self._message_started is None
                    and self._idle_timeout is None
                    and self._heartbeat is None
                    and self._room is None
                ):
                    try:
                        if self._own_pull:  # _pull() inline: a coroutine fewer per read
                            data = await self.transport_stream.receive(self._read_size)
                            self._read_bytes = len(data)
                            self._took(self._decode(data))
                        else:
                            self._took(await self._pull())
                    except anyio.EndOfStream:
                        self._ended()
                    except FramingError as exc:
                        self._broke(exc)
                else:
                    await self._read(since)
                if self._closed:  # by another task meanwhile: what was read is dropped
                    self._ready.clear()
                    raise anyio.ClosedResourceError
            return self._ready.popleft()
        finally:
            self._receiving = False

    def _time_left(self, since: float) -> tuple[float, _Deadline] | None:
        """The nearest deadline as (seconds left, what it is), or ``None``.

        Read on every read: the error itself is made only if the deadline passes.
        """
        nearest: tuple[float, _Deadline] | None = None
        now = self._now()
        if self._idle_timeout is not None:
            nearest = (max(self._last_read, since) + self._idle_timeout - now, "idle")
        if self._message_timeout is not None and self._message_started is not None:
            left = max(self._message_started, since) + self._message_timeout - now
            if nearest is None or left < nearest[0]:
                nearest = (left, "message")
        if self._heartbeat is not None:
            left = max(self._last_read, since) + self._heartbeat.timeout - now
            if nearest is None or left < nearest[0]:
                nearest = (left, "heartbeat")
            if not self._eof_sent:  # nothing may follow the EOF, heartbeats included
                if not self._last_send:
                    self._last_send = now  # the clock starts at the first receive()
                # Not restarted by each receive() (unlike the peer's silence): a
                # receiver woken often by the peer's messages must still beat.
                left = self._last_send + self._heartbeat.interval - now
                if nearest is None or left < nearest[0]:
                    nearest = (left, "beat")
        return nearest

    def _expired(self, kind: _Deadline) -> ConnectionTimeout:
        if kind == "message" and self._message_timeout is not None:
            return MessageTimeout(
                f"a message is still incomplete after {self._message_timeout:g} s "
                f"({self._decoder.buffered} bytes; message_timeout)",
                timeout=self._message_timeout,
            )
        if kind == "heartbeat" and self._heartbeat is not None:
            return HeartbeatTimeout(
                f"nothing from the peer, not even a heartbeat, for "
                f"{self._heartbeat.timeout:g} s (heartbeat_timeout)",
                timeout=self._heartbeat.timeout,
            )
        assert self._idle_timeout is not None
        return IdleTimeout(
            f"no data from the peer for {self._idle_timeout:g} s (idle_timeout)",
            timeout=self._idle_timeout,
        )

    async def _beat(self) -> None:
        """Send a heartbeat, unless another task is sending (then bytes are moving already)."""
        assert self._heartbeat is not None
        self._last_send = self._now()
        if self._send_lock.value:  # free
            async with self._send_lock:
                await self.transport_stream.send(self._heartbeat.wire)

    async def _read(self, since: float) -> None:
        """One read, under the nearest deadline (``_receive_slow`` reads itself when
        none can fall), and waiting first for the memory budget's room."""
        try:
            while True:
                limit = self._time_left(since)
                if limit is None:
                    if self._room is not None:
                        await self._room.wait()
                    messages = await self._pull()
                    break
                with anyio.move_on_after(max(limit[0], 0)) as scope:
                    if self._room is not None:  # the budget is spent: wait for room
                        await self._room.wait()
                    messages = await self._pull()
                if not scope.cancelled_caught:
                    break
                if limit[1] == "beat":  # time to show we are alive; then wait on
                    await self._beat()
                    continue
                # The peer was too slow: close, and say why.
                self._leave_budget()
                self._error = self._expired(limit[1])
                await anyio.aclose_forcefully(self.transport_stream)
                return
        except anyio.EndOfStream:
            self._ended()
            return
        except FramingError as exc:
            self._broke(exc)
            return
        self._took(messages)

    def _ended(self) -> None:
        """The peer closed its side: the last messages, then EndOfStream (or the error)."""
        self._leave_budget()
        try:
            self._ready.extend(self._keep(self._decoder.feed_eof()))
        except FramingError as exc:
            self._error = detached(exc)
            return
        self._error = anyio.EndOfStream()

    def _broke(self, exc: FramingError) -> None:
        """The peer broke the framing: the good messages of the read, then the error."""
        self._ready.extend(self._keep(exc.messages))
        self._error = detached(exc)

    def _took(self, messages: list[bytes]) -> None:
        """After a read: the clocks, the memory budget, the read's size; queue ``messages``."""
        if (
            self._message_timeout is not None
            or self._idle_timeout is not None
            or self._heartbeat is not None
        ):
            buffered = self._track_message(bool(messages))
        else:
            buffered = -1
        budget = self._budget
        if budget is not None:  # inline up to the call: this runs per read
            if buffered < 0:
                buffered = self._held
            held = buffered + (self._read_bytes + MESSAGE_COST * len(messages) if messages else 0)
            if held >= SMALL or self.budget_held or budget.held > budget.limit:
                self._weigh(held)
        if len(messages) > self._max_batch or self._read_size < self._read_full:
            self._read_size = fit_read(self._read_size, self._read_full, len(messages))
        self._ready.extend(self._keep(messages) if self._heartbeat is not None else messages)

    async def _pull(self) -> list[bytes]:
        """Read once (at most ``_read_size`` bytes) and decode: the messages completed.

        Raises ``anyio.EndOfStream`` at the end, ``FramingError`` from the decoder,
        and what the inner stream raises. A subclass reading another way (the trio
        socket in :mod:`.on_trio`) overrides this alone (and sets ``_read_bytes``, the
        read's size, which the memory budget weighs); the clocks stay here. Such a
        subclass sets ``_own_pull`` to ``False``: ``_receive_slow()`` makes this read
        inline when it is ``True``.
        """
        data = await self.transport_stream.receive(self._read_size)
        self._read_bytes = len(data)
        return self._decode(data)

    def _decode(self, data: Buffer) -> list[bytes]:
        """The messages completed by one read's bytes; sets ``_held``, what the decoder
        holds after them (a message begun), exactly.

        While no message is begun, the C scanner takes the read's whole messages where
        they lie: when they end with the read (one message in flight, the
        request/response case), the decoder is not called at all.

        Raises the decoder's ``FramingError``, whose ``messages`` are all the good
        messages of this read.
        """
        messages: list[bytes] = []
        pos = 0
        scan = self._idle_scan
        if scan is not None and not self._held:
            pos = scan(data, 0, messages, len(data))
            if pos == len(data):
                return messages
        try:
            messages += self._decoder.feed(memoryview(data)[pos:] if pos else data)
        except FramingError as exc:
            exc.messages = messages + exc.messages
            raise
        self._held = self._decoder.buffered
        return messages

    def _keep(self, messages: list[bytes]) -> list[bytes]:
        """The messages for the application: with the heartbeat on, not the empty ones."""
        return [m for m in messages if m] if self._heartbeat is not None else messages

    def _track_message(self, completed: bool) -> int:
        """Note the time of a read and when the unfinished message began; return the
        bytes held for it."""
        now = self._now()
        self._last_read = now
        buffered = self._held
        if not buffered:
            self._message_started = None
        elif completed or self._message_started is None:
            self._message_started = now  # a new message began in this read
        return buffered

    def _weigh(self, held: int) -> None:
        """After a read: tell the memory budget what this stream holds (the unfinished
        message, and the messages just decoded, weighed by the read's size: the
        application took all the earlier ones, since reads wait for that), once it is
        no longer small; while the budget is spent, read little at a time."""
        budget = self._budget
        assert budget is not None
        if held < SMALL:
            held = 0
        if held != self.budget_held:
            budget.update(self, held)
        if budget.held > budget.limit and budget.lead is not self:
            self._read_size = min(self._read_size, SPENT_READ)

    def budget_pause(self) -> None:
        """The memory budget is spent: the next read waits for room."""
        self._room = anyio.Event()

    def budget_resume(self) -> None:
        """The memory budget has room again."""
        room, self._room = self._room, None
        if room is not None:
            room.set()

    def _leave_budget(self) -> None:
        if self._budget is not None:
            self._budget.release(self)
            self._budget = None

    async def send(self, item: Buffer) -> None:
        """Send one message (waits its turn behind other senders).

        Raises:
            MessageTooLarge, FramingError: the framing cannot carry ``item``;
                nothing was sent.
            TypeError: ``item`` is not bytes-like (a ``str``: use
                :meth:`send_text`); nothing was sent.
            anyio.ClosedResourceError: this stream was closed.
            anyio.BrokenResourceError: the connection broke.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        parts: list[Buffer] = []
        encode = self._encode  # a local: a call of an attribute is not specialised
        try:
            if len(item) < COPY_LIMIT:
                data: bytes | None = encode(item)  # in C where the framing can
            else:
                parts = self._send_framing.encode_parts(item)
                data = b"".join(parts) if len(parts) == 1 else None
        except (TypeError, ValueError) as exc:  # a try costs nothing until it catches
            raise not_bytes(item, "send_text()") or exc from None
        if self._heartbeat is not None:
            self._last_send = self._now()
        await self._send_bytes(data, parts)

    async def _send_bytes(self, data: bytes | None, parts: Iterable[Buffer]) -> None:
        """Write one encoded message whole (``data``, or if ``None``, ``parts`` in turn)
        behind the other senders. A subclass writing another way overrides this alone."""
        lock = self._send_lock
        try:  # no other sender: anyio's acquire() would add a cancellation check
            lock.acquire_nowait()  # to the one the inner send() makes (1 us on asyncio)
        except anyio.WouldBlock:
            await lock.acquire()
        try:
            if data is not None:
                await self.transport_stream.send(data)
            else:  # large: do not copy the body into a new object
                for part in parts:
                    await self.transport_stream.send(part)  # type: ignore[arg-type]
        finally:
            lock.release()

    async def send_many(self, items: Iterable[Buffer]) -> None:
        """Send several messages with one write to the inner stream, in order.

        Raises what :meth:`send` raises; if one cannot be encoded, none is sent.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        if not isinstance(items, (list, tuple)):
            items = list(items)  # kept for the error message below
        try:
            data = self.send_framing.encode_many(items)
        except (TypeError, ValueError) as exc:
            raise first_not_bytes(items, "send_text()") or exc from None
        if self._heartbeat is not None:
            self._last_send = self._now()
        await self._send_bytes(data, ())

    # --- changing shape part-way: another framing, raw bytes, TLS ----------------

    def set_framing(
        self, framing: Framing | None = None, *, receive: Framing | None = None,
        send: Framing | None = None,
    ) -> None:  # fmt: skip
        """As :meth:`aiomsg.Connection.set_framing`, on any anyio byte stream: ``framing``
        for both directions, ``receive`` or ``send`` for one. The new receive framing
        takes over right after the last message :meth:`receive` returned: what had
        arrived behind it (messages decoded but not yet received, a partial message)
        is decoded again by the new framing.

        Raises:
            ValueError: messages decoded but not yet received cannot be given back
                exactly by the old framing (``Lines``, ``Varint``): receive them
                first, or read the bytes before the switch with
                :meth:`receive_exactly`; or a heartbeat the new framing cannot
                carry. Nothing was changed.
            FramingError: the bytes behind the boundary break the new framing;
                :meth:`receive` raises it too, after the good messages.
        """
        receive, send = chosen_framings(framing, receive, send, self._options.heartbeat_for)
        if send is not None:
            self.send_framing = send
            self._heartbeat = self._options.heartbeat_for(send)
        if receive is None:
            return
        pending = list(self._ready)
        try:
            self._decoder, messages = switch_decoder(self._decoder, self.framing, pending, receive)
        except ValueError as exc:
            if not isinstance(exc, FramingError):
                raise  # refused: nothing was changed
            self.framing = receive
            self._ready.clear()
            self._ready.extend(self._keep(exc.messages))
            self._error = detached(exc)
            raise
        self.framing = receive
        self._idle_scan = self._decoder.idle_scanner()
        self._held = self._decoder.buffered
        self._ready.clear()
        self._ready.extend(self._keep(messages))
        self._message_started = anyio.current_time() if self._held else None

    async def receive_exactly(self, n: int) -> bytes:
        """Return the next ``n`` bytes as they are, outside any framing, then go on with
        the framing as before (see :meth:`aiomsg.Connection.receive_exactly`).

        Raises what :meth:`receive` raises (:class:`~aiomsg.IncompleteMessageError`
        if the stream ends first) and :meth:`set_framing`'s ``ValueError``.
        """
        current = self.framing
        self.set_framing(receive=FixedLength(n))
        try:
            return await self.receive()
        finally:
            if not self._closed:
                self.set_framing(receive=current)

    async def send_raw(self, data: Buffer) -> None:
        """Send ``data`` as it is, outside any framing (waits its turn behind other senders).

        Raises:
            TypeError: ``data`` is not bytes-like.
            anyio.ClosedResourceError: this stream was closed.
            anyio.BrokenResourceError: the connection broke.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        error = not_bytes(data, "text.encode()")
        if error is not None:
            raise error
        async with self._send_lock:
            await self.transport_stream.send(bytes(data))

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        *,
        server_side: bool = False,
        hostname: str | None = None,
        standard_compatible: bool = True,
    ) -> None:
        """Upgrade this stream to TLS in place (STARTTLS), at a message boundary.

        The inner stream is wrapped in anyio's :class:`~anyio.streams.tls.TLSStream`
        (``hostname`` is the name a client checks; ``standard_compatible`` as
        there); the handshake must finish within the options'
        ``tls_handshake_timeout``. Bytes the peer sent behind the boundary before
        the handshake are never taken as TLS nor dropped: this raises instead.

        Raises:
            FramingError: the peer had already sent something after the boundary;
                the stream is still plaintext: close it.
            TimeoutError: the handshake took longer than ``tls_handshake_timeout``.
            anyio.BrokenResourceError, ssl.SSLError: the handshake failed.
            anyio.ClosedResourceError: this stream was closed.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        check_tls_boundary(self._decoder, len(self._ready))
        async with self._send_lock:
            with anyio.fail_after(self._options.tls_handshake_timeout):
                self.transport_stream = await TLSStream.wrap(
                    self.transport_stream,
                    server_side=server_side,
                    hostname=hostname,
                    ssl_context=ssl_context,
                    standard_compatible=standard_compatible,
                )

    async def send_text(self, text: str, encoding: str = "utf-8") -> None:
        """Send ``text`` encoded as one message. Raises what :meth:`send` raises."""
        await self.send(text.encode(encoding))

    async def receive_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """Return the next message decoded as text.

        Raises what :meth:`receive` raises, and :class:`UnicodeDecodeError` (a
        ``ValueError``) if it is not valid ``encoding``: that message is consumed;
        the stream is still usable.
        """
        return (await self.receive()).decode(encoding, errors)

    async def send_eof(self) -> None:
        """Half-close: "done sending, still listening" (``shutdown(SHUT_WR)``).

        Raises:
            NotImplementedError: the inner stream cannot half-close. A TLS stream
                cannot: TLS has no way to end one direction only. Nothing is sent;
                mark the end of your message with the framing instead.
            anyio.ClosedResourceError: this stream was closed.
            anyio.BrokenResourceError: the connection broke.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        async with self._send_lock:
            try:
                await self.transport_stream.send_eof()
                self._eof_sent = True
            except NotImplementedError as exc:
                raise NotImplementedError(
                    f"{type(self.transport_stream).__name__} cannot half-close (TLS cannot "
                    f"end one direction only): {exc}"
                ) from exc
            except OSError as exc:  # the trio backend lets ENOTCONN through
                raise anyio.BrokenResourceError(f"cannot half-close: {exc}") from exc

    async def aclose(self) -> None:
        """Close this stream and the inner one. Later calls raise ``ClosedResourceError``.

        Errors of the close itself (a TLS peer that left without close_notify)
        are the inner stream's and propagate; the stream is closed anyway.
        """
        self._closed = True
        self._ready.clear()
        self._leave_budget()
        await self.transport_stream.aclose()

    @property
    def mid_message(self) -> bool:
        """Whether part of a message has arrived and not its end (a drain waits for it)."""
        return bool(self._decoder.buffered)

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.transport_stream.extra_attributes


def _loop_key() -> object | None:
    """What identifies the running event loop (for its memory budget): the asyncio
    loop, or trio's root task; ``None`` outside of both."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    try:
        import trio

        return trio.lowlevel.current_root_task()
    except (ImportError, RuntimeError):
        return None
