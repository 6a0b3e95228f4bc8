"""Sans-I/O framing codecs: one class per message-boundary strategy.

Nothing here touches a socket or an event loop: a :class:`Framing` turns a
message into wire bytes, and its :class:`Decoder` turns received bytes back into
messages, keeping the leftover between calls. Every I/O front of aiomsg is a
thin adapter around these.
"""

from ._accelerated import speedups_active
from ._base import DEFAULT_MAX_SIZE, Buffer, Decoder, Framing, HeaderFraming
from .ascii_length import AsciiLengthPrefixed
from .delimited import Delimited, Lines
from .end_of_stream import EndOfStream
from .fixed_length import FixedLength
from .length_prefixed import LengthPrefixed
from .netstring import Netstring
from .spec import SPEC_HELP, parse_framing
from .type_prefixed import TypePrefixed
from .varint import Varint, encode_varint

__all__ = [
    "DEFAULT_MAX_SIZE",
    "SPEC_HELP",
    "AsciiLengthPrefixed",
    "Buffer",
    "Decoder",
    "Delimited",
    "EndOfStream",
    "FixedLength",
    "Framing",
    "HeaderFraming",
    "LengthPrefixed",
    "Lines",
    "Netstring",
    "TypePrefixed",
    "Varint",
    "encode_varint",
    "parse_framing",
    "speedups_active",
]
