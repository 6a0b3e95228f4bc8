"""The ``aiomsg`` command: chat server and client, half-close requests, any-framing server, demo.

Run ``aiomsg --help`` (or ``python -m aiomsg --help``) for the commands and
``aiomsg COMMAND --help`` for each one's options.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import aiomsg
from aiomsg.chat import ChatLimits
from aiomsg.chat.servers import IMPLS, run_chat_server
from aiomsg.framing import SPEC_HELP, Framing, parse_framing


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- chat-server ---------------------------------------------------------------------------


async def chat_server(impl: str, host: str, port: int, limits: ChatLimits) -> None:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    ready.add_done_callback(
        lambda f: _say(
            f"chat server ({impl} front) on {host}:{f.result()}, event loop {aiomsg.loop_name()}"
        )
    )
    await run_chat_server(impl, host, port, limits, ready)


# --- serve (echo or print, any framing) -------------------------------------------------


async def run_framing_server(host: str, port: int, framing: Framing, mode: str) -> None:
    async def handler(conn: aiomsg.Connection) -> None:
        async for message in conn:
            if mode == "print":
                print(f"{conn.remote_address}: {message!r}", flush=True)
            else:
                await conn.send(message)

    async with aiomsg.serve(handler, host, port, framing=framing) as server:
        _say(
            f"{mode} server, {framing!r}, on {host}:{server.port}, event loop {aiomsg.loop_name()}"
        )
        await server.serve_forever()


# --- request ------------------------------------------------------------------------------


async def run_request(host: str, port: int, timeout: float, max_size: int) -> int:
    payload = sys.stdin.buffer.read()
    _say(f"request of {len(payload)} bytes to {host}:{port}, event loop {aiomsg.loop_name()}")
    response = await aiomsg.request(host, port, payload, timeout=timeout, max_size=max_size)
    sys.stdout.buffer.write(response)
    sys.stdout.flush()
    return 0


# --- demo ---------------------------------------------------------------------------------

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


async def demo(impl: str) -> int:
    """A chat server on loopback and three scripted clients; print the transcript."""
    _say(f"aiomsg demo: chat server ({impl} front) on loopback, event loop {aiomsg.loop_name()}")
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
        _say(f"demo FAILED: never seen {missing}")
        return 1
    _say("demo ok: every client saw what it should")
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


# --- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiomsg", description="Message framing for asyncio: chat, requests and servers."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("chat-server", help="run the example chat server")
    p.add_argument("--impl", choices=IMPLS, default="streams", help="which aiomsg front serves")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7777)
    p.add_argument("--max-line", type=int, default=ChatLimits.max_line, help="bytes per line")
    p.add_argument(
        "--queue-lines",
        type=int,
        default=ChatLimits.queue_lines,
        help="lines waiting for a slow client before it is dropped",
    )
    p.add_argument("--flood-rate", type=float, default=ChatLimits.flood_rate, help="lines/s")
    p.add_argument(
        "--line-timeout",
        type=_seconds,
        default=ChatLimits.message_timeout,
        help="seconds a begun line may take to end (0: no limit)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=ChatLimits.idle_timeout,
        help="seconds a client may send nothing (0: no limit, the default)",
    )

    p = sub.add_parser("chat", help="chat interactively with a chat server")
    p.add_argument("host")
    p.add_argument("port", type=int)

    p = sub.add_parser("request", help="send stdin, half-close, write the response to stdout")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--max-size", type=int, default=aiomsg.DEFAULT_MAX_SIZE)

    p = sub.add_parser("serve", help="an echo (or print) server for any framing")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--framing", required=True, metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--mode", choices=("echo", "print"), default="echo")

    p = sub.add_parser("demo", help="chat server and three scripted clients on loopback")
    p.add_argument("--impl", choices=IMPLS, default="streams")
    return parser


def _seconds(text: str) -> float | None:
    """A timeout on the command line: seconds, 0 for none."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a timeout cannot be negative: {text}")
    return value or None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiomsg`` command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "chat-server":
            limits = ChatLimits(
                max_line=args.max_line,
                queue_lines=args.queue_lines,
                flood_rate=args.flood_rate,
                message_timeout=args.line_timeout,
                idle_timeout=args.idle_timeout,
            )
            aiomsg.run(chat_server(args.impl, args.host, args.port, limits))
        elif args.command == "chat":
            from aiomsg.chat.client import run_client

            return aiomsg.run(run_client(args.host, args.port))
        elif args.command == "request":
            return aiomsg.run(run_request(args.host, args.port, args.timeout, args.max_size))
        elif args.command == "serve":
            try:
                framing = parse_framing(args.framing)
            except ValueError as exc:
                _say(f"aiomsg serve: {exc}")
                return 2
            aiomsg.run(run_framing_server(args.host, args.port, framing, args.mode))
        elif args.command == "demo":
            return aiomsg.run(demo(args.impl))
    except KeyboardInterrupt:
        return 130
    except (OSError, aiomsg.AiomsgError, TimeoutError) as exc:
        _say(f"aiomsg {args.command}: {exc!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
