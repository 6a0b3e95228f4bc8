"""The framings under test, each with a hypothesis strategy for messages it can carry."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

import aiomsg
from aiomsg.framing import Framing


def _can_encode(framing: Framing, message: bytes) -> bool:
    try:
        framing.encode(message)
    except aiomsg.FramingError:
        return False
    return True


@dataclass(frozen=True)
class Case:
    name: str
    framing: Framing
    messages: st.SearchStrategy[bytes]

    def __str__(self) -> str:
        return self.name


def _case(name: str, framing: Framing, messages: st.SearchStrategy[bytes] | None = None) -> Case:
    base = messages if messages is not None else st.binary(max_size=300)
    return Case(name, framing, base.filter(lambda m: _can_encode(framing, m)))


_TYPES = aiomsg.TypePrefixed(
    {1: 4, 2: aiomsg.LengthPrefixed(2), 3: aiomsg.Netstring(), 4: aiomsg.Varint(), 5: 0}
)

# Every strategy, with its non-default variants: the single list that every
# parametrized test in the suite (codecs and fronts) draws from.
CASES = [
    _case("fixed", aiomsg.FixedLength(7), st.binary(min_size=7, max_size=7)),
    _case("delimited-crlf", aiomsg.Delimited(b"\r\n")),
    _case("delimited-nul", aiomsg.Delimited(b"\0")),
    _case(
        "delimited-aab",
        aiomsg.Delimited(b"aab"),
        st.binary(max_size=60).map(lambda b: b.replace(b"\0", b"a")),
    ),
    _case("lines", aiomsg.Lines()),
    _case("lines-crlf", aiomsg.Lines(newline=b"\r\n")),
    _case("length1", aiomsg.LengthPrefixed(1)),
    _case("length2-little", aiomsg.LengthPrefixed(2, "little")),
    _case("length4", aiomsg.LengthPrefixed(4)),
    _case("length8", aiomsg.LengthPrefixed(8)),
    _case("ascii5", aiomsg.AsciiLengthPrefixed(5)),
    _case("netstring", aiomsg.Netstring()),
    _case("varint", aiomsg.Varint()),
    _case(
        "typed",
        _TYPES,
        st.one_of(
            st.binary(min_size=4, max_size=4).map(lambda b: b"\x01" + b),
            st.binary(max_size=300).map(lambda b: bytes([2 + len(b) % 3]) + b),
            st.just(b"\x05"),
        ),
    ),
]
