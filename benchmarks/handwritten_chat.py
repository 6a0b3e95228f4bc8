"""The chat server people write from the asyncio docs, the baseline of ``benchmarks/chat.py``.

A ``StreamReader.readline()`` loop per client, and each line written to every
other client with ``writer.write()`` and ``await writer.drain()``, as the docs'
streams examples do. ``python3 benchmarks/handwritten_chat.py --port 7777``
(``--loop asyncio|uvloop``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools

writers: set[asyncio.StreamWriter] = set()
guests = itertools.count(1)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    name = f"guest{next(guests)}"
    writers.add(writer)
    writer.write(f"* welcome to aiomsg chat, you are {name}\n".encode())
    try:
        while line := await reader.readline():
            message = f"{name}: {line.decode().rstrip()}\n".encode()
            for other in list(writers):
                if other is not writer:
                    other.write(message)
                    await other.drain()
    except (ConnectionError, UnicodeDecodeError, ValueError):
        pass
    finally:
        writers.discard(writer)
        writer.close()


async def main(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7777)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args.host, args.port))
    else:
        asyncio.run(main(args.host, args.port))
