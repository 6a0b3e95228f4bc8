"""The Streams front's clients: :func:`connect` and :func:`connect_unix`."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl as _ssl
from collections.abc import AsyncGenerator
from typing import Any

from .._heartbeat import heartbeat_settings
from ..framing import Framing
from ..limits import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE,
    DEFAULT_MESSAGE_TIMEOUT,
    DEFAULT_READ_SIZE,
    DEFAULT_WRITE_HIGH_WATER,
)
from .connection import Connection, _Options, _QueueProtocol

__all__ = ["connect", "connect_forever", "connect_unix"]

logger = logging.getLogger("aiomsg")


async def connect(
    host: str,
    port: int,
    *,
    framing: Framing,
    ssl: _ssl.SSLContext | bool | None = None,
    read_size: int = DEFAULT_READ_SIZE,
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
    idle_timeout: float | None = None,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    heartbeat: float | None = None,
    heartbeat_timeout: float | None = None,
    timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    **kwargs: Any,
) -> Connection:
    """Open a TCP connection and return it framed with ``framing``.

    ``timeout`` bounds the connection and the TLS handshake together: after
    that many seconds :class:`TimeoutError` is raised and nothing is left open
    (``None``: wait as long as the system does).

    Limits (``None`` turns a timeout off):

    * ``message_timeout`` - seconds a message that has begun may take to
      complete; then ``receive()`` raises :class:`~aiomsg.MessageTimeout` and
      the connection is closed.
    * ``idle_timeout`` - seconds without any byte from the peer; then
      ``receive()`` raises :class:`~aiomsg.IdleTimeout` and the connection is
      closed. Off by default.
    * ``keepalive`` - seconds of silence before TCP keepalive probes the peer,
      so that a peer that vanished is found (the connection then fails with
      :class:`~aiomsg.ConnectionClosed`).
    * ``read_size`` (bytes per read) and ``write_high_water`` (unsent bytes
      above which ``send()`` waits and reading stops).

    Heartbeat (off by default; both peers must turn it on): with ``heartbeat``
    seconds, an empty message is sent whenever nothing was sent for that long
    (checked once per interval), empty messages received are swallowed, and
    when nothing at all arrived for ``heartbeat_timeout`` seconds (default:
    three intervals) ``receive()`` raises :class:`~aiomsg.HeartbeatTimeout`
    (an :class:`~aiomsg.IdleTimeout`) and the connection is closed: reconnect.
    It finds a hung or vanished peer in seconds where keepalive takes minutes,
    and keeps NAT and proxy mappings alive. The framing must carry empty
    messages.

    ``ssl`` and other keyword arguments go to :meth:`asyncio.loop.create_connection`.

    Raises:
        ValueError: a heartbeat that ``framing`` cannot carry (``FixedLength``,
            ``TypePrefixed``, ``UntilEOF``), or one that is not a positive
            number of seconds; raised before connecting.
        OSError: the connection cannot be made (refused, unreachable, no such
            host: :class:`socket.gaierror`).
        TimeoutError: no connection within ``timeout`` seconds.
        ssl.SSLError: the TLS handshake failed.
    """
    heartbeat_settings(framing, heartbeat, heartbeat_timeout)  # refuse now, not per connection
    options = _Options(
        read_size=read_size,
        write_high_water=write_high_water,
        message_timeout=message_timeout,
        idle_timeout=idle_timeout,
        keepalive=keepalive,
        heartbeat=heartbeat,
        heartbeat_timeout=heartbeat_timeout,
    )
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, protocol = await loop.create_connection(
            lambda: _QueueProtocol(framing, options), host, port, ssl=ssl, **kwargs
        )
    return Connection(protocol)


async def connect_unix(
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    read_size: int = DEFAULT_READ_SIZE,
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
    idle_timeout: float | None = None,
    heartbeat: float | None = None,
    heartbeat_timeout: float | None = None,
    **kwargs: Any,
) -> Connection:
    """Open a Unix-socket connection and return it framed with ``framing``; see :func:`connect`."""
    heartbeat_settings(framing, heartbeat, heartbeat_timeout)  # refuse now, not per connection
    options = _Options(
        read_size=read_size,
        write_high_water=write_high_water,
        message_timeout=message_timeout,
        idle_timeout=idle_timeout,
        keepalive=None,
        heartbeat=heartbeat,
        heartbeat_timeout=heartbeat_timeout,
    )
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_unix_connection(
        lambda: _QueueProtocol(framing, options), os.fspath(path), **kwargs
    )
    return Connection(protocol)


async def connect_forever(
    host: str,
    port: int,
    *,
    framing: Framing,
    min_delay: float = 0.5,
    max_delay: float = 30.0,
    **kwargs: Any,
) -> AsyncGenerator[Connection, None]:
    """Connect, and again each time the connection ends: ``async for conn in connect_forever(...)``.

    Each turn of the loop gets a new connection; it is closed when the loop
    moves on, so use it inside the loop body (``async for message in conn``
    ends when the server goes away; catch ``ConnectionClosed`` for a reset).
    A failed attempt (refused, unreachable, timed out) is logged at INFO and
    retried after a delay that doubles from ``min_delay`` up to ``max_delay``
    seconds, with random jitter of +/-50% so that many clients do not come back
    at the same instant; a successful connection resets the delay. It only
    ends when the caller breaks out of the loop or is cancelled. ``kwargs`` go
    to :func:`connect`.
    """
    delay = min_delay
    while True:
        try:
            conn = await connect(host, port, framing=framing, **kwargs)
        except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors too
            logger.info("cannot connect to %s:%s (%s); again in %.2g s", host, port, exc, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, max_delay)
            continue
        delay = min_delay
        async with conn:
            yield conn
