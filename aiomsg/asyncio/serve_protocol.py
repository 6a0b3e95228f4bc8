"""Serve a protocol class (a :class:`~aiomsg.MessageProtocol`) on aiomsg's accept loop:
:func:`serve_protocol`, the stand-in for :meth:`asyncio.loop.create_server` that adds
the PROXY protocol and the accept loop's back-off when descriptors run out."""

from __future__ import annotations

import asyncio
import os
import ssl as _ssl
from collections.abc import Callable
from typing import Any

from .._proxy_accept import (
    DEFAULT_PROXY_MAX_PENDING,
    DEFAULT_PROXY_TIMEOUT,
    ProxyTrusted,
    proxy_settings,
)
from .._unix_socket import DEFAULT_UNIX_MODE
from ..framing.proxy_protocol import ProxyVersion
from ..options import DEFAULT_OPTIONS, Options
from ._listener import Listener, listen_tcp, listen_unix
from .server import Server

__all__ = ["serve_protocol", "serve_protocol_unix"]


def serve_protocol(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | None,
    port: int | None,
    *,
    options: Options | None = None,
    ssl: _ssl.SSLContext | None = None,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
    **kwargs: Any,
) -> Server:
    """Serve ``protocol_factory()`` per client, as ``loop.create_server`` does:
    ``async with aiomsg.serve_protocol(Chat, host, port) as server:``.

    The result is an :class:`~aiomsg.Server` (``await`` it or use ``async with``;
    ``server.port``, ``close()``, ``wait_closed()``, ``serve_forever()``); the
    connections are the protocols' to close. ``options`` gives the listen
    ``backlog`` and, with ``ssl``, ``tls_handshake_timeout`` (each protocol keeps
    its own limits: a :class:`~aiomsg.MessageProtocol`'s class attribute
    ``options``). The keywords of ``loop.create_server`` that choose the sockets
    (``sock``, ``reuse_port``, ``reuse_address``, ``family``, ``flags``) are taken
    as there. The PROXY keywords are those of :func:`aiomsg.serve`: each protocol
    gets the header as its ``proxy_header`` attribute before ``connection_made``
    (a :class:`~aiomsg.MessageProtocol`'s ``remote_address`` is then the client's).

    Raises:
        ValueError: a PROXY keyword is wrong, at once.
        TypeError: (when it starts) another keyword.
        OSError: (when it starts) binding failed.
    """
    proxy = proxy_settings(proxy_protocol, proxy_trusted, proxy_timeout, proxy_max_pending)
    chosen = options or DEFAULT_OPTIONS

    async def listen(server: Server) -> Listener | asyncio.Server:
        return await listen_tcp(
            lambda: server.adopt(protocol_factory()),  # so that Server.drain reaches it
            host,
            port,
            backlog=chosen.backlog,
            ssl=ssl,
            ssl_handshake_timeout=chosen.tls_handshake_timeout if ssl is not None else None,
            proxy=proxy,
            **kwargs,
        )

    return Server(listen, options=chosen)


def serve_protocol_unix(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    path: str | os.PathLike[str],
    *,
    options: Options | None = None,
    mode: int = DEFAULT_UNIX_MODE,
    ssl: _ssl.SSLContext | None = None,
    proxy_protocol: ProxyVersion | None = None,
    proxy_trusted: ProxyTrusted | None = None,
    proxy_timeout: float = DEFAULT_PROXY_TIMEOUT,
    proxy_max_pending: int = DEFAULT_PROXY_MAX_PENDING,
) -> Server:
    """:func:`serve_protocol` on a Unix socket at ``path``: the socket file, ``mode``
    and what it raises are those of :func:`aiomsg.serve_unix`, the PROXY keywords
    too (``proxy_trusted=["unix"]``)."""
    proxy = proxy_settings(
        proxy_protocol, proxy_trusted, proxy_timeout, proxy_max_pending, unix=True
    )
    chosen = options or DEFAULT_OPTIONS

    async def listen(server: Server) -> Listener:
        return listen_unix(
            lambda: server.adopt(protocol_factory()),  # so that Server.drain reaches it
            path,
            backlog=chosen.backlog,
            mode=mode,
            ssl=ssl,
            ssl_handshake_timeout=chosen.tls_handshake_timeout if ssl is not None else None,
            proxy=proxy,
        )

    return Server(listen, options=chosen)
