"""The anyio front: :class:`FramedStream` for task groups on asyncio, uvloop and trio.

* :mod:`.framed_stream` - :class:`FramedStream` around any anyio byte stream.
* :mod:`.tcp` - :func:`connect_framed` and :func:`serve_framed`.
* :mod:`.unix` - :func:`connect_framed_unix` and :func:`serve_framed_unix`.
* :mod:`.on_asyncio` - the FramedStream those make on asyncio, on aiomsg's transport.
* :mod:`.on_trio` - the FramedStream those make on trio, reading the trio socket itself.
* :mod:`.proxied` - :class:`ProxyAttribute`, a PROXY-ed stream's typed attributes.
"""

from .framed_stream import FramedStream
from .proxied import ProxyAttribute
from .tcp import connect_framed, serve_framed
from .unix import connect_framed_unix, serve_framed_unix

__all__ = [
    "FramedStream",
    "ProxyAttribute",
    "connect_framed",
    "connect_framed_unix",
    "serve_framed",
    "serve_framed_unix",
]
