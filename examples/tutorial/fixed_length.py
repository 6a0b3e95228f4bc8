"""Chapter 2: fixed-length messages, the HOWTO's MSGLEN.

    python examples/tutorial/fixed_length.py

Every message is exactly MSGLEN bytes, so the reader knows where each ends
without any header. The HOWTO's MySocket loops on send() and recv() until a whole
message has gone or come; aiomsg's FixedLength(MSGLEN) does that bookkeeping.
"""

import socket
import threading
import time
from collections.abc import Callable

import aiomsg

MSGLEN = 8


def peer(conn: socket.socket) -> None:
    wire = b"reading1reading2reading3"  # three messages of MSGLEN bytes
    for start in range(0, len(wire), 5):  # sent 5 bytes at a time: no piece is a message
        conn.sendall(wire[start : start + 5])
        time.sleep(0.01)


def serve_once(talk: Callable[[socket.socket], None]) -> int:
    """A blocking TCP server for one client, in a thread; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            talk(conn)

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


def myreceive(sock: socket.socket) -> bytes | None:
    """The HOWTO's loop: recv() until MSGLEN bytes have come (None at a clean end)."""
    chunks = []
    bytes_recd = 0
    while bytes_recd < MSGLEN:
        chunk = sock.recv(min(MSGLEN - bytes_recd, 2048))  # never more than this message
        if chunk == b"":
            if bytes_recd == 0:
                return None  # the peer closed between two messages
            raise RuntimeError("socket connection broken")  # ... or in the middle of one
        chunks.append(chunk)
        bytes_recd += len(chunk)
    return b"".join(chunks)


def the_blocking_way(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while (message := myreceive(sock)) is not None:
            print("blocking:", message)


async def the_aiomsg_way(port: int) -> None:
    framing = aiomsg.FixedLength(MSGLEN)
    async with aiomsg.connect("127.0.0.1", port, framing=framing) as conn:
        async for message in conn:  # ends at a clean end of stream
            print("aiomsg:", message)
    # Sending is one call: send() writes the whole message (sendall, not send).
    # framing.encode() refuses a message of the wrong size with FramingError.


if __name__ == "__main__":
    the_blocking_way(serve_once(peer))
    aiomsg.run(the_aiomsg_way(serve_once(peer)))
