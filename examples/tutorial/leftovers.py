"""Chapter 6: the leftover bytes of the next message.

    python examples/tutorial/leftovers.py

Reading one header, then exactly one body, costs two recv() calls per message.
Reading in large chunks is faster, but then one chunk may hold the end of one
message and the start of the next: those bytes must be kept for the next message,
not dropped. The peer here sends three length-prefixed messages in one write.
"""

import socket
import struct
import threading
from collections.abc import Callable

import aiomsg

HEADER = struct.Struct("!I")  # 4-byte big-endian length


def peer(conn: socket.socket) -> None:
    wire = b"".join(HEADER.pack(len(m)) + m for m in (b"first", b"second", b"third"))
    conn.sendall(wire)  # one write: one recv() on the other side may get all of it


def serve_once(talk: Callable[[socket.socket], None]) -> int:
    """A blocking TCP server for one client, in a thread; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            talk(conn)

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


def the_blocking_way(port: int) -> None:
    buffer = bytearray()  # received bytes that no message returned yet
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while chunk := sock.recv(65536):
            buffer += chunk
            # Take every whole message from the front; keep the rest (the leftover).
            while len(buffer) >= HEADER.size:
                (length,) = HEADER.unpack_from(buffer)
                if len(buffer) < HEADER.size + length:
                    break  # the body is not all here yet
                message = bytes(buffer[HEADER.size : HEADER.size + length])
                del buffer[: HEADER.size + length]
                print("blocking:", message, "- kept", len(buffer), "bytes for what follows")
    if buffer:
        raise ConnectionError("the peer closed inside a message")


def the_decoder_way(port: int) -> None:
    # aiomsg's decoders are sans-I/O: the same bookkeeping works over a blocking socket.
    decoder = aiomsg.LengthPrefixed(4).decoder()  # one per connection: it keeps the leftover
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while chunk := sock.recv(65536):
            for message in decoder.feed(chunk):  # every message the chunk completes
                print("decoder:", message)
        decoder.feed_eof()  # IncompleteMessageError if the peer closed inside a message


async def the_aiomsg_way(port: int) -> None:
    async with aiomsg.connect("127.0.0.1", port, framing=aiomsg.LengthPrefixed(4)) as conn:
        async for message in conn:
            print("aiomsg:", message)


if __name__ == "__main__":
    the_blocking_way(serve_once(peer))
    the_decoder_way(serve_once(peer))
    aiomsg.run(the_aiomsg_way(serve_once(peer)))
