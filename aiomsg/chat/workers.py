"""``aiomsg chat-server --workers N``: the chat server as :func:`aiomsg.run_workers` workers.

Each worker is an ordinary chat server listening with ``SO_REUSEPORT``, so the
kernel spreads new connections over them; the broker (Redis) makes their rooms
one. :mod:`aiomsg.workers` starts them, restarts one that dies, and on Ctrl-C
or SIGTERM stops them all: each says goodbye to its members and to the broker,
so they leave the room cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from ..workers import Worker, WorkerStartError, run_workers
from .room import ChatLimits
from .servers import run_chat_server

__all__ = ["chat_worker", "run_chat_workers"]


def run_chat_workers(
    count: int,
    host: str,
    port: int,
    *,
    impl: str,
    limits: ChatLimits,
    broker: str,
    room_name: str,
    heartbeat: float,
    quiet: bool = False,
    log_level: int = logging.WARNING,
    proxy: dict[str, Any] | None = None,
) -> int:
    """Run ``count`` chat workers on ``host:port`` sharing the room ``room_name`` of ``broker``.

    Prints one line when all listen (not when ``quiet``); returns 0 after SIGTERM (a clean
    stop, as ``docker stop`` and systemd ask for it), 130 after Ctrl-C (every worker
    stopped either way), or 1 if a worker could not start (said on stderr). ``proxy``: the
    PROXY protocol keywords of :func:`~aiomsg.chat.servers.run_chat_server`.
    """

    def ready(bound: int) -> None:
        if not quiet:
            print(
                f"aiomsg chat-server: listening on {host}:{bound} ({count} workers, SO_REUSEPORT)",
                file=sys.stderr,
                flush=True,
            )

    try:
        return run_workers(
            chat_worker,
            count,
            host=host,
            port=port,
            args=(impl, limits, broker, room_name, heartbeat, proxy or {}),
            on_ready=ready,
            log_level=log_level,
        )
    except WorkerStartError as exc:
        print(f"aiomsg chat-server: a worker did not start: {exc}", file=sys.stderr, flush=True)
        return 1


async def chat_worker(
    worker: Worker,
    impl: str,
    limits: ChatLimits,
    broker: str,
    room_name: str,
    heartbeat: float,
    proxy: dict[str, Any],
) -> None:
    """One worker: a chat server on the shared port until asked to stop, then goodbyes."""
    loop = asyncio.get_running_loop()
    listening: asyncio.Future[int] = loop.create_future()

    def started(f: asyncio.Future[int]) -> None:
        if not f.cancelled() and f.exception() is None:
            worker.ready()

    listening.add_done_callback(started)
    server = loop.create_task(
        run_chat_server(
            impl,
            worker.host,
            worker.port,
            limits,
            listening,
            broker=broker,
            room_name=room_name,
            heartbeat=heartbeat,
            reuse_port=True,
            **proxy,
        )
    )
    stopping = loop.create_task(worker.wait_stopping())
    await asyncio.wait([server, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not server.done():
        server.cancel()  # the chat servers say goodbye when cancelled
    try:
        await server
    except asyncio.CancelledError:
        if not worker.stopping:
            raise
