"""An echo server and a client in one anyio task group, on asyncio or trio.

    python examples/anyio_echo.py                  # asyncio (uvloop where installed)
    python examples/anyio_echo.py --backend trio   # trio (pip install 'aiomsg-framing[trio]')
"""

import argparse
import functools

import anyio

import aiomsg


async def echo(stream: aiomsg.FramedStream) -> None:
    # serve_framed runs this in a task per client and closes the stream when it returns.
    async for message in stream:  # ends at a clean end of stream (anyio.EndOfStream)
        await stream.send(message)


async def main() -> None:
    async with anyio.create_task_group() as tg:
        # TaskGroup.start() passes no keyword arguments, so bind them with functools.partial.
        # It returns once the server listens, with the port it was given (0: any free one).
        serve = functools.partial(aiomsg.serve_framed, echo, "127.0.0.1", 0, framing=aiomsg.Lines())
        port = await tg.start(serve)
        async with aiomsg.connect_framed("127.0.0.1", port, framing=aiomsg.Lines()) as stream:
            await stream.send(b"hi")
            print(await stream.receive())
        tg.cancel_scope.cancel()  # stop the server: the task group then exits


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="anyio echo in one task group.")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    options = {"loop_factory": aiomsg.loop_factory()} if args.backend == "asyncio" else {}
    anyio.run(main, backend=args.backend, backend_options=options)
