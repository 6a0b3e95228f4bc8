"""A server with every limit written out in one Options, and a client that breaks one.

    python examples/serve_with_limits.py

The values are the defaults except where a comment says otherwise; docs/limits.md
lists every limit (aiomsg.Options has them all). The client sends a line over the
server's max_size: the server refuses it at once, before storing it, and closes that
connection.
"""

import aiomsg

# A chat line needs no more than 4 KiB: a smaller max_size bounds what a client can make
# the server hold (the default is 16 MiB).
FRAMING = aiomsg.Lines(max_size=4096)


async def echo(conn: aiomsg.Connection) -> None:
    async for message in conn:  # MessageTooLarge from here ends this connection, not the server
        await conn.send(message)


async def main() -> None:
    options = aiomsg.Options(
        message_timeout=60.0,  # a begun message must complete within it (None: no limit)
        idle_timeout=None,  # seconds without a byte from the peer (None: off)
        keepalive=60.0,  # TCP keepalive: a vanished peer is found in ~2 minutes
        heartbeat=None,  # seconds: empty messages both ways (see heartbeat.py)
        connect_timeout=30.0,  # a client's connect, TLS handshake included
        backlog=1024, read_size=256 * 1024, write_high_water=256 * 1024,
    )  # fmt: skip
    # One Options object for the server and the client: each uses the fields that apply.
    async with aiomsg.serve(echo, "127.0.0.1", 0, framing=FRAMING, options=options) as server:
        async with aiomsg.connect(
            "127.0.0.1", server.port, framing=aiomsg.Lines(), options=options
        ) as conn:
            await conn.send(b"a short line")
            print("echoed:", await conn.receive())
            await conn.send(b"x" * 5000)  # over the server's 4 KiB
            try:
                await conn.receive()
            except aiomsg.ConnectionClosed as exc:
                print("the server closed the connection:", exc.reason)


if __name__ == "__main__":
    aiomsg.run(main())
