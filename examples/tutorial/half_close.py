"""Chapter 7: a read of 0 bytes is the end, and shutdown(SHUT_WR) says "done sending".

    python examples/tutorial/half_close.py

The HOWTO's HTTP-like exchange: the client sends its request and half-closes with
shutdown(SHUT_WR) ("done sending, still listening"). The server reads until recv()
returns b"" (that is how it knows the request is complete, with no header), answers,
and closes; the client reads the answer until its own recv() returns b"". aiomsg's
request() is that client and serve_requests() that server; they interoperate with
the blocking ones (and with `nc -N`).
"""

import asyncio
import socket
import threading

import aiomsg


def read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):  # b"": the peer closed (or half-closed) its side
        chunks.append(chunk)
    return b"".join(chunks)


def blocking_server() -> int:
    """Answers one request in capitals, in a thread; returns its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            request = read_to_end(conn)  # complete: the client half-closed
            conn.sendall(request.upper())
        # Leaving the with block closes the connection: the client's recv() returns b"".

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


def blocking_client(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # done sending, still listening
        return read_to_end(sock)


def upper(request: bytes) -> bytes:
    return request.upper()


async def the_aiomsg_way() -> None:
    # aiomsg's client against the blocking server...
    answer = await aiomsg.request("127.0.0.1", blocking_server(), b"hi")
    print("aiomsg client, blocking server:", answer)
    # ...and a blocking client against aiomsg's server (run in a thread: it blocks).
    async with aiomsg.serve_requests(upper, "127.0.0.1", 0) as server:
        answer = await asyncio.to_thread(blocking_client, server.port, b"hello")
        print("blocking client, aiomsg server:", answer)


if __name__ == "__main__":
    print("blocking client, blocking server:", blocking_client(blocking_server(), b"hey"))
    aiomsg.run(the_aiomsg_way())
