"""A client for examples/echo_server.py: sends each argument as a line, prints each answer.

    python examples/echo_client.py [--port 8888] hello world
"""

import argparse

import aiomsg


async def main(host: str, port: int, lines: list[str]) -> None:
    # The framing must be the server's: here, lines ending in \n.
    async with aiomsg.connect(host, port, framing=aiomsg.Lines()) as conn:
        for line in lines:
            await conn.send(line.encode())
            print(await conn.receive())  # one whole line, however TCP cut it


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A client for the line echo server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("lines", nargs="*", default=["hello"])
    args = parser.parse_args()
    aiomsg.run(main(args.host, args.port, args.lines))
