"""``aiomsg chat-server``: the example chat server, one process or ``--workers N``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import signal
from typing import Any

import aiomsg
from aiomsg._redact import redact_url
from aiomsg.chat import ChatLimits
from aiomsg.chat.servers import IMPLS, run_chat_server

from ._args import (
    LOG_LEVELS,
    Command,
    Say,
    broker_url,
    listen_port,
    positive_seconds,
    seconds,
    server_failure,
    size,
)
from ._args import count as process_count
from ._errors import CLIError, address
from ._proxy_args import add_proxy_arguments, proxy_keywords


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--impl", choices=IMPLS, default="streams", help="which aiomsg front serves")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=listen_port, default=7777, help="port (0: any free)")
    p.add_argument("--max-line", type=size, default=ChatLimits.max_line, help="bytes per line")
    queued = "lines waiting for a slow client before it is dropped"
    p.add_argument("--queue-lines", type=int, default=ChatLimits.queue_lines, help=queued)
    p.add_argument("--flood-rate", type=float, default=ChatLimits.flood_rate, help="lines/s")
    p.add_argument(
        "--line-timeout",
        type=seconds,
        default=ChatLimits.message_timeout,
        help="seconds a begun line may take to end (0: no limit)",
    )
    p.add_argument(
        "--idle-timeout",
        type=seconds,
        default=ChatLimits.idle_timeout,
        help="seconds a client may send nothing (0, the default: no limit)",
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        type=broker_url,
        help="share the room with other servers through Redis: redis://HOST:PORT/DB "
        "(needs the [redis] extra); its password is never printed",
    )
    p.add_argument("--room", default="lobby", help="the room's name in the broker")
    p.add_argument(
        "--broker-heartbeat",
        type=positive_seconds,
        default=1.0,
        help="seconds between this server's heartbeats to the broker; a server silent for "
        "3 heartbeats is presumed dead and its members leave within 4",
    )
    p.add_argument(
        "--workers",
        type=process_count,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT) and the room (needs --broker)",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT, so that other servers may listen on the same port",
    )
    # For tests: print the port on stdout once listening.
    add_proxy_arguments(p)
    p.add_argument("--report-port", action="store_true", help=argparse.SUPPRESS)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, say: Say) -> int:
    limits = ChatLimits(
        max_line=args.max_line,
        queue_lines=args.queue_lines,
        flood_rate=args.flood_rate,
        message_timeout=args.line_timeout,
        idle_timeout=args.idle_timeout,
    )
    proxy = proxy_keywords(args, parser)
    if args.broker and importlib.util.find_spec("redis") is None:
        raise CLIError("--broker needs the redis package: pip install 'aiomsg-framing[redis]'")
    if args.workers > 1:
        if not args.broker:
            parser.error("--workers needs --broker (the workers share the room through it)")
        from aiomsg.chat.workers import run_chat_workers

        return run_chat_workers(
            args.workers,
            args.host,
            args.port,
            impl=args.impl,
            limits=limits,
            broker=args.broker,
            room_name=args.room,
            heartbeat=args.broker_heartbeat,
            quiet=args.level < 0,
            log_level=LOG_LEVELS[args.level],
            proxy=proxy,
        )
    aiomsg.run(
        chat_server(
            args.impl,
            args.host,
            args.port,
            limits,
            say,
            broker=args.broker,
            room_name=args.room,
            heartbeat=args.broker_heartbeat,
            reuse_port=args.reuse_port,
            report_port=args.report_port,
            proxy=proxy,
        )
    )
    return 0


async def chat_server(
    impl: str,
    host: str,
    port: int,
    limits: ChatLimits,
    say: Say,
    *,
    broker: str | None = None,
    room_name: str = "lobby",
    heartbeat: float = 1.0,
    reuse_port: bool = False,
    report_port: bool = False,
    proxy: dict[str, Any] | None = None,
) -> None:
    """Run the chat server until cancelled or SIGTERM.

    Says ``listening on HOST:PORT`` (unless ``-q``); with ``-v`` the front, the
    room's broker (its password hidden) and the event loop.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[int] = loop.create_future()
    asked_to_stop = asyncio.Event()  # SIGTERM, or the end of stdin: a clean stop, status 0
    main = asyncio.current_task()
    assert main is not None

    def stop() -> None:
        asked_to_stop.set()
        main.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals on Windows
        loop.add_signal_handler(signal.SIGTERM, stop)  # docker stop, systemd: say goodbye

    def listening(f: asyncio.Future[int]) -> None:
        if f.cancelled() or f.exception() is not None:
            return
        say.notice(f"listening on {address(host, f.result())}")
        shared = f", room {room_name!r} shared through {redact_url(broker)}" if broker else ""
        say.chatter(f"{impl} front{shared}, event loop {aiomsg.loop_name()}")
        if report_port:  # for tests: where it listens
            print(f.result(), flush=True)

    ready.add_done_callback(listening)
    try:
        await run_chat_server(
            impl,
            host,
            port,
            limits,
            ready,
            broker=broker,
            room_name=room_name,
            heartbeat=heartbeat,
            reuse_port=reuse_port,
            **(proxy or {}),
        )
    except asyncio.CancelledError:
        if not asked_to_stop.is_set():
            raise


COMMAND = Command(
    name="chat-server",
    help="run the example chat server",
    description=(
        "Run the example chat server (docs/chat.md). Says 'listening on HOST:PORT' on "
        "stderr (-q: not even that; -v: the front, the broker and the event loop too)."
    ),
    add_arguments=_add_arguments,
    run=_run,
    failure=server_failure,
)
