"""Chapter 10: messages between processes on one machine, over a Unix socket.

    python examples/tutorial/unix_sockets.py

Between processes on one machine, an AF_UNIX socket skips the TCP/IP layers that
loopback TCP goes through. It is still a byte stream (SOCK_STREAM): the same framing problem, the
same framings. Its address is a path in the file system, and its permissions say
who may connect. aiomsg's serve_unix() and connect_unix() are serve() and connect()
on a path.
"""

import socket
import tempfile
import threading
from pathlib import Path

import aiomsg

FRAMING = aiomsg.LengthPrefixed(4)


def blocking_server(path: str) -> None:
    """Answers each message with its length, for one client, in a thread."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)  # creates the socket file (it must not exist yet)
    listener.listen()

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            decoder = FRAMING.decoder()  # the sans-I/O decoder works on any stream socket
            while chunk := conn.recv(65536):
                for message in decoder.feed(chunk):
                    conn.sendall(FRAMING.encode(str(len(message)).encode()))

    threading.Thread(target=run, daemon=True).start()


async def measure(conn: aiomsg.Connection) -> None:
    async for message in conn:
        await conn.send(str(len(message)).encode())


async def ask(path: str) -> bytes:
    async with aiomsg.connect_unix(path, framing=FRAMING) as conn:
        await conn.send(b"how long is this?")
        return await conn.receive()


async def main(directory: Path) -> None:
    blocking_path = str(directory / "blocking.sock")
    blocking_server(blocking_path)
    print("blocking server:", await ask(blocking_path))

    aiomsg_path = str(directory / "aiomsg.sock")
    async with aiomsg.serve_unix(measure, aiomsg_path, framing=FRAMING):
        print("aiomsg server:", await ask(aiomsg_path))


if __name__ == "__main__":
    # A private temporary directory: only this user may reach the sockets inside it.
    with tempfile.TemporaryDirectory() as directory:
        aiomsg.run(main(Path(directory)))
