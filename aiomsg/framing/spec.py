"""Framings named by short text specs for command lines: ``length:4``, ``lines``, ``eos``...

Every spec that names no framing raises :class:`SpecError`, whose ``reason`` says
which part is wrong and ends with the form expected, e.g. ``delimited needs TEXT
(delimited:TEXT)``; ``str()`` of it quotes the spec too.
"""

from __future__ import annotations

import codecs

from ._contract import Framing
from ._header import CountedFraming
from .ascii_length import AsciiLengthPrefixed
from .delimited import Delimited, Lines
from .fixed_length import FixedLength
from .length_field import LENGTH_FIELD_SPEC_HELP, parse_length_field_spec
from .length_prefixed import LengthPrefixed
from .netstring import Netstring
from .type_prefixed import TypePrefixed
from .until_eof import UntilEOF
from .varint import Varint

__all__ = ["SPEC_HELP", "SpecError", "parse_framing"]

SPEC_HELP = (
    "lines | delimited:TEXT (escapes allowed, e.g. '\\0' or '\\r\\n') | "
    "length:WIDTH[:little] (WIDTH 1, 2, 4, 8) | ascii:DIGITS | fixed:SIZE | "
    "netstring | varint | eos (until end of stream) | "
    "typed:TYPE=BODY,... (a type byte, then a body of BODY bytes or framed by BODY, "
    "one of length:WIDTH[:little], ascii:DIGITS, fixed:SIZE, netstring, varint; "
    "e.g. typed:1=8,2=length:2) | " + LENGTH_FIELD_SPEC_HELP
)

#: Each spec's form, shown at the end of every error about it.
FORMS = {
    "lines": "lines",
    "delimited": "delimited:TEXT",
    "length": "length:WIDTH[:little]",
    "ascii": "ascii:DIGITS",
    "fixed": "fixed:SIZE",
    "netstring": "netstring",
    "varint": "varint",
    "eos": "eos",
    "typed": "typed:TYPE=BODY,...",
    "field": "field:WIDTH[:little][,offset=N][,adjust=N][,strip=N|field][,trailer=HEX]",
}
_ALL = ", ".join(FORMS.values())
_TYPED_FORM = f"{FORMS['typed']}, e.g. typed:1=8,2=length:2"
_BODY_FORM = "BODY: a size, or length:WIDTH[:little], ascii:DIGITS, fixed:SIZE, netstring, varint"
_MAX_DIGITS = 20  # AsciiLengthPrefixed's limit: a 64-bit length


class SpecError(ValueError):
    """A framing spec that names no framing.

    ``spec`` is the text given; ``reason`` says which part is wrong and what is
    expected, ending with the spec's form in parentheses. A command line shows
    ``reason`` after the option's name; ``str()`` quotes the spec.
    """

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__(f"bad framing spec {spec!r}: {reason}")
        self.spec = spec
        self.reason = reason


class _Bad(Exception):
    """Inside the parser: a reason, before the spec is attached."""


def parse_framing(spec: str, *, max_size: int | None = None) -> Framing:
    """Return the framing ``spec`` names (see ``SPEC_HELP``); names are case-insensitive.

    ``max_size`` is passed to the framing (its default otherwise).

    Raises:
        SpecError: (a ``ValueError``) ``spec`` names no framing, or its parameters
            are invalid; ``reason`` says which part and what is expected.
    """
    text = spec.strip()
    name, colon, rest = text.partition(":")
    kw: dict[str, int] = {} if max_size is None else {"max_size": max_size}
    try:
        if name.lower() == "typed":
            return _typed(rest, kw)
        if name.lower() == "field":
            return _field(text, kw)
        return _simple(name.lower(), rest if colon else None, kw)
    except _Bad as exc:
        raise SpecError(spec, str(exc)) from None


def _field(text: str, kw: dict[str, int]) -> Framing:
    """A :class:`~aiomsg.LengthField` spec, in this module's one wording for errors."""
    try:
        return parse_length_field_spec("field" + text[len("field") :], **kw)
    except ValueError as exc:
        words = str(exc)
        quoted = f"bad length-field spec {text.strip()!r}"
        if words.startswith(quoted + "; use "):  # text of another shape: it named the grammar
            words = "field needs WIDTH, then options after commas"
        elif words.startswith(quoted + ": "):  # drop its own quoting of the spec: ours adds it
            words = words[len(quoted) + 2 :]
        raise _Bad(f"{words} ({FORMS['field']})") from None


def _simple(name: str, rest: str | None, kw: dict[str, int]) -> Framing:
    """The framing ``name[:rest]`` names (``rest`` None: no colon at all)."""
    form = FORMS.get(name)
    if form is None:
        what = f"unknown framing {name!r}" if name else "no framing named"
        raise _Bad(f"{what}; expected one of {_ALL}")
    try:
        if name == "delimited":
            return Delimited(_delimiter(rest, form), **kw)
        args = rest.split(":") if rest is not None else []
        if name == "length":
            width, order = _params(name, args, ["WIDTH"], ["ORDER"], form)
            return LengthPrefixed(_width(width, form), _order(order, form), **kw)  # type: ignore[arg-type]
        if name == "ascii":
            (digits,) = _params(name, args, ["DIGITS"], [], form)
            return AsciiLengthPrefixed(_number(digits, "DIGITS", 1, _MAX_DIGITS, form), **kw)
        if name == "fixed":
            (size,) = _params(name, args, ["SIZE"], [], form)
            return FixedLength(_number(size, "SIZE", 1, None, form), **kw)
        _params(name, args, [], [], form)
        plain: dict[str, type[Framing]] = {
            "lines": Lines,
            "netstring": Netstring,
            "varint": Varint,
            "eos": UntilEOF,
        }
        return plain[name](**kw)
    except _Bad:
        raise
    except (TypeError, ValueError) as exc:  # the framing refused (e.g. SIZE over max_size)
        raise _Bad(f"{exc} ({form})") from None


def _params(
    name: str, args: list[str], needed: list[str], optional: list[str], form: str
) -> list[str | None]:
    """``args`` checked against the ``needed`` then ``optional`` parts; a missing one is None."""
    for i, part in enumerate(needed):
        if i >= len(args) or not args[i]:
            raise _Bad(f"{name} needs {part} ({form})")
    if len(args) > len(needed) + len(optional):
        if not needed and not optional:
            raise _Bad(f"{name} takes no parameter ({form})")
        raise _Bad(f"too many parameters for {name} ({form})")
    return [*args, *[None] * (len(needed) + len(optional) - len(args))]


def _delimiter(rest: str | None, form: str) -> bytes:
    if not rest:
        raise _Bad(f"delimited needs TEXT ({form})")
    try:
        delimiter: bytes = codecs.escape_decode(rest.encode())[0]
    except ValueError as exc:
        raise _Bad(
            f"TEXT has a bad escape: {exc} ({form}, escapes as in '\\0' or '\\r\\n')"
        ) from None
    if not delimiter:
        raise _Bad(f"TEXT {rest!r} is empty once unescaped ({form})")
    return delimiter


def _number(text: str | None, part: str, lowest: int | None, highest: int | None, form: str) -> int:
    """``text`` as an int (``0x`` for hex) in ``lowest..highest`` (None: no bound)."""
    text = text or ""
    try:
        value = int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise _Bad(f"{part} must be a whole number, not {text!r} ({form})") from None
    if lowest is None:
        return value
    if value < lowest or (highest is not None and value > highest):
        span = f"{lowest}-{highest}" if highest is not None else f"at least {lowest}"
        raise _Bad(f"{part} must be {span}, not {value} ({form})")
    return value


def _width(text: str | None, form: str) -> int:
    width = _number(text, "WIDTH", None, None, form)
    if width not in (1, 2, 4, 8):
        raise _Bad(f"WIDTH must be 1, 2, 4 or 8, not {width} ({form})")
    return width


def _order(text: str | None, form: str) -> str:
    order = "big" if text is None else text.lower()
    if order not in ("big", "little"):
        raise _Bad(f"the byte order must be big or little, not {text!r} ({form})")
    return order


def _typed(rest: str, kw: dict[str, int]) -> TypePrefixed:
    if not rest.strip():
        raise _Bad(f"typed needs at least one TYPE=BODY entry ({_TYPED_FORM})")
    table: dict[int, int | CountedFraming] = {}
    for entry in rest.split(","):
        key, sep, body = (part.strip() for part in entry.partition("="))
        if not sep or not key or not body:
            raise _Bad(f"entry {entry.strip()!r} is not TYPE=BODY ({_TYPED_FORM})")
        kind = _number(key, "TYPE", 0, 255, _TYPED_FORM)
        if kind in table:
            raise _Bad(f"type {kind} is given twice ({_TYPED_FORM})")
        table[kind] = _body(kind, body, kw)
    try:
        return TypePrefixed(table, **kw)
    except (TypeError, ValueError) as exc:  # e.g. a size over max_size
        raise _Bad(f"{exc} ({_TYPED_FORM})") from None


def _body(kind: int, body: str, kw: dict[str, int]) -> int | CountedFraming:
    """A type's BODY: a fixed size, or a framing that announces its length."""
    if body.isdigit():
        return int(body)
    name, colon, args = body.partition(":")
    name = name.lower()
    if name == "typed":
        raise _Bad(f"type {kind}: a typed body cannot be typed again ({_TYPED_FORM})")
    if name not in FORMS:
        raise _Bad(f"type {kind}: unknown body {body!r} ({_BODY_FORM})")
    try:
        nested = _simple(name, args if colon else None, kw)
    except _Bad as exc:
        raise _Bad(f"type {kind}: {exc}") from None
    if not isinstance(nested, CountedFraming):
        raise _Bad(f"type {kind}: {body!r} does not announce its length ({_BODY_FORM})")
    return nested
