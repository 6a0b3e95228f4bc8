"""An echo server and a client in one program, on uvloop where it is installed.

    python examples/hello.py    # b'hello' on uvloop (or asyncio)
"""

import aiomsg


async def echo(conn: aiomsg.Connection) -> None:
    # One task per client: every message it sends comes back.
    async for message in conn:
        await conn.send(message)


async def main() -> None:
    # Port 0: the system picks a free port; server.port tells which.
    async with aiomsg.serve(echo, "127.0.0.1", 0, framing=aiomsg.Lines()) as server:
        conn = await aiomsg.connect("127.0.0.1", server.port, framing=aiomsg.Lines())
        async with conn:  # closes the connection at the end of the block
            await conn.send(b"hello")
            print(await conn.receive(), "on", aiomsg.loop_name())


if __name__ == "__main__":
    aiomsg.run(main())
