"""Framings named by short text specs for command lines: ``length:4``, ``lines``, ``eos``..."""

from __future__ import annotations

import codecs

from ._contract import Framing
from ._header import CountedFraming
from .ascii_length import AsciiLengthPrefixed
from .delimited import Delimited, Lines
from .fixed_length import FixedLength
from .length_prefixed import LengthPrefixed
from .netstring import Netstring
from .type_prefixed import TypePrefixed
from .until_eof import UntilEOF
from .varint import Varint

__all__ = ["SPEC_HELP", "parse_framing"]

SPEC_HELP = (
    "lines | delimited:TEXT (escapes allowed, e.g. '\\0' or '\\r\\n') | "
    "length:WIDTH[:little] (WIDTH 1, 2, 4, 8) | ascii:DIGITS | fixed:SIZE | "
    "netstring | varint | eos (until end of stream) | "
    "typed:TYPE=BODY,... (a type byte, then a body of BODY bytes or framed by BODY, "
    "one of length:WIDTH[:little], ascii:DIGITS, fixed:SIZE, netstring, varint; "
    "e.g. typed:1=8,2=length:2)"
)

_NESTED = "length:WIDTH[:little], ascii:DIGITS, fixed:SIZE, netstring or varint"


class _SpecError(ValueError):
    """A spec's parameter is wrong; the message says which and why."""


def _number(text: str, what: str) -> int:
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise _SpecError(f"{what} must be a whole number, not {text!r}") from None


def parse_framing(spec: str, *, max_size: int | None = None) -> Framing:
    """Return the framing ``spec`` names (see ``SPEC_HELP``).

    Raises:
        ValueError: ``spec`` names no framing, or its parameters are invalid; the
            message quotes the spec and says what is wrong.
    """
    spec = spec.strip()
    name, _, rest = spec.partition(":")
    kw: dict[str, int] = {} if max_size is None else {"max_size": max_size}
    try:
        if name.lower() == "typed":
            return _typed(rest, kw)
        framing = _simple(name.lower(), rest.split(":") if rest else [], kw)
    except _SpecError as exc:
        raise ValueError(f"bad framing spec {spec!r}: {exc}") from None
    except (TypeError, ValueError) as exc:  # refused by the framing's own constructor
        raise ValueError(f"bad framing spec {spec!r}: {exc}") from exc
    if framing is None:
        raise ValueError(f"unknown framing spec {spec!r}; use {SPEC_HELP}")
    return framing


def _simple(name: str, args: list[str], kw: dict[str, int]) -> Framing | None:
    match name, args:
        case "lines", []:
            return Lines(**kw)  # type: ignore[arg-type]
        case "delimited", [text]:
            if not text:
                raise _SpecError("the delimiter cannot be empty")
            return Delimited(codecs.escape_decode(text.encode())[0], **kw)
        case "length", [width] | [width, _]:
            size = _number(width, "WIDTH")
            if size not in (1, 2, 4, 8):
                raise _SpecError(f"WIDTH must be 1, 2, 4 or 8, not {size}")
            order = args[1].lower() if len(args) == 2 else "big"
            if order not in ("big", "little"):
                raise _SpecError(f"the byte order must be 'big' or 'little', not {args[1]!r}")
            return LengthPrefixed(size, order, **kw)  # type: ignore[arg-type]
        case "ascii", [digits]:
            return AsciiLengthPrefixed(_number(digits, "DIGITS"), **kw)
        case "fixed", [size]:
            return FixedLength(_number(size, "SIZE"), **kw)
        case "netstring", []:
            return Netstring(**kw)
        case "varint", []:
            return Varint(**kw)
        case "eos", []:
            return UntilEOF(**kw)
    known = ("lines", "delimited", "length", "ascii", "fixed", "netstring", "varint", "eos")
    if name in known:
        raise _SpecError(f"wrong parameters for {name!r}; use {SPEC_HELP}")
    return None


def _typed(rest: str, kw: dict[str, int]) -> TypePrefixed:
    if not rest:
        raise _SpecError("typed: needs at least one TYPE=BODY entry, e.g. typed:1=8,2=length:2")
    table: dict[int, int | CountedFraming] = {}
    for entry in rest.split(","):
        key, sep, body = entry.strip().partition("=")
        if not sep or not key.strip() or not body.strip():
            raise _SpecError(f"entry {entry!r} is not TYPE=SIZE or TYPE=SPEC")
        kind = _number(key.strip(), "TYPE")
        if not 0 <= kind <= 255:
            raise _SpecError(f"TYPE must be a byte value 0-255, not {kind}")
        if kind in table:
            raise _SpecError(f"type {kind} is given twice")
        body = body.strip()
        if body.isdigit():
            table[kind] = int(body)
            continue
        name, _, args = body.partition(":")
        if name.lower() == "typed":
            raise _SpecError(f"type {kind}: a typed body cannot be typed again")
        nested = _simple(name.lower(), args.split(":") if args else [], kw)
        if nested is None:
            raise _SpecError(f"type {kind}: unknown body spec {body!r}; use a size or {_NESTED}")
        if not isinstance(nested, CountedFraming):
            raise _SpecError(
                f"type {kind}: {body!r} does not announce its length; use a size or {_NESTED}"
            )
        table[kind] = nested
    return TypePrefixed(table, **kw)
