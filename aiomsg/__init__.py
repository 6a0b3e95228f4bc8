"""aiomsg: message framing for asyncio, uvloop, anyio and trio.

TCP moves bytes, not messages. aiomsg puts the boundaries back: pick a framing
(how messages are laid out on the stream) and use it through the I/O front you
like. See the README and ``docs/`` for a tour.
"""

import warnings as _warnings
from importlib import metadata as _metadata
from typing import TYPE_CHECKING as _TYPE_CHECKING

from . import limits
from ._opening import Opening
from ._unix_socket import UnixSocketInUseError
from .anyio import (
    FramedStream,
    ProxyAttribute,
    connect_framed,
    connect_framed_unix,
    serve_framed,
    serve_framed_unix,
)
from .asyncio import (
    Connection,
    MessageProtocol,
    RequestProtocol,
    Server,
    broadcast,
    connect,
    connect_forever,
    connect_unix,
    request,
    request_unix,
    serve,
    serve_protocol,
    serve_protocol_unix,
    serve_requests,
    serve_requests_unix,
    serve_unix,
)
from .errors import (
    AiomsgError,
    BusyError,
    CloseReason,
    ConnectionClosed,
    ConnectionTimeout,
    FramingError,
    HeartbeatTimeout,
    IdleTimeout,
    IncompleteMessageError,
    MessageTimeout,
    MessageTooLarge,
)
from .framing import (
    DEFAULT_MAX_SIZE,
    AsciiLengthPrefixed,
    CountedFraming,
    Decoder,
    Delimited,
    FixedLength,
    Framing,
    LengthField,
    LengthPrefixed,
    Lines,
    Netstring,
    ProxyHeader,
    ProxyHeaderParser,
    ProxyProtocolError,
    TypePrefixed,
    UntilEOF,
    Varint,
    encode_proxy_header,
    parse_proxy_header,
    recipes,
    speedups_active,
)
from .loops import loop_factory, loop_name, new_event_loop, run
from .options import Options
from .workers import Worker, WorkerStartError, run_workers

# Which distribution this ``aiomsg`` is: PyPI's "aiomsg" is another project with the same
# import name, and the ``aiomsg`` command checks this mark before it runs (_aiomsg_framing.py).
__distribution__ = "aiomsg-framing"

try:  # the version is written once, in pyproject.toml
    __version__ = _metadata.version(__distribution__)
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "DEFAULT_MAX_SIZE",
    "AiomsgError",
    "AsciiLengthPrefixed",
    "BusyError",
    "CloseReason",
    "Connection",
    "ConnectionClosed",
    "ConnectionTimeout",
    "CountedFraming",
    "Decoder",
    "Delimited",
    "FixedLength",
    "FramedStream",
    "Framing",
    "FramingError",
    "HeartbeatTimeout",
    "IdleTimeout",
    "IncompleteMessageError",
    "LengthField",
    "LengthPrefixed",
    "Lines",
    "MessageProtocol",
    "MessageTimeout",
    "MessageTooLarge",
    "Netstring",
    "Opening",
    "Options",
    "ProxyAttribute",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyProtocolError",
    "RequestProtocol",
    "Server",
    "TypePrefixed",
    "UnixSocketInUseError",
    "UntilEOF",
    "Varint",
    "Worker",
    "WorkerStartError",
    "broadcast",
    "connect",
    "connect_forever",
    "connect_framed",
    "connect_framed_unix",
    "connect_unix",
    "encode_proxy_header",
    "limits",
    "loop_factory",
    "loop_name",
    "new_event_loop",
    "parse_proxy_header",
    "recipes",
    "request",
    "request_unix",
    "run",
    "run_workers",
    "serve",
    "serve_framed",
    "serve_framed_unix",
    "serve_protocol",
    "serve_protocol_unix",
    "serve_requests",
    "serve_requests_unix",
    "serve_unix",
    "speedups_active",
]

if _TYPE_CHECKING:  # the deprecated name below, for type checkers
    EndOfStream = UntilEOF


def __getattr__(name: str) -> object:
    # An old name, kept for one release: each use warns and gives the new object.
    if name == "EndOfStream":
        _warnings.warn(
            "aiomsg.EndOfStream is deprecated; use aiomsg.UntilEOF (the old name goes in the "
            "next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return UntilEOF
    raise AttributeError(f"module 'aiomsg' has no attribute {name!r}")
