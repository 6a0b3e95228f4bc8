"""The ``aiomsg`` command: ``python -m aiomsg demo``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import aiomsg
from aiomsg.framing import Framing

DEMO_FRAMINGS: list[tuple[Framing, list[bytes]]] = [
    (aiomsg.FixedLength(5), [b"hello", b"world"]),
    (aiomsg.Lines(), [b"hello", b"", b"world"]),
    (aiomsg.Delimited(b"\0"), [b"hello", b"world"]),
    (aiomsg.LengthPrefixed(4), [b"hello", b"", b"x" * 70000]),
    (aiomsg.AsciiLengthPrefixed(5), [b"hello", b"world"]),
    (aiomsg.TypePrefixed({1: 4, 2: aiomsg.LengthPrefixed(2)}), [b"\x01ping", b"\x02hello"]),
    (aiomsg.Netstring(), [b"hello world!", b""]),
    (aiomsg.Varint(), [b"hello", b"x" * 300]),
    (aiomsg.EndOfStream(), [b"everything until the sender half-closes"]),
]


def _show(message: bytes) -> str:
    return repr(message) if len(message) <= 40 else f"<{len(message)} bytes>"


async def _echo_once(framing: Framing, messages: list[bytes]) -> list[bytes]:
    """Send ``messages`` to a loopback echo server and return what comes back."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = framing.decoder()
        while chunk := await reader.read(65536):
            writer.write(framing.encode_many(decoder.feed(chunk)))
        writer.write(framing.encode_many(decoder.feed_eof()))
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(framing.encode_many(messages))
        writer.write_eof()  # half-close: "done sending, still listening"
        decoder = framing.decoder()
        received: list[bytes] = []
        while chunk := await reader.read(65536):
            received += decoder.feed(chunk)
        received += decoder.feed_eof()
        writer.close()
        return received


async def demo() -> int:
    failures = 0
    for framing, messages in DEMO_FRAMINGS:
        received = await _echo_once(framing, messages)
        ok = received == messages
        failures += not ok
        print(f"{'ok ' if ok else 'BAD'} {framing!r:<60} {', '.join(map(_show, received))}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiomsg`` command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="aiomsg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="round-trip messages over loopback with every framing")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return asyncio.run(demo())
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
