"""The opt-in heartbeat: a quiet connection stays up, a hung peer is found in seconds.

    python examples/heartbeat.py

Both sides send an empty message whenever they have sent nothing for `heartbeat`
seconds, and close the connection when nothing at all arrived for
`heartbeat_timeout` seconds (3 x heartbeat by default). The intervals here are
short so that the program runs in a few seconds; in real life use seconds, not
fractions of one.
"""

import asyncio

import aiomsg

FRAMING = aiomsg.LengthPrefixed(4)  # it carries empty messages, so it can carry heartbeats
HEARTBEAT = 0.5  # seconds; the default heartbeat_timeout is 3 x that


async def echo(conn: aiomsg.Connection) -> None:
    async for message in conn:  # heartbeats (empty messages) are never delivered
        await conn.send(message)


async def hung(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # A peer that accepts and then says nothing, as a hung process would.
    await reader.read()
    writer.close()


async def main() -> None:
    # Both sides heartbeat: the connection survives far longer than heartbeat_timeout in silence.
    async with aiomsg.serve(
        echo, "127.0.0.1", 0, framing=FRAMING, options=aiomsg.Options(heartbeat=HEARTBEAT)
    ) as server:
        async with aiomsg.connect(
            "127.0.0.1", server.port, framing=FRAMING, options=aiomsg.Options(heartbeat=HEARTBEAT)
        ) as conn:
            await asyncio.sleep(5 * HEARTBEAT)  # silence from the application
            await conn.send(b"still there?")
            print("quiet but alive:", await conn.receive())

    # A peer that sends nothing, not even heartbeats: found after heartbeat_timeout.
    silent = await asyncio.start_server(hung, "127.0.0.1", 0)
    async with silent:
        port = silent.sockets[0].getsockname()[1]
        async with aiomsg.connect(
            "127.0.0.1",
            port,
            framing=FRAMING,
            options=aiomsg.Options(heartbeat=HEARTBEAT, heartbeat_timeout=3 * HEARTBEAT),
        ) as conn:
            try:
                await conn.receive()
            except aiomsg.HeartbeatTimeout as exc:
                print("hung peer found:", type(exc).__name__)


if __name__ == "__main__":
    aiomsg.run(main())
