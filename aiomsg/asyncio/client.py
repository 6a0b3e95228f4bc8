"""The Streams front's clients: :func:`connect` and :func:`connect_unix`."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl as _ssl
from collections.abc import AsyncGenerator
from typing import Any

from .._opening import Opening
from .._proxy_connect import open_proxied_socket, proxy_wire
from ..framing import Framing
from ..framing.proxy_protocol import ProxyHeader
from ..options import Options, resolve_options
from .connection import Connection, _QueueProtocol

__all__ = ["connect", "connect_forever", "connect_unix"]

logger = logging.getLogger("aiomsg")


def connect(
    host: str,
    port: int,
    *,
    framing: Framing,
    options: Options | None = None,
    ssl: _ssl.SSLContext | bool | None = None,
    proxy_header: ProxyHeader | bytes | None = None,
    **kwargs: Any,
) -> Opening[Connection]:
    """Open a TCP connection framed with ``framing``: ``async with connect(...) as conn``,
    or ``conn = await connect(...)`` (then close it yourself: ``await conn.aclose()``).

    ``options`` (an :class:`~aiomsg.Options`) sets the limits, timeouts and
    heartbeat of the connection; the defaults are safe:

    * ``connect_timeout`` (30 s) bounds the connection and the TLS handshake
      together: then :class:`TimeoutError` is raised and nothing is left open.
    * ``message_timeout`` (60 s) - a message that has begun must complete within
      it; then ``receive()`` raises :class:`~aiomsg.MessageTimeout` and the
      connection is closed. ``idle_timeout`` (off) - some byte must arrive within
      it, else :class:`~aiomsg.IdleTimeout`.
    * ``keepalive`` (60 s) - TCP keepalive, so that a peer that vanished is found
      (the connection then fails with :class:`~aiomsg.ConnectionClosed`).
    * ``read_size`` (bytes per read) and ``write_high_water`` (unsent bytes above
      which ``send()`` waits and reading stops).
    * ``heartbeat`` (off; both peers must turn it on) - an empty message is sent
      whenever nothing was sent for that many seconds, empty messages received are
      swallowed, and when nothing at all arrived for ``heartbeat_timeout`` seconds
      (default: three intervals) ``receive()`` raises
      :class:`~aiomsg.HeartbeatTimeout` (an :class:`~aiomsg.IdleTimeout`): reconnect.
      It finds a hung peer in seconds where keepalive takes minutes. The framing
      must carry empty messages.

    ``ssl`` and other keyword arguments go to :meth:`asyncio.loop.create_connection`.
    The old option keywords (``message_timeout=``..., ``timeout=``) still work for
    one release, with a :class:`DeprecationWarning`.

    ``proxy_header`` (a :class:`~aiomsg.ProxyHeader`, or the bytes of
    :func:`~aiomsg.encode_proxy_header`) is written first, before TLS and any
    message, as a load balancer does: for tests, and for relaying a client to a
    server with ``proxy_protocol=``. Of the socket keywords, ``local_addr`` and
    ``family`` then still apply.

    Raises:
        ValueError: a heartbeat that ``framing`` cannot carry (``FixedLength``,
            ``TypePrefixed``, ``UntilEOF``); raised by this call, before connecting.
        OSError: the connection cannot be made (refused, unreachable, no such
            host: :class:`socket.gaierror`).
        TimeoutError: no connection within ``connect_timeout`` seconds.
        ssl.SSLError: the TLS handshake failed.
        TypeError: ``proxy_header`` is neither a ProxyHeader nor bytes.
    """
    chosen = resolve_options("connect", options, framing, kwargs, _RENAMED)
    if proxy_header is not None:
        kwargs["proxy_header"] = proxy_wire(proxy_header)  # encoded (and refused) now
    return Opening(_connect(host, port, framing, chosen, ssl, kwargs))


# connect()'s deprecated keyword for what is now Options.connect_timeout.
_RENAMED = {"timeout": "connect_timeout"}


async def _connect(
    host: str,
    port: int,
    framing: Framing,
    options: Options,
    ssl: _ssl.SSLContext | bool | None,
    kwargs: dict[str, Any],
) -> Connection:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(options.connect_timeout):
        wire = kwargs.pop("proxy_header", None)
        if wire is not None:
            sock = await open_proxied_socket(host, port, wire, kwargs)
            if ssl and kwargs.get("server_hostname") is None:
                kwargs["server_hostname"] = host
            try:
                _, protocol = await loop.create_connection(
                    lambda: _QueueProtocol(framing, options), sock=sock, ssl=ssl, **kwargs
                )
            except BaseException:
                sock.close()
                raise
        else:
            _, protocol = await loop.create_connection(
                lambda: _QueueProtocol(framing, options), host, port, ssl=ssl, **kwargs
            )
    return Connection(protocol)


def connect_unix(
    path: str | os.PathLike[str],
    *,
    framing: Framing,
    options: Options | None = None,
    **kwargs: Any,
) -> Opening[Connection]:
    """Open a Unix-socket connection framed with ``framing``; see :func:`connect`
    (``keepalive`` does not apply). Raises what it raises; nothing is at ``path``:
    :class:`FileNotFoundError`, nothing listens there: :class:`ConnectionRefusedError`.
    """
    chosen = resolve_options("connect_unix", options, framing, kwargs, _RENAMED)
    return Opening(_connect_unix(os.fspath(path), framing, chosen, kwargs))


async def _connect_unix(
    path: str, framing: Framing, options: Options, kwargs: dict[str, Any]
) -> Connection:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(options.connect_timeout):
        _, protocol = await loop.create_unix_connection(
            lambda: _QueueProtocol(framing, options), path, **kwargs
        )
    return Connection(protocol)


async def connect_forever(
    host: str,
    port: int,
    *,
    framing: Framing,
    min_delay: float = 0.5,
    max_delay: float = 30.0,
    reset_after: float = 10.0,
    **kwargs: Any,
) -> AsyncGenerator[Connection, None]:
    """Connect, and again each time the connection ends: ``async for conn in connect_forever(...)``.

    Each turn of the loop gets a new connection; it is closed when the loop
    moves on, so use it inside the loop body (``async for message in conn``
    ends when the server goes away; catch ``ConnectionClosed`` for a reset).

    Back-off: a failed attempt (refused, unreachable, timed out) is logged at
    INFO and retried after a delay that doubles from ``min_delay`` up to
    ``max_delay`` seconds, with random jitter of +/-50% so that many clients do
    not come back at the same instant. A connection that ends within
    ``reset_after`` seconds of being made counts as a failed attempt too (a
    server that accepts and then closes, resets or sends garbage would otherwise
    be reconnected to in a tight loop): the next attempt waits. Only a connection
    that lasted ``reset_after`` seconds resets the delay, and the next attempt is
    then made at once. So a client makes at most about ``2 / min_delay``
    attempts per second, fewer as the delay grows.

    It only ends when the caller breaks out of the loop or is cancelled.
    ``kwargs`` (``options=`` included) go to :func:`connect`.
    """
    loop = asyncio.get_running_loop()
    delay = min_delay
    while True:
        try:
            conn = await connect(host, port, framing=framing, **kwargs)
        except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors too
            logger.info("cannot connect to %s:%s (%s); again in %.2g s", host, port, exc, delay)
        else:
            began = loop.time()
            async with conn:
                yield conn
            lasted = loop.time() - began
            if lasted >= reset_after:
                delay = min_delay
                continue
            logger.info(
                "connection to %s:%s ended after %.2g s; again in %.2g s", host, port, lasted, delay
            )
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, max_delay)
