"""The asyncio fronts (uvloop included).

* :mod:`.protocol` - :class:`MessageProtocol`, callbacks on a ``BufferedProtocol``.
* :mod:`.connection` - :class:`Connection`, ``await receive()`` / ``send()``.
* :mod:`.client`, :mod:`.server` - :func:`connect`, :func:`serve` and their Unix twins.
* :mod:`.serve_protocol` - :func:`serve_protocol`, ``loop.create_server`` on aiomsg's accept loop.
* :mod:`.requests` - half-close request/response exchanges.
* :mod:`.broadcast` - one message to many connections without waiting for any.
"""

from .broadcast import broadcast
from .client import connect, connect_forever, connect_unix
from .connection import Connection
from .protocol import MessageProtocol
from .requests import RequestProtocol, request, request_unix, serve_requests, serve_requests_unix
from .serve_protocol import serve_protocol, serve_protocol_unix
from .server import Handler, Server, serve, serve_unix

__all__ = [
    "Connection",
    "Handler",
    "MessageProtocol",
    "RequestProtocol",
    "Server",
    "broadcast",
    "connect",
    "connect_forever",
    "connect_unix",
    "request",
    "request_unix",
    "serve",
    "serve_protocol",
    "serve_protocol_unix",
    "serve_requests",
    "serve_requests_unix",
    "serve_unix",
]
