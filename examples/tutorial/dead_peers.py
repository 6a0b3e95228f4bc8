"""Chapter 8: dead peers and timeouts.

    python examples/tutorial/dead_peers.py

A peer that dies without closing (a crashed machine, a pulled cable, a hung
process) sends nothing more, not even the end of the stream: a blocking recv()
would wait for ever. The HOWTO's cure is a timeout on the socket. aiomsg has one
per situation: message_timeout for a message that has begun and does not finish,
idle_timeout for silence, TCP keepalive (on by default) for a vanished machine,
and the opt-in heartbeat for a hung process (see examples/heartbeat.py).
"""

import socket
import struct
import threading

import aiomsg

released = threading.Event()  # set at the end, so the hung peers can go


def hung_peer(first_bytes: bytes) -> int:
    """A server that sends first_bytes and then hangs; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            conn.sendall(first_bytes)
            released.wait(30)  # hung: the connection stays open and silent

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


HALF_A_MESSAGE = struct.pack("!I", 10) + b"hel"  # a header for 10 bytes, then only 3


def the_blocking_way(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(0.5)  # each recv() waits at most 0.5 s
        try:
            while sock.recv(1024):
                pass
        except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
            print("blocking: recv() timed out; give up on this peer")


async def the_aiomsg_way() -> None:
    framing = aiomsg.LengthPrefixed(4)
    port = hung_peer(HALF_A_MESSAGE)
    conn = await aiomsg.connect("127.0.0.1", port, framing=framing, message_timeout=0.5)
    async with conn:
        try:
            await conn.receive()
        except aiomsg.MessageTimeout:  # a TimeoutError; the connection is closed
            print("aiomsg: a message began and did not finish within message_timeout")

    port = hung_peer(b"")  # says nothing at all
    conn = await aiomsg.connect("127.0.0.1", port, framing=framing, idle_timeout=0.5)
    async with conn:
        try:
            await conn.receive()
        except aiomsg.IdleTimeout:
            print("aiomsg: nothing arrived within idle_timeout")
    # Each close above lingers up to linger_timeout (2 s) for the peer to close its side,
    # then resets the connection: a hung peer never closes.


if __name__ == "__main__":
    the_blocking_way(hung_peer(HALF_A_MESSAGE))
    aiomsg.run(the_aiomsg_way())
    released.set()
