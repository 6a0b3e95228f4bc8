"""An echo server on the Protocol front: callbacks, no task per client.

    python examples/protocol_echo_server.py [--port 8888]
    python examples/blocking_front.py 127.0.0.1 8888 hello world   # a client in another shell

The messages are length-prefixed (4-byte big-endian length, then the bytes), so any
message, binary or not, goes through; `aiomsg connect HOST PORT --framing length:4`
talks to it too.
"""

import argparse
import asyncio
import contextlib

import aiomsg


class Echo(aiomsg.MessageProtocol):
    framing = aiomsg.LengthPrefixed(4)  # a class attribute: one framing for every connection

    def message_received(self, message: bytes) -> None:
        # Called once per whole message, however the bytes arrived. send() never blocks;
        # while the client does not read, the protocol stops reading from it.
        self.send(message)


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, port)  # a protocol factory, as for any Protocol
    async with server:
        bound = server.sockets[0].getsockname()[1]
        print(f"echo server on {host}:{bound} ({aiomsg.loop_name()})", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A length-prefixed echo server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        aiomsg.run(main(args.host, args.port))
