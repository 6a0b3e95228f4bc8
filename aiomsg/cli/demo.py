"""``aiomsg demo``: a chat server on loopback and three scripted clients; the transcript."""

from __future__ import annotations

import argparse
import asyncio

import aiomsg
from aiomsg.chat.servers import IMPLS, run_chat_server

from ._args import Command, Say

SCRIPT: list[tuple[str, str]] = [
    ("alice", "/nick alice"),
    ("bob", "/nick bob"),
    ("carol", "/nick carol"),
    ("alice", "hello everyone!"),
    ("bob", "/me waves"),
    ("carol", "/who"),
    ("carol", "nice to meet you both"),
    ("bob", "/quit"),
    ("alice", "bye bob"),
]
EXPECTED = [
    ("bob", "alice: hello everyone!"),
    ("carol", "alice: hello everyone!"),
    ("alice", "* bob waves"),
    ("carol", "* online: alice, bob, carol"),
    ("alice", "carol: nice to meet you both"),
    ("bob", "* bye"),
    ("alice", "* bob left"),
    ("carol", "alice: bye bob"),
]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--impl", choices=IMPLS, default="streams", help="which aiomsg front serves")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, say: Say) -> int:
    return aiomsg.run(demo(args.impl, say))


async def demo(impl: str, say: Say) -> int:
    """Print the transcript on stdout; return 0 if every client saw what it should, else 1."""
    say.chatter(f"chat server ({impl} front) on loopback, event loop {aiomsg.loop_name()}")
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    server_task = asyncio.create_task(run_chat_server(impl, "127.0.0.1", 0, ready=ready))
    port = await asyncio.wait_for(ready, 10)
    seen: list[tuple[str, str]] = []
    activity = asyncio.Event()

    async def listen(name: str, conn: aiomsg.Connection) -> None:
        async for line in conn:
            text = line.decode()
            seen.append((name, text))
            print(f"  {name:<6}| {text}", flush=True)
            activity.set()

    conns = {
        n: await aiomsg.connect("127.0.0.1", port, framing=aiomsg.Lines())
        for n in ("alice", "bob", "carol")
    }
    listeners = [asyncio.create_task(listen(n, c)) for n, c in conns.items()]
    await _quiet(activity)
    for name, line in SCRIPT:
        print(f"{name:>6} >| {line}", flush=True)
        await conns[name].send(line.encode())
        await _quiet(activity)
    for conn in conns.values():
        conn.close()
    await asyncio.gather(*listeners, return_exceptions=True)
    server_task.cancel()
    await asyncio.gather(server_task, return_exceptions=True)
    missing = [e for e in EXPECTED if e not in seen]
    if missing:
        say.error(f"FAILED: never seen {missing}")
        return 1
    say.chatter("ok: every client saw what it should")
    return 0


async def _quiet(activity: asyncio.Event, gap: float = 0.15, limit: float = 5.0) -> None:
    """Wait until no line has arrived for ``gap`` seconds, so the transcript reads in order."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        activity.clear()
        try:
            await asyncio.wait_for(activity.wait(), gap)
        except TimeoutError:
            return


COMMAND = Command(
    name="demo",
    help="chat server and three scripted clients on loopback",
    description=(
        "A chat server on loopback and three scripted clients: the transcript on stdout; "
        "exit status 1 (and what was missing, on stderr) if a client missed a line."
    ),
    add_arguments=_add_arguments,
    run=_run,
)
