"""The PROXY protocol on the anyio front: :class:`ProxyAttribute`, and reading the header on trio.

On a server with ``proxy_protocol=`` the streams a handler gets carry the header as
typed attributes: ``stream.extra(ProxyAttribute.header, None)`` is the
:class:`~aiomsg.ProxyHeader` (``None`` without one), and
``SocketAttribute.remote_address``/``remote_port`` are the client's (from the
header; a ``LOCAL`` or ``UNKNOWN`` header keeps the real peer's), while
``ProxyAttribute.proxy_address`` is the load balancer's.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio import TypedAttributeSet, typed_attribute
from anyio.abc import ByteStream, SocketAttribute

from .._proxy_accept import read_available
from ..framing.proxy_protocol import ProxyHeader, ProxyHeaderParser, ProxyVersion

__all__ = ["ProxyAttribute"]


class ProxyAttribute(TypedAttributeSet):
    """The PROXY protocol's typed attributes of a stream (see the module docstring)."""

    #: The header the load balancer sent ahead of the connection.
    header: ProxyHeader = typed_attribute()
    #: The load balancer's own address (the socket's real peer).
    proxy_address: Any = typed_attribute()


def proxy_attributes(header: ProxyHeader, peer: Any) -> dict[Any, Callable[[], Any]]:
    """The attributes a PROXY-ed stream adds to (or overrides in) its socket's."""
    attributes: dict[Any, Callable[[], Any]] = {
        ProxyAttribute.header: lambda: header,
        ProxyAttribute.proxy_address: lambda: peer,
    }
    source = header.source
    if source is not None:
        attributes[SocketAttribute.remote_address] = lambda: source
        if isinstance(source, tuple):
            attributes[SocketAttribute.remote_port] = lambda: source[1]
    return attributes


class ProxiedStream(ByteStream):
    """``stream`` (as accepted) with the attributes of its PROXY ``header``."""

    def __init__(self, stream: ByteStream, header: ProxyHeader) -> None:
        self._stream = stream
        self._attributes = {
            **stream.extra_attributes,
            **proxy_attributes(header, stream.extra(SocketAttribute.remote_address, None)),
        }
        if isinstance(header.source, str):  # an AF_UNIX client has no port
            self._attributes.pop(SocketAttribute.remote_port, None)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._attributes


# anyio 4.7 renamed wait_socket_readable (and deprecated the old name).
_wait_readable: Any = getattr(anyio, "wait_readable", None) or anyio.wait_socket_readable


async def read_header(sock: socket.socket, version: ProxyVersion) -> ProxyHeader:
    """The PROXY header off the accepted, non-blocking ``sock``, no byte more (see
    :func:`aiomsg._proxy_accept.read_available` for what it raises)."""
    parser = ProxyHeaderParser(version)
    while True:
        header = read_available(sock, parser)
        if header is not None:
            return header
        await _wait_readable(sock)
