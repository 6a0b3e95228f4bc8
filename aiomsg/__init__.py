"""aiomsg: message framing for asyncio, uvloop, anyio and trio.

TCP moves bytes, not messages. aiomsg puts the boundaries back: pick a framing
(how messages are laid out on the stream) and use it through the I/O front you
like. See the README and ``docs/`` for a tour.
"""

from .errors import (
    AiomsgError,
    ConnectionClosed,
    FramingError,
    IncompleteMessageError,
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

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_SIZE",
    "AiomsgError",
    "AsciiLengthPrefixed",
    "ConnectionClosed",
    "Decoder",
    "Delimited",
    "EndOfStream",
    "FixedLength",
    "Framing",
    "FramingError",
    "IncompleteMessageError",
    "LengthPrefixed",
    "Lines",
    "MessageTooLarge",
    "Netstring",
    "TypePrefixed",
    "Varint",
]
