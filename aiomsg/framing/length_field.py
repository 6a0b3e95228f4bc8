"""A length field anywhere in a header: Netty's LengthFieldBasedFrameDecoder, and more.

Most binary protocols lay a frame out as ``[prefix][length field][more header]
[body][trailer]``. :class:`LengthField` describes that shape with Netty's
parameters (so a Netty or tokio configuration ports one to one, see
``docs/protocols.md``), and adds what neither has: a varint field after a
prefix (MQTT) and a checked trailer (AMQP's ``0xCE``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from ..errors import FramingError
from ._accelerated import speedups
from ._contract import DEFAULT_MAX_SIZE, Buffer
from ._header import CountedDecoder, CountedFraming

__all__ = ["LENGTH_FIELD_SPEC_HELP", "LengthField", "parse_length_field_spec"]

_WIDTHS = (1, 2, 3, 4, 8)
# Parameters past these bounds run in pure Python only: the C scanner does
# its arithmetic in 64 bits with room to spare.
_C_OFFSET_LIMIT = 1 << 30
_C_ADJUST_LIMIT = 1 << 40


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class LengthField(CountedFraming):
    """A frame whose length is a field at ``length_offset`` bytes into its header.

    The frame, on the wire::

        [length_offset bytes][field: length_width bytes][value + length_adjustment bytes][trailer]

    The parameters are Netty's (``LengthFieldBasedFrameDecoder``) in snake case:

    * ``length_width``: the field's size, 1, 2, 3, 4 or 8 bytes (an unsigned
      integer in ``byteorder``), or ``"varint"``: unsigned LEB128, 7 bits a
      byte, low group first (MQTT's remaining length, protobuf's varint).
    * ``length_offset``: bytes before the field (a type byte, a channel...).
    * ``length_adjustment`` (signed): added to the field's value to get the
      number of bytes that follow the field. ``-4`` when a 4-byte field counts
      itself (PostgreSQL); ``+1`` when a byte after the field is not counted
      (MySQL's sequence number). The frame is ``length_offset + width + value
      + length_adjustment`` bytes, then the trailer.
    * ``strip``: what is cut off the front of each frame before it is
      delivered. ``None`` (the default): the whole header, prefix and field,
      so ``LengthField(4)`` is ``LengthPrefixed(4)`` on the wire and in its
      messages. An int: that many bytes (Netty's ``initialBytesToStrip``;
      ``0`` delivers whole frames). ``"field"``: only the length field; the
      prefix stays at the start of the message, followed by what comes after
      the field (PostgreSQL's ``b"Z" + b"I"``, MQTT's fixed-header byte and
      its payload).
    * ``trailer``: bytes that end every frame (AMQP's ``b"\\xce"``), checked
      and removed; a frame that does not end with them is a
      :class:`~aiomsg.FramingError`.

    ``max_size`` counts the *delivered message* (after ``strip``, without the
    trailer), as it does for every aiomsg framing: it bounds what the
    application is handed and what the decoder holds (plus at most a header).
    Netty's ``maxFrameLength`` counts the whole frame and tokio's
    ``max_frame_length`` the raw field value, before adjustment; both depend
    on the header's shape, this does not, and ``LengthField(4)`` accepts the
    same messages as ``LengthPrefixed(4)``. It is lowered to the largest
    message the field can announce (255 bytes for a bare 1-byte field). A
    varint field may have at most as many bytes as the shortest encoding of
    the largest value ``max_size`` allows (4 bytes up to 256 MiB, MQTT's
    limit); a longer one is a :class:`~aiomsg.FramingError`. Non-minimal
    varints within that length are accepted.

    Decoding raises, as soon as the header is read and before any body byte
    is stored: :class:`~aiomsg.MessageTooLarge` for a message over
    ``max_size``; :class:`~aiomsg.FramingError` for a frame shorter than its
    own header (value + adjustment < 0: Netty's ``CorruptedFrameException``)
    or than ``strip``.

    ``encode(message)`` builds the frame that decodes to ``message``, so
    ``decoder.feed(framing.encode(m)) == [m]``, when ``strip`` removed
    nothing it cannot rebuild: with ``strip=None`` or ``strip=length_offset +
    width`` and no prefix (it writes the field); with ``strip="field"`` (it
    puts the field after the message's first ``length_offset`` bytes); with
    ``strip=0`` (the message is a whole frame: its field is checked, not
    written). Any other ``strip`` threw bytes away: ``encode`` raises
    :class:`~aiomsg.FramingError` saying so. It also raises
    :class:`~aiomsg.FramingError` for a message too short for the adjustment
    and :class:`~aiomsg.MessageTooLarge` for one over ``max_size``.

    Decoding runs in the C scanner when aiomsg's speedups are built; the
    pure-Python path behaves the same.
    """

    __slots__ = (
        "_keep",
        "_little",
        "_strip_at",
        "_trailer",
        "_varint_bytes",
        "byteorder",
        "length_adjustment",
        "length_offset",
        "length_width",
        "strip",
        "trailer",
    )

    #: The field's size in bytes, or ``"varint"``.
    length_width: int | str
    #: Bytes before the length field.
    length_offset: int
    #: Added to the field's value to get the bytes that follow the field.
    length_adjustment: int
    #: Bytes cut off each frame's front: ``None`` (the header), an int, or ``"field"``.
    strip: int | str | None
    #: ``"big"`` or ``"little"`` (fixed widths only).
    byteorder: str
    #: Bytes that end every frame, checked and removed.
    trailer: bytes
    _keep: int
    _little: bool
    _strip_at: int | None
    _varint_bytes: int

    def __init__(
        self,
        length_width: Literal[1, 2, 3, 4, 8, "varint"] = 4,
        *,
        length_offset: int = 0,
        length_adjustment: int = 0,
        strip: int | Literal["field"] | None = None,
        byteorder: Literal["big", "little"] = "big",
        max_size: int = DEFAULT_MAX_SIZE,
        trailer: bytes = b"",
    ) -> None:
        if isinstance(length_width, bool) or length_width not in (*_WIDTHS, "varint"):
            raise ValueError(
                f"length_width must be 1, 2, 3, 4, 8 or 'varint', not {length_width!r}"
            )
        if not _is_int(length_offset) or length_offset < 0:
            raise ValueError(f"length_offset must be an int >= 0, not {length_offset!r}")
        if not _is_int(length_adjustment):
            raise ValueError(f"length_adjustment must be an int, not {length_adjustment!r}")
        if byteorder not in ("big", "little"):
            raise ValueError(f"byteorder must be 'big' or 'little', not {byteorder!r}")
        if not isinstance(trailer, bytes):
            raise ValueError(f"trailer must be bytes, not {trailer!r}")
        varint = length_width == "varint"
        if strip == "field":
            keep, strip_at = length_offset, None
        elif strip is None:
            keep, strip_at = 0, None
        elif _is_int(strip) and strip >= 0:
            assert isinstance(strip, int)
            keep, strip_at = 0, strip
            if varint and strip > length_offset:
                raise ValueError(
                    f"strip={strip} would cut into a varint length field at offset"
                    f" {length_offset}: a varint's size varies, so strip it whole"
                    " (strip=None or 'field') or not at all (strip <= length_offset)"
                )
        else:
            raise ValueError(f"strip must be None, 'field' or an int >= 0, not {strip!r}")
        super().__init__(max_size)
        # What a message has besides value + adjustment, with a 1-byte field
        # (a varint's smallest): the largest value follows from it.
        if strip_at is None:
            extra = keep
        else:
            extra = length_offset + (1 if varint else int(length_width)) - strip_at
        if varint:
            largest_value = max(0, self.max_size - length_adjustment - extra)
            varint_bytes = len(_varint(largest_value))
            limit = self.max_size
        else:
            assert isinstance(length_width, int)
            varint_bytes = 0
            limit = min(self.max_size, (1 << (8 * length_width)) - 1 + length_adjustment + extra)
            if limit < 0:
                raise ValueError(
                    f"no frame fits: a {length_width}-byte field holds at most"
                    f" {(1 << (8 * length_width)) - 1}, and with length_adjustment="
                    f"{length_adjustment} and strip={strip!r} every message would be"
                    " shorter than nothing"
                )
        self._set(
            max_size=limit,
            length_width=length_width,
            length_offset=length_offset,
            length_adjustment=length_adjustment,
            strip=strip,
            byteorder=byteorder,
            trailer=trailer,
            _trailer=trailer,
            _keep=keep,
            _little=byteorder == "little",
            _strip_at=strip_at,
            _varint_bytes=varint_bytes,
        )

    # --- decoding ------------------------------------------------------------------

    def _header_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        if self._keep:  # only TypePrefixed calls this on such a framing
            raise TypeError(
                "a LengthField with strip='field' keeps the bytes before its field, which"
                " a TypePrefixed body cannot: nest one with another strip"
            )
        return self._frame_at(buf, pos)

    def _frame_at(self, buf: bytes, pos: int) -> tuple[int, int] | None:
        """The one rule: parse the header at ``buf[pos]``; ``(body_start, body_length)``.

        The body is the message's contiguous part (after the kept prefix, for
        ``strip="field"``); ``None`` while the header, or the bytes ``strip``
        removes, are still to come.
        """
        end = len(buf)
        at = pos + self.length_offset
        width = self.length_width
        keep = self._keep
        adjustment = self.length_adjustment
        strip_at = self._strip_at
        if width == "varint":
            value = shift = 0
            i = at
            while True:
                if i >= end:
                    return None
                byte = buf[i]
                value |= (byte & 0x7F) << shift
                i += 1
                # A lower bound of the message's size: the value only grows.
                extra = keep if strip_at is None else i - pos - strip_at
                if value + adjustment + extra > self.max_size:
                    raise self._too_large(value + adjustment + extra)
                if byte < 0x80:
                    break
                if i - at >= self._varint_bytes:
                    raise FramingError(
                        f"varint length field longer than {self._varint_bytes} bytes"
                        f" (the most a length up to max_size={self.max_size} needs)"
                    )
                shift += 7
            header_end = i
        else:
            assert isinstance(width, int)
            header_end = at + width
            if header_end > end:
                return None
            value = int.from_bytes(buf[at:header_end], self.byteorder)  # type: ignore[arg-type]
        following = value + adjustment
        if following < 0:
            raise FramingError(
                f"length field says {value}: with length_adjustment={adjustment} the frame"
                f" would end {-following} bytes before its header does"
            )
        frame = header_end - pos + following  # without the trailer
        start = header_end - pos if strip_at is None else strip_at
        if start > frame:
            raise FramingError(f"frame of {frame} bytes is shorter than strip={strip_at}")
        size = frame - start
        if size + keep > self.max_size:
            raise self._too_large(size + keep)
        if pos + start > end:
            return None  # the stripped bytes past the header are still to come
        return pos + start, size

    def decoder(self, *, pure_python: bool = False) -> CountedDecoder:
        if self._keep:
            return _KeepPrefixDecoder(self, pure_python=pure_python)
        return CountedDecoder(self, pure_python=pure_python)

    def _c_scanner_args(self) -> tuple[object, ...] | None:
        if speedups is None or not hasattr(speedups, "K_FIELD"):
            return None
        strip_at = -1 if self._strip_at is None else self._strip_at
        if (
            self.length_offset > _C_OFFSET_LIMIT
            or strip_at > _C_OFFSET_LIMIT
            or abs(self.length_adjustment) > _C_ADJUST_LIMIT
        ):
            return None  # beyond what the C arithmetic is sized for: Python decodes
        width = 0 if self.length_width == "varint" else self.length_width
        layout = (self.length_offset, self.length_adjustment, strip_at, self._keep)
        return (
            speedups.K_FIELD,
            self.max_size,
            width,
            self._little,
            self.trailer,
            None,
            (*layout, min(self._varint_bytes, 10)),  # C stops at 10; Python judges more
        )

    # --- encoding ------------------------------------------------------------------

    def _field(self, value: int) -> bytes:
        if value < 0:
            raise FramingError(
                f"message too short for length_adjustment={self.length_adjustment}:"
                f" the length field would be {value}"
            )
        if self.length_width == "varint":
            return _varint(value)
        assert isinstance(self.length_width, int)
        return value.to_bytes(self.length_width, self.byteorder)  # type: ignore[arg-type]

    def encode_parts(self, message: Buffer) -> list[Buffer]:
        size = self._check_size(message)
        offset = self.length_offset
        trailer = [self.trailer] if self.trailer else []
        if self._keep:
            if size < offset:
                raise FramingError(
                    f"message of {size} bytes is shorter than its {offset}-byte prefix"
                )
            view = memoryview(message)
            head = bytes(view[:offset]) + self._field(size - offset - self.length_adjustment)
            return [head, view[offset:], *trailer]
        strip_at = self._strip_at
        width = self.length_width
        if strip_at == 0:
            self._check_frame(message, size)
            return [message, *trailer]
        if offset == 0 and (strip_at is None or strip_at == width):
            return [self._field(size - self.length_adjustment), message, *trailer]
        raise FramingError(
            f"{self!r} cannot encode: strip={self.strip!r} removes bytes of the frame that"
            " encode() cannot rebuild; use strip='field' (keeps the prefix in the message),"
            " strip=0 (messages are whole frames), or build the frame yourself"
        )

    def _check_frame(self, message: Buffer, size: int) -> None:
        # strip=0: the message is a frame without its trailer; its field must say so.
        data = bytes(message)
        try:
            header = self._frame_at(data, 0)
        except FramingError as exc:
            raise FramingError(f"message is not a valid frame: {exc}") from None
        if header is None or header[0] + header[1] != size:
            expected = "incomplete" if header is None else f"{header[0] + header[1]} bytes long"
            raise FramingError(
                f"with strip=0 a message is a whole frame, and its length field says the"
                f" frame is {expected}, not {size} bytes"
            )

    def _reencodes(self) -> bool:
        # encode() rebuilds the whole frame only where nothing it cannot know was
        # stripped; a varint field may be padded on the wire.
        rebuilt = self.strip in (0, "field") or (self.strip is None and not self.length_offset)
        return rebuilt and self.length_width != "varint"

    def encode(self, message: Buffer) -> bytes:
        return b"".join(self.encode_parts(message))

    def encode_many(self, messages: Iterable[Buffer]) -> bytes:
        return b"".join([part for m in messages for part in self.encode_parts(m)])

    # --- value semantics -------------------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        return (
            self.length_width,
            self.length_offset,
            self.length_adjustment,
            self.strip,
            self.byteorder,
            self.max_size,
            self.trailer,
        )

    def __repr__(self) -> str:
        return (
            f"LengthField({self.length_width!r}, length_offset={self.length_offset},"
            f" length_adjustment={self.length_adjustment}, strip={self.strip!r},"
            f" byteorder={self.byteorder!r}, max_size={self.max_size},"
            f" trailer={self.trailer!r})"
        )

    @classmethod
    def from_tokio(
        cls,
        *,
        length_field_offset: int = 0,
        length_field_length: Literal[1, 2, 3, 4, 8] = 4,
        length_adjustment: int = 0,
        num_skip: int | None = None,
        little_endian: bool = False,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> LengthField:
        """The framing of a tokio-util ``LengthDelimitedCodec`` builder, by its parameter names.

        tokio's ``length_adjustment`` counts from where ``num_skip`` leaves the
        frame (what it yields is ``value + length_adjustment`` bytes after the
        skipped ones), Netty's and aiomsg's from the end of the length field;
        this converts: ``aiomsg adjustment = tokio adjustment + num_skip -
        (offset + width)``. ``max_size`` is aiomsg's (the delivered message),
        not tokio's ``max_frame_length`` (the raw field value).
        """
        head = length_field_offset + length_field_length
        skip = head if num_skip is None else num_skip
        return cls(
            length_field_length,
            length_offset=length_field_offset,
            length_adjustment=length_adjustment + skip - head,
            strip=None if skip == head else skip,
            byteorder="little" if little_endian else "big",
            max_size=max_size,
        )


class _KeepPrefixDecoder(CountedDecoder):
    """``strip="field"``: a message is the prefix before the field, then the bytes after it.

    Not a slice of the wire, so this loop builds it (the C scanner does the
    same for runs of whole frames); the framing's ``_header_at`` still judges
    every header.
    """

    __slots__ = ()

    def _scan(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        framing: LengthField = self._framing  # type: ignore[assignment]
        header_at = framing._frame_at
        keep = framing._keep
        trailer = framing.trailer
        tl = len(trailer)
        end = len(buf)
        append = out.append
        while pos < end:
            header = header_at(buf, pos)
            if header is None:
                break
            start, size = header
            stop = start + size
            if stop + tl > end:
                self._body.start(
                    buf[pos:start], memoryview(buf)[start:], keep + size + tl, trailer, keep=keep
                )
                return end
            if tl and buf[stop : stop + tl] != trailer:
                raise FramingError(f"message is not followed by {trailer!r}")
            append(buf[pos : pos + keep] + buf[start:stop])
            pos = stop + tl
        return pos


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- the command-line spec --------------------------------------------------------

LENGTH_FIELD_SPEC_HELP = (
    "field:WIDTH[:little][,offset=N][,adjust=N][,strip=N|field][,trailer=HEX]"
    " (WIDTH 1, 2, 3, 4, 8 or varint; a length field after N prefix bytes,"
    " e.g. PostgreSQL: field:4,offset=1,adjust=-4,strip=field)"
)

_SPEC = re.compile(r"field:(?P<width>[^:,]+)(?::(?P<order>[^,]*))?(?P<options>(?:,[^,]*)*)")


def parse_length_field_spec(text: str, *, max_size: int | None = None) -> LengthField:
    """Return the :class:`LengthField` that a spec such as ``field:4,offset=1,adjust=-4`` names.

    The grammar (``LENGTH_FIELD_SPEC_HELP``): ``field:WIDTH`` (1, 2, 3, 4, 8 or
    ``varint``), then ``:little`` for a little-endian field, then any of
    ``,offset=N`` (``length_offset``), ``,adjust=N`` (``length_adjustment``,
    may be negative), ``,strip=N`` or ``,strip=field``, ``,trailer=HEX``
    (e.g. ``trailer=ce``). Numbers are decimal or ``0x`` hex.

    Raises:
        ValueError: the text is not such a spec, or the framing refuses its
            parameters; the message quotes the spec and says what is wrong.
    """
    spec = text.strip()
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"bad length-field spec {spec!r}; use {LENGTH_FIELD_SPEC_HELP}")
    try:
        width_text = match["width"].strip().lower()
        width: int | str = width_text if width_text == "varint" else _spec_int(width_text, "WIDTH")
        order = (match["order"] or "big").strip().lower()
        if order not in ("big", "little"):
            raise ValueError(f"the byte order must be 'big' or 'little', not {match['order']!r}")
        options: dict[str, object] = {}
        for item in match["options"].split(",")[1:]:
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value:
                raise ValueError(f"option {item!r} is not NAME=VALUE")
            if key in options:
                raise ValueError(f"option {key!r} is given twice")
            if key in ("offset", "adjust"):
                options[key] = _spec_int(value, key)
            elif key == "strip":
                options[key] = "field" if value.lower() == "field" else _spec_int(value, key)
            elif key == "trailer":
                try:
                    options[key] = bytes.fromhex(value)
                except ValueError:
                    raise ValueError(f"trailer must be hex digits, not {value!r}") from None
            else:
                raise ValueError(
                    f"unknown option {key!r}; use offset=, adjust=, strip= or trailer="
                )
        kw = {} if max_size is None else {"max_size": max_size}
        return LengthField(
            width,  # type: ignore[arg-type]
            length_offset=options.get("offset", 0),  # type: ignore[arg-type]
            length_adjustment=options.get("adjust", 0),  # type: ignore[arg-type]
            strip=options.get("strip"),  # type: ignore[arg-type]
            byteorder=order,  # type: ignore[arg-type]
            trailer=options.get("trailer", b""),  # type: ignore[arg-type]
            **kw,
        )
    except ValueError as exc:
        raise ValueError(f"bad length-field spec {spec!r}: {exc}") from None


def _spec_int(text: str, what: str) -> int:
    try:
        return int(text, 0) if text.lower().lstrip("-").startswith("0x") else int(text)
    except ValueError:
        raise ValueError(f"{what} must be a whole number, not {text!r}") from None
