r"""Chapter 1: recv() returns what has arrived, not a message.

    python examples/tutorial/partial_reads.py

A peer sends one line, "hello world\n", in two pieces a moment apart, as a slow
network or a busy sender would. Read the blocking way, the first recv() returns
the first piece only: the bytes that had arrived. aiomsg's Lines() framing hands
over the whole line, whatever the pieces were.
"""

import socket
import threading
import time
from collections.abc import Callable

import aiomsg


def peer(conn: socket.socket) -> None:
    conn.sendall(b"hello ")
    time.sleep(0.2)  # the rest of the line is still on its way
    conn.sendall(b"world\n")


def serve_once(talk: Callable[[socket.socket], None]) -> int:
    """A blocking TCP server for one client, in a thread; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            talk(conn)

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


def the_blocking_way(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while chunk := sock.recv(1024):  # up to 1024 bytes: whatever has arrived
            print("blocking: recv() returned", chunk)
        # Only the end of the stream says the line is complete here; a real protocol
        # needs a way to find where a message ends: a framing.


async def the_aiomsg_way(port: int) -> None:
    async with aiomsg.connect("127.0.0.1", port, framing=aiomsg.Lines()) as conn:
        print("aiomsg: receive() returned", await conn.receive())  # the whole line


if __name__ == "__main__":
    the_blocking_way(serve_once(peer))
    aiomsg.run(the_aiomsg_way(serve_once(peer)))
