r"""Chapter 3: delimiters, and the delimiter split across two reads.

    python examples/tutorial/delimiters.py

Messages end with b"\r\n". The peer's bytes arrive cut so that one read ends
with b"\r" and the next starts with b"\n": splitting each read on b"\r\n" on its
own misses that boundary. The reader has to keep what follows the last delimiter
and search again when more arrives. aiomsg's Delimited(b"\r\n") keeps it for you.
"""

import socket
import threading
import time
from collections.abc import Callable

import aiomsg

DELIMITER = b"\r\n"


def peer(conn: socket.socket) -> None:
    for piece in (b"one\r", b"\ntwo\r\nthr", b"ee\r\n"):  # as the network may cut them
        conn.sendall(piece)
        time.sleep(0.05)


def serve_once(talk: Callable[[socket.socket], None]) -> int:
    """A blocking TCP server for one client, in a thread; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            talk(conn)

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


def the_blocking_way(port: int) -> None:
    buffer = b""  # what came after the last delimiter: the start of the next message
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while chunk := sock.recv(1024):
            buffer += chunk  # search the kept bytes and the new ones together
            *messages, buffer = buffer.split(DELIMITER)
            for message in messages:
                print("blocking:", message)
    if buffer:
        print("blocking: the peer closed inside a message:", buffer)
    # (A real server also bounds the buffer: a peer that never sends the delimiter
    # would make it grow without end. aiomsg's max_size does that.)


async def the_aiomsg_way(port: int) -> None:
    framing = aiomsg.Delimited(DELIMITER)  # aiomsg.Lines() accepts b"\n" and b"\r\n"
    async with aiomsg.connect("127.0.0.1", port, framing=framing) as conn:
        async for message in conn:
            print("aiomsg:", message)


if __name__ == "__main__":
    the_blocking_way(serve_once(peer))
    aiomsg.run(the_aiomsg_way(serve_once(peer)))
