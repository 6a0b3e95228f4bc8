"""A client on the Protocol front, for examples/protocol_echo_server.py.

    python examples/protocol_client.py [--port 8888] hello world

A MessageProtocol works on either side of a connection: here it sends its
messages as soon as it is connected and counts the answers, which arrive through
message_received() like a server's requests.
"""

import argparse
import asyncio

import aiomsg


class EchoClient(aiomsg.MessageProtocol):
    framing = aiomsg.LengthPrefixed(4)

    def __init__(self, messages: list[bytes], done: asyncio.Future[None]) -> None:
        super().__init__()
        self.waiting = len(messages)
        self.messages = messages
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # always call super() in the connection hooks
        self.send_many(self.messages)  # one write for the batch; never blocks

    def message_received(self, message: bytes) -> None:
        print(message)
        self.waiting -= 1
        if self.waiting == 0:
            self.close()  # flush, then close

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.done.done():
            self.done.set_result(None)


async def main(host: str, port: int, texts: list[str]) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    messages = [text.encode() for text in texts]
    await loop.create_connection(lambda: EchoClient(messages, done), host, port)
    await asyncio.wait_for(done, timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A Protocol-front client for the echo server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("texts", nargs="*", default=["hello"])
    args = parser.parse_args()
    aiomsg.run(main(args.host, args.port, args.texts))
