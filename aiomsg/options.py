"""One settings object for every connection and server: :class:`Options`.

Every client, server and wrapper of every front takes ``options=aiomsg.Options(...)``
(httpx's ``Limits``/``Timeout`` are the model): the limits, timeouts, heartbeat and
keepalive are fields here, checked once when the object is made, instead of keywords
spelled out in ten signatures. Adding a knob means a field here and the code that
reads it, nothing else.

What stays a keyword of each call is what decides *what* is served or connected to:
the address, the framing, TLS (``ssl=``/``ssl_context=``), ``reuse_port``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

from ._heartbeat import HeartbeatSettings, heartbeat_settings
from .framing import Framing
from .limits import (
    DEFAULT_BACKLOG,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE,
    DEFAULT_LINGER_TIMEOUT,
    DEFAULT_MEMORY_BUDGET,
    DEFAULT_MESSAGE_TIMEOUT,
    DEFAULT_READ_SIZE,
    DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    DEFAULT_WRITE_HIGH_WATER,
)

__all__ = ["Options"]


def _seconds(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a number of seconds or None" if optional else "a number of seconds"
        raise TypeError(f"Options.{name} must be {what}, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"Options.{name} must be a positive number of seconds, not {value!r}")


def _count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Options.{name} must be a whole number, not {value!r}")
    if value < 1:
        raise ValueError(f"Options.{name} must be at least 1, not {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    """The limits, timeouts and liveness checks of a connection or a server.

    Immutable and shareable: make one, pass it to as many calls as you like, and
    derive variants with :meth:`replace`::

        options = aiomsg.Options(message_timeout=10, idle_timeout=300)
        server = aiomsg.serve(handler, "0.0.0.0", 9000, framing=framing, options=options)
        conn = await aiomsg.connect(host, 9000, framing=framing, options=options)

    Every field has a safe default (``docs/limits.md`` explains each). Seconds may be
    ``None`` where the field says so: that turns the limit off. A field that does not
    apply to a call is ignored there (``backlog`` by a client, ``connect_timeout`` by
    a server). Clients, servers, :meth:`aiomsg.Connection.wrap`,
    :class:`aiomsg.MessageProtocol` (class attribute ``options`` or argument),
    :class:`aiomsg.FramedStream` and the anyio and half-close functions all take it.

    Raises:
        TypeError: when made with a field of the wrong type (a string for seconds, say).
        ValueError: a size below 1, seconds that are not positive and finite, or
            ``heartbeat_timeout`` without ``heartbeat``. Whether the framing can carry
            the heartbeat is checked where the framing is known: by the call that takes
            both, before it connects or listens.
    """

    #: Bytes read per system call (the buffer is shared per thread: it costs no memory
    #: per connection). A decoded message at least this large also pauses reading until
    #: the application takes it.
    read_size: int = DEFAULT_READ_SIZE
    #: Unsent bytes above which ``send()``/``drain()`` wait for the peer, and above which
    #: reading stops (``write_backpressure``), so a peer that never reads cannot grow
    #: the write buffer.
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER
    #: Whether reading stops while unsent bytes are over ``write_high_water``.
    write_backpressure: bool = True
    #: Bytes that all the connections of one event loop made with this budget may hold
    #: together: unfinished messages, decoded messages not yet taken, unsent output.
    #: When the sum is over it, the connections still growing past 64 KiB stop reading
    #: (one at a time is let through, so large messages still complete one after
    #: another) while their ``message_timeout`` keeps running; small messages and new
    #: connections go on (``None``: no bound but each connection's own).
    memory_budget: int | None = DEFAULT_MEMORY_BUDGET
    #: Seconds a message that has begun may take to complete (``None``: no limit).
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT
    #: Seconds without any byte from the peer before the connection is closed
    #: (``None``, the default: off).
    idle_timeout: float | None = None
    #: Seconds of silence before TCP keepalive probes the peer (``None``: off; ignored
    #: on Unix sockets).
    keepalive: float | None = DEFAULT_KEEPALIVE
    #: Seconds without sending after which an empty heartbeat message goes out (``None``,
    #: the default: no heartbeat). Both peers must turn it on; the framing must carry
    #: empty messages.
    heartbeat: float | None = None
    #: Seconds without receiving anything before a heartbeating peer is closed
    #: (``None``: three ``heartbeat`` intervals).
    heartbeat_timeout: float | None = None
    #: Seconds a close after a framing error or a timeout waits for the peer to close
    #: its side, so that a last notice is not destroyed by a reset.
    linger_timeout: float = DEFAULT_LINGER_TIMEOUT
    #: Seconds a closing connection may make no progress flushing its output before it
    #: is aborted.
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    #: Seconds a client's connect may take, TLS handshake included (``None``: as long
    #: as the system allows).
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT
    #: Seconds a TLS client may take to finish its handshake with a server.
    tls_handshake_timeout: float = DEFAULT_TLS_HANDSHAKE_TIMEOUT
    #: The servers' listen queue: a burst of clients is queued by the kernel instead of
    #: being made to retry.
    backlog: int = DEFAULT_BACKLOG
    #: Seconds a draining server (``Server.drain``, SIGTERM) gives its connections to finish.
    drain_timeout: float = 10.0

    def __post_init__(self) -> None:
        _count("read_size", self.read_size)
        _count("write_high_water", self.write_high_water)
        _count("backlog", self.backlog)
        if self.memory_budget is not None:
            _count("memory_budget", self.memory_budget)
        if not isinstance(self.write_backpressure, bool):
            raise TypeError(
                f"Options.write_backpressure must be True or False, not {self.write_backpressure!r}"
            )
        for name in ("message_timeout", "idle_timeout", "keepalive", "connect_timeout"):
            _seconds(name, getattr(self, name), optional=True)
        for name in ("linger_timeout", "close_timeout", "tls_handshake_timeout", "drain_timeout"):
            _seconds(name, getattr(self, name), optional=False)
        _seconds("heartbeat", self.heartbeat, optional=True)
        _seconds("heartbeat_timeout", self.heartbeat_timeout, optional=True)
        if self.heartbeat is None and self.heartbeat_timeout is not None:
            raise ValueError("Options.heartbeat_timeout needs heartbeat (the interval) as well")

    def replace(self, **changes: Any) -> Options:
        """Return a copy with ``changes`` applied (checked as when made).

        Raises:
            TypeError: a name that is not a field, or a value of the wrong type.
            ValueError: a value out of range (as the constructor).
        """
        return dataclasses.replace(self, **changes)

    def heartbeat_for(self, framing: Framing) -> HeartbeatSettings | None:
        """The heartbeat to run with ``framing``, or ``None`` when it is off.

        Raises:
            ValueError: ``framing`` cannot carry an empty message (``FixedLength``,
                ``TypePrefixed``, ``UntilEOF``), which is the heartbeat. Pick a framing
                that can, or rely on ``idle_timeout`` and ``keepalive``.
        """
        return heartbeat_settings(framing, self.heartbeat, self.heartbeat_timeout)


#: The defaults, shared by every call made without ``options``.
DEFAULT_OPTIONS = Options()

_FIELDS = frozenset(field.name for field in dataclasses.fields(Options))
# Fields that cannot be None: an old keyword given as None meant "the default" there.
_NOT_NONE = frozenset(
    {
        "read_size",
        "write_high_water",
        "write_backpressure",
        "linger_timeout",
        "close_timeout",
        "tls_handshake_timeout",
        "backlog",
    }
)


def resolve_options(
    where: str,
    options: Options | None,
    framing: Framing | None,
    kwargs: dict[str, Any],
    renamed: dict[str, str] | None = None,
    *,
    strict: bool = False,
) -> Options:
    """The options a call runs with: ``options`` (or the defaults), with the deprecated
    keywords of the same names taken out of ``kwargs``, checked against ``framing``.

    The one place where the old keywords (``message_timeout=`` ...) are still honoured:
    each use warns once per call site. ``renamed`` maps an old keyword to its field
    (``{"timeout": "connect_timeout"}``). What remains in ``kwargs`` is the caller's
    to pass on (to asyncio, say); with ``strict`` (a call that passes nothing on)
    anything left is an error.

    Raises:
        TypeError: ``options`` is not an :class:`Options`; with ``strict``, a keyword
            that is no option.
        ValueError: a bad value, or a heartbeat that ``framing`` cannot carry.
    """
    if options is None:
        options = DEFAULT_OPTIONS
    elif not isinstance(options, Options):
        raise TypeError(f"{where}(options=...) takes an aiomsg.Options, not {options!r}")
    names = renamed or {}
    legacy = {
        names.get(key, key): kwargs.pop(key)
        for key in [key for key in kwargs if key in _FIELDS or key in names]
    }
    if legacy:
        legacy = {k: v for k, v in legacy.items() if v is not None or k not in _NOT_NONE}
        spelled = ", ".join(f"{key}={value!r}" for key, value in legacy.items())
        if where.startswith("class "):  # MessageProtocol subclasses' class attributes
            old, new = f"{where}: the class attributes {', '.join(legacy)}", "set options = "
        else:
            keywords = ", ".join(f"{key}=" for key in legacy)
            old, new = f"{where}(): the keywords {keywords}", "pass options="
        warnings.warn(
            f"{old} are deprecated: {new}aiomsg.Options({spelled}) instead (they go in the "
            "next release)",
            DeprecationWarning,
            stacklevel=3,
        )
        options = options.replace(**legacy)
    if strict and kwargs:
        raise TypeError(f"{where}() got unexpected keyword arguments: {', '.join(kwargs)}")
    if framing is not None:
        options.heartbeat_for(framing)  # refuse now, not per connection
    return options
