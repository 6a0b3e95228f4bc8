"""Chapter 9: from non-blocking sockets and select() to asyncio.

    python examples/tutorial/select_to_asyncio.py

One thread serving many clients: the HOWTO's answer is non-blocking sockets and
select(), which says which sockets are ready. The program must then keep, for every
connection, the bytes of a message not yet complete and the output not yet sent,
and never call anything that blocks. An asyncio event loop is that select() loop,
written once; aiomsg keeps the per-connection state (a decoder and the write
buffer), so a handler reads as if it had the connection to itself.

Both servers below echo lines to two clients who talk at the same time.
"""

import asyncio
import selectors
import socket
import threading

import aiomsg


def select_server(clients: int) -> int:
    """A line echo server on selectors (select() and its faster cousins), in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    inbox: dict[socket.socket, bytes] = {}  # per connection: the start of a line
    outbox: dict[socket.socket, bytes] = {}  # per connection: output not yet sent

    def run() -> None:
        accepted = 0
        while accepted < clients or inbox:
            for key, events in selector.select(timeout=10):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is listener:
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    inbox[conn], outbox[conn] = b"", b""
                    selector.register(conn, selectors.EVENT_READ)
                    accepted += 1
                    continue
                if events & selectors.EVENT_READ:
                    data = sock.recv(65536)  # ready: this does not block
                    if not data:  # the client closed: forget everything about it
                        selector.unregister(sock)
                        del inbox[sock], outbox[sock]
                        sock.close()
                        continue
                    *lines, inbox[sock] = (inbox[sock] + data).split(b"\n")
                    outbox[sock] += b"".join(line + b"\n" for line in lines)
                if outbox[sock]:
                    sent = sock.send(outbox[sock])  # may send only part: keep the rest
                    outbox[sock] = outbox[sock][sent:]
                # Ask to hear about writability only while there is output waiting.
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if outbox[sock] else 0)
                selector.modify(sock, want)
        selector.close()
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return int(listener.getsockname()[1])


async def echo(conn: aiomsg.Connection) -> None:
    # The same server on asyncio: one task per client, the loop does the select().
    async for line in conn:
        await conn.send(line)


async def client(name: str, port: int) -> None:
    async with aiomsg.connect("127.0.0.1", port, framing=aiomsg.Lines()) as conn:
        for i in range(3):
            await conn.send(f"{name} {i}".encode())
            await asyncio.sleep(0.01)  # let the other client talk in between
        answers = [await conn.receive() for _ in range(3)]
        print(name, "got", b", ".join(answers).decode())


async def main() -> None:
    print("-- the select() server")
    port = select_server(clients=2)
    await asyncio.gather(client("alice", port), client("bob", port))
    print("-- the aiomsg server")
    async with aiomsg.serve(echo, "127.0.0.1", 0, framing=aiomsg.Lines()) as server:
        await asyncio.gather(client("alice", server.port), client("bob", server.port))


if __name__ == "__main__":
    aiomsg.run(main())
