"""Plain blocking-socket peers, the Socket Programming HOWTO's way, run in a thread by the tests."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import aiomsg
from aiomsg.framing import Framing


def pattern(size: int, seed: int = 0) -> bytes:
    """Printable bytes (no NUL, CR, LF or ``aab``) that differ from message to message."""
    alphabet = bytes(range(33, 127))
    start = seed % len(alphabet)
    reps = size // len(alphabet) + 2
    return (alphabet[start:] + alphabet * reps)[:size]


def messages_for(framing: Framing, sizes: tuple[int, ...], seed: int = 0) -> list[bytes]:
    """A message of each size that ``framing`` can carry (fixed framings: their own size)."""
    out = []
    for i, size in enumerate(sizes):
        if isinstance(framing, aiomsg.FixedLength):
            size = framing.size
        body = pattern(size, seed + i)
        if isinstance(framing, aiomsg.TypePrefixed):
            body = b"\x03" + body[1:] if size else b"\x05"  # 3: netstring body; 5: empty
        try:
            framing.encode(body)
        except aiomsg.FramingError:
            continue
        out.append(body)
    return out


def connect_blocking(address: Any) -> socket.socket:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(30)  # a hung test fails instead of hanging CI
    sock.connect(address)
    return sock


def recv_all(sock: socket.socket) -> bytes:
    """Read until the peer closes (a read of 0 bytes)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(address: Any, wire: bytes) -> bytes:
    """Send ``wire`` (from another thread, so neither side can block the other),
    half-close with ``shutdown(SHUT_WR)``, and return everything received until EOF."""
    sock = connect_blocking(address)

    def send() -> None:
        try:
            sock.sendall(wire)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the peer reset the connection first: recv_all() reports it
            pass

    sender = threading.Thread(target=send)
    sender.start()
    try:
        return recv_all(sock)
    finally:
        sender.join()
        sock.close()


def reset(sock: socket.socket) -> None:
    """Close abortively: the peer gets a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class EchoServer:
    """A blocking byte-echo server in a thread: echoes bytes, half-closes after the client does."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(30)
        with conn:
            while chunk := conn.recv(65536):
                conn.sendall(chunk)
            conn.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.thread.join(30)
        self.listener.close()
