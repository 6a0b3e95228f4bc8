"""A line echo server on the Streams front: every line a client sends comes back.

    python examples/echo_server.py [--port 8888]
    python examples/echo_client.py hello world    # or: nc 127.0.0.1 8888
"""

import argparse
import contextlib

import aiomsg


async def handler(conn: aiomsg.Connection) -> None:
    # serve() runs this in a task per client and closes the connection when it returns.
    async for message in conn:  # ends when the client closes cleanly
        await conn.send(message)  # waits while the client is not reading


async def main(host: str, port: int) -> None:
    async with aiomsg.serve(handler, host, port, framing=aiomsg.Lines()) as server:
        # With --port 0 the system picks a free port: server.port says which.
        print(f"echo server on {host}:{server.port} ({aiomsg.loop_name()})", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A line echo server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it quietly
        aiomsg.run(main(args.host, args.port))
