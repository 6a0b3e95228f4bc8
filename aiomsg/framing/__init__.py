"""Sans-I/O framing codecs: one class per message-boundary strategy.

Nothing here touches a socket or an event loop: a :class:`Framing` turns a
message into wire bytes, and its :class:`Decoder` turns received bytes back into
messages, keeping the leftover between calls. Every I/O front of aiomsg is a
thin adapter around these, through the decoder's driving API (``feed``,
``feed_eof``, ``get_buffer``/``buffer_updated``); see ``docs/framing.md``. The PROXY
protocol's preamble, read before the framing, is here too (``proxy_protocol.py``).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from . import recipes
from ._accelerated import speedups_active
from ._contract import DEFAULT_MAX_SIZE, Buffer, Decoder, Framing
from ._header import CountedFraming
from .ascii_length import AsciiLengthPrefixed
from .delimited import Delimited, Lines
from .fixed_length import FixedLength
from .length_field import LENGTH_FIELD_SPEC_HELP, LengthField, parse_length_field_spec
from .length_prefixed import LengthPrefixed
from .netstring import Netstring
from .proxy_protocol import (
    ProxyHeader,
    ProxyHeaderParser,
    ProxyProtocolError,
    ProxySSL,
    ProxyVersion,
    crc32c,
    encode_proxy_header,
    parse_proxy_header,
)
from .spec import SPEC_HELP, parse_framing
from .switch import switch_decoder
from .type_prefixed import TypePrefixed
from .until_eof import UntilEOF
from .varint import Varint, encode_varint

__all__ = [
    "DEFAULT_MAX_SIZE",
    "LENGTH_FIELD_SPEC_HELP",
    "SPEC_HELP",
    "AsciiLengthPrefixed",
    "Buffer",
    "CountedFraming",
    "Decoder",
    "Delimited",
    "FixedLength",
    "Framing",
    "LengthField",
    "LengthPrefixed",
    "Lines",
    "Netstring",
    "ProxyHeader",
    "ProxyHeaderParser",
    "ProxyProtocolError",
    "ProxySSL",
    "ProxyVersion",
    "TypePrefixed",
    "UntilEOF",
    "Varint",
    "crc32c",
    "encode_proxy_header",
    "encode_varint",
    "parse_framing",
    "parse_length_field_spec",
    "parse_proxy_header",
    "recipes",
    "speedups_active",
    "switch_decoder",
]

if TYPE_CHECKING:  # the deprecated names below, for type checkers
    EndOfStream = UntilEOF
    HeaderFraming = CountedFraming

# Old names, kept for one release: each use warns and gives the new object.
DEPRECATED_NAMES: dict[str, tuple[str, object]] = {
    "EndOfStream": ("UntilEOF", UntilEOF),
    "HeaderFraming": ("CountedFraming", CountedFraming),
}


def __getattr__(name: str) -> object:
    if name in DEPRECATED_NAMES:
        new_name, value = DEPRECATED_NAMES[name]
        warnings.warn(
            f"aiomsg.framing.{name} is deprecated; use {new_name}"
            " (the old name goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
