"""A blocking-socket front in a page: the decoder's driving API, read window included.

    python examples/blocking_messages.py HOST PORT MESSAGE...

sends each MESSAGE to a LengthPrefixed(4) echo server (`aiomsg serve HOST PORT
--framing length:4`, or examples/protocol_echo_server.py), half-closes, and prints
every message that comes back until the server closes.
"""

import socket
import sys
from collections.abc import Iterator

import aiomsg


def messages(sock: socket.socket, framing: aiomsg.Framing) -> Iterator[bytes]:
    """Every message the peer sends, until it closes its side."""
    decoder = framing.decoder()  # one per connection: it keeps the leftover between reads
    buffer = bytearray(65536)
    while True:
        # Inside a long message body (with the C speedups) the decoder offers a window into
        # the message being built: reading straight into it saves a copy.
        window = decoder.get_buffer(len(buffer))
        n = sock.recv_into(buffer if window is None else window)
        if n == 0:  # the peer closed its side
            if window is not None:
                window.release()
            yield from decoder.feed_eof()  # raises IncompleteMessageError inside a message
            return
        if window is None:
            yield from decoder.feed(memoryview(buffer)[:n])  # the decoder copies what it keeps
        else:
            window.release()  # release the view before any other call on the decoder
            yield from decoder.buffer_updated(n)


def main(host: str, port: str, *texts: str) -> None:
    framing = aiomsg.LengthPrefixed(4)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(framing.encode_many([text.encode() for text in texts]))
        sock.shutdown(socket.SHUT_WR)  # done sending, still listening
        for message in messages(sock, framing):
            print(message.decode(errors="replace"))


if __name__ == "__main__":
    main(*sys.argv[1:])
