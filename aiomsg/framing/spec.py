"""Framings named by short text specs for command lines: ``length:4``, ``lines``, ``eos``..."""

from __future__ import annotations

import codecs

from ._contract import Framing
from .ascii_length import AsciiLengthPrefixed
from .delimited import Delimited, Lines
from .fixed_length import FixedLength
from .length_prefixed import LengthPrefixed
from .netstring import Netstring
from .until_eof import UntilEOF
from .varint import Varint

__all__ = ["SPEC_HELP", "parse_framing"]

SPEC_HELP = (
    "lines | delimited:TEXT (escapes allowed, e.g. '\\0' or '\\r\\n') | "
    "length:WIDTH[:little] (WIDTH 1, 2, 4, 8) | ascii:DIGITS | fixed:SIZE | "
    "netstring | varint | eos"
)


def parse_framing(spec: str, *, max_size: int | None = None) -> Framing:
    """Return the framing ``spec`` names (see ``SPEC_HELP``).

    Raises:
        ValueError: ``spec`` names no framing, or its parameters are invalid.
    """
    name, _, rest = spec.strip().partition(":")
    args = rest.split(":") if rest else []
    kw: dict[str, int] = {} if max_size is None else {"max_size": max_size}
    try:
        match name.lower(), args:
            case "lines", []:
                return Lines(**kw)  # type: ignore[arg-type]
            case "delimited", [text]:
                return Delimited(codecs.escape_decode(text.encode())[0], **kw)
            case "length", [width]:
                return LengthPrefixed(int(width), **kw)  # type: ignore[arg-type]
            case "length", [width, order]:
                return LengthPrefixed(int(width), order, **kw)  # type: ignore[arg-type]
            case "ascii", [digits]:
                return AsciiLengthPrefixed(int(digits), **kw)
            case "fixed", [size]:
                return FixedLength(int(size), **kw)
            case "netstring", []:
                return Netstring(**kw)
            case "varint", []:
                return Varint(**kw)
            case "eos", []:
                return UntilEOF(**kw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad framing spec {spec!r}: {exc}") from exc
    raise ValueError(f"unknown framing spec {spec!r}; use {SPEC_HELP}")
