"""aiomsg in a plain trio program: a nursery, no anyio in sight.

    python examples/trio_echo.py    # needs trio: pip install 'aiomsg-framing[trio]'

aiomsg's anyio front runs on trio as it is: serve_framed() reports its port through
trio's nursery.start() as through anyio's TaskGroup.start(), and a FramedStream is
used with plain awaits. Cancellation is trio's: cancelling the nursery stops the
server and closes its connections.
"""

import functools

import trio

import aiomsg

FRAMING = aiomsg.Netstring()  # any framing: here, 5:hello,


async def reverse(stream: aiomsg.FramedStream) -> None:
    async for message in stream:
        await stream.send(message[::-1])


async def client(port: int, word: bytes) -> bytes:
    async with aiomsg.connect_framed("127.0.0.1", port, framing=FRAMING) as stream:
        await stream.send(word)
        with trio.fail_after(5):  # trio's timeouts work around aiomsg's calls
            return await stream.receive()


async def main() -> None:
    async with trio.open_nursery() as nursery:
        serve = functools.partial(aiomsg.serve_framed, reverse, "127.0.0.1", 0, framing=FRAMING)
        port = await nursery.start(serve)  # once the server listens, with the port it got
        answers: dict[bytes, bytes] = {}

        async def ask(word: bytes) -> None:
            answers[word] = await client(port, word)

        async with trio.open_nursery() as clients:  # three clients at once
            for word in (b"trio", b"anyio", b"aiomsg"):
                clients.start_soon(ask, word)
        for word, answer in sorted(answers.items()):
            print(word, "->", answer)
        nursery.cancel_scope.cancel()  # stop the server


if __name__ == "__main__":
    trio.run(main)
