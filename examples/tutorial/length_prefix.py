"""Chapter 4: length prefixes, in binary (network byte order) and in ASCII digits.

    python examples/tutorial/length_prefix.py

Each message starts with its length. In binary, struct.pack("!I", n) writes n as 4
bytes, most significant first ("network byte order", "!" or ">" in struct), so
that machines of either byte order agree. In ASCII, the HOWTO's other choice, the
length is written in a fixed number of decimal digits: b"00005hello". The reader
reads the header, then exactly that many bytes. aiomsg's LengthPrefixed(4) and
AsciiLengthPrefixed(5) are these two formats.
"""

import socket
import struct
import threading
from collections.abc import Callable

import aiomsg

MESSAGES = [b"hello", b"", b"x" * 70_000]  # an empty message, and one longer than a read


def binary_peer(conn: socket.socket) -> None:
    for message in MESSAGES:
        conn.sendall(struct.pack("!I", len(message)) + message)  # 4-byte big-endian length


def ascii_peer(conn: socket.socket) -> None:
    for message in MESSAGES:
        conn.sendall(b"%05d" % len(message) + message)  # 5 decimal digits: at most 99,999 bytes


def serve_once(talk: Callable[[socket.socket], None]) -> int:
    """A blocking TCP server for one client, in a thread; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            talk(conn)

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """n bytes, however many recv() calls it takes (the HOWTO's myreceive for any n)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def the_blocking_way(port: int, header_size: int, parse: Callable[[bytes], int]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in MESSAGES:  # this reader knows how many come; a real one stops at a clean EOF
            length = parse(recv_exactly(sock, header_size))
            message = recv_exactly(sock, length)
            print("blocking:", len(message), "bytes", message[:5])


def parse_binary(header: bytes) -> int:
    (length,) = struct.unpack("!I", header)
    return int(length)


def parse_ascii(header: bytes) -> int:
    if not header.isdigit():  # int() would accept b" 12", b"+12", b"1_2"
        raise ValueError(f"bad length header {header!r}")
    return int(header)


async def the_aiomsg_way(port: int, framing: aiomsg.Framing) -> None:
    async with aiomsg.connect("127.0.0.1", port, framing=framing) as conn:
        async for message in conn:
            print("aiomsg:", len(message), "bytes", message[:5])


if __name__ == "__main__":
    print("-- binary, network byte order")
    the_blocking_way(serve_once(binary_peer), 4, parse_binary)
    aiomsg.run(the_aiomsg_way(serve_once(binary_peer), aiomsg.LengthPrefixed(4)))
    print("-- ASCII digits")
    the_blocking_way(serve_once(ascii_peer), 5, parse_ascii)
    aiomsg.run(the_aiomsg_way(serve_once(ascii_peer), aiomsg.AsciiLengthPrefixed(5)))
