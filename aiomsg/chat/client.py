"""The interactive chat client: type lines while incoming ones are printed above them.

On a terminal, prompt_toolkit keeps the line being typed intact: an incoming line
is printed above the prompt, and the half-typed input is drawn again below it.
Without a terminal (stdin from a pipe), lines are forwarded as they come.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import aiomsg


async def _print_incoming(conn: aiomsg.Connection) -> None:
    try:
        async for line in conn:
            print(line.decode("utf-8", errors="replace"), flush=True)
    except (aiomsg.ConnectionClosed, aiomsg.FramingError) as exc:
        print(f"! connection lost: {exc}", flush=True)
    else:
        print("* the server closed the connection", flush=True)


async def run_client(host: str, port: int) -> int:
    """Chat with the server at ``host:port`` until ``/quit``, end of input or disconnect.

    On a terminal it needs prompt_toolkit (the ``[chat]`` extra); without it, it
    says so and returns 1 before connecting.
    """
    if sys.stdin.isatty() and importlib.util.find_spec("prompt_toolkit") is None:
        print(
            "aiomsg chat: the interactive client needs prompt_toolkit: "
            "pip install 'aiomsg-framing[chat]'",
            file=sys.stderr,
        )
        return 1
    conn = await aiomsg.connect(host, port, framing=aiomsg.Lines())
    async with conn:
        if sys.stdin.isatty():
            await _interactive(conn)
        else:
            await _piped(conn)
    return 0


async def _interactive(conn: aiomsg.Connection) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.patch_stdout import patch_stdout

    session: PromptSession[str] = PromptSession()
    with patch_stdout(raw=True):
        printer = asyncio.create_task(_print_incoming(conn))
        typing = asyncio.create_task(_type_lines(conn, session))
        await asyncio.wait([printer, typing], return_when=asyncio.FIRST_COMPLETED)
        if printer.done() and not typing.done():
            typing.cancel()  # the server left: stop prompting
        else:
            await asyncio.wait([printer], timeout=2)  # let "* bye" arrive
        for task in (printer, typing):
            task.cancel()


async def _type_lines(conn: aiomsg.Connection, session: object) -> None:
    prompt_async = session.prompt_async  # type: ignore[attr-defined]
    while True:
        try:
            text: str = await prompt_async("> ")
        except (EOFError, KeyboardInterrupt):
            text = "/quit"
        if text:
            await conn.send(text.encode())
        if text.strip() == "/quit":
            return


async def _piped(conn: aiomsg.Connection) -> None:
    printer = asyncio.create_task(_print_incoming(conn))
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        await conn.send(line.rstrip("\r\n").encode())
    await conn.send(b"/quit")
    await asyncio.wait([printer], timeout=5)
    printer.cancel()
