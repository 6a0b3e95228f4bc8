"""aiomsg: message framing for asyncio, uvloop, anyio and trio.

TCP moves bytes, not messages. aiomsg puts the boundaries back: pick a framing
(how messages are laid out on the stream) and use it through the I/O front you
like. See the README and ``docs/`` for a tour.
"""

from importlib import metadata as _metadata

from . import limits
from .anyio import FramedStream, connect_framed, serve_framed
from .asyncio import (
    Connection,
    MessageProtocol,
    RequestProtocol,
    Server,
    broadcast,
    connect,
    connect_unix,
    request,
    request_unix,
    serve,
    serve_requests,
    serve_requests_unix,
    serve_unix,
)
from .errors import (
    AiomsgError,
    BusyError,
    ConnectionClosed,
    ConnectionTimeout,
    FramingError,
    IdleTimeout,
    IncompleteMessageError,
    MessageTimeout,
    MessageTooLarge,
)
from .framing import (
    DEFAULT_MAX_SIZE,
    AsciiLengthPrefixed,
    Decoder,
    Delimited,
    EndOfStream,
    FixedLength,
    Framing,
    LengthPrefixed,
    Lines,
    Netstring,
    TypePrefixed,
    Varint,
)
from .loops import loop_factory, loop_name, new_event_loop, run

try:  # the version is written once, in pyproject.toml
    __version__ = _metadata.version("aiomsg-framing")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_MAX_SIZE",
    "AiomsgError",
    "AsciiLengthPrefixed",
    "BusyError",
    "Connection",
    "ConnectionClosed",
    "ConnectionTimeout",
    "Decoder",
    "Delimited",
    "EndOfStream",
    "FixedLength",
    "FramedStream",
    "Framing",
    "FramingError",
    "IdleTimeout",
    "IncompleteMessageError",
    "LengthPrefixed",
    "Lines",
    "MessageProtocol",
    "MessageTimeout",
    "MessageTooLarge",
    "Netstring",
    "RequestProtocol",
    "Server",
    "TypePrefixed",
    "Varint",
    "broadcast",
    "connect",
    "connect_framed",
    "connect_unix",
    "limits",
    "loop_factory",
    "loop_name",
    "new_event_loop",
    "request",
    "request_unix",
    "run",
    "serve",
    "serve_framed",
    "serve_requests",
    "serve_requests_unix",
    "serve_unix",
]
