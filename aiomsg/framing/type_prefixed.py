"""Type-prefixed messages: a type byte, and the type decides how long the body is."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..errors import FramingError
from ._accelerated import speedups
from ._contract import DEFAULT_MAX_SIZE, Buffer, _c_scanner
from ._header import CountedDecoder, CountedFraming

__all__ = ["TypePrefixed"]


class TypePrefixed(CountedFraming):
    """Each message starts with a type byte; the type fixes the length of the body.

    ``table`` maps each type byte (0-255) to either an ``int`` (the body has
    exactly that many bytes) or a nested :class:`~aiomsg.framing.CountedFraming`
    such as ``LengthPrefixed(2)`` (the body is framed by it):

    >>> from aiomsg import LengthPrefixed, TypePrefixed
    >>> framing = TypePrefixed({0x01: 8, 0x02: LengthPrefixed(2)})
    >>> framing.encode(b"\\x01" + b"12345678").hex(" ")
    '01 31 32 33 34 35 36 37 38'
    >>> framing.encode(b"\\x02hi").hex(" ")
    '02 00 02 68 69'
    >>> framing.decoder().feed(b"\\x02\\x00\\x02hi")  # the nested header is stripped
    [b'\\x02hi']

    A message, both for ``encode()`` and as decoded, is the type byte followed by
    the body (without any nested header): ``message[0]`` is its type. An unknown
    type byte raises :class:`~aiomsg.FramingError`; a body over ``max_size``
    (or over its nested framing's ``max_size``) raises
    :class:`~aiomsg.MessageTooLarge` as soon as its header is read.
    """

    __slots__ = ("_specs", "table")

    #: Type byte -> fixed body size or nested framing (read-only).
    table: Mapping[int, int | CountedFraming]
    _specs: tuple[int | CountedFraming | None, ...]

    def __init__(
        self, table: Mapping[int, int | CountedFraming], *, max_size: int = DEFAULT_MAX_SIZE
    ) -> None:
        super().__init__(max_size)
        specs: list[int | CountedFraming | None] = [None] * 256
        for kind, spec in table.items():
            if not isinstance(kind, int) or not 0 <= kind <= 255:
                raise ValueError(f"type must be a byte value 0-255, not {kind!r}")
            if isinstance(spec, int) and not isinstance(spec, bool):
                if not 0 <= spec <= max_size:
                    raise ValueError(f"fixed size {spec} of type {kind} is not in 0..max_size")
            elif not isinstance(spec, CountedFraming) or isinstance(spec, TypePrefixed):
                raise TypeError(
                    f"type {kind}: expected a size or a length-announcing framing, not {spec!r}"
                )
            specs[kind] = spec
        if not table:
            raise ValueError("table must have at least one type")
        # A read-only view: the framing is immutable, its table included.
        self._set(table=MappingProxyType(dict(table)), _specs=tuple(specs))

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        # Not used by the decoder (which must keep the type byte); defined so the
        # class is a complete CountedFraming.
        raise NotImplementedError  # pragma: no cover

    def _key(self) -> tuple[object, ...]:
        return (tuple(sorted(self.table.items())), self.max_size)

    def decoder(self, *, pure_python: bool = False) -> CountedDecoder:
        return _TypePrefixedDecoder(self, pure_python=pure_python)

    def _c_scanner_args(self) -> tuple[object, ...]:
        assert speedups is not None
        table = tuple(
            spec if spec is None or isinstance(spec, int) else _c_scanner(spec)
            for spec in self._specs
        )
        return (speedups.K_TYPED, self.max_size, 0, False, None, table)

    def _reencodes(self) -> bool:
        nested = (spec for spec in self._specs if spec is not None and not isinstance(spec, int))
        return all(spec._reencodes() for spec in nested)

    def encode(self, message: Buffer) -> bytes:
        return b"".join(self.encode_parts(message))

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        if not message:
            raise FramingError("a TypePrefixed message needs at least its type byte")
        kind = message[0]
        spec = self._specs[kind]
        body = message[1:]
        self._check_size(body)
        if spec is None:
            raise FramingError(f"unknown message type {kind}")
        if isinstance(spec, int):
            if len(body) != spec:
                raise FramingError(f"type {kind} carries exactly {spec} bytes, not {len(body)}")
            return [message]
        return [bytes((kind,)), *spec.encode_parts(body)]

    def __repr__(self) -> str:
        return f"TypePrefixed({dict(self.table)!r}, max_size={self.max_size})"


class _TypePrefixedDecoder(CountedDecoder):
    """The header decoder, with the type byte's rule as its slow path.

    A message keeps its type byte and loses its nested header, so it is not a
    slice of the wire: this loop is the one place that builds it in Python
    (the C scanner does the same for well-formed runs).
    """

    __slots__ = ()

    def _scan(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        framing: TypePrefixed = self._framing  # type: ignore[assignment]
        specs = framing._specs
        max_size = framing.max_size
        end = len(buf)
        append = out.append
        while pos < end:
            kind = buf[pos]
            spec = specs[kind]
            if spec is None:
                raise FramingError(f"unknown message type {kind}")
            if isinstance(spec, int):
                stop = pos + 1 + spec
                if stop > end:
                    self._body.start(b"", memoryview(buf)[pos:], spec + 1)
                    return end
                append(buf[pos:stop])
                pos = stop
                continue
            header = spec._header_at(buf, pos + 1) if pos + 1 < end else None
            if header is None:
                break
            start, size = header
            if size > max_size:
                raise framing._too_large(size)
            trailer = spec._trailer
            stop = start + size
            if stop + len(trailer) > end:
                # The message keeps the type byte (keep=1) and loses the nested header,
                # which still counts as held: partial() and take_leftover() give it back.
                self._body.start(buf[pos:start], b"", size + 1 + len(trailer), trailer, keep=1)
                self._body.fill(buf, start)
                return end
            if trailer and buf[stop : stop + len(trailer)] != trailer:
                raise FramingError(f"message is not followed by {trailer!r}")
            append(buf[pos : pos + 1] + buf[start:stop])
            pos = stop + len(trailer)
        return pos
