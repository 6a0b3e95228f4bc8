"""A blocking-socket front for aiomsg's codecs, in one page: the Socket Programming HOWTO's way.

Every I/O front of aiomsg is a thin adapter around a sans-I/O decoder: bytes go
in with ``feed()``, complete messages come out, and the decoder keeps whatever
follows the last one (the leftover). This class is such a front for plain
blocking sockets, with no event loop at all::

    python examples/blocking_front.py HOST PORT [MESSAGE ...]

connects to a ``LengthPrefixed(4)`` echo server (``aiomsg serve HOST PORT
--framing length:4``), sends each MESSAGE, and prints what comes back.
"""

from __future__ import annotations

import socket
import sys
from collections import deque

import aiomsg
from aiomsg.framing import Buffer, Framing


class BlockingFramedSocket:
    """Whole messages over a blocking socket.

    ``receive()`` returns the next message, or ``None`` once the peer has closed
    cleanly; it raises what the decoder raises (``IncompleteMessageError`` if
    the peer closed inside a message, ``FramingError`` if it broke the framing)
    and ``TimeoutError`` after the socket's timeout (``sock.settimeout``: the
    HOWTO's cure for a peer that dies and leaves a read hanging).
    """

    def __init__(self, sock: socket.socket, framing: Framing, read_size: int = 65536) -> None:
        self.sock = sock
        self.framing = framing
        self.decoder = framing.decoder()  # one per connection: it keeps the leftover
        self.ready: deque[bytes] = deque()  # decoded, not yet returned
        self.read_size = read_size
        self.at_eof = False

    def send(self, message: Buffer) -> None:
        # sendall() loops until every byte is out: send() may move fewer bytes than asked.
        self.sock.sendall(self.framing.encode(message))

    def receive(self) -> bytes | None:
        while not self.ready:
            if self.at_eof:
                return None
            chunk = self.sock.recv(self.read_size)  # may hold half a message, or several
            if chunk:
                self.ready.extend(self.decoder.feed(chunk))
            else:  # a read of 0 bytes: the peer closed its side
                self.at_eof = True
                self.ready.extend(self.decoder.feed_eof())
        return self.ready.popleft()

    def send_eof(self) -> None:
        """``shutdown(SHUT_WR)``: "done sending, still listening"."""
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


USAGE = "usage: python examples/blocking_front.py HOST PORT [MESSAGE ...]"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[1].isdigit() or not 0 < int(argv[1]) < 65536:
        print(USAGE, file=sys.stderr)
        return 2
    host, port, *messages = argv
    sock = socket.create_connection((host, int(port)), timeout=10)
    framed = BlockingFramedSocket(sock, aiomsg.LengthPrefixed(4))
    try:
        for message in messages:
            framed.send(message.encode())
        framed.send_eof()
        while (reply := framed.receive()) is not None:
            print(reply.decode(errors="replace"))
    finally:
        framed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
