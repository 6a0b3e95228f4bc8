"""Chapter 5: type-prefixed messages: the first byte says what follows.

    python examples/tutorial/type_prefix.py

A sensor sends two kinds of message: type 1, a reading, is 8 bytes (a float64 in
network byte order); type 2, a note, is text of any length with a 2-byte length
before it. The reader reads the type byte, and the type tells it how to find the
end of the body. aiomsg's TypePrefixed({1: 8, 2: LengthPrefixed(2)}) is that table.
"""

import socket
import struct
import threading
from collections.abc import Callable

import aiomsg

READING, NOTE = 1, 2
FRAMING = aiomsg.TypePrefixed({READING: 8, NOTE: aiomsg.LengthPrefixed(2)})


def peer(conn: socket.socket) -> None:
    note = b"sensor restarted"
    conn.sendall(bytes([READING]) + struct.pack("!d", 21.5))
    conn.sendall(bytes([NOTE]) + struct.pack("!H", len(note)) + note)
    # The same bytes from the framing: a message is the type byte and its body; a note's
    # length header is the framing's to write (and to strip when decoding).
    conn.sendall(FRAMING.encode(bytes([READING]) + struct.pack("!d", 22.0)))
    conn.sendall(FRAMING.encode(bytes([NOTE]) + b"all good"))


def serve_once(talk: Callable[[socket.socket], None]) -> int:
    """A blocking TCP server for one client, in a thread; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            talk(conn)

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def show(message: bytes) -> str:
    """What a message says, from its type byte (message[0]) and body (message[1:])."""
    if message[0] == READING:
        return f"reading {struct.unpack('!d', message[1:])[0]}"
    return f"note {message[1:].decode()!r}"  # the note's text: its length header is not kept


def the_blocking_way(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while kind := sock.recv(1):  # b"" at a clean end
            if kind[0] == READING:
                body = recv_exactly(sock, 8)
            elif kind[0] == NOTE:
                (length,) = struct.unpack("!H", recv_exactly(sock, 2))
                body = recv_exactly(sock, length)
            else:
                raise ValueError(f"unknown message type {kind[0]}")  # the stream is lost
            print("blocking:", show(kind + body))


async def the_aiomsg_way(port: int) -> None:
    async with aiomsg.connect("127.0.0.1", port, framing=FRAMING) as conn:
        async for message in conn:  # an unknown type raises FramingError
            print("aiomsg:", show(message))


if __name__ == "__main__":
    the_blocking_way(serve_once(peer))
    aiomsg.run(the_aiomsg_way(serve_once(peer)))
