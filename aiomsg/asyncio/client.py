"""The Streams front's clients: :func:`connect` and :func:`connect_unix`."""

from __future__ import annotations

import asyncio
import os
import ssl as _ssl
from typing import Any

from ..framing import Framing
from ..limits import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE,
    DEFAULT_MESSAGE_TIMEOUT,
    DEFAULT_READ_SIZE,
    DEFAULT_WRITE_HIGH_WATER,
)
from .connection import Connection, _Options, _QueueProtocol

__all__ = ["connect", "connect_unix"]


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

    ``ssl`` and other keyword arguments go to :meth:`asyncio.loop.create_connection`.

    Raises:
        OSError: the connection cannot be made (refused, unreachable, no such
            host: :class:`socket.gaierror`).
        TimeoutError: no connection within ``timeout`` seconds.
        ssl.SSLError: the TLS handshake failed.
    """
    options = _Options(
        read_size=read_size,
        write_high_water=write_high_water,
        message_timeout=message_timeout,
        idle_timeout=idle_timeout,
        keepalive=keepalive,
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
    **kwargs: Any,
) -> Connection:
    """Open a Unix-socket connection and return it framed with ``framing``; see :func:`connect`."""
    options = _Options(
        read_size=read_size,
        write_high_water=write_high_water,
        message_timeout=message_timeout,
        idle_timeout=idle_timeout,
        keepalive=None,
    )
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_unix_connection(
        lambda: _QueueProtocol(framing, options), os.fspath(path), **kwargs
    )
    return Connection(protocol)
