"""The decoder's driving API, as docs/framing.md shows it: a blocking-socket front in a page
(examples/blocking_messages.py, included into the page)."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import aiomsg
from aiomsg.framing import Framing

from .strategies import CASES

EXAMPLE = Path(__file__).parent.parent / "examples" / "blocking_messages.py"


def documented_front() -> Callable[[socket.socket, Framing], Iterator[bytes]]:
    """The ``messages()`` function that docs/framing.md shows, from its example file."""
    spec = importlib.util.spec_from_file_location("blocking_messages", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.messages  # type: ignore[no-any-return]


def receive_all(framing: Framing, wire: bytes) -> list[bytes]:
    messages = documented_front()
    left, right = socket.socketpair()

    def send() -> None:
        with right:
            for i in range(0, len(wire), 3000):  # several reads, some inside a long body
                right.sendall(wire[i : i + 3000])
            right.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        with left:
            return list(messages(left, framing))
    finally:
        sender.join()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_documented_blocking_front_receives_every_message(case: object) -> None:
    framing = case.framing  # type: ignore[attr-defined]
    if isinstance(framing, aiomsg.FixedLength):
        messages = [bytes([i]) * framing.size for i in range(50)]
    elif isinstance(framing, aiomsg.TypePrefixed):
        messages = [b"\x02" + b"L" * 60_000, b"\x01abcd", b"\x03" + b"n" * 200_000, b"\x05"]
    else:
        messages = [b"x" * 200_000, b"", b"short", b"y" * 70_000]
        messages = [m for m in messages if len(m) <= framing.max_size]
    assert receive_all(framing, framing.encode_many(messages)) == messages


def test_the_documented_front_reports_a_stream_cut_inside_a_message() -> None:
    framing = aiomsg.LengthPrefixed(4)
    wire = framing.encode(b"z" * 100_000)[:50_000]
    with pytest.raises(aiomsg.IncompleteMessageError) as info:
        receive_all(framing, wire)
    assert info.value.partial == wire
